//! The SDS state machine for one participant in one channel.
//!
//! The engine decides what happens to each message sent, received or timed out; the state behind
//! those decisions lives in sub-structs that each own theirs: the local log ([`HistoryStore`]), own
//! messages awaiting acknowledgement (`OutgoingBuffer`), received messages waiting for
//! dependencies (`IncomingBuffer`), sync timers (`SyncScheduler`) and the repair responder
//! (`RepairResponder`). The engine itself keeps the lamport clock, the bloom filter, the heads and
//! acknowledgements a sync carries, and our latest message; `crate::wire` writes the bytes.
//!
//! The engine's own code is split by concern: `engine/acks.rs` (what acknowledges what, sync
//! suppression), `engine/evidence.rs` (re-sends on evidence of a loss), `engine/lost.rs`
//! (dependencies given up), `engine/snapshot.rs` (restore of a durable channel); the rest (wrap,
//! receive, deliver, timers, syncs) is here.

mod acks;
mod evidence;
mod lost;
mod plain_peers;
mod snapshot;
mod stale;

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::sync::Arc;

use bytes::Bytes;
use rand::rngs::SmallRng;
use rand::SeedableRng;

use super::history::{causal_refs, HistoryStore, LogEntry, MemoryHistory};
use super::id::{message_id, sync_id, WrapClock};
use super::incoming::IncomingBuffer;
use super::outgoing::{Expired, OutgoingBuffer};
use super::repair::RepairResponder;
use super::requests::RepairRequests;
use super::sync::{earliest, Due, SyncScheduler};
use super::{Delivered, MessageId, ReceiveOutcome, SdsConfig, SdsError, SdsEvent, SdsStats, Wrapped};
use crate::collections::{BoundedSet, FastMap, FastSet};
use crate::wire::{
    fit_entries, BloomFilter, BloomView, HistoryEntry, HistoryEntryRef, MessageKind, RollingBloom, SdsMessage, SdsMessageRef, WireError,
    MAX_CAUSAL_HISTORY_ENTRIES, MAX_PUBLISHED_SDS_BYTES, MAX_REPAIR_ENTRIES,
};

/// Most senders whose latest message is remembered for sync heads.
pub const MAX_TRACKED_SENDERS: usize = 256;
/// Most messages a sync acknowledges explicitly (those received since our previous sync, named
/// in its causal history): one sync acknowledges a whole burst by causal history, instead of
/// needing `possible_acks_threshold` bloom hits before the sender retransmits. Owing this many
/// sends the sync at once (spec: sds.sync.acks), so a sustained stream is acknowledged
/// explicitly every `MAX_SYNC_ACKS` messages whatever its rate: two bloom hits from a window of
/// 5,000–10,000 arrivals cannot keep up with tens of thousands of messages per second (issue
/// #10). 256 entries of 64-hex ids with 32-byte hints and short sender ids are ~28 KB, ~47 KB
/// with the bloom filter (longer ids are truncated by `fit_entries` to [`MAX_PUBLISHED_SDS_BYTES`]).
/// Smaller batches cost more syncs (each carries the 18,752-byte filter); larger ones stall a
/// stream while one sync is built, decoded and its acknowledgements handled: in `benches/e2e.rs`
/// p99 at window 16 was 0.61–0.90 ms with 768, 0.34–0.47 ms with 256 (BENCHMARKS.md).
pub const MAX_SYNC_ACKS: usize = 256;
/// As long as a sync id (`id.rs`): sizes a sync before its id is drawn.
const SYNC_ID_SIZED: &str = "sync-00000000000";
/// Ephemeral message ids remembered to drop network duplicates.
pub const MAX_SEEN_EPHEMERAL: usize = 4_096;
/// Waiting messages remembered as having had a lost dependency reported (one report each).
pub const MAX_LOSS_REPORTED: usize = 4_096;

