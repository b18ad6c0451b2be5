//! The repair responder: answers peers' repair requests with the retrieval hints we know.
//!
//! spec: sds.repair — a peer's sync asks (`repair_request`) for messages it knows it is missing
//! but cannot fetch, having no retrieval hint for them; we answer with a sync whose causal history
//! carries the hints we have, and it fetches them from the store. The answer also carries the
//! hints of our other recent messages its bloom filter lacks (old enough to have reached it): a
//! request lists at most 64 ids, and after a lossy burst a peer may lack hundreds, which would
//! otherwise take one request/answer round (and RLN budget) per 64.
//!
//! Why: a message referenced by another often has no hint in that reference (a send's chunks are
//! wrapped before any is dispatched), and once acknowledged by some peers it is neither
//! retransmitted nor our latest message (rebroadcast). A peer that missed it waited for it until
//! the dependency timeout and then lost it, and with it the whole multi-chunk message (found by
//! tests/simulation.rs). Any peer holding the message answers, the sender too, so the repair does
//! not depend on the sender having RLN budget left. At most one answer per requester per quarter
//! acknowledgement timeout, one per twentieth of it overall.

use std::collections::VecDeque;

use prost::Message as _;

use super::{MessageId, SdsConfig};
use crate::collections::FastMap;
use crate::wire::bloom::{positions, BloomPositions};
use crate::wire::{BloomView, HistoryEntry, SdsMessage};

/// Most recently dispatched or received messages (with their retrieval hints) remembered to
/// answer repair requests; each is also forgotten `dependency_timeout_ms +
/// acknowledgement_timeout_ms` after it was remembered.
pub const MAX_REPAIR_CANDIDATES: usize = 4_096;
/// Most hinted entries one answer to a repair request carries, and their encoded bytes (so that
/// the sync stays far below the WakuMessage size limit even with maximal ids and hints).
pub const MAX_REPAIR_ANSWER_ENTRIES: usize = 512;
pub const MAX_REPAIR_ANSWER_BYTES: usize = 64 * 1024;
/// Most requesters whose last answer time is remembered (the per-requester answer rate limit).
pub const MAX_REPAIRED_PEERS: usize = 256;

/// Messages we dispatched or received recently, with their retrieval hints (what a repair request
/// may ask for), and when we last answered whom.
#[derive(Debug, Default)]
pub(super) struct RepairResponder {
    /// Remembered at, in order (bounded by [`MAX_REPAIR_CANDIDATES`]).
    recent: VecDeque<(u64, MessageId)>,
    /// The entry to answer with, and its bloom positions, by id.
    hints: FastMap<MessageId, (HistoryEntry, BloomPositions)>,
    /// When we last answered each requester (bounded by [`MAX_REPAIRED_PEERS`]).
    answered: FastMap<MessageId, u64>,
    /// When we last answered anyone.
    last_answer_at: Option<u64>,
}

impl RepairResponder {
    /// Remembers a message now available to peers (dispatched by us, or received) with its
    /// retrieval hint, to answer repair requests for it.
    pub fn remember(&mut self, now: u64, entry: HistoryEntry, config: &SdsConfig) {
        self.forget_old(now, config);
        let id: MessageId = entry.message_id.as_str().into();
        if self.hints.contains_key(&id) {
            return;
        }
        if self.recent.len() >= MAX_REPAIR_CANDIDATES {
            if let Some((_, old)) = self.recent.pop_front() {
                self.hints.remove(&old);
            }
        }
        let positions = positions(&id);
        self.recent.push_back((now, id.clone()));
        self.hints.insert(id, (entry, positions));
    }

    fn forget_old(&mut self, now: u64, config: &SdsConfig) {
        let keep = config.dependency_timeout_ms.saturating_add(config.acknowledgement_timeout_ms);
        while self.recent.front().is_some_and(|(at, _)| at.saturating_add(keep) < now) {
            if let Some((_, old)) = self.recent.pop_front() {
                self.hints.remove(&old);
            }
        }
    }

    /// The hinted entries answering `msg`'s repair request, to send in a sync's causal history
    /// now; `None` when it asks for nothing we have, or we answered recently. An answer is
    /// recorded as sent.
    pub fn answer(&mut self, now: u64, msg: &SdsMessage, config: &SdsConfig) -> Option<Vec<HistoryEntry>> {
        if msg.repair_request.is_empty() {
            return None;
        }
        self.forget_old(now, config);
        let ack = config.acknowledgement_timeout_ms;
        let recently = |t: &u64, within: u64| now < t.saturating_add(within);
        if self.last_answer_at.is_some_and(|t| recently(&t, ack / 20))
            || self.answered.get(msg.sender_id.as_str()).is_some_and(|t| recently(t, ack / 4))
        {
            return None;
        }
        let mut hints: Vec<HistoryEntry> =
            msg.repair_request.iter().filter_map(|r| self.hints.get(r.message_id.as_str()).map(|h| h.0.clone())).collect();
        if hints.is_empty() {
            return None;
        }
        if let Some(view) = msg.bloom_filter.as_deref().and_then(BloomView::new) {
            self.add_lacking(&mut hints, now, msg, view, ack);
        }
        if self.answered.len() >= MAX_REPAIRED_PEERS {
            self.answered.retain(|_, t| recently(t, ack / 4));
            if self.answered.len() >= MAX_REPAIRED_PEERS {
                return None;
            }
        }
        self.answered.insert(msg.sender_id.as_str().into(), now);
        self.last_answer_at = Some(now);
        Some(hints)
    }

