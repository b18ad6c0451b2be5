//! Hostile input: random, forged and mutated WakuMessages / SDS messages / chunks fed to a
//! [`Channel`] never panic and never grow its memory past the configured bounds.
//!
//! The victim runs with tight bounds (4 partial messages, 32 waiting SDS messages, 128 missing
//! dependencies, 256 log entries, 64 pending chunks, a small RLN budget) and, after every step,
//! [`check_bounds`] compares `stats()` / `sds()` with its effective configuration. Steps mix
//! hostile traffic with the victim's own sends, dispatch results (also for unknown tokens),
//! store answers and timers (including large clock jumps), so that every buffer is exercised
//! while it is being attacked.
//!
//! * `structured_hostile_traffic` (proptest): hand-built SDS messages and chunks — forged chunk
//!   chains, huge or mismatched `last_chunk_index`, sizes inconsistent with the chunk size,
//!   short/absent/all-zero/all-one bloom filters, enormous (over-limit) ids, deep bogus causal
//!   histories and dependency cycles, lamport extremes, spoofed echoes, wrong channel, wrong
//!   marker or content topic, ephemeral floods, undecodable content, raw garbage;
//! * `mutated_honest_traffic` (seeded): the WakuMessages of an honest peer's real multi-chunk
//!   sends, replayed, reordered, and mutated at the byte level (bit flips, truncation, splices)
//!   and at the field level (decoded, one field changed, re-encoded); every other round with an
//!   encryption hook on both sides (mutated ciphertexts fail decryption, resealed ones go on);
//! * `bounds_hold_under_targeted_floods` (`tests/hostile_floods.rs`): each bound driven to its limit.
//!
//! `HOSTILE_ROUNDS=n` sets the rounds of the mutation test (default 60); `HOSTILE_STATS=1`
//! prints, per proptest case, how deep the structured traffic got (received, partials, waiting).

use bytes::Bytes;
use proptest::collection::vec;
use proptest::prelude::*;
use prost::Message as _;
use rand::rngs::SmallRng;
use rand::{Rng, RngCore, SeedableRng};
use std::sync::Arc;

use reliable_channel::channel::{Channel, ChannelAction, ChannelConfig, CryptoError, Encryption};
use reliable_channel::sds::HistoryStore;
use reliable_channel::wire::{HistoryEntry, MessageChunk, SdsMessage, WakuMessage, BLOOM_BYTES, MAX_ID_BYTES};

mod hostile_support;
use hostile_support::*;

// ------------------------------------------------------------------------------ strategies

/// Ids from a small pool (so that histories, chunks and chains collide with each other, form
/// cycles and reference real messages) or hostile ones: empty, non-ASCII, at and over the limit.
fn id() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => (0u8..12).prop_map(|i| format!("m{i}")),
        2 => "[0-9a-f]{64}",
        1 => Just(String::new()),
        1 => "\\PC{1,6}",
        1 => (MAX_ID_BYTES - 1..=MAX_ID_BYTES + 2).prop_map(|n| "x".repeat(n)),
        1 => Just("y".repeat(100_000)),
    ]
}

fn sender() -> impl Strategy<Value = String> {
    prop_oneof![4 => (0u8..4).prop_map(|i| format!("peer{i}")), 1 => Just(VICTIM.to_owned()), 1 => id()]
}

fn hint() -> impl Strategy<Value = Option<Bytes>> {
    prop_oneof![
        3 => Just(None),
        2 => any::<[u8; 32]>().prop_map(|h| Some(Bytes::copy_from_slice(&h))),
        1 => (0usize..300, any::<u8>()).prop_map(|(n, s)| Some(fill(n, s))),
    ]
}

fn history() -> impl Strategy<Value = Vec<HistoryEntry>> {
    let entry = || {
        (id(), hint(), proptest::option::of(sender())).prop_map(|(message_id, retrieval_hint, sender_id)| HistoryEntry {
            message_id,
            retrieval_hint,
            sender_id,
        })
    };
    prop_oneof![
        6 => vec(entry(), 0..4),
        2 => vec(entry(), 4..40),
        // Deep bogus histories: hundreds of fresh ids, at and over the wire limit of 1,024.
        1 => (0usize..1_100, any::<bool>(), any::<u32>()).prop_map(|(n, hinted, salt)| {
            (0..n)
                .map(|i| HistoryEntry {
                    message_id: format!("bogus-{salt}-{i}"),
                    retrieval_hint: hinted.then(|| Bytes::copy_from_slice(&[i as u8; 32])),
                    sender_id: Some("peer0".into()),
                })
                .collect()
        }),
    ]
}

