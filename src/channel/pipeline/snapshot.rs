//! A durable channel's state as plain data (issue #11): what changed since the driver last took
//! it ([`ChannelChanges`], from [`Channel::take_changes`]) and what a restart restores
//! ([`ChannelSnapshot`], given to [`Channel::restore`]). No I/O here: the storage layer turns the
//! changes into rows (one per entry, never a growing blob) and reads the snapshot back.
//!
//! What is stored: the SDS log (in insertion order), every send not yet final (its chunks' frames
//! until wrapped, their SDS bytes until acknowledged, whether SENT was emitted), messages waiting
//! for dependencies (their bytes), partial incoming messages (one row per chunk), the RLN usage
//! of the current epoch, and reserved upper bounds of the lamport clock and the message-id wrap
//! clock. Derived state (bloom filter, heads, indexes, timers) is rebuilt by the restore.

use std::sync::Arc;

use bytes::Bytes;

use super::{Channel, Kind, Outgoing, Queued};
use crate::channel::outbox::PreparedChunk;
use crate::channel::send_state::SendState;
use crate::collections::FastSet;
use crate::sds::{LogChange, LogEntry, MessageId};
use crate::wire::{MessageChunk, SdsMessage};

/// Lamport values reserved ahead per store of the bound: the bound is written again only after
/// the clock passed it (about every second of a clock that follows the time in ms). A restart
/// continues from the bound, up to this much ahead of the time: small, so that a process
/// restarted again and again does not run its clock towards the peers' `maxClockSkewMs`.
pub const LAMPORT_RESERVE: u64 = 1_000;
/// Wrap-clock nanoseconds reserved ahead per store of the bound (1 s).
pub const WRAP_RESERVE_NS: u64 = 1_000_000_000;

/// Upper bounds of the clocks: every lamport timestamp and wrap time handed out is below them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ClockBounds {
    pub lamport: u64,
    pub wrap_ns: u64,
}

/// One change of a durable channel's state besides its log, in the order it happened.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// A send was accepted: its chunks (SDS id and `MessageChunk` frame) in order.
    SendAccepted { request: Arc<str>, ephemeral: bool, bytes: usize, chunks: Vec<(MessageId, Bytes)> },
    /// A content chunk was wrapped: its SDS bytes (sent again until acknowledged); the frame is
    /// no longer needed.
    ChunkWrapped { request: Arc<str>, index: u32, lamport: u64, bytes: Bytes },
    /// A content chunk was acknowledged: its bytes are no longer needed.
    ChunkAcked { request: Arc<str>, index: u32 },
    /// A content chunk's count of retransmissions (an ack timeout passed in flight; the re-send
    /// after a restart does not count): kept across restarts, so that a process restarted again
    /// and again still gives the chunk up.
    ChunkRetransmitted { request: Arc<str>, index: u32, count: u32 },
    /// A content chunk's count of bloom filter hits (possible acknowledgements).
    ChunkPossiblyAcked { request: Arc<str>, index: u32, count: u32 },
    /// SENT was emitted for the send.
    SendSent { request: Arc<str> },
    /// The send is final (its final event is in the same batch): every row of it goes.
    SendFinished { request: Arc<str> },
    /// A received message waits for dependencies: its (decrypted) SDS bytes.
    Buffered { id: MessageId, at: u64, bytes: Bytes, hint: Option<Bytes> },
    /// A waiting message was delivered.
    Unbuffered { id: MessageId },
    /// A chunk of a partial incoming message (not the one completing it).
    PartialChunk { sender: Arc<str>, request: Arc<str>, index: u32, at: u64, frame: Bytes },
    /// A partial message completed or was reported lost: its chunks go.
    PartialDone { sender: Arc<str>, request: Arc<str> },
}

/// What changed in a durable channel since the previous [`Channel::take_changes`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ChannelChanges {
    pub log: Vec<LogChange>,
    pub changes: Vec<Change>,
    /// New clock bounds to store (the clocks reached the stored ones).
    pub clocks: Option<ClockBounds>,
    /// The RLN usage (epoch, used), when it changed.
    pub rln: Option<(u64, u32)>,
}

impl ChannelChanges {
    /// Nothing to store.
    pub fn is_empty(&self) -> bool {
        self.log.is_empty() && self.changes.is_empty() && self.clocks.is_none() && self.rln.is_none()
    }
}

/// A stored chunk of a send not yet final.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredChunk {
    pub id: MessageId,
    /// The frame, until the chunk is wrapped.
    pub frame: Option<Bytes>,
    /// (lamport, SDS bytes) once wrapped, until acknowledged.
    pub wrapped: Option<(u64, Bytes)>,
    pub acked: bool,
    /// Retransmissions so far (not counting re-sends after restarts).
    pub retransmissions: u32,
    /// Bloom filter hits so far.
    pub possible_acks: u32,
}

