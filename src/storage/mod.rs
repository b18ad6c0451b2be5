//! Durable channel state: one database per manager, written by the runtime thread in one
//! transaction per runtime batch (the group commit), read back when a channel is reopened.
//!
//! The storage layer sits beside `messaging`, above `channel` and below `runtime`: it stores what
//! the core reports as plain data and hands it back; it never drives a channel. The runtime owns
//! the one [`Store`] of a manager (on its runtime thread) and follows the write-ahead rule:
//! nothing a batch produced (publications, events, replies to waiting `send` callers) leaves the
//! process before [`Store::commit`] of that batch returned `Ok`.
//!
//! What is stored (schema version [`SCHEMA_VERSION`]):
//!
//! | table      | rows                                                                      |
//! |------------|---------------------------------------------------------------------------|
//! | `meta`     | `seq_bound`: every event sequence number below it may have been handed out |
//! | `channels` | one per stored channel: its key, id, our sender id, the content topic       |
//! | `events`   | the outbox: events of durable channels not yet handed to the application    |
//!
//! The channel's own protocol state (version 2; version 3 adds the chunks' counts), from
//! `Channel::take_changes()` in [`Batch::channels`], read back by [`Store::load_snapshot`] into a
//! `ChannelSnapshot`; one row per entry, inserted, updated and deleted as the channel changes
//! (never a growing blob):
//!
//! | table           | rows                                                                  |
//! |-----------------|-----------------------------------------------------------------------|
//! | `channel_state` | per channel: reserved bounds of the lamport and wrap clocks, RLN usage |
//! | `log`           | the SDS log (the duplicate window), in insertion (rowid) order         |
//! | `sends`         | sends not yet final: request id, ephemeral, size, SENT emitted         |
//! | `send_chunks`   | their chunks: SDS id, the frame until wrapped, the SDS bytes until acknowledged, retransmissions and bloom hits so far |
//! | `incoming`      | received messages waiting for dependencies: their decrypted SDS bytes  |
//! | `partials`      | chunks of partial incoming messages, one row per chunk                 |
//!
//! Version 4: the `journal`. A commit appends its outbox rows, deliveries and channel changes as
//! one row keyed by a sequential integer; they reach `events` and the tables above when the
//! journal is folded: at the open, before a read, from [`JOURNAL_FOLD_ROWS`] rows on
//! (`sqlite_journal.rs`). Version 5 keeps those rows in a file of their own beside the database
//! (`journal_file.rs`): a commit is one `pwrite` instead of an SQLite transaction; the `meta` row
//! `journal_folded` tells which records the tables hold. The memory store applies every batch
//! directly: both load the same state.
//!
//! | file        | what                                                                      |
//! |-------------|---------------------------------------------------------------------------|
//! | `mod.rs`    | the [`Store`] trait, [`Batch`], records, [`StorageConfig`]                  |
//! | `sqlite.rs` | [`SqliteStore`]: the file, its lock, open-time validation, the statements   |
//! | `sqlite_state.rs` | the channel-state tables: their statements and the snapshot read |
//! | `sqlite_journal.rs` | the journal: its rows' encoding, the fold into the tables        |
//! | `journal_file.rs` | the journal's file: records, checksums, the checks at the open    |
//! | `checkpoint.rs` | the WAL checkpoint on a thread and connection of its own        |
//! | `memory.rs` | [`MemoryStore`]: the same tables in memory (tests, crash simulation)        |

mod checkpoint;
mod journal_file;
mod memory;
mod sqlite;
mod sqlite_journal;
mod sqlite_state;

use std::path::PathBuf;

pub use memory::MemoryStore;
pub use sqlite::{SqliteStore, APPLICATION_ID, CHECKPOINT_PAGES, SCHEMA_VERSION, WAL_BOUND_PAGES};
pub use sqlite_journal::{JOURNAL_FOLD_BYTES, JOURNAL_FOLD_ROWS};

use crate::channel::{ChannelChanges, ChannelEvent, ChannelSnapshot};

