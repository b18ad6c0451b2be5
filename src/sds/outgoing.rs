//! Own content messages awaiting acknowledgement: the outgoing (retransmission) buffer.
//!
//! spec: sds.retransmission — an unacknowledged message is re-sent (same bytes) every
//! `acknowledgement_timeout_ms` after its dispatch, at most `max_retransmissions` times, then
//! given up one timeout after the last retransmission. The timer runs only while the message is
//! in flight: a message waiting for dispatch (e.g. behind the rate limiter) is never re-sent.
//! spec: sds.retransmission.store — the first timer of a message may be longer (the engine
//! decides: a message a store can serve is fetched by receivers that lost it, see
//! `SdsEngine::set_store_timing`), so the timers are kept in deadline order by insertion.
//! spec: sds.retransmission.evidence — our newest message may be re-sent before its timer when a
//! peer's message shows it lacks it (`engine/evidence.rs`); its next timer is the long one again.

use std::collections::{BTreeMap, VecDeque};

use crate::collections::FastMap as HashMap;

use bytes::Bytes;

use super::MessageId;
use crate::wire::bloom::{positions, BloomPositions};
use crate::wire::BloomView;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    AwaitingDispatch,
    InFlight { deadline: u64 },
}

#[derive(Debug)]
struct Entry {
    id: MessageId,
    lamport: u64,
    bytes: Bytes,
    positions: BloomPositions,
    retransmissions: u32,
    possible_acks: u32,
    dispatched_once: bool,
    /// Restored after a restart: its first expiry re-sends it without counting a retransmission.
    restored: bool,
    /// When it was last handed to the network.
    sent_at: u64,
    /// Re-sent on evidence of a loss ([`OutgoingBuffer::resend_now`]): its next timer is as long as its first.
    long_timer: bool,
    state: State,
}

/// What a timer expiry asks for.
#[derive(Debug, PartialEq)]
pub(super) enum Expired {
    Retransmit { id: MessageId, bytes: Bytes, attempt: u32 },
    GaveUp { id: MessageId },
}

/// The outgoing buffer. Insertion order (a sequence number) keeps every scan deterministic.
#[derive(Debug, Default)]
pub(super) struct OutgoingBuffer {
    entries: BTreeMap<u64, Entry>,
    by_id: HashMap<MessageId, u64>,
    /// (deadline, seq) in deadline order (see [`Self::insert_timer`]).
    timers: VecDeque<(u64, u64)>,
    next_seq: u64,
    bytes: usize,
    /// Entries restored from a durable channel's state, not yet scheduled ([`Self::schedule_restored`]).
    restored: Vec<u64>,
}

impl OutgoingBuffer {
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn bytes(&self) -> usize {
        self.bytes
    }

    pub fn contains(&self, id: &str) -> bool {
        self.by_id.contains_key(id)
    }

    /// Registers a freshly wrapped message, awaiting its first dispatch.
    pub fn push(&mut self, id: MessageId, lamport: u64, bytes: Bytes) {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.bytes += bytes.len();
        let positions = positions(&id);
        self.by_id.insert(id.clone(), seq);
        self.entries.insert(
            seq,
            Entry {
                id,
                lamport,
                bytes,
                positions,
                retransmissions: 0,
                possible_acks: 0,
                dispatched_once: false,
                restored: false,
                sent_at: 0,
                long_timer: false,
                state: State::AwaitingDispatch,
            },
        );
    }

    /// Restore: an own message of a restarted durable channel, sent before the restart, with its
    /// counts of retransmissions and bloom filter hits; scheduled by [`Self::schedule_restored`].
    pub fn restore(&mut self, id: MessageId, lamport: u64, bytes: Bytes, retransmissions: u32, possible_acks: u32) {
        if self.contains(&id) {
            return;
        }
        let seq = self.next_seq;
        self.push(id, lamport, bytes);
        if let Some(e) = self.entries.get_mut(&seq) {
            e.retransmissions = retransmissions;
            e.possible_acks = possible_acks;
            e.dispatched_once = true;
            e.restored = true;
            self.restored.push(seq);
        }
    }

    /// Schedules the restored messages' re-sends: spread evenly over one acknowledgement timeout
    /// from `now` (the `k`-th of `n` restored at `now + k * timeout / n`) — a restart does not
    /// send them all at once (an RLN budget would go on re-sends). The re-send does not count as
    /// a retransmission (the process, not the network, lost the timer); the ones after it do,
    /// from the restored count, and the message is given up as usual.
    pub fn schedule_restored(&mut self, now: u64, timeout: u64) {
        let restored = std::mem::take(&mut self.restored);
        let n = restored.len() as u64;
        for (k, seq) in (0u64..).zip(restored) {
            let Some(e) = self.entries.get_mut(&seq) else { continue };
            let deadline = now.saturating_add(timeout.saturating_mul(k) / n);
            e.state = State::InFlight { deadline };
            self.insert_timer(deadline, seq);
        }
    }

    /// Adds a timer in deadline order: at the back in the common case (`now + timeout` with a
    /// non-decreasing `now`), by binary search when a longer first timer is already queued.
    fn insert_timer(&mut self, deadline: u64, seq: u64) {
        if self.timers.back().is_none_or(|&(d, _)| d <= deadline) {
            self.timers.push_back((deadline, seq));
        } else {
            let at = self.timers.partition_point(|&(d, _)| d <= deadline);
            self.timers.insert(at, (deadline, seq));
        }
    }

