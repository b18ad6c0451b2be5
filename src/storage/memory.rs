//! [`MemoryStore`]: the tables of `sqlite.rs` as plain maps. For tests: the crash simulation
//! clones it at a commit boundary and rebuilds a manager's state from the clone, and
//! `tests/storage.rs` checks that the same batches leave it and a [`super::SqliteStore`] in the
//! same loaded state.

use std::collections::BTreeMap;

use super::{event_columns, event_from_columns, Batch, ChannelKey, ChannelRecord, StorageError, Store, StoredEvent};
use super::{ChannelChanges, ChannelSnapshot};
use crate::channel::{Change, ClockBounds, StoredChunk, StoredIncoming, StoredPartialChunk, StoredSend};
use crate::sds::{LogChange, LogEntry};

/// An outbox row as SQLite holds it: the columns, not the event (so that both stores go through
/// the same conversion).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Row {
    channel: ChannelKey,
    kind: i64,
    request_id: Option<String>,
    sender_id: Option<String>,
    payload: Option<Vec<u8>>,
    error: Option<String>,
}

/// A [`super::Store`] in memory. `Clone` is a snapshot of everything committed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemoryStore {
    channels: BTreeMap<String, ChannelRecord>,
    events: BTreeMap<u64, Row>,
    seq_bound: u64,
    last_key: ChannelKey,
    /// The channel-state tables, per channel.
    state: BTreeMap<ChannelKey, State>,
    /// Fault injection: while set, every commit and purge fails with this message.
    failure: Option<String>,
}

impl Default for MemoryStore {
    fn default() -> Self {
        MemoryStore { channels: BTreeMap::new(), events: BTreeMap::new(), seq_bound: 1, last_key: 0, state: BTreeMap::new(), failure: None }
    }
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Fault injection for tests: while `Some`, every write fails with this message and changes
    /// nothing (as a full disk would).
    pub fn set_failure(&mut self, failure: Option<String>) {
        self.failure = failure;
    }

    /// Number of outbox rows of all channels.
    pub fn event_rows(&self) -> usize {
        self.events.len()
    }

    fn check(&self) -> Result<(), StorageError> {
        self.failure.as_ref().map_or(Ok(()), |f| Err(StorageError(f.clone())))
    }
}

impl Store for MemoryStore {
    fn seq_bound(&self) -> u64 {
        self.seq_bound
    }

    fn allocate_key(&mut self) -> ChannelKey {
        self.last_key += 1;
        self.last_key
    }

    fn commit(&mut self, batch: &Batch<'_>) -> Result<(), StorageError> {
        self.check()?;
        // Checked before anything changes: a commit is all or nothing, as a transaction is.
        for c in &batch.new_channels {
            if self.channels.contains_key(&c.channel_id) || self.channels.values().any(|r| r.key == c.key) {
                return Err(StorageError(format!("UNIQUE constraint failed: channel {} (key {}) exists", c.channel_id, c.key)));
            }
        }
        if let Some(e) = batch.events.iter().find(|e| self.events.contains_key(&e.seq)) {
            return Err(StorageError(format!("UNIQUE constraint failed: events.seq {}", e.seq)));
        }
        for c in &batch.new_channels {
            self.channels.insert(c.channel_id.clone(), c.clone());
        }
        for e in &batch.events {
            let (kind, request_id, sender_id, payload, error) = event_columns(e.event);
            let row = Row {
                channel: e.channel,
                kind,
                request_id: request_id.map(Into::into),
                sender_id: sender_id.map(Into::into),
                payload: payload.map(Into::into),
                error: error.map(Into::into),
            };
            self.events.insert(e.seq, row);
        }
        for seq in &batch.delivered {
            self.events.remove(seq);
        }
        if let Some(b) = batch.seq_bound {
            self.seq_bound = b;
        }
        for (key, changes) in batch.channels {
            self.state.entry(*key).or_default().apply(changes);
        }
        Ok(())
    }

    fn load_channel(&mut self, channel_id: &str) -> Result<Option<ChannelRecord>, StorageError> {
        Ok(self.channels.get(channel_id).cloned())
    }

    fn load_events(&mut self, key: ChannelKey) -> Result<Vec<StoredEvent>, StorageError> {
        Ok(self
            .events
            .iter()
            .filter(|(_, r)| r.channel == key)
            .filter_map(|(&seq, r)| {
                let event = event_from_columns(r.kind, r.request_id.clone(), r.sender_id.clone(), r.payload.clone(), r.error.clone())?;
                Some(StoredEvent { seq, event })
            })
            .collect())
    }

    fn purge(&mut self, channel_id: &str) -> Result<bool, StorageError> {
        self.check()?;
        let Some(rec) = self.channels.remove(channel_id) else { return Ok(false) };
        self.events.retain(|_, r| r.channel != rec.key);
        self.state.remove(&rec.key);
        Ok(true)
    }

    fn load_snapshot(&mut self, key: ChannelKey) -> Result<ChannelSnapshot, StorageError> {
        Ok(self.state.get(&key).map(State::snapshot).unwrap_or_default())
    }
}

/// A send row: (ephemeral, bytes, sent).
type SendRow = (bool, usize, bool);