/// How hard a commit is pushed to the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    /// WAL with `synchronous=NORMAL`: a commit survives the process being killed (it is in the
    /// operating system's cache), not a power loss (the last commits may be lost, the file stays
    /// consistent).
    #[default]
    Process,
    /// WAL with `synchronous=FULL`: every commit is on the disk before it returns (one fsync per
    /// commit) and survives a power loss.
    Power,
}

/// The manager's `storage` configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorageConfig {
    /// The database file (created when missing).
    pub path: PathBuf,
    /// See [`Durability`].
    pub durability: Durability,
    /// Largest size of the database file (SQLite's `max_page_count`) with its journal file: a
    /// commit that would grow them beyond is written to the tables directly, where it fails like
    /// a full disk unless it makes room. `None`: no limit but the disk's.
    pub max_size_bytes: Option<u64>,
}

/// The key of a stored channel in every table (SQLite `INTEGER PRIMARY KEY`): rows name their
/// channel by it rather than repeating the channel id.
pub type ChannelKey = i64;

/// A stored channel's identity. Reopening a channel with another sender id or content topic is
/// refused: its state would belong to somebody else.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelRecord {
    pub key: ChannelKey,
    pub channel_id: String,
    pub sender_id: String,
    pub content_topic: String,
}

/// An event row of the outbox as read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEvent {
    /// The sequence number it was first handed out with (kept on every re-delivery).
    pub seq: u64,
    pub event: ChannelEvent,
}

/// An event row to write: borrowed from the runtime's pending events (a RECEIVED payload is not
/// copied to be stored).
#[derive(Debug, Clone, Copy)]
pub struct EventRow<'a> {
    pub seq: u64,
    pub channel: ChannelKey,
    pub event: &'a ChannelEvent,
}

/// Everything one runtime batch changed, written in one transaction: all of it or nothing.
#[derive(Debug, Default)]
pub struct Batch<'a> {
    /// Channels opened for the first time (keys from [`Store::allocate_key`]).
    pub new_channels: Vec<ChannelRecord>,
    /// Events of durable channels produced in the batch (the outbox rows).
    pub events: Vec<EventRow<'a>>,
    /// Sequence numbers of events the application's callback has returned from: their rows go.
    pub delivered: Vec<u64>,
    /// A new [`Store::seq_bound`], when the batch hands out sequence numbers at or beyond the old.
    pub seq_bound: Option<u64>,
    /// What durable channels changed in their own state (applied in order).
    pub channels: &'a [(ChannelKey, ChannelChanges)],
}

impl Batch<'_> {
    /// Nothing to write.
    pub fn is_empty(&self) -> bool {
        self.new_channels.is_empty()
            && self.events.is_empty()
            && self.delivered.is_empty()
            && self.seq_bound.is_none()
            && self.channels.iter().all(|(_, c)| c.is_empty())
    }
}

/// Why the storage failed: SQLite's own message, with what was being done.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct StorageError(pub String);

impl From<StorageError> for crate::Error {
    fn from(e: StorageError) -> Self {
        crate::Error::Storage(e.0)
    }
}

/// A manager's durable state. One owner (the runtime thread); every write goes through
/// [`Store::commit`], atomically.
pub trait Store: Send {
    /// Sequence numbers at or above this were never handed out: a restarted manager continues
    /// from here, so that `seq` only ever grows in one database.
    fn seq_bound(&self) -> u64;

    /// A key for a channel about to be created in a batch: one no stored channel has.
    fn allocate_key(&mut self) -> ChannelKey;