    /// The message was handed to the network: start its acknowledgement timer, `first_timeout`
    /// after its first dispatch, `timeout` after a retransmission.
    /// Returns `Some((first_dispatch, lamport, bloom positions))` when the id is known and was
    /// awaiting dispatch.
    pub fn dispatched(&mut self, id: &str, now: u64, timeout: u64, first_timeout: u64) -> Option<(bool, u64, BloomPositions)> {
        let seq = *self.by_id.get(id)?;
        let e = self.entries.get_mut(&seq)?;
        if e.state != State::AwaitingDispatch {
            return None;
        }
        let first = !e.dispatched_once;
        e.dispatched_once = true;
        e.sent_at = now;
        let long = first || std::mem::take(&mut e.long_timer);
        let deadline = now.saturating_add(if long { first_timeout } else { timeout });
        e.state = State::InFlight { deadline };
        let found = (first, e.lamport, e.positions);
        self.insert_timer(deadline, seq);
        Some(found)
    }

    /// Removes a message, telling whether it was ever dispatched and its lamport timestamp.
    pub fn take(&mut self, id: &str) -> Option<(bool, u64)> {
        let seq = self.by_id.remove(id)?;
        let e = self.entries.remove(&seq)?;
        self.bytes -= e.bytes.len();
        Some((e.dispatched_once, e.lamport))
    }

    /// Removes a message (acknowledged, failed or cancelled). Returns true when it was present.
    pub fn remove(&mut self, id: &str) -> bool {
        let Some(seq) = self.by_id.remove(id) else { return false };
        if let Some(e) = self.entries.remove(&seq) {
            self.bytes -= e.bytes.len();
        }
        // Its timer entry, if any, is skipped lazily when it expires.
        true
    }

    /// spec: sds.ack.bloom — counts a hit for every dispatched message the filter may contain;
    /// calls `acked` for those reaching `threshold` (removed) and `possibly` for the others.
    /// `plausible` is asked once, at the first hit: when it says no, the filter counts for nothing.
    pub fn review_bloom(
        &mut self,
        filter: BloomView<'_>,
        threshold: u32,
        plausible: &mut dyn FnMut() -> bool,
        acked: &mut dyn FnMut(MessageId),
        possibly: &mut dyn FnMut(MessageId, u32),
    ) {
        let mut done = Vec::new();
        let mut checked = false;
        for (&seq, e) in self.entries.iter_mut() {
            if !e.dispatched_once || !filter.contains_positions(&e.positions) {
                continue;
            }
            if !checked {
                if !plausible() {
                    return;
                }
                checked = true;
            }
            e.possible_acks += 1;
            if e.possible_acks >= threshold {
                done.push(seq);
            } else {
                possibly(e.id.clone(), e.possible_acks);
            }
        }
        for seq in done {
            if let Some(e) = self.entries.remove(&seq) {
                self.by_id.remove(&e.id);
                self.bytes -= e.bytes.len();
                acked(e.id);
            }
        }
    }

    /// spec: sds.retransmission.evidence — our newest message, when it is in flight with no
    /// sign of having arrived anywhere (no bloom filter hit) and may be retransmitted: its id,
    /// when it was last sent and its bloom positions, for the engine to look for evidence of its
    /// loss ([`Self::resend_now`]).
    pub fn newest_unconfirmed(&self, max_retransmissions: u32) -> Option<(&MessageId, u64, &BloomPositions)> {
        let (_, e) = self.entries.iter().next_back()?;
        let in_flight = matches!(e.state, State::InFlight { .. });
        (in_flight && !e.restored && e.possible_acks == 0 && e.retransmissions < max_retransmissions).then_some((&e.id, e.sent_at, &e.positions))
    }

    /// Re-sends an in-flight message now (a peer lacks it), its next timer as long as its first.
    pub fn resend_now(&mut self, id: &str) -> Option<Expired> {
        let e = self.entries.get_mut(self.by_id.get(id)?)?;
        let State::InFlight { .. } = e.state else { return None };
        e.retransmissions += 1;
        e.state = State::AwaitingDispatch;
        e.long_timer = true;
        Some(Expired::Retransmit { id: e.id.clone(), bytes: e.bytes.clone(), attempt: e.retransmissions })
    }

    pub fn next_deadline(&mut self) -> Option<u64> {
        self.skip_stale();
        self.timers.front().map(|&(d, _)| d)
    }

    fn skip_stale(&mut self) {
        while let Some(&(d, seq)) = self.timers.front() {
            let live = matches!(self.entries.get(&seq), Some(e) if e.state == State::InFlight { deadline: d });
            if live {
                break;
            }
            self.timers.pop_front();
        }
    }

    /// Fires every timer due at `now`.
    pub fn expire(&mut self, now: u64, max_retransmissions: u32, out: &mut Vec<Expired>) {
        loop {
            self.skip_stale();
            let Some(&(d, seq)) = self.timers.front() else { break };
            if d > now {
                break;
            }
            self.timers.pop_front();
            let Some(e) = self.entries.get_mut(&seq) else { continue };
            if e.restored {
                e.restored = false;
                e.state = State::AwaitingDispatch;
                out.push(Expired::Retransmit { id: e.id.clone(), bytes: e.bytes.clone(), attempt: e.retransmissions });
            } else if e.retransmissions >= max_retransmissions {
                let id = e.id.clone();
                self.remove(&id);
                out.push(Expired::GaveUp { id });
            } else {
                e.retransmissions += 1;
                e.state = State::AwaitingDispatch;
                out.push(Expired::Retransmit { id: e.id.clone(), bytes: e.bytes.clone(), attempt: e.retransmissions });
            }
        }
    }
}
