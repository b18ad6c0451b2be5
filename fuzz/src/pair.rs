//! Two honest channels, alice and bob, over a network the fuzzer controls (delivery order,
//! duplicates, echoes, losses, failed dispatches, store answers, time), plus an adversary that
//! sees every message on the wire and injects its own (target `channel_pair`).
//!
//! Beyond each channel's [`crate::ledger::Ledger`] promises:
//! * integrity: a RECEIVED at one side under the other's sender id carries exactly the payload
//!   the other sent with that request id (the adversary never claims an honest sender id, and
//!   replays are verbatim);
//! * liveness: after the input, a healing phase delivers everything, answers every store query
//!   and runs the clock for [`HEAL_MS`]; then no send of either side is still pending;
//! * end-to-end acknowledgement: without adversary traffic, a DELIVERED at one side means the
//!   other side ended that message (RECEIVED, or LOST by its reassembler).

use arbitrary::Arbitrary;
use reliable_channel::wire::{MessageHash, WakuMessage};

use crate::forge::{fill, Forge, MAX_STORED};
use crate::ledger::{Ending, Ledger};
use crate::node::Node;
use crate::ops::{Injected, Size, Step};
use crate::victim::{pick_index, step_ms};
use crate::{Profile, MAX_OPS, PUBSUB, T0};

/// The honest participants' sender ids.
pub const NAMES: [&str; 2] = ["alice", "bob"];
/// Virtual time the healing phase runs for: far beyond every retransmission, dependency, sync
/// and rate-limit timer of the fuzz profile.
pub const HEAL_MS: u64 = 10 * 60 * 1_000;
/// Timer rounds of the healing phase at most.
const MAX_HEAL_ROUNDS: usize = 4_000;

/// One side.
#[derive(Debug, Clone, Copy, Arbitrary)]
pub enum Side {
    Alice,
    Bob,
}

impl Side {
    fn index(self) -> usize {
        self as usize
    }
}

/// One operation of `channel_pair`.
#[derive(Debug, Clone, Arbitrary)]
pub enum PairOp {
    Send {
        from: Side,
        size: Size,
        ephemeral: bool,
    },
    /// Deliver in-flight message i to its recipient; `keep` leaves it in flight (a duplicate).
    Deliver {
        pick: u16,
        keep: bool,
    },
    /// Deliver in-flight message i back to its sender (a relay echo).
    Echo {
        pick: u16,
        with_hash: bool,
    },
    Drop {
        pick: u16,
    },
    /// Deliver everything in flight, in order.
    Flush,
    /// The next dispatch of this side is reported failed.
    FailNext(Side),
    /// Answer the oldest store query of this side.
    StoreAnswer(Side),
    /// The adversary injects a message into one side.
    Adversary {
        to: Side,
        message: Box<Injected>,
    },
    /// The adversary replays a message seen on the wire, verbatim, to one side.
    Replay {
        to: Side,
        pick: u16,
    },
    Advance(Step),
}

/// One fuzz input of `channel_pair`.
#[derive(Debug, Arbitrary)]
pub struct PairInput {
    pub profile: Profile,
    pub ops: Vec<PairOp>,
}

/// A message on the network.
#[derive(Debug, Clone)]
struct Packet {
    from: usize,
    message: WakuMessage,
    hash: MessageHash,
}

/// The two channels, the network and the adversary.
pub struct Pair {
    nodes: [Node; 2],
    now: u64,
    in_flight: Vec<Packet>,
    /// Every honest message seen, for replays.
    seen: Vec<Packet>,
    /// The adversary's knowledge (every honest id and hash) and the store's content.
    forge: Forge,
    sends: usize,
    adversary_spoke: bool,
}

impl Pair {
    pub fn new(profile: &Profile) -> Self {
        let nodes = [Node::new(NAMES[0], profile, true), Node::new(NAMES[1], profile, true)];
        let mut p = Pair {
            nodes,
            now: T0,
            in_flight: Vec::new(),
            seen: Vec::new(),
            forge: Forge::new("mallory", profile.encryption),
            sends: 0,
            adversary_spoke: false,
        };
        p.collect();
        p
    }

    /// Runs a whole input, then heals the network and checks liveness.
    pub fn run(input: &PairInput) {
        let mut p = Pair::new(&input.profile);
        for op in input.ops.iter().take(MAX_OPS) {
            p.step(op);
            p.collect();
            p.check_integrity();
        }
        p.heal();
    }

    /// Puts new dispatches on the network.
    fn collect(&mut self) {
        for (from, node) in self.nodes.iter_mut().enumerate() {
            for message in std::mem::take(&mut node.outbox) {
                self.forge.on_own_dispatch(&message);
                let hash = message.hash(PUBSUB);
                let packet = Packet { from, message, hash };
                if self.seen.len() < MAX_STORED {
                    self.seen.push(packet.clone());
                }
                self.in_flight.push(packet);
            }
        }
    }

    fn deliver_to(&mut self, to: usize, message: &WakuMessage, hash: Option<MessageHash>) {
        self.nodes[to].deliver(self.now, message, hash);
    }

    fn answer_store(&mut self, side: usize) {
        let Some(h) = self.nodes[side].retrievals.pop_front() else { return };
        if let Some(m) = self.forge.store.get(&h).cloned() {
            self.deliver_to(side, &m, Some(h));
        }
    }