    /// Writes `batch` in one transaction: on `Err` nothing of it is stored.
    fn commit(&mut self, batch: &Batch<'_>) -> Result<(), StorageError>;

    /// Housekeeping off the commit path (the SQLite store's checkpoint), called after a batch
    /// was released (`idle` false) and when the runtime is about to wait for work (`idle` true).
    /// Never fails the caller: what was committed stays committed.
    fn maintain(&mut self, _idle: bool) {}

    /// The stored channel `channel_id`, if any.
    fn load_channel(&mut self, channel_id: &str) -> Result<Option<ChannelRecord>, StorageError>;

    /// The outbox of a channel: its events not yet handed to the application, by `seq`.
    fn load_events(&mut self, key: ChannelKey) -> Result<Vec<StoredEvent>, StorageError>;

    /// The protocol state of a stored channel (empty for a channel without any).
    fn load_snapshot(&mut self, key: ChannelKey) -> Result<ChannelSnapshot, StorageError>;

    /// Deletes everything stored about `channel_id`, in one transaction. `Ok(false)` when nothing
    /// was stored.
    fn purge(&mut self, channel_id: &str) -> Result<bool, StorageError>;
}

/// `rc_event_kind` of an event, the `kind` column of the outbox.
fn event_kind(e: &ChannelEvent) -> i64 {
    match e {
        ChannelEvent::Received { .. } => 1,
        ChannelEvent::Sent { .. } => 2,
        ChannelEvent::Delivered { .. } => 3,
        ChannelEvent::SendError { .. } => 4,
        ChannelEvent::Lost { .. } => 5,
    }
}

/// The columns of an outbox row besides `seq` and `channel`: kind, request id, sender id,
/// payload, error. Each fact once: our own sender id is the channel's, not repeated per row.
type EventColumns<'a> = (i64, Option<&'a str>, Option<&'a str>, Option<&'a [u8]>, Option<&'a str>);

fn event_columns(e: &ChannelEvent) -> EventColumns<'_> {
    let k = event_kind(e);
    match e {
        ChannelEvent::Received { request_id, sender_id, payload } => (k, Some(request_id), Some(sender_id), Some(payload), None),
        ChannelEvent::Sent { request_id } | ChannelEvent::Delivered { request_id } => (k, Some(request_id), None, None, None),
        ChannelEvent::SendError { request_id, error } => (k, Some(request_id), None, None, Some(error)),
        ChannelEvent::Lost { request_id, sender_id, error } => (k, request_id.as_deref(), sender_id.as_deref(), None, Some(error)),
    }
}

/// An event from its columns; `None` for a row no version of the library writes (a damaged or
/// foreign row: skipped by the caller, never a panic).
fn event_from_columns(
    kind: i64,
    request_id: Option<String>,
    sender_id: Option<String>,
    payload: Option<Vec<u8>>,
    error: Option<String>,
) -> Option<ChannelEvent> {
    Some(match kind {
        1 => ChannelEvent::Received { request_id: request_id?, sender_id: sender_id?, payload: payload? },
        2 => ChannelEvent::Sent { request_id: request_id? },
        3 => ChannelEvent::Delivered { request_id: request_id? },
        4 => ChannelEvent::SendError { request_id: request_id?, error: error? },
        5 => ChannelEvent::Lost { request_id, sender_id, error: error? },
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_event_survives_its_columns() {
        let events = [
            ChannelEvent::Received { request_id: "r".into(), sender_id: "bob".into(), payload: vec![1, 2, 3] },
            ChannelEvent::Sent { request_id: "s".into() },
            ChannelEvent::Delivered { request_id: "d".into() },
            ChannelEvent::SendError { request_id: "e".into(), error: "why".into() },
            ChannelEvent::Lost { request_id: None, sender_id: Some("carol".into()), error: "gone".into() },
            ChannelEvent::Lost { request_id: Some("x".into()), sender_id: None, error: "gone".into() },
        ];
        for e in events {
            let (k, r, s, p, err) = event_columns(&e);
            let back = event_from_columns(k, r.map(Into::into), s.map(Into::into), p.map(Into::into), err.map(Into::into));
            assert_eq!(back, Some(e));
        }
        assert_eq!(event_from_columns(9, None, None, None, None), None);
        assert_eq!(event_from_columns(1, Some("r".into()), None, Some(vec![]), None), None, "a RECEIVED without its sender");
    }
}
