//! Incoming side: received `MessageChunk`s → application messages, one reassembler per channel.
//!
//! Messages are keyed by (SDS sender_id, request_id). SDS hands us each sender's chunks in causal
//! order, so a partial message is one growing buffer plus the id of its last accepted chunk.
//!
//! Nothing on the wire authenticates a chunk: sender ids are not signed, and whoever can encrypt
//! for the channel can send a chunk with another sender's id and a real request id. So the rules
//! below only ever let a chunk change state the chunk itself can vouch for:
//!
//! * spec: segmentation.chain — chunk `k > 0` is accepted only as the direct successor of the last
//!   accepted chunk (same key, index `k`, `previous_chunk_id` equal to that chunk's id, same
//!   `last_chunk_index`, exact size). Anything else is discarded and counted, never buffered.
//! * spec: segmentation.gap — a chunk whose link cannot be verified is discarded *alone*: one that
//!   skips ahead of the next expected chunk, or a later chunk of a message whose first chunk we do
//!   not hold. It never finishes, evicts or changes a partial, is not reported and is not
//!   remembered as finished. An honest one means SDS declared its predecessor lost (SDS reports
//!   that loss itself); the partial then ends by expiry, reported [`LostReason::Expired`]. Ending
//!   it at once, as this module once did, let one forged chunk destroy another sender's message
//!   and discard its real chunks as belonging to a finished one (tests/segmentation.rs
//!   `forged_chunk_never_destroys_a_partial`).
//! * spec: segmentation.bounds — payload bytes and open partials are capped per channel; making
//!   room evicts the oldest partials (by first-chunk time, then arrival) and reports each lost.
//!   A partial also expires `expiry_ms` after its first chunk.
//! * spec: segmentation.once — every finished message (completed, single-chunk ones too, or
//!   reported lost) is remembered in a bounded FIFO ([`FINISHED_KEYS_MEMORY`]): its later chunks,
//!   replays and copies re-wrapped into other SDS messages (which SDS cannot recognise: it dedups
//!   by message id) are discarded, so a message is delivered or reported at most once.
//!
//! What no rule can stop without sender authentication, and tests/hostile_sim.rs therefore
//! excludes: a forged first chunk (or a forged chunk that copies the real predecessor's id)
//! accepted before the real one takes the real one's place; opening many partials evicts others.
//!
//! Loss reports are queued for [`Reassembler::poll_lost`].
//!
//! Costs: a chunk costs one hash lookup and a copy of its payload into its partial's buffer
//! (amortised doubling, capped at the message's maximum size so a buffer never holds more than
//! twice its accounted bytes); a finished message one 64-bit fingerprint. Ordered structures (a
//! `BTreeMap` by first-chunk time) drive every iteration, so outputs never depend on hash order.
//! Nothing panics on any input.

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::hash::BuildHasher;
use std::sync::Arc;

use super::{
    DEFAULT_REASSEMBLY_EXPIRY_MS, DEFAULT_REASSEMBLY_MAX_BYTES, DEFAULT_REASSEMBLY_MAX_MESSAGES, FINISHED_KEYS_MEMORY, MAX_PAYLOAD_BYTES,
    MAX_QUEUED_LOST,
};
use crate::wire::{MessageChunk, MAX_ID_BYTES};

use crate::collections::{BoundedSet, FastMap};

/// (sender_id, request_id).
type Key = (String, String);
/// (first-chunk time, arrival sequence): the age order of partials, unique per partial.
type Age = (u64, u64);

/// Bounds of one channel's reassembly buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReassemblyConfig {
    /// Most payload bytes buffered in open partial messages.
    pub max_bytes: usize,
    /// Most open partial messages.
    pub max_messages: usize,
    /// How long a partial message may stay open after its first chunk, in milliseconds.
    pub expiry_ms: u64,
    /// Largest message accepted, in bytes.
    pub max_payload_bytes: usize,
}

impl Default for ReassemblyConfig {
    fn default() -> Self {
        ReassemblyConfig {
            max_bytes: DEFAULT_REASSEMBLY_MAX_BYTES,
            max_messages: DEFAULT_REASSEMBLY_MAX_MESSAGES,
            expiry_ms: DEFAULT_REASSEMBLY_EXPIRY_MS,
            max_payload_bytes: MAX_PAYLOAD_BYTES,
        }
    }
}

