//! 14/WAKU2-MESSAGE: the envelope every reliable-channel message travels in, and its deterministic hash.

use bytes::Bytes;
use prost::Message as _;
use sha2::{Digest, Sha256};

use super::{check_len, WireError, MAX_WAKU_MESSAGE_BYTES};

/// The reliable-channel wire-format marker carried in `meta` (22 ASCII bytes).
/// spec: wire.marker — ingress drops anything whose `meta` is not exactly these bytes.
pub const SPEC_MARKER: &[u8] = b"RELIABLE-CHANNEL-API/1";

/// A WakuMessage (14/WAKU2-MESSAGE). `Bytes` fields decode zero-copy from a `Bytes` input.
#[derive(Clone, PartialEq, prost::Message)]
pub struct WakuMessage {
    #[prost(bytes = "bytes", tag = "1")]
    pub payload: Bytes,
    #[prost(string, tag = "2")]
    pub content_topic: String,
    #[prost(uint32, optional, tag = "3")]
    pub version: Option<u32>,
    /// Unix time in nanoseconds.
    #[prost(sint64, optional, tag = "10")]
    pub timestamp: Option<i64>,
    #[prost(bytes = "bytes", optional, tag = "11")]
    pub meta: Option<Bytes>,
    #[prost(bytes = "bytes", optional, tag = "21")]
    pub rate_limit_proof: Option<Bytes>,
    #[prost(bool, optional, tag = "31")]
    pub ephemeral: Option<bool>,
}

impl WakuMessage {
    /// A reliable-channel message: `payload` on `content_topic`, version 0, the [`SPEC_MARKER`] in
    /// `meta`, sent at `now_ms` (Unix milliseconds; the wire carries nanoseconds), not ephemeral.
    pub fn reliable(content_topic: &str, payload: Bytes, now_ms: u64) -> Self {
        WakuMessage {
            payload,
            content_topic: content_topic.to_owned(),
            version: Some(0),
            timestamp: Some((now_ms as i64).saturating_mul(1_000_000)),
            meta: Some(Bytes::from_static(SPEC_MARKER)),
            rate_limit_proof: None,
            ephemeral: None,
        }
    }

    /// Decodes a serialized WakuMessage of at most [`MAX_WAKU_MESSAGE_BYTES`].
    pub fn decode_bytes(buf: Bytes) -> Result<Self, WireError> {
        check_len("WakuMessage", buf.len(), MAX_WAKU_MESSAGE_BYTES)?;
        Ok(WakuMessage::decode(buf)?)
    }

    /// True when `meta` is exactly the reliable-channel marker.
    pub fn has_spec_marker(&self) -> bool {
        self.meta.as_deref() == Some(SPEC_MARKER)
    }

    /// The deterministic message hash of this message on `pubsub_topic`.
    pub fn hash(&self, pubsub_topic: &str) -> MessageHash {
        message_hash(pubsub_topic, &self.payload, &self.content_topic, self.meta.as_deref().unwrap_or(&[]), self.timestamp.unwrap_or(0))
    }
}

/// A Waku message hash: the deterministic sha256 of [`message_hash`], the retrieval hint of SDS.
pub type MessageHash = [u8; 32];

/// spec: waku.message-hash — `sha256(pubsub_topic ‖ payload ‖ content_topic ‖ meta ‖ timestamp_be8)`.
pub fn message_hash(pubsub_topic: &str, payload: &[u8], content_topic: &str, meta: &[u8], timestamp_ns: i64) -> MessageHash {
    let mut h = Sha256::new();
    h.update(pubsub_topic.as_bytes());
    h.update(payload);
    h.update(content_topic.as_bytes());
    h.update(meta);
    h.update(timestamp_ns.to_be_bytes());
    h.finalize().into()
}

/// Renders a message hash the way Waku does: `0x` + lowercase hex.
pub fn hash_to_hex(hash: &MessageHash) -> String {
    let mut s = String::with_capacity(66);
    s.push_str("0x");
    s.push_str(&hex::encode(hash));
    s
}
