//! The rate limiter: one epoch counter and one FIFO queue.
//!
//! Only the current epoch's usage is kept: epochs are numbered by (clamped, non-decreasing) time,
//! so once time moves into a later epoch the earlier one can never be charged again and its
//! count is forgotten. That makes every operation O(1) except the explicit removals
//! (`remove_where`, O(queue)) and `wanted` discards (each item is discarded at most once).

use std::collections::VecDeque;

use super::config::{Accounting, RateLimitConfig};

/// What kind of WakuMessage an item will be dispatched as: decides its cost and whether it may
/// wait for a later epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MessageClass {
    /// A content chunk's first dispatch. `first`: chunk index 0 of its message.
    Chunk { first: bool },
    /// An SDS retransmission of a content chunk: costs exactly what the chunk did.
    Retransmission { first_chunk: bool },
    /// An SDS sync message: a standalone WakuMessage, always costs 1. Droppable.
    Sync,
    /// A chunk of an ephemeral (unreliable) send. `first`: chunk index 0. Droppable.
    Ephemeral { first: bool },
}

impl MessageClass {
    /// Sync and ephemeral traffic is best effort: never queued, dropped near the limit.
    pub fn is_droppable(self) -> bool {
        matches!(self, MessageClass::Sync | MessageClass::Ephemeral { .. })
    }

    /// Does this WakuMessage start a message (chunk index 0, or a standalone sync message)?
    fn is_first(self) -> bool {
        match self {
            MessageClass::Chunk { first } | MessageClass::Ephemeral { first } => first,
            MessageClass::Retransmission { first_chunk } => first_chunk,
            MessageClass::Sync => true,
        }
    }
}

/// The outcome of [`RateLimiter::offer`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admit<T> {
    /// Dispatch it now; its cost has been charged to the current epoch.
    Now(T),
    /// Held in the FIFO queue; [`RateLimiter::next_ready`] will release it.
    Queued,
    /// Droppable traffic refused (budget near its limit, or something is queued). Not charged.
    Dropped(T),
    /// It would have to wait but the queue is at its item or byte bound. Not charged; the caller
    /// must report backpressure (check [`RateLimiter::has_room`] beforehand to refuse cleanly).
    Full(T),
}

/// Counters since creation. Monotone except `max_epoch_used`, which is a maximum.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RateLimitStats {
    /// Offers admitted at once.
    pub admitted: u64,
    /// Offers queued for a later epoch.
    pub queued: u64,
    /// Queued items released by `next_ready`.
    pub released: u64,
    /// Sync messages dropped.
    pub dropped_sync: u64,
    /// Ephemeral chunks dropped.
    pub dropped_ephemeral: u64,
    /// Offers refused because the queue was full.
    pub full: u64,
    /// Queued items rejected by the `wanted` filter of `next_ready`.
    pub discarded: u64,
    /// Queued items taken out by `remove_where`.
    pub removed: u64,
    /// Total cost charged (over all epochs).
    pub charged: u64,
    /// Highest budget usage seen in any single epoch.
    pub max_epoch_used: u32,
}

#[derive(Debug)]
struct Queued<T> {
    item: T,
    bytes: usize,
    cost: u32,
}

/// RLN budget accounting and FIFO delay, generic over the caller's dispatch record `T`.
///
/// Sans-I/O: never reads a clock. Every time-dependent call takes `now` (Unix ms); values earlier
/// than the latest seen are treated as the latest, so the charged epoch never goes backwards.
#[derive(Debug)]
pub struct RateLimiter<T> {
    config: RateLimitConfig,
    /// `config.effective_epoch_size_ms()`.
    epoch_ms: u64,
    /// `config.approach_limit()`.
    approach_limit: u32,
    /// `config.control_limit()`.
    control_limit: u32,
    /// Latest `now` seen by a mutating call.
    now: u64,
    /// The epoch `used` belongs to.
    epoch: u64,
    /// Budget charged in `epoch`.
    used: u32,
    /// Of which by sync traffic.
    control_used: u32,
    queue: VecDeque<Queued<T>>,
    queued_bytes: usize,
    stats: RateLimitStats,
}

