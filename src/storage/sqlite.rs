//! [`SqliteStore`]: the manager's database file.
//!
//! Open, in this order, refusing before anything is written (a refused file is left byte for
//! byte as it was):
//! 1. the lock: `flock` on the database file, taken without waiting. The kernel releases it when
//!    the process dies (`kill -9` included) and it is per open file, so a second manager of the
//!    same process is refused too. SQLite's own locks are `fcntl` locks, which `flock` does not
//!    touch; the locked descriptor stays open until after the connection is closed (closing
//!    another descriptor of the file would drop SQLite's `fcntl` locks).
//! 2. the header, read as bytes: an empty file is a new database; otherwise the SQLite magic, our
//!    [`APPLICATION_ID`] (an empty SQLite database without one is adopted, any other is foreign),
//!    and `user_version` ([`SCHEMA_VERSION`]; newer is refused, older is migrated when a migration
//!    exists, else refused).
//! 3. SQLite: the tables are read (a damaged file fails here), a new database gets its schema
//!    (4 KiB pages, see [`PAGE_SIZE`]) in one transaction, then WAL and `synchronous` per
//!    [`Durability`].
//!
//! A commit appends the batch's outbox rows, deliveries and channel changes as one record to the
//! journal file (`journal_file.rs`, checked at the open before anything is written: step 2 above
//! covers it too), folded into the tables later in one transaction (`sqlite_journal.rs`); new
//! channels and the sequence bound go to their tables first, in a transaction of their own.
//!
//! Checkpoints are off the commit path and off the runtime thread: SQLite's automatic checkpoint
//! (run inside the commit that crosses `wal_autocheckpoint`, with its fsyncs) is replaced by a WAL
//! hook that only counts the WAL's pages; from [`CHECKPOINT_PAGES`] on, [`Store::maintain`] asks
//! the checkpoint thread (`checkpoint.rs`, a second connection: hence SQLite's normal locking mode
//! with its `-shm` file, the `flock` above still keeping other managers out) for a `PASSIVE`
//! checkpoint. Under a load that never leaves the WAL fully copied for a moment, the WAL cannot
//! start over; from [`WAL_BOUND_PAGES`] on, `maintain` checkpoints on the runtime thread itself
//! (after the batch was released: no caller waits for it), which bounds the WAL.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::Read;
use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use crate::channel::ChannelSnapshot;
use rusqlite::{params, Connection, OpenFlags, OptionalExtension, TransactionBehavior};

use super::checkpoint::{self, Checkpointer};
use super::journal_file::JournalFile;
use super::sqlite_journal::{self, Journal, JOURNAL_TABLE};
use super::sqlite_state::{self, LogRows, CHUNK_COUNTS, LOG_BY_ROWID, STATE_TABLES, STATE_TABLE_NAMES};
use super::{event_from_columns, Batch, ChannelKey, ChannelRecord, Durability, StorageConfig, StorageError, Store, StoredEvent};

/// `PRAGMA application_id` of a reliable-channel database ("RlCh").
pub const APPLICATION_ID: u32 = 0x526C_4368;
/// `PRAGMA user_version` this library writes and reads.
pub const SCHEMA_VERSION: u32 = 5;
/// Page size of a new database. A commit writes every page it touches to the WAL, whole: with
/// schema 3 a 1 KiB send touched about ten (the channel-state tables and their indexes), and
/// 4 KiB pages cost a quarter of 16 KiB ones there (`make bench-durable`: 1,900 against 1,560
/// sends/s, p99 of `send` 14 against 59 ms), for 24.6 against 16.8 ms per 1 MiB send. With the
/// journal (version 4, a file since version 5) a commit writes no page: the folds write the
/// tables' pages in bulk. Set at creation only.
const PAGE_SIZE: i64 = 4 * 1024;
/// SQLite's page cache of the store's connection, KiB (SQLite's default is 2,000). Holds what a
/// fold of the journal rewrites and frees (the tables' recent pages, the journal's own) without
/// reading them back from the WAL; SQLite fills it only as pages are used.
const CACHE_KIB: i64 = 16 * 1024;
/// Prepared statements kept (the commit path uses about twenty).
const STATEMENT_CACHE: usize = 48;

