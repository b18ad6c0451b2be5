//! The store-aware timing of `src/channel/pipeline/store_timing.rs`, on a virtual clock: where a
//! store serves what a channel publishes and the rate limit is on, a receiver that lost a message
//! fetches it by the hint in the sender's next message instead of the sender retransmitting it,
//! and a burst released by the rate limiter names each predecessor *with* its hint.
//!
//! Every scenario also runs with the channels unaware of the store (the plain timing) and checks
//! that the behaviour asserted is then absent: the tests fail without the mechanism.

use std::collections::{BTreeMap, HashMap};

use reliable_channel::channel::{Channel, ChannelAction, ChannelConfig, ChannelEvent, STORE_FIRST_RETRANSMIT_TIMEOUTS};
use reliable_channel::wire::{MessageHash, MessageKind, SdsMessage, WakuMessage};

const CHANNEL: &str = "store-timing";
const TOPIC: &str = "/store-timing/1/chat/proto";
const PUBSUB: &str = "/waku/2/rs/0/0";
const NAMES: [&str; 3] = ["alice", "bob", "carol"];
/// An epoch boundary of the 60 s epochs used below.
const EPOCH_MS: u64 = 60_000;
const T0: u64 = 1_700_000_040_000;
const RELAY_MS: u64 = 50;
const DISPATCH_MS: u64 = 5;
const STORE_MS: u64 = 100;

/// The ids of the retransmissions among the engine's queued events.
fn retransmits(e: &mut reliable_channel::sds::SdsEngine) -> Vec<reliable_channel::sds::MessageId> {
    std::iter::from_fn(|| e.poll_event())
        .filter_map(|ev| match ev {
            reliable_channel::sds::SdsEvent::Retransmit { message_id, .. } => Some(message_id),
            _ => None,
        })
        .collect()
}

/// Fires the engine's timers due at `at`: the ids it retransmits.
fn retransmitted(e: &mut reliable_channel::sds::SdsEngine, at: u64) -> Vec<reliable_channel::sds::MessageId> {
    e.handle_timeout(at);
    retransmits(e)
}

/// Receives `bytes` at `at`: the ids the engine re-sends on it.
fn received_then_retransmitted(e: &mut reliable_channel::sds::SdsEngine, at: u64, bytes: bytes::Bytes) -> Vec<reliable_channel::sds::MessageId> {
    e.receive(at, bytes, None);
    retransmits(e)
}

enum Ev {
    Deliver { to: usize, msg: WakuMessage, hash: MessageHash },
    Done { to: usize, token: u64, hash: MessageHash },
}

/// One publication, decoded.
struct Published {
    from: usize,
    at: u64,
    sds: SdsMessage,
    kind: MessageKind,
    /// A content message published before (a retransmission).
    repeated: bool,
}

/// A lossless network but for `drop`, a store answering every retrieval, channels on a virtual clock.
struct Net {
    now: u64,
    chans: Vec<Channel>,
    queue: BTreeMap<(u64, u64), Ev>,
    seq: u64,
    store: HashMap<MessageHash, WakuMessage>,
    /// (from, to, content message index of `from`) copies lost on the way.
    drop: Vec<(usize, usize, usize)>,
    /// The same, only the first copy (its retransmissions get through).
    drop_first: Vec<(usize, usize, usize)>,
    /// (from, to): everything lost on the way.
    deaf: Option<(usize, usize)>,
    published: Vec<Published>,
    /// Content message ids of each participant in publication order.
    content_ids: Vec<Vec<String>>,
    /// (receiver, hash) of every store lookup.
    retrieved: Vec<(usize, MessageHash)>,
    /// (receiver, request id, time) of every RECEIVED.
    received: Vec<(usize, String, u64)>,
    lost: usize,
    send_errors: usize,
}

