//! Interop with the reference TypeScript SDS implementation, `@waku/sds@0.0.8` (npm).
//!
//! Each test spawns `node tests/interop/ref_peer.mjs`, a long-running process wrapping one
//! reference `MessageChannel` behind newline-delimited JSON (see the header of that file), and
//! exchanges real wire bytes with our [`SdsEngine`] and codecs:
//!
//! * `our_messages_decode_and_deliver_in_the_reference` — content (with history and bloom), a
//!   second content message referencing the first, sync and ephemeral messages produced by our
//!   engine are decoded by the reference with every field equal to ours, re-encode to the same
//!   bytes, are delivered by a reference channel, and the reference's bloom lookups on our filters
//!   agree with ours.
//! * `bloom_filters_are_bit_identical` — the same ids give byte-identical filters on both sides
//!   (non-ASCII ids included) and lookups agree on a dense filter (many false positives).
//! * `reference_messages_decode_and_deliver_in_ours` — messages produced by the reference decode
//!   in our codecs (field by field, byte-identical re-encoding) and are delivered by our engine,
//!   in order and out of order.
//! * `byte_identical_to_the_reference_with_reference_ids` — with `MessageIdScheme::ReferenceSha256`
//!   and the same lamport clock, our engine produces exactly the reference's bytes.
//! * `live_exchange_alice_ours_bob_reference` — several interleaved rounds in both directions,
//!   reordering, a duplicate, syncs and ephemerals: exactly-once causal delivery on both sides and
//!   acknowledgements exactly as the SDS rules (causal history, bloom threshold) predict.
//! * `live_exchange_with_a_short_reference_history` — the reference carries a one-entry causal
//!   history, so our engine acknowledges mostly through its bloom filters, again as predicted.
//!
//! Nothing sleeps: our engine runs on virtual time, with explicit `now` values starting at [`T0`].
//! The reference takes lamport timestamps from its own wall clock, so the two clocks just look
//! skewed. The reference only delivers buffered messages when `sweepIncomingBuffer` is called,
//! as apps do on a timer, and it ignores ephemeral messages without emitting an event.
//!
//! Needs Node (>= 20) and `npm ci --prefix tests/interop`. Without them the tests print
//! `SKIPPED` and pass, unless the `CI` environment variable is set, in which case they fail.
//!
//! The reference peer process wrapper and the small helpers are in tests/interop_reference_support/.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::time::{Duration, Instant};

use bytes::Bytes;
use prost::Message as _;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

mod node_peer;
use node_peer::{NodePeer, PeerScript};

use reliable_channel::sds::{HistoryStore, MessageIdScheme, ReceiveOutcome, SdsConfig, SdsEngine, SdsEvent, Wrapped};
use reliable_channel::wire::{BloomFilter, HistoryEntry, MessageKind, SdsMessage, BLOOM_BITS, BLOOM_BYTES, BLOOM_HASHES};

/// Virtual start time of our engines (Unix ms).
const T0: u64 = 1_700_000_000_000;
const CHANNEL: &str = "interop-channel";
const REPLY_TIMEOUT: Duration = Duration::from_secs(60);

mod interop_reference_support;
use interop_reference_support::*;

// ---------------------------------------------------------------------------------------------
// a. ours → reference
// ---------------------------------------------------------------------------------------------