/// A stored send not yet final.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredSend {
    pub request_id: String,
    pub ephemeral: bool,
    /// Payload bytes (its room in the pending bounds).
    pub bytes: usize,
    /// SENT was emitted.
    pub sent: bool,
    pub chunks: Vec<StoredChunk>,
}

/// A stored message waiting for dependencies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredIncoming {
    pub bytes: Bytes,
    pub hint: Option<Bytes>,
}

/// A stored chunk of a partial incoming message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredPartialChunk {
    pub sender_id: String,
    /// When it arrived (ms): the partial's expiry counts from its first chunk.
    pub at: u64,
    pub frame: Bytes,
}

/// Everything stored about a durable channel, in the order it was stored.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChannelSnapshot {
    pub clocks: Option<ClockBounds>,
    pub rln: Option<(u64, u32)>,
    pub log: Vec<LogEntry>,
    pub sends: Vec<StoredSend>,
    pub incoming: Vec<StoredIncoming>,
    pub partials: Vec<StoredPartialChunk>,
}

/// The channel's record of changes (durable channels only).
#[derive(Debug, Default)]
pub(super) struct Journal {
    changes: Vec<Change>,
    /// Ids of the waiting messages stored: a delivery deletes a row only for these.
    buffered: FastSet<MessageId>,
    /// (sender, request) of the partials stored.
    partials: FastSet<(Arc<str>, Arc<str>)>,
    stored_clocks: ClockBounds,
    stored_rln: (u64, u32),
}

impl Journal {
    pub fn push(&mut self, c: Change) {
        self.changes.push(c);
    }

    pub fn accepted(&mut self, request: &Arc<str>, ephemeral: bool, bytes: usize, chunks: &[PreparedChunk]) {
        let chunks = chunks.iter().map(|c| (c.id.clone(), c.frame.clone())).collect();
        self.changes.push(Change::SendAccepted { request: request.clone(), ephemeral, bytes, chunks });
    }

    pub fn buffered(&mut self, at: u64, bytes: Bytes, hint: Option<Bytes>) {
        // The id is read again only for a message that waits (rare): the engine does not return it.
        let Ok((msg, _)) = SdsMessage::decode_bytes(bytes.clone()) else { return };
        let id: MessageId = msg.message_id.into();
        self.buffered.insert(id.clone());
        self.changes.push(Change::Buffered { id, at, bytes, hint });
    }

    pub fn delivered(&mut self, id: &MessageId) {
        if !self.buffered.is_empty() && self.buffered.remove(id) {
            self.changes.push(Change::Unbuffered { id: id.clone() });
        }
    }

    pub fn partial_chunk(&mut self, at: u64, sender: &str, frame: Bytes) {
        let Ok(c) = MessageChunk::decode_bytes(frame.clone()) else { return };
        let (sender, request): (Arc<str>, Arc<str>) = (sender.into(), c.request_id.into());
        self.partials.insert((sender.clone(), request.clone()));
        self.changes.push(Change::PartialChunk { sender, request, index: c.chunk_index, at, frame });
    }

    pub fn partial_done(&mut self, sender: &str, request: &str) {
        if self.partials.is_empty() {
            return;
        }
        let key: (Arc<str>, Arc<str>) = (sender.into(), request.into());
        if self.partials.remove(&key) {
            self.changes.push(Change::PartialDone { sender: key.0, request: key.1 });
        }
    }
}

impl Channel {
    /// True for a durable channel (one restored with [`Self::restore`]).
    pub fn is_durable(&self) -> bool {
        self.journal.is_some()
    }

    /// What changed since the previous call, for a durable channel (`None` for a `memory` one).
    /// The driver stores it in the same transaction as the events and publications it produced
    /// alongside (the write-ahead rule).
    pub fn take_changes(&mut self) -> Option<ChannelChanges> {
        let j = self.journal.as_deref_mut()?;
        let mut out = ChannelChanges { log: self.sds.history_mut().take_journal(), changes: std::mem::take(&mut j.changes), ..Default::default() };
        let (lamport, wrap_ns) = (self.sds.lamport_timestamp(), self.sds.wrap_clock().last());
        if lamport >= j.stored_clocks.lamport || wrap_ns >= j.stored_clocks.wrap_ns {
            let b = ClockBounds { lamport: lamport.saturating_add(LAMPORT_RESERVE), wrap_ns: wrap_ns.saturating_add(WRAP_RESERVE_NS) };
            j.stored_clocks = b;
            out.clocks = Some(b);
        }
        let rln = self.limiter.usage();
        if rln != j.stored_rln {
            j.stored_rln = rln;
            out.rln = Some(rln);
        }
        Some(out)
    }

