//! The SDS `Message` and `HistoryEntry`, byte-compatible with @waku/sds 0.0.8 / @waku/proto 0.0.15.
//!
//! Field order and presence follow wire-format.md §2: prost emits fields in ascending tag order,
//! omits empty implicit-presence strings and emits every `optional` field that is `Some`, which is
//! exactly what the reference (protons) does.

use bytes::Bytes;
use prost::Message as _;

use super::{check_len, WireError, MAX_CAUSAL_HISTORY_ENTRIES, MAX_ID_BYTES, MAX_REPAIR_ENTRIES, MAX_RETRIEVAL_HINT_BYTES};

/// One entry of a causal history (or repair request).
#[derive(Clone, PartialEq, Eq, Hash, prost::Message)]
pub struct HistoryEntry {
    #[prost(string, tag = "1")]
    pub message_id: String,
    /// Where the message can be fetched from, e.g. its Waku message hash.
    #[prost(bytes = "bytes", optional, tag = "2")]
    pub retrieval_hint: Option<Bytes>,
    /// The original sender (used by SDS-R).
    #[prost(string, optional, tag = "3")]
    pub sender_id: Option<String>,
}

/// An SDS message.
#[derive(Clone, PartialEq, prost::Message)]
pub struct SdsMessage {
    #[prost(string, tag = "1")]
    pub sender_id: String,
    #[prost(string, tag = "2")]
    pub message_id: String,
    #[prost(string, tag = "3")]
    pub channel_id: String,
    #[prost(uint64, optional, tag = "10")]
    pub lamport_timestamp: Option<u64>,
    #[prost(message, repeated, tag = "11")]
    pub causal_history: Vec<HistoryEntry>,
    #[prost(bytes = "bytes", optional, tag = "12")]
    pub bloom_filter: Option<Bytes>,
    #[prost(message, repeated, tag = "13")]
    pub repair_request: Vec<HistoryEntry>,
    #[prost(bytes = "bytes", optional, tag = "20")]
    pub content: Option<Bytes>,
}

/// The three message classes, decided by field presence as the reference decoder does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageKind {
    /// lamport present, content non-empty.
    Content,
    /// lamport present, content absent or empty.
    Sync,
    /// lamport absent, content non-empty.
    Ephemeral,
}

impl SdsMessage {
    /// spec: sds.classes — classifies by presence; anything else is invalid.
    pub fn kind(&self) -> Result<MessageKind, WireError> {
        let has_content = self.content.as_ref().is_some_and(|c| !c.is_empty());
        match (self.lamport_timestamp.is_some(), has_content) {
            (true, true) => Ok(MessageKind::Content),
            (true, false) => Ok(MessageKind::Sync),
            (false, true) => Ok(MessageKind::Ephemeral),
            (false, false) => Err(WireError::Unclassifiable),
        }
    }

    /// Decodes and validates a message from the wire: every id within [`MAX_ID_BYTES`], history and
    /// repair lists within their caps, a classifiable kind and a non-empty message id.
    /// Zero-copy: `content` and `bloom_filter` are slices of `buf`.
    pub fn decode_bytes(buf: Bytes) -> Result<(Self, MessageKind), WireError> {
        let m = SdsMessage::decode(buf)?;
        let kind = m.validate()?;
        Ok((m, kind))
    }

    fn validate(&self) -> Result<MessageKind, WireError> {
        check_len("sender_id", self.sender_id.len(), MAX_ID_BYTES)?;
        check_len("message_id", self.message_id.len(), MAX_ID_BYTES)?;
        check_len("channel_id", self.channel_id.len(), MAX_ID_BYTES)?;
        check_len("causal_history", self.causal_history.len(), MAX_CAUSAL_HISTORY_ENTRIES)?;
        check_len("repair_request", self.repair_request.len(), MAX_REPAIR_ENTRIES)?;
        for e in self.causal_history.iter().chain(&self.repair_request) {
            e.validate()?;
        }
        if self.message_id.is_empty() {
            return Err(WireError::Invalid("message_id (empty)"));
        }
        self.kind()
    }
}

impl HistoryEntry {
    fn validate(&self) -> Result<(), WireError> {
        check_len("history message_id", self.message_id.len(), MAX_ID_BYTES)?;
        if self.message_id.is_empty() {
            return Err(WireError::Invalid("history message_id (empty)"));
        }
        if let Some(s) = &self.sender_id {
            check_len("history sender_id", s.len(), MAX_ID_BYTES)?;
        }
        if let Some(h) = &self.retrieval_hint {
            check_len("retrieval_hint", h.len(), MAX_RETRIEVAL_HINT_BYTES)?;
        }
        Ok(())
    }
}
