//! The channel-state tables of [`super::SqliteStore`] (schema version 2): the statements that
//! apply a channel's changes (when the journal is folded, `sqlite_journal.rs`), and the reads of
//! its snapshot.
//! Every statement is a prepared, cached one; every change touches the rows it names only.
//! Version 4 drops the log's index on message ids: its rows are found by rowid ([`LogRows`]).

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use rusqlite::{params, Connection, OptionalExtension, Transaction};

use super::ChannelKey;
use crate::channel::{Change, ChannelChanges, ChannelSnapshot, ClockBounds, StoredChunk, StoredIncoming, StoredPartialChunk, StoredSend};
use crate::collections::FastMap;
use crate::sds::{LogChange, LogEntry};

/// Migration 2 → 3, also part of every new database: a chunk's counts of retransmissions and of
/// bloom filter hits.
pub(super) const CHUNK_COUNTS: &str = "
ALTER TABLE send_chunks ADD COLUMN retransmissions INTEGER NOT NULL DEFAULT 0;
ALTER TABLE send_chunks ADD COLUMN possible_acks INTEGER NOT NULL DEFAULT 0;
";

/// Migration 1 → 2, also part of every new database: the channel-state tables. Rows are read
/// back in rowid order, which is insertion order (a replaced row moves to the end).
pub(super) const STATE_TABLES: &str = "
CREATE TABLE channel_state (
    channel INTEGER PRIMARY KEY,
    lamport_bound INTEGER,
    wrap_bound INTEGER,
    rln_epoch INTEGER,
    rln_used INTEGER
);
CREATE TABLE log (
    channel INTEGER NOT NULL,
    id TEXT NOT NULL,
    lamport INTEGER NOT NULL,
    sender TEXT,
    hint BLOB,
    UNIQUE (channel, id)
);
CREATE TABLE sends (
    channel INTEGER NOT NULL,
    request_id TEXT NOT NULL,
    ephemeral INTEGER NOT NULL,
    bytes INTEGER NOT NULL,
    sent INTEGER NOT NULL,
    UNIQUE (channel, request_id)
);
CREATE TABLE send_chunks (
    channel INTEGER NOT NULL,
    request_id TEXT NOT NULL,
    idx INTEGER NOT NULL,
    id TEXT NOT NULL,
    frame BLOB,
    lamport INTEGER,
    wrapped BLOB,
    acked INTEGER NOT NULL,
    UNIQUE (channel, request_id, idx)
);
CREATE TABLE incoming (
    channel INTEGER NOT NULL,
    id TEXT NOT NULL,
    at INTEGER NOT NULL,
    bytes BLOB NOT NULL,
    hint BLOB,
    UNIQUE (channel, id)
);
CREATE TABLE partials (
    channel INTEGER NOT NULL,
    sender TEXT NOT NULL,
    request_id TEXT NOT NULL,
    idx INTEGER NOT NULL,
    at INTEGER NOT NULL,
    frame BLOB NOT NULL,
    UNIQUE (channel, sender, request_id, idx)
);
";

/// Part of migration 3 → 4, also of every new database: the log loses its `UNIQUE (channel, id)`
/// index, keeping its rows and their order (rowids). Message ids are random: the index took a
/// leaf page per entry a fold wrote or deleted, most of a fold's time. Entries are found by
/// rowid instead ([`LogRows`]); the index on `channel` alone grows at its end (rowids only grow).
pub(super) const LOG_BY_ROWID: &str = "
CREATE TABLE log_v4 (
    channel INTEGER NOT NULL,
    id TEXT NOT NULL,
    lamport INTEGER NOT NULL,
    sender TEXT,
    hint BLOB
);
INSERT INTO log_v4 (rowid, channel, id, lamport, sender, hint) SELECT rowid, channel, id, lamport, sender, hint FROM log ORDER BY rowid;
DROP TABLE log;
ALTER TABLE log_v4 RENAME TO log;
CREATE INDEX log_channel ON log (channel);
";

/// The rowid of every row of the `log` table, by channel and message id: what the dropped
/// `UNIQUE (channel, id)` index answered ([`LOG_BY_ROWID`]). Read from the table at the open
/// and kept as folds write the log; as large as the stored logs (bounded by each channel's
/// history, whose entries the channel holds in memory too).
#[derive(Debug, Default)]
pub(super) struct LogRows {
    by_channel: FastMap<ChannelKey, FastMap<Arc<str>, i64>>,
    /// The rowid of the next row written: above every row's (rowids are not reused, so a fold's
    /// inserts of a channel take consecutive ones, and evictions delete ranges of them).
    next: i64,
}

