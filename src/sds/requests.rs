//! Which missing dependencies our syncs ask peers for (`repair_request`), and when.
//!
//! spec: sds.repair.backoff — a dependency missing without retrieval hint is asked for by the
//! next sync, then again after `acknowledgement_timeout_ms` × 1, 2, 4, 8 (5 / 10 / 20 / 40 s at
//! the defaults) and every 8 × after that, until it arrives or is declared lost. An *urgent* id
//! (a received message waits for it and misses at most [`MAX_URGENT_UNRESOLVED`] dependencies,
//! as an honest message does: its causal history is short) is asked for
//! [`URGENT_STEADY_REQUESTS`] times once per acknowledgement timeout before it backs off, since its
//! answer may be lost (tests/simulation.rs loses up to 30 %). A sync asks for at
//! most [`MAX_REPAIR_ENTRIES`](crate::wire::MAX_REPAIR_ENTRIES) ids, chosen so that a flood of
//! made-up ids cannot crowd out a real one: urgent ids first, then ids asked for fewer times
//! (round robin), then ids a waiting message depends on before ids nothing waits for (named by
//! a sync), then ids whose waiting message misses fewer dependencies (a real message misses one
//! or two, a hostile one names hundreds), then the oldest (earliest deadline). Found by
//! tests/hostile_sim.rs: asking for the earliest deadlines only, thousands of phantom ids kept a
//! real missing chunk out of every request until it was declared lost (seed 5455); and with
//! round robin ahead of urgency, a real chunk asked for once (its answers lost) waited behind a
//! thousand phantom ids never asked for yet, 64 per sync, past the dependency timeout (seed 419).

use super::incoming::IncomingBuffer;
use super::MessageId;
use crate::collections::FastMap;
use crate::wire::{entry_field_len, HistoryEntry};

/// Doublings of the per-id repair-request interval: at most `acknowledgement_timeout_ms × 2^3`.
pub const MAX_REPAIR_BACKOFF_DOUBLINGS: u32 = 3;
/// A waiting message missing more dependencies than this is suspect (made up to amplify).
pub const MAX_URGENT_UNRESOLVED: u32 = 8;
/// Requests of an urgent id at the steady pace (one per acknowledgement timeout) before backoff.
pub const URGENT_STEADY_REQUESTS: u32 = 4;

/// The interval after the `n`-th request (1-based) of one id, the `n`-th consecutive repair sync,
/// or the `n`-th store lookup of one id (`crate::channel`): `ack × 2^(n−1)`, at most `ack × 2^MAX_REPAIR_BACKOFF_DOUBLINGS`.
pub fn backoff(ack: u64, n: u32) -> u64 {
    ack.saturating_mul(1 << n.saturating_sub(1).min(MAX_REPAIR_BACKOFF_DOUBLINGS))
}

/// A due id: (not urgent, times asked, nothing waits for it, fewest unresolved of its waiters, deadline, id, sender).
type Candidate<'a> = (bool, u32, bool, u32, u64, &'a MessageId, Option<&'a String>);

/// Per missing id: how often we asked for it, and when we may ask again.
#[derive(Debug, Default)]
pub(super) struct RepairRequests {
    asked: FastMap<MessageId, (u32, u64)>,
}

impl RepairRequests {
    /// Up to `max` ids to ask for now (see the module docs for the order), at most `max_bytes`
    /// of encoded entries; each is recorded as asked. Forgets ids no longer missing. Also says
    /// whether an urgent id is among them, and how many due ids `max_bytes` left out.
    pub fn take(&mut self, now: u64, incoming: &IncomingBuffer, max: usize, max_bytes: usize, ack: u64) -> (Vec<HistoryEntry>, bool, usize) {
        if incoming.unhinted_missing() == 0 {
            self.asked.clear();
            return (Vec::new(), false, 0);
        }
        self.asked.retain(|id, _| incoming.is_missing(id));
        let mut due: Vec<Candidate<'_>> = Vec::new();
        let asked = &self.asked;
        incoming.for_each_unhinted(&mut |id, dep, deadline, fewest| {
            let (n, at) = asked.get(id).copied().unwrap_or((0, 0));
            if at <= now {
                let fewest = fewest.unwrap_or(u32::MAX);
                due.push((fewest > MAX_URGENT_UNRESOLVED, n, fewest == u32::MAX, fewest, deadline, id, dep.sender_id.as_ref()));
            }
        });
        // Partial selection first: the candidates may be thousands, the answer is 64.
        let key = |d: &Candidate<'_>| (d.0, d.1, d.2, d.3, d.4, d.5.clone());
        if due.len() > max {
            due.select_nth_unstable_by_key(max, key);
            due.truncate(max);
        }
        due.sort_unstable_by_key(key);
        let mut out = Vec::with_capacity(due.len());
        let (mut bytes, mut any_urgent) = (0usize, false);
        for d in &due {
            let e = HistoryEntry { message_id: d.5.to_string(), retrieval_hint: None, sender_id: d.6.cloned() };
            bytes += entry_field_len(&e);
            if bytes > max_bytes {
                let left_out = due.len() - out.len();
                return (out, any_urgent, left_out);
            }
            let urgent = !d.0;
            any_urgent |= urgent;
            let slot = self.asked.entry(d.5.clone()).or_insert((0, 0));
            slot.0 = slot.0.saturating_add(1);
            let wait = match urgent {
                true if slot.0 <= URGENT_STEADY_REQUESTS => ack,
                true => backoff(ack, slot.0 - URGENT_STEADY_REQUESTS + 1),
                false => backoff(ack, slot.0),
            };
            slot.1 = now.saturating_add(wait);
            out.push(e);
        }
        (out, any_urgent, 0)
    }

    /// When an id missing without hint may next be asked for (`now` if one never was); `None`
    /// when nothing is missing without hint.
    pub fn next_due(&self, now: u64, incoming: &IncomingBuffer) -> Option<u64> {
        let mut next: Option<u64> = None;
        incoming.for_each_unhinted(&mut |id, _, _, _| {
            let at = self.asked.get(id).map_or(now, |a| a.1.max(now));
            next = Some(next.map_or(at, |n| n.min(at)));
        });
        next
    }
}

#[cfg(test)]
mod tests {
    use super::backoff;

    #[test]
    fn backoff_doubles_from_the_ack_timeout_and_stops_doubling() {
        let steps: Vec<u64> = (1..=6).map(|n| backoff(5_000, n)).collect();
        assert_eq!(steps, vec![5_000, 10_000, 20_000, 40_000, 40_000, 40_000]);
        assert_eq!(backoff(u64::MAX, 4), u64::MAX);
    }
}