#[test]
fn our_messages_decode_and_deliver_in_the_reference() {
    let Some(mut peer) = RefPeer::start() else { return };
    let mut rng = SmallRng::seed_from_u64(0xa);
    let mut carol = SdsEngine::new(CHANNEL, "carol", our_config(), T0, 1);
    let mut alice = SdsEngine::new(CHANNEL, "alice", our_config(), T0, 2);
    let (h_c1, h_a1, h_a2, h_c2) = (hint_for("c1"), hint_for("a1"), hint_for("a2"), hint_for("c2"));

    let c1 = send_ours(&mut carol, T0, b"carol says hi", &h_c1);
    assert_eq!(alice.receive(T0 + 1, c1.bytes.clone(), Some(h_c1.clone().into())), ReceiveOutcome::Delivered);
    drain(&mut alice);

    let a1 = alice.wrap_content(T0 + 2, b"first message of alice", None).unwrap();
    let a1_lamport = alice.lamport_timestamp();
    let a1_bloom = alice.bloom().as_bytes().to_vec();
    assert!(alice.on_dispatched(T0 + 2, &a1.message_id, Some(h_a1.clone().into())));
    let a2 = alice.wrap_content(T0 + 3, "second message of alice, ünïcödé ✓".as_bytes(), None).unwrap();
    let a2_lamport = alice.lamport_timestamp();
    let a2_bloom = alice.bloom().as_bytes().to_vec();
    assert!(alice.on_dispatched(T0 + 3, &a2.message_id, Some(h_a2.clone().into())));

    let c2 = send_ours(&mut carol, T0 + 4, b"carol again", &h_c2);
    assert_eq!(alice.receive(T0 + 4, c2.bytes.clone(), Some(h_c2.clone().into())), ReceiveOutcome::Delivered);
    drain(&mut alice);
    let (now, sync_id, sync, _) = fire_until_sync(&mut alice, T0 + 4);
    let sync_lamport = alice.lamport_timestamp();
    let eph = alice.wrap_ephemeral(now, b"ephemeral from alice", None).unwrap();

    // Content with history and bloom.
    let (m, kind) = decode_both(&mut peer, &a1.bytes, "a1");
    assert_eq!(kind, MessageKind::Content);
    assert_eq!((m.sender_id.as_str(), m.channel_id.as_str()), ("alice", CHANNEL));
    assert_eq!(m.message_id, &*a1.message_id);
    assert_eq!(m.lamport_timestamp, Some(a1_lamport));
    assert_eq!(our_entries(&m.causal_history), vec![entry(&c1.message_id, &h_c1, "carol")]);
    assert!(m.bloom_filter.as_deref() == Some(&a1_bloom[..]), "a1 carries our filter as it was when wrapped");
    assert_eq!(m.content.as_deref(), Some(&b"first message of alice"[..]));

    // A second content message referencing the first (with its retrieval hint and sender).
    let (m, kind) = decode_both(&mut peer, &a2.bytes, "a2");
    assert_eq!(kind, MessageKind::Content);
    assert_eq!(m.lamport_timestamp, Some(a2_lamport));
    let h = our_entries(&m.causal_history);
    assert!(h.contains(&entry(&a1.message_id, &h_a1, "alice")), "a2 must reference a1: {h:?}");
    assert!(h.contains(&entry(&c1.message_id, &h_c1, "carol")), "a2 history: {h:?}");
    assert!(m.bloom_filter.as_deref() == Some(&a2_bloom[..]));
    assert_bloom_agrees(&mut peer, &a2.bytes, &[&c1.message_id, &a1.message_id], &mut rng, "a2 bloom");

    // Carol's own message (another of our engines) and our sync.
    decode_both(&mut peer, &c1.bytes, "c1");
    decode_both(&mut peer, &c2.bytes, "c2");
    let (m, kind) = decode_both(&mut peer, &sync, "sync");
    assert_eq!(kind, MessageKind::Sync);
    assert_eq!(m.message_id, sync_id);
    assert_eq!(m.lamport_timestamp, Some(sync_lamport));
    assert!(m.content.as_ref().is_none_or(|c| c.is_empty()));
    let h = our_entries(&m.causal_history);
    assert!(h.contains(&entry(&a2.message_id, &h_a2, "alice")) && h.contains(&entry(&c2.message_id, &h_c2, "carol")), "sync history: {h:?}");
    assert!(m.bloom_filter.as_deref() == Some(alice.bloom().as_bytes()));
    assert_bloom_agrees(&mut peer, &sync, &[&c1.message_id, &a1.message_id, &a2.message_id, &c2.message_id], &mut rng, "sync bloom");

    // Ephemeral: no lamport, no history, no bloom.
    let (m, kind) = decode_both(&mut peer, &eph.bytes, "ephemeral");
    assert_eq!(kind, MessageKind::Ephemeral);
    assert_eq!((m.lamport_timestamp, m.bloom_filter.is_none(), m.causal_history.len()), (None, true, 0));
    assert_eq!(m.content.as_deref(), Some(&b"ephemeral from alice"[..]));

    // A reference channel receives everything and delivers the content messages.
    peer.new_channel("bob", None);
    for (w, h) in [(&c1, &h_c1), (&a1, &h_a1), (&a2, &h_a2), (&c2, &h_c2)] {
        let ev = peer.receive(&w.bytes, Some(h));
        assert_eq!(ref_ids(&ev, "sds:in:message-delivered"), vec![w.message_id.to_string()], "events: {ev:?}");
        assert!(ref_missing(&ev).is_empty());
    }
    let ev = peer.receive(&sync, None);
    let synced: Vec<_> = ev.iter().filter(|e| e.kind == "sds:in:sync-received").map(|e| str_of(&e.detail["messageId"])).collect();
    assert_eq!(synced, vec![sync_id.clone()]);
    assert!(ref_ids(&ev, "sds:in:message-delivered").is_empty());
    let ev = peer.receive(&eph.bytes, None);
    assert!(ev.is_empty(), "the reference handles ephemeral messages silently: {ev:?}");
    let st = peer.state();
    let history: BTreeSet<String> = st["history"].as_array().unwrap().iter().map(str_of).collect();
    let expected: BTreeSet<String> = [&c1, &a1, &a2, &c2].iter().map(|w| w.message_id.to_string()).collect();
    assert_eq!(history, expected, "reference local log");
    assert!(st["incoming"].as_array().unwrap().is_empty());
}

