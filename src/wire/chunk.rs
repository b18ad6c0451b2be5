//! MessageChunk: the segmentation frame inside SDS `content` (docs/wire-format.md §3).

use bytes::Bytes;
use prost::Message as _;

use super::{check_len, WireError, MAX_ID_BYTES};

/// One chunk of an application message. Every message is framed, a single-chunk one too.
#[derive(Clone, PartialEq, prost::Message)]
pub struct MessageChunk {
    /// Random UUID (v4), unique per chunk.
    #[prost(string, tag = "1")]
    pub chunk_id: String,
    /// `chunk_id` of chunk `chunk_index - 1`; empty for the first chunk.
    #[prost(string, tag = "2")]
    pub previous_chunk_id: String,
    /// 0-based position of this chunk.
    #[prost(uint32, tag = "3")]
    pub chunk_index: u32,
    /// Number of chunks − 1; the same in every chunk of the message.
    #[prost(uint32, tag = "4")]
    pub last_chunk_index: u32,
    /// The sender's channel-level RequestId of the send.
    #[prost(string, tag = "5")]
    pub request_id: String,
    /// This chunk's slice of the application payload.
    #[prost(bytes = "bytes", tag = "6")]
    pub payload: Bytes,
}

impl MessageChunk {
    /// Decodes a chunk and checks the structural rules that need no context:
    /// ids within [`MAX_ID_BYTES`], `chunk_index <= last_chunk_index`, a first chunk has no
    /// predecessor and a later one has one.
    pub fn decode_bytes(buf: Bytes) -> Result<Self, WireError> {
        let c = MessageChunk::decode(buf)?;
        check_len("chunk_id", c.chunk_id.len(), MAX_ID_BYTES)?;
        check_len("previous_chunk_id", c.previous_chunk_id.len(), MAX_ID_BYTES)?;
        check_len("request_id", c.request_id.len(), MAX_ID_BYTES)?;
        if c.chunk_id.is_empty() {
            return Err(WireError::Invalid("chunk_id (empty)"));
        }
        if c.chunk_index > c.last_chunk_index {
            return Err(WireError::Invalid("chunk_index (beyond last_chunk_index)"));
        }
        if (c.chunk_index == 0) != c.previous_chunk_id.is_empty() {
            return Err(WireError::Invalid("previous_chunk_id (chain)"));
        }
        Ok(c)
    }
}