/// One participant's SDS state for one channel. See the module docs of [`crate::sds`].
pub struct SdsEngine<H: HistoryStore = MemoryHistory> {
    channel_id: String,
    sender_id: String,
    sender_arc: MessageId,
    config: SdsConfig,
    history: H,
    /// spec: sds.bloom.window — what we have received and sent lately (a bounded window).
    bloom: RollingBloom,
    lamport: u64,
    /// Shared with the threads that compute this sender's ids ahead of wrapping (see `wrap_clock`).
    wrap_clock: Arc<WrapClock>,
    now: u64,
    /// spec: sds.sender-order — our previous content message, always carried in the causal
    /// history so that receivers deliver one sender's messages in send order.
    last_own: Option<LogEntry>,
    /// Our latest content message, kept to rebroadcast to a peer whose sync shows it lacks it.
    last_own_bytes: Option<Bytes>,
    last_rebroadcast_at: Option<u64>,
    /// spec: sds.sync.heads — the latest delivered message of each sender (bounded), carried by
    /// sync messages so that a peer who missed a sender's last message learns it exists.
    heads: FastMap<MessageId, LogEntry>,
    /// spec: sds.repair — answers peers' repair requests with the hints we know.
    repair: RepairResponder,
    /// spec: sds.repair.backoff — what our syncs ask for, and when.
    requests: RepairRequests,
    /// spec: sds.lost — waiting messages for which a lost dependency was already reported.
    loss_reported: BoundedSet<MessageId>,
    /// spec: sds.duplicates.stale — per sender, the highest lamport the local log evicted
    /// (bounded by [`MAX_TRACKED_SENDERS`]; see `engine/stale.rs`).
    evicted_marks: FastMap<MessageId, u64>,
    /// spec: sds.ephemeral — ids of ephemeral messages already delivered (bounded FIFO).
    seen_ephemeral: BoundedSet<MessageId>,
    /// spec: sds.bloom.news — content messages still to carry the bloom filter. Peers use our
    /// filter only to acknowledge their messages, so it is news only after we received content:
    /// then the next `possible_acks_threshold` messages carry it (enough bloom hits for an ack).
    bloom_news: u32,
    /// Received since our previous sync and not yet named by a message of ours (bounded by
    /// [`MAX_SYNC_ACKS`]), by id: a received message's causal history is looked up in it (sync
    /// suppression), never the other way round, so receiving costs O(history), not O(owed acks).
    to_ack: FastMap<MessageId, LogEntry>,
    outgoing: OutgoingBuffer,
    /// spec: sds.retransmission.store — the first acknowledgement timer of a message dispatched
    /// with its retrieval hint, in acknowledgement timeouts (1: the plain timing).
    hinted_first_timeouts: u32,
    /// spec: sds.retransmission.evidence — may a message a peer lacks be re-sent now (the
    /// caller's budget has room)? See [`Self::allow_evidence_resend`].
    evidence_resend: bool,
    /// When we last wrapped content, and the smoothed gap between our content messages (`None`
    /// until the second): when our next message is due (spec: sds.retransmission.evidence).
    last_wrap_at: Option<u64>,
    wrap_gap_ms: Option<u64>,
    /// spec: sds.sync.plain-peers — senders retransmitting on the plain timing (see
    /// `engine/plain_peers.rs`).
    plain_peers: plain_peers::PlainPeers,
    incoming: IncomingBuffer,
    sync: SyncScheduler,
    events: VecDeque<SdsEvent>,
    rng: SmallRng,
    stats: SdsStats,
}

impl SdsEngine<MemoryHistory> {
    /// An engine with the in-memory history. `seed` drives sync jitter and sync ids.
    pub fn new(channel_id: &str, sender_id: &str, config: SdsConfig, now: u64, seed: u64) -> Self {
        let history = MemoryHistory::new(config.max_local_history);
        Self::with_history(channel_id, sender_id, config, history, now, seed)
    }
}

impl<H: HistoryStore> SdsEngine<H> {
    /// An engine over a given history store.
    pub fn with_history(channel_id: &str, sender_id: &str, config: SdsConfig, history: H, now: u64, seed: u64) -> Self {
        let lost_memory = config.max_local_history;
        SdsEngine {
            channel_id: channel_id.to_owned(),
            sender_id: sender_id.to_owned(),
            sender_arc: sender_id.into(),
            config,
            history,
            bloom: RollingBloom::new(),
            // spec: sds.lamport — starts at the current time in milliseconds.
            lamport: now,
            wrap_clock: Arc::default(),
            now,
            last_own: None,
            last_own_bytes: None,
            last_rebroadcast_at: None,
            heads: FastMap::default(),
            repair: RepairResponder::default(),
            requests: RepairRequests::default(),
            loss_reported: BoundedSet::new(MAX_LOSS_REPORTED),
            evicted_marks: FastMap::default(),
            seen_ephemeral: BoundedSet::new(MAX_SEEN_EPHEMERAL),
            bloom_news: 0,
            to_ack: FastMap::default(),
            outgoing: OutgoingBuffer::default(),
            hinted_first_timeouts: 1,
            evidence_resend: true,
            last_wrap_at: None,
            plain_peers: plain_peers::PlainPeers::default(),
            wrap_gap_ms: None,
            incoming: IncomingBuffer::new(lost_memory),
            sync: SyncScheduler::default(),
            events: VecDeque::new(),
            rng: SmallRng::seed_from_u64(seed),
            stats: SdsStats::default(),
        }
    }