#[test]
fn bloom_filters_are_bit_identical() {
    let Some(mut peer) = RefPeer::start() else { return };
    let mut rng = SmallRng::seed_from_u64(0xb);
    // Same ids → same bytes (hash, double hashing, word order and bit order all agree).
    let mut ids = probe_ids(&mut rng, 1500);
    ids.extend((0..300).map(|i| format!("sync-{i:x}")));
    ids.extend(["ß", "Ωmega", "Ā", "\u{FFFF}", "𝄞 clef", "mixed ascii and ñ"].map(str::to_owned));
    let theirs = peer.bloom_build(&ids);
    let mut ours = BloomFilter::new();
    for id in &ids {
        ours.insert(id);
    }
    assert_eq!(theirs.len(), BLOOM_BYTES);
    if theirs != ours.as_bytes() {
        let first = theirs.iter().zip(ours.as_bytes()).position(|(a, b)| a != b).unwrap();
        // Narrow down which ids hash differently.
        let bad: Vec<&String> = ids
            .iter()
            .filter(|id| {
                let mut one = BloomFilter::new();
                one.insert(id);
                peer.bloom_build(std::slice::from_ref(id)) != one.as_bytes()
            })
            .collect();
        panic!("bloom filters differ (first differing byte {first}); ids hashed differently: {bad:?}");
    }

    // A dense filter (~half of all bits set): lookups of absent ids must agree, false positives included.
    let mut dense = BloomFilter::new();
    for i in 0..40_000 {
        dense.insert(&format!("dense-{i}"));
    }
    let probes = probe_ids(&mut rng, 400);
    let (r, theirs) = peer.bloom_lookup(dense.as_bytes(), &probes);
    assert_eq!(r["totalBits"].as_u64(), Some(BLOOM_BITS as u64));
    assert_eq!(r["kHashes"].as_u64(), Some(BLOOM_HASHES as u64));
    let ours: Vec<bool> = probes.iter().map(|id| dense.contains(id)).collect();
    for (i, id) in probes.iter().enumerate() {
        assert_eq!(theirs[i], ours[i], "dense filter: lookup of {id:?} differs (reference vs ours)");
    }
    let positives = ours.iter().filter(|b| **b).count();
    assert!(positives > 50 && positives < probes.len() - 50, "expected a mix of false positives, got {positives}/{}", probes.len());
}

// ---------------------------------------------------------------------------------------------
// b. reference → ours
// ---------------------------------------------------------------------------------------------

