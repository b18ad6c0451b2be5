//! One reliable channel, sans-I/O.
//!
//! The runtime feeds it sends, WakuMessages, dispatch outcomes and time; it returns
//! [`ChannelAction`]s: WakuMessages to publish, store retrievals to request, events for the app.
//!
//! ```text
//! send ─► outbox (check, segment, chunk ids) ─► rate limiter ─► SDS wrap ─► encrypt ─► Dispatch
//! WakuMessage ─► marker/topic filter ─► decrypt ─► SDS receive ─► chunk chain ─► reassemble ─► Received
//! ```
//!
//! A message waits for the rate limiter as a [`Queued`] item (a content chunk still unwrapped, or
//! a wrapped message); what the limiter releases becomes an [`Outgoing`] message, the only thing
//! `dispatch` takes.

mod inspect;
mod snapshot;
mod store_timing;

pub use snapshot::{
    Change, ChannelChanges, ChannelSnapshot, ClockBounds, StoredChunk, StoredIncoming, StoredPartialChunk, StoredSend, LAMPORT_RESERVE,
    WRAP_RESERVE_NS,
};
pub use store_timing::{hint_wait_ms, HINT_WAIT_DIVISOR, STORE_ACK_DELAY_SCALE, STORE_FIRST_RETRANSMIT_TIMEOUTS};

use std::collections::VecDeque;
use std::sync::Arc;

use bytes::Bytes;
use rand::rngs::SmallRng;
use rand::SeedableRng;

use super::config::ChannelConfig;
use super::crypto::Encryption;
use super::events::ChannelEvent;
use super::outbox::{Outbox, PreparedSend};
use super::retrieval::Retrievals;
use super::send_state::SendState;
use super::stats::ChannelStats;
use crate::collections::{BoundedSet, FastMap};
use crate::logging::ByteSummary;
use crate::ratelimit::{Admit, Discard, MessageClass, RateLimiter};
use crate::sds::{JournaledHistory, MessageId, ReceiveOutcome, SdsEngine, SdsEvent};
use crate::segmentation::{ChunkOutcome, Reassembler};
use crate::wire::{MessageChunk, MessageHash, WakuMessage, BLOOM_BYTES, MAX_WAKU_MESSAGE_BYTES};

/// What the channel asks its driver to do.
#[derive(Debug, Clone, PartialEq)]
pub enum ChannelAction {
    /// Publish this WakuMessage and report the outcome with [`Channel::on_dispatch_result`].
    Dispatch { token: u64, message: WakuMessage },
    /// Ask the store for these messages (retrieval hints of missing dependencies).
    Retrieve { hashes: Vec<MessageHash> },
    /// Tell the application.
    Event(ChannelEvent),
}

/// Why `send` refused a payload.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    #[error("payload is empty")]
    Empty,
    #[error("payload of {len} bytes exceeds the maximum of {max}")]
    TooLarge { len: usize, max: usize },
    #[error("send queue full: {pending_chunks} chunks / {pending_bytes} bytes pending (limits {max_chunks} / {max_bytes})")]
    QueueFull { pending_chunks: usize, pending_bytes: usize, max_chunks: usize, max_bytes: usize },
    #[error("payload of {len} bytes does not match the {reserved} bytes reserved for it")]
    NotReserved { len: usize, reserved: usize },
    #[error("the send was prepared for another channel")]
    OtherChannel,
    #[error("request id {0} is already in use")]
    DuplicateRequestId(String),
    #[error("segmentation failed: {0}")]
    Segmentation(String),
}

/// A message waiting for the rate limiter.
#[derive(Debug)]
enum Queued {
    /// A content chunk's first dispatch, not yet wrapped: SDS wraps it when the rate limiter
    /// releases it (see `Channel::release_one`), so that the causal history and bloom filter it
    /// carries are those of its dispatch time, not of its send time. Its id is known already.
    Fresh { request: Arc<str>, index: u32, frame: Bytes, id: MessageId },
    /// A message already wrapped (a retransmission, an ephemeral chunk, a sync, a rebroadcast).
    Wrapped(Outgoing),
}

/// A wrapped SDS message, ready to encrypt and dispatch.
#[derive(Debug)]
struct Outgoing {
    kind: Kind,
    bytes: Bytes,
}

