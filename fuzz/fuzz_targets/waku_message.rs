//! `WakuMessage::decode_bytes` on arbitrary bytes: never panics, and what it accepts round-trips
//! (decode → encode → decode gives the same message, and the canonical encoding is a fixed
//! point, no longer than the input), with the same deterministic hash.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use prost::Message as _;
use reliable_channel::wire::WakuMessage;
use reliable_channel_fuzz::PUBSUB;

fuzz_target!(|data: &[u8]| {
    let Ok(m) = WakuMessage::decode_bytes(Bytes::copy_from_slice(data)) else { return };
    let _ = m.has_spec_marker();
    let encoded = m.encode_to_vec();
    assert!(encoded.len() <= data.len(), "canonical encoding ({} bytes) longer than its input ({} bytes)", encoded.len(), data.len());
    let again = WakuMessage::decode_bytes(Bytes::from(encoded.clone())).expect("a re-encoded WakuMessage decodes");
    assert_eq!(again, m);
    assert_eq!(again.encode_to_vec(), encoded);
    assert_eq!(again.hash(PUBSUB), m.hash(PUBSUB));
});