fn bloom() -> impl Strategy<Value = Option<Bytes>> {
    prop_oneof![
        2 => Just(None),
        1 => (0usize..64).prop_map(|n| Some(fill(n, 1))),
        1 => Just(Some(Bytes::from(vec![0u8; BLOOM_BYTES]))),
        1 => Just(Some(Bytes::from(vec![0xffu8; BLOOM_BYTES]))),
        1 => any::<u8>().prop_map(|s| Some(fill(BLOOM_BYTES, s))),
        1 => Just(Some(Bytes::from(vec![0xffu8; BLOOM_BYTES + 1]))),
    ]
}

fn index() -> impl Strategy<Value = u32> {
    prop_oneof![6 => 0u32..6, 1 => Just(u32::MAX), 1 => Just(u32::MAX - 1), 1 => any::<u32>(), 1 => 15u32..17]
}

/// A chunk frame: plausible chains over a small id pool, or broken in every way.
fn chunk() -> impl Strategy<Value = Bytes> {
    let sizes = prop_oneof![5 => 0usize..2_048, 2 => Just(65_536usize), 1 => 65_535usize..65_538, 1 => Just(200_000usize)];
    let chunk = (
        (0u8..8).prop_map(|i| format!("c{i}")),
        prop_oneof![2 => Just(String::new()), 4 => (0u8..8).prop_map(|i| format!("c{i}")), 1 => id()],
        index(),
        index(),
        prop_oneof![4 => (0u8..4).prop_map(|i| format!("r{i}")), 1 => id()],
        sizes,
        any::<u8>(),
    )
        .prop_map(|(chunk_id, previous_chunk_id, chunk_index, last_chunk_index, request_id, n, s)| {
            Bytes::from(MessageChunk { chunk_id, previous_chunk_id, chunk_index, last_chunk_index, request_id, payload: fill(n, s) }.encode_to_vec())
        });
    prop_oneof![8 => chunk, 1 => (0usize..64, any::<u8>()).prop_map(|(n, s)| fill(n, s)), 1 => Just(Bytes::new())]
}

/// How a chain of chunks is broken (if at all).
#[derive(Debug, Clone, Copy)]
enum Forgery {
    None,
    /// `previous_chunk_id` of chunk `k` is not chunk `k-1`'s id.
    Chain(usize),
    /// `last_chunk_index` of chunk `k` differs.
    LastIndex(usize),
    /// Chunk `k` has a payload size inconsistent with the chunk size.
    Size(usize),
    /// Chunk `k` is never sent (a gap).
    Skip(usize),
    /// Chunk `k` is sent twice.
    Duplicate(usize),
    /// Every chunk claims `u32::MAX` as last index.
    HugeLast,
    /// Chunk `k` carries another message's request id.
    Request(usize),
}

fn forgery() -> impl Strategy<Value = Forgery> {
    prop_oneof![
        3 => Just(Forgery::None),
        1 => (0usize..8).prop_map(Forgery::Chain),
        1 => (0usize..8).prop_map(Forgery::LastIndex),
        1 => (0usize..8).prop_map(Forgery::Size),
        1 => (0usize..8).prop_map(Forgery::Skip),
        1 => (0usize..8).prop_map(Forgery::Duplicate),
        1 => Just(Forgery::HugeLast),
        1 => (0usize..8).prop_map(Forgery::Request),
    ]
}

/// A whole multi-chunk message from a hostile (or honest-looking) peer, SDS-chained like a real
/// sender's (each chunk's causal history names the previous chunk), possibly forged.
#[derive(Debug, Clone)]
struct Chain {
    sender: u8,
    request: String,
    chunks: usize,
    chunk_size: usize,
    forgery: Forgery,
    /// Delivery order: a rotation, so chunks can arrive before their predecessors.
    rotate: usize,
    salt: u32,
}

fn chain() -> impl Strategy<Value = Chain> {
    (0u8..4, "[a-z0-9]{4}", 1usize..9, prop_oneof![3 => 1usize..4_096, 1 => Just(65_536usize)], forgery(), 0usize..4, any::<u32>())
        .prop_map(|(sender, request, chunks, chunk_size, forgery, rotate, salt)| Chain { sender, request, chunks, chunk_size, forgery, rotate, salt })
}