/// A reassembled application message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Completed {
    pub sender_id: String,
    pub request_id: String,
    pub payload: Vec<u8>,
}

/// A message that will never complete.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lost {
    pub sender_id: String,
    pub request_id: String,
    pub reason: LostReason,
}

/// Why a message was given up. Counts are chunks. Only a partial message (opened by its first
/// chunk) is ever given up: a chunk that cannot be linked to one is discarded, never reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LostReason {
    /// Dropped to make room for newer chunks (the buffer's byte or message cap was reached).
    Evicted { received: u64, total: u64 },
    /// Still incomplete `after_ms` after its first chunk (e.g. SDS declared a chunk lost).
    Expired { after_ms: u64, received: u64, total: u64 },
}

impl fmt::Display for LostReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            LostReason::Evicted { received, total } => {
                write!(f, "evicted from the full reassembly buffer with {received} of {total} chunks")
            }
            LostReason::Expired { after_ms, received, total } => {
                write!(f, "reassembly expired after {after_ms} ms with {received} of {total} chunks")
            }
        }
    }
}

/// Why a chunk was discarded (nothing of it is kept).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum DiscardReason {
    /// Breaks a context-free rule of docs/wire-format.md §3 (`chunk_index > last_chunk_index`, chain
    /// field present/absent wrongly, empty `chunk_id`, an id longer than `MAX_ID_BYTES`).
    Malformed,
    /// The message would exceed `max_payload_bytes`.
    TooLarge,
    /// The message could not fit in the reassembly buffer even alone.
    NoRoom,
    /// A first chunk for a message already open.
    DuplicateFirstChunk,
    /// A chunk of a message already completed or reported lost (or a copy of one).
    AlreadyFinished,
    /// A later chunk of a message whose first chunk we do not hold: its link cannot be verified.
    /// Discarded alone; a first chunk arriving later still opens the message.
    MissingFirstChunk,
    /// A chunk already accepted, or an older one (a replay).
    UnexpectedIndex,
    /// `last_chunk_index` differs from the message's first chunk.
    MismatchedLastIndex,
    /// Payload size inconsistent with the sender's chunk size (or empty in a multi-chunk message).
    WrongSize,
    /// `previous_chunk_id` is not the id of the last accepted chunk.
    ForgedChain,
    /// Skips ahead of the next expected chunk: its link cannot be verified (its predecessor was
    /// lost by SDS, or it is forged). Discarded alone; the partial is left as it was.
    Gap,
}

impl fmt::Display for DiscardReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DiscardReason::Malformed => "malformed chunk",
            DiscardReason::TooLarge => "message larger than the maximum payload",
            DiscardReason::NoRoom => "message cannot fit in the reassembly buffer",
            DiscardReason::DuplicateFirstChunk => "duplicate first chunk",
            DiscardReason::AlreadyFinished => "chunk of a message already completed or lost",
            DiscardReason::MissingFirstChunk => "chunk without an accepted first chunk: its link cannot be verified",
            DiscardReason::UnexpectedIndex => "chunk already received (replay)",
            DiscardReason::MismatchedLastIndex => "last_chunk_index differs from the first chunk's",
            DiscardReason::WrongSize => "payload size inconsistent with the chunk size",
            DiscardReason::ForgedChain => "previous_chunk_id does not match the last accepted chunk",
            DiscardReason::Gap => "chunk skips ahead of the next expected one: its link cannot be verified",
        })
    }
}

impl DiscardReason {
    /// Whether an honest, lossy and duplicating network can explain it (`false`: a replay or a
    /// copy, logged at DEBUG) or only a broken or hostile sender (`true`: logged at WARN).
    pub fn is_suspect(self) -> bool {
        !matches!(
            self,
            DiscardReason::AlreadyFinished
                | DiscardReason::UnexpectedIndex
                | DiscardReason::DuplicateFirstChunk
                | DiscardReason::Gap
                | DiscardReason::MissingFirstChunk
        )
    }
}

/// What [`Reassembler::on_chunk`] did with a chunk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChunkOutcome {
    /// The chunk completed a message.
    Complete(Completed),
    /// The chunk was buffered; the message is still incomplete.
    Pending,
    /// The chunk was dropped.
    Discarded(DiscardReason),
}