/// One channel's state rows. Each ordered table holds (insertion number, row) by key, as SQLite
/// holds rows by rowid: a replaced row moves to the end.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct State {
    next: u64,
    clocks: Option<ClockBounds>,
    rln: Option<(u64, u32)>,
    log: BTreeMap<String, (u64, LogEntry)>,
    sends: BTreeMap<String, (u64, SendRow)>,
    chunks: BTreeMap<(String, u32), StoredChunk>,
    incoming: BTreeMap<String, (u64, StoredIncoming)>,
    partials: BTreeMap<(String, String, u32), (u64, StoredPartialChunk)>,
}

fn in_order<K, V: Clone>(t: &BTreeMap<K, (u64, V)>) -> Vec<V> {
    let mut v: Vec<&(u64, V)> = t.values().collect();
    v.sort_by_key(|r| r.0);
    v.into_iter().map(|r| r.1.clone()).collect()
}

impl State {
    fn number(&mut self) -> u64 {
        self.next += 1;
        self.next
    }

    fn apply(&mut self, c: &ChannelChanges) {
        for l in &c.log {
            match l {
                LogChange::Insert(e) => {
                    let n = self.number();
                    self.log.insert(e.message_id.to_string(), (n, e.clone()));
                }
                LogChange::Remove(id) => {
                    self.log.remove(&**id);
                }
                LogChange::Hint(id, h) => {
                    if let Some((_, e)) = self.log.get_mut(&**id) {
                        e.retrieval_hint = Some(h.clone());
                    }
                }
            }
        }
        for ch in &c.changes {
            match ch {
                Change::SendAccepted { request, ephemeral, bytes, chunks } => {
                    let n = self.number();
                    self.sends.insert(request.to_string(), (n, (*ephemeral, *bytes, false)));
                    for (idx, (id, frame)) in (0u32..).zip(chunks) {
                        let c = StoredChunk {
                            id: id.clone(),
                            frame: Some(frame.clone()),
                            wrapped: None,
                            acked: false,
                            retransmissions: 0,
                            possible_acks: 0,
                        };
                        self.chunks.insert((request.to_string(), idx), c);
                    }
                }
                Change::ChunkWrapped { request, index, lamport, bytes } => {
                    if let Some(c) = self.chunks.get_mut(&(request.to_string(), *index)) {
                        c.frame = None;
                        c.wrapped = Some((*lamport, bytes.clone()));
                    }
                }
                Change::ChunkAcked { request, index } => {
                    if let Some(c) = self.chunks.get_mut(&(request.to_string(), *index)) {
                        (c.frame, c.wrapped, c.acked) = (None, None, true);
                    }
                }
                Change::ChunkRetransmitted { request, index, count } => {
                    if let Some(c) = self.chunks.get_mut(&(request.to_string(), *index)) {
                        c.retransmissions = *count;
                    }
                }
                Change::ChunkPossiblyAcked { request, index, count } => {
                    if let Some(c) = self.chunks.get_mut(&(request.to_string(), *index)) {
                        c.possible_acks = *count;
                    }
                }
                Change::SendSent { request } => {
                    if let Some((_, s)) = self.sends.get_mut(&**request) {
                        s.2 = true;
                    }
                }
                Change::SendFinished { request } => {
                    self.sends.remove(&**request);
                    self.chunks.retain(|(r, _), _| **r != **request);
                }
                Change::Buffered { id, bytes, hint, .. } => {
                    let n = self.number();
                    self.incoming.insert(id.to_string(), (n, StoredIncoming { bytes: bytes.clone(), hint: hint.clone() }));
                }
                Change::Unbuffered { id } => {
                    self.incoming.remove(&**id);
                }
                Change::PartialChunk { sender, request, index, at, frame } => {
                    let n = self.number();
                    let row = StoredPartialChunk { sender_id: sender.to_string(), at: *at, frame: frame.clone() };
                    self.partials.insert((sender.to_string(), request.to_string(), *index), (n, row));
                }
                Change::PartialDone { sender, request } => {
                    self.partials.retain(|(s, r, _), _| (&**s, &**r) != (&**sender, &**request));
                }
            }
        }
        if let Some(b) = c.clocks {
            self.clocks = Some(b);
        }
        if let Some(r) = c.rln {
            self.rln = Some(r);
        }
    }

    fn snapshot(&self) -> ChannelSnapshot {
        let sends = in_order(&self.sends.iter().map(|(r, (n, row))| (r.clone(), (*n, (r.clone(), *row)))).collect::<BTreeMap<_, _>>())
            .into_iter()
            .map(|(request_id, (ephemeral, bytes, sent))| {
                let chunks = self.chunks.range((request_id.clone(), 0)..=(request_id.clone(), u32::MAX)).map(|(_, c)| c.clone()).collect();
                StoredSend { request_id, ephemeral, bytes, sent, chunks }
            })
            .collect();
        ChannelSnapshot {
            clocks: self.clocks,
            rln: self.rln,
            log: in_order(&self.log),
            sends,
            incoming: in_order(&self.incoming),
            partials: in_order(&self.partials),
        }
    }
}