impl Chain {
    fn messages(&self) -> Vec<WakuMessage> {
        let sender = format!("peer{}", self.sender);
        let sds_id = |k: usize| format!("{}-{}-sds{k}", self.salt, self.request);
        let chunk_id = |k: usize| format!("{}-{}-c{k}", self.salt, self.request);
        let last = (self.chunks - 1) as u32;
        let mut out = Vec::new();
        for k in 0..self.chunks {
            let f = self.forgery;
            if matches!(f, Forgery::Skip(j) if j == k) && k > 0 {
                continue;
            }
            let mut len = if k as u32 == last { (self.chunk_size / 2).max(1) } else { self.chunk_size };
            if matches!(f, Forgery::Size(j) if j == k) {
                len = len * 2 + 1;
            }
            let chunk = MessageChunk {
                chunk_id: chunk_id(k),
                previous_chunk_id: match (k, f) {
                    (0, _) => String::new(),
                    (_, Forgery::Chain(j)) if j == k => chunk_id(k + 7),
                    _ => chunk_id(k - 1),
                },
                chunk_index: k as u32,
                last_chunk_index: match f {
                    Forgery::HugeLast => u32::MAX,
                    Forgery::LastIndex(j) if j == k => last + 1,
                    _ => last,
                },
                request_id: match f {
                    Forgery::Request(j) if j == k => format!("{}-other", self.request),
                    _ => self.request.clone(),
                },
                payload: fill(len, k as u8),
            };
            let history = if k == 0 {
                Vec::new()
            } else {
                vec![HistoryEntry { message_id: sds_id(k - 1), retrieval_hint: None, sender_id: Some(sender.clone()) }]
            };
            let msg = content(&sender, &sds_id(k), T0 + k as u64, history, chunk);
            if matches!(f, Forgery::Duplicate(j) if j == k) {
                out.push(msg.clone());
            }
            out.push(msg);
        }
        let r = self.rotate % out.len().max(1);
        out.rotate_left(r);
        out
    }
}

#[derive(Debug, Clone)]
enum Step {
    /// A whole (possibly forged) multi-chunk message.
    Chain(Chain),
    /// An SDS message (content, sync or ephemeral by field presence) in a well-formed WakuMessage.
    Sds {
        msg: SdsMessage,
        with_hash: bool,
    },
    /// Raw bytes as the WakuMessage payload.
    Garbage(Bytes),
    /// A message that must be dropped before any SDS work.
    Foreign {
        wrong_marker: bool,
        msg: SdsMessage,
    },
    /// Replay of a message fed earlier (or of one the victim dispatched: an echo).
    Replay(usize),
    Advance(u64),
    Send {
        len: usize,
        ephemeral: bool,
    },
    DispatchResult {
        pick: usize,
        ok: bool,
    },
}

/// A message id: mostly fresh and valid, sometimes from the shared pool (duplicates, references
/// to other messages, cycles) or hostile.
fn message_id() -> impl Strategy<Value = String> {
    prop_oneof![6 => "[0-9a-f]{16}", 3 => (0u8..12).prop_map(|i| format!("m{i}")), 1 => id()]
}

fn sds_message() -> impl Strategy<Value = SdsMessage> {
    (
        sender(),
        message_id(),
        prop_oneof![9 => Just(CHANNEL.to_owned()), 1 => id()],
        prop_oneof![
            4 => (T0 - 10_000..T0 + 600_000).prop_map(Some),
            1 => Just(None),
            1 => Just(Some(0)),
            1 => Just(Some(u64::MAX)),
        ],
        history(),
        bloom(),
        // Repair requests: for pooled ids (messages we may hold), up to and over the wire cap.
        prop_oneof![
            3 => Just(Vec::new()),
            1 => vec((0u8..12).prop_map(|i| HistoryEntry { message_id: format!("m{i}"), retrieval_hint: None, sender_id: None }), 1..70),
        ],
        prop_oneof![6 => chunk().prop_map(Some), 2 => Just(None), 1 => Just(Some(Bytes::new()))],
    )
        .prop_map(|(sender_id, message_id, channel_id, lamport_timestamp, causal_history, bloom_filter, repair_request, content)| SdsMessage {
            sender_id,
            message_id,
            channel_id,
            lamport_timestamp,
            causal_history,
            bloom_filter,
            repair_request,
            content,
        })
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => chain().prop_map(Step::Chain),
        10 => (sds_message(), any::<bool>()).prop_map(|(msg, with_hash)| Step::Sds { msg, with_hash }),
        1 => (0usize..512, any::<u8>()).prop_map(|(n, s)| Step::Garbage(fill(n, s))),
        1 => (any::<bool>(), sds_message()).prop_map(|(wrong_marker, msg)| Step::Foreign { wrong_marker, msg }),
        2 => any::<usize>().prop_map(Step::Replay),
        3 => prop_oneof![5 => 0u64..5_000, 2 => 5_000u64..120_000, 1 => Just(3_600_000u64)].prop_map(Step::Advance),
        1 => (prop_oneof![3 => 1usize..5_000, 1 => 65_536usize..300_000], any::<bool>()).prop_map(|(len, ephemeral)| Step::Send { len, ephemeral }),
        2 => (any::<usize>(), prop_oneof![4 => Just(true), 1 => Just(false)]).prop_map(|(pick, ok)| Step::DispatchResult { pick, ok }),
    ]
}