/// Discarded chunks, by [`DiscardReason`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DiscardCounts {
    pub malformed: u64,
    pub too_large: u64,
    pub no_room: u64,
    pub duplicate_first_chunk: u64,
    pub already_finished: u64,
    pub missing_first_chunk: u64,
    pub unexpected_index: u64,
    pub mismatched_last_index: u64,
    pub wrong_size: u64,
    pub forged_chain: u64,
    pub gap: u64,
}

impl DiscardCounts {
    /// The counter of one reason.
    pub fn get(&self, reason: DiscardReason) -> u64 {
        *self.slot(reason)
    }
    /// All discarded chunks.
    pub fn total(&self) -> u64 {
        self.malformed
            + self.too_large
            + self.no_room
            + self.duplicate_first_chunk
            + self.already_finished
            + self.missing_first_chunk
            + self.unexpected_index
            + self.mismatched_last_index
            + self.wrong_size
            + self.forged_chain
            + self.gap
    }
    fn slot(&self, reason: DiscardReason) -> &u64 {
        match reason {
            DiscardReason::Malformed => &self.malformed,
            DiscardReason::TooLarge => &self.too_large,
            DiscardReason::NoRoom => &self.no_room,
            DiscardReason::DuplicateFirstChunk => &self.duplicate_first_chunk,
            DiscardReason::AlreadyFinished => &self.already_finished,
            DiscardReason::MissingFirstChunk => &self.missing_first_chunk,
            DiscardReason::UnexpectedIndex => &self.unexpected_index,
            DiscardReason::MismatchedLastIndex => &self.mismatched_last_index,
            DiscardReason::WrongSize => &self.wrong_size,
            DiscardReason::ForgedChain => &self.forged_chain,
            DiscardReason::Gap => &self.gap,
        }
    }
    fn bump(&mut self, reason: DiscardReason) {
        let slot = match reason {
            DiscardReason::Malformed => &mut self.malformed,
            DiscardReason::TooLarge => &mut self.too_large,
            DiscardReason::NoRoom => &mut self.no_room,
            DiscardReason::DuplicateFirstChunk => &mut self.duplicate_first_chunk,
            DiscardReason::AlreadyFinished => &mut self.already_finished,
            DiscardReason::MissingFirstChunk => &mut self.missing_first_chunk,
            DiscardReason::UnexpectedIndex => &mut self.unexpected_index,
            DiscardReason::MismatchedLastIndex => &mut self.mismatched_last_index,
            DiscardReason::WrongSize => &mut self.wrong_size,
            DiscardReason::ForgedChain => &mut self.forged_chain,
            DiscardReason::Gap => &mut self.gap,
        };
        *slot = slot.saturating_add(1);
    }
}

/// Messages reported lost, by [`LostReason`] variant.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LostCounts {
    pub evicted: u64,
    pub expired: u64,
}

impl LostCounts {
    /// All messages reported lost.
    pub fn total(&self) -> u64 {
        self.evicted + self.expired
    }
    fn bump(&mut self, reason: &LostReason) {
        let slot = match reason {
            LostReason::Evicted { .. } => &mut self.evicted,
            LostReason::Expired { .. } => &mut self.expired,
        };
        *slot = slot.saturating_add(1);
    }
}

/// Counters of one reassembler.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReassemblyStats {
    /// Messages reassembled (single-chunk ones included).
    pub completed: u64,
    pub discarded: DiscardCounts,
    pub lost: LostCounts,
    /// Loss reports dropped because more than [`MAX_QUEUED_LOST`] were waiting to be polled.
    pub lost_reports_dropped: u64,
}

/// One message being reassembled.
struct Partial {
    age: Age,
    last_index: u32,
    /// Index of the next chunk accepted (= chunks received so far).
    next_index: u32,
    /// The sender's chunk size: chunk 0's payload length.
    chunk_size: usize,
    /// Largest valid last chunk: the chunk size, less what would exceed `max_payload_bytes`.
    last_chunk_max: usize,
    /// Upper bound of the complete message's size, to cap buffer growth.
    max_len: usize,
    last_chunk_id: String,
    payload: Vec<u8>,
}

impl Partial {
    fn total(&self) -> u64 {
        u64::from(self.last_index) + 1
    }
}

