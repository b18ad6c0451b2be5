//! When to send sync messages.
//!
//! spec: sds.sync —
//! * ack sync: after content is delivered, unless we send something ourselves first, a sync goes
//!   out after a random 0.5–0.75 × `acknowledgement_timeout_ms`, so that the sender sees its ack
//!   before it retransmits. A burst larger than the causal-history window needs
//!   `possible_acks_threshold` messages from us (bloom hits), so that many rounds are scheduled.
//!   A duplicate (a peer retransmitting: our ack did not reach it) schedules one more round.
//!   spec: sds.sync.acks — the sync names every message received since our previous one, up to
//!   `MAX_SYNC_ACKS`; owing that many sends it at once (`engine/acks.rs`), so a sustained stream
//!   is acknowledged explicitly, in one round, whatever its rate.
//!   spec: sds.sync.suppress — the delay is drawn late in the window (0.5–0.75 ×) so that our own
//!   content, due soon, carries the acknowledgement instead; and as in SRM, a message from
//!   another participant whose causal history already names everything we owe an ack for (its
//!   senders will see it) cancels our acknowledgement sync.
//! * idle sync: at most one per randomised `sync_interval_ms` (×0.75–1.25), for `idle_sync_rounds`
//!   intervals after the log last changed, so that peers who missed the latest messages learn of
//!   them even over lossy links; then the channel goes quiet and arms no timer. An idle sync is
//!   due only when nothing of ours (content or sync, which carry causal history) went out for
//!   half an interval: while we publish anyway the timer is pushed back, no round spent.
//! * repair sync: while a dependency we know is missing has no retrieval hint (it cannot be
//!   fetched from the store), a sync goes out after 0.25–0.5 × `acknowledgement_timeout_ms`: it
//!   lists those dependencies in `repair_request`, and a peer holding one answers with its hint
//!   (see `repair.rs`). spec: sds.repair.backoff — later repair syncs go out only when an id is
//!   due again (`requests.rs`), at most one per `acknowledgement_timeout_ms` (×1–1.25), and
//!   while they ask only for suspect ids (nothing waits for them, or a message missing many
//!   dependencies does) one per `acknowledgement_timeout_ms` × 1, 2, 4, 8 counting consecutive
//!   repair syncs: a hostile message naming a thousand unknown ids costs a handful of syncs, not
//!   one per acknowledgement timeout until the dependency timeout. The streak starts again once
//!   nothing is missing, or an urgent id is asked for.

use rand::Rng;

use super::requests::backoff;

/// What [`SyncScheduler::take_due`] found due.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Due {
    No,
    /// An acknowledgement or idle sync.
    Sync,
    /// Only the repair timer: worth a sync only if some repair request is due.
    Repair,
}

#[derive(Debug, Default)]
pub(super) struct SyncScheduler {
    ack_at: Option<u64>,
    idle_at: Option<u64>,
    rounds: u32,
    delivered_since_send: usize,
    idle_rounds_left: u32,
    repair_at: Option<u64>,
    /// Consecutive syncs that carried repair requests, and when the last one went out.
    repair_streak: u32,
    last_repair_at: Option<u64>,
    /// When we last published content or a sync.
    last_sent_at: Option<u64>,
    /// spec: sds.sync.store — multiplies the acknowledgement delay (0 or 1: [`ACK_DELAY`] as is);
    /// see [`Self::set_ack_delay_scale`].
    ack_delay_scale: u32,
}

/// When an acknowledgement sync goes out after a delivery, as fractions of the ack timeout: late
/// enough for our own content or another participant's acknowledgement to make it unnecessary,
/// early enough to reach the sender before it retransmits.
const ACK_DELAY: (f64, f64) = (0.5, 0.75);

fn jitter(rng: &mut impl Rng, base: u64, lo: f64, hi: f64) -> u64 {
    (base as f64 * rng.gen_range(lo..hi)) as u64
}

impl SyncScheduler {
    fn arm_ack(&mut self, now: u64, ack_timeout: u64, rng: &mut impl Rng) {
        if self.ack_at.is_none() {
            let base = ack_timeout.saturating_mul(u64::from(self.ack_delay_scale.max(1)));
            self.ack_at = Some(now.saturating_add(jitter(rng, base, ACK_DELAY.0, ACK_DELAY.1)));
        }
    }

    /// spec: sds.sync.store — acknowledgement syncs go out `scale` × later (the channel sets it
    /// where a store serves its messages and the rate limit makes every publication count: our
    /// own content, due meanwhile, carries the acknowledgement; senders wait correspondingly
    /// longer before retransmitting, see `SdsEngine::set_store_timing`). 0 or 1: the plain delay.
    pub fn set_ack_delay_scale(&mut self, scale: u32) {
        self.ack_delay_scale = scale;
    }