/// WAL pages from which the checkpoint thread is asked for a checkpoint (16 MiB). A checkpoint
/// copies each page once however often the WAL holds it: four times SQLite's default threshold
/// copies fewer pages per send (`make bench-durable`: 9,600 against 8,600 msgs/s with `process`).
pub const CHECKPOINT_PAGES: u32 = 4_000;
/// WAL pages from which the runtime thread checkpoints itself after a batch: the bound of the WAL
/// (plus one batch) under a load that leaves the checkpoint thread no moment to copy all of it.
pub const WAL_BOUND_PAGES: u32 = 16_000;
/// `journal_size_limit`: a WAL that grew beyond is cut back to this when it starts over. Above
/// what it reaches between two checkpoints under a steady load: a WAL cut back at every start
/// over is extended again page by page (the file system allocates its blocks anew each time).
const WAL_KEEP_BYTES: i64 = 2 * CHECKPOINT_PAGES as i64 * PAGE_SIZE;
/// How long a statement waits for a lock the checkpoint thread holds for a moment (it never holds
/// one for long; an error here would stop the manager's storage).
const BUSY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// The first bytes of every SQLite database file.
const MAGIC: &[u8; 16] = b"SQLite format 3\0";
/// Size of the database header.
const HEADER_BYTES: usize = 100;

/// Migrations from an older schema: `MIGRATIONS[i]` takes version `i + 1` to `i + 2`. Version 2
/// adds the channel state's tables (`sqlite_state.rs`), version 3 a chunk's counts of
/// retransmissions and bloom filter hits, version 4 the journal (`sqlite_journal.rs`) and the log
/// without its index on message ids (`sqlite_state.rs`), version 5 the journal file (no statement:
/// the version number keeps a version 4 library, which would not read the file, out); the
/// statements of a step run in one transaction.
const MIGRATIONS: &[&[&str]] = &[&[STATE_TABLES], &[CHUNK_COUNTS], &[JOURNAL_TABLE, LOG_BY_ROWID], &[]];

/// The schema of version 1; a new database gets it and then every migration, in the same
/// transaction. `seq` is the rowid (the natural key); `meta` is keyed by name.
const SCHEMA: &str = "
CREATE TABLE meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE channels (
    key INTEGER PRIMARY KEY,
    channel_id TEXT NOT NULL UNIQUE,
    sender_id TEXT NOT NULL,
    content_topic TEXT NOT NULL
);
CREATE TABLE events (
    seq INTEGER PRIMARY KEY,
    channel INTEGER NOT NULL,
    kind INTEGER NOT NULL,
    request_id TEXT,
    sender_id TEXT,
    payload BLOB,
    error TEXT
);
";

/// What the header says about a file.
#[derive(Debug, PartialEq, Eq)]
enum Header {
    /// Empty file, or an empty SQLite database without an application id: ours to initialise.
    New,
    /// A reliable-channel database of this schema version.
    Ours { version: u32 },
}