/// What to do with chunk `k > 0` of an open partial; decided before any mutation.
enum Verdict {
    Discard(DiscardReason),
    Append { age: Age, len: usize },
    Finish { age: Age },
}

/// Reassembles one channel's received chunks. See the module docs of [`crate::segmentation`].
pub struct Reassembler {
    cfg: ReassemblyConfig,
    /// Latest `now` seen; time never goes backwards.
    now: u64,
    seq: u64,
    partials: FastMap<Arc<Key>, Partial>,
    /// Open partials oldest first; drives eviction and expiry.
    by_age: BTreeMap<Age, Arc<Key>>,
    bytes: usize,
    /// Fingerprints of finished keys (see [`Reassembler::fingerprint`]).
    finished: BoundedSet<u64>,
    /// Seeds the fingerprints; random per reassembler, so peers cannot aim at collisions.
    fingerprints: foldhash::fast::RandomState,
    lost: VecDeque<Lost>,
    stats: ReassemblyStats,
}

impl fmt::Debug for Reassembler {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reassembler")
            .field("cfg", &self.cfg)
            .field("partials", &self.partials.len())
            .field("bytes", &self.bytes)
            .field("queued_lost", &self.lost.len())
            .field("stats", &self.stats)
            .finish()
    }
}

impl Default for Reassembler {
    fn default() -> Self {
        Reassembler::new(ReassemblyConfig::default())
    }
}

impl Reassembler {
    pub fn new(cfg: ReassemblyConfig) -> Self {
        Reassembler {
            cfg,
            now: 0,
            seq: 0,
            partials: FastMap::default(),
            by_age: BTreeMap::new(),
            bytes: 0,
            finished: BoundedSet::new(FINISHED_KEYS_MEMORY),
            fingerprints: foldhash::fast::RandomState::default(),
            lost: VecDeque::new(),
            stats: ReassemblyStats::default(),
        }
    }

    pub fn config(&self) -> &ReassemblyConfig {
        &self.cfg
    }

    /// Payload bytes buffered in open partial messages (never above `max_bytes`).
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Open partial messages.
    pub fn len(&self) -> usize {
        self.partials.len()
    }

    pub fn is_empty(&self) -> bool {
        self.partials.is_empty()
    }

    pub fn stats(&self) -> &ReassemblyStats {
        &self.stats
    }

    /// Processes one chunk received (through SDS) from `sender_id`. Expired partials are given up
    /// first; they and evictions are queued for [`Reassembler::poll_lost`].
    pub fn on_chunk(&mut self, now: u64, sender_id: &str, mut chunk: MessageChunk) -> ChunkOutcome {
        self.advance(now);
        if let Err(reason) = check_structure(sender_id, &chunk) {
            return self.discard(reason);
        }
        if self.finished.contains(&self.fingerprint(sender_id, &chunk.request_id)) {
            return self.discard(DiscardReason::AlreadyFinished);
        }
        let key: Key = (sender_id.to_owned(), std::mem::take(&mut chunk.request_id));
        if chunk.chunk_index == 0 {
            self.on_first(key, chunk)
        } else {
            self.on_later(key, chunk)
        }
    }

    /// Gives up partials whose first chunk is `expiry_ms` old or older.
    pub fn handle_timeout(&mut self, now: u64) {
        self.advance(now);
    }

    /// When the oldest partial expires (call [`Reassembler::handle_timeout`] then).
    pub fn next_deadline(&self) -> Option<u64> {
        self.by_age.keys().next().map(|&(first, _)| first.saturating_add(self.cfg.expiry_ms))
    }

    /// Next loss report, oldest first.
    pub fn poll_lost(&mut self) -> Option<Lost> {
        self.lost.pop_front()
    }

    fn advance(&mut self, now: u64) {
        self.now = self.now.max(now);
        // Partials are opened at non-decreasing times, so age order is deadline order.
        while let Some((&age, _)) = self.by_age.first_key_value() {
            if age.0.saturating_add(self.cfg.expiry_ms) > self.now {
                break;
            }
            if let Some((key, p)) = self.remove(age) {
                let reason = LostReason::Expired { after_ms: self.cfg.expiry_ms, received: u64::from(p.next_index), total: p.total() };
                self.give_up(key, reason);
            }
        }
    }

