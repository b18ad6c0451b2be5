//! RLN-budget efficiency: WakuMessages published per delivered message, measured
//! deterministically on a virtual clock (`make bench-wire`, i.e. `cargo bench --bench wire`).
//!
//! On The Waku Network a participant may publish 100 messages per 10-minute RLN epoch, and every
//! sync, retransmission and repair answer spends that budget: what matters there is how many
//! WakuMessages the protocol publishes per message it delivers, not how fast it runs.
//!
//! The harness drives the sans-I/O [`Channel`] directly, as `tests/simulation.rs` does: one
//! channel per participant with the **default** `ChannelConfig` (ack timeout 5 s, sync interval
//! 30 s, default RLN rate limit of 100 per 600 s epoch with `firstChunk` accounting, ...), an
//! event queue on a virtual clock, timers driven by `next_deadline()` / `handle_timeout()`.
//!
//! * Workload: every participant sends `messages` payloads of [`PAYLOAD_BYTES`] bytes of text,
//!   one per `interval`, starting at its own random phase within the first interval. The run
//!   starts at a random point of an RLN epoch (per seed). Paces: chat (200 messages, one per 3 s:
//!   twice what the budget allows) and RLN (50, one per 12 s: half the budget, the rest for
//!   acknowledgements and repair).
//! * Network: each publication reaches each other participant independently with probability
//!   1 − loss, after [`RELAY_DELAY_MS`]; no duplication, no echo to the publisher (the channel
//!   drops echoes by hash before any work, so they change nothing here). The messaging layer
//!   confirms every publication (`on_dispatch_result(Ok(hash))`) after [`DISPATCH_DELAY_MS`].
//! * Store: holds every publication; `Retrieve { hashes }` is answered without loss after
//!   [`STORE_RTT_MS`], like the memory network's store. Store fetches are free (no budget). The
//!   channels are told a store exists (`Channel::set_store_available`, as the runtime does for a
//!   transport with a store), so they use the store-aware timing; `WIRE_STORE=0` leaves them
//!   unaware (the store still answers), to measure without it.
//! * A run ends when the network is quiescent (no event queued, no timer armed: every send is
//!   final and the idle syncs have run out) or at [`HORIZON_AFTER_LAST_SEND_MS`] after the last
//!   send. Everything published until then counts, the wind-down (last ack syncs, idle syncs)
//!   included; the share published after the last message reached every receiver is reported
//!   as "tail".
//!
//! Measured per run, then per cell (participants × pace × loss, [`DEFAULT_SEEDS`] seeds):
//! WakuMessages published per delivered message (a message is delivered when every other
//! participant RECEIVED it), by kind (content first dispatch, retransmission, sync, rebroadcast;
//! from `ChannelStats`, cross-checked against the decoded publications; repair answers are syncs
//! and are counted among them as well as on their own); delivered messages per participant per
//! 100-message budget (each participant's messages delivered × 100 / the budget it spent,
//! costed from the decoded publications with the accounting rule); bytes published (encoded
//! WakuMessages) per payload byte delivered; time to delivery (first RECEIVED at a receiver
//! minus the send time, per message and receiver); duplicates and missing receptions.
//!
//! The ideal for the same loss p with n receivers: transmit until every receiver has it, i.e.
//! E[max of n geometric(1 − p) draws] = Σ_{k≥0} (1 − (1 − p^k)^n) transmissions per message
//! (1/(1 − p) for one receiver), acknowledgements free (they ride on content). See [`ideal`].
//!
//! Output: a table on stdout and `target/bench/wire.json` (the same for every run: nothing
//! depends on the machine's clock); `benches/plot_wire.py` draws `docs/wire_efficiency.png`.
//! Options (environment): see [`Options`].

// Participants are indices into `NAMES` and the per-participant vectors alike.
#![allow(clippy::needless_range_loop)]

