//! Every crash point of a durable channel, deterministically (issue #11).
//!
//! Participants run [`Channel`]s over [`MemoryStore`]s (their "disks") on a virtual clock and a
//! lossless in-memory network, the way the runtime drives them: each batch of inputs ends with one
//! commit (the channel's changes, its new events as outbox rows, the rows of delivered events),
//! and only then are its publications sent and its events handed to the application (the
//! write-ahead rule). The run is cut at every commit boundary — right after the commit (nothing
//! of the batch left the process) and right after its release — the participant is rebuilt from
//! what its store holds and the run continues. Then:
//! - every accepted send is RECEIVED exactly once by every peer (by `seq`), in send order;
//! - exactly one final event (DELIVERED: the run is lossless) per accepted send;
//! - no MESSAGE_LOST;
//! - lamport timestamps of a sender's new messages strictly increase across restarts (chunks
//!   restored wrapped are re-sent spread over an ack timeout: they may follow newer ones), and no
//!   message id is reused for other bytes;
//! - RLN usage never exceeds the budget of an epoch, counted on the network.
//!
//! An event re-delivered after a restart must carry its first `seq` and the same content: the
//! application's log dedups by `seq`, as an application storing its last `seq` would.

use std::collections::{BTreeMap, HashMap};

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use reliable_channel::channel::{Channel, ChannelAction, ChannelConfig, ChannelEvent};
use reliable_channel::storage::{Batch, ChannelKey, ChannelRecord, EventRow, MemoryStore, Store};
use reliable_channel::wire::{SdsMessage, WakuMessage};

const CHANNEL: &str = "durable-sim";
const TOPIC: &str = "/durable/1/sim/proto";
const NAMES: [&str; 3] = ["alice", "bob", "carol"];
const T0: u64 = 1_700_000_000_000;
const END: u64 = T0 + 240_000;
const EPOCH_MS: u64 = 1_000;
const PER_EPOCH: u32 = 6;
/// Repeated crashes stop here: acknowledgements need a crash-free while to accumulate (a sender
/// killed every few commits re-sends its unacknowledged chunks at each restart, which does not
/// count as a retransmission: only an ack timeout passed in flight does, stored with its bloom
/// filter hits).
const CRASHES_UNTIL: u64 = T0 + 40_000;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Cut {
    /// Killed right after commit number `k` (its publications and events never left).
    AfterCommit(usize),
    /// Killed right after commit `k`'s release.
    AfterRelease(usize),
}

struct Planned {
    at: u64,
    from: usize,
    request_id: String,
    payload: Vec<u8>,
}

fn config() -> ChannelConfig {
    let json = format!(
        r#"{{"segmentationConfig": {{"chunkSizeBytes": 1024}}, "rateLimitConfig": {{"enabled": true, "epochSizeMs": {EPOCH_MS}, "messagesPerEpoch": {PER_EPOCH}, "accounting": "allMessages"}}}}"#
    );
    ChannelConfig::default().with_json(Some(&json)).expect("valid config")
}

fn plan(seed: u64, n: usize) -> Vec<Planned> {
    let mut rng = SmallRng::seed_from_u64(seed);
    let mut v = Vec::new();
    for (from, name) in NAMES.iter().enumerate().take(n) {
        for i in 0..4 {
            let len = if rng.gen_bool(0.4) { rng.gen_range(1_025..3_500) } else { rng.gen_range(1..600) };
            let payload = (0..len).map(|_| rng.gen()).collect();
            v.push(Planned { at: T0 + 100 + rng.gen_range(0..8_000), from, request_id: format!("{name}-{i}"), payload });
        }
    }
    v.sort_by_key(|p| (p.at, p.from));
    v
}

/// One participant: the process (channel and what it holds back) and its disk (the store).
struct Node {
    sender: &'static str,
    config: ChannelConfig,
    channel: Channel,
    store: MemoryStore,
    key: ChannelKey,
    next_seq: u64,
    incarnation: u64,
    held_publications: Vec<(u64, WakuMessage)>,
    held_events: Vec<(u64, ChannelEvent)>,
    held_accepts: Vec<usize>,
    delivered: Vec<u64>,
    results: Vec<(u64, u64)>,
    /// The application's own log (survives crashes): events by seq, accepted sends.
    app: BTreeMap<u64, ChannelEvent>,
    accepted: Vec<usize>,
    /// Sends committed whose caller was never told (killed between commit and reply): they may
    /// be delivered (at most once) or not.
    in_doubt: Vec<usize>,
    /// Ids of chunks restored wrapped at a restart: re-sent spread over an ack timeout, their
    /// first publication (after a cut before it) may follow newer messages.
    restored: std::collections::HashSet<String>,
}