/// What an outgoing message is; kept while it is in flight to interpret its dispatch outcome.
#[derive(Debug)]
enum Kind {
    Chunk { request: Arc<str>, index: u32, id: MessageId, retransmission: bool },
    Ephemeral { request: Arc<str>, index: u32 },
    Sync,
    Rebroadcast,
}

impl Kind {
    fn request(&self) -> Option<&Arc<str>> {
        match self {
            Kind::Chunk { request, .. } | Kind::Ephemeral { request, .. } => Some(request),
            Kind::Sync | Kind::Rebroadcast => None,
        }
    }
}

impl Queued {
    /// Bytes accounted in the rate-limit queue: a fresh chunk's wrapped size is estimated (its
    /// frame plus the bloom filter and a generous allowance for ids and causal history).
    fn queued_size(&self) -> usize {
        match self {
            Queued::Fresh { frame, .. } => frame.len() + BLOOM_BYTES + 1_024,
            Queued::Wrapped(o) => o.bytes.len(),
        }
    }
    fn request(&self) -> Option<&Arc<str>> {
        match self {
            Queued::Fresh { request, .. } => Some(request),
            Queued::Wrapped(o) => o.kind.request(),
        }
    }
    /// spec: ratelimit.accounting — what this WakuMessage costs.
    fn class(&self) -> MessageClass {
        match self {
            Queued::Fresh { index, .. } => MessageClass::Chunk { first: *index == 0 },
            Queued::Wrapped(o) => match &o.kind {
                Kind::Chunk { index, retransmission: false, .. } => MessageClass::Chunk { first: *index == 0 },
                Kind::Chunk { index, retransmission: true, .. } => MessageClass::Retransmission { first_chunk: *index == 0 },
                Kind::Ephemeral { index, .. } => MessageClass::Ephemeral { first: *index == 0 },
                // A rebroadcast is best effort, like a sync: dropped rather than queued near the limit.
                Kind::Sync | Kind::Rebroadcast => MessageClass::Sync,
            },
        }
    }
}

/// One reliable channel. See the module docs.
pub struct Channel {
    channel_id: String,
    content_topic: String,
    /// The sending side, shared with the threads that call `send`: the configuration, the
    /// pending counts and the wrap clock (the SDS engine's) live there.
    outbox: Arc<Outbox>,
    sds: SdsEngine<JournaledHistory>,
    reassembler: Reassembler,
    limiter: RateLimiter<Queued>,
    sends: FastMap<Arc<str>, SendState>,
    /// Content chunk id → (request, chunk index).
    chunk_owner: FastMap<MessageId, (Arc<str>, u32)>,
    in_flight: FastMap<u64, Kind>,
    next_token: u64,
    /// Missing dependencies being fetched from the store.
    retrievals: Retrievals,
    encryption: Option<Arc<dyn Encryption>>,
    actions: VecDeque<ChannelAction>,
    rng: SmallRng,
    stats: ChannelStats,
    now: u64,
    /// Waku hashes of our own recent dispatches: their echoes are dropped before decryption.
    own_hashes: BoundedSet<MessageHash>,
    /// A durable channel's record of what changed since its driver last stored it (see
    /// `pipeline/snapshot.rs`); `None` for a `memory` channel.
    journal: Option<Box<snapshot::Journal>>,
    /// The store capability and the content chunks waiting for their predecessor's hint.
    hints: store_timing::HintHold,
}

/// How many of our own dispatch hashes are remembered to drop echoes early (the SDS layer still
/// recognises older echoes by their sender id, after decryption).
pub const OWN_HASH_MEMORY: usize = 4_096;

impl Channel {
    /// A channel. `seed` drives chunk ids and SDS jitter (deterministic in simulations).
    pub fn new(channel_id: &str, content_topic: &str, sender_id: &str, mut config: ChannelConfig, now: u64, seed: u64) -> Self {
        // Configs built in code (not parsed) get the same incoming bounds as parsed ones.
        config.raise_incoming_bounds();
        let history = JournaledHistory::new(config.sds.max_local_history);
        let sds = SdsEngine::with_history(channel_id, sender_id, config.sds.clone(), history, now, seed ^ 0x5d5);
        Channel {
            channel_id: channel_id.to_owned(),
            content_topic: content_topic.to_owned(),
            reassembler: Reassembler::new(config.reassembly.clone()),
            limiter: RateLimiter::new(config.rate_limit.clone()),
            outbox: Outbox::new(config, sender_id, sds.wrap_clock().clone()),
            sds,
            sends: FastMap::default(),
            chunk_owner: FastMap::default(),
            in_flight: FastMap::default(),
            next_token: 1,
            retrievals: Retrievals::default(),
            encryption: None,
            actions: VecDeque::new(),
            rng: SmallRng::seed_from_u64(seed),
            stats: ChannelStats::default(),
            now,
            own_hashes: BoundedSet::new(OWN_HASH_MEMORY),
            journal: None,
            hints: store_timing::HintHold::default(),
        }
    }

