//! When to send sync messages.
//!
//! spec: sds.sync —
//! * ack sync: after content is delivered, unless we send something ourselves first, a sync goes
//!   out after a random 0.25–0.5 × `acknowledgement_timeout_ms`, so that the sender sees its ack
//!   before it retransmits. A burst larger than the causal-history window needs
//!   `possible_acks_threshold` messages from us (bloom hits), so that many rounds are scheduled.
//!   A duplicate (a peer retransmitting: our ack did not reach it) schedules one more round.
//! * idle sync: at most one per randomised `sync_interval_ms` (×0.75–1.25), for `idle_sync_rounds`
//!   intervals after the log last changed, so that peers who missed the latest messages learn of
//!   them even over lossy links; then the channel goes quiet and arms no timer.
//! * repair sync: while a dependency we know is missing has no retrieval hint (it cannot be
//!   fetched from the store), a sync goes out after 0.25–0.5 × `acknowledgement_timeout_ms` and
//!   then about once per `acknowledgement_timeout_ms` (×0.75–1.25): it lists those dependencies
//!   in `repair_request`, and a peer holding one answers with its hint (see
//!   `repair.rs`).

use rand::Rng;

#[derive(Debug, Default)]
pub(super) struct SyncScheduler {
    ack_at: Option<u64>,
    idle_at: Option<u64>,
    rounds: u32,
    delivered_since_send: usize,
    idle_rounds_left: u32,
    repair_at: Option<u64>,
}

fn jitter(rng: &mut impl Rng, base: u64, lo: f64, hi: f64) -> u64 {
    (base as f64 * rng.gen_range(lo..hi)) as u64
}

impl SyncScheduler {
    fn arm_ack(&mut self, now: u64, ack_timeout: u64, rng: &mut impl Rng) {
        if self.ack_at.is_none() {
            self.ack_at = Some(now.saturating_add(jitter(rng, ack_timeout, 0.25, 0.5)));
        }
    }

    fn arm_idle(&mut self, now: u64, interval: u64, rounds: u32, rng: &mut impl Rng) {
        self.idle_rounds_left = rounds;
        if self.idle_at.is_none() && interval > 0 && rounds > 0 {
            self.idle_at = Some(now.saturating_add(jitter(rng, interval, 0.75, 1.25)));
        }
    }

    /// Received content was delivered.
    pub fn on_delivered(&mut self, now: u64, window: usize, threshold: u32, ack_timeout: u64, idle: (u64, u32), rng: &mut impl Rng) {
        self.delivered_since_send += 1;
        let need = if self.delivered_since_send > window { threshold.max(1) } else { 1 };
        self.rounds = self.rounds.max(need);
        self.arm_ack(now, ack_timeout, rng);
        self.arm_idle(now, idle.0, idle.1, rng);
    }

    /// One more acknowledgement round is owed: a peer re-sent something we have (our ack did not
    /// reach it), or our content message named only part of what we received.
    pub fn owe_ack_round(&mut self, now: u64, ack_timeout: u64, rng: &mut impl Rng) {
        self.rounds = self.rounds.max(1);
        self.arm_ack(now, ack_timeout, rng);
    }

    /// A dependency without retrieval hint became missing: announce our state soon.
    pub fn on_missing(&mut self, now: u64, ack_timeout: u64, rng: &mut impl Rng) {
        if self.repair_at.is_none() {
            self.repair_at = Some(now.saturating_add(jitter(rng, ack_timeout, 0.25, 0.5)));
        }
    }

    /// Still missing a dependency without hint: announce again about one ack timeout later.
    pub fn rearm_repair(&mut self, now: u64, ack_timeout: u64, rng: &mut impl Rng) {
        if self.repair_at.is_none() {
            self.repair_at = Some(now.saturating_add(jitter(rng, ack_timeout, 0.75, 1.25)));
        }
    }

    /// We sent a content message.
    pub fn on_content_sent(&mut self, now: u64, ack_timeout: u64, idle: (u64, u32), rng: &mut impl Rng) {
        self.after_send(now, ack_timeout, rng);
        self.arm_idle(now, idle.0, idle.1, rng);
    }

    /// Anything of ours carrying history and bloom went out: one acknowledgement round done.
    fn after_send(&mut self, now: u64, ack_timeout: u64, rng: &mut impl Rng) {
        self.rounds = self.rounds.saturating_sub(1);
        self.delivered_since_send = 0;
        self.ack_at = None;
        if self.rounds > 0 {
            self.arm_ack(now, ack_timeout, rng);
        }
    }

    /// Is a sync due at `now`? Consumes the timers that fired; the caller sends a sync when true
    /// and then calls [`Self::on_sync_sent`].
    pub fn take_due(&mut self, now: u64, interval: u64, rng: &mut impl Rng) -> bool {
        let mut due = false;
        if self.ack_at.is_some_and(|t| t <= now) {
            self.ack_at = None;
            due = true;
        }
        if self.repair_at.is_some_and(|t| t <= now) {
            self.repair_at = None;
            due = true;
        }
        if self.idle_at.is_some_and(|t| t <= now) {
            self.idle_at = None;
            if self.idle_rounds_left > 0 {
                self.idle_rounds_left -= 1;
                due = true;
                if self.idle_rounds_left > 0 {
                    self.idle_at = Some(now.saturating_add(jitter(rng, interval, 0.75, 1.25)));
                }
            }
        }
        due
    }

    /// A sync went out (or was due but had nothing to report).
    pub fn on_sync_sent(&mut self, now: u64, ack_timeout: u64, rng: &mut impl Rng) {
        self.after_send(now, ack_timeout, rng);
    }

    /// The earliest armed timer, if any.
    pub fn next_deadline(&self) -> Option<u64> {
        earliest(earliest(self.ack_at, self.idle_at), self.repair_at)
    }
}

/// The earlier of two optional deadlines. Straight-line on purpose: `[..].into_iter().flatten().min()`
/// compiled (once inlined into `SdsEngine::next_deadline`) to a loop branching on the payload of a
/// `None` read ahead of its tag, which valgrind reports as a jump on uninitialised memory
/// (`tests/c/run.sh`).
pub(super) fn earliest(a: Option<u64>, b: Option<u64>) -> Option<u64> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x.min(y)),
        (x, None) => x,
        (None, y) => y,
    }
}

#[cfg(test)]
mod tests {
    use super::earliest;

    #[test]
    fn earliest_ignores_unarmed_timers() {
        assert_eq!(earliest(None, None), None);
        assert_eq!(earliest(Some(5), None), Some(5));
        assert_eq!(earliest(None, Some(7)), Some(7));
        assert_eq!(earliest(Some(9), Some(3)), Some(3));
        assert_eq!(earliest(Some(u64::MAX), None), Some(u64::MAX));
    }
}