#[test]
fn reference_messages_decode_and_deliver_in_ours() {
    let Some(mut peer) = RefPeer::start() else { return };
    let mut rng = SmallRng::seed_from_u64(0xc);
    peer.new_channel("bob", None);
    let mut carol = SdsEngine::new(CHANNEL, "carol", our_config(), T0, 3);
    let h_c1 = hint_for("c1");
    let c1 = send_ours(&mut carol, T0, b"carol opens", &h_c1);
    let ev = peer.receive(&c1.bytes, Some(&h_c1));
    assert_eq!(ref_ids(&ev, "sds:in:message-delivered"), vec![c1.message_id.to_string()]);

    let (h_b1, h_b2) = (hint_for("b1"), hint_for("b2"));
    let (b1_content, b2_content) = (b"hello from bob".to_vec(), "bob again: ✓ ünïcödé".as_bytes().to_vec());
    let (b1, b1_bytes, ev) = peer.send(&b1_content, &h_b1);
    assert_eq!(ev.iter().filter(|e| e.kind == "sds:out:message-sent").count(), 1);
    let (b2, b2_bytes, _) = peer.send(&b2_content, &h_b2);
    let (sync_id, sync) = peer.send_sync().expect("the reference has history, so it sends a sync");
    let (eph_id, eph) = peer.send_ephemeral(b"bob ephemeral");
    // The reference's ids: sha256 of the content (opaque strings to us).
    assert_eq!(b1, sha256_hex(&b1_content));
    assert!(sync_id.starts_with("sync-"));

    let (m1, kind) = decode_both(&mut peer, &b1_bytes, "b1");
    assert_eq!(kind, MessageKind::Content);
    assert_eq!((m1.sender_id.as_str(), m1.message_id.as_str(), m1.channel_id.as_str()), ("bob", b1.as_str(), CHANNEL));
    assert_eq!(our_entries(&m1.causal_history), vec![entry(&c1.message_id, &h_c1, "carol")]);
    assert_eq!(m1.bloom_filter.as_ref().map(|b| b.len()), Some(BLOOM_BYTES));
    assert_eq!(m1.content.as_deref(), Some(&b1_content[..]));
    assert_bloom_agrees(&mut peer, &b1_bytes, &[&c1.message_id], &mut rng, "b1 bloom");

    let (m2, kind) = decode_both(&mut peer, &b2_bytes, "b2");
    assert_eq!(kind, MessageKind::Content);
    assert!(m2.lamport_timestamp > m1.lamport_timestamp);
    assert_eq!(our_entries(&m2.causal_history), vec![entry(&c1.message_id, &h_c1, "carol"), entry(&b1, &h_b1, "bob")]);
    assert_bloom_agrees(&mut peer, &b2_bytes, &[&c1.message_id, &b1], &mut rng, "b2 bloom");

    let (ms, kind) = decode_both(&mut peer, &sync, "reference sync");
    assert_eq!(kind, MessageKind::Sync);
    assert_eq!(ms.message_id, sync_id);
    assert!(ms.content.is_none());
    assert!(ms.lamport_timestamp > m2.lamport_timestamp);
    assert_eq!(our_entries(&ms.causal_history), vec![entry(&c1.message_id, &h_c1, "carol"), entry(&b1, &h_b1, "bob"), entry(&b2, &h_b2, "bob")]);
    assert_bloom_agrees(&mut peer, &sync, &[&c1.message_id, &b1, &b2], &mut rng, "reference sync bloom");

    let (me, kind) = decode_both(&mut peer, &eph, "reference ephemeral");
    assert_eq!(kind, MessageKind::Ephemeral);
    assert_eq!((me.message_id.as_str(), me.lamport_timestamp, me.bloom_filter.is_none()), (eph_id.as_str(), None, true));
    assert!(me.causal_history.is_empty());

    // Our engine receives them in order. The reference stamps lamports with its wall clock, and a
    // peer's lamport moves ours at most `max_clock_skew_ms` past our `now`: alice's clock is there.
    let t = m1.lamport_timestamp.unwrap();
    let mut alice = SdsEngine::new(CHANNEL, "alice", our_config(), T0, 4);
    assert_eq!(alice.receive(t + 1, c1.bytes.clone(), Some(h_c1.clone().into())), ReceiveOutcome::Delivered);
    drain(&mut alice);
    assert_eq!(alice.receive(t + 2, b1_bytes.clone(), Some(h_b1.clone().into())), ReceiveOutcome::Delivered);
    let ev = drain(&mut alice);
    match &ev[..] {
        [SdsEvent::Delivered(d)] => {
            assert_eq!((&*d.message_id, d.sender_id.as_str()), (b1.as_str(), "bob"));
            assert_eq!(d.content, b1_content);
            assert_eq!(Some(d.lamport_timestamp), m1.lamport_timestamp);
            assert_eq!(d.retrieval_hint.as_deref(), Some(&h_b1[..]));
        }
        other => panic!("expected one Delivered, got {other:?}"),
    }
    assert_eq!(alice.lamport_timestamp(), m1.lamport_timestamp.unwrap(), "lamport = max(ours, received) on delivery");
    assert_eq!(alice.receive(t + 3, b2_bytes.clone(), Some(h_b2.clone().into())), ReceiveOutcome::Delivered);
    assert_eq!(delivered_ids(&drain(&mut alice)), vec![b2.clone()]);
    assert_eq!(alice.receive(t + 4, sync.clone(), None), ReceiveOutcome::Sync);
    assert!(drain(&mut alice).iter().all(|e| !matches!(e, SdsEvent::Delivered(_) | SdsEvent::Missing(_))));
    assert_eq!(alice.receive(t + 5, eph.clone(), None), ReceiveOutcome::Ephemeral);
    match &drain(&mut alice)[..] {
        [SdsEvent::EphemeralDelivered { sender_id, content }] => {
            assert_eq!((sender_id.as_str(), &content[..]), ("bob", &b"bob ephemeral"[..]));
        }
        other => panic!("expected EphemeralDelivered, got {other:?}"),
    }
    assert_eq!(alice.receive(t + 6, b1_bytes.clone(), None), ReceiveOutcome::Duplicate);
    assert!(drain(&mut alice).is_empty());

    // And out of order: b2 waits for b1 (announced missing with the reference's hint and sender).
    let mut dave = SdsEngine::new(CHANNEL, "dave", our_config(), T0, 5);
    assert_eq!(dave.receive(T0 + 1, c1.bytes.clone(), Some(h_c1.clone().into())), ReceiveOutcome::Delivered);
    drain(&mut dave);
    assert_eq!(dave.receive(T0 + 2, b2_bytes.clone(), Some(h_b2.clone().into())), ReceiveOutcome::Buffered);
    match &drain(&mut dave)[..] {
        [SdsEvent::Missing(deps)] => {
            assert_eq!(deps.len(), 1);
            assert_eq!(&*deps[0].message_id, b1.as_str());
            assert_eq!(deps[0].retrieval_hint.as_deref(), Some(&h_b1[..]));
            assert_eq!(deps[0].sender_id.as_deref(), Some("bob"));
        }
        other => panic!("expected one Missing event, got {other:?}"),
    }
    assert_eq!(dave.receive(T0 + 3, b1_bytes.clone(), Some(h_b1.clone().into())), ReceiveOutcome::Delivered);
    assert_eq!(delivered_ids(&drain(&mut dave)), vec![b1.clone(), b2.clone()]);
}

