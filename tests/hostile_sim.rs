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
//!
//! This file holds the simulator and the tests; the scenario and invariants, mallory's attacks and
//! the end-of-run checks are in tests/hostile_sim_support/.

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

mod hostile_sim_support;
use hostile_sim_support::mallory::short_event;
use hostile_sim_support::scenario::*;

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