    /// The channel this engine speaks for.
    pub fn channel_id(&self) -> &str {
        &self.channel_id
    }
    /// Our sender id on this channel.
    pub fn sender_id(&self) -> &str {
        &self.sender_id
    }
    /// The configuration the engine was created with.
    pub fn config(&self) -> &SdsConfig {
        &self.config
    }
    /// The wrap times of this sender's ids: the channel shares this clock with the threads that
    /// prepare its sends, so that ids computed there never collide with ids the engine computes.
    pub fn wrap_clock(&self) -> &Arc<WrapClock> {
        &self.wrap_clock
    }
    /// Counters since the engine was created.
    pub fn stats(&self) -> &SdsStats {
        &self.stats
    }
    /// The current lamport clock.
    pub fn lamport_timestamp(&self) -> u64 {
        self.lamport
    }
    /// The local log (read-only).
    pub fn history(&self) -> &H {
        &self.history
    }
    /// The bloom filter we send (the recent window, see [`RollingBloom`]).
    pub fn bloom(&self) -> &BloomFilter {
        self.bloom.filter()
    }
    /// Own messages awaiting acknowledgement, and their encoded size.
    pub fn outgoing_len(&self) -> (usize, usize) {
        (self.outgoing.len(), self.outgoing.bytes())
    }
    /// True while an own message is awaiting acknowledgement.
    pub fn is_outstanding(&self, id: &str) -> bool {
        self.outgoing.contains(id)
    }
    /// Messages waiting for dependencies, their size, and the number of missing dependencies.
    pub fn incoming_len(&self) -> (usize, usize, usize) {
        (self.incoming.len(), self.incoming.bytes(), self.incoming.missing_len())
    }
    /// True when `id` is a dependency we know we are missing.
    pub fn is_missing(&self, id: &str) -> bool {
        self.incoming.is_missing(id)
    }
    /// Can `n` more content messages be wrapped now without exceeding the outgoing bounds?
    pub fn has_outgoing_room(&self, n: usize) -> bool {
        self.outgoing.len() + n <= self.config.max_outgoing_messages && self.outgoing.bytes() < self.config.max_outgoing_bytes
    }

    /// spec: sds.retransmission.store — the timing where a store serves our messages and every
    /// publication costs: the first retransmission of a message dispatched with its retrieval
    /// hint waits `hinted_first_timeouts` × the acknowledgement timeout (a receiver that lost it
    /// learns its hint from our next messages and fetches it from the store, for free), and
    /// acknowledgement syncs go out `ack_delay_scale` × later (our own content, due meanwhile,
    /// carries the acknowledgement). `(1, 1)`: the plain timing. Applies to later dispatches.
    pub fn set_store_timing(&mut self, hinted_first_timeouts: u32, ack_delay_scale: u32) {
        self.hinted_first_timeouts = hinted_first_timeouts.max(1);
        self.sync.set_ack_delay_scale(ack_delay_scale);
    }

    /// spec: sds.retransmission.evidence — with the store-aware timing, may our newest message be
    /// re-sent as soon as a peer's message shows it lacks it? The channel allows it while nothing
    /// of ours waits for the rate limit (otherwise our queued next message carries its hint soon,
    /// and a re-send would only delay it). Default: allowed.
    pub fn allow_evidence_resend(&mut self, allowed: bool) {
        self.evidence_resend = allowed;
    }

    /// Next event, if any.
    pub fn poll_event(&mut self) -> Option<SdsEvent> {
        self.events.pop_front()
    }

    fn tick(&mut self, now: u64) -> u64 {
        self.now = self.now.max(now);
        self.now
    }

    /// A sync's causal history: the last `causal_history_size` log entries plus the heads of the
    /// most recently active senders, in (lamport, id) order.
    fn sync_history(&self) -> Vec<HistoryEntry> {
        let mut v: Vec<&LogEntry> = Vec::with_capacity(self.config.causal_history_size + self.config.max_sync_heads + self.to_ack.len());
        self.history.for_each_last(self.config.causal_history_size, &mut |e| v.push(e));
        let mut heads: Vec<&LogEntry> = self.heads.values().collect();
        heads.sort_unstable_by(|a, b| (b.lamport_timestamp, &b.message_id).cmp(&(a.lamport_timestamp, &a.message_id)));
        v.extend(heads.into_iter().take(self.config.max_sync_heads));
        v.extend(self.to_ack.values());
        // An id named twice (a head also owed an ack; their lamports may differ) goes once.
        let mut named: FastSet<&str> = FastSet::with_capacity_and_hasher(v.len(), Default::default());
        v.retain(|e| named.insert(&e.message_id));
        v.sort_unstable_by(|a, b| (a.lamport_timestamp, &a.message_id).cmp(&(b.lamport_timestamp, &b.message_id)));
        v.into_iter().map(LogEntry::to_history_entry).collect()
    }

    fn next_lamport(&mut self, now: u64) -> u64 {
        // spec: sds.lamport — max(now, ts + 1) on send.
        self.lamport = now.max(self.lamport.saturating_add(1));
        self.lamport
    }

    fn content_id(&self, now: u64, content: &[u8]) -> MessageId {
        let ns = self.wrap_clock.stamp(now.saturating_mul(1_000_000));
        message_id(self.config.message_id_scheme, &self.sender_id, ns, content)
    }

    /// The message `id` from us on this channel, every other field empty: fill in the rest.
    fn envelope<'a>(&'a self, id: &'a str) -> SdsMessageRef<'a> {
        SdsMessageRef { sender_id: &self.sender_id, message_id: id, channel_id: &self.channel_id, ..Default::default() }
    }