/// With the reference's id scheme and the same lamport clock, our engine reproduces the
/// reference's messages byte for byte: content without and with history and bloom, and ephemeral.
#[test]
fn byte_identical_to_the_reference_with_reference_ids() {
    let Some(mut peer) = RefPeer::start() else { return };
    peer.new_channel("bob", None);
    let config = SdsConfig { message_id_scheme: MessageIdScheme::ReferenceSha256, always_send_bloom: true, ..our_config() };
    let mut ours: Option<SdsEngine> = None;
    for (i, text) in ["one", "two: ünïcödé", "three, with a longer payload ........................"].iter().enumerate() {
        let hint = hint_for(&format!("bob-{i}"));
        let (id, wire, _) = peer.send(text.as_bytes(), &hint);
        let (m, _) = SdsMessage::decode_bytes(wire.clone()).unwrap();
        let lamport = m.lamport_timestamp.unwrap();
        // Our clock is set so that max(now, ts + 1) lands on the reference's timestamp.
        let e = ours.get_or_insert_with(|| SdsEngine::new(CHANNEL, "bob", config.clone(), lamport - 1, 9));
        let now = if i == 0 { lamport - 1 } else { lamport };
        let w = e.wrap_content(now, text.as_bytes(), None).unwrap();
        assert_eq!(&*w.message_id, id.as_str());
        if w.bytes != wire {
            let mine = SdsMessage::decode_bytes(w.bytes.clone()).map(|x| x.0);
            panic!("message {i} differs from the reference's bytes\nreference: {m:?}\nours:      {mine:?}");
        }
        assert!(e.on_dispatched(now, &w.message_id, Some(hint.into())));
    }
    let (id, wire) = peer.send_ephemeral(b"ephemeral bytes");
    let e = ours.as_mut().unwrap();
    let w = e.wrap_ephemeral(e.lamport_timestamp(), b"ephemeral bytes", None).unwrap();
    assert_eq!(&*w.message_id, id.as_str());
    assert!(w.bytes == wire, "ephemeral differs: reference {} ours {}", hex::encode(&wire), hex::encode(&w.bytes));
}

// ---------------------------------------------------------------------------------------------
// c. live exchange
// ---------------------------------------------------------------------------------------------

/// The SDS acknowledgement rule, applied by the test to predict what a sender reports: an
/// outstanding message is acknowledged when it appears in a received message's causal history,
/// or when `threshold` received bloom filters contain it; below that it is possibly acknowledged.
struct AckModel {
    threshold: u32,
    outstanding: Vec<(String, u32)>,
    /// How many acknowledgements came from causal histories, from bloom filters, and how many
    /// possible acknowledgements were seen (to check that the test exercises every path).
    by_history: usize,
    by_bloom: usize,
    possibly: usize,
}

impl AckModel {
    fn new(threshold: u32) -> Self {
        AckModel { threshold, outstanding: Vec::new(), by_history: 0, by_bloom: 0, possibly: 0 }
    }

    fn observe(&mut self, m: &SdsMessage) -> (BTreeSet<String>, BTreeMap<String, u32>) {
        let mut acked = BTreeSet::new();
        let mut possibly = BTreeMap::new();
        for e in &m.causal_history {
            if let Some(i) = self.outstanding.iter().position(|(id, _)| *id == e.message_id) {
                acked.insert(self.outstanding.remove(i).0);
                self.by_history += 1;
            }
        }
        if let Some(bloom) = m.bloom_filter.as_deref().and_then(BloomFilter::from_bytes) {
            let th = self.threshold;
            let (by_bloom, n_possibly) = (&mut self.by_bloom, &mut self.possibly);
            self.outstanding.retain_mut(|(id, count)| {
                if !bloom.contains(id) {
                    return true;
                }
                *count += 1;
                if *count >= th {
                    acked.insert(id.clone());
                    *by_bloom += 1;
                    false
                } else {
                    possibly.insert(id.clone(), *count);
                    *n_possibly += 1;
                    true
                }
            });
        }
        (acked, possibly)
    }
}

/// One message in flight between the two peers.
#[derive(Clone)]
struct Packet {
    id: String,
    bytes: Bytes,
    hint: Option<Vec<u8>>,
}

/// Alice is our engine, Bob the reference; the test carries the packets.
struct Live {
    now: u64,
    alice: SdsEngine,
    bob: RefPeer,
    /// Predicts Alice's acknowledgements (her outstanding messages, observing Bob's messages).
    alice_model: AckModel,
    bob_model: AckModel,
    alice_sent: Vec<String>,
    bob_sent: Vec<String>,
    alice_delivered: Vec<String>,
    bob_delivered: Vec<String>,
    alice_acked: BTreeSet<String>,
    bob_acked: BTreeSet<String>,
    /// Content ids Alice has received (delivered or buffered): their re-arrival is a duplicate.
    alice_received: HashSet<String>,
    /// What Bob had delivered when he created each of his messages (its causal history covers it).
    bob_delivered_when_sent: HashMap<String, Vec<String>>,
    /// Bob's causal history is long enough to always carry his whole log.
    bob_history_covers_log: bool,
    alice_ephemeral_received: usize,
    started: Instant,
}

impl Live {
    /// Alice with our default config; Bob with the given reference causal-history size.
    fn start(bob_history_size: usize) -> Option<Live> {
        let started = Instant::now();
        let mut bob = RefPeer::start()?;
        bob.new_channel("bob", Some(bob_history_size));
        let config = our_config();
        let threshold = config.possible_acks_threshold;
        assert_eq!(threshold, 2, "the reference's default possibleAcksThreshold is 2");
        Some(Live {
            now: T0,
            alice: SdsEngine::new(CHANNEL, "alice", config, T0, 42),
            bob,
            alice_model: AckModel::new(threshold),
            bob_model: AckModel::new(2),
            alice_sent: Vec::new(),
            bob_sent: Vec::new(),
            alice_delivered: Vec::new(),
            bob_delivered: Vec::new(),
            alice_acked: BTreeSet::new(),
            bob_acked: BTreeSet::new(),
            alice_received: HashSet::new(),
            bob_delivered_when_sent: HashMap::new(),
            bob_history_covers_log: bob_history_size >= 100,
            alice_ephemeral_received: 0,
            started,
        })
    }