impl Net {
    fn new(n: usize, config: &ChannelConfig, store_known: bool) -> Self {
        let chans = (0..n)
            .map(|p| {
                let mut ch = Channel::new(CHANNEL, TOPIC, NAMES[p], config.clone(), T0, 7 + p as u64);
                ch.set_store_available(store_known);
                ch
            })
            .collect();
        Net {
            now: T0,
            chans,
            queue: BTreeMap::new(),
            seq: 0,
            store: HashMap::new(),
            drop: Vec::new(),
            drop_first: Vec::new(),
            deaf: None,
            published: Vec::new(),
            content_ids: vec![Vec::new(); n],
            retrieved: Vec::new(),
            received: Vec::new(),
            lost: 0,
            send_errors: 0,
        }
    }

    fn schedule(&mut self, at: u64, ev: Ev) {
        self.seq += 1;
        self.queue.insert((at, self.seq), ev);
    }

    fn send(&mut self, from: usize, k: usize) {
        let rid = format!("{}-{k}", NAMES[from]);
        self.chans[from].send(self.now, &rid, format!("message {k} of {}", NAMES[from]).as_bytes(), false).expect("accepted");
        self.drain(from);
    }

    fn publish(&mut self, from: usize, token: u64, msg: WakuMessage) {
        let (sds, kind) = SdsMessage::decode_bytes(msg.payload.clone()).expect("an SDS message");
        let mut index = None;
        let mut repeated = false;
        if kind == MessageKind::Content {
            match self.content_ids[from].iter().position(|id| *id == sds.message_id) {
                Some(i) => {
                    repeated = true;
                    index = Some(i);
                }
                None => {
                    index = Some(self.content_ids[from].len());
                    self.content_ids[from].push(sds.message_id.clone());
                }
            }
        }
        let hash = msg.hash(PUBSUB);
        self.store.insert(hash, msg.clone());
        self.schedule(self.now + DISPATCH_MS, Ev::Done { to: from, token, hash });
        for to in (0..self.chans.len()).filter(|&to| to != from) {
            if index.is_some_and(|i| self.drop.contains(&(from, to, i))) || self.deaf == Some((from, to)) {
                continue;
            }
            if let Some(at) = index.and_then(|i| self.drop_first.iter().position(|d| *d == (from, to, i))) {
                self.drop_first.remove(at);
                continue;
            }
            self.schedule(self.now + RELAY_MS, Ev::Deliver { to, msg: msg.clone(), hash });
        }
        self.published.push(Published { from, at: self.now, sds, kind, repeated });
    }

    fn drain(&mut self, p: usize) {
        while let Some(a) = self.chans[p].poll_action() {
            match a {
                ChannelAction::Dispatch { token, message } => self.publish(p, token, message),
                ChannelAction::Retrieve { hashes } => {
                    for hash in hashes {
                        self.retrieved.push((p, hash));
                        let msg = self.store.get(&hash).cloned().expect("a published message");
                        self.schedule(self.now + STORE_MS, Ev::Deliver { to: p, msg, hash });
                    }
                }
                ChannelAction::Event(ChannelEvent::Received { request_id, .. }) => self.received.push((p, request_id, self.now)),
                ChannelAction::Event(ChannelEvent::Lost { .. }) => self.lost += 1,
                ChannelAction::Event(ChannelEvent::SendError { .. }) => self.send_errors += 1,
                ChannelAction::Event(_) => {}
            }
        }
    }

    /// Runs every timer and event up to `until`.
    fn run_until(&mut self, until: u64) {
        loop {
            let timer = (0..self.chans.len()).filter_map(|p| self.chans[p].next_deadline().map(|t| (t, p))).min();
            let event = self.queue.keys().next().map(|&(t, _)| t);
            let at = match (timer, event) {
                (Some((t, _)), Some(e)) => t.min(e),
                (Some((t, _)), None) => t,
                (None, Some(e)) => e,
                (None, None) => break,
            };
            if at > until {
                break;
            }
            self.now = self.now.max(at);
            if timer.is_some_and(|(t, _)| t == at) {
                let p = timer.map_or(0, |t| t.1);
                self.chans[p].handle_timeout(self.now);
                self.drain(p);
                continue;
            }
            let Some((_, ev)) = self.queue.pop_first() else { break };
            match ev {
                Ev::Deliver { to, msg, hash } => {
                    self.chans[to].on_message(self.now, &msg, Some(hash));
                    self.drain(to);
                }
                Ev::Done { to, token, hash } => {
                    assert!(self.chans[to].on_dispatch_result(self.now, token, Ok(Some(hash))));
                    self.drain(to);
                }
            }
        }
        self.now = self.now.max(until);
    }