impl<T> RateLimiter<T> {
    /// A limiter with an empty queue and nothing charged. Never panics: an `epoch_size_ms` of 0 is
    /// used as 1 and the threshold is clamped (see [`RateLimitConfig::approach_limit`]); call
    /// [`RateLimitConfig::validate`] first to reject such values instead.
    pub fn new(config: RateLimitConfig) -> Self {
        let epoch_ms = config.effective_epoch_size_ms();
        let approach_limit = config.approach_limit();
        let control_limit = config.control_limit();
        RateLimiter {
            control_limit,
            control_used: 0,
            config,
            epoch_ms,
            approach_limit,
            now: 0,
            epoch: 0,
            used: 0,
            queue: VecDeque::new(),
            queued_bytes: 0,
            stats: RateLimitStats::default(),
        }
    }

    pub fn config(&self) -> &RateLimitConfig {
        &self.config
    }

    /// spec: ratelimit.first-chunk — budget one WakuMessage of `class` costs. Under
    /// [`Accounting::FirstChunk`] a message's first chunk (fresh, retransmitted or ephemeral) and
    /// every sync message cost 1, later chunks 0; under [`Accounting::AllMessages`] everything costs 1.
    pub fn cost(&self, class: MessageClass) -> u32 {
        match self.config.accounting {
            Accounting::AllMessages => 1,
            Accounting::FirstChunk => u32::from(class.is_first()),
        }
    }

    /// spec: ratelimit.epoch — `floor(now / epoch_size_ms)`.
    pub fn epoch(&self, now: u64) -> u64 {
        now / self.epoch_ms
    }

    /// Start (Unix ms) of the epoch after the one containing `now`; saturates at `u64::MAX`.
    pub fn next_epoch_start(&self, now: u64) -> u64 {
        self.epoch(now).saturating_add(1).saturating_mul(self.epoch_ms)
    }

    /// Budget used in the epoch of `now` (clamped to the latest time seen).
    pub fn used(&self, now: u64) -> u32 {
        let now = now.max(self.now);
        if self.epoch(now) == self.epoch {
            self.used
        } else {
            0
        }
    }

    /// The epoch last charged and what it was charged (to store the usage of a durable channel).
    pub fn usage(&self) -> (u64, u32) {
        (self.epoch, self.used)
    }

    /// Restore: `used` was already charged in `epoch` (before a restart). Ignored for an epoch
    /// older than the current one; never lowers the usage.
    pub fn restore_usage(&mut self, epoch: u64, used: u32) {
        if epoch > self.epoch {
            (self.epoch, self.used) = (epoch, used);
        } else if epoch == self.epoch {
            self.used = self.used.max(used);
        }
        self.stats.max_epoch_used = self.stats.max_epoch_used.max(self.used);
    }

    /// Budget left in the epoch of `now` for items that may wait (content chunks, retransmissions).
    pub fn remaining(&self, now: u64) -> u32 {
        self.config.messages_per_epoch.saturating_sub(self.used(now))
    }

    /// spec: ratelimit.approach — would droppable traffic of total cost `cost` be admitted now?
    /// Lets a caller check a whole ephemeral message (sum of its chunks' costs) before offering
    /// its chunks, so that it is not cut short midway.
    pub fn admits_droppable(&self, now: u64, cost: u32) -> bool {
        if !self.config.enabled {
            return true;
        }
        if !self.queue.is_empty() {
            return false;
        }
        cost == 0 || u64::from(self.used(now)) + u64::from(cost) <= u64::from(self.approach_limit)
    }

    /// spec: ratelimit.control-share — would sync traffic of cost `cost` stay within the epoch's
    /// control share? (Also subject to [`Self::admits_droppable`].)
    pub fn admits_control(&self, now: u64, cost: u32) -> bool {
        !self.config.enabled || cost == 0 || u64::from(self.control_used(now)) + u64::from(cost) <= u64::from(self.control_limit)
    }

    /// Budget spent by sync traffic in the epoch of `now`.
    pub fn control_used(&self, now: u64) -> u32 {
        if self.epoch(now.max(self.now)) == self.epoch {
            self.control_used
        } else {
            0
        }
    }

    /// Can `items` more items totalling `bytes` be queued without exceeding the queue bounds?
    pub fn has_room(&self, items: usize, bytes: usize) -> bool {
        self.queue.len().saturating_add(items) <= self.config.max_queued_items
            && self.queued_bytes.saturating_add(bytes) <= self.config.max_queued_bytes
    }

    pub fn queue_len(&self) -> usize {
        self.queue.len()
    }

    pub fn queued_bytes(&self) -> usize {
        self.queued_bytes
    }