    fn tick(&mut self) -> u64 {
        self.now += 100;
        self.now
    }

    fn alice_send(&mut self, text: &str) -> Packet {
        let now = self.tick();
        let w = self.alice.wrap_content(now, text.as_bytes(), None).unwrap();
        let hint = hint_for(&w.message_id);
        assert!(self.alice.on_dispatched(now, &w.message_id, Some(hint.clone().into())));
        let ev = drain(&mut self.alice);
        assert!(ev.is_empty(), "unexpected events on send: {ev:?}");
        let id = w.message_id.to_string();
        self.alice_model.outstanding.push((id.clone(), 0));
        self.alice_sent.push(id.clone());
        Packet { id, bytes: w.bytes, hint: Some(hint) }
    }

    fn bob_send(&mut self, text: &str) -> Packet {
        let hint = hint_for(&format!("bob:{text}"));
        let (id, bytes, ev) = self.bob.send(text.as_bytes(), &hint);
        assert_eq!(ev.iter().map(|e| e.kind.as_str()).collect::<Vec<_>>(), ["sds:out:message-sent"]);
        self.bob_model.outstanding.push((id.clone(), 0));
        self.bob_sent.push(id.clone());
        self.bob_delivered_when_sent.insert(id.clone(), self.bob_delivered.clone());
        Packet { id, bytes, hint: Some(hint) }
    }

    /// Bob (reference) receives a packet; his acknowledgement events must match the model.
    fn deliver_to_bob(&mut self, p: &Packet) -> Vec<RefEvent> {
        let (m, kind) = SdsMessage::decode_bytes(p.bytes.clone()).unwrap();
        let (acked, possibly) = if kind == MessageKind::Ephemeral { Default::default() } else { self.bob_model.observe(&m) };
        let ev = self.bob.receive(&p.bytes, p.hint.as_deref());
        let got_acked: BTreeSet<String> = ref_ids(&ev, "sds:out:message-acknowledged").into_iter().collect();
        assert_eq!(got_acked, acked, "Bob's acknowledgements on receiving {} ({kind:?})", p.id);
        assert_eq!(ref_possibly(&ev), possibly, "Bob's possible acknowledgements on receiving {}", p.id);
        assert!(self.bob_acked.is_disjoint(&got_acked), "acknowledged twice");
        self.bob_acked.extend(got_acked);
        self.bob_delivered.extend(ref_ids(&ev, "sds:in:message-delivered"));
        ev
    }

    fn bob_sweep(&mut self) -> Vec<RefEvent> {
        let ev = self.bob.sweep();
        self.bob_delivered.extend(ref_ids(&ev, "sds:in:message-delivered"));
        ev
    }

    /// Alice (ours) receives a packet; her acknowledgement events must match the model, and
    /// everything Bob had delivered when he created the message must now be acknowledged.
    fn deliver_to_alice(&mut self, p: &Packet) -> (ReceiveOutcome, Vec<SdsEvent>) {
        let now = self.tick();
        let (m, kind) = SdsMessage::decode_bytes(p.bytes.clone()).unwrap();
        let duplicate = kind == MessageKind::Content && self.alice_received.contains(&p.id);
        let (acked, possibly) = if kind == MessageKind::Ephemeral || duplicate { Default::default() } else { self.alice_model.observe(&m) };
        if kind == MessageKind::Content {
            self.alice_received.insert(p.id.clone());
        }
        let outcome = self.alice.receive(now, p.bytes.clone(), p.hint.clone().map(Bytes::from));
        let ev = drain(&mut self.alice);
        let mut got_acked = BTreeSet::new();
        let mut got_possibly = BTreeMap::new();
        for e in &ev {
            match e {
                SdsEvent::Acknowledged { message_id } => assert!(got_acked.insert(message_id.to_string())),
                SdsEvent::PossiblyAcknowledged { message_id, count } => {
                    got_possibly.insert(message_id.to_string(), *count);
                }
                SdsEvent::Delivered(d) => self.alice_delivered.push(d.message_id.to_string()),
                SdsEvent::EphemeralDelivered { .. } => self.alice_ephemeral_received += 1,
                SdsEvent::Missing(_) => {}
                other => panic!("unexpected event on receiving {}: {other:?}", p.id),
            }
        }
        assert_eq!(got_acked, acked, "Alice's acknowledgements on receiving {} ({kind:?})", p.id);
        assert_eq!(got_possibly, possibly, "Alice's possible acknowledgements on receiving {}", p.id);
        assert!(self.alice_acked.is_disjoint(&got_acked), "acknowledged twice");
        self.alice_acked.extend(got_acked);
        // A reference causal history of 200 entries covers everything Bob had delivered.
        let covered = self.bob_delivered_when_sent.get(&p.id).filter(|_| self.bob_history_covers_log);
        if let Some(covered) = covered {
            for id in covered {
                assert!(self.alice_acked.contains(id) && !self.alice.is_outstanding(id), "{id} is in Bob's history but not acknowledged");
            }
        }
        if kind == MessageKind::Sync && self.bob_history_covers_log {
            // A reference sync covers everything Bob has delivered so far.
            for id in &self.bob_delivered {
                assert!(self.alice_acked.contains(id), "{id} (delivered by Bob) not acknowledged after his sync");
            }
        }
        (outcome, ev)
    }