    fn received_by(&self, p: usize, request_id: &str) -> usize {
        self.received.iter().filter(|(q, r, _)| *q == p && r == request_id).count()
    }

    /// When `p` received `request_id` (first time).
    fn received_at(&self, p: usize, request_id: &str) -> Option<u64> {
        self.received.iter().find(|(q, r, _)| *q == p && r == request_id).map(|r| r.2)
    }

    /// For each of `from`'s content messages after its first (first publications only): does its
    /// causal history name the previous one, and with a retrieval hint?
    fn predecessor_hints(&self, from: usize) -> Vec<Option<bool>> {
        let ids = &self.content_ids[from];
        let firsts = self.published.iter().filter(|p| p.from == from && p.kind == MessageKind::Content && !p.repeated);
        firsts
            .skip(1)
            .map(|p| {
                let i = ids.iter().position(|id| *id == p.sds.message_id).expect("recorded");
                p.sds.causal_history.iter().find(|h| h.message_id == ids[i - 1]).map(|h| h.retrieval_hint.is_some())
            })
            .collect()
    }

    fn retransmissions(&self, from: usize) -> Vec<u64> {
        self.published.iter().filter(|p| p.from == from && p.repeated).map(|p| p.at).collect()
    }
}

/// Default timers; a small budget per 60 s epoch so that a burst queues behind the rate limiter.
fn small_budget() -> ChannelConfig {
    let mut c = ChannelConfig::default();
    c.rate_limit.epoch_size_ms = EPOCH_MS;
    c.rate_limit.messages_per_epoch = 4;
    c
}

/// Alice sends 10 messages at once with a budget of 4 per epoch: 4 go out now, 6 at the epoch
/// turn, in one burst. Carol loses the second message of that burst; bob receives everything
/// and acknowledges it, so alice has no reason to retransmit it.
fn burst(store_known: bool) -> Net {
    let mut net = Net::new(3, &small_budget(), store_known);
    net.drop.push((0, 2, 5));
    for k in 0..10 {
        net.send(0, k);
    }
    net.run_until(T0 + 3 * EPOCH_MS);
    net
}

#[test]
fn a_burst_names_each_predecessor_with_its_hint_and_a_loss_is_fetched_from_the_store() {
    let net = burst(true);
    assert_eq!(net.content_ids[0].len(), 10, "every message published");
    let hints = net.predecessor_hints(0);
    assert_eq!(hints, vec![Some(true); 9], "each content message names its predecessor with its retrieval hint");
    // Carol fetched the message she lost from the store, by the hint in its successor.
    let lost_msg = net
        .store
        .iter()
        .find(|(_, m)| SdsMessage::decode_bytes(m.payload.clone()).is_ok_and(|(s, _)| s.message_id == net.content_ids[0][5]))
        .map(|(h, _)| *h)
        .expect("in the store");
    assert!(net.retrieved.contains(&(2, lost_msg)), "carol fetched the lost message from the store");
    for k in 0..10 {
        let rid = format!("alice-{k}");
        assert_eq!((net.received_by(1, &rid), net.received_by(2, &rid)), (1, 1), "{rid} received once by bob and carol");
    }
    assert_eq!((net.lost, net.send_errors), (0, 0));

    // Without the store-aware timing the burst goes out in one go: its messages name their
    // predecessors before the messaging layer returned their hashes, so without hints.
    let plain = burst(false);
    assert!(plain.predecessor_hints(0).contains(&Some(false)), "the plain timing names a burst's predecessors without hints");
}