    /// spec: sds.send — wraps one content message: lamport, causal history, bloom filter, id.
    /// The message enters the local log and the outgoing buffer; report its dispatch with
    /// [`Self::on_dispatched`] to start the acknowledgement timer.
    ///
    /// `id` is `None` for the engine to compute it with [`message_id`], or one computed beforehand
    /// the same way (the manager computes it on the sending thread, stamping the engine's
    /// [`Self::wrap_clock`]); an id already in the log or the outgoing buffer is refused.
    pub fn wrap_content(&mut self, now: u64, content: &[u8], id: Option<MessageId>) -> Result<Wrapped, SdsError> {
        if content.is_empty() {
            return Err(SdsError::EmptyContent);
        }
        if !self.has_outgoing_room(1) {
            return Err(SdsError::OutgoingFull { messages: self.outgoing.len(), bytes: self.outgoing.bytes() });
        }
        if let Some(id) = id.as_deref().filter(|id| self.history.contains(id) || self.outgoing.contains(id)) {
            return Err(SdsError::DuplicateId(id.to_owned()));
        }
        let now = self.tick(now);
        let lamport = self.next_lamport(now);
        let id = match id {
            Some(id) => id,
            None => self.content_id(now, content),
        };
        let with_bloom = self.config.always_send_bloom || self.bloom_news > 0;
        self.bloom_news = self.bloom_news.saturating_sub(1);
        let history = causal_refs(&self.history, self.last_own.as_ref(), self.config.causal_history_size);
        let bloom_filter = with_bloom.then(|| self.bloom.as_bytes());
        let message =
            SdsMessageRef { lamport_timestamp: Some(lamport), causal_history: &history, bloom_filter, content: Some(content), ..self.envelope(&id) };
        let bytes = message.encode();
        // What this message names is acknowledged by it: no sync owes those an ack any more.
        if !self.to_ack.is_empty() {
            for h in &history {
                self.to_ack.remove(h.message_id);
            }
        }
        let own = LogEntry { message_id: id.clone(), lamport_timestamp: lamport, sender_id: Some(self.sender_arc.clone()), retrieval_hint: None };
        self.log_insert(own.clone());
        self.note_head(self.sender_arc.clone(), own.clone());
        self.last_own = Some(own);
        self.last_own_bytes = Some(bytes.clone());
        self.outgoing.push(id.clone(), lamport, bytes.clone());
        self.note_wrap(now);
        let idle = (self.config.sync_interval_ms, self.config.idle_sync_rounds);
        self.sync.on_content_sent(now, self.config.acknowledgement_timeout_ms, idle, &mut self.rng);
        if !self.to_ack.is_empty() {
            // This message names only the last entries: a sync still owes the rest their acks.
            self.sync.owe_ack_round(now, self.config.acknowledgement_timeout_ms, &mut self.rng);
        }
        self.stats.content_sent += 1;
        Ok(Wrapped { message_id: id, bytes })
    }

    /// spec: sds.ephemeral — no lamport, history or bloom; never buffered, acked or retransmitted.
    /// `id` as for [`Self::wrap_content`] (`None`: the engine computes it).
    pub fn wrap_ephemeral(&mut self, now: u64, content: &[u8], id: Option<MessageId>) -> Result<Wrapped, SdsError> {
        if content.is_empty() {
            return Err(SdsError::EmptyContent);
        }
        let now = self.tick(now);
        let id = match id {
            Some(id) => id,
            None => self.content_id(now, content),
        };
        let bytes = SdsMessageRef { content: Some(content), ..self.envelope(&id) }.encode();
        self.stats.ephemeral_sent += 1;
        Ok(Wrapped { message_id: id, bytes })
    }

    /// Our content message (first send or a retransmission) was handed to the network.
    /// `retrieval_hint` (e.g. its Waku message hash) is recorded for our causal history.
    /// Returns false for an unknown or already-acknowledged id.
    pub fn on_dispatched(&mut self, now: u64, id: &str, retrieval_hint: Option<Bytes>) -> bool {
        let now = self.tick(now);
        let timeout = self.config.acknowledgement_timeout_ms;
        let first_timeout = match &retrieval_hint {
            Some(_) => timeout.saturating_mul(u64::from(self.hinted_first_timeouts)),
            None => timeout,
        };
        let Some((first, lamport, positions)) = self.outgoing.dispatched(id, now, timeout, first_timeout) else {
            return false;
        };
        if first {
            // spec: sds.bloom.contents — own content messages once dispatched.
            self.bloom.insert_positions(&positions);
            if let Some(h) = &retrieval_hint {
                let entry = HistoryEntry { message_id: id.to_owned(), retrieval_hint: Some(h.clone()), sender_id: Some(self.sender_id.clone()) };
                self.repair.remember(now, entry, &self.config);
            }
        }
        if let Some(h) = retrieval_hint {
            if let Some(own) = self.last_own.as_mut().filter(|o| &*o.message_id == id) {
                own.retrieval_hint = Some(h.clone());
            }
            if let Some(head) = self.heads.get_mut(&*self.sender_arc).filter(|e| &*e.message_id == id) {
                head.retrieval_hint = Some(h.clone());
            }
            self.history.set_retrieval_hint(id, lamport, h);
        }
        true
    }