    fn alice_sync(&mut self) -> Packet {
        let (now, id, bytes, other) = fire_until_sync(&mut self.alice, self.now);
        assert!(other.is_empty(), "unexpected timer events before the sync: {other:?}");
        self.now = now;
        Packet { id, bytes, hint: None }
    }

    fn bob_sync(&mut self) -> Packet {
        let (id, bytes) = self.bob.send_sync().expect("Bob has history");
        Packet { id, bytes, hint: None }
    }

    /// Final checks shared by the live scenarios.
    fn finish(mut self, name: &str) {
        // Exactly-once delivery, in each sender's order (every message references its predecessor).
        assert_eq!(self.alice_delivered, self.bob_sent, "Alice delivers each of Bob's messages once, in order");
        assert_eq!(self.bob_delivered, self.alice_sent, "Bob delivers each of Alice's messages once, in order");

        // Everything is acknowledged on both sides, and nothing is left in flight.
        let all_alice: BTreeSet<String> = self.alice_sent.iter().cloned().collect();
        let all_bob: BTreeSet<String> = self.bob_sent.iter().cloned().collect();
        assert_eq!(self.alice_acked, all_alice, "Alice's messages acknowledged by Alice");
        assert_eq!(self.bob_acked, all_bob, "Bob's messages acknowledged by Bob");
        assert_eq!(self.alice.outgoing_len(), (0, 0));
        assert!(self.alice_model.outstanding.is_empty() && self.bob_model.outstanding.is_empty());
        let st = self.bob.state();
        assert!(st["outgoing"].as_array().unwrap().is_empty(), "Bob's outgoing buffer: {}", st["outgoing"]);
        assert!(st["incoming"].as_array().unwrap().is_empty(), "Bob's incoming buffer: {}", st["incoming"]);
        // Both logs hold the same messages.
        let bob_log: BTreeSet<String> = st["history"].as_array().unwrap().iter().map(str_of).collect();
        let all: BTreeSet<String> = all_alice.union(&all_bob).cloned().collect();
        assert_eq!(bob_log, all);
        assert_eq!(self.alice.history().len(), all.len());
        // No retransmission, give-up or lost dependency was needed (virtual time stayed short).
        let stats = self.alice.stats();
        assert_eq!((stats.retransmissions, stats.gave_up, stats.dependencies_lost), (0, 0, 0));
        let (am, bm) = (&self.alice_model, &self.bob_model);
        eprintln!(
            "{name}: {} + {} content messages, virtual {} ms, wall {:?}; acks by history/bloom (+possibly): \
             ours {}/{} (+{}), reference {}/{} (+{})",
            self.alice_sent.len(),
            self.bob_sent.len(),
            self.now - T0,
            self.started.elapsed(),
            am.by_history,
            am.by_bloom,
            am.possibly,
            bm.by_history,
            bm.by_bloom,
            bm.possibly
        );
        self.now = 0;
    }
}

fn assert_delivered(o: &ReceiveOutcome) {
    assert_eq!(*o, ReceiveOutcome::Delivered);
}