/// Alice sends one message every 12 s (a budget's pace) to bob, who loses the first.
fn paced(store_known: bool) -> Net {
    let mut c = ChannelConfig::default();
    c.rate_limit.epoch_size_ms = 600_000;
    let mut net = Net::new(2, &c, store_known);
    net.drop.push((0, 1, 0));
    for k in 0..3 {
        net.send(0, k);
        let next = net.now + 12_000;
        net.run_until(next);
    }
    net.run_until(T0 + 300_000);
    net
}

#[test]
fn a_lost_message_is_fetched_by_its_hint_instead_of_retransmitted() {
    let net = paced(true);
    let timeout = ChannelConfig::default().sds.acknowledgement_timeout_ms;
    for k in 0..3 {
        assert_eq!(net.received_by(1, &format!("alice-{k}")), 1, "alice-{k} received once");
    }
    assert!(net.retrieved.iter().any(|(p, _)| *p == 1), "bob fetched the lost message from the store");
    // No retransmission before STORE_FIRST_RETRANSMIT_TIMEOUTS × the ack timeout; bob's fetch
    // and acknowledgement come earlier, so none at all.
    assert_eq!(net.retransmissions(0), Vec::<u64>::new(), "alice never retransmitted");
    assert!(u64::from(STORE_FIRST_RETRANSMIT_TIMEOUTS) * timeout > 12_000 + timeout, "the next message comes first");
    assert_eq!((net.lost, net.send_errors), (0, 0));

    // The plain timing retransmits the lost message one ack timeout after its dispatch.
    let plain = paced(false);
    let first = plain.published.iter().find(|p| p.from == 0 && p.kind == MessageKind::Content).map(|p| p.at).expect("published");
    // The timer starts when the messaging layer confirms the dispatch.
    let after = plain.retransmissions(0).first().map(|t| t - first - DISPATCH_MS);
    assert_eq!(after, Some(timeout), "plain timing: retransmitted one ack timeout after the dispatch");
}

#[test]
fn the_store_timing_needs_a_store_and_a_rate_limit() {
    let mut c = ChannelConfig::default();
    let mut ch = Channel::new(CHANNEL, TOPIC, "alice", c.clone(), T0, 1);
    assert!(!ch.store_timing(), "no store known");
    ch.set_store_available(true);
    assert!(ch.store_timing());
    ch.set_store_available(false);
    assert!(!ch.store_timing());
    c.rate_limit.enabled = false;
    let mut ch = Channel::new(CHANNEL, TOPIC, "alice", c, T0, 1);
    ch.set_store_available(true);
    assert!(!ch.store_timing(), "no budget to save: latency first");
}

/// An unacknowledged hinted message is retransmitted, only later: the first retransmission after
/// STORE_FIRST_RETRANSMIT_TIMEOUTS ack timeouts, the next ones one timeout apart.
#[test]
fn an_unacknowledged_message_is_still_retransmitted() {
    let mut c = ChannelConfig::default();
    // No idle sync: bob learns nothing of the message but from its retransmissions.
    c.sds.idle_sync_rounds = 0;
    let mut net = Net::new(2, &c, true);
    net.drop.push((0, 1, 0));
    net.send(0, 0);
    net.run_until(T0 + 120_000);
    let timeout = c.sds.acknowledgement_timeout_ms;
    let retx = net.retransmissions(0);
    assert!(retx.len() >= 2, "retransmitted: {retx:?}");
    // Timers start when the messaging layer confirms a dispatch.
    assert_eq!(retx[0] - T0 - DISPATCH_MS, u64::from(STORE_FIRST_RETRANSMIT_TIMEOUTS) * timeout, "first retransmission");
    // Its retransmissions are lost too (the same message): the next one ack timeout later.
    assert_eq!(retx[1] - retx[0] - DISPATCH_MS, timeout, "second retransmission");
}