    /// Stops tracking an own message whose send failed for good. Returns true when it was outstanding.
    ///
    /// A message that was never dispatched (its first dispatch or encryption failed) never left
    /// this node: it is also taken out of the local log, the heads and the rebroadcast slot, so
    /// that later messages do not make receivers wait for it and it is never sent after the
    /// application was told it failed. A message that went out at least once stays in the log.
    pub fn cancel(&mut self, id: &str) -> bool {
        let Some((dispatched_once, lamport)) = self.outgoing.take(id) else { return false };
        if !dispatched_once {
            self.history.remove(id, lamport);
            if self.last_own.as_ref().is_some_and(|o| &*o.message_id == id) {
                self.last_own = None;
                self.last_own_bytes = None;
            }
            if self.heads.get(&*self.sender_arc).is_some_and(|e| &*e.message_id == id) {
                self.heads.remove(&*self.sender_arc);
            }
        }
        true
    }

    /// spec: sds.receive — processes one received SDS message.
    pub fn receive(&mut self, now: u64, bytes: Bytes, retrieval_hint: Option<Bytes>) -> ReceiveOutcome {
        let now = self.tick(now);
        let size = bytes.len();
        let (msg, kind) = match SdsMessage::decode_bytes(bytes) {
            Ok(x) => x,
            Err(e) => {
                self.stats.invalid += 1;
                return ReceiveOutcome::Invalid(e);
            }
        };
        if msg.channel_id != self.channel_id {
            self.stats.wrong_channel += 1;
            log::debug!("channel {}: dropped a message of channel {:?}", self.channel_id, msg.channel_id);
            return ReceiveOutcome::WrongChannel;
        }
        if msg.sender_id.is_empty() {
            // spec: sds.sender-id — nobody's message: it could not be ordered or acknowledged.
            self.stats.invalid += 1;
            return ReceiveOutcome::Invalid(WireError::Invalid("sender_id (empty)"));
        }
        if msg.sender_id == self.sender_id {
            if kind == MessageKind::Content && !self.history.contains(&msg.message_id) && !self.outgoing.contains(&msg.message_id) {
                return self.receive_spoof(now, msg);
            }
            self.stats.echoes += 1;
            return ReceiveOutcome::Echo;
        }
        if kind != MessageKind::Ephemeral {
            let mut learned = Vec::new();
            self.incoming.learn_hints(&msg.causal_history, &mut learned);
            if !learned.is_empty() {
                self.stats.hints_learned += learned.len() as u64;
                self.events.push_back(SdsEvent::Missing(learned));
            }
        }
        match kind {
            MessageKind::Ephemeral => {
                // spec: sds.ephemeral — delivered at most once: the network may duplicate it.
                let id: MessageId = msg.message_id.as_str().into();
                if !self.seen_ephemeral.insert(id) {
                    self.stats.duplicates += 1;
                    return ReceiveOutcome::Duplicate;
                }
                self.stats.ephemeral_received += 1;
                let content = msg.content.unwrap_or_default();
                self.events.push_back(SdsEvent::EphemeralDelivered { sender_id: msg.sender_id, content });
                ReceiveOutcome::Ephemeral
            }
            MessageKind::Sync => {
                self.stats.syncs_received += 1;
                self.suppress_acks(&msg);
                self.review_acks(&msg);
                self.rebroadcast_if_lacking(now, &msg);
                self.answer_repair_request(now, &msg);
                let check = self.incoming.check(&msg.message_id, &self.sender_id, &msg.causal_history, &|id| self.history.contains(id));
                self.note_missing(&check.new_missing, now, false);
                ReceiveOutcome::Sync
            }
            MessageKind::Content => self.receive_content(now, msg, size, retrieval_hint),
        }
    }

