//! A hostile participant in the deterministic simulation: 2–4 honest reliable channels and
//! "mallory", who receives every publication (the channel is unencrypted, so she reads it all)
//! and injects crafted WakuMessages, scheduled and in reaction to what she sees.
//!
//! The honest side is the sans-I/O [`Channel`] on a virtual clock, as in tests/simulation.rs:
//! an event queue of sends, deliveries and dispatch results; every WakuMessage kept in a store
//! (retrievals are answered from it, with the network's loss) and copied to every honest
//! participant, each copy independently lost (≤ 10 %), duplicated, delayed and reordered. Rate
//! limits: none, the default (100 per 10 min) or small (8–12 per 1–2 s).
//!
//! Mallory's attacks (each seed enables a random subset, see [`Attack`]): forged chunks of real
//! messages under their sender's id (garbage links, duplicate first chunks, re-wrapped copies),
//! replays of old messages, content under an honest participant's id (an echo spoof for that
//! one), lamport 0 / `u64::MAX`, all-ones and saturated bloom filters, phantom dependencies (64 to
//! 1,024 unknown ids, with and without retrieval hints), oversized and empty-sender messages.
//! After the workload is quiescent, a *probe round* sends one phantom-dependency message into the
//! idle channel and counts, until it is quiet again, what the honest participants do about it.
//!
//! Invariants among the honest participants, each checked and reported on its own ([`Inv`],
//! [`Inv::doc`] says exactly what each means): nothing lost, nothing delivered twice, nothing
//! DELIVERED that no honest peer received (the simulation records which honest peer received
//! which SDS message when), what is received is what was sent, a bounded reaction per hostile
//! message and bounded loss reports (probe rounds, named constants below), no echo-spoof stall,
//! bounded lamport clocks, invalid messages refused, memory bounds after every step, the RLN
//! budget, quiescence, no panic.
//!
//! Excluded on purpose: nothing on the wire authenticates a sender, and mallory can encrypt (here:
//! read and write plaintext) like any participant, so no implementation could hold these, and
//! mallory does not try them:
//! * a forged chunk that *can* be linked, accepted before the real one: a forged first chunk of a
//!   real request id (or a single-chunk message) delivered before the real first chunk, or a
//!   chunk copying the real predecessor's id with other content. Mallory's duplicate first chunks
//!   name the real first chunk in their causal history, so SDS delivers them after it, and her
//!   forged later chunks carry garbage links;
//! * forged content under a real SDS message id (SDS dedups by id, and ids are not verifiable);
//! * causal order against copies stripped of their causal history: her copies keep it;
//! * acknowledging what she received: any participant's acknowledgement ends retransmission. She
//!   never names a real message in a causal history unless an honest peer already has it;
//! * messages she makes up under an honest participant's id are RECEIVED by the others as that
//!   participant's (they are only checked for duplicates, and never delivered to that one);
//! * filling the reassembly buffer with partials of her own (bounded, but it evicts).
//!
//! Not covered here (targeted tests elsewhere): a bloom filter saturated by channel age (tens of
//! thousands of messages) and duplicates re-delivered by SDS (the reassembler's memory of finished
//! messages hides them from the application), both in tests/protocol_hardening.rs; the published
//! size limit with maximal ids.
//!
//! Three families of seeds: `Full` (every attack, one probe round; each invariant is a test over
//! one shared run), `Chunks` (forged chunks and replays only: what the segmentation layer must
//! withstand by itself) and `Quiet` (no mallory: the control group, showing that the invariants
//! hold for honest traffic). Invariants that fail on this branch because of issue #10's SDS and
//! channel holes are `#[ignore]`d with the reason; `make test-hostile` runs them too.
//!
//! Env: `HOSTILE_SEEDS=n` (Full seeds, default 1000; Chunks runs half, Quiet a fifth as many),
//! `HOSTILE_SEED_BASE=b`, `HOSTILE_PROBES=n` (probe rounds per Full seed, default 1). One seed:
//! `HOSTILE_SEED=s HOSTILE_FAMILY=full|chunks|quiet HOSTILE_TRACE=1 cargo test --release --test
//! hostile_sim -- --exact replay --nocapture`.

// Participants are indices into `HONEST`, the channels and the logs alike.
#![allow(clippy::needless_range_loop)]

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write as _;
use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use prost::Message as _;
use rand::rngs::SmallRng;
use rand::{Rng, RngCore, SeedableRng};
use reliable_channel::channel::{Channel, ChannelAction, ChannelConfig, ChannelEvent};
use reliable_channel::messaging::MessageHash;
use reliable_channel::wire::{HistoryEntry, MessageChunk, MessageKind, SdsMessage, WakuMessage, BLOOM_BYTES, MAX_WAKU_MESSAGE_BYTES};

const T0: u64 = 1_700_000_000_000;
const CHANNEL: &str = "hostile-sim";
const TOPIC: &str = "/hostile-sim/1/chat/proto";
const HONEST: [&str; 4] = ["alice", "bob", "carol", "dave"];
const MALLORY: &str = "mallory";
/// Honest sends happen in the first 30 s, mallory's scheduled attacks in the first 45 s.
const SEND_WINDOW_MS: u64 = 30_000;
const HOSTILE_WINDOW_MS: u64 = 45_000;
/// A probe message goes out this long after the channel went quiet.
const PROBE_DELAY_MS: u64 = 1_000;
/// A run not quiescent by then has endless traffic.
const MAX_VIRTUAL_MS: u64 = 3 * 3_600_000;
const MAX_STEPS: u64 = 5_000_000;

/// Most WakuMessages an honest participant may publish about one probe message (sent alone into
/// the idle channel, counted until it is quiet again). Any content message costs an
/// acknowledgement sync and `idle_sync_rounds` (3) idle syncs, 4 in all; a hostile one may cost a
/// handful of repair syncs more, backing off, but not one per acknowledgement timeout until the
/// dependency timeout (about 12, before issue #10 item 6 was fixed).
const MAX_PUBLISHED_PER_HOSTILE_MESSAGE: u64 = 10;
/// Most store lookups per phantom id with a retrieval hint (backing off within the dependency
/// timeout, not one per acknowledgement timeout: about 12), and for the probe message itself
/// (a participant that missed it fetches it).
const MAX_LOOKUPS_PER_HINTED_ID: u64 = 6;
/// Most MESSAGE_LOST events per probe message that waits (content): one, for that message; a
/// phantom id that nothing waits for (named by a sync) produces none.
const MAX_LOST_REPORTS_PER_WAITING_MESSAGE: u64 = 1;
/// How far past its own clock (ms) a participant's lamport timestamp may be pushed by a peer.
const MAX_LAMPORT_SKEW_MS: u64 = 3_600_000;

// ---------------------------------------------------------------------------------------------
// Scenario

/// What mallory does. Each seed of the `Full` family enables a random non-empty subset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Attack {
    /// Chunks of real messages under their sender's id: garbage links at any index, duplicate
    /// first chunks (after the real one), exact copies re-wrapped in new SDS messages.
    ForgedChunk,
    /// Old honest WakuMessages published again, byte for byte, 20 s or more later.
    Replay,
    /// Content under an honest participant's id: an echo spoof for that participant.
    SpoofSender,
    /// Lamport `u64::MAX` or 0.
    Lamport,
    /// Two syncs with an all-ones or saturated (75–95 % set) bloom filter, right after an
    /// honest content publication (before its receivers could have acknowledged it).
    Bloom,
    /// Content or syncs naming 64–1,024 unknown ids, with or without retrieval hints.
    Phantom,
    /// A WakuMessage over the size limit, or a message with an empty sender id.
    Invalid,
}

