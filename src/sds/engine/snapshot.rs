//! Restoring an engine from a durable channel's stored state (issue #11): the log, the clocks and
//! the outgoing buffer are put back; what derives from them (bloom filter, heads, our latest
//! message) is rebuilt here, never stored. Sync timers, the repair responder, pending explicit
//! acknowledgements and the memory of ephemeral ids start afresh: all are best effort.

use bytes::Bytes;

use super::SdsEngine;
use crate::sds::{HistoryStore, LogEntry, MessageId};

impl<H: HistoryStore> SdsEngine<H> {
    /// The local log, to drain what a durable backend recorded.
    pub fn history_mut(&mut self) -> &mut H {
        &mut self.history
    }

    /// Restore: puts stored log entries back, in the order they were inserted, and rebuilds the
    /// bloom filter, the heads and our latest message from them. Call on a fresh engine, first.
    pub fn restore_log(&mut self, entries: impl IntoIterator<Item = LogEntry>) {
        for e in entries {
            self.bloom.insert(&e.message_id);
            if let Some(sender) = e.sender_id.clone() {
                let own = *sender == *self.sender_id;
                let sender = if own { self.sender_arc.clone() } else { self.sender_key(&sender) };
                if own && self.last_own.as_ref().is_none_or(|o| o.lamport_timestamp <= e.lamport_timestamp) {
                    self.last_own = Some(LogEntry { sender_id: Some(sender.clone()), ..e.clone() });
                }
                self.note_head(sender, e.clone());
            }
            self.lamport = self.lamport.max(e.lamport_timestamp);
            self.log_insert(e);
        }
    }

    /// Restore: the lamport clock and the wrap clock continue at or above the stored bounds, so
    /// that no timestamp or message id handed out before a restart is handed out again.
    pub fn restore_clocks(&mut self, lamport_bound: u64, wrap_bound_ns: u64) {
        self.lamport = self.lamport.max(lamport_bound);
        self.wrap_clock.raise_to(wrap_bound_ns);
    }

    /// Restore: an own message still awaiting acknowledgement, with the bytes it was first sent
    /// with and its counts of retransmissions and bloom filter hits. Its re-send is scheduled by
    /// [`Self::schedule_restored`].
    pub fn restore_outgoing(&mut self, id: MessageId, lamport: u64, bytes: Bytes, retransmissions: u32, possible_acks: u32) {
        self.outgoing.restore(id, lamport, bytes, retransmissions, possible_acks);
    }

    /// Restore, after every [`Self::restore_outgoing`]: the restored messages are re-sent
    /// spread over one acknowledgement timeout from `now` (not all at once: an RLN budget would
    /// go on them); the re-send does not count as a retransmission, the ones after it do.
    pub fn schedule_restored(&mut self, now: u64) {
        let now = self.tick(now);
        self.outgoing.schedule_restored(now, self.config.acknowledgement_timeout_ms);
    }
}