impl LogRows {
    /// Reads where every stored log entry is.
    pub fn load(conn: &Connection) -> rusqlite::Result<LogRows> {
        let mut rows = LogRows { next: 1, ..LogRows::default() };
        let mut st = conn.prepare("SELECT rowid, channel, id FROM log")?;
        let mut q = st.query([])?;
        while let Some(r) = q.next()? {
            let (rowid, key, id): (i64, ChannelKey, String) = (r.get(0)?, r.get(1)?, r.get(2)?);
            rows.by_channel.entry(key).or_default().insert(id.into(), rowid);
            rows.next = rows.next.max(rowid.saturating_add(1));
        }
        Ok(rows)
    }

    /// Forgets channel `key` (purged).
    pub fn forget(&mut self, key: ChannelKey) {
        self.by_channel.remove(&key);
    }

    /// Log entries known, over all channels.
    pub fn len(&self) -> usize {
        self.by_channel.values().map(FastMap::len).sum()
    }
}

/// Log rows written by one multi-row `INSERT` (6 parameters each; SQLite allows 32,766): one
/// statement per row was most of a fold's time.
const LOG_INSERT_ROWS: usize = 32;
/// Runs of deleted rowids from which a fold checks whether one range `DELETE` covers them.
const LOG_RANGE_MIN: usize = 4;

/// Applies a channel's log changes: their net effect, in three steps. The entries inserted and
/// not removed again, in order, with new rowids (multi-row `INSERT`s); the hints of stored ones;
/// then the stored rows removed or replaced, deleted by rowid range where the range holds no
/// other row of the channel (evictions remove the oldest entries: rows a past fold inserted with
/// consecutive rowids).
fn write_log(tx: &Transaction<'_>, key: ChannelKey, log: &[LogChange], log_rows: &mut LogRows) -> rusqlite::Result<()> {
    let rows = log_rows.by_channel.entry(key).or_default();
    // Entries inserted here (`None` once removed or inserted again), by position.
    let mut new: Vec<Option<LogEntry>> = Vec::new();
    let mut new_at: FastMap<&str, usize> = FastMap::default();
    let mut deleted: Vec<i64> = Vec::new();
    for l in log {
        match l {
            LogChange::Insert(e) => {
                // An entry inserted again moves to the end, as the memory store's does.
                if let Some(at) = new_at.remove(&*e.message_id) {
                    new[at] = None;
                } else if let Some(old) = rows.remove(&e.message_id) {
                    deleted.push(old);
                }
                new_at.insert(&e.message_id, new.len());
                new.push(Some(e.clone()));
            }
            LogChange::Remove(id) => {
                if let Some(at) = new_at.remove(&**id) {
                    new[at] = None;
                } else if let Some(old) = rows.remove(id) {
                    deleted.push(old);
                }
            }
            LogChange::Hint(id, hint) => {
                if let Some(&at) = new_at.get(&**id) {
                    if let Some(e) = &mut new[at] {
                        e.retrieval_hint = Some(hint.clone());
                    }
                } else if let Some(&at) = rows.get(id) {
                    tx.prepare_cached("UPDATE log SET hint = ?2 WHERE rowid = ?1")?.execute(params![at, &hint[..]])?;
                }
            }
        }
    }
    let new: Vec<LogEntry> = new.into_iter().flatten().collect();
    let first = log_rows.next;
    log_rows.next = i64::try_from(new.len()).ok().and_then(|n| first.checked_add(n)).ok_or(rusqlite::Error::IntegralValueOutOfRange(0, first))?;
    // Full groups share one statement; the rest go one by one (a statement per remainder length
    // would crowd the connection's statement cache).
    let full = format!("{LOG_INSERT} {}", ["(?, ?, ?, ?, ?, ?)"; LOG_INSERT_ROWS].join(", "));
    for (group, entries) in new.chunks(LOG_INSERT_ROWS).enumerate() {
        let base = first + (group * LOG_INSERT_ROWS) as i64;
        if entries.len() == LOG_INSERT_ROWS {
            let mut st = tx.prepare_cached(&full)?;
            for (j, e) in entries.iter().enumerate() {
                bind_log_row(&mut st, j * 6, base + j as i64, key, e)?;
            }
            st.raw_execute()?;
        } else {
            let mut st = tx.prepare_cached(&format!("{LOG_INSERT} (?, ?, ?, ?, ?, ?)"))?;
            for (j, e) in entries.iter().enumerate() {
                bind_log_row(&mut st, 0, base + j as i64, key, e)?;
                st.raw_execute()?;
            }
        }
    }
    let rows = log_rows.by_channel.entry(key).or_default();
    for (n, e) in new.into_iter().enumerate() {
        rows.insert(e.message_id, first + n as i64);
    }
    if rows.is_empty() {
        log_rows.by_channel.remove(&key);
    }
    delete_log_rows(tx, key, deleted)
}