use std::cmp::Ordering;
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering as AtomicOrdering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use prost::Message as _;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use reliable_channel::channel::{Channel, ChannelAction, ChannelConfig, ChannelEvent};
use reliable_channel::wire::{HistoryEntry, MessageChunk, MessageHash, MessageKind, SdsMessage, WakuMessage};
use serde_json::{json, Value};

#[path = "wire_support/report.rs"]
mod report;
use report::{mixed_table, summarize, table};

const CHANNEL: &str = "bench-wire";
const TOPIC: &str = "/bench/1/wire/proto";
const PUBSUB: &str = "/waku/2/rs/0/0";
const NAMES: [&str; 4] = ["alice", "bob", "carol", "dave"];

/// Payload of every send: text, like a chat message.
const PAYLOAD_BYTES: usize = 200;
const PARTICIPANTS: [usize; 2] = [2, 4];
const LOSSES: [f64; 4] = [0.0, 0.1, 0.2, 0.3];
const DEFAULT_SEEDS: u64 = 10;

/// One workload: `messages` sends per participant, one every `interval_ms`.
struct Pace {
    name: &'static str,
    messages: usize,
    interval_ms: u64,
}

const PACES: [Pace; 2] = [Pace { name: "chat", messages: 200, interval_ms: 3_000 }, Pace { name: "rln", messages: 50, interval_ms: 12_000 }];

/// Relay latency of one copy (ms, uniform): a few gossipsub hops.
const RELAY_DELAY_MS: (u64, u64) = (50, 250);
/// Until the messaging layer reports a publication accepted (ms, uniform).
const DISPATCH_DELAY_MS: (u64, u64) = (1, 30);
/// Store query round trip (ms, uniform).
const STORE_RTT_MS: (u64, u64) = (100, 300);
/// A run not quiescent this long after its last send is stopped (and flagged).
const HORIZON_AFTER_LAST_SEND_MS: u64 = 2 * 3_600_000;
/// Guard against a livelock in the harness or the channel.
const MAX_STEPS: u64 = 20_000_000;
/// An RLN epoch boundary (a multiple of the default 600 s epoch); each seed starts at a random
/// point of the epoch that follows it.
const EPOCH_START: u64 = 1_700_000_400_000;
/// The default RLN budget, for the "per 100-message budget" figure.
const BUDGET: f64 = 100.0;
/// The goal the protocol work aims at (issue #10), drawn in the plot.
const GOAL_WM_PER_DELIVERED: f64 = 1.5;

/// Expected transmissions per message until each of `receivers` independent receivers, each
/// losing a transmission with probability `p`, has it: E[max of n geometric(1 − p)] =
/// Σ_{k≥0} P(max > k) = Σ_{k≥0} (1 − (1 − p^k)^n). With one receiver this is 1/(1 − p).
fn ideal(receivers: usize, p: f64) -> f64 {
    let mut sum = 0.0;
    for k in 0..10_000 {
        let term = 1.0 - (1.0 - p.powi(k)).powi(receivers as i32);
        sum += term;
        if term < 1e-12 {
            break;
        }
    }
    sum
}

/// [`ideal`] against the closed forms it must match: 1 for no loss, 1/(1 − p) for one receiver,
/// 2/(1 − p) − 1/(1 − p²) for two (E[max] = E[X] + E[Y] − E[min], min geometric(1 − p²)).
fn check_ideal() {
    for &p in &LOSSES {
        let close = |a: f64, b: f64| (a - b).abs() < 1e-9;
        assert!(close(ideal(3, 0.0), 1.0), "ideal without loss");
        assert!(close(ideal(1, p), 1.0 / (1.0 - p)), "ideal for one receiver at loss {p}");
        assert!(close(ideal(2, p), 2.0 / (1.0 - p) - 1.0 / (1.0 - p * p)), "ideal for two receivers at loss {p}");
        assert!(ideal(3, p) >= ideal(2, p), "more receivers never need fewer transmissions");
    }
}

