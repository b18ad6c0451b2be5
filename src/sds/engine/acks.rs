//! Acknowledgements: what a received message acknowledges of ours (causal history, bloom
//! filter), what we owe an acknowledgement for, and when another participant's message already
//! gave it (sync suppression).

use bytes::Bytes;

use super::{SdsEngine, MAX_SYNC_ACKS};
use crate::sds::history::{HistoryStore, LogEntry};
use crate::sds::requests::MAX_URGENT_UNRESOLVED;
use crate::sds::{MessageId, MissingDependency, SdsEvent};
use crate::wire::{BloomView, SdsMessage};

impl<H: HistoryStore> SdsEngine<H> {
    /// spec: sds.sync.suppress — what `msg` (from another participant) names in its causal
    /// history its senders will take as acknowledged: we need not acknowledge it again. When that
    /// covers everything we owe an ack for, our acknowledgement sync is cancelled.
    pub(super) fn suppress_acks(&mut self, msg: &SdsMessage) {
        if self.to_ack.is_empty() || msg.causal_history.is_empty() {
            return;
        }
        let by = msg.sender_id.as_str();
        let mut removed = false;
        for h in &msg.causal_history {
            // A sender naming its own message does not acknowledge it to itself.
            if self.to_ack.get(h.message_id.as_str()).is_some_and(|e| e.sender_id.as_deref() != Some(by)) {
                self.to_ack.remove(h.message_id.as_str());
                removed = true;
            }
        }
        if removed && self.to_ack.is_empty() {
            self.stats.acks_suppressed += 1;
            log::debug!("channel {}: acknowledgement sync suppressed: {by} acknowledged the same messages", self.channel_id);
            self.sync.acks_covered(self.config.causal_history_size.max(MAX_SYNC_ACKS));
        }
    }

    /// spec: sds.sync.acks — a received content message (delivered or waiting for its
    /// dependencies: we hold it either way, as our bloom filter says) is named by our next sync.
    /// Call [`Self::ack_if_full`] once the message is processed.
    pub(super) fn note_to_ack(&mut self, id: &MessageId, msg: &SdsMessage, hint: &Option<Bytes>) {
        if self.to_ack.len() >= MAX_SYNC_ACKS {
            // Not reached: `ack_if_full` sends the sync at the bound. Beyond it, bloom hits ack.
            return;
        }
        let sender_id = Some(self.sender_key(&msg.sender_id));
        let lamport_timestamp = msg.lamport_timestamp.unwrap_or(0);
        self.to_ack.insert(id.clone(), LogEntry { message_id: id.clone(), lamport_timestamp, sender_id, retrieval_hint: hint.clone() });
    }

    /// spec: sds.sync.acks — owing [`MAX_SYNC_ACKS`] acknowledgements sends the sync now: the
    /// acknowledgement timer (0.5–0.75 × the timeout, for suppression at chat pace) would let a
    /// sustained stream outrun what one sync names, and the rest would need two bloom hits, the
    /// second of which comes after the retransmission (issue #10). At a chat pace this is never
    /// reached. The rate limiter's control share still bounds what syncs spend.
    pub(super) fn ack_if_full(&mut self, now: u64) {
        if self.to_ack.len() >= MAX_SYNC_ACKS {
            self.stats.ack_syncs_full += 1;
            self.send_sync(now);
        }
    }

    /// `waited`: named by a received content message (which waits for them), not by a sync.
    pub(super) fn note_missing(&mut self, new_missing: &[MissingDependency], now: u64, waited: bool) {
        if new_missing.is_empty() {
            return;
        }
        let c = &self.config;
        let added = self.incoming.add_missing(new_missing, now, c.dependency_timeout_ms, c.max_missing);
        if added > 0 {
            if new_missing[..added].iter().any(|d| d.retrieval_hint.is_none()) {
                // Urgent: a message waits for it that misses few dependencies (see `requests.rs`).
                let urgent = waited && new_missing.len() <= MAX_URGENT_UNRESOLVED as usize;
                self.sync.on_missing(now, self.config.acknowledgement_timeout_ms, urgent, &mut self.rng);
            }
            log::debug!("channel {}: {added} dependencies missing", self.channel_id);
            self.events.push_back(SdsEvent::Missing(new_missing[..added].to_vec()));
        }
    }

    /// spec: sds.ack — causal history acknowledges; bloom hits acknowledge at the threshold.
    pub(super) fn review_acks(&mut self, msg: &SdsMessage) {
        for e in &msg.causal_history {
            if self.outgoing.remove(&e.message_id) {
                self.stats.acknowledged += 1;
                self.events.push_back(SdsEvent::Acknowledged { message_id: e.message_id.as_str().into() });
            }
        }
        if self.outgoing.len() == 0 {
            return;
        }
        let Some(view) = msg.bloom_filter.as_deref().and_then(BloomView::new) else {
            return self.resend_if_lacking(msg, None);
        };
        let stats = &mut self.stats;
        // spec: sds.bloom.plausible — a saturated or all-ones filter "contains" everything, so it
        // is evidence of nothing: checked (a count of its bits) only once it would acknowledge.
        let (channel_id, sender) = (&self.channel_id, &msg.sender_id);
        let mut plausible = || {
            let ok = view.is_plausible();
            if !ok {
                stats.bloom_rejected += 1;
                log::debug!("channel {channel_id}: bloom filter of {sender:?} rejected: {} bits set, more than an honest filter has", view.ones());
            }
            ok
        };
        let mut possibly = Vec::new();
        let mut acked = Vec::new();
        let threshold = self.config.possible_acks_threshold;
        self.outgoing.review_bloom(view, threshold, &mut plausible, &mut |id| acked.push(id), &mut |id, count| possibly.push((id, count)));
        for message_id in acked {
            self.stats.acknowledged += 1;
            self.events.push_back(SdsEvent::Acknowledged { message_id });
        }
        for (message_id, count) in possibly {
            self.events.push_back(SdsEvent::PossiblyAcknowledged { message_id, count });
        }
        self.resend_if_lacking(msg, Some(view));
    }
}