/// The start of an insert into the log with explicit rowids.
const LOG_INSERT: &str = "INSERT INTO log (rowid, channel, id, lamport, sender, hint) VALUES";

/// Binds one log row's six values from parameter `at + 1` on.
fn bind_log_row(st: &mut rusqlite::CachedStatement<'_>, at: usize, rowid: i64, key: ChannelKey, e: &LogEntry) -> rusqlite::Result<()> {
    st.raw_bind_parameter(at + 1, rowid)?;
    st.raw_bind_parameter(at + 2, key)?;
    st.raw_bind_parameter(at + 3, &*e.message_id)?;
    st.raw_bind_parameter(at + 4, i(e.lamport_timestamp))?;
    st.raw_bind_parameter(at + 5, e.sender_id.as_deref())?;
    st.raw_bind_parameter(at + 6, e.retrieval_hint.as_deref())
}

/// Deletes the rows `rowids` of channel `key`'s log: a range at a time where the range holds
/// these rows only (counted first), else one by one.
fn delete_log_rows(tx: &Transaction<'_>, key: ChannelKey, mut rowids: Vec<i64>) -> rusqlite::Result<()> {
    rowids.sort_unstable();
    let mut todo = vec![&rowids[..]];
    while let Some(run) = todo.pop() {
        if run.len() < LOG_RANGE_MIN {
            for &r in run {
                tx.prepare_cached("DELETE FROM log WHERE rowid = ?1")?.execute([r])?;
            }
            continue;
        }
        let (lo, hi) = (run[0], run[run.len() - 1]);
        let held: i64 = tx
            .prepare_cached("SELECT count(*) FROM log WHERE channel = ?1 AND rowid BETWEEN ?2 AND ?3")?
            .query_row(params![key, lo, hi], |r| r.get(0))?;
        if usize::try_from(held).is_ok_and(|h| h == run.len()) {
            tx.prepare_cached("DELETE FROM log WHERE channel = ?1 AND rowid BETWEEN ?2 AND ?3")?.execute(params![key, lo, hi])?;
        } else {
            let (a, b) = run.split_at(run.len() / 2);
            todo.push(b);
            todo.push(a);
        }
    }
    Ok(())
}

/// The tables holding rows of a channel, keyed by a `channel` column (purge deletes from each).
pub(super) const STATE_TABLE_NAMES: [&str; 6] = ["channel_state", "log", "sends", "send_chunks", "incoming", "partials"];

/// A clock value or epoch as SQLite's signed integer, bit for bit (read back with `as u64`).
fn i(v: u64) -> i64 {
    v as i64
}