// ---------------------------------------------------------------------------------------------
// One run

#[derive(Clone, Copy)]
struct Cell {
    n: usize,
    pace: &'static Pace,
    loss: f64,
}

enum Ev {
    Send { from: usize, k: usize },
    Deliver { to: usize, msg: Arc<WakuMessage>, hash: MessageHash },
    Done { to: usize, token: u64, hash: MessageHash },
}

/// A queued event, ordered by (time, insertion) and popped earliest first.
struct Scheduled {
    at: u64,
    seq: u64,
    ev: Ev,
}

impl PartialEq for Scheduled {
    fn eq(&self, o: &Self) -> bool {
        (self.at, self.seq) == (o.at, o.seq)
    }
}
impl Eq for Scheduled {}
impl PartialOrd for Scheduled {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Scheduled {
    fn cmp(&self, o: &Self) -> Ordering {
        (o.at, o.seq).cmp(&(self.at, self.seq))
    }
}

/// What one run measured.
#[derive(Debug, Default, Clone)]
struct RunResult {
    seed: u64,
    sent: u64,
    /// Messages RECEIVED by every other participant.
    delivered: u64,
    /// Per participant: its messages delivered, and the budget it spent.
    delivered_by: Vec<u64>,
    cost_by: Vec<u64>,
    /// Receptions expected (sent × receivers) but missing, and extra (duplicate) RECEIVED events.
    missing: u64,
    duplicates: u64,
    wrong_payload: u64,
    send_errors: u64,
    lost_events: u64,
    published: u64,
    content: u64,
    retransmissions: u64,
    syncs: u64,
    rebroadcasts: u64,
    /// Repair answers generated (syncs carrying hints a peer asked for), by the SDS engines.
    repairs: u64,
    /// Sync and ephemeral traffic the rate limiter refused near the budget.
    rate_limit_dropped: u64,
    store_fetches: u64,
    bytes_published: u64,
    payload_bytes_delivered: u64,
    /// Publications after the last message reached every receiver.
    tail: u64,
    latencies_ms: Vec<u64>,
    /// (sender, receiver) of each entry of `latencies_ms`.
    latency_pairs: Vec<(usize, usize)>,
    /// Per participant: WakuMessages published, retransmissions, syncs, sends ended SEND_ERROR.
    published_by: Vec<u64>,
    retx_by: Vec<u64>,
    syncs_by: Vec<u64>,
    send_errors_by: Vec<u64>,
    virtual_ms: u64,
    quiescent: bool,
}

struct Run {
    cell: Cell,
    now: u64,
    last_send: u64,
    rng: SmallRng,
    heap: BinaryHeap<Scheduled>,
    seq: u64,
    chans: Vec<Channel>,
    store: HashMap<MessageHash, Arc<WakuMessage>>,
    /// `[from][k]`: send time, and per receiver the first RECEIVED time and the RECEIVED count.
    sent_at: Vec<Vec<Option<u64>>>,
    first_rx: Vec<Vec<Vec<Option<u64>>>>,
    rx_count: Vec<Vec<Vec<u32>>>,
    payloads: Vec<Vec<Vec<u8>>>,
    /// Content ids each participant has published (a repeat is a retransmission or rebroadcast).
    published_ids: Vec<HashSet<String>>,
    /// Decoded publications: (new content, repeated content, sync).
    decoded: (u64, u64, u64),
    /// Print every publication and final outcome (`WIRE_TRACE`), with the time since `t0`.
    trace: bool,
    /// (participant, message id) → order of first publication, for the trace's request ids.
    trace_rids: HashMap<(usize, String), usize>,
    t0: u64,
    complete_at_published: Option<u64>,
    complete_receptions: u64,
    r: RunResult,
}

/// 200 bytes of text: who, which, then filler.
fn payload(from: usize, k: usize) -> Vec<u8> {
    const FILLER: &str = "the quick brown fox jumps over the lazy dog; ";
    let mut s = format!("{} message {k}: ", NAMES[from]);
    while s.len() < PAYLOAD_BYTES {
        s.push_str(FILLER);
    }
    s.truncate(PAYLOAD_BYTES);
    s.into_bytes()
}

/// RLN cost of a publication under `firstChunk` accounting (the default): a sync costs 1, a
/// content chunk 1 when it is the first chunk of its message, later chunks nothing.
fn cost(sds: &SdsMessage, kind: MessageKind) -> u64 {
    match kind {
        MessageKind::Sync => 1,
        MessageKind::Content | MessageKind::Ephemeral => {
            let chunk = sds.content.clone().and_then(|c| MessageChunk::decode_bytes(c).ok());
            u64::from(chunk.is_some_and(|c| c.chunk_index == 0))
        }
    }
}

impl Run {
    fn new(cell: Cell, seed: u64, opts: &Options, trace: bool) -> Self {
        let config = &opts.config;
        let mut rng = SmallRng::seed_from_u64(seed ^ 0x0b1e_55ed ^ ((cell.n as u64) << 32));
        let t0 = EPOCH_START + rng.gen_range(0..config.rate_limit.epoch_size_ms.max(1));
        let n = cell.n;
        let chans = (0..n)
            .map(|p| {
                let mut ch = Channel::new(CHANNEL, TOPIC, NAMES[p], config.clone(), t0, seed.wrapping_mul(131).wrapping_add(p as u64));
                ch.set_store_available(opts.store_for(p));
                ch
            })
            .collect();
        let m = cell.pace.messages;
        let mut run = Run {
            cell,
            now: t0,
            last_send: t0,
            rng,
            heap: BinaryHeap::new(),
            seq: 0,
            chans,
            store: HashMap::new(),
            sent_at: vec![vec![None; m]; n],
            first_rx: vec![vec![vec![None; n]; m]; n],
            rx_count: vec![vec![vec![0; n]; m]; n],
            payloads: (0..n).map(|p| (0..m).map(|k| payload(p, k)).collect()).collect(),
            published_ids: vec![HashSet::new(); n],
            decoded: (0, 0, 0),
            trace,
            trace_rids: HashMap::new(),
            t0,
            complete_at_published: None,
            complete_receptions: 0,
            r: RunResult {
                seed,
                delivered_by: vec![0; n],
                cost_by: vec![0; n],
                published_by: vec![0; n],
                retx_by: vec![0; n],
                syncs_by: vec![0; n],
                send_errors_by: vec![0; n],
                ..Default::default()
            },
        };
        for from in 0..n {
            let phase = run.rng.gen_range(0..cell.pace.interval_ms);
            for k in 0..m {
                let at = t0 + phase + k as u64 * cell.pace.interval_ms;
                run.last_send = run.last_send.max(at);
                run.schedule(at, Ev::Send { from, k });
            }
        }
        run
    }

