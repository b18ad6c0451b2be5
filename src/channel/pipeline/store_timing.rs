//! Where a store serves what we publish and the RLN budget makes every publication count, losses
//! are repaired by free store fetches instead of retransmissions and acknowledgement syncs.
//!
//! spec: retrieval.store-timing — a receiver that lost one of our messages learns its retrieval
//! hint (its Waku message hash) from the causal history of our next messages and fetches it from
//! the store. So, when the transport says a store exists (`Transport::has_store`) and the rate
//! limit is on:
//!
//! * the first retransmission of a message dispatched with its hint waits
//!   [`STORE_FIRST_RETRANSMIT_TIMEOUTS`] acknowledgement timeouts, and acknowledgement syncs go
//!   out [`STORE_ACK_DELAY_SCALE`] × later (see `SdsEngine::set_store_timing`): at a budget's pace
//!   our own next content carries the acknowledgement (a duplicate, i.e. the sender retransmitting,
//!   pulls it in to the plain delay: `SyncScheduler::owe_ack_soon` in `src/sds/sync.rs`);
//! * spec: sds.retransmission.evidence — our newest message is re-sent at once when a peer's
//!   message shows the peer lacks it and nothing else brings it the hint soon (with one peer, only
//!   our next message does, a budget's pace away): `src/sds/engine/evidence.rs`. The channel
//!   allows it only while nothing of ours waits for the rate limit
//!   ([`Channel::evidence_resend_affordable`]).
//! * spec: retrieval.hint-order — a content chunk is wrapped only once the dispatch of our
//!   previous one has been confirmed with its hash, so that its causal history names that message
//!   *with* its hint. Otherwise a burst (the rate limiter releasing a queue at an epoch turn)
//!   names each predecessor without a hint: a receiver that lost one of them could neither fetch
//!   it nor, with the budget spent, ask for it, and another receiver's acknowledgement stops the
//!   sender's retransmissions (`benches/wire.rs`, chat pace, 4 participants: receptions lost).
//!   A fresh chunk waits *before* the rate limiter charges it (in the channel's hold, or at the
//!   head of the limiter's queue, which is then not released), so that it is charged in the
//!   epoch it is published in. A confirmation that does not come within [`hint_wait_ms`]
//!   releases the next chunk anyway.
//!
//! Without a store, or without a rate limit (no budget to save, latency matters more), the plain
//! timing applies and nothing is held.

use std::collections::VecDeque;

use super::{Channel, Queued};

/// The first retransmission of a hinted message, in acknowledgement timeouts, where a store
/// serves it. Later than the delayed acknowledgement ([`STORE_ACK_DELAY_SCALE`] × 0.5–0.75 = 2–3
/// timeouts) plus a network round trip, and than a budget pace's next content message.
pub const STORE_FIRST_RETRANSMIT_TIMEOUTS: u32 = 6;
/// How much later acknowledgement syncs go out where a store serves the messages.
pub const STORE_ACK_DELAY_SCALE: u32 = 4;
/// A held content chunk waits at most the acknowledgement timeout divided by this for the
/// confirmation (with hash) of our previous dispatch.
pub const HINT_WAIT_DIVISOR: u64 = 10;

/// How long a content chunk waits for the hint of the previous one: derived from the ack timeout.
pub fn hint_wait_ms(ack_timeout_ms: u64) -> u64 {
    (ack_timeout_ms / HINT_WAIT_DIVISOR).max(1)
}

/// Fresh content chunks waiting, not yet offered to the rate limiter (uncharged), for the hint of
/// our previous one; and what the wait depends on.
#[derive(Debug, Default)]
pub(super) struct HintHold {
    held: VecDeque<Queued>,
    /// First dispatches of content chunks not yet confirmed by the messaging layer.
    unconfirmed: usize,
    /// When the wait for the latest of them ends, confirmed or not.
    until: Option<u64>,
    /// The transport's store capability, as last told.
    store_available: bool,
}

