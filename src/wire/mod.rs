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
pub use sds_message::{HistoryEntry, HistoryEntryRef, MessageKind, SdsMessage, SdsMessageRef};
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
