//! `MessageChunk::decode_bytes` on arbitrary bytes: never panics; what it accepts satisfies the
//! context-free chunk rules (checked here independently) and round-trips.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use prost::Message as _;
use reliable_channel::wire::{MessageChunk, MAX_ID_BYTES};

fuzz_target!(|data: &[u8]| {
    let Ok(c) = MessageChunk::decode_bytes(Bytes::copy_from_slice(data)) else { return };
    assert!(!c.chunk_id.is_empty() && c.chunk_id.len() <= MAX_ID_BYTES);
    assert!(c.previous_chunk_id.len() <= MAX_ID_BYTES && c.request_id.len() <= MAX_ID_BYTES);
    assert!(c.chunk_index <= c.last_chunk_index);
    assert_eq!(c.chunk_index == 0, c.previous_chunk_id.is_empty());
    let encoded = c.encode_to_vec();
    let again = MessageChunk::decode_bytes(Bytes::from(encoded.clone())).expect("a re-encoded chunk decodes");
    assert_eq!(again, c);
    assert_eq!(again.encode_to_vec(), encoded);
});