/// Applies `c`, the changes of channel `key`, in order, keeping `log_rows` (which the caller
/// reloads if the transaction does not commit).
pub(super) fn write_changes(tx: &Transaction<'_>, key: ChannelKey, c: &ChannelChanges, log_rows: &mut LogRows) -> rusqlite::Result<()> {
    if !c.log.is_empty() {
        write_log(tx, key, &c.log, log_rows)?;
    }
    let plan = SendPlan::new(&c.changes);
    for (at, ch) in c.changes.iter().enumerate() {
        if plan.skipped(at, ch) {
            continue;
        }
        match ch {
            Change::SendAccepted { request, ephemeral, bytes, chunks } => {
                let (sent, states) = plan.folded(at, request, chunks.len());
                let mut st =
                    tx.prepare_cached("INSERT OR REPLACE INTO sends (channel, request_id, ephemeral, bytes, sent) VALUES (?1, ?2, ?3, ?4, ?5)")?;
                st.execute(params![key, &**request, ephemeral, *bytes as i64, sent])?;
                let mut st = tx.prepare_cached(
                    "INSERT OR REPLACE INTO send_chunks (channel, request_id, idx, id, frame, lamport, wrapped, acked, retransmissions, possible_acks)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                )?;
                for (idx, ((id, frame), c)) in chunks.iter().zip(states).enumerate() {
                    // The frame is kept until the chunk is wrapped or acknowledged.
                    let frame = (c.wrapped.is_none() && !c.acked).then_some(&frame[..]);
                    let (lamport, wrapped) = c.wrapped.map_or((None, None), |(l, b)| (Some(i(l)), Some(&b[..])));
                    st.execute(params![key, &**request, idx as i64, &**id, frame, lamport, wrapped, c.acked, c.retransmissions, c.possible_acks])?;
                }
            }
            Change::ChunkWrapped { request, index, lamport, bytes } => {
                let mut st = tx.prepare_cached(
                    "UPDATE send_chunks SET frame = NULL, lamport = ?4, wrapped = ?5 WHERE channel = ?1 AND request_id = ?2 AND idx = ?3",
                )?;
                st.execute(params![key, &**request, index, i(*lamport), &bytes[..]])?;
            }
            Change::ChunkAcked { request, index } => {
                let mut st = tx.prepare_cached(
                    "UPDATE send_chunks SET frame = NULL, wrapped = NULL, acked = 1 WHERE channel = ?1 AND request_id = ?2 AND idx = ?3",
                )?;
                st.execute(params![key, &**request, index])?;
            }
            Change::ChunkRetransmitted { request, index, count } => {
                let mut st = tx.prepare_cached("UPDATE send_chunks SET retransmissions = ?4 WHERE channel = ?1 AND request_id = ?2 AND idx = ?3")?;
                st.execute(params![key, &**request, index, count])?;
            }
            Change::ChunkPossiblyAcked { request, index, count } => {
                let mut st = tx.prepare_cached("UPDATE send_chunks SET possible_acks = ?4 WHERE channel = ?1 AND request_id = ?2 AND idx = ?3")?;
                st.execute(params![key, &**request, index, count])?;
            }
            Change::SendSent { request } => {
                tx.prepare_cached("UPDATE sends SET sent = 1 WHERE channel = ?1 AND request_id = ?2")?.execute(params![key, &**request])?;
            }
            Change::SendFinished { request } => {
                tx.prepare_cached("DELETE FROM sends WHERE channel = ?1 AND request_id = ?2")?.execute(params![key, &**request])?;
                tx.prepare_cached("DELETE FROM send_chunks WHERE channel = ?1 AND request_id = ?2")?.execute(params![key, &**request])?;
            }
            Change::Buffered { id, at, bytes, hint } => {
                let mut st = tx.prepare_cached("INSERT OR REPLACE INTO incoming (channel, id, at, bytes, hint) VALUES (?1, ?2, ?3, ?4, ?5)")?;
                st.execute(params![key, &**id, i(*at), &bytes[..], hint.as_deref()])?;
            }
            Change::Unbuffered { id } => {
                tx.prepare_cached("DELETE FROM incoming WHERE channel = ?1 AND id = ?2")?.execute(params![key, &**id])?;
            }
            Change::PartialChunk { sender, request, index, at, frame } => {
                let mut st = tx.prepare_cached(
                    "INSERT OR REPLACE INTO partials (channel, sender, request_id, idx, at, frame) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                )?;
                st.execute(params![key, &**sender, &**request, index, i(*at), &frame[..]])?;
            }
            Change::PartialDone { sender, request } => {
                let mut st = tx.prepare_cached("DELETE FROM partials WHERE channel = ?1 AND sender = ?2 AND request_id = ?3")?;
                st.execute(params![key, &**sender, &**request])?;
            }
        }
    }
    if let Some(b) = c.clocks {
        let mut st = tx.prepare_cached(
            "INSERT INTO channel_state (channel, lamport_bound, wrap_bound) VALUES (?1, ?2, ?3)
             ON CONFLICT (channel) DO UPDATE SET lamport_bound = excluded.lamport_bound, wrap_bound = excluded.wrap_bound",
        )?;
        st.execute(params![key, i(b.lamport), i(b.wrap_ns)])?;
    }
    if let Some((epoch, used)) = c.rln {
        let mut st = tx.prepare_cached(
            "INSERT INTO channel_state (channel, rln_epoch, rln_used) VALUES (?1, ?2, ?3)
             ON CONFLICT (channel) DO UPDATE SET rln_epoch = excluded.rln_epoch, rln_used = excluded.rln_used",
        )?;
        st.execute(params![key, i(epoch), used])?;
    }
    Ok(())
}

/// A chunk of a send accepted in the batch, in its state at the end of the batch.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct ChunkState<'c> {
    /// (lamport, SDS bytes) once wrapped, until acknowledged.
    wrapped: Option<(u64, &'c Bytes)>,
    acked: bool,
    retransmissions: u32,
    possible_acks: u32,
}

/// What a batch's changes do to each send, worked out before a row is written, so that no row is
/// written that the same transaction would update or delete again: a send accepted in the batch
/// is inserted in its state at the end of the batch (its chunks wrapped or acknowledged, SENT),
/// and nothing at all is written for one accepted and finished in the batch, nor updated for one
/// finished in it. The stored result is the same as applying every change in order (the memory
/// store does that; `tests/storage.rs` and `tests/durable_state.rs` compare the two).
struct SendPlan<'c> {
    changes: &'c [Change],
    /// The positions of each send's changes, in order.
    by_request: FastMap<&'c str, Vec<usize>>,
}

impl<'c> SendPlan<'c> {
    fn new(changes: &'c [Change]) -> Self {
        let mut by_request: FastMap<&'c str, Vec<usize>> = FastMap::default();
        for (at, ch) in changes.iter().enumerate() {
            if let Some(r) = send_of(ch) {
                by_request.entry(r).or_default().push(at);
            }
        }
        SendPlan { changes, by_request }
    }

    /// The positions of `request`'s changes after `at`.
    fn after(&self, request: &str, at: usize) -> impl Iterator<Item = usize> + '_ {
        self.by_request.get(request).into_iter().flatten().copied().filter(move |&j| j > at)
    }

    /// The position of the change that last accepted `request` before `at`, if any.
    fn accepted_before(&self, request: &str, at: usize) -> Option<usize> {
        let list = self.by_request.get(request)?;
        list.iter().copied().filter(|&j| j < at).rev().find(|&j| matches!(self.changes[j], Change::SendAccepted { .. }))
    }

    /// True when change `at` writes nothing: its send is finished later in the batch (the finish
    /// deletes every row of it), or it is folded into the insert of its send accepted earlier in
    /// the batch, or it finishes a send whose rows were never written.
    fn skipped(&self, at: usize, ch: &Change) -> bool {
        let Some(request) = send_of(ch) else { return false };
        if self.after(request, at).any(|j| matches!(self.changes[j], Change::SendFinished { .. })) {
            return true;
        }
        match ch {
            Change::SendAccepted { .. } => false,
            // Rows of a send accepted earlier in the batch were never written: nothing to delete
            // (a request id is never accepted twice while its rows exist).
            Change::SendFinished { .. } => self.accepted_before(request, at).is_some(),
            _ => self.accepted_before(request, at).is_some(),
        }
    }

    /// The state at the end of the batch of a send accepted at `at` (which is not finished in
    /// it): whether SENT was emitted, and each of its `n` chunks.
    fn folded(&self, at: usize, request: &str, n: usize) -> (bool, Vec<ChunkState<'c>>) {
        let mut sent = false;
        let mut chunks = vec![ChunkState::default(); n];
        for j in self.after(request, at) {
            match &self.changes[j] {
                Change::ChunkWrapped { index, lamport, bytes, .. } => {
                    if let Some(c) = chunks.get_mut(*index as usize) {
                        c.wrapped = Some((*lamport, bytes));
                    }
                }
                Change::ChunkAcked { index, .. } => {
                    if let Some(c) = chunks.get_mut(*index as usize) {
                        (c.wrapped, c.acked) = (None, true);
                    }
                }
                Change::ChunkRetransmitted { index, count, .. } => {
                    if let Some(c) = chunks.get_mut(*index as usize) {
                        c.retransmissions = *count;
                    }
                }
                Change::ChunkPossiblyAcked { index, count, .. } => {
                    if let Some(c) = chunks.get_mut(*index as usize) {
                        c.possible_acks = *count;
                    }
                }
                Change::SendSent { .. } => sent = true,
                _ => {}
            }
        }
        (sent, chunks)
    }
}

