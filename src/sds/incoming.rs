//! Received content messages waiting for their causal dependencies, and the dependencies missing.
//!
//! spec: sds.incoming-buffer — a message whose dependencies are not all delivered waits here and
//! is released the moment the last one is delivered (an index from dependency to waiters makes
//! that O(waiters), never a sweep). A dependency neither delivered nor buffered is *missing*;
//! after `dependency_timeout_ms` it is declared lost, and a waiting message is delivered at the
//! latest `dependency_timeout_ms` after it arrived (which also breaks forged dependency cycles).

use std::collections::VecDeque;

use crate::collections::{BoundedSet, FastMap as HashMap, FastSet as HashSet};

use bytes::Bytes;

use super::{MessageId, MissingDependency};

use crate::wire::{HistoryEntry, SdsMessage};

/// Causal histories up to this long are checked for repeated ids by a scan, longer ones by a set.
const LINEAR_DEDUP_MAX: usize = 16;

#[derive(Debug)]
pub(super) struct Waiting {
    pub msg: SdsMessage,
    pub hint: Option<Bytes>,
    pub size: usize,
    unresolved: u32,
}

#[derive(Debug)]
struct Missing {
    info: MissingDependency,
    deadline: u64,
}

/// Result of checking a message's causal history.
#[derive(Debug, Default)]
pub(super) struct DepCheck {
    /// Dependencies not delivered (missing or themselves waiting).
    pub unresolved: Vec<MessageId>,
    /// Unresolved dependencies not known before: neither waiting nor already missing.
    pub new_missing: Vec<MissingDependency>,
}

#[derive(Debug)]
pub(super) struct IncomingBuffer {
    waiting: HashMap<MessageId, Waiting>,
    waiters: HashMap<MessageId, Vec<MessageId>>,
    missing: HashMap<MessageId, Missing>,
    missing_timers: VecDeque<(u64, MessageId)>,
    waiting_timers: VecDeque<(u64, MessageId)>,
    /// Dependencies declared lost (bounded like the local log): a late reference to one of them
    /// does not make a message wait again.
    lost: BoundedSet<MessageId>,
    bytes: usize,
    /// Missing dependencies without a retrieval hint (they cannot be fetched from a store).
    unhinted: usize,
}

impl IncomingBuffer {
    /// An empty buffer remembering up to `lost_memory` dependencies declared lost.
    pub fn new(lost_memory: usize) -> Self {
        IncomingBuffer {
            waiting: HashMap::default(),
            waiters: HashMap::default(),
            missing: HashMap::default(),
            missing_timers: VecDeque::new(),
            waiting_timers: VecDeque::new(),
            lost: BoundedSet::new(lost_memory),
            bytes: 0,
            unhinted: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.waiting.len()
    }
    pub fn bytes(&self) -> usize {
        self.bytes
    }
    pub fn missing_len(&self) -> usize {
        self.missing.len()
    }
    pub fn is_waiting(&self, id: &str) -> bool {
        self.waiting.contains_key(id)
    }
    /// Lamport timestamp of a waiting message (0 when unknown).
    pub fn lamport_of(&self, id: &str) -> u64 {
        self.waiting.get(id).and_then(|w| w.msg.lamport_timestamp).unwrap_or(0)
    }
    pub fn is_missing(&self, id: &str) -> bool {
        self.missing.contains_key(id)
    }
    /// Missing dependencies whose retrieval hint we do not know.
    pub fn unhinted_missing(&self) -> usize {
        self.unhinted
    }

    /// Stops tracking `id` as missing (every removal goes through here to keep `unhinted` exact).
    fn take_missing(&mut self, id: &str) -> Option<Missing> {
        // Nothing missing is the common case: skip hashing the id.
        if self.missing.is_empty() {
            return None;
        }
        let m = self.missing.remove(id)?;
        if m.info.retrieval_hint.is_none() {
            self.unhinted -= 1;
        }
        Some(m)
    }

    /// Calls `f` for each missing dependency without a retrieval hint, with its deadline and the
    /// fewest unresolved dependencies among the messages waiting for it (`None`: nothing waits
    /// for it, e.g. it was named by a sync). O(missing + their waiters).
    pub fn for_each_unhinted<'a>(&'a self, f: &mut dyn FnMut(&'a MessageId, &'a MissingDependency, u64, Option<u32>)) {
        if self.unhinted == 0 {
            return;
        }
        for (id, m) in self.missing.iter().filter(|(_, m)| m.info.retrieval_hint.is_none()) {
            let fewest = self.waiters.get(id).and_then(|ws| ws.iter().filter_map(|w| self.waiting.get(w)).map(|w| w.unresolved).min());
            f(id, &m.info, m.deadline, fewest);
        }
    }