    /// The queued items, head first.
    pub fn queued(&self) -> impl Iterator<Item = &T> + '_ {
        self.queue.iter().map(|q| &q.item)
    }

    pub fn stats(&self) -> &RateLimitStats {
        &self.stats
    }

    /// Advances the clock; a new epoch starts with nothing charged.
    fn tick(&mut self, now: u64) {
        self.now = self.now.max(now);
        let epoch = self.epoch(self.now);
        if epoch != self.epoch {
            self.epoch = epoch;
            self.used = 0;
            self.control_used = 0;
        }
    }

    /// Does `cost` fit in what is left of the full budget of the current epoch?
    fn fits(&self, cost: u32) -> bool {
        !self.config.enabled || u64::from(self.used) + u64::from(cost) <= u64::from(self.config.messages_per_epoch)
    }

    /// Charges the current epoch. Counted even when limiting is disabled, for the stats.
    fn charge(&mut self, cost: u32) {
        self.used = self.used.saturating_add(cost);
        self.stats.charged += u64::from(cost);
        self.stats.max_epoch_used = self.stats.max_epoch_used.max(self.used);
    }

    /// Admits `item` now (charging the epoch of `now`), queues it behind everything already
    /// queued, or refuses it:
    ///
    /// - disabled: always [`Admit::Now`];
    /// - spec: ratelimit.approach — droppable (`Sync`, `Ephemeral`): `Now` iff the queue is empty
    ///   and (`cost == 0` or `used + cost <= approach_limit`) and, for `Sync`, the control share
    ///   allows it ([`Self::admits_control`]), else [`Admit::Dropped`];
    /// - spec: ratelimit.delay — other classes: `Now` iff the queue is empty and
    ///   `used + cost <= messages_per_epoch`; else [`Admit::Queued`] (strict FIFO, even at cost 0)
    ///   when `has_room(1, bytes)`, else [`Admit::Full`].
    pub fn offer(&mut self, now: u64, item: T, bytes: usize, class: MessageClass) -> Admit<T> {
        self.tick(now);
        let cost = self.cost(class);
        if class.is_droppable() {
            let control = class == MessageClass::Sync;
            if self.admits_droppable(self.now, cost) && (!control || self.admits_control(self.now, cost)) {
                self.charge(cost);
                if control {
                    self.control_used = self.control_used.saturating_add(cost);
                }
                self.stats.admitted += 1;
                return Admit::Now(item);
            }
            match class {
                MessageClass::Sync => self.stats.dropped_sync += 1,
                _ => self.stats.dropped_ephemeral += 1,
            }
            return Admit::Dropped(item);
        }
        if self.queue.is_empty() && self.fits(cost) {
            self.charge(cost);
            self.stats.admitted += 1;
            return Admit::Now(item);
        }
        if !self.has_room(1, bytes) {
            self.stats.full += 1;
            return Admit::Full(item);
        }
        self.queued_bytes += bytes;
        self.queue.push_back(Queued { item, bytes, cost });
        self.stats.queued += 1;
        Admit::Queued
    }

    fn pop_head(&mut self) -> Option<Queued<T>> {
        let q = self.queue.pop_front()?;
        self.queued_bytes -= q.bytes;
        Some(q)
    }

    /// Releases the head of the queue if the current epoch's budget allows, charging it. Before
    /// that, `wanted` is asked about each head in turn: heads it rejects (e.g. already
    /// acknowledged) are removed uncharged and handed to `discarded` (a `Vec`, or [`Discard`]).
    /// Call repeatedly until `None`, then sleep until [`RateLimiter::next_deadline`].
    pub fn next_ready(&mut self, now: u64, wanted: &mut dyn FnMut(&T) -> bool, discarded: &mut impl Extend<T>) -> Option<T> {
        self.tick(now);
        loop {
            let head = self.queue.front()?;
            if !wanted(&head.item) {
                if let Some(q) = self.pop_head() {
                    self.stats.discarded += 1;
                    discarded.extend(Some(q.item));
                }
                continue;
            }
            if !self.fits(head.cost) {
                return None;
            }
            let q = self.pop_head()?;
            self.charge(q.cost);
            self.stats.released += 1;
            return Some(q.item);
        }
    }

    /// Removes every queued item matching `pred` (e.g. the chunks of a failed send), uncharged,
    /// in queue order. O(queue length).
    pub fn remove_where(&mut self, pred: &mut dyn FnMut(&T) -> bool) -> Vec<T> {
        let mut removed = Vec::new();
        self.remove_into(pred, &mut removed);
        removed
    }

    /// [`Self::remove_where`] handing the removed items to `out` (a `Vec`, or [`Discard`]).
    pub fn remove_into(&mut self, pred: &mut dyn FnMut(&T) -> bool, out: &mut impl Extend<T>) {
        if self.queue.is_empty() {
            return;
        }
        let mut kept = VecDeque::with_capacity(self.queue.len());
        for q in self.queue.drain(..) {
            if pred(&q.item) {
                self.queued_bytes -= q.bytes;
                self.stats.removed += 1;
                out.extend(Some(q.item));
            } else {
                kept.push_back(q);
            }
        }
        self.queue = kept;
    }

    /// When `next_ready` should next be called: `None` with an empty queue; `now` (clamped) when
    /// the head fits the current budget (call it at once); otherwise the start of the next
    /// epoch, when the budget resets.
    pub fn next_deadline(&self, now: u64) -> Option<u64> {
        let head = self.queue.front()?;
        let now = now.max(self.now);
        let used = self.used(now);
        if !self.config.enabled || u64::from(used) + u64::from(head.cost) <= u64::from(self.config.messages_per_epoch) {
            Some(now)
        } else {
            Some(self.next_epoch_start(now))
        }
    }
}

