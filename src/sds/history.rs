//! The local log behind a storage seam.
//!
//! spec: sds.local-log — delivered content messages (own and received) ordered by
//! (lamport, message id); bounded, oldest evicted. Appends are O(1) amortised: entries almost
//! always arrive at the end, and an out-of-order insert shifts only the entries after it.

use std::collections::VecDeque;

use super::FastSet as HashSet;

use bytes::Bytes;

use super::MessageId;
use crate::wire::HistoryEntry;

/// One entry of the local log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogEntry {
    pub message_id: MessageId,
    pub lamport_timestamp: u64,
    pub sender_id: Option<MessageId>,
    pub retrieval_hint: Option<Bytes>,
}

impl LogEntry {
    fn key(&self) -> (u64, &str) {
        (self.lamport_timestamp, &self.message_id)
    }

    /// The causal-history form of this entry.
    pub fn to_history_entry(&self) -> HistoryEntry {
        HistoryEntry {
            message_id: self.message_id.to_string(),
            retrieval_hint: self.retrieval_hint.clone(),
            sender_id: self.sender_id.as_deref().map(str::to_owned),
        }
    }
}

/// Where the local log lives. The engine only uses these operations, so a durable backend can
/// implement them without the engine changing.
pub trait HistoryStore {
    /// True when the id is in the log.
    fn contains(&self, id: &str) -> bool;
    /// Inserts an entry that is not yet present; returns the entry evicted to stay within capacity.
    fn insert(&mut self, entry: LogEntry) -> Option<LogEntry>;
    /// Removes an entry (an own message that never left this node); true when it was present.
    fn remove(&mut self, id: &str, lamport_timestamp: u64) -> bool;
    /// Records the retrieval hint of an entry (known once the message was dispatched).
    fn set_retrieval_hint(&mut self, id: &str, lamport_timestamp: u64, hint: Bytes);
    /// Calls `f` on the last `n` entries in log order (oldest first).
    fn for_each_last<'s>(&'s self, n: usize, f: &mut dyn FnMut(&'s LogEntry));
    /// Number of entries.
    fn len(&self) -> usize;
    /// True when empty.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The default `memory` backend: does not survive a restart.
#[derive(Debug)]
pub struct MemoryHistory {
    entries: VecDeque<LogEntry>,
    ids: HashSet<MessageId>,
    capacity: usize,
}

impl MemoryHistory {
    /// An empty log holding at most `capacity` entries (at least 1).
    pub fn new(capacity: usize) -> Self {
        MemoryHistory { entries: VecDeque::new(), ids: HashSet::default(), capacity: capacity.max(1) }
    }

    fn position(&self, lamport: u64, id: &str) -> Result<usize, usize> {
        self.entries.binary_search_by(|e| e.key().cmp(&(lamport, id)))
    }
}

impl HistoryStore for MemoryHistory {
    fn contains(&self, id: &str) -> bool {
        self.ids.contains(id)
    }

    fn insert(&mut self, entry: LogEntry) -> Option<LogEntry> {
        if !self.ids.insert(entry.message_id.clone()) {
            return None;
        }
        // Fast path: the new entry sorts last (own sends, in-order receives).
        let at_end = self.entries.back().is_none_or(|last| last.key() < entry.key());
        if at_end {
            self.entries.push_back(entry);
        } else {
            let i = match self.position(entry.lamport_timestamp, &entry.message_id) {
                Ok(i) | Err(i) => i,
            };
            self.entries.insert(i, entry);
        }
        if self.entries.len() > self.capacity {
            let old = self.entries.pop_front()?;
            self.ids.remove(&old.message_id);
            return Some(old);
        }
        None
    }

    fn remove(&mut self, id: &str, lamport: u64) -> bool {
        match self.position(lamport, id) {
            Ok(i) => {
                self.entries.remove(i);
                self.ids.remove(id);
                true
            }
            Err(_) => false,
        }
    }

    fn set_retrieval_hint(&mut self, id: &str, lamport: u64, hint: Bytes) {
        if let Ok(i) = self.position(lamport, id) {
            self.entries[i].retrieval_hint = Some(hint);
        }
    }

    fn for_each_last<'s>(&'s self, n: usize, f: &mut dyn FnMut(&'s LogEntry)) {
        let start = self.entries.len().saturating_sub(n);
        for e in self.entries.range(start..) {
            f(e);
        }
    }

    fn len(&self) -> usize {
        self.entries.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(id: &str, ts: u64) -> LogEntry {
        LogEntry { message_id: id.into(), lamport_timestamp: ts, sender_id: None, retrieval_hint: None }
    }

    fn ids(h: &MemoryHistory, n: usize) -> Vec<String> {
        let mut v = Vec::new();
        h.for_each_last(n, &mut |e| v.push(e.message_id.to_string()));
        v
    }

    #[test]
    fn ordered_by_lamport_then_id_and_bounded() {
        let mut h = MemoryHistory::new(3);
        assert!(h.insert(e("b", 2)).is_none());
        assert!(h.insert(e("a", 2)).is_none());
        assert!(h.insert(e("z", 1)).is_none());
        assert_eq!(ids(&h, 10), ["z", "a", "b"]);
        let evicted = h.insert(e("c", 5)).unwrap();
        assert_eq!(&*evicted.message_id, "z");
        assert!(!h.contains("z"));
        assert_eq!(ids(&h, 2), ["b", "c"]);
        assert!(h.insert(e("c", 5)).is_none(), "duplicate ignored");
        assert_eq!(h.len(), 3);
    }

    #[test]
    fn remove_takes_the_entry_out() {
        let mut h = MemoryHistory::new(10);
        h.insert(e("a", 1));
        h.insert(e("b", 2));
        assert!(h.remove("a", 1));
        assert!(!h.remove("a", 1));
        assert!(!h.contains("a"));
        assert_eq!(ids(&h, 10), ["b"]);
    }

    #[test]
    fn retrieval_hint_set_in_place() {
        let mut h = MemoryHistory::new(10);
        h.insert(e("a", 1));
        h.insert(e("b", 2));
        h.set_retrieval_hint("a", 1, Bytes::from_static(b"h"));
        let mut got = None;
        h.for_each_last(2, &mut |x| {
            if &*x.message_id == "a" {
                got = x.retrieval_hint.clone();
            }
        });
        assert_eq!(got.as_deref(), Some(&b"h"[..]));
    }
}