/// The SDS engine's timers with mixed first timers: a hinted message's long first timer does not
/// delay an unhinted message dispatched after it (the timers are kept in deadline order).
#[test]
fn a_long_first_timer_does_not_delay_a_shorter_one() {
    use bytes::Bytes;
    use reliable_channel::sds::{SdsConfig, SdsEngine};

    let config = SdsConfig::default();
    let timeout = config.acknowledgement_timeout_ms;
    let mut e = SdsEngine::new(CHANNEL, "alice", config, T0, 3);
    e.set_store_timing(STORE_FIRST_RETRANSMIT_TIMEOUTS, 4);
    let hinted = e.wrap_content(T0, b"one", None).expect("wrapped").message_id;
    let plain = e.wrap_content(T0, b"two", None).expect("wrapped").message_id;
    assert!(e.on_dispatched(T0, &hinted, Some(Bytes::from_static(&[7u8; 32]))));
    assert!(e.on_dispatched(T0 + 1, &plain, None));
    assert_eq!(e.next_deadline(), Some(T0 + 1 + timeout), "the message without a hint: one ack timeout");
    assert_eq!(retransmitted(&mut e, T0 + 1 + timeout), vec![plain.clone()]);
    assert!(e.on_dispatched(T0 + 1 + timeout, &plain, None));
    let first = T0 + u64::from(STORE_FIRST_RETRANSMIT_TIMEOUTS) * timeout;
    assert!(!retransmitted(&mut e, first - 1).contains(&hinted), "not before");
    assert!(retransmitted(&mut e, first).contains(&hinted), "the hinted message after its long first timer");
}

/// Participants `talkers` each send `n` messages, one every `pace_ms`, participant `p` starting
/// `p × pace_ms / talkers` after T0; the first copies listed in `lose` are lost.
fn conversation(participants: usize, talkers: usize, n: usize, pace_ms: u64, lose: &[(usize, usize, usize)]) -> Net {
    conversation_with(participants, talkers, n, pace_ms, lose, None)
}

fn conversation_with(
    participants: usize,
    talkers: usize,
    n: usize,
    pace_ms: u64,
    lose: &[(usize, usize, usize)],
    deaf: Option<(usize, usize)>,
) -> Net {
    let mut c = ChannelConfig::default();
    c.rate_limit.epoch_size_ms = 600_000;
    let mut net = Net::new(participants, &c, true);
    net.deaf = deaf;
    net.drop_first.extend_from_slice(lose);
    let mut sends: Vec<(u64, usize, usize)> =
        (0..talkers).flat_map(|p| (0..n).map(move |k| (T0 + p as u64 * pace_ms / talkers as u64 + k as u64 * pace_ms, p, k))).collect();
    sends.sort_unstable();
    for (at, p, k) in sends {
        net.run_until(at);
        net.send(p, k);
    }
    net.run_until(T0 + n as u64 * pace_ms + 300_000);
    net
}

