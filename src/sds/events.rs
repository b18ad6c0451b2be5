//! What the engine reports.

use bytes::Bytes;

use super::MessageId;

/// A content message delivered to the layer above, in causal order.
#[derive(Debug, Clone, PartialEq)]
pub struct Delivered {
    pub message_id: MessageId,
    pub sender_id: String,
    pub lamport_timestamp: u64,
    /// The content (zero-copy slice of the received bytes).
    pub content: Bytes,
    /// The retrieval hint the message arrived with (e.g. its Waku message hash).
    pub retrieval_hint: Option<Bytes>,
}

/// A dependency referenced by a received message but not (yet) received.
#[derive(Debug, Clone, PartialEq)]
pub struct MissingDependency {
    pub message_id: MessageId,
    pub retrieval_hint: Option<Bytes>,
    pub sender_id: Option<String>,
}

/// Everything the engine asks its caller to act on or know about.
#[derive(Debug, Clone, PartialEq)]
pub enum SdsEvent {
    /// A content message is delivered (after all its dependencies, or after they were declared lost).
    Delivered(Delivered),
    /// An ephemeral message arrived: delivered at once, never acknowledged.
    EphemeralDelivered { sender_id: String, content: Bytes },
    /// One of our messages is acknowledged (causal history or bloom threshold). Final.
    Acknowledged { message_id: MessageId },
    /// One of our messages hit in a received bloom filter, below the threshold.
    PossiblyAcknowledged { message_id: MessageId, count: u32 },
    /// Dependencies newly found missing, with their retrieval hints.
    Missing(Vec<MissingDependency>),
    /// A missing dependency was not received within the dependency timeout.
    DependencyLost(MissingDependency),
    /// Re-send these exact bytes; report the dispatch with [`super::SdsEngine::on_dispatched`].
    Retransmit { message_id: MessageId, bytes: Bytes, attempt: u32 },
    /// Send our latest content message again (same bytes): a peer's sync (its bloom filter) shows
    /// it lacks it.
    /// Not tracked: no dispatch report is needed.
    Rebroadcast { message_id: MessageId, bytes: Bytes },
    /// Send this sync message (never retransmitted).
    SendSync { message_id: MessageId, bytes: Bytes },
    /// Our message stayed unacknowledged after the last retransmission. Final.
    GaveUp { message_id: MessageId },
}