impl Node {
    fn new(i: usize, now: u64) -> Node {
        Node::with_config(i, now, config())
    }

    fn with_config(i: usize, now: u64, config: ChannelConfig) -> Node {
        let mut store = MemoryStore::new();
        let key = store.allocate_key();
        let rec = ChannelRecord { key, channel_id: CHANNEL.into(), sender_id: NAMES[i].into(), content_topic: TOPIC.into() };
        store.commit(&Batch { new_channels: vec![rec], ..Batch::default() }).unwrap();
        let mut n = Node {
            sender: NAMES[i],
            channel: Channel::new(CHANNEL, TOPIC, NAMES[i], config.clone(), now, i as u64),
            config,
            store,
            key,
            next_seq: 1,
            incarnation: 0,
            held_publications: vec![],
            held_events: vec![],
            held_accepts: vec![],
            delivered: vec![],
            results: vec![],
            app: BTreeMap::new(),
            accepted: vec![],
            in_doubt: vec![],
            restored: Default::default(),
        };
        n.restart(now);
        n
    }

    /// The process dies: everything not in the store is gone. A new one rebuilds the channel
    /// from the store and delivers the outbox again.
    fn restart(&mut self, now: u64) {
        self.incarnation += 1;
        let seed = self.incarnation * 1_000 + NAMES.iter().position(|n| *n == self.sender).unwrap_or(9) as u64;
        self.channel = Channel::new(CHANNEL, TOPIC, self.sender, self.config.clone(), now, seed);
        let snap = self.store.load_snapshot(self.key).unwrap();
        self.restored.extend(snap.sends.iter().flat_map(|s| &s.chunks).filter(|c| c.wrapped.is_some()).map(|c| c.id.to_string()));
        self.channel.restore(now, snap);
        self.next_seq = self.store.seq_bound();
        self.held_publications.clear();
        self.held_events.clear();
        self.held_accepts.clear();
        self.delivered.clear();
        self.results.clear();
        for e in self.store.load_events(self.key).unwrap() {
            self.hand_to_app(e.seq, e.event);
        }
    }

    fn hand_to_app(&mut self, seq: u64, ev: ChannelEvent) {
        if let Some(prev) = self.app.get(&seq) {
            assert_eq!(prev, &ev, "{}: seq {seq} delivered again with other content", self.sender);
        }
        self.app.insert(seq, ev);
        self.delivered.push(seq);
    }

    fn next_deadline(&mut self) -> Option<u64> {
        [self.channel.next_deadline(), self.results.iter().map(|r| r.0).min()].into_iter().flatten().min()
    }
}

struct Sim {
    nodes: Vec<Node>,
    plan: Vec<Planned>,
    next_send: usize,
    /// (due, to, message), in flight.
    network: Vec<(u64, usize, WakuMessage)>,
    /// Everything published, in order: (from, time, message).
    published: Vec<(usize, u64, WakuMessage)>,
    commits: usize,
    cut: Option<Cut>,
    /// Killed after every `m`-th commit.
    every: Option<usize>,
    rng: SmallRng,
}

impl Sim {
    fn new(seed: u64, n: usize, cut: Option<Cut>) -> Sim {
        Sim {
            nodes: (0..n).map(|i| Node::new(i, T0)).collect(),
            plan: plan(seed, n),
            next_send: 0,
            network: vec![],
            published: vec![],
            commits: 0,
            cut,
            every: None,
            rng: SmallRng::seed_from_u64(seed ^ 0xc4a5),
        }
    }

