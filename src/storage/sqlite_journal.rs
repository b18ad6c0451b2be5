//! The journal: a commit appends what its batch changed in the outbox (event rows written and
//! deleted) and in the channels' own state as one row, instead of applying it to the `events`
//! table and the tables of `sqlite_state.rs` row by row (which wrote a page per table touched
//! and, for every row keyed by a random message or request id, a page of its index). Schema
//! version 4 appended the rows to the `journal` table (still read and folded at the open);
//! version 5 appends them to the journal file (`journal_file.rs`): one `pwrite`, no SQLite
//! transaction, nothing the WAL checkpoint copies again.
//!
//! [`fold`] applies the journal to the tables, in order, in one transaction, and deletes it: from
//! [`JOURNAL_FOLD_ROWS`] rows or [`JOURNAL_FOLD_BYTES`] bytes on (after a batch was released, off
//! the commit path), before the outbox or a snapshot is read or a channel purged, and when the
//! database is opened. An event row written and deleted within the folded rows is never written
//! to `events`; the changes of all folded rows of a channel go through one `write_changes`, whose
//! plan writes nothing for a send accepted and finished within them: most events and sends never
//! reach the tables at all.
//!
//! A row is the encoding below ([`encode`]/[`decode`]): a format byte, the event rows (seq,
//! channel, the outbox columns), the delivered seqs, then per channel its key, the log changes,
//! the other changes, the clock bounds and the RLN usage; integers as LEB128, strings and blobs
//! with their length first. A row that does not decode (a damaged file) refuses the database at
//! the open, never a panic.

use std::collections::BTreeMap;

use bytes::Bytes;
use rusqlite::{params, Connection, TransactionBehavior};

use super::journal_file::{self, Found, JournalFile};
use super::sqlite_state::{self, LogRows};
use super::{event_columns, event_from_columns, Batch, ChannelKey, StorageError};
use crate::channel::{Change, ChannelChanges, ChannelEvent, ClockBounds};
use crate::collections::FastMap;
use crate::sds::{LogChange, LogEntry};

/// Migration 3 → 4, also part of every new database: the journal (and the log found by rowid,
/// `sqlite_state::LOG_BY_ROWID`, the same migration).
pub(super) const JOURNAL_TABLE: &str = "
CREATE TABLE journal (
    seq INTEGER PRIMARY KEY,
    batch BLOB NOT NULL
);
";

/// Journal rows from which [`super::Store::maintain`] folds the journal into the tables. A larger
/// journal lets more sends be accepted and finished before a fold (they are then never written
/// to the tables) but makes each fold (a pause of the runtime thread) and the fold at a reopen
/// longer.
pub const JOURNAL_FOLD_ROWS: u32 = 1_024;
/// Journal bytes from which the journal is folded (bounds the memory a fold reads at once, with
/// the batch that crossed it).
pub const JOURNAL_FOLD_BYTES: u64 = 8 << 20;

/// Format byte of a journal row.
const FORMAT: u8 = 1;

/// What the journal holds since the last fold: counted, and merged (the same data as the rows,
/// kept so that a fold does not read the rows back: a `Bytes` is shared, not copied).
#[derive(Debug)]
pub(super) struct Journal {
    pub rows: u32,
    pub bytes: u64,
    /// The encoding buffer, reused by every append.
    buf: Vec<u8>,
    merged: Merged,
    /// Where the rows are appended (version 5: `journal_file.rs`).
    pub file: JournalFile,
}

/// A run of journal rows merged: the event rows they write and do not delete again, the rows of
/// `events` they delete, and each channel's changes concatenated in order (applying the
/// concatenation is applying the rows one after the other: see `sqlite_state::write_changes`).
#[derive(Debug, Default)]
struct Merged {
    events: BTreeMap<u64, (ChannelKey, ChannelEvent)>,
    deleted: Vec<u64>,
    channels: Vec<(ChannelKey, ChannelChanges)>,
    at: FastMap<ChannelKey, usize>,
}