/// spec: sds.retransmission.evidence — two consecutive messages of alice (one every 12 s, an RLN
/// budget's pace) lost at bob: each is re-sent as soon as bob's next message (6 s later) shows he
/// lacks it, so each arrives within one pace, instead of alice-1 waiting 24 s for alice-3's hints.
#[test]
fn two_consecutive_losses_are_re_sent_on_the_peers_evidence() {
    let pace = 12_000;
    let net = conversation(2, 2, 5, pace, &[(0, 1, 1), (0, 1, 2)]);
    for k in 1..3 {
        let rid = format!("alice-{k}");
        let sent = T0 + k as u64 * pace;
        let at = net.received_at(1, &rid).expect("received");
        assert!(at - sent < pace, "{rid} received {} ms after its send: within one pace", at - sent);
        // Re-sent once, on a message of bob's (his next content, or his acknowledgement sync),
        // before alice's next message and long before her first retransmission timer.
        let resent: Vec<u64> =
            net.published.iter().filter(|p| p.from == 0 && p.repeated && p.sds.message_id == net.content_ids[0][k]).map(|p| p.at).collect();
        assert_eq!(resent.len(), 1, "{rid} re-sent once: {resent:?}");
        assert!(resent[0] - sent < pace, "{rid} re-sent {} ms after its send, before alice's next message", resent[0] - sent);
        let timeout = ChannelConfig::default().sds.acknowledgement_timeout_ms;
        assert!(pace < u64::from(STORE_FIRST_RETRANSMIT_TIMEOUTS) * timeout, "not the retransmission timer");
    }
    for k in 0..5 {
        assert_eq!(net.received_by(1, &format!("alice-{k}")), 1, "alice-{k} received once");
        assert_eq!(net.received_by(0, &format!("bob-{k}")), 1, "bob-{k} received once");
    }
    assert_eq!(net.retransmissions(0).len(), 2, "nothing else re-sent");
    assert_eq!((net.lost, net.send_errors), (0, 0));

    // Alice hearing nothing from bob: no evidence, alice-1 waits for the hints in alice-3.
    let silent = conversation_with(2, 2, 5, pace, &[(0, 1, 1), (0, 1, 2)], Some((1, 0)));
    let at = silent.received_at(1, "alice-1").expect("received");
    assert!(at - (T0 + pace) >= 2 * pace, "without evidence, alice-1 arrives two paces later");
    assert!(silent.retrieved.iter().any(|(p, _)| *p == 1), "by the store");
}

/// No re-send on evidence when the hint comes soon for free: at a chat's pace (our next message
/// within half an ack timeout), or when a third participant, active, names the message too.
#[test]
fn no_re_send_on_evidence_when_the_hint_comes_soon_anyway() {
    let fast = conversation(2, 2, 8, 2_000, &[(0, 1, 3)]);
    assert_eq!(fast.received_by(1, "alice-3"), 1);
    assert!(fast.retrieved.iter().any(|(p, _)| *p == 1), "bob fetched alice-3 by its hint");
    assert_eq!(fast.retransmissions(0), Vec::<u64>::new(), "not re-sent: alice's next message carried its hint");

    let three = conversation(3, 3, 5, 12_000, &[(0, 1, 1)]);
    assert_eq!(three.received_by(1, "alice-1"), 1);
    assert!(three.retrieved.iter().any(|(p, _)| *p == 1), "bob fetched alice-1 by its hint");
    assert_eq!(three.retransmissions(0), Vec::<u64>::new(), "not re-sent: carol names it too");
    assert_eq!((three.lost, three.send_errors, fast.lost, fast.send_errors), (0, 0, 0, 0));
}

/// spec: sds.retransmission.evidence, on the engine: a peer's message composed too soon after our
/// dispatch is no evidence; a later one lacking our message re-sends it at once, and the next
/// timer is the long first one again.
#[test]
fn an_evidence_re_send_is_followed_by_the_long_timer() {
    use bytes::Bytes;
    use reliable_channel::sds::{SdsConfig, SdsEngine};

    let config = SdsConfig::default();
    let timeout = config.acknowledgement_timeout_ms;
    let long = u64::from(STORE_FIRST_RETRANSMIT_TIMEOUTS) * timeout;
    let mut alice = SdsEngine::new(CHANNEL, "alice", config.clone(), T0, 3);
    alice.set_store_timing(STORE_FIRST_RETRANSMIT_TIMEOUTS, 4);
    let mut bob = SdsEngine::new(CHANNEL, "bob", config, T0, 4);
    let m = alice.wrap_content(T0, b"lost at bob", None).expect("wrapped").message_id;
    assert!(alice.on_dispatched(T0, &m, Some(Bytes::from_static(&[7u8; 32]))));
    // Bob composed this before alice's message could reach him: no evidence.
    let early = bob.wrap_content(T0 + timeout / 8, b"crossing", None).expect("wrapped").bytes;
    assert_eq!(received_then_retransmitted(&mut alice, T0 + timeout / 8 + 50, early), vec![]);
    // Bob's next message, well after it, does not name it: he lacks it.
    let later = bob.wrap_content(T0 + 6_000, b"later", None).expect("wrapped").bytes;
    assert_eq!(received_then_retransmitted(&mut alice, T0 + 6_050, later), vec![m.clone()]);
    assert_eq!(alice.stats().evidence_resends, 1);
    assert!(alice.on_dispatched(T0 + 6_060, &m, Some(Bytes::from_static(&[7u8; 32]))));
    assert_eq!(retransmitted(&mut alice, T0 + 6_060 + long - 1), vec![], "not after one ack timeout: the long timer again");
    assert_eq!(retransmitted(&mut alice, T0 + 6_060 + long), vec![m]);
}