const ATTACKS: [Attack; 7] =
    [Attack::ForgedChunk, Attack::Replay, Attack::SpoofSender, Attack::Lamport, Attack::Bloom, Attack::Phantom, Attack::Invalid];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Family {
    Full,
    Chunks,
    Quiet,
}

#[derive(Debug, Clone)]
struct RateCfg {
    epoch_ms: u64,
    per_epoch: u32,
}

/// An honest send: who, when, what.
struct Planned {
    from: usize,
    at: u64,
    ephemeral: bool,
    request_id: String,
    payload: Arc<Vec<u8>>,
}

/// The network's faults, the same for every copy of every message (mallory's too).
#[derive(Debug)]
struct Faults {
    loss: f64,
    duplicate: f64,
    /// Chance that a copy is held back 0–3 s more.
    reorder: f64,
    delay_ms: (u64, u64),
}

struct Scenario {
    seed: u64,
    family: Family,
    n: usize,
    faults: Faults,
    rate: Option<RateCfg>,
    config: ChannelConfig,
    sends: Vec<Planned>,
    attacks: Vec<Attack>,
    /// Times of mallory's scheduled attacks.
    hostile_at: Vec<u64>,
    /// Chance that mallory reacts to an honest content publication.
    react: f64,
    probes: u32,
}

