//! Exactly-once beyond the duplicate window (issue #10's regression, found by `benches/e2e.rs`):
//! the local log catches duplicates among the last `maxLocalHistory` arrivals, and at 35,000
//! messages/s that is 0.3 s, less than one acknowledgement timeout. A copy arriving later (a
//! retransmission whose acknowledgement was late, a store answer, a replay) was delivered again.
//! Now the sender's lamport order tells such a copy apart (`src/sds/engine/stale.rs`).
//!
//! Engines and channels on a virtual clock, deterministic. Every copy dropped as stale
//! (`stale_duplicates`) is one the code before the fix delivered a second time: the stale check is
//! reached only for a content message neither in the log nor waiting, which was delivered then.
//! With the stale check disabled all four tests fail (the simulation RECEIVED 12,361 payloads twice).

use std::collections::VecDeque;

use bytes::Bytes;
use reliable_channel::channel::{Channel, ChannelAction, ChannelConfig, ChannelEvent};
use reliable_channel::sds::{ReceiveOutcome, SdsConfig, SdsEngine, SdsEvent};
use reliable_channel::wire::{HistoryEntry, WakuMessage};

const T0: u64 = 1_700_000_000_000;
mod sds_support;
use sds_support::{content, CHANNEL};

fn drain(e: &mut SdsEngine) -> Vec<SdsEvent> {
    std::iter::from_fn(|| e.poll_event()).collect()
}

fn delivered(ev: &[SdsEvent]) -> Vec<String> {
    ev.iter()
        .filter_map(|e| match e {
            SdsEvent::Delivered(d) => Some(d.message_id.to_string()),
            _ => None,
        })
        .collect()
}

/// The sender retransmits every message (no acknowledgement reached it) after the receiver's log
/// of 16 moved on: none is delivered twice, and a retransmission still in the log is a plain
/// duplicate.
#[test]
fn retransmissions_after_the_log_window_are_not_delivered_again() {
    let config = SdsConfig { max_local_history: 16, ..SdsConfig::default() };
    let mut alice = SdsEngine::new(CHANNEL, "alice", SdsConfig::default(), T0, 1);
    let mut bob = SdsEngine::new(CHANNEL, "bob", config, T0, 2);
    let mut ids = Vec::new();
    for i in 0..100u64 {
        let w = alice.wrap_content(T0 + i, format!("m{i}").as_bytes(), None).unwrap();
        assert!(alice.on_dispatched(T0 + i, &w.message_id, None));
        assert_eq!(bob.receive(T0 + i, w.bytes, None), ReceiveOutcome::Delivered);
        ids.push(w.message_id.to_string());
    }
    assert_eq!(delivered(&drain(&mut bob)), ids);
    let later = T0 + 100 + SdsConfig::default().acknowledgement_timeout_ms;
    alice.handle_timeout(later);
    let copies: Vec<Bytes> = drain(&mut alice)
        .into_iter()
        .filter_map(|e| match e {
            SdsEvent::Retransmit { bytes, .. } => Some(bytes),
            _ => None,
        })
        .collect();
    assert_eq!(copies.len(), 100);
    for c in copies {
        assert_eq!(bob.receive(later, c, None), ReceiveOutcome::Duplicate);
    }
    assert_eq!(delivered(&drain(&mut bob)), Vec::<String>::new(), "nothing delivered twice");
    assert_eq!(bob.stats().duplicates, 100);
    assert_eq!(bob.stats().stale_duplicates, 84, "the 84 that left the log of 16");
    // alice's next message is new: delivered.
    let w = alice.wrap_content(later, b"next", None).unwrap();
    alice.on_dispatched(later, &w.message_id, None);
    assert_eq!(bob.receive(later, w.bytes, None), ReceiveOutcome::Delivered);
}

fn dep(id: &str, sender: &str) -> HistoryEntry {
    HistoryEntry { message_id: id.into(), retrieval_hint: None, sender_id: Some(sender.into()) }
}

