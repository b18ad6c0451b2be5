//! Store lookups of missing dependencies whose retrieval hint (a WakuMessage hash) we know.
//!
//! spec: retrieval.backoff — a missing dependency with a hint is looked up at once, then again
//! every `acknowledgement_timeout_ms` while it is still missing; the lookups due at one time go
//! out as one `Retrieve` of at most [`MAX_STORE_LOOKUP_BATCH`] hashes, and at most
//! [`MAX_STORE_LOOKUPS_PER_MINUTE`] hashes per minute: what does not fit waits for the next
//! minute, ids looked up fewer times first.
//!
//! Ids found missing in a crowd (more than [`CROWDED_MISSING`] new ones from one received
//! message) are suspect: a hostile message names hundreds of made-up hashes, none of which the
//! store will ever return. Unless at least half of its crowd has been found since, such an id backs
//! off (`acknowledgement_timeout_ms` × 1, 2, 4, 8, then every 8 ×), and crowds may use only
//! [`MAX_CROWDED_LOOKUPS_PER_MINUTE`] of the minute's lookups, so that a flood of made-up hashes
//! neither costs a lookup per id per acknowledgement timeout (a message naming 1,024 cost 12,288)
//! nor starves the lookup of a real missing message (found by tests/hostile_sim.rs: one message
//! took every lookup of the minute, and a real one was declared lost). An honest crowd (a repair
//! answer after a lossy burst) is mostly found at the first lookup and keeps the steady pace: the
//! store may lose answers too (tests/simulation.rs loses up to 30 %).

use std::collections::BTreeMap;

use crate::collections::FastMap;
use crate::sds::{repair_backoff, MessageId};
use crate::wire::MessageHash;

/// Most hashes one `Retrieve` action asks for.
pub const MAX_STORE_LOOKUP_BATCH: usize = 256;
/// Most hashes a channel looks up per minute (fixed one-minute windows of the channel's clock).
pub const MAX_STORE_LOOKUPS_PER_MINUTE: usize = 1_024;
/// Of those, most for ids found missing in a crowd.
pub const MAX_CROWDED_LOOKUPS_PER_MINUTE: usize = MAX_STORE_LOOKUPS_PER_MINUTE / 2;
/// More new missing dependencies than this from one received message make a crowd.
pub const CROWDED_MISSING: usize = 32;
const MINUTE_MS: u64 = 60_000;

/// (due time, lookups so far, crowded, sequence): the order in which lookups are made.
type Key = (u64, u32, bool, u64);

/// The ids found missing together (one `Missing` report): how many, how many still looked up,
/// how many found since.
#[derive(Debug, Clone, Copy)]
struct Crowd {
    size: u32,
    live: u32,
    found: u32,
}

impl Crowd {
    fn crowded(&self) -> bool {
        self.size as usize > CROWDED_MISSING
    }
    /// Suspect: a crowd of which less than half was found so far.
    fn suspect(&self) -> bool {
        self.crowded() && self.found.saturating_mul(2) < self.size
    }
}

/// The lookups of one channel: what to fetch, how often it was, when next.
#[derive(Debug, Default)]
pub(super) struct Retrievals {
    /// id → (hash, its key in `due`, its crowd).
    ids: FastMap<MessageId, (MessageHash, Key, u64)>,
    due: BTreeMap<Key, MessageId>,
    crowds: FastMap<u64, Crowd>,
    seq: u64,
    /// The current minute window and the lookups made in it (all, crowded).
    window: u64,
    in_window: usize,
    crowded_in_window: usize,
}

impl Retrievals {
    /// Starts looking up `deps` (ids found missing together, with their hashes) now; known ids
    /// are left as they are.
    pub fn add(&mut self, now: u64, deps: Vec<(MessageId, MessageHash)>) {
        let deps: Vec<_> = deps.into_iter().filter(|(id, _)| !self.ids.contains_key(id)).collect();
        if deps.is_empty() {
            return;
        }
        self.seq += 1;
        let crowd = self.seq;
        let n = deps.len() as u32;
        let c = Crowd { size: n, live: n, found: 0 };
        self.crowds.insert(crowd, c);
        for (id, hash) in deps {
            let key = self.key(now, 0, c.crowded());
            self.due.insert(key, id.clone());
            self.ids.insert(id, (hash, key, crowd));
        }
    }

    fn key(&mut self, at: u64, n: u32, crowded: bool) -> Key {
        self.seq += 1;
        (at, n, crowded, self.seq)
    }

    /// Forgets `id`, `found` or not.
    fn forget(&mut self, id: &str, found: bool) {
        let Some((_, key, crowd)) = self.ids.remove(id) else { return };
        self.due.remove(&key);
        if let Some(c) = self.crowds.get_mut(&crowd) {
            c.live -= 1;
            c.found += u32::from(found);
            if c.live == 0 {
                self.crowds.remove(&crowd);
            }
        }
    }

    /// Stops looking up `id` (declared lost).
    pub fn remove(&mut self, id: &str) {
        self.forget(id, false);
    }