fn scenario(seed: u64, family: Family) -> Scenario {
    let mut rng = SmallRng::seed_from_u64(seed ^ 0x4057_11e5_eed5);
    let n = rng.gen_range(2..=HONEST.len());
    let lo = rng.gen_range(1..100);
    let faults = Faults {
        loss: rng.gen_range(0.0..=0.10),
        duplicate: rng.gen_range(0.0..0.1),
        reorder: rng.gen_range(0.0..0.2),
        delay_ms: (lo, lo + rng.gen_range(0..300)),
    };
    let chunk = [1_024, 2_048, 4_096][rng.gen_range(0..3)];
    let r: f64 = rng.gen();
    let rate = if r < 0.2 {
        Some(RateCfg { epoch_ms: rng.gen_range(1_000..=2_000), per_epoch: rng.gen_range(8..=12) })
    } else if r < 0.5 {
        Some(RateCfg { epoch_ms: 600_000, per_epoch: 100 })
    } else {
        None
    };
    let rate_json = match &rate {
        None => r#""enabled": false"#.to_owned(),
        Some(c) => format!(r#""enabled": true, "epochSizeMs": {}, "messagesPerEpoch": {}, "accounting": "firstChunk""#, c.epoch_ms, c.per_epoch),
    };
    let json = format!(r#"{{"segmentationConfig": {{"chunkSizeBytes": {chunk}}}, "rateLimitConfig": {{{rate_json}}}}}"#);
    let config = ChannelConfig::default().with_json(Some(&json)).expect("valid simulation config");
    let mut sends = Vec::new();
    for from in 0..n {
        for _ in 0..rng.gen_range(1..=4) {
            let r: f64 = rng.gen();
            let len = if r < 0.5 {
                rng.gen_range(1..=200)
            } else if r < 0.85 {
                rng.gen_range(201..=8_192)
            } else {
                rng.gen_range(8_193..=32_768)
            };
            let mut payload = vec![0u8; len];
            rng.fill_bytes(&mut payload);
            let at = T0 + rng.gen_range(0..SEND_WINDOW_MS);
            sends.push(Planned { from, at, request_id: String::new(), payload: Arc::new(payload), ephemeral: rng.gen_bool(0.1) });
        }
    }
    sends.sort_by_key(|p| (p.at, p.from));
    let mut next = [0usize; HONEST.len()];
    for p in &mut sends {
        p.request_id = format!("{}-{}", HONEST[p.from], next[p.from]);
        next[p.from] += 1;
    }
    let attacks: Vec<Attack> = match family {
        Family::Quiet => Vec::new(),
        Family::Chunks => vec![Attack::ForgedChunk, Attack::Replay],
        Family::Full => {
            let mut a: Vec<Attack> = ATTACKS.iter().copied().filter(|_| rng.gen_bool(0.6)).collect();
            if a.is_empty() {
                a.push(ATTACKS[rng.gen_range(0..ATTACKS.len())]);
            }
            a
        }
    };
    let count = if attacks.is_empty() { 0 } else { rng.gen_range(5..=20) };
    let mut hostile_at: Vec<u64> = (0..count).map(|_| T0 + rng.gen_range(0..HOSTILE_WINDOW_MS)).collect();
    hostile_at.sort_unstable();
    let react = if attacks.is_empty() { 0.0 } else { rng.gen_range(0.1..0.4) };
    // One probe round per Full seed: the phantom lists it sends are most of the simulation's
    // time while the victim still retries every acknowledgement timeout (HOSTILE_PROBES=n for more).
    let probes = if family == Family::Full { env_u64("HOSTILE_PROBES").map_or(1, |n| n as u32) } else { 0 };
    Scenario { seed, family, n, faults, rate, config, sends, attacks, hostile_at, react, probes }
}

impl Scenario {
    fn summary(&self) -> String {
        let (sc, attacks) = (self, format!("attacks {:?} ({} scheduled, react {:.2})", self.attacks, self.hostile_at.len(), self.react));
        let head = format!("seed {} ({:?}): {} honest, {:?}, chunk {} B", sc.seed, sc.family, sc.n, sc.faults, sc.config.chunk_size_bytes);
        let mut s = format!("{head}, rate {:?}, {attacks}, {} probe rounds\n", sc.rate, sc.probes);
        for p in &self.sends {
            let eph = if p.ephemeral { ", ephemeral" } else { "" };
            let _ = writeln!(s, "  +{:>6} ms {} sends {} ({} B{eph})", p.at - T0, HONEST[p.from], p.request_id, p.payload.len());
        }
        s
    }
}

// ---------------------------------------------------------------------------------------------
// Invariants

/// The invariants, each reported on its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Inv {
    NoLoss,
    NoDuplicates,
    NoFalseDelivered,
    Integrity,
    Lifecycle,
    Amplification,
    LostReports,
    EchoSpoof,
    Lamport,
    RefusesInvalid,
    Bounds,
    RlnBudget,
    Quiescence,
    NoPanic,
}

const INVARIANTS: [Inv; 14] = [
    Inv::NoLoss,
    Inv::NoDuplicates,
    Inv::NoFalseDelivered,
    Inv::Integrity,
    Inv::Lifecycle,
    Inv::Amplification,
    Inv::LostReports,
    Inv::EchoSpoof,
    Inv::Lamport,
    Inv::RefusesInvalid,
    Inv::Bounds,
    Inv::RlnBudget,
    Inv::Quiescence,
    Inv::NoPanic,
];

impl Inv {
    fn doc(self) -> &'static str {
        match self {
            Inv::NoLoss => "every reliable honest send ends DELIVERED and is RECEIVED by every other honest participant",
            Inv::NoDuplicates => "no honest participant RECEIVES a (sender, request id) twice",
            Inv::NoFalseDelivered => "a send is DELIVERED only when every chunk had reached an honest peer of its sender",
            Inv::Integrity => "honest messages RECEIVED byte-identical and in send order; nothing unknown, nothing under one's own id",
            Inv::Lifecycle => "every accepted send has exactly one final event, SENT before DELIVERED",
            Inv::Amplification => "in the idle channel, an honest participant's publications and store lookups per probe message are bounded",
            Inv::LostReports => "MESSAGE_LOST at most once per waiting probe message; never both RECEIVED and lost",
            Inv::EchoSpoof => "no honest participant waits for, and reports lost, a message carrying its own sender id",
            Inv::Lamport => "no honest participant publishes a lamport timestamp far past its clock",
            Inv::RefusesInvalid => "oversized and empty-sender messages are never RECEIVED",
            Inv::Bounds => "every Channel::bounds() within its bound after every step",
            Inv::RlnBudget => "no honest participant exceeds the RLN budget of an epoch",
            Inv::Quiescence => "the run ends: no endless traffic, nothing pending",
            Inv::NoPanic => "no panic",
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Simulator

/// A WakuMessage on the network, decoded once. Its hash is a serial number, not the Waku message
/// hash: the channel treats hashes as opaque ids (echo detection, retrieval hints), and sha256 over
/// every 18 KiB bloom filter was a seventh of the simulation's time. A replay is the same `Pub`,
/// so it keeps its hash.
struct Pub {
    msg: WakuMessage,
    hash: MessageHash,
    /// The honest publisher, or `None` for mallory.
    from: Option<usize>,
    at: u64,
    sds: Option<(SdsMessage, MessageKind)>,
    chunk: Option<MessageChunk>,
}

impl Pub {
    fn new(msg: WakuMessage, from: Option<usize>, at: u64, serial: u64) -> Self {
        let mut hash = [0u8; 32];
        hash[..8].copy_from_slice(&serial.to_be_bytes());
        let sds = SdsMessage::decode_bytes(msg.payload.clone()).ok();
        let chunk = sds.as_ref().and_then(|(m, _)| m.content.clone()).and_then(|c| MessageChunk::decode_bytes(c).ok());
        Pub { msg, hash, from, at, sds, chunk }
    }
    fn sds_id(&self) -> Option<&str> {
        self.sds.as_ref().map(|(m, _)| m.message_id.as_str())
    }
    fn describe(&self) -> String {
        let Some((m, kind)) = &self.sds else { return "undecodable".into() };
        let chunk = self.chunk.as_ref().map(|c| format!(" {}#{}/{}", c.request_id, c.chunk_index, c.last_chunk_index)).unwrap_or_default();
        let id = &m.message_id[..m.message_id.len().min(10)];
        let short =
            |e: &HistoryEntry| format!("{}{}", &e.message_id[..e.message_id.len().min(10)], if e.retrieval_hint.is_some() { "+" } else { "" });
        let mut s = format!("{kind:?} {:?}:{id}{chunk} lamport {:?} hist {}", m.sender_id, m.lamport_timestamp, m.causal_history.len());
        if m.causal_history.len() <= 12 {
            let _ = write!(s, " {:?}", m.causal_history.iter().map(short).collect::<Vec<_>>());
        }
        if !m.repair_request.is_empty() {
            let _ = write!(s, " repair {}", m.repair_request.len());
            let _ = write!(s, " {:?}", m.repair_request.iter().map(short).collect::<Vec<_>>());
        }
        s
    }
}

enum Ev {
    Send(usize),
    Deliver { to: usize, p: Arc<Pub>, retrieved: bool },
    DispatchDone { to: usize, token: u64, hash: MessageHash },
    Hostile,
    Probe,
}

/// Mallory's view and memory.
struct Mallory {
    rng: SmallRng,
    /// Honest content publications seen (first copy of each SDS id), in order.
    seen: Vec<Arc<Pub>>,
    seen_ids: HashSet<String>,
    names: u64,
    /// (sender, request id) of messages she made up, and of the invalid ones among them.
    made_up: HashSet<(String, String)>,
    invalid: HashSet<(String, String)>,
    /// SDS ids of what she sent under an honest participant's id.
    spoofed: HashSet<String>,
    sent: BTreeMap<Attack, u64>,
}

/// What one probe round sent: one message, content (it waits for its phantom dependencies) or a
/// sync, naming `hinted_ids` phantom ids with a retrieval hint.
#[derive(Default, Clone, Copy)]
struct ProbeLoad {
    waiting: bool,
    hinted_ids: u64,
}

struct Sim<'a> {
    sc: &'a Scenario,
    now: u64,
    net: SmallRng,
    /// Events by (time, sequence number): simultaneous events in the order they were scheduled.
    queue: BTreeMap<(u64, u64), Ev>,
    seq: u64,
    chans: Vec<Channel>,
    /// Per participant: (time, phase, event). Phase 0 is the workload, phase k > 0 probe round k.
    log: Vec<Vec<(u64, usize, ChannelEvent)>>,
    accepted: Vec<bool>,
    store: HashMap<MessageHash, Arc<Pub>>,
    /// Publications so far: the next one's hash.
    serial: u64,
    /// Per participant: epoch → cost charged by our own accounting.
    costs: Vec<BTreeMap<u64, u32>>,
    phase: usize,
    /// Per participant and phase: WakuMessages published, store lookups.
    published: Vec<Vec<u64>>,
    lookups: Vec<Vec<u64>>,
    /// Per honest participant: SDS id → first arrival (network or store).
    arrivals: Vec<HashMap<String, u64>>,
    /// (sender, request id) → chunk index → SDS id, from the honest content publications.
    chunk_ids: HashMap<(usize, String), BTreeMap<u32, String>>,
    mallory: Mallory,
    /// Per probe round (index = phase - 1).
    probes: Vec<ProbeLoad>,
    violations: Vec<(Inv, String)>,
    trace: Option<String>,
}

impl<'a> Sim<'a> {
    fn new(sc: &'a Scenario, trace: bool) -> Self {
        let chans = (0..sc.n)
            .map(|p| {
                let mut c = Channel::new(CHANNEL, TOPIC, HONEST[p], sc.config.clone(), T0, sc.seed.wrapping_mul(31).wrapping_add(p as u64));
                // Odd seeds: the channels know of the store, so the store-aware timing is tested
                // too where the rate limit is on (`src/channel/pipeline/store_timing.rs`).
                c.set_store_available(sc.seed % 2 == 1);
                c
            })
            .collect();
        let mallory = Mallory {
            rng: SmallRng::seed_from_u64(sc.seed ^ 0x03a1_10e7),
            seen: Vec::new(),
            seen_ids: HashSet::new(),
            names: 0,
            made_up: HashSet::new(),
            invalid: HashSet::new(),
            spoofed: HashSet::new(),
            sent: BTreeMap::new(),
        };
        let mut sim = Sim {
            chans,
            log: vec![Vec::new(); sc.n],
            accepted: vec![false; sc.sends.len()],
            costs: vec![BTreeMap::new(); sc.n],
            sc,
            now: T0,
            phase: 0,
            net: SmallRng::seed_from_u64(sc.seed ^ 0x0e70_0e70),
            queue: BTreeMap::new(),
            seq: 0,
            store: HashMap::new(),
            serial: 0,
            published: vec![vec![0; 1 + sc.probes as usize]; sc.n],
            lookups: vec![vec![0; 1 + sc.probes as usize]; sc.n],
            arrivals: vec![HashMap::new(); sc.n],
            chunk_ids: HashMap::new(),
            mallory,
            probes: Vec::new(),
            violations: Vec::new(),
            trace: trace.then(String::new),
        };
        for (i, p) in sc.sends.iter().enumerate() {
            sim.schedule(p.at, Ev::Send(i));
        }
        for &t in &sc.hostile_at {
            sim.schedule(t, Ev::Hostile);
        }
        sim
    }

    fn schedule(&mut self, at: u64, ev: Ev) {
        self.queue.insert((at, self.seq), ev);
        self.seq += 1;
    }

    fn next_serial(&mut self) -> u64 {
        self.serial += 1;
        self.serial
    }

    fn tr(&mut self, f: impl FnOnce() -> String) {
        if let Some(t) = &mut self.trace {
            let line = f();
            let _ = writeln!(t, "{:>9} {line}", self.now - T0);
        }
    }

    fn violation(&mut self, inv: Inv, msg: String) {
        self.tr(|| format!("VIOLATION {inv:?}: {msg}"));
        self.violations.push((inv, msg));
    }

    /// Copies `p` to every honest participant through the lossy network.
    fn broadcast(&mut self, p: &Arc<Pub>) {
        self.store.insert(p.hash, p.clone());
        for to in 0..self.sc.n {
            let f = &self.sc.faults;
            let copies = if self.net.gen_bool(f.loss) { 0 } else { 1 + u32::from(self.net.gen_bool(f.duplicate)) };
            for _ in 0..copies {
                let (lo, hi) = f.delay_ms;
                let mut d = self.net.gen_range(lo..=hi);
                if self.net.gen_bool(f.reorder) {
                    d += self.net.gen_range(0..3_000);
                }
                self.schedule(self.now + d, Ev::Deliver { to, p: p.clone(), retrieved: false });
            }
        }
    }

    /// Drains participant `p`'s actions into the network, then checks its bounds.
    fn step(&mut self, p: usize) {
        while let Some(a) = self.chans[p].poll_action() {
            match a {
                ChannelAction::Dispatch { token, message } => self.publish(p, token, message),
                ChannelAction::Retrieve { hashes } => {
                    self.tr(|| format!("{} retrieves {} hashes", HONEST[p], hashes.len()));
                    self.lookups[p][self.phase] += hashes.len() as u64;
                    for h in hashes {
                        // Unknown hashes (phantom hints) are store misses.
                        let Some(found) = self.store.get(&h).cloned() else { continue };
                        if !self.net.gen_bool(self.sc.faults.loss) {
                            let at = self.now + self.net.gen_range(20..=300);
                            self.schedule(at, Ev::Deliver { to: p, p: found, retrieved: true });
                        }
                    }
                }
                ChannelAction::Event(ev) => {
                    self.tr(|| format!("{} event {}", HONEST[p], short_event(&ev)));
                    self.log[p].push((self.now, self.phase, ev));
                }
            }
        }
        for (what, v, max) in self.chans[p].bounds() {
            if v > max {
                self.violation(Inv::Bounds, format!("{}: {what} {v} exceeds its bound {max}", HONEST[p]));
            }
        }
    }

    fn publish(&mut self, p: usize, token: u64, message: WakuMessage) {
        self.published[p][self.phase] += 1;
        let pb = Arc::new(Pub::new(message, Some(p), self.now, self.next_serial()));
        self.tr(|| format!("{} publishes #{token} {} {}", HONEST[p], pb.describe(), &hex::encode(pb.hash)[..8]));
        let Some((sds, kind)) = &pb.sds else {
            self.violation(Inv::Integrity, format!("{} published an undecodable SDS message", HONEST[p]));
            return;
        };
        if let Some(l) = sds.lamport_timestamp.filter(|&l| l > self.now.saturating_add(MAX_LAMPORT_SKEW_MS)) {
            let skew = l - self.now;
            self.violation(Inv::Lamport, format!("{} published lamport {l}, {skew} ms past its clock", HONEST[p]));
        }
        if let Some(r) = &self.sc.rate {
            // spec: ratelimit.accounting (firstChunk) — syncs and first chunks cost 1.
            let cost = match (kind, &pb.chunk) {
                (MessageKind::Sync, _) => 1,
                (_, Some(c)) => u32::from(c.chunk_index == 0),
                (_, None) => 1,
            };
            let used = self.costs[p].entry(self.now / r.epoch_ms).or_default();
            *used += cost;
            if *used > r.per_epoch {
                let msg = format!("{} spent {used} > {} in epoch {} ({} ms)", HONEST[p], r.per_epoch, self.now / r.epoch_ms, r.epoch_ms);
                self.violation(Inv::RlnBudget, msg);
            }
        }
        let first_copy = *kind != MessageKind::Sync && self.mallory.seen_ids.insert(sds.message_id.clone());
        if let (true, Some(c)) = (first_copy, &pb.chunk) {
            self.chunk_ids.entry((p, c.request_id.clone())).or_default().insert(c.chunk_index, sds.message_id.clone());
        }
        let done_at = self.now + self.net.gen_range(1..=30);
        self.schedule(done_at, Ev::DispatchDone { to: p, token, hash: pb.hash });
        self.broadcast(&pb);
        // Mallory sees it at once; she may strike before its receivers have it.
        if first_copy && *kind == MessageKind::Content {
            self.mallory.seen.push(pb.clone());
            if self.mallory.rng.gen_bool(self.sc.react) {
                let reactive: Vec<Attack> = self.sc.attacks.iter().copied().filter(|a| matches!(a, Attack::ForgedChunk | Attack::Bloom)).collect();
                if !reactive.is_empty() {
                    let a = reactive[self.mallory.rng.gen_range(0..reactive.len())];
                    self.attack(a, Some(pb));
                }
            }
        }
    }

    fn run(&mut self) -> Result<(), String> {
        let mut steps = 0u64;
        loop {
            steps += 1;
            if steps > MAX_STEPS {
                return Err(format!("no quiescence after {MAX_STEPS} steps"));
            }
            // The earliest timer, the lowest participant first on a tie.
            let timer = self.chans.iter_mut().enumerate().filter_map(|(p, ch)| ch.next_deadline().map(|d| (d, p))).min();
            let next_ev = self.queue.first_key_value().map(|(&(t, _), _)| t);
            let at = match (timer, next_ev) {
                (None, None) => return Ok(()),
                (Some((t, _)), Some(e)) => t.min(e),
                (Some((t, _)), None) => t,
                (None, Some(e)) => e,
            };
            if at > T0 + MAX_VIRTUAL_MS {
                return Err(format!("not quiescent after {MAX_VIRTUAL_MS} ms of virtual time"));
            }
            self.now = self.now.max(at);
            let now = self.now;
            if let Some((t, p)) = timer.filter(|&(t, _)| next_ev.is_none_or(|e| t <= e)) {
                self.chans[p].handle_timeout(t.max(now));
                self.step(p);
                continue;
            }
            let (_, ev) = self.queue.pop_first().expect("event chosen");
            match ev {
                Ev::Send(i) => {
                    let pl = &self.sc.sends[i];
                    let (p, rid, payload, eph) = (pl.from, pl.request_id.clone(), pl.payload.clone(), pl.ephemeral);
                    self.tr(|| format!("{} send {rid} ({} B{})", HONEST[p], payload.len(), if eph { ", ephemeral" } else { "" }));
                    match self.chans[p].send(now, &rid, &payload, eph) {
                        Ok(()) => self.accepted[i] = true,
                        Err(e) => self.violation(Inv::Lifecycle, format!("{} could not send {rid}: {e}", HONEST[p])),
                    }
                    self.step(p);
                }
                Ev::Deliver { to, p, retrieved } => {
                    self.tr(|| format!("{} <- {}{}", HONEST[to], p.describe(), if retrieved { " (store)" } else { "" }));
                    if let Some(id) = p.sds_id() {
                        self.arrivals[to].entry(id.to_owned()).or_insert(now);
                    }
                    self.chans[to].on_message(now, &p.msg, Some(p.hash));
                    self.step(to);
                }
                Ev::DispatchDone { to, token, hash } => {
                    if !self.chans[to].on_dispatch_result(now, token, Ok(Some(hash))) {
                        return Err(format!("{}: dispatch token {token} unknown", HONEST[to]));
                    }
                    self.step(to);
                }
                Ev::Hostile => {
                    let a = self.sc.attacks[self.mallory.rng.gen_range(0..self.sc.attacks.len())];
                    self.attack(a, None);
                }
                Ev::Probe => self.probe_message(),
            }
        }
    }

    /// The workload, then (Full family) the probe rounds: one probe message each into the idle
    /// channel, so that everything until it is quiet again is the reaction to that message.
    fn run_phases(&mut self) -> Result<(), String> {
        self.run()?;
        for round in 1..=self.sc.probes as usize {
            self.phase = round;
            self.tr(|| format!("---- probe round {round}"));
            self.schedule(self.now + PROBE_DELAY_MS, Ev::Probe);
            self.run()?;
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Mallory

/// A random 64-hex-digit id, like a content message id.
fn phantom_id(rng: &mut SmallRng) -> String {
    let mut b = [0u8; 32];
    rng.fill_bytes(&mut b);
    hex::encode(b)
}

fn chunk_frame(rng: &mut SmallRng, prev: &str, index: u32, last: u32, request_id: &str, payload: Vec<u8>) -> Bytes {
    let chunk = MessageChunk {
        chunk_id: format!("m-{}", &phantom_id(rng)[..20]),
        previous_chunk_id: prev.to_owned(),
        chunk_index: index,
        last_chunk_index: last,
        request_id: request_id.to_owned(),
        payload: Bytes::from(payload),
    };
    Bytes::from(chunk.encode_to_vec())
}

impl Sim<'_> {
    /// Publishes an SDS message of mallory's. `spoofed` when it carries an honest sender id.
    fn inject(&mut self, a: Attack, sds: SdsMessage) {
        if HONEST.contains(&sds.sender_id.as_str()) {
            self.mallory.spoofed.insert(sds.message_id.clone());
        }
        *self.mallory.sent.entry(a).or_default() += 1;
        let msg = WakuMessage::reliable(TOPIC, Bytes::from(sds.encode_to_vec()), self.now);
        let p = Arc::new(Pub::new(msg, None, self.now, self.next_serial()));
        self.tr(|| format!("mallory {a:?} {} ({} B)", p.describe(), p.msg.payload.len()));
        self.broadcast(&p);
    }

    fn sds(&self, sender: &str, message_id: String, lamport: Option<u64>, history: Vec<HistoryEntry>, content: Option<Bytes>) -> SdsMessage {
        SdsMessage {
            sender_id: sender.to_owned(),
            message_id,
            channel_id: CHANNEL.into(),
            lamport_timestamp: lamport,
            causal_history: history,
            bloom_filter: None,
            repair_request: Vec::new(),
            content,
        }
    }

    /// A message only mallory knows about: a made-up request id under `sender`.
    fn made_up(&mut self, what: &str, sender: &str, lamport: Option<u64>, history: Vec<HistoryEntry>, len: usize) -> SdsMessage {
        self.mallory.names += 1;
        let rid = format!("{what}-{}", self.mallory.names);
        self.mallory.made_up.insert((sender.to_owned(), rid.clone()));
        let mut payload = vec![0u8; len];
        self.mallory.rng.fill_bytes(&mut payload);
        let frame = chunk_frame(&mut self.mallory.rng, "", 0, 0, &rid, payload);
        let id = phantom_id(&mut self.mallory.rng);
        self.sds(sender, id, lamport, history, Some(frame))
    }

    /// Mallory's own id, or (sometimes) an honest participant's.
    fn some_sender(&mut self, spoof: f64) -> String {
        if self.mallory.rng.gen_bool(spoof) {
            HONEST[self.mallory.rng.gen_range(0..self.sc.n)].to_owned()
        } else {
            MALLORY.to_owned()
        }
    }

    /// True when an honest participant other than the sender has `id` (so naming it in a causal
    /// history acknowledges nothing that no honest peer received).
    fn honest_peer_has(&self, sender: Option<usize>, id: &str) -> bool {
        (0..self.sc.n).any(|q| Some(q) != sender && self.arrivals[q].contains_key(id))
    }

    fn attack(&mut self, a: Attack, target: Option<Arc<Pub>>) {
        let now = self.now;
        match a {
            Attack::ForgedChunk => {
                let target = target.or_else(|| {
                    let seen = &self.mallory.seen;
                    (!seen.is_empty()).then(|| seen[self.mallory.rng.gen_range(0..seen.len())].clone())
                });
                let Some(t) = target else { return };
                let (Some(c), Some((m, _))) = (&t.chunk, &t.sds) else { return };
                let sender = m.sender_id.clone();
                let roll: f64 = self.mallory.rng.gen();
                let first_id = self.chunk_ids.get(&(t.from.unwrap_or(0), c.request_id.clone())).and_then(|ids| ids.get(&0)).cloned();
                if roll < 0.2 {
                    // An exact copy of the chunk in a new SDS message: same content, so no harm
                    // done if it comes first; a copy of a finished message is not delivered again.
                    // It keeps the original's causal history: stripped of it, a copy could be
                    // delivered before the messages the original follows, and no receiver could
                    // tell (causal order rests on unauthenticated histories: excluded).
                    let id = phantom_id(&mut self.mallory.rng);
                    let msg = self.sds(&sender, id, m.lamport_timestamp, m.causal_history.clone(), m.content.clone());
                    self.inject(a, msg);
                } else if let Some(first) = first_id.filter(|f| roll < 0.4 && self.honest_peer_has(t.from, f)) {
                    // A duplicate first chunk with other content, causally after the real one.
                    let mut payload = vec![0u8; c.payload.len().max(1)];
                    self.mallory.rng.fill_bytes(&mut payload);
                    let last = if self.mallory.rng.gen_bool(0.3) { 0 } else { c.last_chunk_index };
                    let frame = chunk_frame(&mut self.mallory.rng, "", 0, last, &c.request_id, payload);
                    let history = vec![HistoryEntry { message_id: first, retrieval_hint: None, sender_id: Some(sender.clone()) }];
                    let id = phantom_id(&mut self.mallory.rng);
                    let msg = self.sds(&sender, id, Some(now), history, Some(frame));
                    self.inject(a, msg);
                } else {
                    // Issue #10 item 7: a later chunk with a garbage link, at any index.
                    let last = c.last_chunk_index.max(1);
                    let index = if self.mallory.rng.gen_bool(0.5) { (c.chunk_index + 2).min(last) } else { self.mallory.rng.gen_range(1..=last) };
                    let len = if self.mallory.rng.gen_bool(0.7) { c.payload.len().max(1) } else { self.mallory.rng.gen_range(1..=64) };
                    let garbage = phantom_id(&mut self.mallory.rng);
                    let frame = chunk_frame(&mut self.mallory.rng, &garbage[..36], index, last, &c.request_id, vec![0xee; len]);
                    let id = phantom_id(&mut self.mallory.rng);
                    let msg = self.sds(&sender, id, Some(now), Vec::new(), Some(frame));
                    self.inject(a, msg);
                }
            }
            Attack::Replay => {
                let old: Vec<Arc<Pub>> = self.store.values().filter(|p| p.from.is_some() && p.at + 20_000 <= now).cloned().collect();
                if old.is_empty() {
                    return;
                }
                // Deterministic pick: the store is a hash map, so order by hash first.
                let mut old = old;
                old.sort_by_key(|p| p.hash);
                let p = old[self.mallory.rng.gen_range(0..old.len())].clone();
                *self.mallory.sent.entry(a).or_default() += 1;
                self.tr(|| format!("mallory replays {}", p.describe()));
                self.broadcast(&p);
            }
            Attack::SpoofSender => {
                let victim = HONEST[self.mallory.rng.gen_range(0..self.sc.n)];
                let msg = self.made_up("spoof", victim, Some(now), Vec::new(), 32);
                self.inject(a, msg);
            }
            Attack::Lamport => {
                let sender = self.some_sender(0.3);
                let lamport = if self.mallory.rng.gen_bool(0.7) { u64::MAX } else { 0 };
                let msg = self.made_up("lamport", &sender, Some(lamport), Vec::new(), 16);
                self.inject(a, msg);
            }
            Attack::Bloom => {
                let all_ones = self.mallory.rng.gen_bool(0.5);
                let fill = self.mallory.rng.gen_range(0.75..0.95);
                let sender = self.some_sender(0.3);
                for _ in 0..2 {
                    let bloom: Vec<u8> = if all_ones {
                        vec![0xff; BLOOM_BYTES]
                    } else {
                        (0..BLOOM_BYTES).map(|_| (0..8).fold(0u8, |b, i| b | (u8::from(self.mallory.rng.gen_bool(fill)) << i))).collect()
                    };
                    let id = format!("sync-{}", &phantom_id(&mut self.mallory.rng)[..11]);
                    let mut msg = self.sds(&sender, id, Some(now), Vec::new(), None);
                    msg.bloom_filter = Some(Bytes::from(bloom));
                    self.inject(a, msg);
                }
            }
            Attack::Phantom => {
                let msg = self.phantom_message(0.3);
                self.inject(a, msg);
            }
            Attack::Invalid => {
                if self.mallory.rng.gen_bool(0.5) {
                    let msg = self.made_up("empty", "", Some(now), Vec::new(), 24);
                    self.mallory.invalid.insert((String::new(), format!("empty-{}", self.mallory.names)));
                    self.inject(a, msg);
                } else {
                    // A single chunk that makes the WakuMessage larger than the network allows.
                    let msg = self.made_up("oversized", MALLORY, Some(now), Vec::new(), MAX_WAKU_MESSAGE_BYTES + 1_024);
                    self.mallory.invalid.insert((MALLORY.to_owned(), format!("oversized-{}", self.mallory.names)));
                    self.inject(a, msg);
                }
            }
        }
    }

    /// Content (waits for its dependencies) or a sync naming 64–1,024 unknown ids.
    fn phantom_message(&mut self, spoof: f64) -> SdsMessage {
        // Mostly short lists: the long ones cost the simulation (not the victim) most.
        let count = [64, 64, 64, 128, 128, 256, 256, 1_024][self.mallory.rng.gen_range(0..8)];
        let hinted = self.mallory.rng.gen_bool(0.5);
        let mut history = Vec::with_capacity(count);
        for _ in 0..count {
            let message_id = phantom_id(&mut self.mallory.rng);
            let retrieval_hint = hinted.then(|| {
                let mut h = [0u8; 32];
                self.mallory.rng.fill_bytes(&mut h);
                Bytes::copy_from_slice(&h)
            });
            history.push(HistoryEntry { message_id, retrieval_hint, sender_id: None });
        }
        let sender = self.some_sender(spoof);
        let content = self.mallory.rng.gen_bool(0.7);
        if self.phase > 0 {
            self.probes.push(ProbeLoad { waiting: content, hinted_ids: if hinted { count as u64 } else { 0 } });
        }
        if content {
            self.made_up("phantom", &sender, Some(self.now), history, 16)
        } else {
            let id = format!("sync-{}", &phantom_id(&mut self.mallory.rng)[..11]);
            let repair = history.iter().take(64).map(|h| HistoryEntry { retrieval_hint: None, ..h.clone() }).collect();
            SdsMessage { repair_request: repair, ..self.sds(&sender, id, Some(self.now), history, None) }
        }
    }

    fn probe_message(&mut self) {
        let msg = self.phantom_message(0.0);
        self.inject(Attack::Phantom, msg);
    }
}

fn short_event(ev: &ChannelEvent) -> String {
    match ev {
        ChannelEvent::Received { request_id, sender_id, payload } => format!("RECEIVED {sender_id}/{request_id} ({} B)", payload.len()),
        other => format!("{other:?}"),
    }
}

// ---------------------------------------------------------------------------------------------
// Checks

impl Sim<'_> {
    /// The invariants that need the whole run: called after quiescence.
    fn check(&mut self) {
        let sc = self.sc;
        let by_key: HashMap<(&str, &str), usize> = sc.sends.iter().enumerate().map(|(i, p)| ((HONEST[p.from], p.request_id.as_str()), i)).collect();
        let mut v: Vec<(Inv, String)> = Vec::new();
        // Lifecycle and the senders' side of NoLoss / NoFalseDelivered.
        for p in 0..sc.n {
            let mut events: HashMap<&str, Vec<&'static str>> = HashMap::new();
            for (t, _, ev) in &self.log[p] {
                let (rid, kind) = match ev {
                    ChannelEvent::Sent { request_id } => (request_id, "SENT"),
                    ChannelEvent::SendError { request_id, .. } => (request_id, "SEND_ERROR"),
                    ChannelEvent::Delivered { request_id } => {
                        self.check_delivered(p, request_id, *t, &by_key, &mut v);
                        (request_id, "DELIVERED")
                    }
                    _ => continue,
                };
                events.entry(rid.as_str()).or_default().push(kind);
            }
            for (i, pl) in sc.sends.iter().enumerate().filter(|(_, pl)| pl.from == p) {
                let evs = events.remove(pl.request_id.as_str()).unwrap_or_default();
                let rid = &pl.request_id;
                if !self.accepted[i] {
                    continue;
                }
                if pl.ephemeral {
                    let rate_drop = sc.rate.is_some() && evs == ["SEND_ERROR"];
                    if evs != ["SENT"] && !rate_drop {
                        v.push((Inv::Lifecycle, format!("{}: ephemeral {rid} has events {evs:?}", HONEST[p])));
                    }
                } else if evs != ["SENT", "DELIVERED"] {
                    let inv = if evs.iter().filter(|k| **k != "SENT").count() == 1 { Inv::NoLoss } else { Inv::Lifecycle };
                    v.push((inv, format!("{}: {rid} has events {evs:?} (want SENT, DELIVERED)", HONEST[p])));
                }
            }
            for (rid, evs) in events {
                v.push((Inv::Lifecycle, format!("{}: events {evs:?} for unknown request {rid}", HONEST[p])));
            }
        }
        // Receivers.
        for r in 0..sc.n {
            let me = HONEST[r];
            let mut count: HashMap<(&str, &str), u32> = HashMap::new();
            let mut last_pos: HashMap<usize, usize> = HashMap::new();
            let mut lost_in = vec![0u64; self.published[r].len()];
            let mut lost_keys = Vec::new();
            for (_, phase, ev) in &self.log[r] {
                match ev {
                    ChannelEvent::Lost { request_id, sender_id, error } => {
                        lost_in[*phase] += 1;
                        if sender_id.as_deref() == Some(me) {
                            v.push((Inv::EchoSpoof, format!("{me} was told a message of its own id was lost: {error}")));
                        }
                        if let (Some(rid), Some(sid)) = (request_id, sender_id) {
                            lost_keys.push((sid.as_str(), rid.as_str()));
                        }
                    }
                    ChannelEvent::Received { request_id, sender_id, payload } => {
                        let key = (sender_id.as_str(), request_id.as_str());
                        let c = count.entry(key).or_default();
                        *c += 1;
                        if *c == 2 {
                            v.push((Inv::NoDuplicates, format!("{me} received {sender_id}/{request_id} twice")));
                        }
                        let owned = (sender_id.clone(), request_id.clone());
                        if sender_id == me {
                            v.push((Inv::Integrity, format!("{me} received {request_id} under its own id")));
                        } else if self.mallory.invalid.contains(&owned) {
                            v.push((Inv::RefusesInvalid, format!("{me} received the invalid message {sender_id:?}/{request_id}")));
                        } else if let Some(&i) = by_key.get(&key) {
                            let pl = &sc.sends[i];
                            if payload.as_slice() != pl.payload.as_slice() {
                                v.push((Inv::Integrity, format!("{me} received {request_id} with other content ({} B)", payload.len())));
                            }
                            if !pl.ephemeral {
                                let pos = sc.sends[..i].iter().filter(|q| q.from == pl.from && !q.ephemeral).count();
                                if last_pos.insert(pl.from, pos).is_some_and(|prev| prev >= pos) {
                                    v.push((Inv::Integrity, format!("{me} received {request_id} out of {sender_id}'s send order")));
                                }
                            }
                        } else if !self.mallory.made_up.contains(&owned) {
                            v.push((Inv::Integrity, format!("{me} received unknown message {sender_id:?}/{request_id}")));
                        }
                    }
                    _ => {}
                }
            }
            for key in lost_keys {
                if count.contains_key(&key) {
                    v.push((Inv::LostReports, format!("{me} got both RECEIVED and a loss report for {}/{}", key.0, key.1)));
                }
            }
            for (i, pl) in sc.sends.iter().enumerate() {
                if pl.from != r && self.accepted[i] && !pl.ephemeral && !count.contains_key(&(HONEST[pl.from], pl.request_id.as_str())) {
                    v.push((Inv::NoLoss, format!("{me} never received {} ({} B)", pl.request_id, pl.payload.len())));
                }
            }
            // Probe rounds: what one idle participant did about one hostile message.
            for (k, pr) in self.probes.iter().enumerate() {
                let (what, lost) = (if pr.waiting { "content" } else { "sync" }, lost_in[k + 1]);
                if lost > MAX_LOST_REPORTS_PER_WAITING_MESSAGE * u64::from(pr.waiting) {
                    v.push((Inv::LostReports, format!("{me}: {lost} loss reports for probe {} ({what})", k + 1)));
                }
                let published = self.published[r][k + 1];
                if published > MAX_PUBLISHED_PER_HOSTILE_MESSAGE {
                    v.push((Inv::Amplification, format!("{me} published {published} messages about probe {} ({what})", k + 1)));
                }
                let lookups = self.lookups[r][k + 1];
                if lookups > MAX_LOOKUPS_PER_HINTED_ID * (pr.hinted_ids + 1) {
                    let ids = pr.hinted_ids;
                    v.push((Inv::Amplification, format!("{me} made {lookups} store lookups about probe {} ({what}, {ids} hinted ids)", k + 1)));
                }
            }
            if self.chans[r].pending() != (0, 0) {
                v.push((Inv::Quiescence, format!("{me}: {:?} still pending at quiescence", self.chans[r].pending())));
            }
        }
        for (inv, msg) in v {
            self.violation(inv, msg);
        }
    }

    /// NoFalseDelivered for one DELIVERED event of participant `p` at time `t`.
    fn check_delivered(&self, p: usize, rid: &str, t: u64, by_key: &HashMap<(&str, &str), usize>, v: &mut Vec<(Inv, String)>) {
        let Some(&i) = by_key.get(&(HONEST[p], rid)) else { return };
        let n = self.sc.sends[i].payload.len().div_ceil(self.sc.config.chunk_size_bytes).max(1);
        let ids = self.chunk_ids.get(&(p, rid.to_owned()));
        for k in 0..n as u32 {
            let reached = ids
                .and_then(|ids| ids.get(&k))
                .is_some_and(|id| (0..self.sc.n).any(|q| q != p && self.arrivals[q].get(id.as_str()).is_some_and(|&a| a <= t)));
            if !reached {
                v.push((Inv::NoFalseDelivered, format!("{} DELIVERED {rid} but no honest peer had received chunk {k} of {n}", HONEST[p])));
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Runs

#[derive(Clone, Copy)]
struct Totals {
    published: u64,
    hostile: u64,
    received: u64,
    chunks_discarded: u64,
    probes: u64,
    virtual_ms: u64,
}

/// The sum of one of the totals over `runs`.
fn total<'a>(runs: impl IntoIterator<Item = &'a SeedRun>, field: fn(&Totals) -> u64) -> u64 {
    runs.into_iter().map(|r| field(&r.totals)).sum()
}

struct SeedRun {
    seed: u64,
    attacks: Vec<Attack>,
    summary: String,
    violations: Vec<(Inv, String)>,
    /// Hostile messages sent per attack.
    sent: BTreeMap<Attack, u64>,
    totals: Totals,
}

impl SeedRun {
    fn violates(&self, inv: Inv) -> bool {
        self.violations.iter().any(|(i, _)| *i == inv)
    }
}

fn run_seed(seed: u64, family: Family, trace: bool) -> (SeedRun, Option<String>) {
    let sc = scenario(seed, family);
    let mut sim = Sim::new(&sc, trace);
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        if let Err(e) = sim.run_phases() {
            sim.violation(Inv::Quiescence, e);
        } else {
            sim.check();
        }
    }));
    if let Err(panic) = outcome {
        let msg = panic.downcast_ref::<String>().cloned().or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()));
        sim.violations.push((Inv::NoPanic, format!("panic at +{} ms: {}", sim.now - T0, msg.unwrap_or_default())));
    }
    let totals = Totals {
        published: sim.published.iter().flatten().sum(),
        hostile: sim.mallory.sent.values().sum(),
        received: sim.log.iter().flatten().filter(|(_, _, e)| matches!(e, ChannelEvent::Received { .. })).count() as u64,
        chunks_discarded: sim.chans.iter().map(|c| c.stats().chunks_discarded).sum(),
        probes: sim.probes.len() as u64,
        virtual_ms: sim.now - T0,
    };
    let run = SeedRun {
        seed,
        attacks: sc.attacks.clone(),
        summary: sc.summary(),
        violations: std::mem::take(&mut sim.violations),
        sent: std::mem::take(&mut sim.mallory.sent),
        totals,
    };
    (run, sim.trace.take())
}

fn env_u64(key: &str) -> Option<u64> {
    std::env::var(key).ok().and_then(|v| v.trim().parse().ok())
}

/// Runs `count` seeds from `base` on all cores, in seed order.
fn run_family(family: Family, count: u64, base: u64) -> Vec<SeedRun> {
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get()).min(16) as u64;
    // Thread t takes every threads-th seed from base + t: seeds are alike in cost on average.
    let mut runs: Vec<SeedRun> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..threads)
            .map(|t| s.spawn(move || (t..count).step_by(threads as usize).map(|i| run_seed(base + i, family, false).0).collect::<Vec<_>>()))
            .collect();
        workers.into_iter().flat_map(|w| w.join().expect("a seed panicked outside its catch_unwind")).collect()
    });
    runs.sort_by_key(|r| r.seed);
    println!(
        "hostile_sim {family:?}: {count} seeds from {base}, {:.1} h virtual: {} honest publications, {} hostile messages ({} probes), {} receptions, {} chunks discarded",
        total(&runs, |t| t.virtual_ms) as f64 / 3_600_000.0,
        total(&runs, |t| t.published),
        total(&runs, |t| t.hostile),
        total(&runs, |t| t.probes),
        total(&runs, |t| t.received),
        total(&runs, |t| t.chunks_discarded),
    );
    runs
}

