//! Duplicates older than the local log: what the arrival-ordered log (the duplicate window of
//! `max_local_history` arrivals) has forgotten, each sender's lamport order still tells.
//!
//! spec: sds.duplicates.stale — a sender's lamport timestamps strictly increase from one of its
//! content messages to the next (`max(now, previous + 1)`, and a durable channel reserves its
//! clock across restarts), and each of its messages names its previous one (spec:
//! sds.sender-order). So when a message of sender S left our log, every message S sent before it
//! was delivered before it or given up (its dependency timeout ran out, MESSAGE_LOST). A content
//! message of S that is not in the log (nor waiting) and whose lamport is at most the highest
//! lamport of S's messages evicted from the log is therefore a copy of a message delivered
//! earlier, or one given up whose delivery now would break S's order: it is dropped as a
//! duplicate. This holds exactly-once however long after the first copy a retransmission, a
//! rebroadcast, a store answer or a replay arrives: at 35,000 messages/s the 10,000-arrival log
//! covers 0.3 s, less than one acknowledgement timeout (found by `benches/e2e.rs`; regression
//! tests in tests/exactly_once.rs).
//!
//! Bounds and limits: the highest evicted lamport is kept for [`MAX_TRACKED_SENDERS`] senders
//! (beyond, the lowest is forgotten and that sender's old copies are caught by the log alone);
//! it is not stored by durable channels (after a restart the log alone catches them until the
//! log evicts again). Lamports compared are as received. Nothing on the wire authenticates a
//! sender: a forged message under S's id with a high lamport (at most `now + max_clock_skew_ms`,
//! see sds.lamport.skew), once `max_local_history` messages arrived after it, makes S's messages
//! that were not yet received with a lower lamport count as stale here, as long as S's clock is
//! below that lamport. A sender that does not name its previous message (the reference
//! implementation may not) could have a message overtaken by `max_local_history` arrivals and a
//! later message of its own: it is dropped here, as it would break that sender's order.

use super::{SdsEngine, MAX_TRACKED_SENDERS};
use crate::sds::history::{HistoryStore, LogEntry};
use crate::sds::ReceiveOutcome;
use crate::wire::SdsMessage;

impl<H: HistoryStore> SdsEngine<H> {
    /// Appends `entry` to the local log; an entry the log evicts raises its sender's stale mark.
    pub(super) fn log_insert(&mut self, entry: LogEntry) {
        let Some(old) = self.history.insert(entry) else { return };
        let Some(sender) = old.sender_id else { return };
        let lamport = old.lamport_timestamp;
        if let Some(mark) = self.evicted_marks.get_mut(&sender) {
            *mark = (*mark).max(lamport);
            return;
        }
        if self.evicted_marks.len() >= MAX_TRACKED_SENDERS {
            // Rare (more senders than tracked): forget the lowest mark.
            let lowest = self.evicted_marks.iter().min_by(|a, b| (a.1, a.0).cmp(&(b.1, b.0))).map(|(k, _)| k.clone());
            if let Some(k) = lowest {
                self.evicted_marks.remove(&k);
            }
        }
        self.evicted_marks.insert(sender, lamport);
    }

    /// True when a content message of `msg.sender_id` not in the log is older than what the log
    /// evicted of that sender (see the module docs).
    pub(super) fn is_stale(&self, msg: &SdsMessage) -> bool {
        if self.evicted_marks.is_empty() {
            return false;
        }
        self.evicted_marks.get(msg.sender_id.as_str()).is_some_and(|&mark| msg.lamport_timestamp.unwrap_or(0) <= mark)
    }

    /// Drops a stale copy: counted as a duplicate and acknowledged as a delivery would be (named
    /// by our next sync: its sender evidently still lacks our acknowledgement, and the copy is
    /// long out of the window our syncs name), and whatever waits for it is released (it was
    /// delivered or given up long ago), without it entering the log again.
    pub(super) fn drop_stale(&mut self, now: u64, msg: &SdsMessage) -> ReceiveOutcome {
        self.stats.stale_duplicates += 1;
        let id = msg.message_id.as_str();
        let renewed = self.duplicate_seen(now, id);
        self.note_to_ack(&id.into(), msg, &None);
        log::debug!(
            "channel {}: stale copy {id} from {:?} dropped: older than what the log evicted of its sender (renewed in our filter: {renewed})",
            self.channel_id,
            msg.sender_id
        );
        if self.incoming.is_missing(id) || !self.incoming.waiters_of(id).is_empty() {
            self.incoming.arrived(id);
            self.release(now, id);
        }
        self.ack_if_full(now);
        ReceiveOutcome::Duplicate
    }

    /// A copy of a message we hold or held: counted; its sender evidently lacks our
    /// acknowledgement, so it stays in our filter's window (spec: sds.bloom.window) and an
    /// acknowledgement round is owed. True when the filter took it again.
    pub(super) fn duplicate_seen(&mut self, now: u64, id: &str) -> bool {
        self.stats.duplicates += 1;
        self.bloom_news = self.config.possible_acks_threshold;
        self.sync.owe_ack_soon(now, self.config.acknowledgement_timeout_ms, &mut self.rng);
        self.bloom.renew(id)
    }
}
