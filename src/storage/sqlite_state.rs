//! The channel-state tables of [`super::SqliteStore`] (schema version 2): the statements that
//! apply a channel's changes (when the journal is folded, `sqlite_journal.rs`), and the reads of
//! its snapshot.
//! Every statement is a prepared, cached one; every change touches the rows it names only.

use std::collections::HashMap;

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

/// The tables holding rows of a channel, keyed by a `channel` column (purge deletes from each).
pub(super) const STATE_TABLE_NAMES: [&str; 6] = ["channel_state", "log", "sends", "send_chunks", "incoming", "partials"];

/// A clock value or epoch as SQLite's signed integer, bit for bit (read back with `as u64`).
fn i(v: u64) -> i64 {
    v as i64
}

/// Applies `c`, the changes of channel `key`, in order.
pub(super) fn write_changes(tx: &Transaction<'_>, key: ChannelKey, c: &ChannelChanges) -> rusqlite::Result<()> {
    for l in &c.log {
        match l {
            LogChange::Insert(e) => {
                let mut st = tx.prepare_cached("INSERT OR REPLACE INTO log (channel, id, lamport, sender, hint) VALUES (?1, ?2, ?3, ?4, ?5)")?;
                st.execute(params![key, &*e.message_id, i(e.lamport_timestamp), e.sender_id.as_deref(), e.retrieval_hint.as_deref()])?;
            }
            LogChange::Remove(id) => {
                tx.prepare_cached("DELETE FROM log WHERE channel = ?1 AND id = ?2")?.execute(params![key, &**id])?;
            }
            LogChange::Hint(id, hint) => {
                tx.prepare_cached("UPDATE log SET hint = ?3 WHERE channel = ?1 AND id = ?2")?.execute(params![key, &**id, &hint[..]])?;
            }
        }
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