fn seeds() -> u64 {
    env_u64("HOSTILE_SEEDS").unwrap_or(1_000)
}

fn base() -> u64 {
    env_u64("HOSTILE_SEED_BASE").unwrap_or(0)
}

fn family_name(f: Family) -> &'static str {
    match f {
        Family::Full => "full",
        Family::Chunks => "chunks",
        Family::Quiet => "quiet",
    }
}

/// Panics with a report when a seed of `runs` violates `inv`: the first seeds' scenarios and
/// violations, how to replay them, and which attacks the failing seeds had enabled.
fn assert_holds(runs: &[&SeedRun], family: Family, inv: Inv) {
    let failing: Vec<&SeedRun> = runs.iter().copied().filter(|r| r.violates(inv)).collect();
    if failing.is_empty() {
        return;
    }
    let mut report = format!("invariant {inv:?} ({}) fails in {} of {} {family:?} seeds\n", inv.doc(), failing.len(), runs.len());
    for r in failing.iter().take(4) {
        let msgs: Vec<&str> = r.violations.iter().filter(|(i, _)| *i == inv).map(|(_, m)| m.as_str()).take(3).collect();
        let _ = writeln!(report, "---- {}  hostile messages {:?}\n  {}", r.summary.trim_end(), r.sent, msgs.join("\n  "));
        let name = family_name(family);
        let _ = writeln!(
            report,
            "  replay: HOSTILE_SEED={} HOSTILE_FAMILY={name} HOSTILE_TRACE=1 cargo test --release --test hostile_sim -- --exact replay --nocapture",
            r.seed
        );
    }
    if family == Family::Full {
        let _ = writeln!(report, "attacks enabled: in failing seeds / in all seeds");
        for a in ATTACKS {
            let with = |rs: &mut dyn Iterator<Item = &SeedRun>| rs.filter(|r| r.attacks.contains(&a)).count() as f64;
            let f = with(&mut failing.iter().copied()) / failing.len() as f64;
            let all = with(&mut runs.iter().copied()) / runs.len() as f64;
            let _ = writeln!(report, "  {a:?}: {:.0} % / {:.0} %", 100.0 * f, 100.0 * all);
        }
    }
    let seeds: Vec<u64> = failing.iter().map(|r| r.seed).take(30).collect();
    panic!("{report}failing seeds (first 30): {seeds:?}");
}

