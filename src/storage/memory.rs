//! [`MemoryStore`]: the tables of `sqlite.rs` as plain maps. For tests: the crash simulation
//! clones it at a commit boundary and rebuilds a manager's state from the clone, and
//! `tests/storage.rs` checks that the same batches leave it and a [`super::SqliteStore`] in the
//! same loaded state.

use std::collections::BTreeMap;

use super::{event_columns, event_from_columns, Batch, ChannelKey, ChannelRecord, StorageError, Store, StoredEvent};

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
    /// Fault injection: while set, every commit and purge fails with this message.
    failure: Option<String>,
}

impl Default for MemoryStore {
    fn default() -> Self {
        MemoryStore { channels: BTreeMap::new(), events: BTreeMap::new(), seq_bound: 1, last_key: 0, failure: None }
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
        Ok(true)
    }
}