/// An [`Extend`] sink that drops what it is given: for callers of [`RateLimiter::next_ready`]
/// and [`RateLimiter::remove_into`] with no use for the items taken out of the queue.
#[derive(Debug, Default, Clone, Copy)]
pub struct Discard;

impl<T> Extend<T> for Discard {
    fn extend<I: IntoIterator<Item = T>>(&mut self, items: I) {
        items.into_iter().for_each(drop);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limiter(limit: u32) -> RateLimiter<u32> {
        RateLimiter::new(RateLimitConfig { epoch_size_ms: 1_000, messages_per_epoch: limit, ..Default::default() })
    }

    #[test]
    fn fills_then_queues_then_releases_next_epoch() {
        let mut rl = limiter(2);
        let c = MessageClass::Chunk { first: true };
        assert_eq!(rl.offer(10, 1, 1, c), Admit::Now(1));
        assert_eq!(rl.offer(10, 2, 1, c), Admit::Now(2));
        assert_eq!(rl.offer(10, 3, 1, c), Admit::Queued);
        assert_eq!(rl.next_deadline(10), Some(1_000));
        let mut d = Vec::new();
        assert_eq!(rl.next_ready(999, &mut |_| true, &mut d), None);
        assert_eq!(rl.next_ready(1_000, &mut |_| true, &mut d), Some(3));
        assert_eq!(rl.used(1_000), 1);
        assert_eq!(rl.next_deadline(1_000), None);
    }

    #[test]
    fn time_going_backwards_is_clamped() {
        let mut rl = limiter(1);
        let c = MessageClass::Chunk { first: true };
        assert_eq!(rl.offer(1_500, 1, 1, c), Admit::Now(1));
        // An earlier `now` is treated as 1_500: same epoch, budget spent.
        assert_eq!(rl.offer(500, 2, 1, c), Admit::Queued);
        assert_eq!(rl.used(500), 1);
    }

    #[test]
    fn approach_limit_rounding() {
        let cfg = |t: f64, l: u32| RateLimitConfig { approach_threshold: t, messages_per_epoch: l, ..Default::default() };
        assert_eq!(cfg(0.9, 100).approach_limit(), 90);
        assert_eq!(cfg(0.29, 100).approach_limit(), 29);
        assert_eq!(cfg(0.9, 1).approach_limit(), 0);
        assert_eq!(cfg(1.5, 10).approach_limit(), 10);
        assert_eq!(cfg(-1.0, 10).approach_limit(), 0);
        assert_eq!(cfg(f64::NAN, 10).approach_limit(), 9);
    }

    #[test]
    fn zero_epoch_size_does_not_panic() {
        let mut rl: RateLimiter<u8> = RateLimiter::new(RateLimitConfig { epoch_size_ms: 0, ..Default::default() });
        assert_eq!(rl.epoch(5), 5);
        assert!(matches!(rl.offer(u64::MAX, 0, 0, MessageClass::Sync), Admit::Now(0)));
        assert_eq!(rl.next_epoch_start(u64::MAX), u64::MAX);
    }
}