/// A journal row as decoded.
#[derive(Debug, Default, PartialEq)]
pub(super) struct Row {
    pub events: Vec<(u64, ChannelKey, ChannelEvent)>,
    pub delivered: Vec<u64>,
    pub channels: Vec<(ChannelKey, ChannelChanges)>,
}

impl Merged {
    /// The rows of one batch, merged.
    fn of_batch(batch: &Batch<'_>) -> Merged {
        let mut m = Merged::default();
        m.push_batch(batch);
        m
    }

    fn push_batch(&mut self, batch: &Batch<'_>) {
        for e in &batch.events {
            self.events.insert(e.seq, (e.channel, e.event.clone()));
        }
        self.deliver(&batch.delivered);
        for (key, c) in batch.channels.iter().filter(|(_, c)| !c.is_empty()) {
            self.push(*key, c.clone());
        }
    }

    fn push_row(&mut self, row: Row) {
        for (seq, key, e) in row.events {
            self.events.insert(seq, (key, e));
        }
        self.deliver(&row.delivered);
        for (key, c) in row.channels {
            self.push(key, c);
        }
    }

    /// Delivered events: a row written in the run is not written at all (seqs are never reused).
    fn deliver(&mut self, seqs: &[u64]) {
        for &seq in seqs {
            if self.events.remove(&seq).is_none() {
                self.deleted.push(seq);
            }
        }
    }

    fn push(&mut self, key: ChannelKey, c: ChannelChanges) {
        let i = *self.at.entry(key).or_insert_with(|| {
            self.channels.push((key, ChannelChanges::default()));
            self.channels.len() - 1
        });
        let m = &mut self.channels[i].1;
        m.log.extend(c.log);
        m.changes.extend(c.changes);
        m.clocks = c.clocks.or(m.clocks);
        m.rln = c.rln.or(m.rln);
    }

    /// Deletes the journal's rows and applies the changes to the tables, in `tx`: in this order,
    /// so that the rows written reuse the journal's pages (a database at its size limit can
    /// still be folded).
    fn write(&self, tx: &rusqlite::Transaction<'_>, log_rows: &mut LogRows) -> rusqlite::Result<()> {
        tx.execute("DELETE FROM journal", [])?;
        if !self.events.is_empty() {
            let mut st = tx.prepare_cached(
                "INSERT INTO events (seq, channel, kind, request_id, sender_id, payload, error) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )?;
            for (&seq, (key, e)) in &self.events {
                let (kind, request_id, sender_id, payload, error) = event_columns(e);
                st.execute(params![seq_i64(seq)?, key, kind, request_id, sender_id, payload, error])?;
            }
        }
        if !self.deleted.is_empty() {
            let mut st = tx.prepare_cached("DELETE FROM events WHERE seq = ?1")?;
            for &seq in &self.deleted {
                st.execute([seq_i64(seq)?])?;
            }
        }
        for (key, changes) in &self.channels {
            sqlite_state::write_changes(tx, *key, changes, log_rows)?;
        }
        Ok(())
    }
}

impl Journal {
    /// True when [`fold`] is due.
    pub fn full(&self) -> bool {
        self.rows >= JOURNAL_FOLD_ROWS || self.bytes >= JOURNAL_FOLD_BYTES
    }

    /// A journal appending to `file` (emptied: the open folded what it held).
    pub fn new(file: JournalFile) -> Journal {
        Journal { rows: 0, bytes: 0, buf: Vec::new(), merged: Merged::default(), file }
    }

    /// Encodes the row of `batch` (`None` when it has nothing for the journal); [`Journal::append`]
    /// appends it.
    pub fn encode(&mut self, batch: &Batch<'_>) -> Option<u64> {
        if !journalled(batch) {
            return None;
        }
        self.buf.clear();
        self.buf.resize(journal_file::RECORD_HEADER, 0);
        encode(batch, &mut self.buf);
        Some((self.buf.len() - journal_file::RECORD_HEADER) as u64)
    }

