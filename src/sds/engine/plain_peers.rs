//! spec: sds.sync.plain-peers — with the store-aware timing (`SdsEngine::set_store_timing`) we
//! acknowledge 2–3 × the ack timeout after a delivery, expecting the sender to wait 6 × before
//! retransmitting. A peer on the plain timing (an older version of this library, a transport
//! without a store) retransmits after 1 ×: without a prompt acknowledgement it re-publishes
//! messages we have, spends its RLN budget on them and then cannot acknowledge ours either
//! (`make bench-wire` with `WIRE_MIXED`, BENCHMARKS.md "Mixed peers").
//!
//! So a copy of a message that reaches us within [`EARLY_COPY_TIMEOUTS`] ack timeouts of its
//! first arrival marks its sender as a plain-timing peer for [`PLAIN_PEER_SYNC_INTERVALS`] sync
//! intervals (renewed by each such copy): its deliveries are acknowledged at the plain delay. A
//! store-aware sender sends such an early copy only on evidence that we lack the message, so the
//! first arrivals recorded are those of messages nobody had named to us (not among our missing
//! dependencies: a store fetch racing with an evidence re-send is not a sign of the plain timing).

use std::collections::VecDeque;

use super::{SdsEngine, MAX_TRACKED_SENDERS};
use crate::collections::FastMap;
use crate::sds::history::HistoryStore;
use crate::sds::MessageId;

/// A copy within this many ack timeouts of the first arrival is a plain-timing retransmission
/// (the plain first retransmission comes 1 × after the dispatch; a store-aware one 6 ×).
pub const EARLY_COPY_TIMEOUTS: u64 = 2;
/// How long (in sync intervals) a sender stays marked as a plain-timing peer after its last
/// early copy.
pub const PLAIN_PEER_SYNC_INTERVALS: u64 = 4;
/// First arrivals remembered (the newest; only while the store-aware timing is in force).
pub const MAX_RECENT_ARRIVALS: usize = 1024;

/// Recent first arrivals and the senders marked as plain-timing peers (both bounded).
#[derive(Debug, Default)]
pub(super) struct PlainPeers {
    arrivals: VecDeque<(u64, MessageId)>,
    arrived_at: FastMap<MessageId, u64>,
    until: FastMap<MessageId, u64>,
}

impl PlainPeers {
    fn note_arrival(&mut self, now: u64, id: &MessageId, window: u64) {
        while let Some((t, old)) = self.arrivals.front() {
            if now.saturating_sub(*t) <= window && self.arrivals.len() < MAX_RECENT_ARRIVALS {
                break;
            }
            if self.arrived_at.get(old) == Some(t) {
                self.arrived_at.remove(old);
            }
            self.arrivals.pop_front();
        }
        self.arrivals.push_back((now, id.clone()));
        self.arrived_at.insert(id.clone(), now);
    }

    fn is_early_copy(&self, now: u64, id: &str, window: u64) -> bool {
        self.arrived_at.get(id).is_some_and(|t| now.saturating_sub(*t) <= window)
    }

    fn mark(&mut self, sender: &str, until: u64) {
        if !self.until.contains_key(sender) && self.until.len() >= MAX_TRACKED_SENDERS {
            let stalest = self.until.iter().min_by_key(|(_, t)| **t).map(|(k, _)| k.clone());
            if let Some(k) = stalest {
                self.until.remove(&k);
            }
        }
        self.until.insert(sender.into(), until);
    }

    fn is_plain(&self, sender: &str, now: u64) -> bool {
        self.until.get(sender).is_some_and(|t| now < *t)
    }
}

impl<H: HistoryStore> SdsEngine<H> {
    fn early_window(&self) -> u64 {
        self.config.acknowledgement_timeout_ms.saturating_mul(EARLY_COPY_TIMEOUTS)
    }

    /// The first arrival of content `id`, recorded while the store-aware timing is in force and
    /// nobody had named the message to us.
    pub(super) fn note_first_arrival(&mut self, now: u64, id: &str) {
        if self.hinted_first_timeouts > 1 && !self.incoming.is_missing(id) {
            let window = self.early_window();
            self.plain_peers.note_arrival(now, &id.into(), window);
        }
    }

    /// A copy of `id` from `sender` arrived: an early one marks the sender as a plain-timing peer.
    pub(super) fn note_copy(&mut self, now: u64, id: &str, sender: &str) {
        if self.hinted_first_timeouts > 1 && self.plain_peers.is_early_copy(now, id, self.early_window()) {
            if !self.plain_peers.is_plain(sender, now) {
                self.stats.plain_peers_seen += 1;
                log::debug!("channel {}: {sender:?} retransmits on the plain timing: acknowledged promptly", self.channel_id);
            }
            let until = now.saturating_add(self.config.sync_interval_ms.saturating_mul(PLAIN_PEER_SYNC_INTERVALS));
            self.plain_peers.mark(sender, until);
        }
    }

    /// A delivery from `sender`: a plain-timing peer is acknowledged at the plain delay.
    pub(super) fn ack_plain_peer(&mut self, now: u64, sender: &str) {
        if self.hinted_first_timeouts > 1 && self.plain_peers.is_plain(sender, now) {
            self.sync.owe_ack_soon(now, self.config.acknowledgement_timeout_ms, &mut self.rng);
        }
    }
}