fn run_steps(seed: u64, steps: &[Step]) -> Result<(), String> {
    let mut h = Harness::new(seed);
    let mut fed: Vec<(WakuMessage, bool)> = Vec::new();
    for (i, s) in steps.iter().enumerate() {
        let r = match s {
            Step::Chain(c) => {
                let mut r = Ok(());
                for m in c.messages() {
                    r = r.and_then(|()| h.feed(&m, true));
                    fed.push((m, true));
                }
                r
            }
            Step::Sds { msg, with_hash } => {
                let m = waku(Bytes::from(msg.encode_to_vec()));
                let r = h.feed(&m, *with_hash);
                fed.push((m, *with_hash));
                r
            }
            Step::Garbage(b) => h.feed(&waku(b.clone()), true),
            Step::Foreign { wrong_marker, msg } => {
                let mut m = waku(Bytes::from(msg.encode_to_vec()));
                if *wrong_marker {
                    m.meta = Some(Bytes::from_static(b"RELIABLE-CHANNEL-API/2"));
                } else {
                    m.content_topic = "/other/1/topic/proto".into();
                }
                let before = h.ch.stats().dropped_foreign;
                let r = h.feed(&m, true);
                if h.ch.stats().dropped_foreign != before + 1 {
                    return Err(format!("step {i}: a foreign message was not dropped"));
                }
                r
            }
            Step::Replay(k) => {
                let pool = fed.len() + h.dispatched.len();
                if pool == 0 {
                    Ok(())
                } else if k % pool < fed.len() {
                    let (m, with_hash) = fed[k % pool].clone();
                    h.feed(&m, with_hash)
                } else {
                    let m = h.dispatched[k % pool - fed.len()].clone();
                    h.feed(&m, true)
                }
            }
            Step::Advance(ms) => h.advance(*ms),
            Step::Send { len, ephemeral } => h.send(*len, *ephemeral, i as u64),
            Step::DispatchResult { pick, ok } => h.dispatch_result(*pick, *ok),
        };
        r.map_err(|e| format!("step {i} ({}): {e}", short(s)))?;
    }
    if std::env::var("HOSTILE_STATS").is_ok() {
        let s = h.ch.stats();
        let sd = h.ch.sds().stats();
        eprintln!(
            "STATS received {} partials {} ({} B) waiting {:?} log {} discarded {} invalid {} lost {} buffer-full {} forced {} repairs {} echoes {} duplicates {} ephemeral {}",
            h.received, s.reassembly_messages, s.reassembly_bytes, h.ch.sds().incoming_len(), h.ch.sds().history().len(),
            s.chunks_discarded, s.dropped_invalid, s.messages_lost, s.dropped_buffer_full, sd.forced_deliveries, sd.repairs,
            sd.echoes, sd.duplicates, sd.ephemeral_received
        );
    }
    // Let every timer run out: buffers drain, nothing stays pending forever.
    for _ in 0..20 {
        h.advance(600_000)?;
    }
    Ok(())
}

fn short(s: &Step) -> String {
    let d = format!("{s:?}");
    d.chars().take(300).collect()
}

proptest! {
    // 96 cases by default; PROPTEST_CASES=n overrides.
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(96),
        max_shrink_iters: 2_000,
        ..ProptestConfig::default()
    })]

    #[test]
    fn structured_hostile_traffic(seed in any::<u64>(), steps in vec(step(), 1..150)) {
        if let Err(e) = run_steps(seed, &steps) {
            prop_assert!(false, "{}", e);
        }
    }
}

// ------------------------------------------------------------------------ mutated traffic

/// A toy encryption hook (XOR and a checksum byte) so that mutated ciphertexts exercise the
/// decryption-failure path and intact ones the rest of the pipeline.
struct Xor;