    /// Appends the row [`Journal::encode`] made to the file and keeps what it holds: committed.
    pub fn append(&mut self, batch: &Batch<'_>) -> std::io::Result<()> {
        self.file.append(&mut self.buf)?;
        self.rows += 1;
        self.bytes += (self.buf.len() - journal_file::RECORD_HEADER) as u64;
        self.merged.push_batch(batch);
        Ok(())
    }

    /// Folds what was appended since the last fold (or since the open, which folded) into the
    /// tables, and then `also` (a batch written to the tables directly), in one transaction that
    /// records the last record folded; then empties the file. `log_rows` is stale when it fails.
    pub fn fold(&mut self, conn: &mut Connection, log_rows: &mut LogRows, also: Option<&Batch<'_>>) -> rusqlite::Result<()> {
        if self.rows == 0 && also.is_none() {
            return Ok(());
        }
        // Timed: a fold pauses the runtime thread (`benches/durable.rs` reports these lines).
        let t0 = std::time::Instant::now();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        self.merged.write(&tx, log_rows)?;
        if let Some(batch) = also {
            Merged::of_batch(batch).write(&tx, log_rows)?;
        }
        set_folded(&tx, self.file.last_seq())?;
        tx.commit()?;
        log::debug!("folded {} journal rows in {} µs", self.rows, t0.elapsed().as_micros());
        (self.rows, self.bytes, self.merged) = (0, 0, Merged::default());
        // The records are in the tables now and skipped at an open (`journal_folded`): a file
        // that could not be cut only holds them longer.
        if let Err(e) = self.file.reset() {
            log::warn!("{}: cannot empty the journal after a fold (its records are skipped): {e}", self.file.path().display());
        }
        Ok(())
    }
}

/// Records in `meta` the last journal record the tables hold (`journal_file.rs`).
fn set_folded(tx: &rusqlite::Transaction<'_>, seq: u64) -> rusqlite::Result<()> {
    tx.prepare_cached("INSERT INTO meta (key, value) VALUES ('journal_folded', ?1) ON CONFLICT (key) DO UPDATE SET value = excluded.value")?
        .execute([seq_i64(seq)?])?;
    Ok(())
}

/// Checks that every row of the `journal` table (written by version 4) and every record of the
/// journal file after the last fold (`found`, version 5) decodes, before the open writes
/// anything: a damaged one refuses the database. Returns the file's rows, decoded.
pub(super) fn check_stored(conn: &Connection, path: &std::path::Path, found: &Found) -> Result<Vec<Row>, StorageError> {
    let sql = |e: rusqlite::Error| StorageError(format!("{}: reading the journal: {e}", path.display()));
    let mut st = conn.prepare("SELECT seq, batch FROM journal ORDER BY seq").map_err(sql)?;
    let mut q = st.query([]).map_err(sql)?;
    while let Some(r) = q.next().map_err(sql)? {
        let (seq, blob): (i64, Vec<u8>) = (r.get(0).map_err(sql)?, r.get(1).map_err(sql)?);
        if decode(Bytes::from(blob)).is_none() {
            return Err(StorageError(format!("{}: journal row {seq} is damaged: the database is refused", path.display())));
        }
    }
    let file = journal_file::path_of(path);
    found
        .records
        .iter()
        .map(|(seq, b)| {
            decode(b.clone()).ok_or_else(|| StorageError(format!("{}: journal record {seq} is damaged: the database is refused", file.display())))
        })
        .collect()
}

/// Applies the journal to the channel-state tables, in order: the rows of the `journal` table
/// (version 4), deleted, then `file_rows` (the journal file's, checked by [`check_stored`]), in
/// one transaction that records `last_seq` as the last record folded (at the open: what a
/// previous run journalled; the caller then empties the file). Returns the rows folded;
/// `log_rows` is stale when it fails. A table row that does not decode refuses the database (the
/// transaction rolls back, the file stays as it was): dropping it would lose what it records
/// (accepted sends, deliveries), and applying the rows after it without it would break their order.
pub(super) fn fold_stored(
    conn: &mut Connection,
    path: &std::path::Path,
    log_rows: &mut LogRows,
    file_rows: Vec<Row>,
    last_seq: u64,
) -> Result<usize, StorageError> {
    let sql = |what: &'static str| move |e: rusqlite::Error| StorageError(format!("{}: {what}: {e}", path.display()));
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(sql("folding the journal"))?;
    let mut merged = Merged::default();
    let mut rows = 0;
    {
        let mut st = tx.prepare_cached("SELECT seq, batch FROM journal ORDER BY seq").map_err(sql("reading the journal"))?;
        let mut q = st.query([]).map_err(sql("reading the journal"))?;
        while let Some(r) = q.next().map_err(sql("reading the journal"))? {
            rows += 1;
            let (seq, blob): (i64, Vec<u8>) = (r.get(0).map_err(sql("reading the journal"))?, r.get(1).map_err(sql("reading the journal"))?);
            let Some(row) = decode(Bytes::from(blob)) else {
                return Err(StorageError(format!("{}: journal row {seq} is damaged: the database is refused", path.display())));
            };
            merged.push_row(row);
        }
    }
    for row in file_rows {
        rows += 1;
        merged.push_row(row);
    }
    if rows == 0 {
        return Ok(0);
    }
    merged.write(&tx, log_rows).map_err(sql("folding the journal"))?;
    set_folded(&tx, last_seq).map_err(sql("folding the journal"))?;
    tx.commit().map_err(sql("folding the journal"))?;
    Ok(rows)
}

/// Appends LEB128 `v`.
fn put_uint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    put_uint(out, b.len() as u64);
    out.extend_from_slice(b);
}

