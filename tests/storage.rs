//! The storage layer on its own: `SqliteStore` against `MemoryStore` (same batches, same loaded
//! state, also after a reopen), the open-time refusals (each leaves the file byte for byte as it
//! was), the lock (a second store in this process; a killed process's lock), and failing writes
//! (a full database, a read-only one) that change nothing.

use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use proptest::prelude::*;
use reliable_channel::channel::{Change, ChannelChanges, ChannelEvent};
use reliable_channel::storage::{
    Batch, ChannelKey, ChannelRecord, Durability, EventRow, MemoryStore, SqliteStore, StorageConfig, Store, StoredEvent, APPLICATION_ID,
    CHECKPOINT_PAGES, SCHEMA_VERSION, WAL_BOUND_PAGES,
};

mod storage_support;
use storage_support::TempDir;

fn cfg(path: &Path) -> StorageConfig {
    StorageConfig { path: path.to_owned(), durability: Durability::Process, max_size_bytes: None }
}

fn record(store: &mut dyn Store, id: &str) -> ChannelRecord {
    ChannelRecord { key: store.allocate_key(), channel_id: id.into(), sender_id: format!("{id}-me"), content_topic: format!("/app/1/{id}/proto") }
}

fn received(n: usize, len: usize) -> ChannelEvent {
    ChannelEvent::Received { request_id: format!("r{n}"), sender_id: "bob".into(), payload: vec![n as u8; len] }
}

/// What a store hands back about one channel id: its record and outbox, if stored.
type Loaded = Option<(ChannelRecord, Vec<StoredEvent>)>;

/// Everything a store hands back about `ids`, and its sequence bound.
fn loaded(store: &mut dyn Store, ids: &[&str]) -> (Vec<Loaded>, u64) {
    let per = ids
        .iter()
        .map(|id| {
            let rec = store.load_channel(id).unwrap()?;
            let events = store.load_events(rec.key).unwrap();
            Some((rec, events))
        })
        .collect();
    (per, store.seq_bound())
}

#[test]
fn a_stored_channel_and_its_outbox_survive_a_reopen() {
    let dir = TempDir::new("storage", "reopen");
    let path = dir.file("m.db");
    let events = [received(1, 10), ChannelEvent::Delivered { request_id: "x".into() }, received(2, 100_000)];
    let key;
    {
        let mut s = SqliteStore::open(&cfg(&path)).unwrap();
        assert_eq!(s.seq_bound(), 1, "a new database starts at seq 1");
        let rec = record(&mut s, "room");
        key = rec.key;
        let rows: Vec<EventRow<'_>> = events.iter().enumerate().map(|(i, e)| EventRow { seq: 10 + i as u64, channel: key, event: e }).collect();
        s.commit(&Batch { new_channels: vec![rec], events: rows, delivered: vec![], seq_bound: Some(100), channels: &[] }).unwrap();
        s.commit(&Batch { delivered: vec![11], ..Batch::default() }).unwrap();
    }
    let mut s = SqliteStore::open(&cfg(&path)).unwrap();
    assert_eq!(s.seq_bound(), 100);
    let rec = s.load_channel("room").unwrap().expect("stored");
    assert_eq!((rec.key, rec.sender_id.as_str(), rec.content_topic.as_str()), (key, "room-me", "/app/1/room/proto"));
    let back = s.load_events(key).unwrap();
    assert_eq!(back, vec![StoredEvent { seq: 10, event: events[0].clone() }, StoredEvent { seq: 12, event: events[2].clone() }]);
    assert_eq!(s.load_channel("other").unwrap(), None);
    assert!(s.purge("room").unwrap());
    assert!(!s.purge("room").unwrap(), "nothing left to purge");
    assert_eq!(s.load_channel("room").unwrap(), None);
    assert!(s.load_events(key).unwrap().is_empty());
}

/// One step of the property test, applied alike to both stores.
#[derive(Debug, Clone)]
enum Op {
    Open(usize),
    Events(usize, Vec<usize>),
    Deliver(usize),
    Purge(usize),
}

const NAMES: [&str; 3] = ["a", "b", "c"];

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0..NAMES.len()).prop_map(Op::Open),
        (0..NAMES.len(), prop::collection::vec(0..3000usize, 0..4)).prop_map(|(c, l)| Op::Events(c, l)),
        (0..64usize).prop_map(Op::Deliver),
        (0..NAMES.len()).prop_map(Op::Purge),
    ]
}

