//! One channel fed a sequence of [`Op`]s (target `channel_ingest`): hostile and plausible traffic
//! from peers, replays of its own messages, its own sends, dispatch outcomes, store answers and
//! time. After every step the [`crate::ledger::Ledger`] checks the events, bounds and accounting
//! ([`Node`]), and after every timer the next deadline must have moved past `now`.

use arbitrary::Arbitrary;
use bytes::Bytes;
use reliable_channel::wire::WakuMessage;

use crate::forge::{fill, Delivery, Forge, MAX_STORED};
use crate::node::Node;
use crate::ops::{Op, Step};
use crate::{Profile, ACK_TIMEOUT_MS, DEPENDENCY_TIMEOUT_MS, EPOCH_MS, MAX_OPS, PUBSUB, T0};

/// The channel under test's sender id.
pub const VICTIM: &str = "victim";

/// One fuzz input of `channel_ingest`.
#[derive(Debug, Arbitrary)]
pub struct Input {
    pub profile: Profile,
    /// Report every dispatch as accepted at once, as a transport does (else only `DispatchResult`).
    pub auto_dispatch: bool,
    pub ops: Vec<Op>,
}

/// The channel under test and what it did.
pub struct Victim {
    pub node: Node,
    pub now: u64,
    pub forge: Forge,
    /// Own dispatches, for replays.
    dispatched: Vec<WakuMessage>,
    sends: Vec<String>,
}

/// How far a [`Step`] moves the clock from `now`, given the next deadline.
pub fn step_ms(step: Step, now: u64, deadline: Option<u64>) -> u64 {
    match step {
        Step::Ms(n) => n as u64 % 1_000,
        Step::AckTimeout => ACK_TIMEOUT_MS,
        Step::Epoch => EPOCH_MS,
        Step::DependencyTimeout => DEPENDENCY_TIMEOUT_MS,
        Step::Hours(h) => h as u64 * 3_600_000,
        Step::NextDeadline => deadline.map_or(0, |d| d.saturating_sub(now)),
    }
}

impl Victim {
    pub fn new(profile: &Profile, auto_dispatch: bool) -> Self {
        let node = Node::new(VICTIM, profile, auto_dispatch);
        let mut v = Victim { node, now: T0, forge: Forge::new(VICTIM, profile.encryption), dispatched: Vec::new(), sends: Vec::new() };
        v.collect();
        v
    }

    /// Runs a whole input.
    pub fn run(input: &Input) {
        let mut v = Victim::new(&input.profile, input.auto_dispatch);
        for op in input.ops.iter().take(MAX_OPS) {
            v.step(op);
            v.collect();
        }
    }

    /// Makes the channel's new dispatches known to the forge (ids to acknowledge, hashes to echo).
    fn collect(&mut self) {
        for m in std::mem::take(&mut self.node.outbox) {
            self.forge.on_own_dispatch(&m);
            if self.dispatched.len() < MAX_STORED {
                self.dispatched.push(m);
            }
        }
    }

    fn deliver(&mut self, d: &Delivery) {
        self.node.deliver(self.now, &d.message, d.hash);
    }

    /// Registers (for later references and store answers) and delivers.
    fn inject(&mut self, d: Delivery) {
        self.forge.register(&d);
        self.deliver(&d);
    }

    /// One operation.
    pub fn step(&mut self, op: &Op) {
        self.forge.clock = self.node.ch.sds().lamport_timestamp();
        match op {
            Op::Inject(m) => {
                let d = self.forge.injected(m);
                self.inject(d);
            }
            Op::Chain(c) => {
                for d in self.forge.chain(c) {
                    self.inject(d);
                }
            }
            Op::Vector { index, sender, reframe } => {
                let d = self.forge.vector(*index, sender.as_ref(), reframe.as_ref());
                self.inject(d);
            }
            Op::Garbage(bytes) => self.inject(Delivery { message: Forge::waku(Bytes::copy_from_slice(bytes)), hash: None }),
            Op::RawWaku(bytes) => {
                if let Ok(message) = WakuMessage::decode_bytes(Bytes::copy_from_slice(bytes)) {
                    let hash = Some(message.hash(PUBSUB));
                    self.inject(Delivery { message, hash });
                }
            }
            Op::Replay { pick, own, mutation, hash } => {
                let source = if *own {
                    self.dispatched.get(pick_index(*pick, self.dispatched.len()))
                } else {
                    self.forge.injected.get(pick_index(*pick, self.forge.injected.len())).map(|d| &d.message)
                };
                let Some(m) = source.cloned() else { return };
                let message = self.forge.mutate(m, mutation);
                let hash = self.forge.hash(*hash, &message);
                self.deliver(&Delivery { message, hash });
            }
            Op::Ack { sender, n, history, bloom, sync } => {
                let d = self.forge.ack(*sender, *n, *history, *bloom, *sync);
                self.inject(d);
            }
            Op::Send { size, ephemeral, reuse } => {
                let request = match reuse {
                    Some(i) if !self.sends.is_empty() => self.sends[pick_index(*i, self.sends.len())].clone(),
                    _ => format!("own-{}", self.sends.len()),
                };
                let payload = fill(size.bytes(), self.sends.len() as u8);
                self.node.send(self.now, &request, &payload, *ephemeral);
                self.sends.push(request);
            }
            Op::DispatchResult { pick, ok, hash, unknown } => {
                if *unknown || self.node.tokens.is_empty() {
                    let token = u64::MAX - *pick as u64;
                    assert!(!self.node.ch.on_dispatch_result(self.now, token, Ok(None)), "unknown dispatch token {token} accepted");
                } else {
                    let (token, h) = self.node.tokens.remove(pick_index(*pick, self.node.tokens.len()));
                    let result = if *ok { Ok(hash.then_some(h)) } else { Err("refused by the fuzzer".to_owned()) };
                    self.node.report(self.now, token, result);
                    assert!(!self.node.ch.on_dispatch_result(self.now, token, Ok(None)), "dispatch token {token} reported twice was accepted");
                }
                self.node.settle(self.now);
            }
            Op::StoreAnswer => {
                let Some(h) = self.node.retrievals.pop_front() else { return };
                if let Some(message) = self.forge.store.get(&h).cloned() {
                    self.deliver(&Delivery { message, hash: Some(h) });
                }
            }
            Op::Advance(step) => {
                self.now = self.now.saturating_add(step_ms(*step, self.now, self.node.ch.next_deadline()));
                self.node.fire_timers(self.now);
            }
        }
    }
}

/// `i` reduced to an index of a list of `len` (> 0) items.
pub fn pick_index(i: u16, len: usize) -> usize {
    i as usize % len.max(1)
}