/// Classifies a file from its first bytes (at most [`HEADER_BYTES`]), refusing what is not ours.
fn classify(header: &[u8], file_len: u64, path: &Path) -> Result<Header, StorageError> {
    let p = path.display();
    if header.is_empty() {
        return Ok(Header::New);
    }
    if header.len() < HEADER_BYTES || &header[..16] != MAGIC {
        return Err(StorageError(format!("{p} is not a SQLite database (refused, left untouched)")));
    }
    let be = |at: usize| u32::from_be_bytes([header[at], header[at + 1], header[at + 2], header[at + 3]]);
    let (user_version, application_id) = (be(60), be(68));
    // Offset 16: the page size, big endian, 1 meaning 65536.
    let page_size = match u16::from_be_bytes([header[16], header[17]]) {
        1 => 65_536,
        n => u64::from(n),
    };
    // An empty database (a single page: the schema table, no table has a root page of its own)
    // is adopted: what an application that "creates the file first" leaves.
    if application_id == 0 && user_version == 0 && file_len <= page_size {
        return Ok(Header::New);
    }
    if application_id != APPLICATION_ID {
        return Err(StorageError(format!(
            "{p} is a SQLite database of another application (application_id 0x{application_id:08x}, expected 0x{APPLICATION_ID:08x}): refused, left untouched"
        )));
    }
    if user_version > SCHEMA_VERSION {
        return Err(StorageError(format!(
            "{p} has schema version {user_version}, written by a newer version of the library (this one reads up to {SCHEMA_VERSION}): refused, left untouched"
        )));
    }
    if user_version == 0 || (user_version < SCHEMA_VERSION && MIGRATIONS.len() < (SCHEMA_VERSION - 1) as usize) {
        return Err(StorageError(format!("{p} has schema version {user_version}, which this library cannot migrate: refused, left untouched")));
    }
    Ok(Header::Ours { version: user_version })
}

fn sql_err<'a>(what: &str, path: &'a Path) -> impl Fn(rusqlite::Error) -> StorageError + 'a {
    let what = what.to_owned();
    move |e| StorageError(format!("{}: {what}: {e}", path.display()))
}

/// The manager's SQLite database. See the module docs.
pub struct SqliteStore {
    // Field order is drop order: the checkpoint thread's connection, then this one, close before
    // the lock's descriptor.
    checkpointer: Checkpointer,
    conn: Connection,
    _lock: File,
    path: std::path::PathBuf,
    seq_bound: u64,
    /// The largest event seq stored: a new event row must be above it (the journal cannot ask
    /// the `events` table's key whether a seq is taken).
    last_seq: u64,
    last_key: ChannelKey,
    /// Pages in the WAL, as its hook reported them after the last commit.
    wal_pages: Arc<AtomicU32>,
    /// The channel-state changes committed but not yet folded into the tables.
    journal: Journal,
    /// Where each stored log entry is (`sqlite_state.rs`); `None` after a fold failed (its
    /// transaction rolled back what the map had recorded): read again before the next one.
    log_rows: Option<LogRows>,
    /// `StorageConfig::max_size_bytes`, and the database file's size after the last fold: the
    /// journal file counts against the limit too (see `write_batch`).
    max_bytes: Option<u64>,
    db_bytes: u64,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore").field("path", &self.path).field("seq_bound", &self.seq_bound).finish_non_exhaustive()
    }
}