fn full_runs() -> Vec<&'static SeedRun> {
    static RUNS: OnceLock<Vec<SeedRun>> = OnceLock::new();
    RUNS.get_or_init(|| run_family(Family::Full, seeds(), base())).iter().collect()
}

// ---------------------------------------------------------------------------------------------
// Tests

/// The control group: no hostile participant. Every invariant holds for honest traffic alone, so
/// a violation elsewhere is mallory's doing (or a bug she exposed), not the harness's.
#[test]
fn quiet_control_group() {
    let runs = run_family(Family::Quiet, seeds().div_ceil(5), base());
    let runs: Vec<&SeedRun> = runs.iter().collect();
    for inv in INVARIANTS {
        assert_holds(&runs, Family::Quiet, inv);
    }
}

/// Forged chunks (garbage links at every index, duplicate first chunks, re-wrapped copies) and
/// replays: the real messages still arrive, once, intact. Fails without the segmentation fix of
/// issue #10 item 7. EchoSpoof is not checked here: a chunk forged under its real sender's id is
/// an echo spoof for that sender (item 5), checked by `full_echo_spoof`.
#[test]
fn forged_chunks_and_replays() {
    let runs = run_family(Family::Chunks, seeds().div_ceil(2), base());
    let runs: Vec<&SeedRun> = runs.iter().collect();
    for inv in INVARIANTS.into_iter().filter(|&i| i != Inv::EchoSpoof) {
        assert_holds(&runs, Family::Chunks, inv);
    }
    let (hostile, discarded) = (total(runs.iter().copied(), |t| t.hostile), total(runs.iter().copied(), |t| t.chunks_discarded));
    assert!(hostile > 0 && discarded > 0, "mallory forged nothing that reached the reassembler");
}