    fn run(&mut self) {
        let mut now = T0;
        while now < END {
            let mut next = END;
            if let Some(p) = self.plan.get(self.next_send) {
                next = next.min(p.at);
            }
            for (due, _, _) in &self.network {
                next = next.min(*due);
            }
            for n in &mut self.nodes {
                if let Some(d) = n.next_deadline() {
                    next = next.min(d);
                }
            }
            now = next.max(now);
            for i in 0..self.nodes.len() {
                // A restarted participant runs a batch at once, as the runtime pumps a channel
                // it opens: what the restore released goes out now.
                while self.batch(i, now) {}
            }
        }
    }

    /// One runtime batch of participant `i` at `now`; true when the participant was restarted.
    fn batch(&mut self, i: usize, now: u64) -> bool {
        let node = &mut self.nodes[i];
        while let Some(p) = self.plan.get(self.next_send).filter(|p| p.at <= now && p.from == i) {
            if node.channel.send(now, &p.request_id, &p.payload, false).is_ok() {
                node.held_accepts.push(self.next_send);
            }
            self.next_send += 1;
        }
        let mut arrived = Vec::new();
        self.network.retain(|(due, to, m)| {
            let here = *due <= now && *to == i;
            if here {
                arrived.push(m.clone());
            }
            !here
        });
        for m in arrived {
            node.channel.on_message(now, &m, None);
        }
        let due: Vec<u64> = node.results.iter().filter(|r| r.0 <= now).map(|r| r.1).collect();
        node.results.retain(|r| r.0 > now);
        for token in due {
            node.channel.on_dispatch_result(now, token, Ok(None));
        }
        if node.channel.next_deadline().is_some_and(|d| d <= now) {
            node.channel.handle_timeout(now);
        }
        while let Some(a) = node.channel.poll_action() {
            match a {
                ChannelAction::Dispatch { token, message } => node.held_publications.push((token, message)),
                ChannelAction::Event(e) => {
                    node.held_events.push((node.next_seq, e));
                    node.next_seq += 1;
                }
                ChannelAction::Retrieve { .. } => {}
            }
        }
        // The commit: the channel's changes, the new outbox rows, the delivered rows, the seq bound.
        let changes = node.channel.take_changes().expect("a durable channel");
        let events: Vec<EventRow<'_>> = node.held_events.iter().map(|(seq, e)| EventRow { seq: *seq, channel: node.key, event: e }).collect();
        let seq_bound = (node.next_seq > node.store.seq_bound()).then_some(node.next_seq + 16);
        let channels = [(node.key, changes)];
        let batch = Batch { new_channels: vec![], events, delivered: std::mem::take(&mut node.delivered), seq_bound, channels: &channels };
        if batch.is_empty() && node.held_publications.is_empty() && node.held_accepts.is_empty() {
            return false;
        }
        node.store.commit(&batch).unwrap();
        if std::env::var_os("DSIM_TRACE").is_some() {
            let what: Vec<String> = node.held_events.iter().map(|(s, e)| format!("{s}:{e:?}")).collect();
            let pubs: Vec<String> = node
                .held_publications
                .iter()
                .map(|(_, m)| SdsMessage::decode_bytes(m.payload.clone()).map(|(s, _)| s.message_id[..8].to_string()).unwrap_or_default())
                .collect();
            eprintln!(
                "{} commit {} {} rows={:?} rln={:?} pubs={pubs:?} events={}",
                now - T0,
                self.commits,
                node.sender,
                channels[0].1.changes.len(),
                channels[0].1.rln,
                what.len()
            );
        }
        let k = self.commits;
        self.commits += 1;
        if let Some(m) = self.every.filter(|m| (k + 1).is_multiple_of(*m) && now < CRASHES_UNTIL) {
            self.cut = Some(if (k / m).is_multiple_of(2) { Cut::AfterCommit(k) } else { Cut::AfterRelease(k) });
        }
        if std::env::var_os("DSIM_TRACE").is_some() && matches!(self.cut, Some(Cut::AfterCommit(c) | Cut::AfterRelease(c)) if c == k) {
            eprintln!("   CUT {:?}", self.cut);
        }
        if self.cut == Some(Cut::AfterCommit(k)) {
            node.in_doubt.append(&mut node.held_accepts);
            node.restart(now);
            return true;
        }
        // Release.
        node.accepted.append(&mut node.held_accepts);
        let count = self.nodes.len();
        let node = &mut self.nodes[i];
        for (token, m) in node.held_publications.drain(..) {
            node.results.push((now + 1, token));
            self.published.push((i, now, m.clone()));
            for to in 0..count {
                if to != i {
                    let delay = self.rng.gen_range(5..80);
                    self.network.push((now + delay, to, m.clone()));
                }
            }
        }
        let node = &mut self.nodes[i];
        for (seq, e) in std::mem::take(&mut node.held_events) {
            node.hand_to_app(seq, e);
        }
        if self.cut == Some(Cut::AfterRelease(k)) {
            node.restart(now);
            return true;
        }
        false
    }

