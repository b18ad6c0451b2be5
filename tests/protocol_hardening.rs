//! Issue #10's SDS protocol holes (items 1–5, 9), each with a test that failed before its fix: a
//! long-lived or hostile channel never loses, duplicates or falsely acknowledges a message.
//! Engines on a virtual clock; messages crafted by hand where a peer misbehaves.

use bytes::Bytes;
use prost::Message as _;
use rand::rngs::SmallRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use reliable_channel::sds::{HistoryStore, ReceiveOutcome, SdsConfig, SdsEngine, SdsEvent};
use reliable_channel::wire::{HistoryEntry, SdsMessage};

const T0: u64 = 1_700_000_000_000;
mod sds_support;
use sds_support::{acked, content, CHANNEL};

fn drain(e: &mut SdsEngine) -> Vec<SdsEvent> {
    std::iter::from_fn(|| e.poll_event()).collect()
}

fn delivered_count(ev: &[SdsEvent]) -> usize {
    ev.iter().filter(|e| matches!(e, SdsEvent::Delivered(_))).count()
}

// ---------------------------------------------------------------------------------------------
// Item 4: exactly-once by arrival

/// Every message arrives twice, the copy `gap` arrivals after the original, with lamports in an
/// order chosen to defeat a lamport-ordered log (each new message sorts first, or at random).
fn duplicates_by_arrival(max_local_history: usize, messages: usize, gap: usize, decreasing: bool) -> usize {
    let config = SdsConfig { max_local_history, ..SdsConfig::default() };
    let mut e = SdsEngine::new(CHANNEL, "victim", config, T0, 1);
    let mut lamports: Vec<u64> = (0..messages as u64).map(|i| T0 + 1_000_000 - i).collect();
    if !decreasing {
        lamports.shuffle(&mut SmallRng::seed_from_u64(9));
    }
    let msgs: Vec<Bytes> = (0..messages).map(|i| content(&format!("peer{}", i % 7), &format!("m{i}"), lamports[i], Vec::new())).collect();
    let mut delivered = 0;
    for step in 0..messages + gap {
        if step < messages {
            e.receive(T0 + step as u64, msgs[step].clone(), None);
        }
        if step >= gap {
            assert_eq!(e.receive(T0 + step as u64, msgs[step - gap].clone(), None), ReceiveOutcome::Duplicate, "copy of m{}", step - gap);
        }
        delivered += delivered_count(&drain(&mut e));
    }
    delivered
}

#[test]
fn duplicates_are_caught_by_arrival_whatever_their_lamport() {
    assert_eq!(duplicates_by_arrival(16, 300, 8, true), 300);
    assert_eq!(duplicates_by_arrival(16, 300, 15, false), 300);
}

#[test]
fn duplicates_are_caught_across_the_default_log() {
    let n = SdsConfig::default().max_local_history;
    assert_eq!(duplicates_by_arrival(n, 12_000, n - 1, false), 12_000);
}

// ---------------------------------------------------------------------------------------------
// Item 3: lamport poisoning

#[test]
fn a_huge_lamport_is_delivered_but_moves_the_clock_at_most_the_skew() {
    let config = SdsConfig::default();
    let skew = config.max_clock_skew_ms;
    assert!(skew > 0 && skew <= reliable_channel::sds::MAX_CLOCK_SKEW_LIMIT_MS);
    let mut e = SdsEngine::new(CHANNEL, "victim", config, T0, 1);
    assert_eq!(e.receive(T0, content("mallory", "poison", u64::MAX, Vec::new()), None), ReceiveOutcome::Delivered);
    assert_eq!(delivered_count(&drain(&mut e)), 1, "the message itself is still delivered");
    assert_eq!(e.lamport_timestamp(), T0 + skew);
    assert_eq!(e.stats().lamport_clamped, 1);
    // Sends keep counting from there (no overflow, no wrap), and time catches up.
    let w = e.wrap_content(T0, b"x", None).unwrap();
    assert_eq!(SdsMessage::decode(w.bytes).unwrap().lamport_timestamp, Some(T0 + skew + 1));
    let later = T0 + 2 * skew;
    let w = e.wrap_content(later, b"y", None).unwrap();
    assert_eq!(SdsMessage::decode(w.bytes).unwrap().lamport_timestamp, Some(later));
    // An honest peer a little ahead moves the clock all the way.
    let ahead = later + skew / 2;
    e.receive(later, content("bob", "ahead", ahead, Vec::new()), None);
    assert_eq!(e.lamport_timestamp(), ahead);
    // And a poisoned message is never a reason to stall what follows it.
    let after = content("bob", "after", later, vec![HistoryEntry { message_id: "poison".into(), retrieval_hint: None, sender_id: None }]);
    assert_eq!(e.receive(later, after, None), ReceiveOutcome::Delivered);
}