    fn schedule(&mut self, at: u64, ev: Ev) {
        self.seq += 1;
        self.heap.push(Scheduled { at, seq: self.seq, ev });
    }

    fn publish(&mut self, p: usize, token: u64, message: WakuMessage) {
        self.r.published += 1;
        self.r.published_by[p] += 1;
        self.r.bytes_published += message.encoded_len() as u64;
        let (sds, kind) = SdsMessage::decode_bytes(message.payload.clone()).expect("the channel publishes decodable SDS messages");
        self.r.cost_by[p] += cost(&sds, kind);
        let what = match kind {
            MessageKind::Sync => {
                self.decoded.2 += 1;
                "sync"
            }
            _ if self.published_ids[p].insert(sds.message_id.clone()) => {
                self.decoded.0 += 1;
                "content"
            }
            _ => {
                self.decoded.1 += 1;
                "content again"
            }
        };
        if self.trace {
            let st = self.chans[p].stats();
            let id = &sds.message_id[..sds.message_id.len().min(12)];
            // `+` marks an entry with a retrieval hint (fetchable from the store).
            let hinted =
                |h: &HistoryEntry| format!("{}{}", &h.message_id[..h.message_id.len().min(8)], if h.retrieval_hint.is_some() { "+" } else { "" });
            let history: Vec<String> = sds.causal_history.iter().map(hinted).collect();
            let (used, queued) = (st.rate_limit_used_in_epoch, st.rate_limit_queued);
            // Single-chunk messages go out in send order: the n-th new content is `name-(n-1)`.
            let rid = if kind == MessageKind::Sync { String::new() } else { format!(" ({})", self.trace_rid(p, &sds.message_id)) };
            self.trace_line(p, &format!("publishes {what} {id}{rid} history {history:?} (RLN used {used}, queued {queued})"));
        }
        let hash = message.hash(PUBSUB);
        let msg = Arc::new(message);
        self.store.insert(hash, msg.clone());
        let done = self.now + self.rng.gen_range(DISPATCH_DELAY_MS.0..=DISPATCH_DELAY_MS.1);
        self.schedule(done, Ev::Done { to: p, token, hash });
        for to in (0..self.cell.n).filter(|&to| to != p) {
            if self.rng.gen_bool(self.cell.loss) {
                continue;
            }
            let at = self.now + self.rng.gen_range(RELAY_DELAY_MS.0..=RELAY_DELAY_MS.1);
            self.schedule(at, Ev::Deliver { to, msg: msg.clone(), hash });
        }
    }

