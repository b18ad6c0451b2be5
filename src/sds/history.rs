//! The local log behind a storage seam.
//!
//! spec: sds.local-log — delivered content messages (own and received) in *arrival* order,
//! bounded: the earliest arrival is evicted. Duplicate detection therefore covers the last
//! `max_local_history` messages to arrive whatever their lamport timestamps (ordering by lamport
//! and evicting the lowest would forget at once a message that arrives late with a low lamport,
//! and deliver its duplicate again). Appends and evictions are O(1) amortised.
//!
//! The log's shape, for a durable backend: a sequence of [`LogEntry`] in arrival order, each
//! looked up by message id. Causal history is chosen from the newest arrivals and sent in
//! (lamport, id) order (see [`causal_refs`]).

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

/// spec: sds.causal-history — the last `n` log entries to arrive, plus our previous message when
/// it is not among them (sender order), in (lamport, id) order. Borrowed straight from the log: no
/// id or history copies on the send hot path.
pub(super) fn causal_refs<'a, H: HistoryStore>(history: &'a H, last_own: Option<&'a LogEntry>, n: usize) -> Vec<HistoryEntryRef<'a>> {
    let mut v: Vec<(u64, HistoryEntryRef<'a>)> = Vec::with_capacity(n + 1);
    history.for_each_last(n, &mut |e| v.push((e.lamport_timestamp, HistoryEntryRef::from(e))));
    if let Some(own) = last_own {
        if !v.iter().any(|(_, e)| e.message_id == &*own.message_id) && history.contains(&own.message_id) {
            v.push((own.lamport_timestamp, HistoryEntryRef::from(own)));
        }
    }
    // Arrival order is (lamport, id) order unless messages were reordered: n is small, and a
    // sorted slice is not touched.
    if !v.is_sorted_by(|a, b| (a.0, a.1.message_id) <= (b.0, b.1.message_id)) {
        v.sort_unstable_by(|a, b| (a.0, a.1.message_id).cmp(&(b.0, b.1.message_id)));
    }
    v.into_iter().map(|(_, e)| e).collect()
}

/// Where the local log lives. The engine only uses these operations, so a durable backend can
/// implement them without the engine changing.
pub trait HistoryStore {
    /// True when the id is in the log.
    fn contains(&self, id: &str) -> bool;
    /// Appends an entry that is not yet present (the newest arrival); returns the entry evicted
    /// (the earliest arrival) to stay within capacity.
    fn insert(&mut self, entry: LogEntry) -> Option<LogEntry>;
    /// Removes an entry (an own message that never left this node); true when it was present.
    /// `lamport_timestamp` is the entry's (a backend may key on it).
    fn remove(&mut self, id: &str, lamport_timestamp: u64) -> bool;
    /// Records the retrieval hint of an entry (known once the message was dispatched).
    fn set_retrieval_hint(&mut self, id: &str, lamport_timestamp: u64, hint: Bytes);
    /// Calls `f` on the last `n` entries to arrive, in arrival order (oldest first).
    fn for_each_last<'s>(&'s self, n: usize, f: &mut dyn FnMut(&'s LogEntry));
    /// Number of entries.
    fn len(&self) -> usize;
    /// True when empty.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// One slot of [`MemoryHistory`]: the entry, its arrival number and the hash of its id.
#[derive(Debug)]
struct Slot {
    seq: u64,
    hash: u64,
    entry: LogEntry,
}

/// The default `memory` backend: does not survive a restart.
///
/// The id index remembers each id's arrival number and the entries their id's hash: evicting the
/// earliest entry (once per message when the log is full) then finds its index slot by hash and
/// pointer, without reading the long-evicted id's bytes again (two cache misses per message
/// saved), and an id's entry is found from its arrival number without a scan.
#[derive(Debug)]
pub struct MemoryHistory {
    /// Arrival order: `seq` strictly increasing (contiguous unless an entry was removed).
    entries: VecDeque<Slot>,
    /// id → arrival number.
    ids: HashTable<(MessageId, u64)>,
    hasher: foldhash::fast::RandomState,
    capacity: usize,
    next_seq: u64,
}

impl MemoryHistory {
    /// An empty log holding at most `capacity` entries (at least 1).
    pub fn new(capacity: usize) -> Self {
        MemoryHistory { entries: VecDeque::new(), ids: HashTable::new(), hasher: Default::default(), capacity: capacity.max(1), next_seq: 0 }
    }

    fn hash(&self, id: &str) -> u64 {
        self.hasher.hash_one(id)
    }

    /// Index in `entries` of the entry with id `id`.
    fn position(&self, id: &str) -> Option<usize> {
        if self.ids.is_empty() {
            return None;
        }
        let &(_, seq) = self.ids.find(self.hash(id), |(k, _)| **k == *id)?;
        let front = self.entries.front()?.seq;
        // Contiguous arrival numbers (nothing removed since): the index is the difference.
        let guess = usize::try_from(seq - front).ok().filter(|&i| self.entries.get(i).is_some_and(|s| s.seq == seq));
        guess.or_else(|| self.entries.binary_search_by_key(&seq, |s| s.seq).ok())
    }

    /// Drops `id` (known to be in the index under `hash`) from the index, by pointer.
    fn unindex(&mut self, hash: u64, id: &MessageId) {
        if let Ok(slot) = self.ids.find_entry(hash, |(k, _)| Arc::ptr_eq(k, id)) {
            slot.remove();
        }
    }
}

impl HistoryStore for MemoryHistory {
    fn contains(&self, id: &str) -> bool {
        !self.ids.is_empty() && self.ids.find(self.hash(id), |(k, _)| **k == *id).is_some()
    }

    fn insert(&mut self, entry: LogEntry) -> Option<LogEntry> {
        let hash = self.hash(&entry.message_id);
        let seq = self.next_seq;
        let hasher = &self.hasher;
        match self.ids.entry(hash, |(k, _)| **k == *entry.message_id, |(k, _)| hasher.hash_one(&**k)) {
            hashbrown::hash_table::Entry::Occupied(_) => return None,
            hashbrown::hash_table::Entry::Vacant(slot) => {
                slot.insert((entry.message_id.clone(), seq));
            }
        }
        self.next_seq += 1;
        // Grow the ring to at most capacity + 1 slots (not the next power of two): once full, each
        // new entry then lands in the slot the previous eviction just vacated, still in cache,
        // instead of in a line untouched for ~16k messages.
        if self.entries.len() == self.entries.capacity() {
            let target = (self.entries.capacity() * 2).max(16).min(self.capacity + 1);
            self.entries.reserve_exact(target.saturating_sub(self.entries.len()).max(1));
        }
        self.entries.push_back(Slot { seq, hash, entry });
        if self.entries.len() > self.capacity {
            let old = self.entries.pop_front()?;
            self.unindex(old.hash, &old.entry.message_id);
            return Some(old.entry);
        }
        None
    }

    fn remove(&mut self, id: &str, _lamport: u64) -> bool {
        let Some(i) = self.position(id) else { return false };
        // Rare (a send that failed before its first dispatch) and near the back: the shift is short.
        if let Some(s) = self.entries.remove(i) {
            self.unindex(s.hash, &s.entry.message_id);
        }
        true
    }

    fn set_retrieval_hint(&mut self, id: &str, _lamport: u64, hint: Bytes) {
        if let Some(i) = self.position(id) {
            self.entries[i].entry.retrieval_hint = Some(hint);
        }
    }

    fn for_each_last<'s>(&'s self, n: usize, f: &mut dyn FnMut(&'s LogEntry)) {
        let start = self.entries.len().saturating_sub(n);
        for s in self.entries.range(start..) {
            f(&s.entry);
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
    fn arrival_ordered_and_bounded_whatever_the_lamport() {
        let mut h = MemoryHistory::new(3);
        assert!(h.insert(e("b", 2)).is_none());
        assert!(h.insert(e("a", 2)).is_none());
        assert!(h.insert(e("z", 1)).is_none());
        assert_eq!(ids(&h, 10), ["b", "a", "z"]);
        // The earliest arrival goes, not the lowest lamport: "z" (lamport 1) stays known.
        let evicted = h.insert(e("c", 5)).unwrap();
        assert_eq!(&*evicted.message_id, "b");
        assert!(!h.contains("b") && h.contains("z"));
        assert_eq!(ids(&h, 2), ["z", "c"]);
        assert!(h.insert(e("c", 5)).is_none(), "duplicate ignored");
        assert_eq!(h.len(), 3);
    }

    #[test]
    fn causal_refs_are_the_newest_arrivals_in_lamport_order() {
        let mut h = MemoryHistory::new(10);
        for (id, ts) in [("old", 1), ("late", 3), ("x", 9), ("y", 4)] {
            h.insert(e(id, ts));
        }
        let refs: Vec<&str> = causal_refs(&h, None, 3).iter().map(|r| r.message_id).collect();
        assert_eq!(refs, ["late", "y", "x"]);
        let own = e("old", 1);
        let refs: Vec<&str> = causal_refs(&h, Some(&own), 2).iter().map(|r| r.message_id).collect();
        assert_eq!(refs, ["old", "y", "x"], "our previous message joins, in order");
    }

    #[test]
    fn lookups_after_a_removal_in_the_middle() {
        let mut h = MemoryHistory::new(4);
        for (i, id) in ["a", "b", "c", "d"].into_iter().enumerate() {
            h.insert(e(id, i as u64));
        }
        assert!(h.remove("b", 1));
        h.set_retrieval_hint("d", 3, Bytes::from_static(b"h"));
        let mut got = None;
        h.for_each_last(1, &mut |x| got = x.retrieval_hint.clone());
        assert_eq!(got.as_deref(), Some(&b"h"[..]));
        h.insert(e("e", 0));
        h.insert(e("f", 0));
        assert_eq!(ids(&h, 10), ["c", "d", "e", "f"]);
        assert!(h.remove("e", 0) && !h.contains("e") && h.contains("f"));
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