    /// When the next lookup is due.
    pub fn next_deadline(&self) -> Option<u64> {
        self.due.keys().next().map(|k| k.0)
    }

    /// The hashes to look up now, in batches; `missing` tells whether an id is still wanted
    /// (others are forgotten). Each is rescheduled by its backoff, or to the next minute when
    /// this one's lookups are spent.
    pub fn take_due(&mut self, now: u64, ack: u64, missing: &dyn Fn(&str) -> bool) -> Vec<Vec<MessageHash>> {
        let window = now / MINUTE_MS;
        if window != self.window {
            self.window = window;
            self.in_window = 0;
            self.crowded_in_window = 0;
        }
        // Found since their last lookup: credited to their crowd before the others are rescheduled.
        let due: Vec<MessageId> = self.due.range(..=(now, u32::MAX, true, u64::MAX)).map(|(_, id)| id.clone()).collect();
        for id in due.iter().filter(|id| !missing(id)) {
            self.forget(id, true);
        }
        let mut batches: Vec<Vec<MessageHash>> = Vec::new();
        for id in due {
            let Some(&(hash, key, crowd)) = self.ids.get(&id) else { continue };
            let (_, n, crowded, _) = key;
            let spent = self.in_window >= MAX_STORE_LOOKUPS_PER_MINUTE || (crowded && self.crowded_in_window >= MAX_CROWDED_LOOKUPS_PER_MINUTE);
            let (at, n) = if spent {
                // This minute's lookups are spent: wait for the next, keeping its place.
                ((window + 1).saturating_mul(MINUTE_MS), n)
            } else {
                self.in_window += 1;
                self.crowded_in_window += usize::from(crowded);
                match batches.last_mut() {
                    Some(b) if b.len() < MAX_STORE_LOOKUP_BATCH => b.push(hash),
                    _ => batches.push(vec![hash]),
                }
                let suspect = self.crowds.get(&crowd).is_some_and(Crowd::suspect);
                let wait = if suspect { repair_backoff(ack, n + 1) } else { ack };
                (now.saturating_add(wait), n + 1)
            };
            self.due.remove(&key);
            let key = self.key(at, n, crowded);
            self.due.insert(key, id.clone());
            self.ids.insert(id, (hash, key, crowd));
        }
        batches
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ACK: u64 = 5_000;

    fn hash(i: u32) -> MessageHash {
        let mut h = [0u8; 32];
        h[..4].copy_from_slice(&i.to_be_bytes());
        h
    }

    #[test]
    fn lookups_back_off_and_stop_when_no_longer_missing() {
        let mut r = Retrievals::default();
        r.add(0, (0..40).map(|i| (MessageId::from(format!("m{i}")), hash(i))).collect());
        let mut at = Vec::new();
        let mut now = 0;
        while let Some(t) = r.next_deadline().filter(|t| *t <= 60_000) {
            now = t;
            if !r.take_due(now, ACK, &|_| true).is_empty() {
                at.push(now);
            }
        }
        // A crowd none of which is ever found backs off.
        assert_eq!(at, vec![0, 5_000, 15_000, 35_000]);
        assert!(r.take_due(now + 40_000, ACK, &|_| false).is_empty());
        assert_eq!(r.next_deadline(), None, "forgotten once found");
    }

    #[test]
    fn batched_and_capped_per_minute_crowds_at_half() {
        let mut r = Retrievals::default();
        let n = MAX_STORE_LOOKUPS_PER_MINUTE as u32 + 10;
        r.add(0, (0..n).map(|i| (MessageId::from(format!("m{i}")), hash(i))).collect());
        let batches = r.take_due(0, ACK, &|_| true);
        assert_eq!(batches.iter().map(Vec::len).sum::<usize>(), MAX_CROWDED_LOOKUPS_PER_MINUTE);
        assert!(batches.iter().all(|b| b.len() <= MAX_STORE_LOOKUP_BATCH));
        // A lone missing id later in the minute still gets its lookups.
        r.add(1_000, vec![("real".into(), hash(u32::MAX))]);
        assert_eq!(r.take_due(1_000, ACK, &|_| true), vec![vec![hash(u32::MAX)]]);
        assert_eq!(r.take_due(6_000, ACK, &|_| true), vec![vec![hash(u32::MAX)]]);
        // The crowd waits for the next minute, ids looked up fewer times first.
        assert!(r.take_due(59_999, ACK, &|id| id != "real").is_empty());
        let next = r.take_due(MINUTE_MS, ACK, &|id| id != "real");
        assert_eq!(next.iter().map(Vec::len).sum::<usize>(), MAX_CROWDED_LOOKUPS_PER_MINUTE);
        let fresh: Vec<MessageHash> = (MAX_CROWDED_LOOKUPS_PER_MINUTE as u32..n).take(MAX_STORE_LOOKUP_BATCH).map(hash).collect();
        assert_eq!(next[0], fresh);
    }
}