    /// The invariants of the module docs; `Err` describes the first broken one.
    fn check(&self) -> Result<(), String> {
        for (a, node) in self.nodes.iter().enumerate() {
            for ev in node.app.values() {
                if let ChannelEvent::Lost { .. } | ChannelEvent::SendError { .. } = ev {
                    return Err(format!("{}: {ev:?} on a lossless run", node.sender));
                }
            }
            for &s in node.accepted.iter().chain(&node.in_doubt) {
                let p = &self.plan[s];
                let finals = node.app.values().filter(|e| matches!(e, ChannelEvent::Delivered { request_id } if *request_id == p.request_id)).count();
                if finals != 1 && !(finals == 0 && node.in_doubt.contains(&s)) {
                    return Err(format!("{}: {} DELIVERED events for {}", node.sender, finals, p.request_id));
                }
            }
            for (b, peer) in self.nodes.iter().enumerate() {
                if a == b {
                    continue;
                }
                let got: Vec<&Vec<u8>> = peer
                    .app
                    .values()
                    .filter_map(|e| match e {
                        ChannelEvent::Received { sender_id, payload, .. } if sender_id == node.sender => Some(payload),
                        _ => None,
                    })
                    .collect();
                let mut sent: Vec<usize> = node.accepted.iter().chain(&node.in_doubt).copied().collect();
                sent.sort_unstable();
                sent.retain(|s| node.accepted.contains(s) || got.contains(&&self.plan[*s].payload));
                let want: Vec<&Vec<u8>> = sent.iter().map(|&s| &self.plan[s].payload).collect();
                if got != want {
                    let lens = |v: &[&Vec<u8>]| v.iter().map(|p| p.len()).collect::<Vec<_>>();
                    return Err(format!("{} received from {}: {:?}, sent {:?} (lengths)", peer.sender, node.sender, lens(&got), lens(&want)));
                }
            }
        }
        // Lamport and ids, RLN, from the network.
        let mut max_lamport: HashMap<usize, u64> = HashMap::new();
        let mut ids: HashMap<(usize, String), bytes::Bytes> = HashMap::new();
        let mut per_epoch: HashMap<(usize, u64), u32> = HashMap::new();
        for (from, at, m) in &self.published {
            let c = per_epoch.entry((*from, at / EPOCH_MS)).or_default();
            *c += 1;
            if *c > PER_EPOCH {
                return Err(format!("{} published {c} messages in epoch {}", NAMES[*from], at / EPOCH_MS));
            }
            let (sds, _) = SdsMessage::decode_bytes(m.payload.clone()).map_err(|e| e.to_string())?;
            match ids.get(&(*from, sds.message_id.clone())) {
                Some(b) if *b != m.payload => return Err(format!("{}: id {} reused for other bytes", NAMES[*from], sds.message_id)),
                Some(_) => continue,
                None => {
                    ids.insert((*from, sds.message_id.clone()), m.payload.clone());
                }
            }
            let Some(l) = sds.lamport_timestamp else { continue };
            // A chunk wrapped before a restart is re-sent after it, spread over an ack timeout:
            // its lamport is older than that of messages wrapped since (its id is checked above).
            if self.nodes[*from].restored.contains(&sds.message_id) {
                continue;
            }
            let max = max_lamport.entry(*from).or_default();
            if l <= *max {
                return Err(format!("{}: new message {} with lamport {l} after {max}", NAMES[*from], sds.message_id));
            }
            *max = l;
        }
        Ok(())
    }
}

fn run(seed: u64, n: usize, cut: Option<Cut>) -> Sim {
    let mut sim = Sim::new(seed, n, cut);
    sim.run();
    sim
}