    /// Adds the hints of our recent messages that `view` (the requester's bloom filter) lacks and
    /// that are old enough to have reached it, within the answer's bounds.
    fn add_lacking(&self, hints: &mut Vec<HistoryEntry>, now: u64, msg: &SdsMessage, view: BloomView<'_>, ack: u64) {
        // Younger messages may still have been in flight to the peer when it built `msg` (no
        // later than its lamport timestamp, which is at least its clock then).
        let built = now.min(msg.lamport_timestamp.unwrap_or(now));
        let mut bytes: usize = hints.iter().map(|h| h.encoded_len() + 3).sum();
        for (at, id) in &self.recent {
            if hints.len() >= MAX_REPAIR_ANSWER_ENTRIES || at.saturating_add(ack / 2) > built {
                break;
            }
            let Some((e, pos)) = self.hints.get(id) else { continue };
            if e.sender_id.as_deref() == Some(msg.sender_id.as_str()) || view.contains_positions(pos) {
                continue;
            }
            if msg.repair_request.iter().any(|r| r.message_id == e.message_id) {
                continue;
            }
            bytes += e.encoded_len() + 3;
            if bytes > MAX_REPAIR_ANSWER_BYTES {
                break;
            }
            hints.push(e.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::wire::BloomFilter;

    const T0: u64 = 1_700_000_000_000;

    fn hinted(id: &str, sender: &str) -> HistoryEntry {
        HistoryEntry { message_id: id.into(), retrieval_hint: Some(Bytes::copy_from_slice(id.as_bytes())), sender_id: Some(sender.into()) }
    }

    /// A sync from `sender` asking for `ids`, with `bloom` (the messages it has) if given.
    fn request(sender: &str, ids: &[&str], bloom: Option<&BloomFilter>) -> SdsMessage {
        SdsMessage {
            sender_id: sender.into(),
            message_id: "sync-x".into(),
            channel_id: "chan".into(),
            lamport_timestamp: None,
            causal_history: vec![],
            bloom_filter: bloom.map(|b| Bytes::copy_from_slice(b.as_bytes())),
            repair_request: ids.iter().map(|id| HistoryEntry { message_id: (*id).into(), retrieval_hint: None, sender_id: None }).collect(),
            content: None,
        }
    }

    fn ids(answer: Option<Vec<HistoryEntry>>) -> Option<Vec<String>> {
        answer.map(|v| v.into_iter().map(|e| e.message_id).collect())
    }

    #[test]
    fn answers_what_it_remembers_at_most_once_per_quarter_ack_timeout_per_requester() {
        let c = SdsConfig::default();
        let mut r = RepairResponder::default();
        r.remember(T0, hinted("a", "alice"), &c);
        assert_eq!(r.answer(T0, &request("bob", &[], None), &c), None, "nothing asked");
        assert_eq!(r.answer(T0, &request("bob", &["zz"], None), &c), None, "nothing known");
        assert_eq!(ids(r.answer(T0, &request("bob", &["a", "zz"], None), &c)), Some(vec!["a".to_owned()]));
        let ack = c.acknowledgement_timeout_ms;
        assert_eq!(r.answer(T0 + ack / 20, &request("bob", &["a"], None), &c), None, "bob answered recently");
        assert!(r.answer(T0 + ack / 20, &request("carol", &["a"], None), &c).is_some(), "carol was not");
        assert_eq!(r.answer(T0 + ack / 20 + 1, &request("dave", &["a"], None), &c), None, "anyone answered just now");
        assert!(r.answer(T0 + ack / 4, &request("bob", &["a"], None), &c).is_some());
    }

    #[test]
    fn forgets_candidates_after_dependency_and_ack_timeout() {
        let c = SdsConfig::default();
        let keep = c.dependency_timeout_ms + c.acknowledgement_timeout_ms;
        let remembering = || {
            let mut r = RepairResponder::default();
            r.remember(T0, hinted("a", "alice"), &c);
            r
        };
        assert!(remembering().answer(T0 + keep, &request("bob", &["a"], None), &c).is_some());
        assert_eq!(remembering().answer(T0 + keep + 1, &request("bob", &["a"], None), &c), None);
    }

    #[test]
    fn bounded_by_max_candidates_oldest_forgotten() {
        let c = SdsConfig::default();
        let mut r = RepairResponder::default();
        for i in 0..=MAX_REPAIR_CANDIDATES {
            r.remember(T0, hinted(&format!("m{i}"), "alice"), &c);
        }
        assert_eq!(r.recent.len(), MAX_REPAIR_CANDIDATES);
        assert_eq!(r.hints.len(), MAX_REPAIR_CANDIDATES);
        assert_eq!(r.answer(T0, &request("bob", &["m0"], None), &c), None);
        assert!(r.answer(T0, &request("carol", &["m1"], None), &c).is_some());
    }

    #[test]
    fn also_sends_old_enough_hints_the_requester_lacks_but_never_its_own() {
        let c = SdsConfig::default();
        let ack = c.acknowledgement_timeout_ms;
        let mut r = RepairResponder::default();
        r.remember(T0, hinted("asked", "alice"), &c);
        r.remember(T0, hinted("has", "alice"), &c);
        r.remember(T0, hinted("lacks", "alice"), &c);
        r.remember(T0, hinted("own", "bob"), &c);
        r.remember(T0 + ack, hinted("young", "alice"), &c);
        let mut bloom = BloomFilter::new();
        bloom.insert("has");
        let now = T0 + ack;
        let answer = ids(r.answer(now, &request("bob", &["asked"], Some(&bloom)), &c));
        assert_eq!(answer, Some(vec!["asked".to_owned(), "lacks".to_owned()]));
    }
}
