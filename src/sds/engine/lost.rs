//! Giving up on missing dependencies: reporting a loss once per waiting message, and delivering
//! what waited for it in causal order.

use super::SdsEngine;
use crate::sds::history::HistoryStore;
use crate::sds::{MessageId, MissingDependency, SdsEvent};

impl<H: HistoryStore> SdsEngine<H> {
    /// spec: sds.lost — a dependency declared lost is reported ([`SdsEvent::DependencyLost`],
    /// MESSAGE_LOST to the application) only when a message waits for it, and once per waiting
    /// message: a made-up id nothing waits for (named by a sync) costs no event, and one message
    /// naming a thousand made-up ids costs one. Every loss is counted.
    pub(super) fn report_lost(&mut self, dep: MissingDependency) {
        self.stats.dependencies_lost += 1;
        let waiters = self.incoming.waiters_of(&dep.message_id);
        if waiters.iter().all(|w| self.loss_reported.contains(w)) {
            self.stats.losses_unreported += 1;
            log::debug!("channel {}: dependency {} lost, {} waiting (already reported)", self.channel_id, dep.message_id, waiters.len());
            return;
        }
        for w in waiters {
            self.loss_reported.insert(w.clone());
        }
        log::warn!("channel {}: dependency {} declared lost", self.channel_id, dep.message_id);
        self.events.push_back(SdsEvent::DependencyLost(dep));
    }

    /// spec: sds.incoming-buffer — `id` has waited `dependency_timeout_ms`: what still blocks it
    /// is given up now, in causal order. The missing dependencies behind it (directly or through
    /// other waiting messages) are declared lost, which delivers the waiting chain oldest first;
    /// whatever still waits after that (a dependency cycle, or a dependency beyond `max_missing`
    /// never tracked as missing) is delivered in lamport order, `id` last.
    ///
    /// Delivering `id` alone, as before, could overtake the waiting messages it depends on: e.g.
    /// chunks 1..n of a send arrive and wait for chunk 0, chunk 0 arrives later and waits for a
    /// dependency noticed only then; chunk 5's patience ran out first, it was delivered before
    /// chunk 0 and the whole message was lost, its sender's order broken. (Found by
    /// tests/simulation.rs.)
    pub(super) fn force(&mut self, now: u64, id: &MessageId) {
        if !self.incoming.is_waiting(id) {
            return;
        }
        let (chain, missing) = self.incoming.blockers(id, &|x| self.history.contains(x));
        for m in missing {
            if let Some(dep) = self.incoming.declare_lost(&m) {
                self.report_lost(dep);
                self.release(now, &m);
            }
        }
        let mut rest: Vec<(u64, MessageId)> =
            chain.into_iter().filter(|c| self.incoming.is_waiting(c)).map(|c| (self.incoming.lamport_of(&c), c)).collect();
        // `id` last: it is what timed out; its ancestors go first even with forged lamports.
        rest.sort_by(|a, b| (&a.1 == id, a.0, &a.1).cmp(&(&b.1 == id, b.0, &b.1)));
        for (_, c) in rest {
            if let Some(w) = self.incoming.take(&c) {
                self.stats.forced_deliveries += 1;
                self.incoming.forget_waiters_of(&w.msg.causal_history, &c);
                self.deliver_cascade(now, c, w.msg, w.hint);
            }
        }
    }

    /// A dependency was declared lost: deliver what only waited for it.
    pub(super) fn release(&mut self, now: u64, lost_id: &str) {
        let mut ready = Vec::new();
        self.incoming.resolve(lost_id, &mut ready);
        for r in ready {
            if let Some(w) = self.incoming.take(&r) {
                self.deliver_cascade(now, r, w.msg, w.hint);
            }
        }
    }
}