/// Applies `ops` to `store` as the runtime would: keys allocated at open, seqs handed out in
/// order with the bound raised ahead of them, deliveries of existing seqs.
fn apply(store: &mut dyn Store, ops: &[Op]) {
    let mut next_seq = store.seq_bound();
    let mut stored: Vec<u64> = Vec::new();
    for op in ops {
        match op {
            Op::Open(c) => {
                if store.load_channel(NAMES[*c]).unwrap().is_none() {
                    let rec = record(store, NAMES[*c]);
                    store.commit(&Batch { new_channels: vec![rec], ..Batch::default() }).unwrap();
                }
            }
            Op::Events(c, lens) => {
                let Some(rec) = store.load_channel(NAMES[*c]).unwrap() else { continue };
                let events: Vec<ChannelEvent> = lens.iter().map(|&l| received(l, l)).collect();
                let rows: Vec<EventRow<'_>> = events
                    .iter()
                    .map(|e| {
                        next_seq += 1;
                        stored.push(next_seq - 1);
                        EventRow { seq: next_seq - 1, channel: rec.key, event: e }
                    })
                    .collect();
                let seq_bound = (next_seq >= store.seq_bound()).then_some(next_seq + 8);
                store.commit(&Batch { events: rows, seq_bound, ..Batch::default() }).unwrap();
            }
            Op::Deliver(i) => {
                if !stored.is_empty() {
                    let seq = stored.remove(i % stored.len());
                    store.commit(&Batch { delivered: vec![seq], ..Batch::default() }).unwrap();
                }
            }
            Op::Purge(c) => {
                store.purge(NAMES[*c]).unwrap();
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// The memory store is a faithful model of the SQLite one: the same batches leave the same
    /// loaded state, and the SQLite one keeps it across a reopen.
    #[test]
    fn the_same_batches_give_the_same_state_in_both_stores(ops in prop::collection::vec(op(), 1..40)) {
        let dir = TempDir::new("storage", "prop");
        let path = dir.file("p.db");
        let mut mem = MemoryStore::new();
        apply(&mut mem, &ops);
        let want = loaded(&mut mem, &NAMES);
        {
            let mut sql = SqliteStore::open(&cfg(&path)).unwrap();
            apply(&mut sql, &ops);
            prop_assert_eq!(&loaded(&mut sql, &NAMES), &want);
        }
        let mut sql = SqliteStore::open(&cfg(&path)).unwrap();
        let (per, bound) = loaded(&mut sql, &NAMES);
        prop_assert_eq!(&per, &want.0);
        // After a reopen the bound covers every seq ever stored.
        prop_assert!(bound >= want.1);
    }
}

#[test]
fn a_failed_commit_changes_nothing_in_either_store() {
    let dir = TempDir::new("storage", "atomic");
    let mut sql = SqliteStore::open(&cfg(&dir.file("a.db"))).unwrap();
    let mut mem = MemoryStore::new();
    let stores: [&mut dyn Store; 2] = [&mut sql, &mut mem];
    for s in stores {
        let rec = record(s, "room");
        let key = rec.key;
        let e = received(1, 10);
        s.commit(&Batch { new_channels: vec![rec], events: vec![EventRow { seq: 1, channel: key, event: &e }], ..Batch::default() }).unwrap();
        // A batch whose second row repeats a seq fails as a whole: its first row is not stored.
        let rows = vec![EventRow { seq: 2, channel: key, event: &e }, EventRow { seq: 1, channel: key, event: &e }];
        let err = s.commit(&Batch { events: rows, seq_bound: Some(50), ..Batch::default() }).unwrap_err();
        assert!(err.0.contains("UNIQUE"), "{err}");
        assert_eq!(s.load_events(key).unwrap().iter().map(|e| e.seq).collect::<Vec<_>>(), vec![1]);
        assert_ne!(s.seq_bound(), 50);
    }
}

#[test]
fn a_full_database_fails_the_commit_and_keeps_what_was_committed() {
    let dir = TempDir::new("storage", "full");
    let path = dir.file("f.db");
    let mut c = cfg(&path);
    c.max_size_bytes = Some(1 << 20);
    let mut s = SqliteStore::open(&c).unwrap();
    let rec = record(&mut s, "room");
    let key = rec.key;
    s.commit(&Batch { new_channels: vec![rec], ..Batch::default() }).unwrap();
    let e = received(7, 200_000);
    let mut committed = 0;
    let err = loop {
        let row = EventRow { seq: committed + 1, channel: key, event: &e };
        match s.commit(&Batch { events: vec![row], ..Batch::default() }) {
            Ok(()) => committed += 1,
            Err(err) => break err,
        }
        assert!(committed < 10, "a 1 MiB database cannot take 10 rows of 200 kB");
    };
    assert!(err.0.contains("full") && err.0.contains("f.db"), "SQLite's message and the file: {err}");
    assert!(committed >= 1);
    assert_eq!(s.load_events(key).unwrap().len() as u64, committed);
    // Deleting still works, and makes room again.
    s.commit(&Batch { delivered: (1..=committed).collect(), ..Batch::default() }).unwrap();
    s.commit(&Batch { events: vec![EventRow { seq: 100, channel: key, event: &e }], ..Batch::default() }).unwrap();
}

#[test]
fn a_read_only_database_fails_every_write() {
    let dir = TempDir::new("storage", "ro");
    let mut s = SqliteStore::open(&cfg(&dir.file("r.db"))).unwrap();
    let rec = record(&mut s, "room");
    s.commit(&Batch { new_channels: vec![rec.clone()], ..Batch::default() }).unwrap();
    s.set_query_only(true).unwrap();
    let e = received(1, 1);
    let err = s.commit(&Batch { events: vec![EventRow { seq: 1, channel: rec.key, event: &e }], ..Batch::default() }).unwrap_err();
    assert!(err.0.contains("readonly") || err.0.contains("read-only") || err.0.contains("query_only"), "{err}");
    assert!(s.purge("room").is_err());
    // Reading still works.
    assert!(s.load_channel("room").unwrap().is_some());
    s.set_query_only(false).unwrap();
    assert!(s.purge("room").unwrap());
}

/// Opens `path` expecting a refusal mentioning `why`, and checks that the file is unchanged.
fn refused_untouched(path: &Path, why: &str) {
    let before = std::fs::read(path).unwrap();
    let err = SqliteStore::open(&cfg(path)).unwrap_err();
    assert!(err.0.contains(why), "{err}");
    assert!(err.0.contains(&path.display().to_string()), "names the file: {err}");
    assert!(std::fs::read(path).unwrap() == before, "a refused file is left byte for byte as it was");
}

#[test]
fn foreign_corrupt_and_newer_files_are_refused_and_left_untouched() {
    let dir = TempDir::new("storage", "refuse");
    // Not a database at all.
    let text = dir.file("notes.txt");
    std::fs::write(&text, "my notes, not a database\n".repeat(20)).unwrap();
    refused_untouched(&text, "not a SQLite database");
    let short = dir.file("short");
    std::fs::write(&short, b"SQLite format 3\0").unwrap();
    refused_untouched(&short, "not a SQLite database");

    // Another application's database.
    let foreign = dir.file("foreign.db");
    {
        let c = rusqlite::Connection::open(&foreign).unwrap();
        c.execute_batch("CREATE TABLE t (x); INSERT INTO t VALUES (1);").unwrap();
    }
    refused_untouched(&foreign, "another application");
    let other_id = dir.file("other_id.db");
    {
        let c = rusqlite::Connection::open(&other_id).unwrap();
        c.execute_batch("PRAGMA application_id = 42; CREATE TABLE t (x);").unwrap();
    }
    refused_untouched(&other_id, "application_id 0x0000002a");

    // Ours, written by a newer version.
    let newer = dir.file("newer.db");
    drop(SqliteStore::open(&cfg(&newer)).unwrap());
    {
        let c = rusqlite::Connection::open(&newer).unwrap();
        c.pragma_update(None, "user_version", SCHEMA_VERSION + 1).unwrap();
        c.pragma_update(None, "journal_mode", "DELETE").unwrap();
    }
    refused_untouched(&newer, "newer version");

    // Ours, damaged past the header: SQLite's own message.
    let damaged = dir.file("damaged.db");
    {
        let mut s = SqliteStore::open(&cfg(&damaged)).unwrap();
        let rec = record(&mut s, "room");
        s.commit(&Batch { new_channels: vec![rec], ..Batch::default() }).unwrap();
    }
    let mut bytes = std::fs::read(&damaged).unwrap();
    assert!(bytes.len() > 16_384, "more than the first page");
    for b in &mut bytes[16_384..] {
        *b = 0xA5;
    }
    std::fs::write(&damaged, &bytes).unwrap();
    refused_untouched(&damaged, "malformed");

    // Ours, with a journal row that does not decode: refused (dropping it would lose what it
    // records), the file untouched.
    let bad_row = dir.file("bad_journal_row.db");
    {
        let mut s = SqliteStore::open(&cfg(&bad_row)).unwrap();
        let rec = record(&mut s, "room");
        s.commit(&Batch { new_channels: vec![rec], ..Batch::default() }).unwrap();
    }
    {
        let c = rusqlite::Connection::open(&bad_row).unwrap();
        c.execute("INSERT INTO journal (batch) VALUES (x'ff00')", []).unwrap();
        c.pragma_update(None, "journal_mode", "DELETE").unwrap();
    }
    refused_untouched(&bad_row, "journal row");

    // An empty SQLite database (no application id, no table) is adopted.
    let empty = dir.file("empty.db");
    {
        let c = rusqlite::Connection::open(&empty).unwrap();
        c.execute_batch("VACUUM").unwrap();
    }
    let s = SqliteStore::open(&cfg(&empty)).unwrap();
    drop(s);
    let c = rusqlite::Connection::open(&empty).unwrap();
    let app: u32 = c.pragma_query_value(None, "application_id", |r| r.get(0)).unwrap();
    assert_eq!(app, APPLICATION_ID);
}

#[test]
fn a_second_store_on_one_file_is_refused_until_the_first_is_closed() {
    let dir = TempDir::new("storage", "lock");
    let path = dir.file("l.db");
    let first = SqliteStore::open(&cfg(&path)).unwrap();
    let err = SqliteStore::open(&cfg(&path)).unwrap_err();
    assert!(err.0.contains("in use by another manager"), "{err}");
    drop(first);
    SqliteStore::open(&cfg(&path)).unwrap();
}

/// Run by `a_killed_process_leaves_no_lock_behind` in a child process: holds the database open
/// until killed. Ignored in a normal run (it would wait forever).
#[test]
#[ignore]
fn child_holds_the_lock_until_killed() {
    let Ok(path) = std::env::var("RC_STORAGE_LOCK_CHILD") else { return };
    let mut s = SqliteStore::open(&cfg(Path::new(&path))).unwrap();
    let rec = record(&mut s, "room");
    s.commit(&Batch { new_channels: vec![rec], seq_bound: Some(77), ..Batch::default() }).unwrap();
    println!("LOCKED");
    use std::io::Write;
    std::io::stdout().flush().unwrap();
    loop {
        std::thread::park();
    }
}

#[test]
fn a_killed_process_leaves_no_lock_behind() {
    use std::io::{BufRead, BufReader};
    let dir = TempDir::new("storage", "killed");
    let path = dir.file("k.db");
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--ignored", "--exact", "child_holds_the_lock_until_killed", "--nocapture", "--test-threads=1"])
        .env("RC_STORAGE_LOCK_CHILD", &path)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    loop {
        line.clear();
        assert!(out.read_line(&mut line).unwrap() > 0, "the child exited before it locked the database");
        if line.contains("LOCKED") {
            break;
        }
    }
    let err = SqliteStore::open(&cfg(&path)).unwrap_err();
    assert!(err.0.contains("in use"), "held by the child: {err}");
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let mut s = SqliteStore::open(&cfg(&path)).expect("the kernel released the dead process's lock");
    assert_eq!(s.seq_bound(), 77, "and what it committed is there");
    assert!(s.load_channel("room").unwrap().is_some());
}

#[test]
fn power_durability_and_a_size_limit_are_accepted() {
    let dir = TempDir::new("storage", "power");
    let c = StorageConfig { path: dir.file("p.db"), durability: Durability::Power, max_size_bytes: Some(1 << 30) };
    let mut s = SqliteStore::open(&c).unwrap();
    let rec: ChannelRecord = record(&mut s, "x");
    let key: ChannelKey = rec.key;
    s.commit(&Batch { new_channels: vec![rec], ..Batch::default() }).unwrap();
    assert_eq!(s.load_channel("x").unwrap().map(|r| r.key), Some(key));
}

/// One step of a send's life for [`send_changes`]: (request, what, chunk index, count).
type SendStep = (usize, u8, u32, u32);

/// Valid change lists from random steps, cut into batches at random points: each request is
/// accepted once (with 1–3 chunks) before anything else happens to it, and nothing happens to it
/// after it finished — as a channel records them.
fn send_changes(steps: &[SendStep], cuts: &[bool]) -> Vec<Vec<Change>> {
    let mut batches = vec![Vec::new()];
    let mut state: [Option<(u32, bool)>; 4] = [None; 4]; // (chunks, finished)
    for (n, &(r, what, index, count)) in steps.iter().enumerate() {
        let request: Arc<str> = format!("req{r}").into();
        let change = match (state[r], what) {
            (None, _) => {
                let chunks = index % 3 + 1;
                state[r] = Some((chunks, false));
                let list = (0..chunks).map(|c| (format!("{r}-{c}").into(), Bytes::from(vec![c as u8; 40]))).collect();
                Change::SendAccepted { request, ephemeral: false, bytes: 40 * chunks as usize, chunks: list }
            }
            (Some((_, true)), _) => continue,
            (Some((chunks, false)), w) => {
                let index = index % chunks;
                match w % 6 {
                    0 => Change::ChunkWrapped { request, index, lamport: u64::from(count), bytes: Bytes::from(vec![9; 50 + count as usize]) },
                    1 => Change::ChunkAcked { request, index },
                    2 => Change::ChunkRetransmitted { request, index, count },
                    3 => Change::ChunkPossiblyAcked { request, index, count },
                    4 => Change::SendSent { request },
                    _ => {
                        state[r] = Some((chunks, true));
                        Change::SendFinished { request }
                    }
                }
            }
        };
        batches.last_mut().unwrap().push(change);
        if cuts.get(n).copied().unwrap_or(false) {
            batches.push(Vec::new());
        }
    }
    batches
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// The SQLite store writes a send's rows once per batch in their final state (what a later
    /// change of the same batch updates or deletes is folded in or never written): the loaded
    /// state is the memory store's, which applies every change in order.
    #[test]
    fn sends_folded_per_batch_load_as_applied_in_order(
        steps in prop::collection::vec((0..4usize, 0..6u8, 0..3u32, 0..9u32), 1..60),
        cuts in prop::collection::vec(prop::bool::weighted(0.2), 60),
    ) {
        let dir = TempDir::new("storage", "fold");
        let mut sql = SqliteStore::open(&cfg(&dir.file("f.db"))).unwrap();
        let mut mem = MemoryStore::new();
        let key = {
            let rec = record(&mut sql, "a");
            assert_eq!(mem.allocate_key(), rec.key);
            let b = Batch { new_channels: vec![rec], ..Batch::default() };
            sql.commit(&b).unwrap();
            mem.commit(&b).unwrap();
            b.new_channels[0].key
        };
        for changes in send_changes(&steps, &cuts) {
            let c = [(key, ChannelChanges { changes, ..Default::default() })];
            sql.commit(&Batch { channels: &c, ..Batch::default() }).unwrap();
            mem.commit(&Batch { channels: &c, ..Batch::default() }).unwrap();
            prop_assert_eq!(sql.load_snapshot(key).unwrap(), mem.load_snapshot(key).unwrap());
        }
    }
}

/// Commits of 8 KB outbox rows on `s` for channel `key` (about three WAL pages each).
fn filler(s: &mut SqliteStore, key: ChannelKey, event: &ChannelEvent) {
    let seq = s.seq_bound();
    let rows = vec![EventRow { seq, channel: key, event }];
    s.commit(&Batch { events: rows, seq_bound: Some(seq + 1), ..Batch::default() }).unwrap();
}

fn wal_store(dir: &TempDir) -> (SqliteStore, ChannelKey) {
    let mut s = SqliteStore::open(&cfg(&dir.file("w.db"))).unwrap();
    let rec = record(&mut s, "a");
    let key = rec.key;
    s.commit(&Batch { new_channels: vec![rec], ..Batch::default() }).unwrap();
    (s, key)
}

/// Checkpoints are off the commit path and off the caller's thread: commits alone never copy
/// the WAL into the database (it grows past SQLite's usual threshold); from `CHECKPOINT_PAGES`
/// `maintain` asks the checkpoint thread, after which the next commit writes the WAL from its
/// start again; and what was committed reads back after a reopen.
#[test]
fn the_wal_is_checkpointed_by_the_checkpoint_thread() {
    let dir = TempDir::new("storage", "wal");
    let (mut s, key) = wal_store(&dir);
    let event = received(1, 8_000);
    while s.wal_pages() < CHECKPOINT_PAGES + 10 {
        filler(&mut s, key, &event);
    }
    s.wait_for_checkpoint();
    assert!(s.wal_pages() >= CHECKPOINT_PAGES, "no checkpoint without maintain");
    s.maintain(false);
    s.wait_for_checkpoint();
    assert_eq!(s.wal_pages(), 0, "the checkpoint thread copied the whole WAL");
    filler(&mut s, key, &event);
    assert!(s.wal_pages() < 10, "the next commit writes the WAL from its start: {} pages", s.wal_pages());
    let n = s.seq_bound() - 1;
    drop(s);
    let mut s = SqliteStore::open(&cfg(&dir.file("w.db"))).unwrap();
    assert_eq!(s.load_events(key).unwrap().len() as u64, n, "every row read back");
}

/// Commits go on while the checkpoint thread copies the WAL (each `maintain` after a commit asks
/// for one): nothing committed is lost or damaged, as a reopen reads back.
#[test]
fn commits_during_background_checkpoints_all_read_back() {
    let dir = TempDir::new("storage", "wal-concurrent");
    let (mut s, key) = wal_store(&dir);
    let events: Vec<ChannelEvent> = (0..3 * CHECKPOINT_PAGES as usize / 3).map(|i| received(i, 8_000 + i % 512)).collect();
    let first = s.seq_bound();
    let db_len = || std::fs::metadata(dir.file("w.db")).unwrap().len();
    let before = db_len();
    for e in &events {
        filler(&mut s, key, e);
        s.maintain(false);
    }
    s.wait_for_checkpoint();
    assert!(db_len() > before + 8 * 1024 * 1024, "checkpoints copied the WAL into the database");
    drop(s);
    let mut s = SqliteStore::open(&cfg(&dir.file("w.db"))).unwrap();
    let back = s.load_events(key).unwrap();
    assert_eq!(back.len(), events.len());
    for (i, (b, e)) in back.iter().zip(&events).enumerate() {
        assert_eq!((b.seq, &b.event), (first + i as u64, e), "row {i}");
    }
}

/// Under a load that leaves no moment to copy the whole WAL (here: no checkpoint thread at all),
/// `maintain` after a busy batch leaves the WAL alone below `WAL_BOUND_PAGES` and checkpoints
/// on the caller's thread from there: the WAL stays bounded. Idle, it checkpoints from
/// `CHECKPOINT_PAGES` (the fallback when the thread cannot be started).
#[test]
fn the_wal_stays_bounded_without_the_checkpoint_thread() {
    let dir = TempDir::new("storage", "wal-bound");
    let (mut s, key) = wal_store(&dir);
    s.checkpoint_on_caller_thread_only();
    let event = received(1, 8_000);
    while s.wal_pages() < CHECKPOINT_PAGES + 10 {
        filler(&mut s, key, &event);
    }
    s.maintain(false);
    assert!(s.wal_pages() >= CHECKPOINT_PAGES, "a busy runtime does not checkpoint below the bound");
    s.maintain(true);
    assert_eq!(s.wal_pages(), 0, "an idle one does");
    let (mut most, mut least_after) = (0, u32::MAX);
    for _ in 0..(WAL_BOUND_PAGES as usize / 3 + 500) {
        filler(&mut s, key, &event);
        most = most.max(s.wal_pages());
        s.maintain(false);
        least_after = least_after.min(s.wal_pages());
    }
    assert!((WAL_BOUND_PAGES..WAL_BOUND_PAGES + 10).contains(&most), "bounded under load: {most} pages at most");
    assert_eq!(least_after, 0, "checkpointed at the bound");
}