    fn receive_content(&mut self, now: u64, msg: SdsMessage, size: usize, hint: Option<Bytes>) -> ReceiveOutcome {
        let id = msg.message_id.as_str();
        if self.history.contains(id) || self.incoming.is_waiting(id) {
            // spec: sds.duplicates — never delivered twice.
            let renewed = self.duplicate_seen(now, id);
            self.note_copy(now, id, &msg.sender_id);
            log::debug!("channel {}: duplicate {id} from {:?} dropped (renewed in our filter: {renewed})", self.channel_id, msg.sender_id);
            return ReceiveOutcome::Duplicate;
        }
        if self.is_stale(&msg) {
            return self.drop_stale(now, &msg);
        }
        self.note_first_arrival(now, id);
        self.review_acks(&msg);
        self.suppress_acks(&msg);
        let check = self.incoming.check(id, &self.sender_id, &msg.causal_history, &|i| self.history.contains(i));
        let id: MessageId = msg.message_id.as_str().into();
        let remember = |e: &mut Self| {
            // A repair candidate from arrival, buffered or not: peers missing the same message
            // can be told its hint even while we wait for its dependencies.
            if let Some(h) = &hint {
                let entry = HistoryEntry { message_id: id.to_string(), retrieval_hint: Some(h.clone()), sender_id: Some(msg.sender_id.clone()) };
                e.repair.remember(now, entry, &e.config);
            }
        };
        if check.unresolved.is_empty() {
            remember(self);
            self.note_to_ack(&id, &msg, &hint);
            self.bloom.insert(&id);
            self.bloom_news = self.config.possible_acks_threshold;
            self.incoming.arrived(&id);
            self.deliver_cascade(now, id, msg, hint);
            self.ack_if_full(now);
            return ReceiveOutcome::Delivered;
        }
        let c = &self.config;
        if !self.incoming.has_room(size, check.new_missing.len(), c.max_incoming_messages, c.max_incoming_bytes, c.max_missing) {
            self.stats.dropped_buffer_full += 1;
            log::warn!("channel {}: dropped {id} from {:?}: the buffer of messages waiting for dependencies is full", self.channel_id, msg.sender_id);
            return ReceiveOutcome::BufferFull;
        }
        remember(self);
        self.note_to_ack(&id, &msg, &hint);
        // spec: sds.bloom.contents — every received content message, buffered ones too.
        self.bloom.insert(&id);
        self.bloom_news = self.config.possible_acks_threshold;
        self.note_missing(&check.new_missing, now, true);
        let deadline = now.saturating_add(self.config.dependency_timeout_ms);
        log::debug!("channel {}: {id} from {:?} buffered, waiting for {} dependencies", self.channel_id, msg.sender_id, check.unresolved.len());
        self.incoming.push(id, msg, hint, size, &check, deadline);
        self.ack_if_full(now);
        ReceiveOutcome::Buffered
    }

    /// spec: sds.echo-spoof — content under our sender id that we never sent (not in our log or
    /// outgoing buffer): someone else's, made up. Dropping it as an echo would make every message
    /// naming it wait for the dependency timeout, so it is recorded as seen (log, bloom filter:
    /// it satisfies dependencies at once) without being delivered as ours, and counted.
    fn receive_spoof(&mut self, now: u64, msg: SdsMessage) -> ReceiveOutcome {
        self.stats.echo_spoofs += 1;
        log::warn!(
            "channel {}: a content message {} carries our sender id but we never sent it: recorded as seen, not delivered",
            self.channel_id,
            msg.message_id
        );
        let id: MessageId = msg.message_id.as_str().into();
        let lamport = msg.lamport_timestamp.unwrap_or(0).min(now.saturating_add(self.config.max_clock_skew_ms));
        let entry = LogEntry { message_id: id.clone(), lamport_timestamp: lamport, sender_id: Some(self.sender_arc.clone()), retrieval_hint: None };
        self.log_insert(entry);
        self.bloom.insert(&id);
        self.release(now, &id);
        ReceiveOutcome::Spoofed
    }

    /// spec: sds.sync.repair — a sync's bloom filter holds every message its sender has; if our
    /// latest message is not in it the peer lacks it (and possibly our messages before it, which
    /// it then finds missing through our causal chain): send it again, at most once per
    /// acknowledgement timeout. Unacknowledged messages are covered by retransmission instead.
    /// A message that has left our own filter's window has left everyone's: not rebroadcast.
    /// (A filter's missing bit is evidence whatever its other bits: no plausibility check here.)
    fn rebroadcast_if_lacking(&mut self, now: u64, msg: &SdsMessage) {
        let (Some(own), Some(bytes)) = (&self.last_own, &self.last_own_bytes) else { return };
        let Some(view) = msg.bloom_filter.as_deref().and_then(BloomView::new) else { return };
        if self.outgoing.contains(&own.message_id) || !self.bloom.contains(&own.message_id) {
            return;
        }
        if view.contains_positions(&crate::wire::bloom::positions(&own.message_id)) {
            return;
        }
        if self.last_rebroadcast_at.is_some_and(|t| now < t.saturating_add(self.config.acknowledgement_timeout_ms)) {
            return;
        }
        self.last_rebroadcast_at = Some(now);
        self.stats.rebroadcasts += 1;
        self.events.push_back(SdsEvent::Rebroadcast { message_id: own.message_id.clone(), bytes: bytes.clone() });
    }

    /// spec: sds.repair — answers a peer's repair request with a sync carrying the hints we know.
    fn answer_repair_request(&mut self, now: u64, msg: &SdsMessage) {
        if let Some(hints) = self.repair.answer(now, msg, &self.config) {
            self.stats.repairs += 1;
            log::debug!("channel {}: answering {}'s repair request with {} hints", self.channel_id, msg.sender_id, hints.len());
            self.send_sync_with(now, hints);
        }
    }