    fn on_event(&mut self, p: usize, ev: ChannelEvent) {
        match ev {
            ChannelEvent::Received { request_id, sender_id, payload } => {
                let from = NAMES.iter().position(|n| *n == sender_id).expect("a known sender");
                let k: usize = request_id.rsplit('-').next().and_then(|k| k.parse().ok()).expect("a request id of ours");
                if payload != self.payloads[from][k] {
                    self.r.wrong_payload += 1;
                }
                self.rx_count[from][k][p] += 1;
                if self.rx_count[from][k][p] > 1 {
                    self.r.duplicates += 1;
                    return;
                }
                self.first_rx[from][k][p] = Some(self.now);
                if let Some(sent) = self.sent_at[from][k] {
                    self.r.latencies_ms.push(self.now - sent);
                    self.r.latency_pairs.push((from, p));
                    self.trace_line(p, &format!("RECEIVED {request_id} after {:.3} s", (self.now - sent) as f64 / 1e3));
                }
                self.complete_receptions += 1;
                let expected = (self.cell.n * (self.cell.n - 1) * self.cell.pace.messages) as u64;
                if self.complete_receptions == expected {
                    self.complete_at_published = Some(self.r.published);
                }
            }
            ChannelEvent::SendError { request_id, error } => {
                self.r.send_errors += 1;
                self.r.send_errors_by[p] += 1;
                self.trace_line(p, &format!("SEND_ERROR {request_id}: {error}"));
            }
            ChannelEvent::Lost { request_id, sender_id, error } => {
                self.r.lost_events += 1;
                self.trace_line(p, &format!("LOST {sender_id:?}/{request_id:?}: {error}"));
            }
            ChannelEvent::Delivered { request_id } => self.trace_line(p, &format!("acknowledged {request_id}")),
            ChannelEvent::Sent { .. } => {}
        }
    }

    /// The request id of participant `p`'s content message `message_id`, for the trace.
    fn trace_rid(&mut self, p: usize, message_id: &str) -> String {
        let next = self.trace_rids.len();
        let k = *self.trace_rids.entry((p, message_id.to_owned())).or_insert(next);
        let k = self.trace_rids.iter().filter(|((q, _), &j)| *q == p && j < k).count();
        format!("{}-{k}", NAMES[p])
    }