impl SqliteStore {
    /// Opens (or creates) the database of `cfg`: locks it, validates it, migrates it; see the
    /// module docs. Every refusal is a [`StorageError`] naming the file and the reason.
    pub fn open(cfg: &StorageConfig) -> Result<SqliteStore, StorageError> {
        let path = cfg.path.as_path();
        let p = path.display();
        let mut lock = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(|e| StorageError(format!("cannot open {p}: {e}")))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                return Err(StorageError(format!("{p} is in use by another manager (of this or another process)")));
            }
            Err(TryLockError::Error(e)) => return Err(StorageError(format!("cannot lock {p}: {e}"))),
        }
        let mut header = Vec::with_capacity(HEADER_BYTES);
        (&mut lock).take(HEADER_BYTES as u64).read_to_end(&mut header).map_err(|e| StorageError(format!("cannot read {p}: {e}")))?;
        let file_len = lock.metadata().map_err(|e| StorageError(format!("cannot read {p}: {e}")))?.len();
        let kind = classify(&header, file_len, path)?;

        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let mut conn = Connection::open_with_flags(path, flags).map_err(sql_err("open", path))?;
        conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        conn.busy_timeout(BUSY_TIMEOUT).map_err(sql_err("busy timeout", path))?;
        // Per connection, nothing written.
        let sync = match cfg.durability {
            Durability::Process => "NORMAL",
            Durability::Power => "FULL",
        };
        conn.pragma_update(None, "synchronous", sync).map_err(sql_err("PRAGMA synchronous", path))?;
        conn.pragma_update(None, "cache_size", -CACHE_KIB).map_err(sql_err("PRAGMA cache_size", path))?;
        // The journal file is checked before anything is written (a refusal changes nothing).
        let (journal_id, folded) = match kind {
            Header::New => (None, 0),
            Header::Ours { .. } => {
                let meta = |key: &str| {
                    conn.query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get::<_, i64>(0))
                        .optional()
                        .map_err(sql_err("reading meta", path))
                };
                (meta("journal_id")?, meta("journal_folded")?.unwrap_or(0).max(0) as u64)
            }
        };
        let found = JournalFile::read(path, journal_id.map(|i| i as u64), folded)?;
        match kind {
            Header::New => Self::create_schema(&mut conn, path)?,
            Header::Ours { version } => Self::migrate(&mut conn, path, version)?,
        }
        let journal_id = match journal_id {
            Some(id) => id as u64,
            None => {
                let id: u64 = rand::random();
                conn.execute("INSERT INTO meta (key, value) VALUES ('journal_id', ?1)", [id as i64]).map_err(sql_err("writing meta", path))?;
                id
            }
        };
        // Reading the tables is where a damaged file shows, before anything else is written.
        let seq_bound: Option<i64> =
            conn.query_row("SELECT value FROM meta WHERE key = 'seq_bound'", [], |r| r.get(0)).optional().map_err(sql_err("reading meta", path))?;
        let last_key: Option<i64> = conn.query_row("SELECT max(key) FROM channels", [], |r| r.get(0)).map_err(sql_err("reading channels", path))?;
        conn.query_row("SELECT max(seq) FROM events", [], |r| r.get::<_, Option<i64>>(0)).map_err(sql_err("reading events", path))?;
        let file_rows = sqlite_journal::check_stored(&conn, path, &found)?;
        let mode: String = conn.pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0)).map_err(sql_err("PRAGMA journal_mode", path))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StorageError(format!("{p}: cannot use WAL (journal_mode is {mode})")));
        }
        // The hook replaces the automatic checkpoint (see the module docs).
        let wal_pages = Arc::new(AtomicU32::new(0));
        let counter = wal_pages.clone();
        conn.wal_hook(Some(move |_: &mut rusqlite::hooks::Wal, pages: std::ffi::c_int| {
            counter.store(u32::try_from(pages).unwrap_or(0), Ordering::Relaxed);
            Ok(())
        }))
        .map_err(sql_err("WAL hook", path))?;
        conn.pragma_update(None, "journal_size_limit", WAL_KEEP_BYTES).map_err(sql_err("PRAGMA journal_size_limit", path))?;
        if let Some(max) = cfg.max_size_bytes {
            let page: i64 = conn.pragma_query_value(None, "page_size", |r| r.get(0)).map_err(sql_err("PRAGMA page_size", path))?;
            let pages = i64::try_from(max.div_ceil(page.max(1) as u64).max(1)).unwrap_or(i64::MAX);
            conn.pragma_update(None, "max_page_count", pages).map_err(sql_err("PRAGMA max_page_count", path))?;
        }
        // What the last run journalled goes to the tables now: the journal starts empty.
        let mut log_rows = LogRows::load(&conn).map_err(sql_err("reading the log", path))?;
        sqlite_journal::fold_stored(&mut conn, path, &mut log_rows, file_rows, found.last_seq)?;
        let file = JournalFile::open(path, journal_id, found.last_seq, cfg.durability == Durability::Power)?;
        let max_seq: Option<i64> = conn.query_row("SELECT max(seq) FROM events", [], |r| r.get(0)).map_err(sql_err("reading events", path))?;
        let seq_bound = seq_bound.unwrap_or(1).max(max_seq.map_or(1, |s| s + 1)).max(1) as u64;
        let last_seq = max_seq.map_or(0, |s| s.max(0) as u64);
        let checkpointer = Checkpointer::new(path, sync, wal_pages.clone());
        let last_key = last_key.unwrap_or(0);
        let mut store = SqliteStore {
            checkpointer,
            conn,
            _lock: lock,
            path: path.to_owned(),
            seq_bound,
            last_seq,
            last_key,
            wal_pages,
            journal: Journal::new(file),
            log_rows: Some(log_rows),
            max_bytes: cfg.max_size_bytes,
            db_bytes: 0,
        };
        store.measure();
        Ok(store)
    }

    /// A new database: page size, identity, version and tables in one transaction, so that a
    /// crash leaves either an empty file or a complete schema.
    fn create_schema(conn: &mut Connection, path: &Path) -> Result<(), StorageError> {
        // Before the first table: the page size of an empty database can still change.
        conn.pragma_update(None, "page_size", PAGE_SIZE).map_err(sql_err("PRAGMA page_size", path))?;
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(sql_err("creating the schema", path))?;
        tx.pragma_update(None, "application_id", APPLICATION_ID as i32).map_err(sql_err("PRAGMA application_id", path))?;
        tx.pragma_update(None, "user_version", SCHEMA_VERSION).map_err(sql_err("PRAGMA user_version", path))?;
        tx.execute_batch(SCHEMA).map_err(sql_err("creating the schema", path))?;
        for m in MIGRATIONS.iter().copied().flatten() {
            tx.execute_batch(m).map_err(sql_err("creating the schema", path))?;
        }
        tx.commit().map_err(sql_err("creating the schema", path))
    }

    /// Brings a database of an older `version` to [`SCHEMA_VERSION`], one transaction per step.
    fn migrate(conn: &mut Connection, path: &Path, version: u32) -> Result<(), StorageError> {
        for v in version..SCHEMA_VERSION {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(sql_err("migrating", path))?;
            for sql in MIGRATIONS[(v - 1) as usize] {
                tx.execute_batch(sql).map_err(sql_err(&format!("migrating from version {v}"), path))?;
            }
            tx.pragma_update(None, "user_version", v + 1).map_err(sql_err("PRAGMA user_version", path))?;
            tx.commit().map_err(sql_err("migrating", path))?;
        }
        Ok(())
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Fault injection for tests: `PRAGMA query_only`, after which every write fails as on a
    /// read-only file system (root ignores `chmod`, so tests cannot rely on file modes).
    pub fn set_query_only(&mut self, on: bool) -> Result<(), StorageError> {
        self.journal.file.read_only = on;
        self.conn.pragma_update(None, "query_only", on).map_err(sql_err("PRAGMA query_only", &self.path))
    }

    /// Reads the database file's size, when a limit needs it (kept as it was when SQLite cannot
    /// tell: what was committed stays committed).
    fn measure(&mut self) {
        if self.max_bytes.is_some() {
            let read = |pragma: &str| self.conn.pragma_query_value(None, pragma, |r| r.get::<_, i64>(0));
            match read("page_count").and_then(|pages| Ok((pages, read("page_size")?))) {
                Ok((pages, size)) => self.db_bytes = (pages.max(0) as u64).saturating_mul(size.max(0) as u64),
                Err(e) => log::warn!("{}: cannot read the database's size: {e}", self.path.display()),
            }
        }
    }

    /// Pages in the WAL not yet checkpointed (as of the last commit or checkpoint).
    pub fn wal_pages(&self) -> u32 {
        self.wal_pages.load(Ordering::Relaxed)
    }

    /// Journal rows committed since the last fold (`sqlite_journal.rs`): what a reopen, a read
    /// of a channel's state or outbox, or [`Store::maintain`] from [`super::JOURNAL_FOLD_ROWS`]
    /// on, applies to the tables.
    pub fn journal_rows(&self) -> u32 {
        self.journal.rows
    }

    /// Waits until the checkpoint thread has nothing asked of it or running (for tests: what
    /// `maintain` asked for is then done).
    pub fn wait_for_checkpoint(&self) {
        self.checkpointer.wait_idle();
    }

    /// Fault injection for tests: no checkpoint thread, as when it cannot be started (checkpoints
    /// then run in `maintain` on the caller's thread: when idle, or at the WAL's bound).
    #[doc(hidden)]
    pub fn checkpoint_on_caller_thread_only(&mut self) {
        self.checkpointer.disable();
    }

    /// A `PASSIVE` checkpoint on this thread, once the checkpoint thread is done (one at a time):
    /// nothing else writes meanwhile, so it copies everything and the next commit writes the WAL
    /// from its start again.
    fn checkpoint_here(&mut self) -> rusqlite::Result<()> {
        self.checkpointer.wait_idle();
        if checkpoint::passive(&self.conn)?.0 {
            self.wal_pages.store(0, Ordering::Relaxed);
        }
        Ok(())
    }

    /// Writes `batch`: new channels and the sequence bound to their tables (a small transaction,
    /// when it has them), then its journal row to the journal file. A crash between the two
    /// leaves a channel's record or a higher bound without the rest: harmless (the caller was not
    /// answered; a bound only has to be high enough).
    fn write_batch(&mut self, batch: &Batch<'_>) -> Result<(), Failure> {
        if !batch.new_channels.is_empty() || batch.seq_bound.is_some() {
            self.write_tables(batch).map_err(Failure::Sql)?;
        }
        let Some(bytes) = self.journal.encode(batch) else { return Ok(()) };
        if self.max_bytes.is_some_and(|max| self.db_bytes + self.journal.file.len() + bytes > max) {
            // Near the size limit: into the tables directly, where SQLite's `max_page_count`
            // decides (deletions still fit: they make room).
            return self.fold_with(Some(batch)).map_err(Failure::Sql);
        }
        self.journal.append(batch).map_err(|e| Failure::Io(e, self.journal.file.path().to_owned()))
    }

    fn write_tables(&mut self, batch: &Batch<'_>) -> rusqlite::Result<()> {
        let tx = self.conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        if !batch.new_channels.is_empty() {
            let mut st = tx.prepare_cached("INSERT INTO channels (key, channel_id, sender_id, content_topic) VALUES (?1, ?2, ?3, ?4)")?;
            for c in &batch.new_channels {
                st.execute(params![c.key, c.channel_id, c.sender_id, c.content_topic])?;
            }
        }
        if let Some(b) = batch.seq_bound {
            let mut st =
                tx.prepare_cached("INSERT INTO meta (key, value) VALUES ('seq_bound', ?1) ON CONFLICT (key) DO UPDATE SET value = excluded.value")?;
            st.execute([seq_i64(b)?])?;
        }
        tx.commit()
    }

    /// Folds the journal into the channel-state tables (`sqlite_journal.rs`).
    fn fold_journal(&mut self) -> Result<(), StorageError> {
        self.fold_with(None).map_err(|e| StorageError(format!("{}: folding the journal: {e}", self.path.display())))
    }

    /// Folds the journal, and `also` after it, in one transaction.
    fn fold_with(&mut self, also: Option<&Batch<'_>>) -> rusqlite::Result<()> {
        let log_rows = match &mut self.log_rows {
            Some(r) => r,
            None => self.log_rows.insert(LogRows::load(&self.conn)?),
        };
        let folded = self.journal.fold(&mut self.conn, log_rows, also);
        if folded.is_err() {
            self.log_rows = None;
        }
        folded?;
        self.measure();
        Ok(())
    }

    /// Log entries whose rows the store knows (`sqlite_state.rs`), for tests.
    #[doc(hidden)]
    pub fn log_rows_known(&self) -> Option<usize> {
        self.log_rows.as_ref().map(LogRows::len)
    }
}