    fn note_head(&mut self, sender: MessageId, entry: LogEntry) {
        match self.heads.get_mut(&sender) {
            Some(h) if h.lamport_timestamp > entry.lamport_timestamp => {}
            Some(h) => *h = entry,
            None => {
                if self.heads.len() >= MAX_TRACKED_SENDERS {
                    // Rare (more senders than tracked): forget the stalest head.
                    let stalest = self.heads.iter().min_by(|a, b| (a.1.lamport_timestamp, a.0).cmp(&(b.1.lamport_timestamp, b.0)));
                    if let Some(k) = stalest.map(|(k, _)| k.clone()) {
                        self.heads.remove(&k);
                    }
                }
                self.heads.insert(sender, entry);
            }
        }
    }

    /// The shared id of a sender we track (no allocation on the hot path), or a new one.
    fn sender_key(&self, sender: &str) -> MessageId {
        match self.heads.get_key_value(sender) {
            Some((k, _)) => k.clone(),
            None => sender.into(),
        }
    }

    /// Delivers `first` and every waiting message it releases, in causal order.
    fn deliver_cascade(&mut self, now: u64, id: MessageId, msg: SdsMessage, hint: Option<Bytes>) {
        let mut ready_ids = Vec::new();
        self.deliver_one(now, id.clone(), msg, hint);
        self.incoming.resolve(&id, &mut ready_ids);
        let mut heap = BinaryHeap::new();
        self.enqueue_ready(&mut heap, &mut ready_ids);
        while let Some(Reverse((_, rid))) = heap.pop() {
            let Some(w) = self.incoming.take(&rid) else { continue };
            self.deliver_one(now, rid.clone(), w.msg, w.hint);
            self.incoming.resolve(&rid, &mut ready_ids);
            self.enqueue_ready(&mut heap, &mut ready_ids);
        }
    }

    fn enqueue_ready(&self, heap: &mut BinaryHeap<Reverse<(u64, MessageId)>>, ready: &mut Vec<MessageId>) {
        for r in ready.drain(..) {
            let ts = self.incoming.lamport_of(&r);
            heap.push(Reverse((ts, r)));
        }
    }

    fn deliver_one(&mut self, now: u64, id: MessageId, msg: SdsMessage, hint: Option<Bytes>) {
        let lamport = msg.lamport_timestamp.unwrap_or(0);
        // spec: sds.lamport — max on delivery; spec: sds.lamport.skew — a lamport beyond `now` plus
        // the allowed skew counts as that much: the message is delivered, our clock not poisoned.
        // The log, heads and causal history order by the bounded value too.
        let bounded = lamport.min(now.saturating_add(self.config.max_clock_skew_ms));
        if bounded < lamport {
            self.stats.lamport_clamped += 1;
            log::debug!(
                "channel {}: message {id} from {:?}: lamport {lamport} is beyond now + skew, counted as {bounded}",
                self.channel_id,
                msg.sender_id
            );
        }
        self.lamport = self.lamport.max(bounded);
        let sender = self.sender_key(&msg.sender_id);
        let entry = LogEntry { message_id: id.clone(), lamport_timestamp: bounded, sender_id: Some(sender.clone()), retrieval_hint: hint.clone() };
        self.note_head(sender, entry.clone());
        self.log_insert(entry);
        self.stats.delivered += 1;
        let c = &self.config;
        let idle = (c.sync_interval_ms, c.idle_sync_rounds);
        // A sync acknowledges up to MAX_SYNC_ACKS deliveries explicitly: one round suffices below that.
        let window = c.causal_history_size.max(MAX_SYNC_ACKS);
        self.sync.on_delivered(now, window, c.possible_acks_threshold, c.acknowledgement_timeout_ms, idle, &mut self.rng);
        self.ack_plain_peer(now, &msg.sender_id);
        self.events.push_back(SdsEvent::Delivered(Delivered {
            message_id: id,
            sender_id: msg.sender_id,
            lamport_timestamp: lamport,
            content: msg.content.unwrap_or_default(),
            retrieval_hint: hint,
        }));
    }

    /// Earliest time at which [`Self::handle_timeout`] has work, if any.
    pub fn next_deadline(&mut self) -> Option<u64> {
        earliest(earliest(self.outgoing.next_deadline(), self.incoming.next_deadline()), self.sync.next_deadline())
    }