    /// Chunk 0: a whole single-chunk message, or the opening of a partial.
    fn on_first(&mut self, key: Key, chunk: MessageChunk) -> ChunkOutcome {
        if self.partials.contains_key(&key) {
            return self.discard(DiscardReason::DuplicateFirstChunk);
        }
        let len = chunk.payload.len();
        if chunk.last_chunk_index == 0 {
            // spec: segmentation.single — completes at once, never buffered; the only place an
            // empty payload is valid (a 0-length message).
            if len > self.cfg.max_payload_bytes {
                return self.discard(DiscardReason::TooLarge);
            }
            self.stats.completed = self.stats.completed.saturating_add(1);
            // spec: segmentation.once — a copy in another SDS message is not delivered again.
            self.remember(&key);
            let (sender_id, request_id) = key;
            return ChunkOutcome::Complete(Completed { sender_id, request_id, payload: chunk.payload.to_vec() });
        }
        // spec: segmentation.first-chunk — its length is the sender's chunk size.
        if len == 0 {
            return self.discard(DiscardReason::WrongSize);
        }
        // spec: segmentation.validate — `last_chunk_index` within what the maximum payload and the
        // chunk size allow: the first `last` chunks are full, the last one holds at least a byte.
        let full = u128::from(chunk.last_chunk_index) * len as u128;
        if full >= self.cfg.max_payload_bytes as u128 {
            return self.discard(DiscardReason::TooLarge);
        }
        // `full` is what the partial buffers at most (the last chunk completes it, never waits).
        if full > self.cfg.max_bytes as u128 || self.cfg.max_messages == 0 {
            return self.discard(DiscardReason::NoRoom);
        }
        if !self.make_room(None, len) {
            return self.discard(DiscardReason::NoRoom);
        }
        let age = (self.now, self.seq);
        self.seq = self.seq.wrapping_add(1);
        // `full < max_payload_bytes`, so it fits usize; the last chunk may only fill the rest.
        let full = full as usize;
        let last_chunk_max = len.min(self.cfg.max_payload_bytes - full);
        let max_len = full + last_chunk_max;
        let mut payload = Vec::with_capacity(len);
        payload.extend_from_slice(&chunk.payload);
        let key = Arc::new(key);
        self.by_age.insert(age, key.clone());
        self.partials.insert(
            key,
            Partial {
                age,
                last_index: chunk.last_chunk_index,
                next_index: 1,
                chunk_size: len,
                last_chunk_max,
                max_len,
                last_chunk_id: chunk.chunk_id,
                payload,
            },
        );
        self.bytes += len;
        ChunkOutcome::Pending
    }

    /// Chunk `k > 0`: extends its partial only as the direct successor of the last accepted chunk.
    fn on_later(&mut self, key: Key, chunk: MessageChunk) -> ChunkOutcome {
        let k = chunk.chunk_index;
        let len = chunk.payload.len();
        let Some(p) = self.partials.get(&key) else {
            // spec: segmentation.gap — nothing to link it to: discarded alone, neither reported
            // nor remembered, so a forged one cannot finish the real message before it arrives.
            return self.discard(DiscardReason::MissingFirstChunk);
        };
        let size_ok = if k < p.last_index { len == p.chunk_size } else { (1..=p.chunk_size).contains(&len) };
        let verdict = if chunk.last_chunk_index != p.last_index {
            Verdict::Discard(DiscardReason::MismatchedLastIndex)
        } else if !size_ok {
            Verdict::Discard(DiscardReason::WrongSize)
        } else if k == p.last_index && len > p.last_chunk_max {
            // spec: segmentation.max-size — the whole message stays within the maximum.
            Verdict::Discard(DiscardReason::TooLarge)
        } else if k < p.next_index {
            Verdict::Discard(DiscardReason::UnexpectedIndex)
        } else if k > p.next_index {
            // spec: segmentation.gap — its predecessor is not the chunk we hold, so its link
            // cannot be verified: discarded alone, the partial untouched (it may be forged).
            Verdict::Discard(DiscardReason::Gap)
        } else if chunk.previous_chunk_id != p.last_chunk_id {
            // spec: segmentation.chain — unverifiable linkage MUST be discarded.
            Verdict::Discard(DiscardReason::ForgedChain)
        } else if k == p.last_index {
            Verdict::Finish { age: p.age }
        } else {
            Verdict::Append { age: p.age, len }
        };
        match verdict {
            Verdict::Discard(reason) => self.discard(reason),
            Verdict::Finish { age } => {
                let Some((key, mut p)) = self.remove(age) else {
                    return self.discard(DiscardReason::MissingFirstChunk);
                };
                append(&mut p.payload, &chunk.payload, p.max_len);
                self.stats.completed = self.stats.completed.saturating_add(1);
                self.remember(&key);
                let (sender_id, request_id) = Arc::try_unwrap(key).unwrap_or_else(|k| (*k).clone());
                ChunkOutcome::Complete(Completed { sender_id, request_id, payload: p.payload })
            }
            Verdict::Append { age, len } => {
                // spec: segmentation.bounds — own bytes + len <= last * chunk size <= max_bytes
                // (checked when the partial opened), so evicting others always makes room.
                if !self.make_room(Some(age), len) {
                    return self.discard(DiscardReason::NoRoom);
                }
                let Some(p) = self.partials.get_mut(&key) else {
                    return self.discard(DiscardReason::NoRoom);
                };
                append(&mut p.payload, &chunk.payload, p.max_len);
                p.next_index += 1;
                p.last_chunk_id = chunk.chunk_id;
                self.bytes += len;
                ChunkOutcome::Pending
            }
        }
    }