/// Why a commit failed.
#[derive(Debug)]
enum Failure {
    Sql(rusqlite::Error),
    /// Appending to the journal file (named).
    Io(std::io::Error, std::path::PathBuf),
}

impl Failure {
    /// The disk or the database is full.
    fn full(&self) -> bool {
        match self {
            Failure::Sql(rusqlite::Error::SqliteFailure(e, _)) => e.code == rusqlite::ErrorCode::DiskFull,
            Failure::Sql(_) => false,
            Failure::Io(e, _) => e.kind() == std::io::ErrorKind::StorageFull,
        }
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Sql(e) => e.fmt(f),
            Failure::Io(e, path) if e.kind() == std::io::ErrorKind::StorageFull => write!(f, "database or disk is full ({}: {e})", path.display()),
            Failure::Io(e, path) => write!(f, "{}: {e}", path.display()),
        }
    }
}

/// A sequence number as SQLite's signed integer (they start at 1 and grow by one per event:
/// 2^63 is never reached, but a damaged value must not wrap silently).
fn seq_i64(seq: u64) -> rusqlite::Result<i64> {
    i64::try_from(seq).map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))
}

impl Store for SqliteStore {
    fn seq_bound(&self) -> u64 {
        self.seq_bound
    }

    fn allocate_key(&mut self) -> ChannelKey {
        self.last_key += 1;
        self.last_key
    }