    pub fn channel_id(&self) -> &str {
        &self.channel_id
    }
    pub fn content_topic(&self) -> &str {
        &self.content_topic
    }
    pub fn sender_id(&self) -> &str {
        self.sds.sender_id()
    }
    pub fn config(&self) -> &ChannelConfig {
        self.outbox.config()
    }
    /// The sending side, for the threads that call `send` (see `outbox.rs`).
    pub fn outbox(&self) -> &Arc<Outbox> {
        &self.outbox
    }
    /// Chunks and payload bytes accepted by `send` and not yet final.
    pub fn pending(&self) -> (usize, usize) {
        self.outbox.pending()
    }
    /// The SDS engine (read-only), for inspection.
    pub fn sds(&self) -> &SdsEngine<JournaledHistory> {
        &self.sds
    }

    /// Sets (or clears) the encryption hook.
    pub fn set_encryption(&mut self, enc: Option<Arc<dyn Encryption>>) {
        self.encryption = enc;
    }

    /// Next action, if any.
    pub fn poll_action(&mut self) -> Option<ChannelAction> {
        self.actions.pop_front()
    }

    fn tick(&mut self, now: u64) -> u64 {
        self.now = self.now.max(now);
        self.now
    }

    fn emit(&mut self, ev: ChannelEvent) {
        self.actions.push_back(ChannelAction::Event(ev));
    }

    /// The whole send path on one thread: [`Outbox::reserve`] (the one check: empty, too large,
    /// queue full), [`super::Reservation::prepare`], [`Self::send_prepared`]. The manager runs the
    /// same steps, the first two on the caller's thread.
    pub fn send(&mut self, now: u64, request_id: &str, payload: &[u8], ephemeral: bool) -> Result<(), SendError> {
        let now = self.tick(now);
        let reservation = self.outbox.reserve(payload.len())?;
        let prepared = reservation.prepare(now.saturating_mul(1_000_000), request_id, payload, ephemeral, &mut self.rng)?;
        self.send_prepared(now, prepared)
    }

    /// spec: send — takes a send prepared on this channel's outbox and hands its chunks to the
    /// rate limiter in order; SDS wraps each content chunk when it is released (ephemeral chunks,
    /// which carry no causal history or bloom filter, are wrapped at once). Refused only when it
    /// was prepared for another channel or its request id is in use.
    ///
    /// Wrapping at release rather than here fixes an acknowledgement starvation found by
    /// tests/simulation.rs: chunks queued behind the RLN budget carried the causal history and
    /// bloom filter of their send time, and sync messages are never admitted while content is
    /// queued, so a participant draining a long queue acknowledged nothing it received meanwhile:
    /// its peers' messages ran out of retransmissions and failed with SEND_ERROR on a clean network.
    pub fn send_prepared(&mut self, now: u64, prepared: PreparedSend) -> Result<(), SendError> {
        let now = self.tick(now);
        let PreparedSend { request_id: request, ephemeral, chunks, reservation } = prepared;
        if !reservation.is_for(&self.outbox) {
            return Err(SendError::OtherChannel);
        }
        if self.sends.contains_key(&request) {
            return Err(SendError::DuplicateRequestId(request.to_string()));
        }
        let n = chunks.len();
        if let Some(j) = self.journal.as_deref_mut() {
            j.accepted(&request, ephemeral, reservation.bytes(), &chunks);
        }
        let mut state = SendState::new(request.clone(), reservation);
        let mut items = Vec::with_capacity(n);
        for (index, chunk) in (0u32..).zip(chunks) {
            if !ephemeral {
                items.push(Queued::Fresh { request: request.clone(), index, frame: chunk.frame, id: chunk.id });
                continue;
            }
            // Fails only for an empty frame, which segmentation never produces: reported, not a panic.
            let w = self.sds.wrap_ephemeral(now, &chunk.frame, Some(chunk.id)).map_err(|e| SendError::Segmentation(e.to_string()))?;
            let kind = Kind::Ephemeral { request: request.clone(), index };
            items.push(Queued::Wrapped(Outgoing { kind, bytes: w.bytes }));
            state.chunks.push(w.message_id);
        }
        self.sends.insert(request, state);
        for item in items {
            self.offer(now, item);
        }
        self.drain_sds(now);
        Ok(())
    }