    fn trace_line(&self, p: usize, line: &str) {
        if self.trace {
            eprintln!("{:>10.3} s {:>5} {line}", (self.now - self.t0) as f64 / 1e3, NAMES[p]);
        }
    }

    /// Drains participant `p`'s actions into the network.
    fn drain(&mut self, p: usize) {
        while let Some(a) = self.chans[p].poll_action() {
            match a {
                ChannelAction::Dispatch { token, message } => self.publish(p, token, message),
                ChannelAction::Retrieve { hashes } => {
                    for hash in hashes {
                        self.r.store_fetches += 1;
                        let msg = self.store.get(&hash).cloned().expect("retrieval of a published message");
                        let at = self.now + self.rng.gen_range(STORE_RTT_MS.0..=STORE_RTT_MS.1);
                        self.schedule(at, Ev::Deliver { to: p, msg, hash });
                    }
                }
                ChannelAction::Event(ev) => self.on_event(p, ev),
            }
        }
    }

    fn run(mut self) -> RunResult {
        let horizon = self.last_send + HORIZON_AFTER_LAST_SEND_MS;
        let start = self.now;
        let mut quiescent = false;
        for _ in 0..MAX_STEPS {
            let timer = (0..self.cell.n).filter_map(|p| self.chans[p].next_deadline().map(|t| (t, p))).min();
            let next_ev = self.heap.peek().map(|s| s.at);
            let fire_timer = match (timer, next_ev) {
                (None, None) => {
                    quiescent = true;
                    break;
                }
                (Some((t, _)), Some(e)) => t <= e,
                (Some(_), None) => true,
                (None, Some(_)) => false,
            };
            let at = if fire_timer { timer.map_or(0, |t| t.0) } else { next_ev.unwrap_or(0) };
            if at > horizon {
                break;
            }
            self.now = self.now.max(at);
            let now = self.now;
            if fire_timer {
                let p = timer.map_or(0, |t| t.1);
                self.chans[p].handle_timeout(now);
                self.drain(p);
                continue;
            }
            let s = self.heap.pop().expect("an event is queued");
            match s.ev {
                Ev::Send { from, k } => {
                    self.sent_at[from][k] = Some(now);
                    let rid = format!("{}-{k}", NAMES[from]);
                    let payload = std::mem::take(&mut self.payloads[from][k]);
                    let accepted = self.chans[from].send(now, &rid, &payload, false);
                    self.payloads[from][k] = payload;
                    self.trace_line(from, &format!("sends {rid}"));
                    match accepted {
                        Ok(()) => self.r.sent += 1,
                        Err(e) => eprintln!("{} refused send {rid}: {e}", NAMES[from]),
                    }
                    self.drain(from);
                }
                Ev::Deliver { to, msg, hash } => {
                    self.chans[to].on_message(now, &msg, Some(hash));
                    self.drain(to);
                }
                Ev::Done { to, token, hash } => {
                    let known = self.chans[to].on_dispatch_result(now, token, Ok(Some(hash)));
                    assert!(known, "{}: dispatch token {token} unknown", NAMES[to]);
                    self.drain(to);
                }
            }
        }
        self.finish(start, quiescent)
    }

