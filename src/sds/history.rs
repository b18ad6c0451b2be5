//! The local log behind a storage seam.
//!
//! spec: sds.local-log — delivered content messages (own and received) ordered by
//! (lamport, message id); bounded, oldest evicted. Appends are O(1) amortised: entries almost
//! always arrive at the end, and an out-of-order insert shifts only the entries after it.

use std::collections::VecDeque;
use std::hash::BuildHasher;
use std::sync::Arc;

use bytes::Bytes;
use hashbrown::HashTable;

use super::MessageId;
use crate::wire::{HistoryEntry, HistoryEntryRef};

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

impl<'a> From<&'a LogEntry> for HistoryEntryRef<'a> {
    fn from(e: &'a LogEntry) -> Self {
        HistoryEntryRef { message_id: &e.message_id, retrieval_hint: e.retrieval_hint.as_deref(), sender_id: e.sender_id.as_deref() }
    }
}

/// spec: sds.causal-history — the last `n` log entries, plus our previous message when it is not
/// among them (sender order), oldest first. Borrowed straight from the log: no id or history
/// copies on the send hot path.
pub(super) fn causal_refs<'a, H: HistoryStore>(history: &'a H, last_own: Option<&'a LogEntry>, n: usize) -> Vec<HistoryEntryRef<'a>> {
    let mut v = Vec::with_capacity(n + 1);
    history.for_each_last(n, &mut |e| v.push(HistoryEntryRef::from(e)));
    if let Some(own) = last_own {
        if !v.iter().any(|e| e.message_id == &*own.message_id) && history.contains(&own.message_id) {
            v.insert(0, HistoryEntryRef::from(own));
        }
    }
    v
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
///
/// The id index remembers each id's hash next to the entry: evicting the oldest entry (once per
/// message when the log is full) then finds its slot by hash and pointer, without reading the
/// long-evicted id's bytes again (two cache misses per message saved).
#[derive(Debug)]
pub struct MemoryHistory {
    /// Log order; each entry with the hash of its id.
    entries: VecDeque<(u64, LogEntry)>,
    ids: HashTable<MessageId>,
    hasher: foldhash::fast::RandomState,
    capacity: usize,
}

impl MemoryHistory {
    /// An empty log holding at most `capacity` entries (at least 1).
    pub fn new(capacity: usize) -> Self {
        MemoryHistory { entries: VecDeque::new(), ids: HashTable::new(), hasher: Default::default(), capacity: capacity.max(1) }
    }

    fn position(&self, lamport: u64, id: &str) -> Result<usize, usize> {
        self.entries.binary_search_by(|(_, e)| e.key().cmp(&(lamport, id)))
    }

    fn hash(&self, id: &str) -> u64 {
        self.hasher.hash_one(id)
    }

    /// Drops `id` (known to be in the index under `hash`) from the index, by pointer.
    fn unindex(&mut self, hash: u64, id: &MessageId) {
        if let Ok(slot) = self.ids.find_entry(hash, |k| Arc::ptr_eq(k, id)) {
            slot.remove();
        }
    }
}

impl HistoryStore for MemoryHistory {
    fn contains(&self, id: &str) -> bool {
        !self.ids.is_empty() && self.ids.find(self.hash(id), |k| **k == *id).is_some()
    }

    fn insert(&mut self, entry: LogEntry) -> Option<LogEntry> {
        let hash = self.hash(&entry.message_id);
        let hasher = &self.hasher;
        match self.ids.entry(hash, |k| **k == *entry.message_id, |k| hasher.hash_one(&**k)) {
            hashbrown::hash_table::Entry::Occupied(_) => return None,
            hashbrown::hash_table::Entry::Vacant(slot) => {
                slot.insert(entry.message_id.clone());
            }
        }
        // Grow the ring to at most capacity + 1 slots (not the next power of two): once full, each
        // new entry then lands in the slot the previous eviction just vacated, still in cache,
        // instead of in a line untouched for ~16k messages.
        if self.entries.len() == self.entries.capacity() {
            let target = (self.entries.capacity() * 2).max(16).min(self.capacity + 1);
            self.entries.reserve_exact(target.saturating_sub(self.entries.len()).max(1));
        }
        // Fast path: the new entry sorts last (own sends, in-order receives).
        let at_end = self.entries.back().is_none_or(|(_, last)| last.key() < entry.key());
        if at_end {
            self.entries.push_back((hash, entry));
        } else {
            let i = match self.position(entry.lamport_timestamp, &entry.message_id) {
                Ok(i) | Err(i) => i,
            };
            self.entries.insert(i, (hash, entry));
        }
        if self.entries.len() > self.capacity {
            let (old_hash, old) = self.entries.pop_front()?;
            self.unindex(old_hash, &old.message_id);
            return Some(old);
        }
        None
    }

    fn remove(&mut self, id: &str, lamport: u64) -> bool {
        match self.position(lamport, id) {
            Ok(i) => {
                if let Some((hash, e)) = self.entries.remove(i) {
                    self.unindex(hash, &e.message_id);
                }
                true
            }
            Err(_) => false,
        }
    }

    fn set_retrieval_hint(&mut self, id: &str, lamport: u64, hint: Bytes) {
        if let Ok(i) = self.position(lamport, id) {
            self.entries[i].1.retrieval_hint = Some(hint);
        }
    }

    fn for_each_last<'s>(&'s self, n: usize, f: &mut dyn FnMut(&'s LogEntry)) {
        let start = self.entries.len().saturating_sub(n);
        for (_, e) in self.entries.range(start..) {
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