    fn commit(&mut self, batch: &Batch<'_>) -> Result<(), StorageError> {
        if batch.is_empty() {
            return Ok(());
        }
        // Seqs are handed out in order (`seq_bound`): one at or below the last stored is taken.
        let mut last = self.last_seq;
        for e in &batch.events {
            if e.seq <= last {
                return Err(StorageError(format!(
                    "{}: commit failed: event seq {} is not above the last stored one ({last}): a seq is UNIQUE and only grows",
                    self.path.display(),
                    e.seq
                )));
            }
            last = e.seq;
        }
        let mut written = self.write_batch(batch);
        if written.as_ref().is_err_and(Failure::full) && self.journal.rows > 0 {
            // A fold empties the journal file, and the deletions it holds make room in the
            // tables (the rows they delete are still there): fold, then try once more.
            if self.fold_journal().is_ok() {
                written = self.write_batch(batch);
            }
        }
        written.map_err(|e| StorageError(format!("{}: commit failed: {e}", self.path.display())))?;
        if let Some(b) = batch.seq_bound {
            self.seq_bound = b;
        }
        self.last_seq = last;
        Ok(())
    }

    fn maintain(&mut self, idle: bool) {
        if self.journal.full() {
            // Not fatal: the journal is committed; the next attempt folds it.
            if let Err(e) = self.fold_journal() {
                log::warn!("{e} (retried later)");
            }
        }
        let pages = self.wal_pages();
        if pages < CHECKPOINT_PAGES {
            return;
        }
        if pages < WAL_BOUND_PAGES {
            if self.checkpointer.usable() {
                self.checkpointer.request();
            }
            // Without the thread (it could not be started), as before it: when idle.
            if self.checkpointer.usable() || !idle {
                return;
            }
        }
        // Not fatal: every commit is in the WAL; the next attempt copies it.
        if let Err(e) = self.checkpoint_here() {
            log::warn!("{}: checkpoint of {pages} WAL pages failed (retried later): {e}", self.path.display());
        }
    }