/// The send a change is about, if any.
fn send_of(ch: &Change) -> Option<&str> {
    match ch {
        Change::SendAccepted { request, .. }
        | Change::ChunkWrapped { request, .. }
        | Change::ChunkAcked { request, .. }
        | Change::ChunkRetransmitted { request, .. }
        | Change::ChunkPossiblyAcked { request, .. }
        | Change::SendSent { request }
        | Change::SendFinished { request } => Some(request),
        Change::Buffered { .. } | Change::Unbuffered { .. } | Change::PartialChunk { .. } | Change::PartialDone { .. } => None,
    }
}

/// Reads the stored state of channel `key`.
pub(super) fn load_snapshot(conn: &Connection, key: ChannelKey) -> rusqlite::Result<ChannelSnapshot> {
    let mut snap = ChannelSnapshot::default();
    type StateRow = (Option<i64>, Option<i64>, Option<i64>, Option<i64>);
    let state: Option<StateRow> = conn
        .prepare_cached("SELECT lamport_bound, wrap_bound, rln_epoch, rln_used FROM channel_state WHERE channel = ?1")?
        .query_row([key], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .optional()?;
    if let Some((lamport, wrap, epoch, used)) = state {
        if let (Some(l), Some(w)) = (lamport, wrap) {
            snap.clocks = Some(ClockBounds { lamport: l as u64, wrap_ns: w as u64 });
        }
        if let (Some(e), Some(u)) = (epoch, used) {
            snap.rln = Some((e as u64, u32::try_from(u).unwrap_or(u32::MAX)));
        }
    }
    let mut st = conn.prepare_cached("SELECT id, lamport, sender, hint FROM log WHERE channel = ?1 ORDER BY rowid")?;
    let rows = st.query_map([key], |r| {
        Ok(LogEntry {
            message_id: r.get::<_, String>(0)?.into(),
            lamport_timestamp: r.get::<_, i64>(1)? as u64,
            sender_id: r.get::<_, Option<String>>(2)?.map(Into::into),
            retrieval_hint: r.get::<_, Option<Vec<u8>>>(3)?.map(Bytes::from),
        })
    })?;
    for e in rows {
        snap.log.push(e?);
    }
    let mut chunks: HashMap<String, Vec<(u32, StoredChunk)>> = HashMap::new();
    let mut st = conn.prepare_cached(
        "SELECT request_id, idx, id, frame, lamport, wrapped, acked, retransmissions, possible_acks FROM send_chunks WHERE channel = ?1",
    )?;
    let rows = st.query_map([key], |r| {
        let wrapped = match (r.get::<_, Option<i64>>(4)?, r.get::<_, Option<Vec<u8>>>(5)?) {
            (Some(l), Some(b)) => Some((l as u64, Bytes::from(b))),
            _ => None,
        };
        let chunk = StoredChunk {
            id: r.get::<_, String>(2)?.into(),
            frame: r.get::<_, Option<Vec<u8>>>(3)?.map(Bytes::from),
            wrapped,
            acked: r.get::<_, bool>(6)?,
            retransmissions: r.get(7)?,
            possible_acks: r.get(8)?,
        };
        Ok((r.get::<_, String>(0)?, r.get::<_, u32>(1)?, chunk))
    })?;
    for row in rows {
        let (request, idx, chunk) = row?;
        chunks.entry(request).or_default().push((idx, chunk));
    }
    let mut st = conn.prepare_cached("SELECT request_id, ephemeral, bytes, sent FROM sends WHERE channel = ?1 ORDER BY rowid")?;
    let rows = st.query_map([key], |r| Ok((r.get::<_, String>(0)?, r.get::<_, bool>(1)?, r.get::<_, i64>(2)?, r.get::<_, bool>(3)?)))?;
    for row in rows {
        let (request_id, ephemeral, bytes, sent) = row?;
        let mut cs = chunks.remove(&request_id).unwrap_or_default();
        cs.sort_by_key(|c| c.0);
        let chunks = cs.into_iter().map(|c| c.1).collect();
        snap.sends.push(StoredSend { request_id, ephemeral, bytes: usize::try_from(bytes).unwrap_or(0), sent, chunks });
    }
    let mut st = conn.prepare_cached("SELECT bytes, hint FROM incoming WHERE channel = ?1 ORDER BY rowid")?;
    let rows = st.query_map([key], |r| {
        Ok(StoredIncoming { bytes: Bytes::from(r.get::<_, Vec<u8>>(0)?), hint: r.get::<_, Option<Vec<u8>>>(1)?.map(Bytes::from) })
    })?;
    for row in rows {
        snap.incoming.push(row?);
    }
    let mut st = conn.prepare_cached("SELECT sender, at, frame FROM partials WHERE channel = ?1 ORDER BY rowid")?;
    let rows = st.query_map([key], |r| {
        Ok(StoredPartialChunk { sender_id: r.get(0)?, at: r.get::<_, i64>(1)? as u64, frame: Bytes::from(r.get::<_, Vec<u8>>(2)?) })
    })?;
    for row in rows {
        snap.partials.push(row?);
    }
    Ok(snap)
}
