//! The WAL checkpoint of [`super::SqliteStore`], on a thread of its own.
//!
//! A checkpoint copies the WAL's pages into the database file between two fsyncs (the WAL's, then
//! the database's): milliseconds on this machine's disk. Run by the runtime thread, it delayed
//! whatever arrived meanwhile (the p99 of `send` was 22 ms: BENCHMARKS.md, "Durable channels").
//! Here a second connection on its own thread runs it (`PASSIVE`: it copies what was committed
//! when it started, never waits for the writer and never makes it wait), while the runtime keeps
//! committing to the WAL. The WAL is written from its start again at the first commit after a
//! checkpoint that copied everything; under a load that leaves no quiet moment for that, the
//! store's own bound ([`super::WAL_BOUND_PAGES`]) applies (see `sqlite.rs`).
//!
//! The thread is started by the first request (a manager that writes little never has one) and
//! stopped and joined before the store's own connection is closed.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use parking_lot::{Condvar, Mutex};
use rusqlite::{Connection, OpenFlags};

/// What the store and the checkpoint thread share.
#[derive(Default)]
struct State {
    /// A checkpoint is asked for (and not yet started).
    requested: bool,
    /// A checkpoint is running.
    running: bool,
    /// The store is being closed: the thread exits.
    stop: bool,
}

/// The checkpoint thread of one store.
pub(super) struct Checkpointer {
    path: PathBuf,
    synchronous: &'static str,
    /// The WAL's page count, as the store's WAL hook reports it after every commit.
    wal_pages: Arc<AtomicU32>,
    shared: Arc<(Mutex<State>, Condvar)>,
    thread: Option<JoinHandle<()>>,
    /// Set when the thread could not be started or its connection not opened: the store then
    /// checkpoints on its own thread, as before.
    broken: bool,
}

impl Checkpointer {
    /// A checkpointer for the database at `path` (not started yet); its connection uses the
    /// store's `synchronous` setting, which decides the checkpoint's fsyncs.
    pub(super) fn new(path: &Path, synchronous: &'static str, wal_pages: Arc<AtomicU32>) -> Self {
        Checkpointer { path: path.to_owned(), synchronous, wal_pages, shared: Arc::default(), thread: None, broken: false }
    }

    /// False when checkpoints cannot run in the background (the caller runs them itself).
    pub(super) fn usable(&self) -> bool {
        !self.broken
    }

    /// No thread from now on (tests: the fallback); waits for a running checkpoint first.
    pub(super) fn disable(&mut self) {
        self.wait_idle();
        self.broken = true;
    }

    /// Asks for a checkpoint (one already asked for or running covers it); never blocks.
    pub(super) fn request(&mut self) {
        if self.thread.is_none() && !self.broken {
            self.start();
        }
        if self.broken {
            return;
        }
        let (lock, cv) = &*self.shared;
        let mut st = lock.lock();
        if !st.requested && !st.running {
            st.requested = true;
            cv.notify_all();
        }
    }

    /// Waits until no checkpoint is asked for or running.
    pub(super) fn wait_idle(&self) {
        let (lock, cv) = &*self.shared;
        let mut st = lock.lock();
        while (st.requested || st.running) && !self.broken && self.thread.is_some() {
            cv.wait(&mut st);
        }
    }

    fn start(&mut self) {
        let conn = match Connection::open_with_flags(&self.path, OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX)
            .and_then(|c| c.pragma_update(None, "synchronous", self.synchronous).map(|()| c))
        {
            Ok(c) => c,
            Err(e) => {
                log::warn!("{}: no checkpoint thread (checkpoints run on the runtime thread): {e}", self.path.display());
                self.broken = true;
                return;
            }
        };
        let (shared, wal_pages, path) = (self.shared.clone(), self.wal_pages.clone(), self.path.clone());
        match std::thread::Builder::new().name("rc-checkpoint".into()).spawn(move || run(conn, &shared, &wal_pages, &path)) {
            Ok(t) => self.thread = Some(t),
            Err(e) => {
                log::warn!("{}: no checkpoint thread (checkpoints run on the runtime thread): {e}", self.path.display());
                self.broken = true;
            }
        }
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        let (lock, cv) = &*self.shared;
        lock.lock().stop = true;
        cv.notify_all();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A `PASSIVE` checkpoint on `conn`: `Ok(true)` when it copied the whole WAL (as of its start).
pub(super) fn passive(conn: &Connection) -> rusqlite::Result<(bool, u32)> {
    let (busy, log, done): (i64, i64, i64) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
    Ok((busy == 0 && done >= log, u32::try_from(log.max(0)).unwrap_or(u32::MAX)))
}

/// The thread's body: one checkpoint per request, until stopped.
fn run(conn: Connection, shared: &(Mutex<State>, Condvar), wal_pages: &AtomicU32, path: &Path) {
    let (lock, cv) = shared;
    loop {
        {
            let mut st = lock.lock();
            while !st.requested && !st.stop {
                cv.wait(&mut st);
            }
            if st.stop {
                return;
            }
            st.requested = false;
            st.running = true;
        }
        match passive(&conn) {
            // Copied all it saw: unless the store committed meanwhile (the hook then reported a
            // new count), its next commit writes the WAL from the start.
            Ok((true, log)) => {
                let _ = wal_pages.compare_exchange(log, 0, Ordering::Relaxed, Ordering::Relaxed);
            }
            Ok((false, _)) => {}
            // Not fatal: every commit is in the WAL; the next request copies it.
            Err(e) => log::warn!("{}: background checkpoint failed (retried later): {e}", path.display()),
        }
        let mut st = lock.lock();
        st.running = false;
        cv.notify_all();
    }
}