/// Seeds in which a flood of phantom ids crowded a real missing chunk out of the repair requests
/// (see `phantom_flood_does_not_starve_repair`): 340 and 419 of the default 1,000, 5455 beyond them.
const REPAIR_STARVED_SEEDS: [u64; 3] = [340, 419, 5455];

/// Found by this simulation (seeds 5455 and 340): a flood of phantom ids without retrieval hint crowds out the repair
/// request for a real missing chunk. A sync's repair request carries the 64 missing ids with the
/// earliest deadlines; alice missed chunk 6 of dave-0 (its sender, acknowledged by the others, no
/// longer retransmitted it), thousands of mallory's ids came first, and the chunk was declared
/// lost before its turn. Fixed by the order in which a sync picks the ids it asks for
/// (src/sds/requests.rs: asked fewest times, waited for, by a message missing few, first).
/// Seed 419: alice missed chunk 3 of carol-3 (its hint never reached her: it was wrapped before
/// its predecessors were dispatched, and bob's sync naming it with its hint was lost); she asked
/// for it once, the answers were lost, and then the round robin put the 1,000 phantom ids never
/// asked for yet ahead of it, 64 per sync, until the dependency timeout. Fixed by asking for
/// urgent ids (a message missing few dependencies waits for them) before the round robin.
#[test]
fn phantom_flood_does_not_starve_repair() {
    for seed in REPAIR_STARVED_SEEDS {
        let (run, _) = run_seed(seed, Family::Full, false);
        let v: Vec<String> = run.violations.iter().map(|(i, m)| format!("{i:?}: {m}")).collect();
        assert!(!run.violates(Inv::NoLoss), "seed {seed}:\n{}", v.join("\n"));
    }
}