    /// spec: segmentation.bounds — evicts the oldest partials other than `own` until `add` more
    /// bytes fit (and, for a new partial, one more message). False if even that cannot help.
    fn make_room(&mut self, own: Option<Age>, add: usize) -> bool {
        loop {
            let count_ok = own.is_some() || self.partials.len() < self.cfg.max_messages;
            let bytes_ok = self.bytes.saturating_add(add) <= self.cfg.max_bytes;
            if count_ok && bytes_ok {
                return true;
            }
            let Some(victim) = self.by_age.keys().copied().find(|&age| Some(age) != own) else {
                return false;
            };
            if let Some((key, p)) = self.remove(victim) {
                let reason = LostReason::Evicted { received: u64::from(p.next_index), total: p.total() };
                self.give_up(key, reason);
            }
        }
    }

    /// Removes an open partial, releasing its bytes.
    fn remove(&mut self, age: Age) -> Option<(Arc<Key>, Partial)> {
        let key = self.by_age.remove(&age)?;
        let p = self.partials.remove(&key)?;
        self.bytes -= p.payload.len();
        Some((key, p))
    }

    /// Reports a message lost and remembers it as finished.
    fn give_up(&mut self, key: Arc<Key>, reason: LostReason) {
        self.stats.lost.bump(&reason);
        if self.lost.len() >= MAX_QUEUED_LOST {
            self.lost.pop_front();
            self.stats.lost_reports_dropped = self.stats.lost_reports_dropped.saturating_add(1);
        }
        self.remember(&key);
        self.lost.push_back(Lost { sender_id: key.0.clone(), request_id: key.1.clone(), reason });
    }

    /// Adds a key to the bounded FIFO memory of finished messages.
    fn remember(&mut self, key: &Key) {
        self.finished.insert(self.fingerprint(&key.0, &key.1));
    }

    /// A key's 64-bit fingerprint, for the memory of finished messages: no allocation per message,
    /// 8 bytes per key remembered. Seeded at random per reassembler, so peers cannot choose
    /// colliding keys; an accidental collision (probability about [`FINISHED_KEYS_MEMORY`] / 2^64
    /// per message) would discard a message as already finished.
    fn fingerprint(&self, sender_id: &str, request_id: &str) -> u64 {
        self.fingerprints.hash_one((sender_id, request_id))
    }

    fn discard(&mut self, reason: DiscardReason) -> ChunkOutcome {
        self.stats.discarded.bump(reason);
        ChunkOutcome::Discarded(reason)
    }
}

/// The context-free rules `MessageChunk::decode_bytes` checks, again: a chunk may be built in code.
fn check_structure(sender_id: &str, c: &MessageChunk) -> Result<(), DiscardReason> {
    let ids_ok = !c.chunk_id.is_empty()
        && c.chunk_id.len() <= MAX_ID_BYTES
        && c.previous_chunk_id.len() <= MAX_ID_BYTES
        && c.request_id.len() <= MAX_ID_BYTES
        && sender_id.len() <= MAX_ID_BYTES;
    let chain_ok = (c.chunk_index == 0) == c.previous_chunk_id.is_empty();
    if ids_ok && chain_ok && c.chunk_index <= c.last_chunk_index {
        Ok(())
    } else {
        Err(DiscardReason::Malformed)
    }
}

