//! Outgoing side: one application payload → the encoded, chained `MessageChunk` frames of one send.
//!
//! spec: segmentation.chain — chunk ids are random UUIDs (v4) drawn from the caller's rng, so a
//! test with a seeded rng gets the same frames every run; a chunk names its predecessor's id, the
//! first chunk names none. The frames are returned in order and are handed to SDS one by one.

use prost::Message as _;
use rand::RngCore;

use super::{MAX_PAYLOAD_BYTES, REQUEST_ID_BYTES};
use crate::wire::{MessageChunk, MAX_ID_BYTES};

/// Why a payload cannot be segmented.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SegmentError {
    /// Nothing to send.
    #[error("payload is empty")]
    Empty,
    /// spec: segmentation.max-size — larger sends are refused with an error to the caller.
    #[error("payload too large: {len} bytes > {max}")]
    TooLarge { len: usize, max: usize },
    /// A chunk size of zero cannot carry anything.
    #[error("invalid chunk size: must be at least 1 byte")]
    InvalidChunkSize,
    /// Receivers refuse ids longer than [`MAX_ID_BYTES`]; frames carrying one would be dropped.
    #[error("request id too long: {len} bytes > {max}")]
    RequestIdTooLong { len: usize, max: usize },
}

/// Number of chunks a payload of `len` bytes takes with chunks of `chunk_size` bytes: at least one
/// (every message is framed, a 0-length one too); 0 when `chunk_size` is 0 (invalid).
pub fn chunk_count(len: usize, chunk_size: usize) -> usize {
    if chunk_size == 0 {
        return 0;
    }
    len.div_ceil(chunk_size).max(1)
}

/// A fresh RequestId: [`REQUEST_ID_BYTES`] random bytes as lowercase hex (docs/wire-format.md §4).
pub fn new_request_id(rng: &mut impl RngCore) -> String {
    let mut bytes = [0u8; REQUEST_ID_BYTES];
    rng.fill_bytes(&mut bytes);
    hex::encode(bytes)
}

fn new_chunk_id(rng: &mut impl RngCore) -> String {
    let mut bytes = [0u8; 16];
    rng.fill_bytes(&mut bytes);
    uuid::Builder::from_random_bytes(bytes).into_uuid().to_string()
}

/// Splits `payload` into chunks of at most `chunk_size` bytes and returns the encoded
/// `MessageChunk` frames in order (docs/wire-format.md §3).
///
/// spec: segmentation.max-size — refuses an empty payload and one over [`MAX_PAYLOAD_BYTES`].
pub fn segment(payload: &[u8], chunk_size: usize, request_id: &str, rng: &mut impl RngCore) -> Result<Vec<Vec<u8>>, SegmentError> {
    if payload.is_empty() {
        return Err(SegmentError::Empty);
    }
    if payload.len() > MAX_PAYLOAD_BYTES {
        return Err(SegmentError::TooLarge { len: payload.len(), max: MAX_PAYLOAD_BYTES });
    }
    if chunk_size == 0 {
        return Err(SegmentError::InvalidChunkSize);
    }
    if request_id.len() > MAX_ID_BYTES {
        return Err(SegmentError::RequestIdTooLong { len: request_id.len(), max: MAX_ID_BYTES });
    }
    let n = chunk_count(payload.len(), chunk_size);
    // n <= MAX_PAYLOAD_BYTES, so every index fits in u32.
    let last = u32::try_from(n - 1).map_err(|_| SegmentError::TooLarge { len: payload.len(), max: MAX_PAYLOAD_BYTES })?;
    let mut frames = Vec::with_capacity(n);
    let mut previous = String::new();
    for (index, slice) in (0u32..).zip(payload.chunks(chunk_size)) {
        let chunk_id = new_chunk_id(rng);
        let chunk = MessageChunk {
            chunk_id: chunk_id.clone(),
            // spec: segmentation.chain — empty for the first chunk.
            previous_chunk_id: std::mem::replace(&mut previous, chunk_id),
            chunk_index: index,
            last_chunk_index: last,
            request_id: request_id.to_owned(),
            payload: bytes::Bytes::copy_from_slice(slice),
        };
        frames.push(chunk.encode_to_vec());
    }
    Ok(frames)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{rngs::SmallRng, SeedableRng};

    #[test]
    fn chunk_count_edges() {
        assert_eq!(chunk_count(0, 10), 1);
        assert_eq!(chunk_count(1, 10), 1);
        assert_eq!(chunk_count(10, 10), 1);
        assert_eq!(chunk_count(11, 10), 2);
        assert_eq!(chunk_count(5, 0), 0);
        assert_eq!(chunk_count(MAX_PAYLOAD_BYTES, 1), MAX_PAYLOAD_BYTES);
    }

    #[test]
    fn chunk_ids_are_v4_uuids_and_deterministic_per_seed() {
        let a = new_chunk_id(&mut SmallRng::seed_from_u64(1));
        let b = new_chunk_id(&mut SmallRng::seed_from_u64(1));
        assert_eq!(a, b);
        let u = uuid::Uuid::parse_str(&a).unwrap();
        assert_eq!(u.get_version_num(), 4);
        assert_eq!(a.len(), 36);
    }

    #[test]
    fn refusals() {
        let mut rng = SmallRng::seed_from_u64(2);
        assert_eq!(segment(b"", 10, "r", &mut rng), Err(SegmentError::Empty));
        assert_eq!(segment(b"x", 0, "r", &mut rng), Err(SegmentError::InvalidChunkSize));
        let long = "r".repeat(MAX_ID_BYTES + 1);
        assert!(matches!(segment(b"x", 1, &long, &mut rng), Err(SegmentError::RequestIdTooLong { .. })));
    }
}
