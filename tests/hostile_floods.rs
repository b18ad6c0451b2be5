//! Hostile input, each bound driven to its limit on purpose (`bounds_hold_under_targeted_floods`):
//! the victim of `tests/hostile.rs` (`tests/hostile_support/`) never grows past its configured
//! bounds.

use bytes::Bytes;
use prost::Message as _;

use reliable_channel::sds::HistoryStore;
use reliable_channel::wire::{HistoryEntry, SdsMessage, BLOOM_BYTES};

mod hostile_support;
use hostile_support::*;

// ------------------------------------------------------------------------ targeted floods

#[test]
fn bounds_hold_under_targeted_floods() {
    let mut h = Harness::new(7);
    let c = h.ch.config().clone();

    // Reassembly: many open partials of maximal claimed size; only `max_messages` stay open.
    for i in 0..40 {
        let m = content(&format!("p{}", i % 3), &format!("part-{i}"), T0 + i, vec![], first_chunk(&format!("big{i}"), 15, 65_536));
        h.feed(&m, true).unwrap();
    }
    let s = h.ch.stats();
    assert_eq!(s.reassembly_messages as usize, c.reassembly.max_messages);
    assert!(s.reassembly_bytes as usize <= c.reassembly.max_bytes);
    // A first chunk claiming u32::MAX chunks is refused outright.
    h.feed(&content("p0", "huge-last", T0, vec![], first_chunk("huge", u32::MAX, 65_536)), true).unwrap();

    // SDS incoming buffer: messages that all wait for dependencies that never come.
    for i in 0..200 {
        let dep = HistoryEntry { message_id: format!("never-{i}"), retrieval_hint: None, sender_id: Some("p1".into()) };
        let m = content("p1", &format!("waits-{i}"), T0 + 1_000 + i, vec![dep], first_chunk(&format!("w{i}"), 0, 60_000));
        h.feed(&m, true).unwrap();
    }
    let (msgs, bytes, missing) = h.ch.sds().incoming_len();
    assert_eq!(msgs, c.sds.max_incoming_messages, "the incoming buffer fills up to its bound and no further");
    assert!(bytes <= c.sds.max_incoming_bytes && missing <= c.sds.max_missing);
    assert!(h.ch.stats().dropped_buffer_full > 0);

    // Missing dependencies: one sync naming 1,024 unknown messages (the wire maximum).
    let deep: Vec<HistoryEntry> = (0..1_024)
        .map(|i| HistoryEntry { message_id: format!("ghost-{i}"), retrieval_hint: Some(Bytes::from(vec![1u8; 32])), sender_id: None })
        .collect();
    let sync = SdsMessage {
        sender_id: "p2".into(),
        message_id: "sync-deep".into(),
        channel_id: CHANNEL.into(),
        lamport_timestamp: Some(T0),
        causal_history: deep,
        bloom_filter: Some(Bytes::from(vec![0u8; BLOOM_BYTES])),
        repair_request: Vec::new(),
        content: None,
    };
    h.feed(&waku(Bytes::from(sync.encode_to_vec())), true).unwrap();
    assert_eq!(h.ch.sds().incoming_len().2, c.sds.max_missing);
    assert!(h.retrieve_requests <= c.sds.max_missing + 200, "retrievals only for tracked dependencies");

    // Local history: far more deliverable messages than it holds.
    for i in 0..1_000 {
        let m = content("p3", &format!("ok-{i}"), T0 + 10_000 + i, vec![], first_chunk(&format!("ok{i}"), 0, 10));
        h.feed(&m, true).unwrap();
    }
    assert_eq!(h.ch.sds().history().len(), c.sds.max_local_history);

    // Ephemeral flood with distinct ids, then the same one many times: delivered once.
    let before = h.received;
    for _ in 0..50 {
        let m = SdsMessage {
            sender_id: "p3".into(),
            message_id: "eph-1".into(),
            channel_id: CHANNEL.into(),
            lamport_timestamp: None,
            causal_history: vec![],
            bloom_filter: None,
            repair_request: Vec::new(),
            content: Some(Bytes::from(first_chunk("eph", 0, 5).encode_to_vec())),
        };
        h.feed(&waku(Bytes::from(m.encode_to_vec())), true).unwrap();
    }
    assert_eq!(h.received - before, 1, "a duplicated ephemeral message is received once");

    // Own sends while flooded: the pending bounds refuse rather than grow.
    for i in 0..200 {
        let _ = h.ch.send(h.now, &format!("mine-{i}"), &vec![1u8; 65_536], false);
        h.settle().unwrap();
    }
    let (pc, pb) = h.ch.pending();
    assert!(pc <= c.max_pending_chunks && pb <= c.max_pending_bytes);

    // Everything times out and drains.
    for _ in 0..30 {
        h.advance(600_000).unwrap();
    }
    let s = h.ch.stats();
    assert_eq!((s.reassembly_messages, s.reassembly_bytes), (0, 0));
    assert_eq!(h.ch.sds().incoming_len(), (0, 0, 0));
}