/// A message names a dependency the log delivered long ago and forgot (e.g. a peer's causal
/// history, or its sender's head in a sync): the copy that comes back (from the store, a repair)
/// is not delivered again, and what waited for it is delivered at once, not after the dependency
/// timeout.
#[test]
fn an_old_dependency_fetched_again_is_not_delivered_twice_and_releases_its_waiters() {
    let config = SdsConfig { max_local_history: 8, ..SdsConfig::default() };
    let mut bob = SdsEngine::new(CHANNEL, "bob", config, T0, 2);
    let old = content("alice", "a0", T0, Vec::new());
    assert_eq!(bob.receive(T0, old.clone(), None), ReceiveOutcome::Delivered);
    let mut prev = "a0".to_owned();
    for i in 1..20u64 {
        let id = format!("a{i}");
        assert_eq!(bob.receive(T0 + i, content("alice", &id, T0 + i, vec![dep(&prev, "alice")]), None), ReceiveOutcome::Delivered);
        prev = id;
    }
    assert_eq!(delivered(&drain(&mut bob)).len(), 20);
    // carol's message names a0, which bob's log of 8 no longer holds: it waits for it.
    let now = T0 + 100;
    assert_eq!(bob.receive(now, content("carol", "c0", now, vec![dep("a0", "alice")]), None), ReceiveOutcome::Buffered);
    assert!(bob.is_missing("a0"));
    drain(&mut bob);
    // The copy of a0 arrives (a store answer): dropped as stale, c0 delivered.
    assert_eq!(bob.receive(now + 1, old, None), ReceiveOutcome::Duplicate);
    assert_eq!(delivered(&drain(&mut bob)), ["c0"]);
    assert_eq!(bob.stats().stale_duplicates, 1);
    assert!(!bob.is_missing("a0"));
    assert_eq!(bob.incoming_len().0, 0);
}

/// A sender's messages overtaken by nothing stay deliverable: the mark moves only with what the
/// log evicts of that sender, and other senders are not affected by it.
#[test]
fn new_messages_and_other_senders_are_not_stale() {
    let config = SdsConfig { max_local_history: 4, ..SdsConfig::default() };
    let mut bob = SdsEngine::new(CHANNEL, "bob", config, T0, 2);
    for i in 0..10u64 {
        assert_eq!(bob.receive(T0 + i, content("alice", &format!("a{i}"), T0 + 1_000 + i, Vec::new()), None), ReceiveOutcome::Delivered);
    }
    // alice's a0..a5 left the log (a6 with carol's message): carol's older lamports are hers alone.
    assert_eq!(bob.receive(T0 + 20, content("carol", "c0", T0, Vec::new()), None), ReceiveOutcome::Delivered);
    // alice's next message (a lamport above everything evicted of hers) is new.
    assert_eq!(bob.receive(T0 + 21, content("alice", "a10", T0 + 1_010, Vec::new()), None), ReceiveOutcome::Delivered);
    // One at or below it, not in the log, is a copy (or given up): dropped.
    assert_eq!(bob.receive(T0 + 22, content("alice", "a3", T0 + 1_003, Vec::new()), None), ReceiveOutcome::Duplicate);
    assert_eq!(bob.stats().stale_duplicates, 1);
}

// ---------------------------------------------------------------------------------------------
// The bench's traffic on the virtual clock: two channels, 1 KiB messages at 35 per ms, no loss,
// acknowledgement timeout 500 ms, acknowledgements flowing. Every WakuMessage reaches both
// channels (the sender's copy is its echo, as on the embedded network) in publication order,
// except during a blackout of the way back: what the receiver publishes then (its acknowledgement
// syncs) never reaches the sender, which retransmits what they acknowledged after the receiver's
// log moved on (the traffic shape that broke exactly-once).

const RATE_PER_MS: u64 = 35;
/// The receiver's publications are lost from this ms of the stream, for this long.
const BLACKOUT: (u64, u64) = (200, 400);