    fn load_channel(&mut self, channel_id: &str) -> Result<Option<ChannelRecord>, StorageError> {
        let path = &self.path;
        let mut st = self
            .conn
            .prepare_cached("SELECT key, sender_id, content_topic FROM channels WHERE channel_id = ?1")
            .map_err(sql_err("reading channels", path))?;
        st.query_row([channel_id], |r| {
            Ok(ChannelRecord { key: r.get(0)?, channel_id: channel_id.to_owned(), sender_id: r.get(1)?, content_topic: r.get(2)? })
        })
        .optional()
        .map_err(sql_err("reading channels", path))
    }

    fn load_events(&mut self, key: ChannelKey) -> Result<Vec<StoredEvent>, StorageError> {
        if self.journal.rows > 0 {
            self.fold_journal()?;
        }
        let path = &self.path;
        let mut st = self
            .conn
            .prepare_cached("SELECT seq, kind, request_id, sender_id, payload, error FROM events WHERE channel = ?1 ORDER BY seq")
            .map_err(sql_err("reading events", path))?;
        let rows = st
            .query_map([key], |r| Ok((r.get::<_, i64>(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?)))
            .map_err(sql_err("reading events", path))?;
        let mut out = Vec::new();
        for row in rows {
            let (seq, kind, request_id, sender_id, payload, error) = row.map_err(sql_err("reading events", path))?;
            match event_from_columns(kind, request_id, sender_id, payload, error) {
                Some(event) if seq > 0 => out.push(StoredEvent { seq: seq as u64, event }),
                _ => log::warn!("{}: skipped a damaged event row (seq {seq}, kind {kind})", path.display()),
            }
        }
        Ok(out)
    }

    fn load_snapshot(&mut self, key: ChannelKey) -> Result<ChannelSnapshot, StorageError> {
        if self.journal.rows > 0 {
            self.fold_journal()?;
        }
        sqlite_state::load_snapshot(&self.conn, key).map_err(sql_err("reading the channel state", &self.path))
    }

    fn purge(&mut self, channel_id: &str) -> Result<bool, StorageError> {
        let path = self.path.clone();
        let Some(rec) = self.load_channel(channel_id)? else { return Ok(false) };
        if self.journal.rows > 0 {
            self.fold_journal()?;
        }
        let run = |conn: &mut Connection| -> rusqlite::Result<()> {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            tx.execute("DELETE FROM events WHERE channel = ?1", [rec.key])?;
            for t in STATE_TABLE_NAMES {
                tx.execute(&format!("DELETE FROM {t} WHERE channel = ?1"), [rec.key])?;
            }
            tx.execute("DELETE FROM channels WHERE key = ?1", [rec.key])?;
            tx.commit()
        };
        run(&mut self.conn).map_err(sql_err(&format!("purging channel {channel_id}"), &path))?;
        if let Some(r) = &mut self.log_rows {
            r.forget(rec.key);
        }
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(app: u32, version: u32) -> Vec<u8> {
        let mut h = vec![0u8; HEADER_BYTES];
        h[..16].copy_from_slice(MAGIC);
        h[16..18].copy_from_slice(&4096u16.to_be_bytes());
        h[60..64].copy_from_slice(&version.to_be_bytes());
        h[68..72].copy_from_slice(&app.to_be_bytes());
        h
    }

    #[test]
    fn the_header_decides_what_is_ours() {
        let p = Path::new("x.db");
        assert_eq!(classify(&[], 0, p), Ok(Header::New));
        assert_eq!(classify(&header(0, 0), 4096, p), Ok(Header::New), "an empty SQLite database is adopted");
        assert_eq!(classify(&header(APPLICATION_ID, SCHEMA_VERSION), 9 * 4096, p), Ok(Header::Ours { version: SCHEMA_VERSION }));
        let refused = |h: &[u8], len: u64, what: &str| {
            let e = classify(h, len, p).unwrap_err().0;
            assert!(e.contains(what) && e.contains("x.db"), "{e}");
        };
        refused(b"hello", 5, "not a SQLite database");
        refused(&[7u8; 100], 200, "not a SQLite database");
        refused(&header(0, 0), 3 * 4096, "another application");
        refused(&header(0x1234, 1), 4096, "application_id 0x00001234");
        refused(&header(APPLICATION_ID, SCHEMA_VERSION + 1), 9 * 4096, "newer version");
        refused(&header(APPLICATION_ID, 0), 9 * 4096, "cannot migrate");
    }
}