    fn finish(mut self, start: u64, quiescent: bool) -> RunResult {
        let (n, m) = (self.cell.n, self.cell.pace.messages);
        let mut r = std::mem::take(&mut self.r);
        r.quiescent = quiescent;
        r.virtual_ms = self.now - start;
        r.tail = self.complete_at_published.map_or(0, |at| r.published - at);
        for from in 0..n {
            for k in 0..m {
                let got = (0..n).filter(|&to| to != from && self.rx_count[from][k][to] > 0).count();
                for to in (0..n).filter(|&to| to != from && self.rx_count[from][k][to] == 0) {
                    self.trace_line(to, &format!("never RECEIVED {}-{k}", NAMES[from]));
                }
                r.missing += (n - 1 - got) as u64;
                if got == n - 1 {
                    r.delivered += 1;
                    r.delivered_by[from] += 1;
                    r.payload_bytes_delivered += self.payloads[from][k].len() as u64;
                }
            }
        }
        for (p, ch) in self.chans.iter().enumerate() {
            let s = ch.stats();
            r.retx_by[p] = s.retransmissions + s.rebroadcasts;
            r.syncs_by[p] = s.syncs_sent;
            r.content += s.chunks_sent;
            r.retransmissions += s.retransmissions;
            r.syncs += s.syncs_sent;
            r.rebroadcasts += s.rebroadcasts;
            r.rate_limit_dropped += s.rate_limit_dropped;
            r.repairs += ch.sds().stats().repairs;
        }
        // The channel's counters and the decoded publications must tell the same story.
        let (new, repeated, syncs) = self.decoded;
        assert_eq!(
            (new, repeated, syncs),
            (r.content, r.retransmissions + r.rebroadcasts, r.syncs),
            "decoded publications (new content, repeated content, syncs) disagree with ChannelStats"
        );
        assert_eq!(r.published, new + repeated + syncs);
        r
    }
}

/// Environment options: `WIRE_SEEDS=n` seeds per cell; `WIRE_CONFIG='{...}'` channel JSON applied
/// over the defaults, to try a protocol variant (written to `wire_variant.json`; the baseline is
/// the default); `WIRE_STORE=0`: the channels are not told about the store (the plain timing;
/// also written to `wire_variant.json`); `WIRE_MIXED=1`: participant 0 (alice) on the plain
/// timing, the others store-aware (a peer on an older version, or on a host transport without a
/// store hook), `WIRE_MIXED=2`: participant 0 store-aware, the others plain (overrides
/// `WIRE_STORE`; prints a per-side table too, written to `wire_mixed1.json` / `wire_mixed2.json`);
/// `WIRE_TRACE=n,pace,loss,seed` (e.g. `2,chat,0.2,7`) prints that run's sends, publications,
/// receptions and failures to stderr.
struct Options {
    seeds: u64,
    config: ChannelConfig,
    config_json: Option<String>,
    store: bool,
    /// 0: every participant on the same timing (`store`); 1 or 2: see above.
    mixed: u8,
    trace: Option<String>,
}

impl Options {
    fn from_env() -> Self {
        let var = |k: &str| std::env::var(k).ok().map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
        let seeds = var("WIRE_SEEDS").and_then(|v| v.parse().ok()).filter(|&n| n > 0).unwrap_or(DEFAULT_SEEDS);
        let config_json = var("WIRE_CONFIG");
        let config = match ChannelConfig::default().with_json(config_json.as_deref()) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("WIRE_CONFIG: {e}");
                std::process::exit(2);
            }
        };
        let store = var("WIRE_STORE").is_none_or(|v| v != "0");
        let mixed = match var("WIRE_MIXED").as_deref() {
            None | Some("0") => 0,
            Some("1") => 1,
            Some("2") => 2,
            Some(other) => {
                eprintln!("WIRE_MIXED: 0, 1 or 2, not {other:?}");
                std::process::exit(2);
            }
        };
        Options { seeds, config, config_json, store, mixed, trace: var("WIRE_TRACE") }
    }

    /// Whether participant `p` is told about the store (uses the store-aware timing).
    fn store_for(&self, p: usize) -> bool {
        match self.mixed {
            1 => p != 0,
            2 => p == 0,
            _ => self.store,
        }
    }

    fn traced(&self, cell: Cell, seed: u64) -> bool {
        self.trace.as_deref() == Some(format!("{},{},{},{seed}", cell.n, cell.pace.name, cell.loss).as_str())
    }
}