fn put_opt_bytes(out: &mut Vec<u8>, b: Option<&[u8]>) {
    match b {
        None => out.push(0),
        Some(b) => {
            out.push(1);
            put_bytes(out, b);
        }
    }
}

/// True when `batch` has something for the journal (new channels and the sequence bound are
/// written to their tables directly).
fn journalled(batch: &Batch<'_>) -> bool {
    !batch.events.is_empty() || !batch.delivered.is_empty() || batch.channels.iter().any(|(_, c)| !c.is_empty())
}

/// A sequence number or key as SQLite's signed integer (a damaged value must not wrap silently).
fn seq_i64(seq: u64) -> rusqlite::Result<i64> {
    i64::try_from(seq).map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))
}

fn put_opt_str(out: &mut Vec<u8>, s: Option<&str>) {
    put_opt_bytes(out, s.map(str::as_bytes));
}

/// Encodes the journal row of `batch` (see the module docs).
pub(super) fn encode(batch: &Batch<'_>, out: &mut Vec<u8>) {
    out.push(FORMAT);
    put_uint(out, batch.events.len() as u64);
    for e in &batch.events {
        put_uint(out, e.seq);
        // Keys are positive (`allocate_key`); the bits are kept as they are.
        put_uint(out, e.channel as u64);
        let (kind, request_id, sender_id, payload, error) = event_columns(e.event);
        put_uint(out, kind as u64);
        put_opt_str(out, request_id);
        put_opt_str(out, sender_id);
        put_opt_bytes(out, payload);
        put_opt_str(out, error);
    }
    put_uint(out, batch.delivered.len() as u64);
    for &seq in &batch.delivered {
        put_uint(out, seq);
    }
    let channels = || batch.channels.iter().filter(|(_, c)| !c.is_empty());
    put_uint(out, channels().count() as u64);
    for (key, c) in channels() {
        put_uint(out, *key as u64);
        encode_changes(c, out);
    }
}

