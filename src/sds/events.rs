//! What the engine reports: events, the result of a wrap or a receive, refusals and counters.

use bytes::Bytes;

use super::MessageId;
use crate::wire::WireError;

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
    /// A missing dependency was not received within the dependency timeout. Only for
    /// dependencies a waiting message waited for, and once per waiting message (spec: sds.lost).
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

/// Why the engine refused to wrap a message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SdsError {
    /// Content messages must carry content.
    #[error("empty content")]
    EmptyContent,
    /// The outgoing buffer is at its message or byte bound: push back and retry later.
    #[error("outgoing buffer full ({messages} messages, {bytes} bytes)")]
    OutgoingFull { messages: usize, bytes: usize },
    /// A precomputed message id that is already in use.
    #[error("message id {0} already in use")]
    DuplicateId(String),
}

/// A wrapped message ready to dispatch.
#[derive(Debug, Clone, PartialEq)]
pub struct Wrapped {
    pub message_id: MessageId,
    /// The encoded SDS message.
    pub bytes: Bytes,
}

/// What happened to one received message.
#[derive(Debug, Clone, PartialEq)]
pub enum ReceiveOutcome {
    /// Content delivered now (with any messages it released): see the `Delivered` events.
    Delivered,
    /// Content buffered until its dependencies arrive.
    Buffered,
    /// A sync message (acknowledgements processed).
    Sync,
    /// An ephemeral message, delivered at once.
    Ephemeral,
    /// Already delivered or buffered: dropped.
    Duplicate,
    /// Our own message coming back: ignored.
    Echo,
    /// Content under our sender id that we never sent: recorded as seen (it satisfies
    /// dependencies), not delivered.
    Spoofed,
    /// Another channel's message: ignored.
    WrongChannel,
    /// The incoming buffer is at its bound: dropped (the sender will retransmit).
    BufferFull,
    /// Malformed: dropped.
    Invalid(WireError),
}

/// Counters of one engine.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SdsStats {
    pub content_sent: u64,
    pub ephemeral_sent: u64,
    pub syncs_sent: u64,
    pub retransmissions: u64,
    /// Of those, re-sent at once because a peer's message showed it lacked the message (the
    /// store-aware timing; see `sds.retransmission.evidence` in docs/spec-map.md).
    pub evidence_resends: u64,
    /// Senders found retransmitting on the plain timing while ours is store-aware, so acknowledged
    /// promptly (`sds.sync.plain-peers` in docs/spec-map.md); counted each time one is marked anew.
    pub plain_peers_seen: u64,
    pub acknowledged: u64,
    pub gave_up: u64,
    pub delivered: u64,
    pub ephemeral_received: u64,
    pub syncs_received: u64,
    pub duplicates: u64,
    /// Of those, copies older than the local log, recognised by their sender's lamport order
    /// (see `sds.duplicates.stale` in docs/spec-map.md).
    pub stale_duplicates: u64,
    pub echoes: u64,
    pub wrong_channel: u64,
    pub invalid: u64,
    pub dropped_buffer_full: u64,
    pub dependencies_lost: u64,
    /// Of those, declared lost without an event: nothing waited for them, or every message
    /// waiting for them already had a loss reported (see `SdsEvent::DependencyLost`).
    pub losses_unreported: u64,
    pub forced_deliveries: u64,
    /// Acknowledgement syncs cancelled because another participant acknowledged the same messages.
    pub acks_suppressed: u64,
    /// Syncs sent at once because we owed [`MAX_SYNC_ACKS`](crate::sds::MAX_SYNC_ACKS)
    /// acknowledgements (a sustained stream).
    pub ack_syncs_full: u64,
    /// Causal-history entries and repair requests left out of syncs to keep them within the
    /// published size limit.
    pub sync_entries_left_out: u64,
    pub rebroadcasts: u64,
    /// Syncs sent answering a peer's repair request (carrying the hints it asked for).
    pub repairs: u64,
    /// Missing dependencies whose retrieval hint was learned after they were found missing.
    pub hints_learned: u64,
    /// Received lamport timestamps beyond `now + max_clock_skew_ms`, counted as that bound.
    pub lamport_clamped: u64,
    /// Content messages under our sender id that we never sent (recorded as seen, not delivered).
    pub echo_spoofs: u64,
    /// Received bloom filters with more bits set than an honest one can have, ignored where they
    /// would have acknowledged one of our messages.
    pub bloom_rejected: u64,
}