fn main() {
    // `cargo bench` passes `--bench`; filters are not supported (the matrix is small).
    let opts = Options::from_env();
    check_ideal();
    let seeds = opts.seeds;
    let mut cells = Vec::new();
    for &n in &PARTICIPANTS {
        for pace in &PACES {
            for &loss in &LOSSES {
                cells.push(Cell { n, pace, loss });
            }
        }
    }
    let jobs: Vec<(usize, u64)> = (0..cells.len()).flat_map(|c| (0..seeds).map(move |s| (c, s))).collect();
    let results: Mutex<Vec<Option<RunResult>>> = Mutex::new(vec![None; jobs.len()]);
    let next = AtomicUsize::new(0);
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get()).min(8);
    let started = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| loop {
                let i = next.fetch_add(1, AtomicOrdering::Relaxed);
                let Some(&(c, seed)) = jobs.get(i) else { break };
                let r = Run::new(cells[c], seed, &opts, opts.traced(cells[c], seed)).run();
                results.lock().unwrap_or_else(|e| e.into_inner())[i] = Some(r);
            });
        }
    });
    let results = results.into_inner().unwrap_or_else(|e| e.into_inner());
    let summaries: Vec<Value> = cells
        .iter()
        .enumerate()
        .map(|(c, cell)| {
            let runs: Vec<RunResult> = jobs.iter().zip(&results).filter(|((jc, _), _)| *jc == c).filter_map(|(_, r)| r.clone()).collect();
            let mut summary = summarize(*cell, &runs);
            if opts.mixed != 0 {
                summary["mixed"] = report::mixed_summary(*cell, &runs);
            }
            summary
        })
        .collect();
    if let Some(j) = &opts.config_json {
        println!("WIRE_CONFIG (not the default configuration): {j}");
    }
    match opts.mixed {
        1 => println!("WIRE_MIXED=1: {} on the plain timing, the others store-aware", NAMES[0]),
        2 => println!("WIRE_MIXED=2: {} store-aware, the others on the plain timing", NAMES[0]),
        _ if !opts.store => println!("WIRE_STORE=0: the channels do not know of the store (plain timing)"),
        _ => {}
    }
    print!("{}", table(&summaries, seeds));
    if opts.mixed != 0 {
        print!("\n{}", mixed_table(&summaries, NAMES[0]));
    }
    eprintln!("{} runs in {:.1} s ({threads} threads)", jobs.len(), started.elapsed().as_secs_f64());

    let mut out = json!({
        "description": "RLN-budget efficiency of the reliable channel on a virtual clock (benches/wire.rs)",
        "config": {
            "payload_bytes": PAYLOAD_BYTES,
            "seeds_per_cell": seeds,
            "relay_delay_ms": [RELAY_DELAY_MS.0, RELAY_DELAY_MS.1],
            "dispatch_delay_ms": [DISPATCH_DELAY_MS.0, DISPATCH_DELAY_MS.1],
            "store_rtt_ms": [STORE_RTT_MS.0, STORE_RTT_MS.1],
            "budget_per_epoch": BUDGET,
            "channel_config_json": opts.config_json,
            "channels_know_store": opts.store,
            "goal_wm_per_delivered": GOAL_WM_PER_DELIVERED,
        },
        "cells": summaries,
    });
    if opts.mixed != 0 {
        out["config"]["mixed"] = json!(opts.mixed);
    }
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target").join("bench");
    std::fs::create_dir_all(&dir).expect("create target/bench");
    // A variant never overwrites the baseline's figures.
    let variant = opts.config_json.is_some() || !opts.store;
    let name = match opts.mixed {
        0 if variant => "wire_variant.json".to_owned(),
        0 => "wire.json".to_owned(),
        m => format!("wire_mixed{m}.json"),
    };
    let path = dir.join(name);
    std::fs::write(&path, serde_json::to_string_pretty(&out).expect("serialize") + "\n").expect("write wire.json");
    println!("\nwrote {}", path.display());
}