fn bench_channel(sender: &str, seed: u64) -> Channel {
    let json = r#"{"sdsConfig": {"acknowledgementTimeoutMs": 500, "syncIntervalMs": 0}, "rateLimitConfig": {"enabled": false},
                   "sendQueue": {"maxPendingChunks": 1048576, "maxPendingBytes": 17179869184}}"#;
    let config = ChannelConfig::default().with_json(Some(json)).expect("bench config");
    Channel::new(CHANNEL, "/exactly-once/1/bench/proto", sender, config, T0, seed)
}

#[test]
fn high_rate_stream_is_received_exactly_once() {
    const MESSAGES: u64 = 30_000;
    let mut chans = [bench_channel("alice", 1), bench_channel("bob", 2)];
    let mut received = vec![0u32; MESSAGES as usize];
    let mut inbox: VecDeque<(usize, WakuMessage)> = VecDeque::new();
    let mut sent = 0u64;
    let mut now = T0;
    let mut problems = Vec::new();
    let mut send_errors = 0u64;
    let blackout = T0 + BLACKOUT.0..T0 + BLACKOUT.0 + BLACKOUT.1;
    while now < T0 + 10_000 {
        for _ in 0..RATE_PER_MS {
            if sent < MESSAGES {
                let mut payload = vec![0x5a; 1024];
                payload[..8].copy_from_slice(&sent.to_le_bytes());
                chans[0].send(now, &format!("r{sent}"), &payload, false).expect("send");
                sent += 1;
            }
        }
        loop {
            for c in [0usize, 1] {
                if chans[c].next_deadline().is_some_and(|d| d <= now) {
                    chans[c].handle_timeout(now);
                }
                while let Some(a) = chans[c].poll_action() {
                    match a {
                        ChannelAction::Dispatch { token, message } => {
                            let hash = message.hash("/waku/2/rs/0/0");
                            chans[c].on_dispatch_result(now, token, Ok(Some(hash)));
                            inbox.push_back((c, message.clone()));
                            if c == 0 || !blackout.contains(&now) {
                                inbox.push_back((1 - c, message));
                            }
                        }
                        ChannelAction::Retrieve { .. } => {}
                        ChannelAction::Event(ChannelEvent::Received { payload, .. }) => {
                            let seq = u64::from_le_bytes(payload[..8].try_into().unwrap());
                            received[seq as usize] += 1;
                        }
                        ChannelAction::Event(e @ ChannelEvent::Lost { .. }) => problems.push(e),
                        ChannelAction::Event(ChannelEvent::SendError { .. }) => send_errors += 1,
                        ChannelAction::Event(_) => {}
                    }
                }
            }
            let Some((to, msg)) = inbox.pop_front() else { break };
            let hash = msg.hash("/waku/2/rs/0/0");
            chans[to].on_message(now, &msg, Some(hash));
        }
        now += 1;
    }
    let (a, b) = (chans[0].stats(), chans[1].stats());
    let twice = received.iter().filter(|&&n| n > 1).count();
    let missing = received.iter().filter(|&&n| n == 0).count();
    assert!(problems.is_empty(), "{problems:?}");
    assert_eq!((twice, missing), (0, 0), "received twice / never; sender {a:?}\nreceiver {b:?}");
    // The traffic shape that broke it: retransmissions of delivered messages after the log moved on.
    assert!(a.retransmissions > 0 && b.stale_duplicates > 0, "sender {a:?}\nreceiver {b:?}");
    // Acknowledgements keep up with the stream (issue #10): everything was received, so no send
    // ends in SEND_ERROR, and only what the blackout kept unacknowledged is retransmitted (once),
    // at most the messages sent during it and the acknowledgement batch before it.
    assert_eq!(send_errors, 0, "sender {a:?}\nreceiver {b:?}");
    let sent_in_blackout = RATE_PER_MS * BLACKOUT.1;
    assert!(a.retransmissions <= sent_in_blackout + reliable_channel::sds::MAX_SYNC_ACKS as u64, "sender {a:?}\nreceiver {b:?}");
    println!("retransmissions {} for {sent_in_blackout} sent in the blackout; sender {a:?}\nreceiver {b:?}", a.retransmissions);
}