impl Channel {
    /// Tells the channel whether its transport's store can serve what it publishes
    /// (`Transport::has_store`; the runtime tells it whenever it drives the channel). With a
    /// store and the rate limit on, losses are repaired by store fetches rather than
    /// retransmissions (see the module docs of `pipeline/store_timing.rs`).
    pub fn set_store_available(&mut self, available: bool) {
        if available == self.hints.store_available {
            return;
        }
        self.hints.store_available = available;
        if self.store_timing() {
            self.sds.set_store_timing(STORE_FIRST_RETRANSMIT_TIMEOUTS, STORE_ACK_DELAY_SCALE);
        } else {
            self.sds.set_store_timing(1, 1);
            let now = self.now;
            self.flush_held(now, true);
            self.release(now);
        }
    }

    /// Is the store-aware timing in force?
    pub fn store_timing(&self) -> bool {
        self.hints.store_available && self.config().rate_limit.enabled
    }

    /// Is a fresh chunk to wait for the confirmation of our previous one?
    fn waiting_for_hint(&self, now: u64) -> bool {
        self.hints.store_available && self.hints.unconfirmed > 0 && self.hints.until.is_some_and(|t| now < t) && self.store_timing()
    }

    /// Must this offered item wait (uncharged) in the hold? Fresh chunks keep their order: behind
    /// what is held already; behind the limiter's queue (held at its head by [`Self::gate_closed`]).
    pub(super) fn must_hold(&self, now: u64, item: &Queued) -> bool {
        matches!(item, Queued::Fresh { .. }) && (!self.hints.held.is_empty() || (self.limiter.queue_len() == 0 && self.waiting_for_hint(now)))
    }

    pub(super) fn hold(&mut self, item: Queued) {
        self.hints.held.push_back(item);
    }

    /// Is the head of the rate limiter's queue a fresh chunk that must wait (not released, not charged)?
    pub(super) fn gate_closed(&self, now: u64) -> bool {
        self.waiting_for_hint(now) && matches!(self.limiter.queued().next(), Some(Queued::Fresh { .. }))
    }

    /// A first dispatch of a content chunk went out (`true`) or was confirmed or failed (`false`).
    pub(super) fn note_unconfirmed(&mut self, dispatched: bool) {
        if dispatched {
            self.hints.unconfirmed += 1;
            self.hints.until = Some(self.now.saturating_add(hint_wait_ms(self.config().sds.acknowledgement_timeout_ms)));
        } else {
            self.hints.unconfirmed = self.hints.unconfirmed.saturating_sub(1);
        }
    }

    /// Offers held chunks to the rate limiter while nothing is to be waited for (`all`: every
    /// one). Once the limiter queues one, the rest follow it into its queue, in order.
    pub(super) fn flush_held(&mut self, now: u64, all: bool) {
        while !self.hints.held.is_empty() {
            if !all && self.waiting_for_hint(now) {
                break;
            }
            let Some(item) = self.hints.held.pop_front() else { break };
            self.offer_to_limiter(now, item);
            if self.limiter.queue_len() > 0 {
                while let Some(item) = self.hints.held.pop_front() {
                    self.offer_to_limiter(now, item);
                }
            }
        }
    }

    /// When held chunks are due: at the end of the wait, or now when nothing is to be waited for.
    pub(super) fn hint_deadline(&self, now: u64) -> Option<u64> {
        if self.hints.held.is_empty() && !self.gate_closed(now) {
            return None;
        }
        Some(if self.waiting_for_hint(now) { self.hints.until.unwrap_or(now) } else { now })
    }

    /// spec: sds.retransmission.evidence — may a message a peer lacks be re-sent at once? Not
    /// while something of ours waits for the budget (held or queued by the rate limiter): that
    /// next content carries the hint, and a re-send would only delay it.
    pub(super) fn evidence_resend_affordable(&self) -> bool {
        self.limiter.queue_len() == 0 && self.held_len() == 0
    }

    /// Held chunks (counted with the rate-limit queue in `bounds`).
    pub(super) fn held_len(&self) -> usize {
        self.hints.held.len()
    }
}
