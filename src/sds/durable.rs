//! [`JournaledHistory`]: the local log of a channel, recording what changed for a durable
//! backend to store incrementally (issue #11). Plain data, no I/O: the channel hands the changes
//! to its driver, which writes them (one row per entry, in insertion order).

use bytes::Bytes;

use super::{HistoryStore, LogEntry, MemoryHistory, MessageId};

/// One change of the local log, in the order it happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogChange {
    /// A new entry (own message wrapped, or a received one delivered), last in insertion order.
    Insert(LogEntry),
    /// An entry left the log (evicted to stay within capacity, or an own message that never left).
    Remove(MessageId),
    /// An entry's retrieval hint became known.
    Hint(MessageId, Bytes),
}

/// The in-memory log, plus a journal of its changes while recording (durable channels only).
#[derive(Debug)]
pub struct JournaledHistory {
    inner: MemoryHistory,
    journal: Option<Vec<LogChange>>,
}

impl JournaledHistory {
    /// An empty log of `capacity` entries, not recording.
    pub fn new(capacity: usize) -> Self {
        JournaledHistory { inner: MemoryHistory::new(capacity), journal: None }
    }

    /// Starts recording changes (a durable channel, after its restore).
    pub fn start_journal(&mut self) {
        self.journal.get_or_insert_with(Vec::new);
    }

    /// True while recording.
    pub fn is_journaled(&self) -> bool {
        self.journal.is_some()
    }

    /// The changes since the previous call, oldest first.
    pub fn take_journal(&mut self) -> Vec<LogChange> {
        self.journal.as_mut().map(std::mem::take).unwrap_or_default()
    }
}

impl HistoryStore for JournaledHistory {
    fn contains(&self, id: &str) -> bool {
        self.inner.contains(id)
    }

    fn insert(&mut self, entry: LogEntry) -> Option<LogEntry> {
        let Some(j) = self.journal.as_mut() else { return self.inner.insert(entry) };
        if self.inner.contains(&entry.message_id) {
            return None;
        }
        j.push(LogChange::Insert(entry.clone()));
        let evicted = self.inner.insert(entry);
        if let Some(e) = &evicted {
            j.push(LogChange::Remove(e.message_id.clone()));
        }
        evicted
    }

    fn remove(&mut self, id: &str, lamport_timestamp: u64) -> bool {
        let removed = self.inner.remove(id, lamport_timestamp);
        if let Some(j) = self.journal.as_mut().filter(|_| removed) {
            j.push(LogChange::Remove(id.into()));
        }
        removed
    }

    fn set_retrieval_hint(&mut self, id: &str, lamport_timestamp: u64, hint: Bytes) {
        if let Some(j) = self.journal.as_mut() {
            j.push(LogChange::Hint(id.into(), hint.clone()));
        }
        self.inner.set_retrieval_hint(id, lamport_timestamp, hint);
    }

    fn for_each_last<'s>(&'s self, n: usize, f: &mut dyn FnMut(&'s LogEntry)) {
        self.inner.for_each_last(n, f);
    }

    fn len(&self) -> usize {
        self.inner.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(id: &str, ts: u64) -> LogEntry {
        LogEntry { message_id: id.into(), lamport_timestamp: ts, sender_id: None, retrieval_hint: None }
    }

    #[test]
    fn records_inserts_evictions_removals_and_hints_only_while_journaled() {
        let mut h = JournaledHistory::new(2);
        h.insert(e("a", 1));
        assert!(h.take_journal().is_empty());
        h.start_journal();
        h.insert(e("b", 2));
        h.insert(e("b", 2));
        h.insert(e("c", 3));
        h.set_retrieval_hint("c", 3, Bytes::from_static(b"h"));
        assert!(h.remove("c", 3));
        assert!(!h.remove("c", 3));
        let j = h.take_journal();
        assert_eq!(
            j,
            [
                LogChange::Insert(e("b", 2)),
                LogChange::Insert(e("c", 3)),
                LogChange::Remove("a".into()),
                LogChange::Hint("c".into(), Bytes::from_static(b"h")),
                LogChange::Remove("c".into()),
            ]
        );
        assert!(h.take_journal().is_empty());
    }
}