/// Encodes one channel's changes.
fn encode_changes(c: &ChannelChanges, out: &mut Vec<u8>) {
    // A chunk wrapped or acknowledged later in the same changes no longer needs its frame (the
    // tables drop it too: `sqlite_state.rs`): it is written empty rather than next to its SDS
    // bytes, which would about double a 1 KiB send's row.
    let mut superseded: FastMap<(&str, u32), usize> = FastMap::default();
    if c.changes.iter().any(|ch| matches!(ch, Change::SendAccepted { .. })) {
        for (at, ch) in c.changes.iter().enumerate() {
            if let Change::ChunkWrapped { request, index, .. } | Change::ChunkAcked { request, index } = ch {
                superseded.insert((request, *index), at);
            }
        }
    }
    put_uint(out, c.log.len() as u64);
    for l in &c.log {
        match l {
            LogChange::Insert(e) => {
                out.push(0);
                put_bytes(out, e.message_id.as_bytes());
                put_uint(out, e.lamport_timestamp);
                put_opt_bytes(out, e.sender_id.as_deref().map(str::as_bytes));
                put_opt_bytes(out, e.retrieval_hint.as_deref());
            }
            LogChange::Remove(id) => {
                out.push(1);
                put_bytes(out, id.as_bytes());
            }
            LogChange::Hint(id, hint) => {
                out.push(2);
                put_bytes(out, id.as_bytes());
                put_bytes(out, hint);
            }
        }
    }
    put_uint(out, c.changes.len() as u64);
    for (at, ch) in c.changes.iter().enumerate() {
        match ch {
            Change::SendAccepted { request, ephemeral, bytes, chunks } => {
                out.push(0);
                put_bytes(out, request.as_bytes());
                out.push(u8::from(*ephemeral));
                put_uint(out, *bytes as u64);
                put_uint(out, chunks.len() as u64);
                for (index, (id, frame)) in chunks.iter().enumerate() {
                    put_bytes(out, id.as_bytes());
                    let later = u32::try_from(index).ok().and_then(|i| superseded.get(&(&**request, i))).is_some_and(|&j| j > at);
                    put_bytes(out, if later { &[] } else { frame });
                }
            }
            Change::ChunkWrapped { request, index, lamport, bytes } => {
                out.push(1);
                put_bytes(out, request.as_bytes());
                put_uint(out, u64::from(*index));
                put_uint(out, *lamport);
                put_bytes(out, bytes);
            }
            Change::ChunkAcked { request, index } => {
                out.push(2);
                put_bytes(out, request.as_bytes());
                put_uint(out, u64::from(*index));
            }
            Change::ChunkRetransmitted { request, index, count } => {
                out.push(3);
                put_bytes(out, request.as_bytes());
                put_uint(out, u64::from(*index));
                put_uint(out, u64::from(*count));
            }
            Change::ChunkPossiblyAcked { request, index, count } => {
                out.push(4);
                put_bytes(out, request.as_bytes());
                put_uint(out, u64::from(*index));
                put_uint(out, u64::from(*count));
            }
            Change::SendSent { request } => {
                out.push(5);
                put_bytes(out, request.as_bytes());
            }
            Change::SendFinished { request } => {
                out.push(6);
                put_bytes(out, request.as_bytes());
            }
            Change::Buffered { id, at, bytes, hint } => {
                out.push(7);
                put_bytes(out, id.as_bytes());
                put_uint(out, *at);
                put_bytes(out, bytes);
                put_opt_bytes(out, hint.as_deref());
            }
            Change::Unbuffered { id } => {
                out.push(8);
                put_bytes(out, id.as_bytes());
            }
            Change::PartialChunk { sender, request, index, at, frame } => {
                out.push(9);
                put_bytes(out, sender.as_bytes());
                put_bytes(out, request.as_bytes());
                put_uint(out, u64::from(*index));
                put_uint(out, *at);
                put_bytes(out, frame);
            }
            Change::PartialDone { sender, request } => {
                out.push(10);
                put_bytes(out, sender.as_bytes());
                put_bytes(out, request.as_bytes());
            }
        }
    }
    match c.clocks {
        None => out.push(0),
        Some(b) => {
            out.push(1);
            put_uint(out, b.lamport);
            put_uint(out, b.wrap_ns);
        }
    }
    match c.rln {
        None => out.push(0),
        Some((epoch, used)) => {
            out.push(1);
            put_uint(out, epoch);
            put_uint(out, u64::from(used));
        }
    }
}

/// A reader of an encoded row: every read is `None` past the end or on a malformed value.
struct Reader {
    b: Bytes,
    at: usize,
}