    fn offer(&mut self, now: u64, item: Queued) {
        // A fresh chunk may first wait, uncharged, for its predecessor's hint (`pipeline/store_timing.rs`).
        if self.must_hold(now, &item) {
            return self.hold(item);
        }
        self.offer_to_limiter(now, item);
    }

    fn offer_to_limiter(&mut self, now: u64, item: Queued) {
        let class = item.class();
        let size = item.queued_size();
        match self.limiter.offer(now, item, size, class) {
            Admit::Now(item) => self.release_one(now, item),
            Admit::Queued => {}
            Admit::Dropped(item) => self.not_admitted(now, item, "dropped: the RLN budget of this epoch is nearly exhausted"),
            Admit::Full(item) => self.not_admitted(now, item, "rate-limit queue full"),
        }
    }

    fn not_admitted(&mut self, now: u64, item: Queued, why: &str) {
        self.stats.rate_limit_dropped += 1;
        log::debug!("channel {}: rate limiter did not admit a {:?} message: {why}", self.channel_id, item.class());
        match item {
            Queued::Wrapped(Outgoing { kind: Kind::Chunk { id, retransmission: true, .. }, .. }) => {
                // Counts as an attempt: the acknowledgement timer keeps running towards give-up.
                self.sds.on_dispatched(now, &id, None);
            }
            other => {
                if let Some(request) = other.request() {
                    self.fail_send(&request.clone(), why.to_owned());
                }
            }
        }
    }

    /// A message the rate limiter let through: wrapped if still fresh, then dispatched.
    fn release_one(&mut self, now: u64, item: Queued) {
        let out = match item {
            Queued::Fresh { request, index, frame, id } => match self.wrap_fresh(now, &request, index, &frame, id) {
                Some(out) => out,
                None => return,
            },
            Queued::Wrapped(out) => out,
        };
        self.dispatch(now, out);
    }

    /// spec: sds.send — wraps a content chunk released by the rate limiter: it enters the SDS log
    /// and outgoing buffer now, with the current causal history and bloom filter. `None` when its
    /// send is gone or the wrap failed (the send then fails).
    fn wrap_fresh(&mut self, now: u64, request: &Arc<str>, index: u32, frame: &[u8], id: MessageId) -> Option<Outgoing> {
        let total = self.sends.get(request)?.total();
        match self.sds.wrap_content(now, frame, Some(id)) {
            Ok(w) => {
                if let Some(j) = self.journal.as_deref_mut() {
                    j.push(snapshot::Change::ChunkWrapped {
                        request: request.clone(),
                        index,
                        lamport: self.sds.lamport_timestamp(),
                        bytes: w.bytes.clone(),
                    });
                }
                self.chunk_owner.insert(w.message_id.clone(), (request.clone(), index));
                if let Some(s) = self.sends.get_mut(request) {
                    s.chunks.push(w.message_id.clone());
                }
                let kind = Kind::Chunk { request: request.clone(), index, id: w.message_id, retransmission: false };
                Some(Outgoing { kind, bytes: w.bytes })
            }
            Err(e) => {
                // The pending-send bounds keep the outgoing buffer within its own (see config.rs).
                self.fail_send(request, format!("chunk {index} of {total}: {e}"));
                None
            }
        }
    }

