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
    /// with. It waits for its (re)dispatch like a retransmission.
    pub fn restore_outgoing(&mut self, id: MessageId, lamport: u64, bytes: Bytes) {
        if self.outgoing.contains(&id) {
            return;
        }
        self.outgoing.push(id, lamport, bytes);
    }
}