#[test]
fn a_run_without_crash_holds_the_invariants() {
    let sim = run(1, 2, None);
    sim.check().unwrap();
    assert!(sim.nodes.iter().all(|n| n.accepted.len() == 4), "every send accepted");
    assert!(sim.commits > 20, "{} commits", sim.commits);
}

#[test]
fn every_crash_point_holds_the_invariants() {
    for (seed, n) in [(1, 2), (2, 3)] {
        let total = run(seed, n, None).commits;
        let mut failures = Vec::new();
        for k in 0..total {
            for cut in [Cut::AfterCommit(k), Cut::AfterRelease(k)] {
                let sim = run(seed, n, Some(cut));
                if let Err(e) = sim.check() {
                    failures.push(format!("seed {seed}, {cut:?}: {e}"));
                }
            }
        }
        assert!(failures.is_empty(), "{} of {} crash points broke an invariant:\n{}", failures.len(), 2 * total, failures.join("\n"));
    }
}

/// Many crashes in one run: killed after every `m`-th commit (alternating the two cut points)
/// during the first 40 s, then left to settle.
#[test]
fn repeated_crashes_hold_the_invariants() {
    for (seed, n, m) in [(3, 2, 3), (4, 3, 5), (5, 2, 7)] {
        let mut sim = Sim::new(seed, n, None);
        sim.every = Some(m);
        sim.run();
        if let Err(e) = sim.check() {
            for n in &mut sim.nodes {
                let snap = n.store.load_snapshot(n.key).unwrap();
                for s in &snap.sends {
                    let st: Vec<String> = s
                        .chunks
                        .iter()
                        .map(|c| format!("{}:{}{}{}", &c.id[..8], c.frame.is_some() as u8, c.wrapped.is_some() as u8, c.acked as u8))
                        .collect();
                    eprintln!("{} stored send {} sent={} {st:?}", n.sender, s.request_id, s.sent);
                }
                eprintln!("{} stats {:?}", n.sender, n.channel.stats());
            }
            panic!("seed {seed}, a crash every {m} commits: {e}");
        }
        let restarts: u64 = sim.nodes.iter().map(|n| n.incarnation - 1).sum();
        assert!(restarts >= 5, "{restarts} restarts");
    }
}

/// The lamport clock and the wrap clock continue above every value handed out before a restart,
/// even when the time has not moved: sends of equal payloads get new ids and later lamports.
#[test]
fn clocks_never_go_back_across_a_restart() {
    let unlimited = ChannelConfig::default().with_json(Some(r#"{"rateLimitConfig": {"enabled": false}}"#)).unwrap();
    let mut node = Node::with_config(0, T0, unlimited);
    let mut ids: HashMap<String, bytes::Bytes> = HashMap::new();
    let mut lamport = 0;
    for round in 0..3 {
        for i in 0..20 {
            node.channel.send(T0, &format!("r{round}-{i}"), b"same payload", false).expect("accepted");
        }
        while let Some(a) = node.channel.poll_action() {
            if let ChannelAction::Dispatch { message, .. } = a {
                let (sds, _) = SdsMessage::decode_bytes(message.payload.clone()).unwrap();
                if let Some(b) = ids.get(&sds.message_id) {
                    // Unacknowledged chunks of the previous life are sent again: the same bytes.
                    assert_eq!(*b, message.payload, "id {} handed out twice", sds.message_id);
                    continue;
                }
                let l = sds.lamport_timestamp.unwrap();
                assert!(l > lamport, "lamport {l} after {lamport}");
                lamport = l;
                ids.insert(sds.message_id, message.payload);
            }
        }
        let changes = node.channel.take_changes().unwrap();
        node.store.commit(&Batch { channels: &[(node.key, changes)], ..Batch::default() }).unwrap();
        let (wrap, lamport) = (node.channel.sds().wrap_clock().last(), node.channel.sds().lamport_timestamp());
        node.restart(T0);
        // Ids embed the wrap time: the next stamp is later than every one before the restart.
        assert!(node.channel.sds().wrap_clock().stamp(0) > wrap, "the wrap clock went back");
        assert!(node.channel.sds().lamport_timestamp() >= lamport, "the lamport clock went back");
    }
    assert_eq!(ids.len(), 60);
}