    /// spec: encryption.apply + dispatch — encrypts the whole SDS message and builds the WakuMessage.
    fn dispatch(&mut self, now: u64, out: Outgoing) {
        let Outgoing { kind, bytes } = out;
        let payload = match &self.encryption {
            None => bytes,
            Some(enc) => match enc.encrypt(&self.channel_id, &bytes) {
                Ok(c) => Bytes::from(c),
                Err(e) => {
                    // spec: encryption.fail-closed — no plaintext fallback.
                    match kind {
                        Kind::Chunk { request, index, .. } | Kind::Ephemeral { request, index } => {
                            let n = self.sends.get(&request).map_or(0, |s| s.total());
                            self.fail_send(&request, format!("chunk {index} of {n}: encryption failed: {e}"));
                        }
                        Kind::Sync | Kind::Rebroadcast => {
                            self.stats.dispatch_failures += 1;
                            log::warn!("channel {}: a sync message was not sent: encryption failed: {e}", self.channel_id);
                        }
                    }
                    return;
                }
            },
        };
        let message = WakuMessage {
            ephemeral: matches!(kind, Kind::Ephemeral { .. }).then_some(true),
            ..WakuMessage::reliable(&self.content_topic, payload, now)
        };
        log::trace!("channel {}: publishing {}", self.channel_id, ByteSummary(&message.payload));
        match &kind {
            Kind::Chunk { retransmission: true, .. } => self.stats.retransmissions += 1,
            Kind::Chunk { retransmission: false, .. } => {
                self.stats.chunks_sent += 1;
                self.note_unconfirmed(true);
            }
            Kind::Ephemeral { .. } => self.stats.chunks_sent += 1,
            Kind::Sync => self.stats.syncs_sent += 1,
            Kind::Rebroadcast => self.stats.rebroadcasts += 1,
        }
        let token = self.next_token;
        self.next_token += 1;
        self.in_flight.insert(token, kind);
        self.actions.push_back(ChannelAction::Dispatch { token, message });
    }

    /// The messaging layer accepted (`Ok`, with the message hash when known) or failed a dispatch.
    /// Returns false for an unknown or already-reported token.
    pub fn on_dispatch_result(&mut self, now: u64, token: u64, result: Result<Option<MessageHash>, String>) -> bool {
        let now = self.tick(now);
        let Some(kind) = self.in_flight.remove(&token) else { return false };
        if let Ok(Some(h)) = &result {
            self.own_hashes.insert(*h);
        }
        if matches!(kind, Kind::Chunk { retransmission: false, .. }) {
            self.note_unconfirmed(false);
        }
        match (kind, result) {
            (Kind::Chunk { request, id, retransmission, .. }, Ok(hash)) => {
                self.sds.on_dispatched(now, &id, hash.map(|h| Bytes::copy_from_slice(&h)));
                if !retransmission {
                    let mut sent = None;
                    if let Some(s) = self.sends.get_mut(&request) {
                        s.confirmed += 1;
                        if s.all_confirmed() && !s.sent_emitted {
                            s.sent_emitted = true;
                            sent = Some(s.request_id.to_string());
                            if let Some(j) = self.journal.as_deref_mut() {
                                j.push(snapshot::Change::SendSent { request: request.clone() });
                            }
                        }
                    }
                    if let Some(request_id) = sent {
                        self.emit(ChannelEvent::Sent { request_id });
                    }
                }
            }
            (Kind::Chunk { request, index, id, retransmission }, Err(e)) => {
                self.stats.dispatch_failures += 1;
                if retransmission {
                    log::debug!("channel {}: retransmission of {id} not published: {e}", self.channel_id);
                    self.sds.on_dispatched(now, &id, None);
                } else {
                    let n = self.sends.get(&request).map_or(0, |s| s.total());
                    self.fail_send(&request, format!("chunk {index} of {n}: dispatch failed: {e}"));
                }
            }
            (Kind::Ephemeral { request, .. }, Ok(_)) => {
                let done = self.sends.get_mut(&request).is_some_and(|s| {
                    s.confirmed += 1;
                    s.all_confirmed()
                });
                if done {
                    // spec: send.ephemeral — an ephemeral send ends with SENT.
                    self.finish(&request);
                    self.stats.messages_sent += 1;
                    self.emit(ChannelEvent::Sent { request_id: request.to_string() });
                }
            }
            (Kind::Ephemeral { request, .. }, Err(e)) => {
                self.stats.dispatch_failures += 1;
                self.fail_send(&request, format!("dispatch failed: {e}"));
            }
            (Kind::Sync | Kind::Rebroadcast, Ok(_)) => {}
            (Kind::Sync | Kind::Rebroadcast, Err(e)) => {
                self.stats.dispatch_failures += 1;
                log::debug!("channel {}: a sync or rebroadcast was not published: {e}", self.channel_id);
            }
        }
        self.drain_sds(now);
        self.flush_held(now, false);
        self.release(now);
        true
    }

