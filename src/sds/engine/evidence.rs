//! spec: sds.retransmission.evidence — with the store-aware timing (`SdsEngine::set_store_timing`)
//! a receiver that lost our message fetches it by the hint in our *next* message, a pace away (12 s
//! at an RLN budget's pace), and our first retransmission waits several ack timeouts. A peer's
//! message that shows it lacks our newest message is evidence of the loss: that message is
//! re-sent at once (its causal history names our earlier ones with their hints, so one re-send
//! repairs a run of losses), unless something else brings the peer the hint soon enough for
//! free. Evidence, for a peer message composed at least [`EVIDENCE_MARGIN_DIVISOR`]⁻¹ ack timeout
//! after we last sent ours (its lamport timestamp: when it was composed):
//!
//! * its bloom filter (everything the peer received, buffered messages too) lacks ours; or
//! * without a filter, its causal history (the peer's last `causal_history_size` arrivals) does
//!   not name ours although fewer than that many of the entries it names can have arrived after
//!   ours: our own other messages and the peer's latest message we hold, if sent before ours,
//!   arrived before it.
//!
//! Not re-sent: when our next message is due within [`NEXT_DUE_DIVISOR`]⁻¹ ack timeout (our
//! gap between content messages, smoothed; a chat's pace: it carries the hint); when another
//! participant was heard from within a sync interval (it names our message with its hint in its
//! next messages too); when the caller's budget has a queue (`allow_evidence_resend`); when any
//! filter already counted it (a possible acknowledgement). After the re-send the long first timer
//! runs again.

use super::SdsEngine;
use crate::sds::history::HistoryStore;
use crate::sds::outgoing::Expired;
use crate::sds::SdsEvent;
use crate::wire::{BloomView, SdsMessage};

/// A peer's message is evidence only when composed at least the ack timeout divided by this after
/// we last sent our message: time for ours to have reached it.
pub const EVIDENCE_MARGIN_DIVISOR: u64 = 4;
/// No re-send on evidence when our next content message is due within the ack timeout divided by
/// this: it carries the hint, for free.
pub const NEXT_DUE_DIVISOR: u64 = 2;
/// The smoothing of our gap between content messages: each new gap weighs 1/this.
const GAP_SMOOTHING: u64 = 4;

impl<H: HistoryStore> SdsEngine<H> {
    /// Notes that we wrapped a content message at `now`: when our next one is due.
    pub(super) fn note_wrap(&mut self, now: u64) {
        if let Some(last) = self.last_wrap_at {
            let gap = now.saturating_sub(last);
            self.wrap_gap_ms = Some(self.wrap_gap_ms.map_or(gap, |g| g - g / GAP_SMOOTHING + gap / GAP_SMOOTHING));
        }
        self.last_wrap_at = Some(now);
    }

    /// Re-sends our newest message if `msg` (a peer's, with its bloom filter `view` if any) shows
    /// the peer lacks it (see the module docs).
    pub(super) fn resend_if_lacking(&mut self, msg: &SdsMessage, view: Option<BloomView<'_>>) {
        if self.hinted_first_timeouts <= 1 || !self.evidence_resend {
            return;
        }
        let Some(composed_at) = msg.lamport_timestamp else { return };
        let timeout = self.config.acknowledgement_timeout_ms;
        let Some((id, sent_at, positions)) = self.outgoing.newest_unconfirmed(self.config.max_retransmissions) else { return };
        if sent_at.saturating_add(timeout / EVIDENCE_MARGIN_DIVISOR) > composed_at {
            return;
        }
        if let (Some(last), Some(gap)) = (self.last_wrap_at, self.wrap_gap_ms) {
            if last.saturating_add(gap) < self.now.saturating_add(timeout / NEXT_DUE_DIVISOR) {
                return;
            }
        }
        let lacks = match view {
            Some(v) => !v.contains_positions(positions),
            None => {
                let head = self.heads.get(msg.sender_id.as_str()).filter(|h| h.lamport_timestamp < sent_at);
                let mut later = 0;
                let mut named = false;
                for h in &msg.causal_history {
                    named |= h.message_id == **id;
                    // Arrived at the peer before ours: our own other messages (older than our
                    // newest) and the peer's latest we hold, when sent before ours.
                    let ours = h.sender_id.as_deref() == Some(self.sender_id.as_str());
                    if !(ours || head.is_some_and(|e| *e.message_id == *h.message_id)) {
                        later += 1;
                    }
                }
                !named && later < self.config.causal_history_size
            }
        };
        if !lacks {
            return;
        }
        let recent = self.now.saturating_sub(self.config.sync_interval_ms);
        let (us, peer) = (self.sender_id.as_str(), msg.sender_id.as_str());
        if self.heads.iter().any(|(k, h)| **k != *us && **k != *peer && h.lamport_timestamp >= recent) {
            return;
        }
        let id = id.clone();
        if let Some(Expired::Retransmit { id, bytes, attempt }) = self.outgoing.resend_now(&id) {
            self.stats.retransmissions += 1;
            self.stats.evidence_resends += 1;
            log::debug!("channel {}: {} lacks {id}: retransmission {attempt}", self.channel_id, msg.sender_id);
            self.events.push_back(SdsEvent::Retransmit { message_id: id, bytes, attempt });
        }
    }
}
