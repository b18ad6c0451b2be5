//! A channel with its driver's bookkeeping: what it dispatched, what it asked the store for,
//! and the [`Ledger`] of its events. Plays the part of `runtime/driver.rs` without threads.

use std::collections::VecDeque;
use std::sync::Arc;

use reliable_channel::channel::{Channel, ChannelAction};
use reliable_channel::wire::{MessageHash, WakuMessage};

use crate::ledger::Ledger;
use crate::{Profile, CHANNEL, PUBSUB, T0, TOPIC};

/// Rounds of "fire due timers" per clock step at most (each must move the deadline forward).
const MAX_TIMER_ROUNDS: usize = 64;

/// One channel and its driver's state.
pub struct Node {
    pub ch: Channel,
    pub ledger: Ledger,
    /// Report every dispatch as accepted (with its hash) as soon as it is taken.
    pub auto_dispatch: bool,
    /// Dispatch tokens not yet reported, oldest first, with the message's hash.
    pub tokens: Vec<(u64, MessageHash)>,
    /// Hashes the channel asked the store for, oldest first.
    pub retrievals: VecDeque<MessageHash>,
    /// Messages dispatched since the owner last took them.
    pub outbox: Vec<WakuMessage>,
    /// Report the next automatic dispatch outcome as a failure.
    pub fail_next: bool,
}

impl Node {
    /// A channel with `sender` as its sender id, configured by `profile`.
    pub fn new(sender: &str, profile: &Profile, auto_dispatch: bool) -> Self {
        let mut ch = Channel::new(CHANNEL, TOPIC, sender, profile.config(), T0, profile.seed ^ sender.len() as u64);
        if let Some(c) = profile.cipher() {
            ch.set_encryption(Some(Arc::new(c)));
        }
        let mut n = Node {
            ch,
            ledger: Ledger::new(sender),
            auto_dispatch,
            tokens: Vec::new(),
            retrievals: VecDeque::new(),
            outbox: Vec::new(),
            fail_next: false,
        };
        n.settle(T0);
        n
    }

    /// Takes every pending action; checks bounds and accounting.
    fn take_actions(&mut self) {
        while let Some(a) = self.ch.poll_action() {
            match a {
                ChannelAction::Dispatch { token, message } => {
                    self.tokens.push((token, message.hash(PUBSUB)));
                    self.outbox.push(message);
                }
                ChannelAction::Retrieve { hashes } => self.retrievals.extend(hashes),
                ChannelAction::Event(ev) => self.ledger.on_event(&ev),
            }
        }
        self.ledger.check_channel(&self.ch);
    }

    /// Takes the actions and, when automatic, reports every dispatch as accepted, until quiet.
    pub fn settle(&mut self, now: u64) {
        loop {
            self.take_actions();
            if !self.auto_dispatch || self.tokens.is_empty() {
                return;
            }
            for (token, hash) in std::mem::take(&mut self.tokens) {
                let result = if std::mem::take(&mut self.fail_next) { Err("refused by the fuzzer".to_owned()) } else { Ok(Some(hash)) };
                self.report(now, token, result);
            }
        }
    }

    /// Reports the outcome of a dispatch the channel made.
    pub fn report(&mut self, now: u64, token: u64, result: Result<Option<MessageHash>, String>) {
        assert!(self.ch.on_dispatch_result(now, token, result), "dispatch token {token} unknown to its channel");
    }

    /// Delivers a message from the network.
    pub fn deliver(&mut self, now: u64, message: &WakuMessage, hash: Option<MessageHash>) {
        self.ch.on_message(now, message, hash);
        self.settle(now);
    }

    /// An own send, recorded in the ledger.
    pub fn send(&mut self, now: u64, request: &str, payload: &[u8], ephemeral: bool) {
        let result = self.ch.send(now, request, payload, ephemeral);
        self.ledger.on_send(request, payload, ephemeral, self.ch.config().chunk_size_bytes, &result);
        self.settle(now);
    }

    /// Fires the timers due at `now`. After each `handle_timeout(now)` the next deadline must be
    /// past `now`: the runtime's timer loop (`runtime/driver.rs`, `fire_timers`) re-fires a
    /// channel as long as its deadline is not in the future, so a deadline left at `now` spins it.
    pub fn fire_timers(&mut self, now: u64) {
        for _ in 0..MAX_TIMER_ROUNDS {
            match self.ch.next_deadline() {
                Some(d) if d <= now => {}
                _ => return,
            }
            self.ch.handle_timeout(now);
            self.take_actions();
            if let Some(d) = self.ch.next_deadline() {
                assert!(d > now, "next_deadline() is {d} right after handle_timeout({now}): a runtime timer loop would spin");
            }
            self.settle(now);
        }
    }
}