    /// The waiting messages that wait for `id` (empty when nothing does).
    pub fn waiters_of(&self, id: &str) -> &[MessageId] {
        self.waiters.get(id).map_or(&[], |v| v.as_slice())
    }

    /// Records retrieval hints carried by `history` for missing dependencies that had none, and
    /// appends those dependencies (now fetchable) to `out`. A message that references a missing
    /// one often lacks its hint (the sender wrapped it before the dependency was dispatched);
    /// a later message or a peer's repair sync may carry it.
    pub fn learn_hints(&mut self, history: &[HistoryEntry], out: &mut Vec<MissingDependency>) {
        if self.unhinted == 0 {
            return;
        }
        for e in history {
            let Some(hint) = &e.retrieval_hint else { continue };
            if let Some(m) = self.missing.get_mut(e.message_id.as_str()) {
                if m.info.retrieval_hint.is_none() {
                    m.info.retrieval_hint = Some(hint.clone());
                    self.unhinted -= 1;
                    out.push(m.info.clone());
                }
            }
        }
    }

    /// Classifies the causal history of message `own_id`. `delivered` tells whether an id is in the log.
    /// An entry naming `us` as its sender is never missing: we sent it (a peer names a message of
    /// ours that our log has evicted, e.g. acknowledging a late copy) or, under our id, someone
    /// made it up (spec: sds.echo-spoof: seen, nothing to wait for); asking for it would spend
    /// repair syncs on our own messages.
    pub fn check(&self, own_id: &str, us: &str, history: &[HistoryEntry], delivered: &dyn Fn(&str) -> bool) -> DepCheck {
        let mut out = DepCheck::default();
        // A history repeating ids is deduplicated by a set once it is long (a 1,024-entry
        // history scanned pairwise would cost half a million comparisons per message).
        let mut seen: Option<HashSet<&str>> =
            (history.len() > LINEAR_DEDUP_MAX).then(|| HashSet::with_capacity_and_hasher(history.len(), Default::default()));
        for e in history {
            let id = e.message_id.as_str();
            if id == own_id || e.sender_id.as_deref() == Some(us) || delivered(id) || self.lost.contains(id) {
                continue;
            }
            let repeated = match seen.as_mut() {
                Some(set) => !set.insert(id),
                None => out.unresolved.iter().any(|u| &**u == id),
            };
            if repeated {
                continue;
            }
            let mid: MessageId = id.into();
            if !self.waiting.contains_key(id) && !self.missing.contains_key(id) {
                out.new_missing.push(MissingDependency {
                    message_id: mid.clone(),
                    retrieval_hint: e.retrieval_hint.clone(),
                    sender_id: e.sender_id.clone(),
                });
            }
            out.unresolved.push(mid);
        }
        out
    }

    /// Starts tracking dependencies as missing (up to `max_missing` in all); returns how many were added.
    pub fn add_missing(&mut self, deps: &[MissingDependency], now: u64, timeout: u64, max_missing: usize) -> usize {
        let mut added = 0;
        for d in deps {
            if self.missing.len() >= max_missing {
                break;
            }
            if self.missing.contains_key(&d.message_id) || self.waiting.contains_key(&d.message_id) {
                continue;
            }
            let deadline = now.saturating_add(timeout);
            if d.retrieval_hint.is_none() {
                self.unhinted += 1;
            }
            self.missing.insert(d.message_id.clone(), Missing { info: d.clone(), deadline });
            self.missing_timers.push_back((deadline, d.message_id.clone()));
            added += 1;
        }
        added
    }

    /// Room for one more waiting message of `size` bytes with `new_missing` new missing dependencies?
    pub fn has_room(&self, size: usize, new_missing: usize, max_msgs: usize, max_bytes: usize, max_missing: usize) -> bool {
        self.waiting.len() < max_msgs && self.bytes + size <= max_bytes && self.missing.len() + new_missing <= max_missing
    }

    /// Buffers a message waiting for `check.unresolved`, to be delivered at the latest at `deadline`.
    pub fn push(&mut self, id: MessageId, msg: SdsMessage, hint: Option<Bytes>, size: usize, check: &DepCheck, deadline: u64) {
        for dep in &check.unresolved {
            self.waiters.entry(dep.clone()).or_default().push(id.clone());
        }
        // The message itself is no longer missing: its own waiters now wait for its delivery.
        self.take_missing(&id);
        self.bytes += size;
        self.waiting_timers.push_back((deadline, id.clone()));
        self.waiting.insert(id, Waiting { msg, hint, size, unresolved: check.unresolved.len() as u32 });
    }