    /// Forgets a finished send; returns its state.
    fn finish(&mut self, request: &str) -> Option<SendState> {
        // Dropping the state (by the caller) gives its reservation back to the outbox.
        let s = self.sends.remove(request)?;
        if let Some(j) = self.journal.as_deref_mut() {
            j.push(snapshot::Change::SendFinished { request: s.request_id.clone() });
        }
        for id in &s.chunks {
            self.chunk_owner.remove(id);
        }
        Some(s)
    }

    /// Final failure of a send: stop retransmitting its chunks, drop its queued ones, tell the app once.
    fn fail_send(&mut self, request: &str, error: String) {
        let Some(s) = self.finish(request) else { return };
        for id in &s.chunks {
            self.sds.cancel(id);
        }
        // Its queued chunks (never wrapped, or cancelled above) are dropped.
        self.limiter.remove_into(&mut |it| it.request().is_some_and(|r| &**r == request), &mut Discard);
        self.stats.send_errors += 1;
        log::warn!("channel {}: send {} given up: {error}", self.channel_id, s.request_id);
        self.emit(ChannelEvent::SendError { request_id: s.request_id.to_string(), error });
    }

    fn acknowledged(&mut self, id: &MessageId) {
        self.stats.acks += 1;
        let Some((request, index)) = self.chunk_owner.remove(id) else { return };
        if let Some(j) = self.journal.as_deref_mut() {
            j.push(snapshot::Change::ChunkAcked { request: request.clone(), index });
        }
        let done = self.sends.get_mut(&request).is_some_and(|s| {
            s.acked += 1;
            s.all_acked()
        });
        if done {
            if let Some(s) = self.finish(&request) {
                let request_id = s.request_id.to_string();
                if !s.sent_emitted {
                    self.emit(ChannelEvent::Sent { request_id: request_id.clone() });
                }
                self.stats.messages_sent += 1;
                self.stats.messages_delivered += 1;
                log::debug!("channel {}: send {request_id} delivered (every chunk acknowledged)", self.channel_id);
                self.emit(ChannelEvent::Delivered { request_id });
            }
        }
    }

    /// A WakuMessage from the network (or a store retrieval).
    pub fn on_message(&mut self, now: u64, msg: &WakuMessage, hash: Option<MessageHash>) {
        let now = self.tick(now);
        log::trace!("channel {}: received {}", self.channel_id, ByteSummary(&msg.payload));
        // spec: wire.marker — foreign traffic is dropped before any decryption or SDS work.
        if !msg.has_spec_marker() || msg.content_topic != self.content_topic {
            self.stats.dropped_foreign += 1;
            // A host bridge that drops `meta` makes every message look foreign: worth a WARN.
            log::warn!(
                "channel {}: dropped a message of {} bytes on {} without the reliable-channel marker in meta (another application's, or a host that does not pass meta on)",
                self.channel_id,
                msg.payload.len(),
                msg.content_topic
            );
            return;
        }
        // spec: channel.ingest-size — nothing larger than the network carries is held (the relay
        // refuses it too; a host transport or store may not).
        let size = prost::Message::encoded_len(msg);
        if size > MAX_WAKU_MESSAGE_BYTES {
            self.stats.dropped_invalid += 1;
            log::warn!("channel {}: dropped a message of {size} bytes, over the {MAX_WAKU_MESSAGE_BYTES}-byte WakuMessage limit", self.channel_id);
            return;
        }
        // Our own message coming back (relay echoes it): no need to decrypt it to know.
        if hash.is_some_and(|h| self.own_hashes.contains(&h)) {
            self.stats.echoes += 1;
            log::debug!("channel {}: dropped the echo of one of our messages", self.channel_id);
            return;
        }
        let plain = match &self.encryption {
            None => msg.payload.clone(),
            Some(enc) => match enc.decrypt(&self.channel_id, &msg.payload) {
                Ok(p) => Bytes::from(p),
                Err(e) => {
                    self.stats.dropped_undecryptable += 1;
                    self.stats.messages_lost += 1;
                    log::warn!("channel {}: dropped a message of {} bytes that could not be decrypted: {e}", self.channel_id, msg.payload.len());
                    self.emit(ChannelEvent::Lost { request_id: None, sender_id: None, error: format!("decryption failed: {e}") });
                    return;
                }
            },
        };
        self.receive_plain(now, plain, hash.map(|h| Bytes::copy_from_slice(&h)));
    }