    /// Fires every timer due at `now`: retransmissions, give-ups, lost dependencies, forced
    /// deliveries and sync messages. Results are queued as events.
    pub fn handle_timeout(&mut self, now: u64) {
        let now = self.tick(now);
        let mut expired = Vec::new();
        self.outgoing.expire(now, self.config.max_retransmissions, &mut expired);
        for e in expired {
            match e {
                Expired::Retransmit { id, bytes, attempt } => {
                    self.stats.retransmissions += 1;
                    log::debug!("channel {}: {id} unacknowledged: retransmission {attempt}", self.channel_id);
                    self.events.push_back(SdsEvent::Retransmit { message_id: id, bytes, attempt });
                }
                Expired::GaveUp { id } => {
                    self.stats.gave_up += 1;
                    log::debug!(
                        "channel {}: gave up {id}: unacknowledged after {} retransmissions",
                        self.channel_id,
                        self.config.max_retransmissions
                    );
                    self.events.push_back(SdsEvent::GaveUp { message_id: id });
                }
            }
        }
        let (mut lost, mut forced) = (Vec::new(), Vec::new());
        self.incoming.expire(now, &mut lost, &mut forced);
        for dep in lost {
            let id = dep.message_id.clone();
            self.report_lost(dep);
            self.release(now, &id);
        }
        for id in forced {
            self.force(now, &id);
        }
        match self.sync.take_due(now, self.config.sync_interval_ms, &mut self.rng) {
            Due::Sync => self.send_sync(now),
            Due::Repair if self.requests.next_due(now, &self.incoming).is_some_and(|t| t <= now) => self.send_sync(now),
            Due::Repair | Due::No => {}
        }
        let due = self.requests.next_due(now, &self.incoming);
        self.sync.rearm_repair(due, self.config.acknowledgement_timeout_ms, &mut self.rng);
    }

    /// Sends a sync message now (if there is anything to report), outside the schedule: e.g. to
    /// announce state before closing. The sync is queued as [`SdsEvent::SendSync`].
    pub fn sync_now(&mut self, now: u64) {
        let now = self.tick(now);
        self.send_sync(now);
    }

    /// spec: sds.sync — lamport incremented; causal history and bloom; never stored; not sent
    /// when there is nothing to report (empty history).
    fn send_sync(&mut self, now: u64) {
        self.send_sync_with(now, Vec::new());
    }

    /// A sync whose causal history also carries `extra` entries (a repair).
    ///
    /// spec: wire.published-size — the sync fits [`MAX_PUBLISHED_SDS_BYTES`] whatever the ids'
    /// lengths: its own causal history (newest entries first), then the `extra` entries, then the
    /// repair requests, each while it fits; what does not is left out (counted, logged).
    fn send_sync_with(&mut self, now: u64, extra: Vec<HistoryEntry>) {
        let mut history = self.sync_history();
        let base = SdsMessageRef { lamport_timestamp: Some(u64::MAX), bloom_filter: Some(self.bloom.as_bytes()), ..self.envelope(SYNC_ID_SIZED) };
        let mut room = MAX_PUBLISHED_SDS_BYTES.saturating_sub(base.encoded_len());
        // Receivers refuse a history longer than MAX_CAUSAL_HISTORY_ENTRIES: the oldest go first.
        let over = (history.len() + extra.len()).saturating_sub(MAX_CAUSAL_HISTORY_ENTRIES).min(history.len());
        history.drain(..over);
        let left_out = over + fit_entries(&mut history, extra, &mut room);
        if left_out > 0 {
            self.stats.sync_entries_left_out += left_out as u64;
            log::debug!("channel {}: {left_out} entries left out of a sync to fit the size limit", self.channel_id);
        }
        // With nothing delivered yet the log is empty, but while a dependency without hint is
        // missing the sync carries its repair request: a receiver that missed the first chunk of
        // its first message has delivered nothing and would otherwise stay silent until the
        // dependency is lost. (Found by tests/simulation.rs.)
        if history.is_empty() && self.incoming.unhinted_missing() == 0 {
            self.sync.on_sync_sent(now, self.config.acknowledgement_timeout_ms, &mut self.rng);
            return;
        }
        let lamport = self.next_lamport(now);
        let id = sync_id(&mut self.rng);
        debug_assert_eq!(id.len(), SYNC_ID_SIZED.len(), "the sync was sized for another id length");
        // spec: sds.repair — ask for what we miss without a retrieval hint (what is due of it).
        let (repair, urgent, requests_left_out) =
            self.requests.take(now, &self.incoming, MAX_REPAIR_ENTRIES, room, self.config.acknowledgement_timeout_ms);
        self.stats.sync_entries_left_out += requests_left_out as u64;
        if !repair.is_empty() {
            self.sync.on_repair_sent(now, urgent);
            log::debug!("channel {}: sync asks for {} missing messages", self.channel_id, repair.len());
        }
        let refs: Vec<HistoryEntryRef<'_>> = history.iter().map(HistoryEntryRef::from).collect();
        let bloom_filter = Some(self.bloom.as_bytes());
        let message =
            SdsMessageRef { lamport_timestamp: Some(lamport), causal_history: &refs, bloom_filter, repair_request: &repair, ..self.envelope(&id) };
        let bytes = message.encode();
        self.bloom_news = self.bloom_news.saturating_sub(1);
        self.to_ack.clear();
        self.stats.syncs_sent += 1;
        log::debug!("channel {}: sync {id} ({} history entries, {} repair requests)", self.channel_id, refs.len(), repair.len());
        self.sync.on_sync_sent(now, self.config.acknowledgement_timeout_ms, &mut self.rng);
        self.events.push_back(SdsEvent::SendSync { message_id: id, bytes });
    }
}