/// Mallory did everything she can, and the probe phase ran.
#[test]
fn full_coverage() {
    let runs = full_runs();
    for a in ATTACKS {
        let sent: u64 = runs.iter().map(|r| r.sent.get(&a).copied().unwrap_or(0)).sum();
        assert!(sent > 0 || runs.len() < 50, "attack {a:?} never sent");
    }
    let unfinished = |r: &SeedRun| r.violates(Inv::Quiescence) || r.violates(Inv::NoPanic);
    assert!(runs.iter().all(|r| r.totals.probes > 0 || unfinished(r)), "a seed ran without its probe round");
    assert!(total(runs.iter().copied(), |t| t.chunks_discarded) > 0, "no forged chunk reached a reassembler");
}

macro_rules! full_invariant {
    ($($(#[$attr:meta])* $name:ident => $inv:expr;)*) => {$(
        $(#[$attr])*
        #[test]
        fn $name() {
            assert_holds(&full_runs(), Family::Full, $inv);
        }
    )*};
}

// The `#[ignore]`d invariants fail on this branch for the reasons given: once fixed, the
// `#[ignore]` lines go (`make test-hostile` runs them meanwhile).
full_invariant! {
    full_no_loss => Inv::NoLoss;
    full_no_duplicates => Inv::NoDuplicates;
    full_no_false_delivered => Inv::NoFalseDelivered;
    full_integrity => Inv::Integrity;
    full_lifecycle => Inv::Lifecycle;
    full_amplification => Inv::Amplification;
    full_lost_reports => Inv::LostReports;
    full_echo_spoof => Inv::EchoSpoof;
    full_lamport => Inv::Lamport;
    full_refuses_invalid => Inv::RefusesInvalid;
    full_bounds => Inv::Bounds;
    full_rln_budget => Inv::RlnBudget;
    full_quiescence => Inv::Quiescence;
    full_no_panic => Inv::NoPanic;
}

/// The same seed gives the same run; `HOSTILE_SEED=s` (with `HOSTILE_FAMILY`, `HOSTILE_TRACE=1`)
/// replays one seed and prints its violations (and trace).
#[test]
fn replay() {
    if let Some(seed) = env_u64("HOSTILE_SEED") {
        let family = match std::env::var("HOSTILE_FAMILY").as_deref() {
            Ok("chunks") => Family::Chunks,
            Ok("quiet") => Family::Quiet,
            _ => Family::Full,
        };
        let (run, trace) = run_seed(seed, family, std::env::var("HOSTILE_TRACE").is_ok_and(|v| v != "0"));
        if let Some(t) = trace {
            println!("{t}");
        }
        println!("{}chunks discarded: {}, hostile messages: {:?}", run.summary, run.totals.chunks_discarded, run.sent);
        for (inv, msg) in &run.violations {
            println!("{inv:?}: {msg}");
        }
        assert!(run.violations.is_empty(), "seed {seed} violates {} invariants", run.violations.len());
        return;
    }
    for seed in [1, 7, 42] {
        for family in [Family::Full, Family::Chunks] {
            let (a, ta) = run_seed(seed, family, true);
            let (b, tb) = run_seed(seed, family, true);
            assert!(ta == tb && a.violations == b.violations, "seed {seed} ({family:?}) is not deterministic");
        }
    }
}