    /// A message arrived (delivered or buffered): it is no longer missing.
    pub fn arrived(&mut self, id: &str) {
        self.take_missing(id);
    }

    /// `id` was delivered or declared lost: returns the waiting messages that became ready.
    pub fn resolve(&mut self, id: &str, ready: &mut Vec<MessageId>) {
        self.take_missing(id);
        if self.waiters.is_empty() {
            return;
        }
        let Some(ws) = self.waiters.remove(id) else { return };
        for w in ws {
            if let Some(entry) = self.waiting.get_mut(&w) {
                entry.unresolved = entry.unresolved.saturating_sub(1);
                if entry.unresolved == 0 {
                    ready.push(w);
                }
            }
        }
    }

    /// Removes a waiting message (to deliver it).
    pub fn take(&mut self, id: &str) -> Option<Waiting> {
        let w = self.waiting.remove(id)?;
        self.bytes -= w.size;
        Some(w)
    }

    /// Fires due timers: pushes dependencies declared lost to `lost` and waiting messages whose
    /// patience ran out to `forced`.
    pub fn expire(&mut self, now: u64, lost: &mut Vec<MissingDependency>, forced: &mut Vec<MessageId>) {
        while let Some((d, id)) = self.missing_timers.front().cloned() {
            if d > now {
                break;
            }
            self.missing_timers.pop_front();
            if self.missing.get(&id).is_some_and(|m| m.deadline == d) {
                let m = self.take_missing(&id).expect("checked above");
                self.lost.insert(id);
                lost.push(m.info);
            }
        }
        while let Some((d, id)) = self.waiting_timers.front().cloned() {
            if d > now {
                break;
            }
            self.waiting_timers.pop_front();
            if self.waiting.contains_key(&id) {
                forced.push(id);
            }
        }
    }

    pub fn next_deadline(&self) -> Option<u64> {
        let a = self.missing_timers.front().map(|t| t.0);
        let b = self.waiting_timers.front().map(|t| t.0);
        match (a, b) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// What keeps waiting message `id` waiting: the waiting messages it depends on, transitively
    /// (`id` included), and the missing dependencies behind them, in discovery order.
    /// O(waiting messages) at most.
    pub fn blockers(&self, id: &str, delivered: &dyn Fn(&str) -> bool) -> (Vec<MessageId>, Vec<MessageId>) {
        let (mut chain, mut missing) = (Vec::new(), Vec::new());
        let mut seen: HashSet<&str> = HashSet::default();
        let mut stack = vec![id];
        while let Some(x) = stack.pop() {
            if !seen.insert(x) {
                continue;
            }
            if let Some((k, w)) = self.waiting.get_key_value(x) {
                chain.push(k.clone());
                for e in w.msg.causal_history.iter().rev() {
                    let d = e.message_id.as_str();
                    if d != x && !delivered(d) && !self.lost.contains(d) {
                        stack.push(d);
                    }
                }
            } else if let Some((k, _)) = self.missing.get_key_value(x) {
                missing.push(k.clone());
            }
        }
        (chain, missing)
    }

    /// Declares a missing dependency lost now (before its own deadline); returns it.
    pub fn declare_lost(&mut self, id: &str) -> Option<MissingDependency> {
        let m = self.take_missing(id)?;
        self.lost.insert(m.info.message_id.clone());
        Some(m.info)
    }

    /// Drops the dependency index of a message delivered without all its dependencies.
    pub fn forget_waiters_of(&mut self, deps: &[HistoryEntry], id: &str) {
        for d in deps {
            if let Some(ws) = self.waiters.get_mut(d.message_id.as_str()) {
                ws.retain(|w| &**w != id);
                if ws.is_empty() {
                    self.waiters.remove(d.message_id.as_str());
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(id: &str) -> HistoryEntry {
        HistoryEntry { message_id: id.to_owned(), retrieval_hint: None, sender_id: None }
    }

    #[test]
    fn repeated_ids_count_once_in_short_and_long_histories() {
        let buf = IncomingBuffer::new(16);
        for len in [LINEAR_DEDUP_MAX, crate::wire::MAX_CAUSAL_HISTORY_ENTRIES] {
            // Every id twice, plus our own id and a delivered one.
            let mut history: Vec<HistoryEntry> = (0..len / 2).flat_map(|i| [entry(&format!("d{i}")), entry(&format!("d{i}"))]).collect();
            history.push(entry("me"));
            history.push(entry("done"));
            let check = buf.check("me", "us", &history, &|id| id == "done");
            assert_eq!(check.unresolved.len(), len / 2, "history of {len}");
            assert_eq!(check.new_missing.len(), len / 2);
        }
    }
}