    /// A decrypted SDS message (from the network, or a durable channel's incoming buffer on restore).
    fn receive_plain(&mut self, now: u64, plain: Bytes, hint: Option<Bytes>) {
        // A durable channel stores what waits for dependencies: the bytes, kept only if it waits.
        let kept = self.journal.is_some().then(|| (plain.clone(), hint.clone()));
        let size = plain.len();
        // spec: sds.retransmission.evidence — re-sending on evidence of a loss only while nothing
        // of ours waits for the budget (`pipeline/store_timing.rs`).
        self.sds.allow_evidence_resend(self.evidence_resend_affordable());
        match self.sds.receive(now, plain, hint) {
            // Duplicates are counted by the SDS engine (see `stats`).
            ReceiveOutcome::Echo => self.stats.echoes += 1,
            ReceiveOutcome::WrongChannel => self.stats.dropped_foreign += 1,
            ReceiveOutcome::Invalid(e) => {
                self.stats.dropped_invalid += 1;
                log::warn!("channel {}: dropped a message of {size} bytes that is not a valid SDS message: {e}", self.channel_id);
            }
            // Logged by the SDS engine.
            ReceiveOutcome::BufferFull => self.stats.dropped_buffer_full += 1,
            ReceiveOutcome::Buffered => {
                if let (Some(j), Some((bytes, hint))) = (self.journal.as_deref_mut(), kept) {
                    j.buffered(now, bytes, hint);
                }
            }
            ReceiveOutcome::Duplicate | ReceiveOutcome::Delivered | ReceiveOutcome::Sync | ReceiveOutcome::Ephemeral | ReceiveOutcome::Spoofed => {}
        }
        self.drain_sds(now);
        self.release(now);
    }

    fn drain_sds(&mut self, now: u64) {
        while let Some(ev) = self.sds.poll_event() {
            match ev {
                SdsEvent::Delivered(d) => {
                    if let Some(j) = self.journal.as_deref_mut() {
                        j.delivered(&d.message_id);
                    }
                    self.on_chunk(now, &d.sender_id, d.content)
                }
                SdsEvent::EphemeralDelivered { sender_id, content } => self.on_chunk(now, &sender_id, content),
                SdsEvent::Acknowledged { message_id } => self.acknowledged(&message_id),
                SdsEvent::PossiblyAcknowledged { message_id, count } => self.journal_count(&message_id, false, count),
                SdsEvent::Missing(deps) => {
                    let hinted = deps.into_iter().filter_map(|d| Some((d.message_id, <MessageHash>::try_from(d.retrieval_hint.as_deref()?).ok()?)));
                    self.retrievals.add(now, hinted.collect());
                }
                SdsEvent::DependencyLost(d) => {
                    self.retrievals.remove(&d.message_id);
                    self.stats.dependencies_lost += 1;
                    self.stats.messages_lost += 1;
                    let error = format!("message {} lost: not received within {} ms", d.message_id, self.config().sds.dependency_timeout_ms);
                    self.emit(ChannelEvent::Lost { request_id: None, sender_id: d.sender_id, error });
                }
                SdsEvent::Retransmit { message_id, bytes, attempt } => match self.chunk_owner.get(&message_id) {
                    Some((request, index)) => {
                        let kind = Kind::Chunk { request: request.clone(), index: *index, id: message_id.clone(), retransmission: true };
                        self.journal_count(&message_id, true, attempt);
                        self.offer(now, Queued::Wrapped(Outgoing { kind, bytes }));
                    }
                    None => {
                        self.sds.cancel(&message_id);
                    }
                },
                SdsEvent::SendSync { bytes, .. } => self.offer(now, Queued::Wrapped(Outgoing { kind: Kind::Sync, bytes })),
                SdsEvent::Rebroadcast { bytes, .. } => self.offer(now, Queued::Wrapped(Outgoing { kind: Kind::Rebroadcast, bytes })),
                SdsEvent::GaveUp { message_id } => {
                    if let Some((request, index)) = self.chunk_owner.get(&message_id).cloned() {
                        let n = self.sends.get(&request).map_or(0, |s| s.total());
                        let max = self.config().sds.max_retransmissions;
                        self.fail_send(&request, format!("chunk {index} of {n} unacknowledged after {max} retransmissions"));
                    }
                }
            }
        }
    }