impl Reader {
    fn u8(&mut self) -> Option<u8> {
        let v = *self.b.get(self.at)?;
        self.at += 1;
        Some(v)
    }

    fn uint(&mut self) -> Option<u64> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = self.u8()?;
            v |= u64::from(byte & 0x7f).checked_shl(shift)?;
            if byte & 0x80 == 0 {
                return Some(v);
            }
        }
        None
    }

    fn u32(&mut self) -> Option<u32> {
        u32::try_from(self.uint()?).ok()
    }

    /// A count of elements: each takes at least one byte, so a count beyond the bytes left is
    /// damage, not a reason to reserve memory.
    fn count(&mut self) -> Option<usize> {
        usize::try_from(self.uint()?).ok().filter(|&n| n <= self.b.len().saturating_sub(self.at))
    }

    fn flag(&mut self) -> Option<bool> {
        match self.u8()? {
            0 => Some(false),
            1 => Some(true),
            _ => None,
        }
    }

    /// A length-prefixed blob, shared with the row's buffer (no copy).
    fn bytes(&mut self) -> Option<Bytes> {
        let n = usize::try_from(self.uint()?).ok()?;
        let end = self.at.checked_add(n).filter(|&e| e <= self.b.len())?;
        let out = self.b.slice(self.at..end);
        self.at = end;
        Some(out)
    }

    fn str(&mut self) -> Option<std::sync::Arc<str>> {
        let b = self.bytes()?;
        Some(std::str::from_utf8(&b).ok()?.into())
    }

    fn opt_bytes(&mut self) -> Option<Option<Bytes>> {
        Some(if self.flag()? { Some(self.bytes()?) } else { None })
    }

    fn opt_str(&mut self) -> Option<Option<std::sync::Arc<str>>> {
        Some(if self.flag()? { Some(self.str()?) } else { None })
    }

    fn opt_string(&mut self) -> Option<Option<String>> {
        Some(self.opt_str()?.map(|s| s.to_string()))
    }

    fn key(&mut self) -> Option<ChannelKey> {
        Some(self.uint()? as ChannelKey)
    }
}

/// Decodes a row written by [`encode`]; `None` when it is not one (damaged).
pub(super) fn decode(b: Bytes) -> Option<Row> {
    let mut r = Reader { b, at: 0 };
    if r.u8()? != FORMAT {
        return None;
    }
    let mut row = Row::default();
    for _ in 0..r.count()? {
        let (seq, key, kind) = (r.uint()?, r.key()?, i64::try_from(r.uint()?).ok()?);
        let (request_id, sender_id) = (r.opt_string()?, r.opt_string()?);
        let payload = r.opt_bytes()?.map(|b| b.to_vec());
        let event = event_from_columns(kind, request_id, sender_id, payload, r.opt_string()?)?;
        row.events.push((seq, key, event));
    }
    for _ in 0..r.count()? {
        row.delivered.push(r.uint()?);
    }
    for _ in 0..r.count()? {
        let key = r.key()?;
        row.channels.push((key, decode_changes(&mut r)?));
    }
    // Trailing bytes are damage too.
    (r.at == r.b.len()).then_some(row)
}