    /// spec: sds.sync.suppress — another participant acknowledged everything we owe an ack for:
    /// no acknowledgement sync, unless we received more than `window` (a sync names only that many).
    pub fn acks_covered(&mut self, window: usize) {
        if self.delivered_since_send <= window {
            self.rounds = 0;
            self.ack_at = None;
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

    /// spec: sds.sync.store — a peer re-sent something we have: it is retransmitting, our
    /// acknowledgement did not reach it. With a scaled delay ([`Self::set_ack_delay_scale`]) the
    /// acknowledgement is pulled in to the plain delay, before the peer's next retransmission
    /// (one ack timeout after this one); without, as [`Self::owe_ack_round`].
    pub fn owe_ack_soon(&mut self, now: u64, ack_timeout: u64, rng: &mut impl Rng) {
        if self.ack_delay_scale <= 1 {
            return self.owe_ack_round(now, ack_timeout, rng);
        }
        self.rounds = self.rounds.max(1);
        let soon = now.saturating_add(jitter(rng, ack_timeout, ACK_DELAY.0, ACK_DELAY.1));
        self.ack_at = Some(self.ack_at.map_or(soon, |t| t.min(soon)));
    }

    /// A dependency without retrieval hint became missing: announce our state soon (no earlier
    /// than the repair backoff allows). `urgent`: a received content message that misses only a
    /// few dependencies waits for it, which ends the backoff of repair syncs.
    pub fn on_missing(&mut self, now: u64, ack_timeout: u64, urgent: bool, rng: &mut impl Rng) {
        if urgent {
            self.repair_streak = 0;
        }
        if self.repair_at.is_none() || urgent {
            let soon = now.saturating_add(jitter(rng, ack_timeout, 0.25, 0.5));
            let at = soon.max(self.repair_not_before(ack_timeout, rng));
            self.repair_at = Some(self.repair_at.map_or(at, |t| t.min(at)));
        }
    }

    /// The earliest time the next repair sync may go out: at least one acknowledgement timeout
    /// after the last one, one backoff step after it while only suspect ids are asked for.
    fn repair_not_before(&self, ack_timeout: u64, rng: &mut impl Rng) -> u64 {
        match self.last_repair_at {
            Some(t) => t.saturating_add(jitter(rng, backoff(ack_timeout, self.repair_streak.max(1)), 1.0, 1.25)),
            None => 0,
        }
    }

    /// Still missing dependencies without hint, the next of which may be asked for at `due`:
    /// arm the repair timer for then, within the repair backoff. `None`: nothing is missing
    /// without hint any more, and the streak ends.
    pub fn rearm_repair(&mut self, due: Option<u64>, ack_timeout: u64, rng: &mut impl Rng) {
        let Some(due) = due else {
            self.repair_streak = 0;
            self.repair_at = None;
            return;
        };
        if self.repair_at.is_none() {
            self.repair_at = Some(due.max(self.repair_not_before(ack_timeout, rng)));
        }
    }

    /// A sync carrying repair requests went out; `urgent`: some asked for ids are urgent (see
    /// `requests.rs`), which keeps the next repair sync one acknowledgement timeout away.
    pub fn on_repair_sent(&mut self, now: u64, urgent: bool) {
        self.repair_streak = if urgent { 0 } else { self.repair_streak.saturating_add(1) };
        self.last_repair_at = Some(now);
        self.repair_at = None;
    }

    /// We sent a content message.
    pub fn on_content_sent(&mut self, now: u64, ack_timeout: u64, idle: (u64, u32), rng: &mut impl Rng) {
        self.after_send(now, ack_timeout, rng);
        self.arm_idle(now, idle.0, idle.1, rng);
    }

    /// Anything of ours carrying history and bloom went out: one acknowledgement round done.
    fn after_send(&mut self, now: u64, ack_timeout: u64, rng: &mut impl Rng) {
        self.last_sent_at = Some(now);
        self.rounds = self.rounds.saturating_sub(1);
        self.delivered_since_send = 0;
        self.ack_at = None;
        if self.rounds > 0 {
            self.arm_ack(now, ack_timeout, rng);
        }
    }

    /// Is a sync due at `now`? Consumes the timers that fired; the caller sends a sync when
    /// [`Due::Sync`] (or [`Due::Repair`] with repair requests due) and then calls
    /// [`Self::on_sync_sent`].
    pub fn take_due(&mut self, now: u64, interval: u64, rng: &mut impl Rng) -> Due {
        let mut due = false;
        if self.ack_at.is_some_and(|t| t <= now) {
            self.ack_at = None;
            due = true;
        }
        let repair = self.repair_at.is_some_and(|t| t <= now);
        if repair {
            self.repair_at = None;
        }
        if self.idle_at.is_some_and(|t| t <= now) {
            self.idle_at = None;
            let recent = self.last_sent_at.filter(|t| t.saturating_add(interval / 2) > now);
            if let (Some(t), true) = (recent, self.idle_rounds_left > 0) {
                // We published lately: peers heard our state; look again an interval after that.
                self.idle_at = Some(t.saturating_add(jitter(rng, interval, 0.75, 1.25)).max(now.saturating_add(1)));
            } else if self.idle_rounds_left > 0 {
                self.idle_rounds_left -= 1;
                due = true;
                if self.idle_rounds_left > 0 {
                    self.idle_at = Some(now.saturating_add(jitter(rng, interval, 0.75, 1.25)));
                }
            }
        }
        match (due, repair) {
            (true, _) => Due::Sync,
            (false, true) => Due::Repair,
            (false, false) => Due::No,
        }
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
