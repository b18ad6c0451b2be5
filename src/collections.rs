//! Collections shared by every layer (crate-private).
//!
//! - [`FastMap`] / [`FastSet`]: hash tables keyed by wire data. foldhash is several times faster
//!   than SipHash and randomly seeded per process, so peers cannot choose colliding keys. Only for
//!   lookups: iteration order is random, so nothing that must be deterministic iterates them.
//! - [`BoundedMap`] / [`BoundedSet`]: a FIFO-evicting memory of the last `capacity` keys inserted
//!   (own dispatch hashes, finished messages, seen ephemerals, lost dependencies, a store). Every
//!   memory a peer can make us grow is bounded by one of these or by a named limit.

use std::collections::VecDeque;
use std::hash::Hash;

/// A hash map with a fast, randomly seeded hasher (see the module docs).
pub(crate) type FastMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;
/// A hash set with a fast, randomly seeded hasher (see the module docs).
pub(crate) type FastSet<K> = std::collections::HashSet<K, foldhash::fast::RandomState>;

/// A map remembering at most `capacity` keys; inserting a new key beyond it forgets the oldest
/// (first inserted) one. O(1) amortised per operation.
#[derive(Debug, Clone)]
pub(crate) struct BoundedMap<K, V> {
    /// Each key with its value and insertion sequence number.
    map: FastMap<K, (V, u64)>,
    /// Keys in insertion order with their sequence numbers; an entry whose number no longer matches
    /// the map (removed, or removed and inserted again) is stale and skipped.
    order: VecDeque<(u64, K)>,
    next_seq: u64,
    capacity: usize,
}

impl<K: Hash + Eq + Clone, V> BoundedMap<K, V> {
    /// An empty map holding at most `capacity` keys (at least 1).
    pub fn new(capacity: usize) -> Self {
        BoundedMap { map: FastMap::default(), order: VecDeque::new(), next_seq: 0, capacity: capacity.max(1) }
    }

    /// Number of keys remembered.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// True when `key` is remembered.
    pub fn contains<Q>(&self, key: &Q) -> bool
    where
        K: std::borrow::Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        !self.map.is_empty() && self.map.contains_key(key)
    }

    /// The value of `key`, if remembered.
    pub fn get<Q>(&self, key: &Q) -> Option<&V>
    where
        K: std::borrow::Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.map.get(key).map(|(v, _)| v)
    }

    /// Remembers `key` with `value`. A key already present keeps its place and its value (the new
    /// value is dropped) and `false` is returned; a new key may evict the oldest, returned in `evicted`.
    pub fn insert(&mut self, key: K, value: V, evicted: &mut Option<(K, V)>) -> bool {
        if self.map.contains_key(&key) {
            return false;
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        self.order.push_back((seq, key.clone()));
        self.map.insert(key, (value, seq));
        while self.map.len() > self.capacity {
            let Some((s, k)) = self.order.pop_front() else { break };
            if self.map.get(&k).is_some_and(|(_, cur)| *cur == s) {
                if let Some((v, _)) = self.map.remove(&k) {
                    *evicted = Some((k, v));
                }
            }
        }
        // Stale order entries (from `remove`) are dropped once they outnumber the live ones.
        if self.order.len() > 2 * self.capacity.max(self.map.len()) {
            let map = &self.map;
            self.order.retain(|(s, k)| map.get(k).is_some_and(|(_, cur)| cur == s));
        }
        true
    }

    /// Forgets `key`; returns its value when it was remembered.
    #[cfg(test)]
    pub fn remove<Q>(&mut self, key: &Q) -> Option<V>
    where
        K: std::borrow::Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.map.remove(key).map(|(v, _)| v)
    }
}

/// A set remembering at most `capacity` keys, forgetting the oldest first (see [`BoundedMap`]).
#[derive(Debug, Clone)]
pub(crate) struct BoundedSet<K>(BoundedMap<K, ()>);

impl<K: Hash + Eq + Clone> BoundedSet<K> {
    /// An empty set holding at most `capacity` keys (at least 1).
    pub fn new(capacity: usize) -> Self {
        BoundedSet(BoundedMap::new(capacity))
    }

    /// Number of keys remembered.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when `key` is remembered.
    pub fn contains<Q>(&self, key: &Q) -> bool
    where
        K: std::borrow::Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.0.contains(key)
    }

    /// Remembers `key`, forgetting the oldest key beyond the capacity; false when already present.
    pub fn insert(&mut self, key: K) -> bool {
        self.0.insert(key, (), &mut None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_forgets_the_oldest_beyond_capacity() {
        let mut s = BoundedSet::new(3);
        assert!(s.insert(1));
        assert!(s.insert(2));
        assert!(!s.insert(1), "already present");
        assert!(s.insert(3));
        assert!(s.insert(4));
        assert!(!s.contains(&1));
        assert!(s.contains(&2) && s.contains(&3) && s.contains(&4));
        assert_eq!(s.len(), 3);
    }

    #[test]
    fn map_reports_what_it_evicts_and_removed_keys_do_not_count() {
        let mut m = BoundedMap::new(2);
        let mut ev = None;
        m.insert("a", 1, &mut ev);
        m.insert("b", 2, &mut ev);
        assert_eq!(m.remove("a"), Some(1));
        m.insert("c", 3, &mut ev);
        assert_eq!(ev, None, "a was removed: b and c fit");
        m.insert("a", 4, &mut ev);
        assert_eq!(ev, Some(("b", 2)));
        assert_eq!((m.get("c"), m.get("a"), m.len()), (Some(&3), Some(&4), 2));
    }

    #[test]
    fn stale_order_entries_stay_bounded() {
        let mut m = BoundedMap::new(4);
        for i in 0..10_000u32 {
            m.insert(i, (), &mut None);
            m.remove(&i);
        }
        assert_eq!(m.len(), 0);
        assert!(m.order.len() <= 8);
    }
}