/// Decodes one channel's changes.
fn decode_changes(r: &mut Reader) -> Option<ChannelChanges> {
    let mut c = ChannelChanges::default();
    let n = r.count()?;
    for _ in 0..n {
        c.log.push(match r.u8()? {
            0 => LogChange::Insert(LogEntry {
                message_id: r.str()?,
                lamport_timestamp: r.uint()?,
                sender_id: r.opt_str()?,
                retrieval_hint: r.opt_bytes()?,
            }),
            1 => LogChange::Remove(r.str()?),
            2 => LogChange::Hint(r.str()?, r.bytes()?),
            _ => return None,
        });
    }
    let n = r.count()?;
    for _ in 0..n {
        c.changes.push(match r.u8()? {
            0 => {
                let (request, ephemeral, bytes) = (r.str()?, r.flag()?, usize::try_from(r.uint()?).ok()?);
                let k = r.count()?;
                let mut chunks = Vec::with_capacity(k);
                for _ in 0..k {
                    chunks.push((r.str()?, r.bytes()?));
                }
                Change::SendAccepted { request, ephemeral, bytes, chunks }
            }
            1 => Change::ChunkWrapped { request: r.str()?, index: r.u32()?, lamport: r.uint()?, bytes: r.bytes()? },
            2 => Change::ChunkAcked { request: r.str()?, index: r.u32()? },
            3 => Change::ChunkRetransmitted { request: r.str()?, index: r.u32()?, count: r.u32()? },
            4 => Change::ChunkPossiblyAcked { request: r.str()?, index: r.u32()?, count: r.u32()? },
            5 => Change::SendSent { request: r.str()? },
            6 => Change::SendFinished { request: r.str()? },
            7 => Change::Buffered { id: r.str()?, at: r.uint()?, bytes: r.bytes()?, hint: r.opt_bytes()? },
            8 => Change::Unbuffered { id: r.str()? },
            9 => Change::PartialChunk { sender: r.str()?, request: r.str()?, index: r.u32()?, at: r.uint()?, frame: r.bytes()? },
            10 => Change::PartialDone { sender: r.str()?, request: r.str()? },
            _ => return None,
        });
    }
    if r.flag()? {
        c.clocks = Some(ClockBounds { lamport: r.uint()?, wrap_ns: r.uint()? });
    }
    if r.flag()? {
        c.rln = Some((r.uint()?, r.u32()?));
    }
    Some(c)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::EventRow;

    fn sample() -> ChannelChanges {
        let b = |v: &[u8]| Bytes::copy_from_slice(v);
        ChannelChanges {
            log: vec![
                LogChange::Insert(LogEntry {
                    message_id: "m1".into(),
                    lamport_timestamp: u64::MAX,
                    sender_id: Some("bob".into()),
                    retrieval_hint: None,
                }),
                LogChange::Insert(LogEntry { message_id: "m2".into(), lamport_timestamp: 7, sender_id: None, retrieval_hint: Some(b(b"h")) }),
                LogChange::Remove("m0".into()),
                LogChange::Hint("m1".into(), b(&[0, 1, 2])),
            ],
            changes: vec![
                Change::SendAccepted {
                    request: "r".into(),
                    ephemeral: true,
                    bytes: 300,
                    chunks: vec![("c0".into(), b(&[9; 200])), ("c1".into(), b(b""))],
                },
                Change::ChunkWrapped { request: "r".into(), index: 1, lamport: 1 << 40, bytes: b(b"sds") },
                Change::ChunkAcked { request: "r".into(), index: 0 },
                Change::ChunkRetransmitted { request: "r".into(), index: 1, count: u32::MAX },
                Change::ChunkPossiblyAcked { request: "r".into(), index: 1, count: 3 },
                Change::SendSent { request: "r".into() },
                Change::SendFinished { request: "r".into() },
                Change::Buffered { id: "i".into(), at: 12, bytes: b(b"x"), hint: Some(b(b"y")) },
                Change::Unbuffered { id: "i".into() },
                Change::PartialChunk { sender: "s".into(), request: "q".into(), index: 2, at: 5, frame: b(b"f") },
                Change::PartialDone { sender: "s".into(), request: "q".into() },
            ],
            clocks: Some(ClockBounds { lamport: 1, wrap_ns: 2 }),
            rln: Some((3, 4)),
        }
    }

    fn events() -> Vec<ChannelEvent> {
        vec![
            ChannelEvent::Received { request_id: "r".into(), sender_id: "bob".into(), payload: vec![1, 2, 3] },
            ChannelEvent::Sent { request_id: "s".into() },
            ChannelEvent::Lost { request_id: None, sender_id: Some("carol".into()), error: "gone".into() },
        ]
    }

    fn row(changes: &[(ChannelKey, ChannelChanges)], events: &[ChannelEvent]) -> Row {
        let events = events.iter().enumerate().map(|(i, e)| (u64::MAX - i as u64, 7, e.clone())).collect();
        let mut channels: Vec<_> = changes.iter().filter(|(_, c)| !c.is_empty()).cloned().collect();
        // `sample` wraps chunk 1 and acknowledges chunk 0 after accepting them: their frames
        // are not written.
        for (_, c) in &mut channels {
            if let Some(Change::SendAccepted { chunks, .. }) = c.changes.first_mut() {
                for (_, frame) in chunks {
                    *frame = Bytes::new();
                }
            }
        }
        Row { events, delivered: vec![3, 1 << 50], channels }
    }

    fn encoded(changes: &[(ChannelKey, ChannelChanges)], events: &[ChannelEvent]) -> Vec<u8> {
        let rows = events.iter().enumerate().map(|(i, e)| EventRow { seq: u64::MAX - i as u64, channel: 7, event: e }).collect();
        let batch = Batch { events: rows, delivered: vec![3, 1 << 50], channels: changes, ..Batch::default() };
        let mut out = Vec::new();
        encode(&batch, &mut out);
        out
    }

    #[test]
    fn every_change_survives_its_encoding() {
        let changes = [(1, sample()), (2, ChannelChanges::default()), (i64::MAX, sample())];
        let events = events();
        assert_eq!(decode(Bytes::from(encoded(&changes, &events))), Some(row(&changes, &events)));
        assert_eq!(decode(Bytes::from(encoded(&[], &[]))), Some(row(&[], &[])));
    }

    #[test]
    fn a_frame_is_written_unless_its_chunk_is_wrapped_later_in_the_row() {
        let accepted = |request: &str| Change::SendAccepted {
            request: request.into(),
            ephemeral: false,
            bytes: 4,
            chunks: vec![("c0".into(), Bytes::from_static(b"f0")), ("c1".into(), Bytes::from_static(b"f1"))],
        };
        let wrap = |request: &str| Change::ChunkWrapped { request: request.into(), index: 1, lamport: 1, bytes: Bytes::from_static(b"w") };
        // "b" was wrapped before this accept (another send of the same id, already finished):
        // its frames stay.
        let changes = vec![accepted("a"), wrap("a"), wrap("b"), accepted("b")];
        let c = [(1, ChannelChanges { changes, ..ChannelChanges::default() })];
        let batch = Batch { channels: &c, ..Batch::default() };
        let mut out = Vec::new();
        encode(&batch, &mut out);
        let row = decode(Bytes::from(out)).unwrap();
        let frames = |at: usize| match &row.channels[0].1.changes[at] {
            Change::SendAccepted { chunks, .. } => chunks.iter().map(|(_, f)| f.clone()).collect::<Vec<_>>(),
            other => panic!("{other:?}"),
        };
        assert_eq!(frames(0), [Bytes::from_static(b"f0"), Bytes::new()]);
        assert_eq!(frames(3), [Bytes::from_static(b"f0"), Bytes::from_static(b"f1")]);
    }

    #[test]
    fn a_damaged_row_decodes_to_nothing_and_never_panics() {
        let out = encoded(&[(1, sample())], &events());
        for cut in 0..out.len() {
            assert_eq!(decode(Bytes::copy_from_slice(&out[..cut])), None, "cut at {cut}");
        }
        let mut longer = out.clone();
        longer.push(0);
        assert_eq!(decode(Bytes::from(longer)), None, "trailing bytes");
        let mut other = out.clone();
        other[0] = FORMAT + 1;
        assert_eq!(decode(Bytes::from(other)), None, "unknown format");
        // A huge count reserves nothing.
        let mut huge = vec![FORMAT];
        put_uint(&mut huge, u64::MAX);
        assert_eq!(decode(Bytes::from(huge)), None);
        // Every single-byte corruption: a result or None, never a panic.
        for at in 0..out.len() {
            for v in [0u8, 0x7f, 0x80, 0xff] {
                let mut d = out.clone();
                d[at] = v;
                let _ = decode(Bytes::from(d));
            }
        }
    }
}