#[test]
fn the_skew_is_a_channel_setting() {
    use reliable_channel::channel::ChannelConfig;
    let c = ChannelConfig::default().with_json(Some(r#"{"sdsConfig": {"maxClockSkewMs": 1000}}"#)).unwrap();
    assert_eq!(c.sds.max_clock_skew_ms, 1_000);
    assert_eq!(ChannelConfig::default().sds.max_clock_skew_ms, reliable_channel::sds::DEFAULT_MAX_CLOCK_SKEW_MS);
    assert!(ChannelConfig::default().with_json(Some(r#"{"sdsConfig": {"maxClockSkewMs": 3600001}}"#)).is_err(), "at most an hour");
}

// ---------------------------------------------------------------------------------------------
// Item 5: echo spoofing

fn dep(id: &str) -> Vec<HistoryEntry> {
    vec![HistoryEntry { message_id: id.into(), retrieval_hint: None, sender_id: None }]
}

#[test]
fn a_spoofed_echo_is_seen_not_delivered_and_releases_what_waits_for_it() {
    let mut e = SdsEngine::new(CHANNEL, "alice", SdsConfig::default(), T0, 1);
    // bob's message names mallory's message under alice's id; it arrives first and waits.
    assert_eq!(e.receive(T0, content("bob", "b1", T0, dep("spoof1")), None), ReceiveOutcome::Buffered);
    drain(&mut e);
    assert_eq!(e.receive(T0 + 1, content("alice", "spoof1", T0, Vec::new()), None), ReceiveOutcome::Spoofed);
    let ev = drain(&mut e);
    let got: Vec<String> = ev
        .iter()
        .filter_map(|x| match x {
            SdsEvent::Delivered(d) => Some(d.message_id.to_string()),
            _ => None,
        })
        .collect();
    assert_eq!(got, ["b1"], "released at once, the spoof itself not delivered");
    assert!(e.history().contains("spoof1") && e.bloom().contains("spoof1"));
    assert_eq!(e.stats().echo_spoofs, 1);
    // Once seen, later messages naming it do not wait either, and a second copy is an echo.
    assert_eq!(e.receive(T0 + 2, content("carol", "c1", T0, dep("spoof1")), None), ReceiveOutcome::Delivered);
    assert_eq!(e.receive(T0 + 3, content("alice", "spoof1", T0, Vec::new()), None), ReceiveOutcome::Echo);
    assert_eq!(e.stats().echo_spoofs, 1);
    assert!(!e.is_missing("spoof1"));
}

#[test]
fn a_genuine_echo_is_still_dropped_silently() {
    let mut e = SdsEngine::new(CHANNEL, "alice", SdsConfig::default(), T0, 1);
    let w = e.wrap_content(T0, b"mine", None).unwrap();
    assert_eq!(e.receive(T0, w.bytes.clone(), None), ReceiveOutcome::Echo, "before dispatch");
    assert!(e.on_dispatched(T0, &w.message_id, None));
    assert_eq!(e.receive(T0 + 1, w.bytes, None), ReceiveOutcome::Echo, "after dispatch");
    assert_eq!((e.stats().echoes, e.stats().echo_spoofs), (2, 0));
    assert_eq!(delivered_count(&drain(&mut e)), 0);
}

// ---------------------------------------------------------------------------------------------
// Items 1 and 2: the bloom filter describes a recent window; implausible filters are no evidence

/// The syncs `e` sends now (drained with everything else).
fn syncs(e: &mut SdsEngine, now: u64) -> Vec<Bytes> {
    e.sync_now(now);
    drain(e)
        .into_iter()
        .filter_map(|x| match x {
            SdsEvent::SendSync { bytes, .. } => Some(bytes),
            _ => None,
        })
        .collect()
}

fn sync_with_bloom(sender: &str, id: &str, bloom: Vec<u8>) -> Bytes {
    SdsMessage {
        sender_id: sender.into(),
        message_id: id.into(),
        channel_id: CHANNEL.into(),
        lamport_timestamp: Some(T0),
        bloom_filter: Some(bloom.into()),
        ..Default::default()
    }
    .encode_to_vec()
    .into()
}

#[test]
fn an_aged_filter_acknowledges_no_missed_message() {
    let mut bob = SdsEngine::new(CHANNEL, "bob", SdsConfig::default(), T0, 2);
    let mut alice = SdsEngine::new(CHANNEL, "alice", SdsConfig::default(), T0, 1);
    let mut now = T0;
    // bob has received 100,000 messages; one of alice's among the last few thousand.
    let mut early = None;
    for i in 0..100_000u32 {
        if i == 97_000 {
            let w = alice.wrap_content(now, b"received long ago", None).unwrap();
            assert!(alice.on_dispatched(now, &w.message_id, None));
            bob.receive(now, w.bytes, None);
            early = Some(w.message_id);
        }
        bob.receive(now, content(&format!("peer{}", i % 7), &format!("m{i}"), now, Vec::new()), None);
        if i % 1_000 == 0 {
            now += 1;
            drain(&mut bob);
        }
    }
    drain(&mut bob);
    // alice sends 200 messages bob never gets.
    let missed: Vec<String> = (0..200)
        .map(|i| {
            let w = alice.wrap_content(now, format!("missed {i}").as_bytes(), None).unwrap();
            assert!(alice.on_dispatched(now, &w.message_id, None));
            w.message_id.to_string()
        })
        .collect();
    drain(&mut alice);
    // Two of bob's syncs (the bloom threshold is two hits).
    let mut got = Vec::new();
    for k in 1..=2 {
        for s in syncs(&mut bob, now + k) {
            alice.receive(now + k, s, None);
        }
        got.extend(acked(&drain(&mut alice)));
    }
    let false_acks = got.iter().filter(|id| missed.contains(id)).count();
    assert_eq!(false_acks, 0, "messages bob never received were acknowledged");
    // What bob did receive, 3,000 messages ago, is acknowledged (his sync names alice's latest message).
    assert_eq!(got, [early.unwrap().to_string()]);
    assert!(missed.iter().all(|id| alice.is_outstanding(id)));
}

#[test]
fn a_peer_retransmitting_an_aged_message_is_acknowledged_again() {
    // A log longer than the filter's window: the duplicate is still recognised.
    let config = SdsConfig { max_local_history: 4 * reliable_channel::wire::BLOOM_GENERATION, ..SdsConfig::default() };
    let mut bob = SdsEngine::new(CHANNEL, "bob", config, T0, 2);
    bob.receive(T0, content("alice", "old", T0, Vec::new()), None);
    for i in 0..reliable_channel::wire::BLOOM_GENERATION * 2 {
        bob.receive(T0, content("carol", &format!("c{i}"), T0, Vec::new()), None);
    }
    drain(&mut bob);
    assert!(!bob.bloom().contains("old"), "out of the window");
    assert_eq!(bob.receive(T0 + 1, content("alice", "old", T0, Vec::new()), None), ReceiveOutcome::Duplicate);
    assert!(bob.bloom().contains("old"), "back in the window: bob's next sync acknowledges it");
}

#[test]
fn saturated_and_all_ones_filters_acknowledge_nothing() {
    let mut alice = SdsEngine::new(CHANNEL, "alice", SdsConfig::default(), T0, 1);
    let mut bob = SdsEngine::new(CHANNEL, "bob", SdsConfig::default(), T0, 2);
    let sent: Vec<_> = (0..6)
        .map(|i| {
            let w = alice.wrap_content(T0, format!("m{i}").as_bytes(), None).unwrap();
            assert!(alice.on_dispatched(T0, &w.message_id, None));
            w
        })
        .collect();
    drain(&mut alice);
    let mut rng = SmallRng::seed_from_u64(3);
    let saturated: Vec<u8> =
        (0..reliable_channel::wire::BLOOM_BYTES).map(|_| rand::Rng::gen::<u8>(&mut rng) | rand::Rng::gen::<u8>(&mut rng)).collect();
    for (k, bloom) in [vec![0xff; reliable_channel::wire::BLOOM_BYTES], vec![0xff; reliable_channel::wire::BLOOM_BYTES], saturated.clone(), saturated]
        .into_iter()
        .enumerate()
    {
        alice.receive(T0 + 1, sync_with_bloom("mallory", &format!("sync-{k}"), bloom), None);
    }
    assert!(acked(&drain(&mut alice)).is_empty());
    // Counted where a filter would have acknowledged something: the all-ones ones always, the
    // 75 % ones only when they happen to hit one of the six (0.75^10 per message).
    let rejected = alice.stats().bloom_rejected;
    assert!((2..=4).contains(&rejected), "{rejected}");
    assert!(sent.iter().all(|w| alice.is_outstanding(&w.message_id)));
    // An honest filter still acknowledges: bob received all six (his sync names them too).
    for w in &sent {
        bob.receive(T0 + 2, w.bytes.clone(), None);
    }
    drain(&mut bob);
    for s in syncs(&mut bob, T0 + 3) {
        alice.receive(T0 + 3, s, None);
    }
    assert_eq!(acked(&drain(&mut alice)).len(), 6);
    assert_eq!(alice.stats().bloom_rejected, rejected);
}

// ---------------------------------------------------------------------------------------------
// Item 9: the channel refuses oversized WakuMessages and messages without a sender id

fn single_chunk_waku(sender: &str, id: &str, payload_len: usize) -> reliable_channel::wire::WakuMessage {
    use reliable_channel::wire::{MessageChunk, WakuMessage};
    let chunk = MessageChunk {
        chunk_id: format!("{id}-chunk"),
        previous_chunk_id: String::new(),
        chunk_index: 0,
        last_chunk_index: 0,
        request_id: format!("{id}-request"),
        payload: Bytes::from(vec![7u8; payload_len]),
    };
    let sds = SdsMessage {
        sender_id: sender.into(),
        message_id: id.into(),
        channel_id: CHANNEL.into(),
        lamport_timestamp: Some(T0),
        content: Some(chunk.encode_to_vec().into()),
        ..Default::default()
    };
    WakuMessage::reliable("/hardening/1/chat/proto", sds.encode_to_vec().into(), 0)
}

#[test]
fn the_channel_refuses_oversized_and_senderless_messages() {
    use reliable_channel::channel::{Channel, ChannelAction, ChannelConfig, ChannelEvent};
    use reliable_channel::wire::MAX_WAKU_MESSAGE_BYTES;
    let mut ch = Channel::new(CHANNEL, "/hardening/1/chat/proto", "victim", ChannelConfig::default(), T0, 1);
    let mut received = Vec::new();
    let pump = |ch: &mut Channel, received: &mut Vec<String>| {
        while let Some(a) = ch.poll_action() {
            if let ChannelAction::Event(ChannelEvent::Received { sender_id, .. }) = a {
                received.push(sender_id);
            }
        }
    };
    let big = single_chunk_waku("mallory", "big", MAX_WAKU_MESSAGE_BYTES);
    assert!(prost::Message::encoded_len(&big) > MAX_WAKU_MESSAGE_BYTES);
    ch.on_message(T0, &big, None);
    ch.on_message(T0, &single_chunk_waku("", "nobody", 16), None);
    pump(&mut ch, &mut received);
    assert!(received.is_empty(), "{received:?}");
    assert_eq!(ch.stats().dropped_invalid, 2);
    assert_eq!(ch.sds().history().len(), 0, "nothing held");
    // Within the limit, with a sender: received.
    ch.on_message(T0, &single_chunk_waku("bob", "fine", 100_000), None);
    pump(&mut ch, &mut received);
    assert_eq!(received, ["bob"]);
}