#[test]
fn live_exchange_alice_ours_bob_reference() {
    let Some(mut l) = Live::start(200) else { return };

    // Round 1: ping-pong.
    let a1 = l.alice_send("a1: hello bob");
    l.deliver_to_bob(&a1);
    let b1 = l.bob_send("b1: hello alice");
    assert_delivered(&l.deliver_to_alice(&b1).0);

    // Round 2: concurrent sends, neither references the other.
    let a2 = l.alice_send("a2: concurrent");
    let b2 = l.bob_send("b2: concurrent");
    assert_delivered(&l.deliver_to_alice(&b2).0);
    l.deliver_to_bob(&a2);

    // Round 3.
    let b3 = l.bob_send("b3");
    assert_delivered(&l.deliver_to_alice(&b3).0);
    let a3 = l.alice_send("a3 ✓ ünïcödé");
    l.deliver_to_bob(&a3);

    // A sync from each side (ours from its ack-sync timer, in virtual time).
    let b4 = l.bob_send("b4: alice will answer with a sync");
    assert_delivered(&l.deliver_to_alice(&b4).0);
    let s = l.alice_sync();
    let ev = l.deliver_to_bob(&s);
    assert_eq!(ev.iter().filter(|e| e.kind == "sds:in:sync-received").count(), 1);
    let s = l.bob_sync();
    assert_eq!(l.deliver_to_alice(&s).0, ReceiveOutcome::Sync);

    // Bob → Alice reordered: b6 waits for b5, then both are delivered in causal order.
    let b5 = l.bob_send("b5");
    let b6 = l.bob_send("b6");
    let (o, ev) = l.deliver_to_alice(&b6);
    assert_eq!(o, ReceiveOutcome::Buffered);
    let missing: Vec<_> = ev
        .iter()
        .filter_map(|e| match e {
            SdsEvent::Missing(d) => Some(d.clone()),
            _ => None,
        })
        .flatten()
        .collect();
    assert_eq!(missing.len(), 1, "{missing:?}");
    assert_eq!(&*missing[0].message_id, b5.id.as_str());
    assert_eq!(missing[0].retrieval_hint.as_deref(), b5.hint.as_deref());
    assert_eq!(missing[0].sender_id.as_deref(), Some("bob"));
    let (o, ev) = l.deliver_to_alice(&b5);
    assert_delivered(&o);
    assert_eq!(delivered_ids(&ev), vec![b5.id.clone(), b6.id.clone()]);

    // Alice → Bob reordered: a5 waits for a4 (Bob sweeps his incoming buffer, as apps do).
    let a4 = l.alice_send("a4");
    let a5 = l.alice_send("a5");
    let ev = l.deliver_to_bob(&a5);
    assert!(ref_ids(&ev, "sds:in:message-delivered").is_empty());
    let missing = ref_missing(&ev);
    assert_eq!(missing.iter().map(ref_entry).collect::<Vec<_>>(), vec![entry(&a4.id, a4.hint.as_ref().unwrap(), "alice")]);
    let ev = l.deliver_to_bob(&a4);
    assert_eq!(ref_ids(&ev, "sds:in:message-delivered"), vec![a4.id.clone()]);
    let ev = l.bob_sweep();
    assert_eq!(ref_ids(&ev, "sds:in:message-delivered"), vec![a5.id.clone()]);
    assert!(ref_missing(&ev).is_empty());

    // Interleaved again, plus a duplicate at Alice and an ephemeral each way.
    let a6 = l.alice_send("a6");
    let b7 = l.bob_send("b7");
    l.deliver_to_bob(&a6);
    assert_delivered(&l.deliver_to_alice(&b7).0);
    let (o, ev) = l.deliver_to_alice(&b3);
    assert_eq!(o, ReceiveOutcome::Duplicate);
    assert!(ev.is_empty(), "a duplicate is dropped silently: {ev:?}");
    let now = l.tick();
    let eph = l.alice.wrap_ephemeral(now, b"alice ephemeral", None).unwrap();
    let ev = l.deliver_to_bob(&Packet { id: eph.message_id.to_string(), bytes: eph.bytes, hint: None });
    assert!(ev.is_empty(), "{ev:?}");
    let (id, bytes) = l.bob.send_ephemeral(b"bob ephemeral");
    assert_eq!(l.deliver_to_alice(&Packet { id, bytes, hint: None }).0, ReceiveOutcome::Ephemeral);
    assert_eq!(l.alice_ephemeral_received, 1);

    // A burst longer than our causal-history window (2): Bob sees the oldest of it only in
    // Alice's bloom filters, and acknowledges it at the second hit.
    let burst: Vec<Packet> = (9..12).map(|i| l.bob_send(&format!("b{i}: burst"))).collect();
    for p in &burst {
        assert_delivered(&l.deliver_to_alice(p).0);
    }
    let a8 = l.alice_send("a8");
    l.deliver_to_bob(&a8);
    let a9 = l.alice_send("a9");
    l.deliver_to_bob(&a9);
    assert!(l.bob_model.by_bloom >= 1, "the burst was acknowledged through bloom filters");

    // Final round and a last sync from each side.
    let a7 = l.alice_send("a7: last from alice");
    l.deliver_to_bob(&a7);
    let b8 = l.bob_send("b8: last from bob");
    assert_delivered(&l.deliver_to_alice(&b8).0);
    let s = l.alice_sync();
    l.deliver_to_bob(&s);
    let s = l.bob_sync();
    assert_eq!(l.deliver_to_alice(&s).0, ReceiveOutcome::Sync);

    assert!(l.alice_sent.len() >= 5 && l.bob_sent.len() >= 5);
    assert!(l.now - T0 < 20_000, "virtual time: {} ms", l.now - T0);
    l.finish("live exchange (reference history 200)");
}

/// Bob (reference) carries only his last log entry as causal history, so our engine has to
/// acknowledge most of its messages through his bloom filters (threshold 2), exactly as predicted.
#[test]
fn live_exchange_with_a_short_reference_history() {
    let Some(mut l) = Live::start(1) else { return };
    for round in 0..3 {
        let mut sent = Vec::new();
        for i in 0..3 {
            sent.push(l.alice_send(&format!("alice round {round} message {i}")));
        }
        for p in &sent {
            l.deliver_to_bob(p);
        }
        for i in 0..2 {
            let p = l.bob_send(&format!("bob round {round} message {i}"));
            assert_delivered(&l.deliver_to_alice(&p).0);
        }
    }
    let s = l.alice_sync();
    l.deliver_to_bob(&s);
    for _ in 0..2 {
        let s = l.bob_sync();
        assert_eq!(l.deliver_to_alice(&s).0, ReceiveOutcome::Sync);
    }
    assert!(l.alice_model.by_bloom >= 4, "expected bloom acknowledgements on our side, got {}", l.alice_model.by_bloom);
    assert!(l.alice_model.possibly >= 4);
    l.finish("live exchange (reference history 1)");
}