    fn step(&mut self, op: &PairOp) {
        match op {
            PairOp::Send { from, size, ephemeral } => {
                let i = from.index();
                let request = format!("{}-{}", NAMES[i], self.sends);
                let payload = fill(size.bytes(), self.sends as u8);
                self.sends += 1;
                self.nodes[i].send(self.now, &request, &payload, *ephemeral);
            }
            PairOp::Deliver { pick, keep } => {
                if self.in_flight.is_empty() {
                    return;
                }
                let at = pick_index(*pick, self.in_flight.len());
                let p = if *keep { self.in_flight[at].clone() } else { self.in_flight.remove(at) };
                self.deliver_to(1 - p.from, &p.message, Some(p.hash));
            }
            PairOp::Echo { pick, with_hash } => {
                if let Some(p) = self.in_flight.get(pick_index(*pick, self.in_flight.len())).cloned() {
                    self.deliver_to(p.from, &p.message, with_hash.then_some(p.hash));
                }
            }
            PairOp::Drop { pick } => {
                if !self.in_flight.is_empty() {
                    self.in_flight.remove(pick_index(*pick, self.in_flight.len()));
                }
            }
            PairOp::Flush => self.flush(),
            PairOp::FailNext(side) => self.nodes[side.index()].fail_next = true,
            PairOp::StoreAnswer(side) => self.answer_store(side.index()),
            PairOp::Adversary { to, message } => {
                let to = to.index();
                self.adversary_spoke = true;
                self.forge.me = NAMES[to].to_owned();
                self.forge.clock = self.nodes[to].ch.sds().lamport_timestamp();
                let mut sds = self.forge.sds(message);
                // Never the other honest participant's id: the channel does not authenticate
                // senders, so such a forgery would be accepted by design.
                if sds.sender_id == NAMES[1 - to] {
                    sds.sender_id = "mallory".into();
                }
                let m = self.forge.envelope(prost::Message::encode_to_vec(&sds), message.envelope);
                let hash = self.forge.hash(message.hash, &m);
                self.deliver_to(to, &m, hash);
            }
            PairOp::Replay { to, pick } => {
                if let Some(p) = self.seen.get(pick_index(*pick, self.seen.len())).cloned() {
                    self.deliver_to(to.index(), &p.message, Some(p.hash));
                }
            }
            PairOp::Advance(step) => {
                let next = self.next_deadline();
                self.now = self.now.saturating_add(step_ms(*step, self.now, next));
                for n in &mut self.nodes {
                    n.fire_timers(self.now);
                }
            }
        }
    }

    fn next_deadline(&mut self) -> Option<u64> {
        self.nodes.iter_mut().filter_map(|n| n.ch.next_deadline()).min()
    }

    /// Delivers everything in flight, in order (and what that causes, until quiet).
    fn flush(&mut self) {
        for _ in 0..64 {
            if self.in_flight.is_empty() {
                return;
            }
            for p in std::mem::take(&mut self.in_flight) {
                self.deliver_to(1 - p.from, &p.message, Some(p.hash));
            }
            self.collect();
        }
    }

    /// A RECEIVED under an honest sender id carries what that sender sent.
    fn check_integrity(&self) {
        for (i, node) in self.nodes.iter().enumerate() {
            let other: &Ledger = &self.nodes[1 - i].ledger;
            for ((sender, request), ending) in &node.ledger.incoming {
                let Ending::Received(payload) = ending else { continue };
                if sender != NAMES[1 - i] {
                    continue;
                }
                let Some(sent) = other.sends.get(request) else { panic!("{} RECEIVED {request:?} from {sender}, who never sent it", NAMES[i]) };
                assert!(sent.payload == *payload, "{} RECEIVED {request:?} from {sender} with a payload other than the one sent", NAMES[i]);
            }
        }
    }

    /// Perfect network for [`HEAL_MS`]: everything delivered, every store query answered.
    fn heal(&mut self) {
        let until = self.now + HEAL_MS;
        for _ in 0..MAX_HEAL_ROUNDS {
            self.flush();
            for side in 0..2 {
                while !self.nodes[side].retrievals.is_empty() {
                    self.answer_store(side);
                }
            }
            self.collect();
            if !self.in_flight.is_empty() {
                continue;
            }
            match self.next_deadline() {
                Some(d) if d <= until => {
                    self.now = self.now.max(d);
                    for n in &mut self.nodes {
                        n.fire_timers(self.now);
                    }
                    self.collect();
                }
                _ => break,
            }
        }
        self.check_integrity();
        for (i, node) in self.nodes.iter().enumerate() {
            let stuck: Vec<&String> = node.ledger.sends.iter().filter(|(_, s)| !s.done).map(|(r, _)| r).collect();
            assert!(stuck.is_empty(), "{}'s sends {stuck:?} still pending {HEAL_MS} ms into a perfect network", NAMES[i]);
            if self.adversary_spoke {
                continue;
            }
            let peer = &self.nodes[1 - i].ledger;
            for (request, s) in &node.ledger.sends {
                let key = (NAMES[i].to_owned(), request.clone());
                assert!(
                    !s.delivered || peer.incoming.contains_key(&key),
                    "{request:?} DELIVERED at {} but {} never ended it (no RECEIVED, no LOST)",
                    NAMES[i],
                    NAMES[1 - i]
                );
            }
        }
    }
}