    /// spec: segmentation.chain + reassembly — a delivered SDS content is one chunk.
    fn on_chunk(&mut self, now: u64, sender_id: &str, content: Bytes) {
        let frame = self.journal.is_some().then(|| content.clone());
        match MessageChunk::decode_bytes(content) {
            Err(e) => {
                self.stats.dropped_invalid += 1;
                log::warn!("channel {}: dropped a message from {sender_id} whose content is not a valid chunk: {e}", self.channel_id);
            }
            Ok(chunk) => match self.reassembler.on_chunk(now, sender_id, chunk) {
                ChunkOutcome::Complete(c) => {
                    if let Some(j) = self.journal.as_deref_mut() {
                        j.partial_done(&c.sender_id, &c.request_id);
                    }
                    self.stats.messages_received += 1;
                    log::debug!("channel {}: received message {} from {} ({} bytes)", self.channel_id, c.request_id, c.sender_id, c.payload.len());
                    self.emit(ChannelEvent::Received { request_id: c.request_id, sender_id: c.sender_id, payload: c.payload });
                }
                ChunkOutcome::Pending => {
                    if let (Some(j), Some(frame)) = (self.journal.as_deref_mut(), frame) {
                        j.partial_chunk(now, sender_id, frame);
                    }
                }
                ChunkOutcome::Discarded(reason) => {
                    self.stats.chunks_discarded += 1;
                    if reason.is_suspect() {
                        log::warn!("channel {}: discarded a chunk from {sender_id}: {reason}", self.channel_id);
                    } else {
                        log::debug!("channel {}: discarded a chunk from {sender_id}: {reason}", self.channel_id);
                    }
                }
            },
        }
        self.drain_lost();
    }

    fn drain_lost(&mut self) {
        while let Some(l) = self.reassembler.poll_lost() {
            if let Some(j) = self.journal.as_deref_mut() {
                j.partial_done(&l.sender_id, &l.request_id);
            }
            self.stats.messages_lost += 1;
            let error = l.reason.to_string();
            log::warn!("channel {}: message {} from {} lost: {error}", self.channel_id, l.request_id, l.sender_id);
            self.emit(ChannelEvent::Lost { request_id: Some(l.request_id), sender_id: Some(l.sender_id), error });
        }
    }

    /// Releases what the rate limiter lets through now, skipping what is no longer wanted.
    fn release(&mut self, now: u64) {
        loop {
            if self.gate_closed(now) {
                break;
            }
            let (sends, sds) = (&self.sends, &self.sds);
            // Unwanted: chunks of a send that ended, retransmissions acknowledged meanwhile.
            let mut wanted = |it: &Queued| match it {
                Queued::Wrapped(Outgoing { kind: Kind::Chunk { request, id, retransmission: true, .. }, .. }) => {
                    sends.contains_key(request) && sds.is_outstanding(id)
                }
                other => other.request().is_none_or(|r| sends.contains_key(r)),
            };
            match self.limiter.next_ready(now, &mut wanted, &mut Discard) {
                Some(item) => self.release_one(now, item),
                None => break,
            }
        }
    }

    /// Earliest time at which [`Self::handle_timeout`] has work.
    pub fn next_deadline(&mut self) -> Option<u64> {
        let now = self.now;
        // While the gate holds the limiter's head, the limiter's "now" would spin: wait for the gate.
        let limiter = if self.gate_closed(now) { None } else { self.limiter.next_deadline(now) };
        let hint = self.hint_deadline(now);
        [self.sds.next_deadline(), self.reassembler.next_deadline(), limiter, self.retrievals.next_deadline(), hint].into_iter().flatten().min()
    }

    /// Fires every timer due at `now`.
    pub fn handle_timeout(&mut self, now: u64) {
        let now = self.tick(now);
        self.sds.handle_timeout(now);
        self.drain_sds(now);
        self.reassembler.handle_timeout(now);
        self.drain_lost();
        self.retry_retrievals(now);
        self.flush_held(now, false);
        self.release(now);
    }

    /// spec: retrieval.backoff — store queries for missing dependencies (see `retrieval.rs`).
    fn retry_retrievals(&mut self, now: u64) {
        let sds = &self.sds;
        let ack = self.outbox.config().sds.acknowledgement_timeout_ms;
        for hashes in self.retrievals.take_due(now, ack, &|id| sds.is_missing(id)) {
            log::debug!("channel {}: store lookup of {} missing messages", self.channel_id, hashes.len());
            self.stats.retrievals_requested += hashes.len() as u64;
            self.actions.push_back(ChannelAction::Retrieve { hashes });
        }
    }
}