    /// Makes this (freshly created) channel durable: restores `snap` (empty for a channel never
    /// stored) and starts recording changes. Stored sends resume: acknowledged chunks count,
    /// wrapped ones are sent again (same bytes) until acknowledged, the rest wait for the rate
    /// limiter as before; partial incoming messages and messages waiting for dependencies are
    /// received again. Call before anything else happened to the channel.
    pub fn restore(&mut self, now: u64, snap: ChannelSnapshot) {
        let now = self.tick(now);
        let ChannelSnapshot { clocks, rln, log, sends, incoming, partials } = snap;
        self.sds.restore_log(log);
        if let Some(c) = clocks {
            self.sds.restore_clocks(c.lamport, c.wrap_ns);
        }
        if let Some((epoch, used)) = rln {
            self.limiter.restore_usage(epoch, used);
        }
        // From here on every change is recorded: what the restore itself changes (chunks
        // wrapped now, partials and waiting messages received again) is stored again.
        let stored_clocks = clocks.unwrap_or_default();
        let stored_rln = rln.unwrap_or_default();
        self.journal = Some(Box::new(Journal { stored_clocks, stored_rln, ..Default::default() }));
        self.sds.history_mut().start_journal();
        for s in sends {
            self.restore_send(now, s);
        }
        // spec: sds.retransmission — restored chunks are re-sent spread over one ack timeout.
        self.sds.schedule_restored(now);
        for p in partials {
            self.on_chunk(p.at, &p.sender_id, p.frame);
        }
        for i in incoming {
            self.receive_plain(now, i.bytes, i.hint);
        }
        self.drain_sds(now);
        self.release(now);
    }

    /// Records a chunk's new count of retransmissions (`retransmission`) or of bloom filter hits,
    /// for a durable channel.
    pub(super) fn journal_count(&mut self, id: &MessageId, retransmission: bool, count: u32) {
        let Some(j) = self.journal.as_deref_mut() else { return };
        let Some((request, index)) = self.chunk_owner.get(id) else { return };
        let (request, index) = (request.clone(), *index);
        j.push(if retransmission {
            Change::ChunkRetransmitted { request, index, count }
        } else {
            Change::ChunkPossiblyAcked { request, index, count }
        });
    }

    fn restore_send(&mut self, now: u64, s: StoredSend) {
        let request: Arc<str> = s.request_id.into();
        if self.sends.contains_key(&request) {
            return;
        }
        let reservation = self.outbox.reserve_restored(s.chunks.len(), s.bytes);
        let mut state = SendState::new(request.clone(), reservation);
        state.sent_emitted = s.sent;
        let mut items = Vec::with_capacity(s.chunks.len());
        let mut damaged = false;
        for (index, c) in (0u32..).zip(s.chunks) {
            let request = request.clone();
            if s.ephemeral {
                // Never acknowledged: every chunk is sent again (receivers drop what they saw).
                match c.frame.map(|f| self.sds.wrap_ephemeral(now, &f, Some(c.id))) {
                    Some(Ok(w)) => {
                        state.chunks.push(w.message_id);
                        items.push(Queued::Wrapped(Outgoing { kind: Kind::Ephemeral { request, index }, bytes: w.bytes }));
                    }
                    _ => damaged = true,
                }
                continue;
            }
            match (c.acked, c.wrapped, c.frame) {
                (true, _, _) => {
                    state.chunks.push(c.id);
                    state.acked += 1;
                    state.confirmed += 1;
                }
                (false, Some((lamport, bytes)), _) => {
                    state.chunks.push(c.id.clone());
                    state.confirmed += 1;
                    // Re-sent when the SDS engine schedules it (see `restore`), with the counts
                    // it had: retransmissions go on counting across restarts.
                    self.sds.restore_outgoing(c.id.clone(), lamport, bytes, c.retransmissions, c.possible_acks);
                    self.chunk_owner.insert(c.id, (request, index));
                }
                (false, None, Some(frame)) => items.push(Queued::Fresh { request, index, frame, id: c.id }),
                (false, None, None) => damaged = true,
            }
        }
        let sent_now = !s.ephemeral && state.all_confirmed() && !state.sent_emitted;
        self.sends.insert(request.clone(), state);
        if damaged {
            self.fail_send(&request, "its stored state is damaged".into());
            return;
        }
        if sent_now {
            if let Some(st) = self.sends.get_mut(&request) {
                st.sent_emitted = true;
            }
            if let Some(j) = self.journal.as_deref_mut() {
                j.push(Change::SendSent { request: request.clone() });
            }
            self.emit(crate::channel::ChannelEvent::Sent { request_id: request.to_string() });
        }
        for item in items {
            self.offer(now, item);
        }
    }
}