impl Xor {
    fn seal(plain: &[u8]) -> Vec<u8> {
        let sum = plain.iter().fold(0u8, |a, b| a.wrapping_add(*b));
        plain.iter().chain(std::iter::once(&sum)).map(|b| b ^ 0x5a).collect()
    }
    fn open(cipher: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let mut v: Vec<u8> = cipher.iter().map(|b| b ^ 0x5a).collect();
        let sum = v.pop().ok_or_else(|| CryptoError("empty".into()))?;
        if v.iter().fold(0u8, |a, b| a.wrapping_add(*b)) != sum {
            return Err(CryptoError("bad checksum".into()));
        }
        Ok(v)
    }
}

impl Encryption for Xor {
    fn encrypt(&self, _: &str, plaintext: &[u8]) -> Result<Vec<u8>, CryptoError> {
        Ok(Xor::seal(plaintext))
    }
    fn decrypt(&self, _: &str, ciphertext: &[u8]) -> Result<Vec<u8>, CryptoError> {
        Xor::open(ciphertext)
    }
}

/// The WakuMessages an honest peer publishes for a few sends (multi-chunk included).
fn honest_traffic(seed: u64, encrypted: bool) -> Vec<WakuMessage> {
    let mut rng = SmallRng::seed_from_u64(seed);
    let cfg = ChannelConfig::default()
        .with_json(Some(r#"{"segmentationConfig": {"chunkSizeBytes": 1024}, "rateLimitConfig": {"enabled": false}}"#))
        .unwrap();
    let mut peer = Channel::new(CHANNEL, TOPIC, "honest", cfg, T0, seed);
    if encrypted {
        peer.set_encryption(Some(Arc::new(Xor)));
    }
    let mut out = Vec::new();
    for i in 0..4 {
        let len = if i == 1 { rng.gen_range(2_000..6_000) } else { rng.gen_range(1..900) };
        let mut payload = vec![0u8; len];
        rng.fill_bytes(&mut payload);
        peer.send(T0 + i * 100, &format!("h{i}"), &payload, i == 3).unwrap();
        while let Some(a) = peer.poll_action() {
            if let ChannelAction::Dispatch { token, message } = a {
                let hash = message.hash(PUBSUB);
                peer.on_dispatch_result(T0 + i * 100, token, Ok(Some(hash)));
                out.push(message);
            }
        }
    }
    out
}

/// One field-level mutation of an SDS message (decoded, changed, re-encoded).
fn mutate_fields(rng: &mut SmallRng, m: &mut SdsMessage) {
    match rng.gen_range(0..12) {
        0 => m.sender_id = ["peer0", VICTIM, "", "honest"][rng.gen_range(0..4)].to_owned(),
        1 => m.message_id = if rng.gen_bool(0.5) { "x".repeat(MAX_ID_BYTES + 1) } else { format!("m{}", rng.gen_range(0..8)) },
        2 => m.lamport_timestamp = [None, Some(0), Some(u64::MAX), Some(rng.gen())][rng.gen_range(0..4)],
        3 => {
            let n = rng.gen_range(0..1_200);
            m.causal_history = (0..n).map(|i| HistoryEntry { message_id: format!("deep-{i}"), retrieval_hint: None, sender_id: None }).collect();
        }
        4 => m.bloom_filter = Some(Bytes::from(vec![rng.gen(); rng.gen_range(0..40)])),
        5 => m.bloom_filter = None,
        6 => m.channel_id = "elsewhere".into(),
        7 => m.repair_request = vec![HistoryEntry { message_id: "r".into(), retrieval_hint: None, sender_id: None }; rng.gen_range(0..80)],
        _ => {
            // Chunk-level: forge the chain, the counts or the size.
            let Some(c) = m.content.clone().and_then(|c| MessageChunk::decode(c).ok()) else {
                m.content = Some(Bytes::from(vec![rng.gen(); rng.gen_range(0..40)]));
                return;
            };
            let mut c = c;
            match rng.gen_range(0..7) {
                0 => c.previous_chunk_id = "forged".into(),
                1 => c.last_chunk_index = [u32::MAX, c.last_chunk_index + 1, 0, rng.gen()][rng.gen_range(0..4)],
                2 => c.chunk_index = [u32::MAX, c.chunk_index + 1, 0, rng.gen()][rng.gen_range(0..4)],
                3 => c.payload = Bytes::from(vec![7u8; rng.gen_range(0..3_000)]),
                4 => c.request_id = "x".repeat(rng.gen_range(0..MAX_ID_BYTES + 3)),
                5 => c.chunk_id = String::new(),
                _ => c.chunk_id = c.previous_chunk_id.clone(),
            }
            m.content = Some(Bytes::from(c.encode_to_vec()));
        }
    }
}

fn mutate_bytes(rng: &mut SmallRng, b: &[u8]) -> Bytes {
    let mut v = b.to_vec();
    match rng.gen_range(0..4) {
        0 => {
            for _ in 0..rng.gen_range(1..8) {
                if !v.is_empty() {
                    let i = rng.gen_range(0..v.len());
                    v[i] ^= 1 << rng.gen_range(0..8);
                }
            }
        }
        1 => v.truncate(rng.gen_range(0..=v.len())),
        2 => {
            let at = rng.gen_range(0..=v.len());
            let junk: Vec<u8> = (0..rng.gen_range(1..64)).map(|_| rng.gen()).collect();
            v.splice(at..at, junk);
        }
        _ => {
            // Splice two halves of the message at random points (mixes fields and lengths).
            let a = rng.gen_range(0..=v.len());
            let b = rng.gen_range(0..=v.len());
            let (lo, hi) = (a.min(b), a.max(b));
            v.drain(lo..hi);
        }
    }
    Bytes::from(v)
}

#[test]
fn mutated_honest_traffic() {
    let rounds: u64 = std::env::var("HOSTILE_ROUNDS").ok().and_then(|v| v.parse().ok()).unwrap_or(60);
    let (mut received, mut invalid, mut discarded, mut undecryptable) = (0, 0, 0, 0);
    for round in 0..rounds {
        // Odd rounds run with the encryption hook on both sides.
        let encrypted = round % 2 == 1;
        let traffic = honest_traffic(round, encrypted);
        let mut rng = SmallRng::seed_from_u64(round ^ 0xbad);
        let mut h = Harness::new(round);
        if encrypted {
            h.ch.set_encryption(Some(Arc::new(Xor)));
        }
        let seal = |b: Vec<u8>| if encrypted { Bytes::from(Xor::seal(&b)) } else { Bytes::from(b) };
        for step in 0..300 {
            let orig = &traffic[rng.gen_range(0..traffic.len())];
            let r = match rng.gen_range(0..10) {
                // The original, in a random order (duplicates, reordering).
                0 | 1 => h.feed(orig, rng.gen_bool(0.8)),
                // Byte-level: of the ciphertext when encrypted (mostly undecryptable), or of a
                // resealed plaintext (decrypts, then fails later).
                2 | 3 => h.feed(&waku(mutate_bytes(&mut rng, &orig.payload)), true),
                4 => {
                    let plain = if encrypted { Xor::open(&orig.payload).expect("honest ciphertext") } else { orig.payload.to_vec() };
                    h.feed(&waku(seal(mutate_bytes(&mut rng, &plain).to_vec())), true)
                }
                5..=7 => {
                    let plain = if encrypted { Bytes::from(Xor::open(&orig.payload).expect("honest ciphertext")) } else { orig.payload.clone() };
                    match SdsMessage::decode(plain) {
                        Ok(mut m) => {
                            for _ in 0..rng.gen_range(1..3) {
                                mutate_fields(&mut rng, &mut m);
                            }
                            h.feed(&waku(seal(m.encode_to_vec())), rng.gen_bool(0.8))
                        }
                        Err(_) => Ok(()),
                    }
                }
                8 => h.advance(rng.gen_range(0..40_000)),
                _ => {
                    if rng.gen_bool(0.5) {
                        h.send(rng.gen_range(1..70_000), rng.gen_bool(0.3), step)
                    } else {
                        h.dispatch_result(rng.gen(), rng.gen_bool(0.8))
                    }
                }
            };
            if let Err(e) = r {
                panic!("round {round}, step {step}: {e}");
            }
        }
        for _ in 0..10 {
            h.advance(600_000).unwrap_or_else(|e| panic!("round {round}, final timers: {e}"));
        }
        received += h.received;
        invalid += h.ch.stats().dropped_invalid;
        discarded += h.ch.stats().chunks_discarded;
        undecryptable += h.ch.stats().dropped_undecryptable;
    }
    // The harness really reaches every layer: originals are received, mutants rejected at SDS
    // decoding and at the chunk chain.
    if rounds >= 10 {
        assert!(
            received > 0 && invalid > 0 && discarded > 0 && undecryptable > 0,
            "received {received}, invalid {invalid}, discarded {discarded}, undecryptable {undecryptable}"
        );
    }
}