/// Appends with amortised doubling, but never reserves beyond the message's maximum size.
fn append(buf: &mut Vec<u8>, data: &[u8], max_len: usize) {
    let need = buf.len().saturating_add(data.len());
    if need > buf.capacity() {
        let target = buf.capacity().saturating_mul(2).min(max_len).max(need);
        buf.reserve_exact(target - buf.len());
    }
    buf.extend_from_slice(data);
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn chunk(id: &str, prev: &str, k: u32, last: u32, rid: &str, payload: &[u8]) -> MessageChunk {
        MessageChunk {
            chunk_id: id.into(),
            previous_chunk_id: prev.into(),
            chunk_index: k,
            last_chunk_index: last,
            request_id: rid.into(),
            payload: Bytes::copy_from_slice(payload),
        }
    }

    #[test]
    fn buffer_capacity_is_capped_at_message_size() {
        let mut r = Reassembler::default();
        let data = [7u8; 100];
        assert_eq!(r.on_chunk(0, "s", chunk("a", "", 0, 2, "r", &data)), ChunkOutcome::Pending);
        assert_eq!(r.on_chunk(0, "s", chunk("b", "a", 1, 2, "r", &data)), ChunkOutcome::Pending);
        let p = r.partials.get(&("s".to_string(), "r".to_string())).unwrap();
        assert!(p.payload.capacity() <= 300);
        assert_eq!(r.bytes(), 200);
        match r.on_chunk(0, "s", chunk("c", "b", 2, 2, "r", &data[..50])) {
            ChunkOutcome::Complete(c) => {
                assert_eq!(c.payload.len(), 250);
                assert!(c.payload.capacity() <= 300);
            }
            o => panic!("{o:?}"),
        }
        assert_eq!(r.bytes(), 0);
        assert!(r.finished.contains(&r.fingerprint("s", "r")));
    }

    #[test]
    fn finished_memory_is_bounded() {
        let mut r = Reassembler::default();
        for i in 0..(FINISHED_KEYS_MEMORY + 10) {
            assert!(matches!(r.on_chunk(0, "s", chunk("x", "", 0, 0, &format!("r{i}"), b"z")), ChunkOutcome::Complete(_)));
        }
        assert_eq!(r.finished.len(), FINISHED_KEYS_MEMORY);
        // The oldest keys are forgotten, the newest still discard their copies.
        assert!(matches!(r.on_chunk(0, "s", chunk("x", "", 0, 0, "r0", b"z")), ChunkOutcome::Complete(_)));
        let last = format!("r{}", FINISHED_KEYS_MEMORY + 9);
        assert_eq!(r.on_chunk(0, "s", chunk("y", "", 0, 0, &last, b"z")), ChunkOutcome::Discarded(DiscardReason::AlreadyFinished));
    }

    #[test]
    fn unlinked_chunks_are_not_remembered() {
        let mut r = Reassembler::default();
        for i in 0..(FINISHED_KEYS_MEMORY + 10) {
            let rid = format!("r{i}");
            assert_eq!(r.on_chunk(0, "s", chunk("x", "w", 1, 1, &rid, b"z")), ChunkOutcome::Discarded(DiscardReason::MissingFirstChunk));
        }
        assert_eq!(r.finished.len(), 0);
        assert!(r.poll_lost().is_none());
    }

    #[test]
    fn lost_queue_is_bounded() {
        // One partial at a time: each new first chunk evicts the previous partial.
        let mut r = Reassembler::new(ReassemblyConfig { max_messages: 1, ..ReassemblyConfig::default() });
        for i in 0..(MAX_QUEUED_LOST + 4) {
            assert_eq!(r.on_chunk(0, "s", chunk("x", "", 0, 1, &format!("r{i}"), b"z")), ChunkOutcome::Pending);
        }
        assert_eq!(r.lost.len(), MAX_QUEUED_LOST);
        assert_eq!(r.stats().lost_reports_dropped, 3);
        assert_eq!(r.poll_lost().unwrap().request_id, "r3");
    }
}