/// spec: sds.sync.plain-peers, on the engine: a store-aware receiver acknowledges 2–3 × the ack
/// timeout after a delivery; once a sender's early copy (a retransmission 1 × the ack timeout
/// after the first copy: the plain timing) shows it does not wait that long, that sender's next
/// messages are acknowledged within the plain 0.5–0.75 ×, before it would retransmit them.
#[test]
fn a_peer_on_the_plain_timing_is_acknowledged_promptly() {
    use reliable_channel::sds::{SdsConfig, SdsEngine, SdsEvent};

    // No idle syncs: every sync bob publishes is an acknowledgement.
    let config = SdsConfig { idle_sync_rounds: 0, ..SdsConfig::default() };
    let timeout = config.acknowledgement_timeout_ms;
    // The first acknowledgement sync bob publishes in [from, until], stepping his timers.
    fn first_sync(e: &mut SdsEngine, from: u64, until: u64) -> Option<u64> {
        let mut now = from;
        loop {
            e.handle_timeout(now);
            if std::iter::from_fn(|| e.poll_event()).any(|ev| matches!(ev, SdsEvent::SendSync { .. })) {
                return Some(now);
            }
            now = e.next_deadline().filter(|d| *d <= until)?.max(now + 1);
        }
    }
    let run = |early_copy: bool| {
        let mut alice = SdsEngine::new(CHANNEL, "alice", config.clone(), T0, 5); // the plain timing
        let mut bob = SdsEngine::new(CHANNEL, "bob", config.clone(), T0, 6);
        bob.set_store_timing(STORE_FIRST_RETRANSMIT_TIMEOUTS, 4);
        let first = alice.wrap_content(T0, b"first", None).expect("wrapped").bytes;
        bob.receive(T0 + 50, first.clone(), None);
        if early_copy {
            // Alice's plain first retransmission, one ack timeout later.
            bob.receive(T0 + timeout + 50, first, None);
        }
        // Whatever bob owed for the first message goes out (at most 3 × the ack timeout later).
        assert!(first_sync(&mut bob, T0 + 50, T0 + 20_000).is_some());
        assert_eq!(first_sync(&mut bob, T0 + 20_000, T0 + 20_000), None);
        let second = alice.wrap_content(T0 + 20_000, b"second", None).expect("wrapped").bytes;
        bob.receive(T0 + 20_050, second, None);
        let acked = first_sync(&mut bob, T0 + 20_050, T0 + 20_050 + 4 * timeout).expect("acknowledged");
        (acked - (T0 + 20_050), bob.stats().plain_peers_seen)
    };
    let (prompt, seen) = run(true);
    assert_eq!(seen, 1, "alice found on the plain timing");
    assert!(prompt <= timeout * 3 / 4, "acknowledged {prompt} ms after the delivery: before alice's retransmission");
    let (late, seen) = run(false);
    assert_eq!(seen, 0);
    assert!(late >= 2 * timeout, "without an early copy, the store-aware delay ({late} ms)");
}
