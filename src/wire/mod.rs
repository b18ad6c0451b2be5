//! Wire codecs: the exact bytes of every layer (see `docs/wire-format.md`).
//!
//! ```text
//! WakuMessage   (waku_message.rs)  meta = "RELIABLE-CHANNEL-API/1", payload = E(sds)
//!   SDS Message (sds_message.rs)   byte-compatible with @waku/sds 0.0.8; decoded into `SdsMessage`,
//!                                  encoded on the send path from a borrowed `SdsMessageRef`
//!     MessageChunk (chunk.rs)      segmentation frame
//! bloom.rs: the js-waku-compatible bloom filter carried in SDS field 12.
//! keccak.rs: Keccak-256 of SDS message ids (AVX-512 permutation picked at run time).
//! ```
//!
//! Decoders never panic, never trust a length they have not checked, and return [`WireError`].

pub mod bloom;
pub mod chunk;
pub mod keccak;
pub mod sds_message;
pub mod waku_message;

pub use bloom::{BloomFilter, BloomView, RollingBloom, BLOOM_BITS, BLOOM_BYTES, BLOOM_GENERATION, BLOOM_HASHES, MAX_HONEST_BLOOM_ONES};
pub use chunk::MessageChunk;
pub use sds_message::{entry_field_len, fit_entries, HistoryEntry, HistoryEntryRef, MessageKind, SdsMessage, SdsMessageRef};
pub use waku_message::{message_hash, MessageHash, WakuMessage, SPEC_MARKER};

/// Longest message id, sender id or channel id accepted from the wire, in bytes. Ids are opaque
/// strings; the bound keeps causal-history memory and outgoing message sizes predictable.
pub const MAX_ID_BYTES: usize = 256;
/// Most causal-history entries accepted in one received SDS message (the reference sends 200 by default).
pub const MAX_CAUSAL_HISTORY_ENTRIES: usize = 1024;
/// Most repair-request entries accepted in one received SDS message.
pub const MAX_REPAIR_ENTRIES: usize = 64;
/// Longest retrieval hint accepted (a Waku message hash is 32 bytes).
pub const MAX_RETRIEVAL_HINT_BYTES: usize = 128;
/// Largest serialized WakuMessage on The Waku Network (150 KiB).
pub const MAX_WAKU_MESSAGE_BYTES: usize = 153_600;
/// Bytes reserved for the host's encryption hook to expand one message (nonce, tag, framing).
pub const ENCRYPTION_OVERHEAD_BUDGET: usize = 1_024;
/// Most bytes a WakuMessage built by this library adds around its payload: content topic (at
/// most [`MAX_ID_BYTES`]), version, timestamp, the meta marker, the ephemeral flag, and the
/// payload's own key and length.
pub const MAX_WAKU_ENVELOPE_BYTES: usize = (MAX_ID_BYTES + 3) + 6 + 11 + (SPEC_MARKER.len() + 2) + 3 + 5;
/// spec: wire.published-size — the largest SDS message without content (a sync, a repair
/// answer) the library publishes: with the WakuMessage around it and the encryption budget it
/// fits [`MAX_WAKU_MESSAGE_BYTES`]. A sync's lists are truncated to fit (`crate::sds`); content
/// messages fit by the chunk size, which the channel configuration checks against the worst case.
pub const MAX_PUBLISHED_SDS_BYTES: usize = MAX_WAKU_MESSAGE_BYTES - ENCRYPTION_OVERHEAD_BUDGET - MAX_WAKU_ENVELOPE_BYTES;

/// Why bytes from the wire were refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// The protobuf encoding itself is malformed.
    #[error("malformed protobuf: {0}")]
    Protobuf(String),
    /// The input exceeds a size limit.
    #[error("{what} too large: {len} > {max}")]
    TooLarge { what: &'static str, len: usize, max: usize },
    /// The message is neither content, sync nor ephemeral.
    #[error("SDS message is neither content, sync nor ephemeral")]
    Unclassifiable,
    /// A field violates the format's rules.
    #[error("invalid {0}")]
    Invalid(&'static str),
}

impl From<prost::DecodeError> for WireError {
    fn from(e: prost::DecodeError) -> Self {
        WireError::Protobuf(e.to_string())
    }
}

pub(crate) fn check_len(what: &'static str, len: usize, max: usize) -> Result<(), WireError> {
    if len > max {
        Err(WireError::TooLarge { what, len, max })
    } else {
        Ok(())
    }
}
