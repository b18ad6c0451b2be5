//! `SdsMessage::decode_bytes` on arbitrary bytes: never panics; what it accepts satisfies every
//! rule it claims to check (checked here independently), its bloom filter can be viewed and
//! probed, and it round-trips (decode → encode → decode equal, same kind, canonical bytes).
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use prost::Message as _;
use reliable_channel::wire::bloom::positions;
use reliable_channel::wire::{
    BloomView, MessageKind, SdsMessage, MAX_CAUSAL_HISTORY_ENTRIES, MAX_ID_BYTES, MAX_REPAIR_ENTRIES, MAX_RETRIEVAL_HINT_BYTES,
};

fuzz_target!(|data: &[u8]| {
    let Ok((m, kind)) = SdsMessage::decode_bytes(Bytes::copy_from_slice(data)) else { return };
    // The validation, restated.
    assert!(!m.message_id.is_empty() && m.message_id.len() <= MAX_ID_BYTES);
    assert!(m.sender_id.len() <= MAX_ID_BYTES && m.channel_id.len() <= MAX_ID_BYTES);
    assert!(m.causal_history.len() <= MAX_CAUSAL_HISTORY_ENTRIES && m.repair_request.len() <= MAX_REPAIR_ENTRIES);
    for e in m.causal_history.iter().chain(&m.repair_request) {
        assert!(!e.message_id.is_empty() && e.message_id.len() <= MAX_ID_BYTES);
        assert!(e.sender_id.as_ref().is_none_or(|s| s.len() <= MAX_ID_BYTES));
        assert!(e.retrieval_hint.as_ref().is_none_or(|h| h.len() <= MAX_RETRIEVAL_HINT_BYTES));
    }
    let has_content = m.content.as_ref().is_some_and(|c| !c.is_empty());
    let expected = match (m.lamport_timestamp.is_some(), has_content) {
        (true, true) => MessageKind::Content,
        (true, false) => MessageKind::Sync,
        (false, true) => MessageKind::Ephemeral,
        (false, false) => panic!("an unclassifiable message was accepted"),
    };
    assert_eq!(kind, expected);
    assert_eq!(m.kind(), Ok(kind));
    if let Some(view) = m.bloom_filter.as_deref().and_then(BloomView::new) {
        for e in &m.causal_history {
            let _ = view.contains_positions(&positions(&e.message_id));
        }
        let _ = view.contains_positions(&positions(&m.message_id));
    }
    let encoded = m.encode_to_vec();
    let (again, again_kind) = SdsMessage::decode_bytes(Bytes::from(encoded.clone())).expect("a re-encoded SDS message decodes");
    assert_eq!(again, m);
    assert_eq!(again_kind, kind);
    assert_eq!(again.encode_to_vec(), encoded);
});
