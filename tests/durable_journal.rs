//! The SQLite store's journal (schema version 4, `src/storage/sqlite_journal.rs`): what a commit
//! appends is folded into the tables at a reopen, before a read, and from `JOURNAL_FOLD_ROWS` on
//! by `maintain`, each time leaving the state the memory store holds for the same batches; and a
//! version 3 database with state in its tables is migrated and keeps it.

use std::path::Path;

use bytes::Bytes;
use reliable_channel::channel::{Change, ChannelChanges, ChannelEvent, ClockBounds};
use reliable_channel::sds::{LogChange, LogEntry};
use reliable_channel::storage::{
    Batch, ChannelKey, ChannelRecord, Durability, EventRow, MemoryStore, SqliteStore, StorageConfig, Store, JOURNAL_FOLD_ROWS, SCHEMA_VERSION,
};

mod storage_support;
use storage_support::TempDir;

fn cfg(path: &Path) -> StorageConfig {
    StorageConfig { path: path.to_owned(), durability: Durability::Process, max_size_bytes: None }
}

/// The batch `i` of a steady stream on channel `key`: a send accepted and wrapped, the previous
/// one acknowledged and finished, a log entry in and (from the fifth on) the oldest out, a RECEIVED
/// and a SENT event, and the previous batch's events delivered.
fn batch_changes(i: u64) -> (ChannelChanges, Vec<ChannelEvent>) {
    let req = |i: u64| -> std::sync::Arc<str> { format!("req-{i}").into() };
    let id = |i: u64| -> std::sync::Arc<str> { format!("{:064x}", i * 7_919).into() };
    let mut changes = vec![
        Change::SendAccepted { request: req(i), ephemeral: false, bytes: 100, chunks: vec![(id(i), Bytes::from(vec![i as u8; 100]))] },
        Change::ChunkWrapped { request: req(i), index: 0, lamport: 1_000 + i, bytes: Bytes::from(vec![7u8; 130]) },
        Change::SendSent { request: req(i) },
    ];
    if i > 0 && !i.is_multiple_of(3) {
        // Every third send stays pending: some reach the tables.
        changes.push(Change::ChunkAcked { request: req(i - 1), index: 0 });
        changes.push(Change::SendFinished { request: req(i - 1) });
    }
    let mut log = vec![LogChange::Insert(LogEntry { message_id: id(i), lamport_timestamp: 1_000 + i, sender_id: None, retrieval_hint: None })];
    if i >= 4 {
        log.push(LogChange::Remove(id(i - 4)));
    }
    let clocks = i.is_multiple_of(10).then_some(ClockBounds { lamport: 2_000 + i, wrap_ns: i });
    let events = vec![
        ChannelEvent::Received { request_id: format!("in-{i}"), sender_id: "bob".into(), payload: vec![i as u8; 50] },
        ChannelEvent::Sent { request_id: format!("req-{i}") },
    ];
    (ChannelChanges { log, changes, clocks, rln: None }, events)
}

/// Commits batches `range` to `store` (seq = 2 per batch; the previous batch's events delivered,
/// except every seventh batch's, which stay in the outbox).
fn stream(store: &mut dyn Store, key: ChannelKey, range: std::ops::Range<u64>) {
    for i in range {
        let (changes, events) = batch_changes(i);
        let rows = events.iter().enumerate().map(|(j, e)| EventRow { seq: 1 + 2 * i + j as u64, channel: key, event: e }).collect();
        let delivered = if i > 0 && !(i - 1).is_multiple_of(7) { vec![2 * i - 1, 2 * i] } else { vec![] };
        let channels = [(key, changes)];
        let seq_bound = i.is_multiple_of(100).then_some(2 * i + 1_000);
        store.commit(&Batch { events: rows, delivered, seq_bound, channels: &channels, ..Batch::default() }).unwrap();
    }
}

fn open(store: &mut dyn Store) -> ChannelKey {
    let key = store.allocate_key();
    let rec = ChannelRecord { key, channel_id: "room".into(), sender_id: "alice".into(), content_topic: "/app/1/room/proto".into() };
    store.commit(&Batch { new_channels: vec![rec], ..Batch::default() }).unwrap();
    key
}

fn state(store: &mut dyn Store, key: ChannelKey) -> (Vec<u64>, reliable_channel::channel::ChannelSnapshot) {
    let events = store.load_events(key).unwrap().iter().map(|e| e.seq).collect();
    (events, store.load_snapshot(key).unwrap())
}

#[test]
fn the_journal_is_folded_at_the_reopen_and_when_it_is_full() {
    let dir = TempDir::new("journal", "fold");
    let path = dir.file("j.db");
    let mut mem = MemoryStore::new();
    let key = open(&mut mem);
    let n = u64::from(JOURNAL_FOLD_ROWS) + 250;
    stream(&mut mem, key, 0..n);
    let want = state(&mut mem, key);
    assert!(want.0.len() > 10 && want.1.sends.len() > 10 && want.1.log.len() == 4 && want.1.clocks.is_some(), "{:?}", want.0);
    {
        let mut sql = SqliteStore::open(&cfg(&path)).unwrap();
        assert_eq!(open(&mut sql), key);
        // Nothing is read back before the close: the reopen folds all of it.
        stream(&mut sql, key, 0..200);
        assert_eq!(sql.journal_rows(), 200);
    }
    let mut sql = SqliteStore::open(&cfg(&path)).unwrap();
    assert_eq!(sql.journal_rows(), 0, "folded at the open");
    // The rest, past the fold threshold: `maintain` folds.
    stream(&mut sql, key, 200..n);
    assert_eq!(sql.journal_rows(), JOURNAL_FOLD_ROWS + 50);
    sql.maintain(false);
    assert_eq!(sql.journal_rows(), 0, "folded from JOURNAL_FOLD_ROWS on");
    assert_eq!(state(&mut sql, key), want);
    // What the tables hold is what a reopen reads.
    drop(sql);
    let mut sql = SqliteStore::open(&cfg(&path)).unwrap();
    assert_eq!(state(&mut sql, key), want);
    assert!(sql.seq_bound() > 2 * n, "the bound covers every seq");
}

#[test]
fn a_commit_needs_growing_seqs() {
    let dir = TempDir::new("journal", "seq");
    let mut sql = SqliteStore::open(&cfg(&dir.file("s.db"))).unwrap();
    let key = open(&mut sql);
    stream(&mut sql, key, 0..3);
    let e = ChannelEvent::Sent { request_id: "x".into() };
    for seq in [1, 6] {
        let err = sql.commit(&Batch { events: vec![EventRow { seq, channel: key, event: &e }], ..Batch::default() }).unwrap_err();
        assert!(err.0.contains("UNIQUE") && err.0.contains("s.db"), "{err}");
    }
    sql.commit(&Batch { events: vec![EventRow { seq: 7, channel: key, event: &e }], ..Batch::default() }).unwrap();
    drop(sql);
    // The bound survives the reopen (read from the events, after the fold).
    let mut sql = SqliteStore::open(&cfg(&dir.file("s.db"))).unwrap();
    let err = sql.commit(&Batch { events: vec![EventRow { seq: 7, channel: key, event: &e }], ..Batch::default() }).unwrap_err();
    assert!(err.0.contains("UNIQUE"), "{err}");
}

#[test]
fn a_version_3_database_with_state_is_migrated() {
    let dir = TempDir::new("journal", "v3");
    let path = dir.file("v3.db");
    {
        let c = rusqlite::Connection::open(&path).unwrap();
        // The schema of version 3 as that library wrote it, with a row in each table.
        c.execute_batch(
            "PRAGMA application_id = 1382826856; PRAGMA user_version = 3;
             CREATE TABLE meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
             CREATE TABLE channels (key INTEGER PRIMARY KEY, channel_id TEXT NOT NULL UNIQUE, sender_id TEXT NOT NULL, content_topic TEXT NOT NULL);
             CREATE TABLE events (seq INTEGER PRIMARY KEY, channel INTEGER NOT NULL, kind INTEGER NOT NULL, request_id TEXT, sender_id TEXT, payload BLOB, error TEXT);
             CREATE TABLE channel_state (channel INTEGER PRIMARY KEY, lamport_bound INTEGER, wrap_bound INTEGER, rln_epoch INTEGER, rln_used INTEGER);
             CREATE TABLE log (channel INTEGER NOT NULL, id TEXT NOT NULL, lamport INTEGER NOT NULL, sender TEXT, hint BLOB, UNIQUE (channel, id));
             CREATE TABLE sends (channel INTEGER NOT NULL, request_id TEXT NOT NULL, ephemeral INTEGER NOT NULL, bytes INTEGER NOT NULL, sent INTEGER NOT NULL, UNIQUE (channel, request_id));
             CREATE TABLE send_chunks (channel INTEGER NOT NULL, request_id TEXT NOT NULL, idx INTEGER NOT NULL, id TEXT NOT NULL, frame BLOB, lamport INTEGER, wrapped BLOB, acked INTEGER NOT NULL, UNIQUE (channel, request_id, idx));
             CREATE TABLE incoming (channel INTEGER NOT NULL, id TEXT NOT NULL, at INTEGER NOT NULL, bytes BLOB NOT NULL, hint BLOB, UNIQUE (channel, id));
             CREATE TABLE partials (channel INTEGER NOT NULL, sender TEXT NOT NULL, request_id TEXT NOT NULL, idx INTEGER NOT NULL, at INTEGER NOT NULL, frame BLOB NOT NULL, UNIQUE (channel, sender, request_id, idx));
             ALTER TABLE send_chunks ADD COLUMN retransmissions INTEGER NOT NULL DEFAULT 0;
             ALTER TABLE send_chunks ADD COLUMN possible_acks INTEGER NOT NULL DEFAULT 0;
             INSERT INTO meta VALUES ('seq_bound', 90);
             INSERT INTO channels VALUES (1, 'room', 'alice', '/app/1/room/proto');
             INSERT INTO events VALUES (80, 1, 2, 'r1', NULL, NULL, NULL);
             INSERT INTO channel_state VALUES (1, 5000, 6000, NULL, NULL);
             INSERT INTO log VALUES (1, 'm1', 17, 'bob', NULL);
             INSERT INTO sends VALUES (1, 'r1', 0, 3, 1);
             INSERT INTO send_chunks VALUES (1, 'r1', 0, 'c1', NULL, 18, x'0102', 0, 2, 1);",
        )
        .unwrap();
    }
    let mut s = SqliteStore::open(&cfg(&path)).unwrap();
    let v: u32 = rusqlite::Connection::open(&path).unwrap().query_row("PRAGMA user_version", [], |r| r.get(0)).unwrap();
    assert_eq!(v, SCHEMA_VERSION);
    assert_eq!(SCHEMA_VERSION, 5);
    assert_eq!(s.seq_bound(), 90);
    let key = s.load_channel("room").unwrap().expect("kept").key;
    let (events, snap) = state(&mut s, key);
    assert_eq!(events, vec![80]);
    assert_eq!(snap.clocks, Some(ClockBounds { lamport: 5000, wrap_ns: 6000 }));
    assert_eq!((snap.log.len(), snap.sends.len()), (1, 1));
    let chunk = &snap.sends[0].chunks[0];
    assert_eq!((chunk.wrapped.clone(), chunk.retransmissions, chunk.possible_acks), (Some((18, Bytes::from_static(&[1, 2]))), 2, 1));
    // The migrated database takes journalled commits and folds them into the old rows.
    // The old log row is found by its rowid (the migration dropped the index on ids).
    let m2 = LogEntry { message_id: "m2".into(), lamport_timestamp: 19, sender_id: None, retrieval_hint: None };
    let finish = [(
        key,
        ChannelChanges {
            changes: vec![Change::SendFinished { request: "r1".into() }],
            log: vec![LogChange::Insert(m2.clone()), LogChange::Remove("m1".into())],
            ..ChannelChanges::default()
        },
    )];
    s.commit(&Batch { delivered: vec![80], channels: &finish, ..Batch::default() }).unwrap();
    drop(s);
    let mut s = SqliteStore::open(&cfg(&path)).unwrap();
    let (events, snap) = state(&mut s, key);
    assert_eq!((events.len(), snap.sends.len(), snap.log), (0, 0, vec![m2]));
}

/// Log changes of batch `i` on a channel whose entries are `tag`-prefixed: two entries in, the
/// oldest ones evicted in order (a window of 40), now and then an entry of the window removed
/// out of order, one inserted again (it moves to the end) and a hint set.
fn log_batch(tag: &str, i: u64) -> Vec<LogChange> {
    let id = |n: u64| -> std::sync::Arc<str> { format!("{tag}-{n:04}").into() };
    let entry = |n: u64| LogEntry { message_id: id(n), lamport_timestamp: n, sender_id: Some("bob".into()), retrieval_hint: None };
    let mut log = vec![LogChange::Insert(entry(2 * i)), LogChange::Insert(entry(2 * i + 1))];
    if i >= 20 {
        log.push(LogChange::Remove(id(2 * i - 40)));
        log.push(LogChange::Remove(id(2 * i - 39)));
    }
    match i % 7 {
        // Out of order: an entry in the middle of the window (removed twice: once is a no-op).
        3 if i > 10 => log.push(LogChange::Remove(id(2 * i - 11))),
        // Inserted again: the stored row moves to the end.
        4 if i > 10 => log.push(LogChange::Insert(entry(2 * i - 13))),
        5 if i > 2 => log.push(LogChange::Hint(id(2 * i - 5), Bytes::from(vec![i as u8; 3]))),
        // A hint on an entry inserted in this very batch.
        6 => log.push(LogChange::Hint(id(2 * i), Bytes::from_static(b"new"))),
        _ => {}
    }
    log
}

#[test]
fn log_rows_are_found_by_rowid_across_reopens_folds_and_purges() {
    let dir = TempDir::new("journal", "log-rows");
    let path = dir.file("l.db");
    let mut mem = MemoryStore::new();
    let mut sql = SqliteStore::open(&cfg(&path)).unwrap();
    let mut keys = Vec::new();
    for store in [&mut mem as &mut dyn Store, &mut sql as &mut dyn Store] {
        let mut ks = Vec::new();
        for ch in ["room", "hall"] {
            let key = store.allocate_key();
            let rec = ChannelRecord { key, channel_id: ch.into(), sender_id: "alice".into(), content_topic: format!("/app/1/{ch}/proto") };
            store.commit(&Batch { new_channels: vec![rec], ..Batch::default() }).unwrap();
            ks.push(key);
        }
        keys = ks;
    }
    let (room, hall) = (keys[0], keys[1]);
    assert_eq!(mem.load_channel("hall").unwrap().map(|r| r.key), Some(hall));
    // Both channels in every batch: their rows interleave, so an eviction's rowid range holds
    // the other channel's rows too (deleted one by one there, never the other's).
    let commit = |s: &mut dyn Store, i: u64| {
        let mut channels = vec![(room, ChannelChanges { log: log_batch("r", i), ..ChannelChanges::default() })];
        // The hall skips every third batch, and is purged at batch 120.
        if !i.is_multiple_of(3) && i < 120 {
            channels.push((hall, ChannelChanges { log: log_batch("h", i), ..ChannelChanges::default() }));
        }
        s.commit(&Batch { channels: &channels, ..Batch::default() }).unwrap();
    };
    let logs = |s: &mut dyn Store| (s.load_snapshot(room).unwrap().log, s.load_snapshot(hall).unwrap().log);
    for i in 0..60 {
        commit(&mut mem, i);
        commit(&mut sql, i);
        // Folds of a few batches each (a read folds), so entries are removed by later folds.
        if i % 9 == 8 {
            assert_eq!(logs(&mut sql), logs(&mut mem), "after batch {i}");
        }
    }
    let want = logs(&mut mem);
    assert!(want.0.len() >= 38 && want.1.len() >= 38, "{} {}", want.0.len(), want.1.len());
    assert!(want.0.iter().any(|e| e.retrieval_hint.is_some()), "hints set");
    assert_eq!(logs(&mut sql), want);
    // Reopened: the rowids are read from the table; evictions of entries written before the
    // reopen delete the right rows, before and after a fold at the open.
    for round in 0..3u64 {
        let now = logs(&mut mem);
        drop(sql);
        sql = SqliteStore::open(&cfg(&path)).unwrap();
        assert_eq!(sql.log_rows_known(), Some(now.0.len() + now.1.len()), "round {round}: every stored entry's row");
        for i in 60 + 20 * round..80 + 20 * round {
            commit(&mut mem, i);
            commit(&mut sql, i);
        }
        if round == 1 {
            // Left in the journal: the next open folds it with the rowids it reads.
            continue;
        }
        assert_eq!(logs(&mut sql), logs(&mut mem), "round {round}");
    }
    let rows: i64 = rusqlite::Connection::open(&path).unwrap().query_row("SELECT count(*) FROM log", [], |r| r.get(0)).unwrap();
    let want = logs(&mut mem);
    assert_eq!(rows as usize, want.0.len() + want.1.len(), "no row left behind");
    assert_eq!(sql.log_rows_known(), Some(want.0.len() + want.1.len()));
    // A purge forgets the channel's rows; the other channel goes on.
    assert!(sql.purge("hall").unwrap());
    assert!(mem.purge("hall").unwrap());
    assert_eq!(sql.log_rows_known(), Some(want.0.len()));
    for i in 120..140 {
        commit(&mut mem, i);
        commit(&mut sql, i);
    }
    assert_eq!(logs(&mut sql).0, logs(&mut mem).0);
    drop(sql);
    let mut sql = SqliteStore::open(&cfg(&path)).unwrap();
    assert_eq!(logs(&mut sql).0, logs(&mut mem).0);
}

/// The journal file of the database at `db` (`src/storage/journal_file.rs`).
fn journal_file(db: &Path) -> std::path::PathBuf {
    format!("{}-rc-journal", db.display()).into()
}

/// The byte ranges of the journal file's records: a 16-byte header, then per record its payload
/// length (u32 LE), checksum, sequence number (u64) and payload.
fn records(bytes: &[u8]) -> Vec<std::ops::Range<usize>> {
    let mut out = Vec::new();
    let mut at = 16;
    while at + 16 <= bytes.len() {
        let len = u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
        out.push(at..at + 16 + len);
        at += 16 + len;
    }
    assert_eq!(at, bytes.len(), "whole records");
    out
}

/// A database holding batches `0..n` in its journal file only (closed without a fold), and the
/// state the memory store holds after `0..n - cut` of the same batches.
fn journalled(
    dir: &TempDir,
    name: &str,
    durability: Durability,
    n: u64,
    cut: u64,
) -> (std::path::PathBuf, ChannelKey, (Vec<u64>, reliable_channel::channel::ChannelSnapshot)) {
    let path = dir.file(name);
    let mut mem = MemoryStore::new();
    let key = open(&mut mem);
    stream(&mut mem, key, 0..n - cut);
    let mut sql = SqliteStore::open(&StorageConfig { durability, ..cfg(&path) }).unwrap();
    assert_eq!(open(&mut sql), key);
    stream(&mut sql, key, 0..n);
    assert_eq!(u64::from(sql.journal_rows()), n);
    drop(sql);
    (path, key, state(&mut mem, key))
}

#[test]
fn a_commit_cut_short_at_the_end_of_the_journal_file_is_dropped() {
    let dir = TempDir::new("journal", "torn");
    for (name, durability) in [("cut.db", Durability::Process), ("cut-power.db", Durability::Power)] {
        // Cut short: the kill interrupted the last commit's write (it never returned).
        let (path, key, want) = journalled(&dir, name, durability, 40, 1);
        let file = journal_file(&path);
        let len = std::fs::metadata(&file).unwrap().len();
        let f = std::fs::OpenOptions::new().write(true).open(&file).unwrap();
        f.set_len(len - 7).unwrap();
        drop(f);
        let mut sql = SqliteStore::open(&cfg(&path)).unwrap();
        assert_eq!(state(&mut sql, key), want, "{name}: the 39 whole commits, not the cut one");
        assert_eq!(std::fs::metadata(&file).unwrap().len(), 16, "folded, the file emptied");
    }
    // The last record whole but with other bytes (not all of it reached the disk): dropped too.
    let (path, key, want) = journalled(&dir, "bad-last.db", Durability::Power, 40, 1);
    let file = journal_file(&path);
    let mut bytes = std::fs::read(&file).unwrap();
    let last = records(&bytes).pop().unwrap();
    bytes[last.end - 3] ^= 0xff;
    std::fs::write(&file, &bytes).unwrap();
    let mut sql = SqliteStore::open(&cfg(&path)).unwrap();
    assert_eq!(state(&mut sql, key), want);
}

/// Opens `path` expecting a refusal mentioning `why`; the database and its journal file are left
/// as they were.
fn refused_untouched(path: &Path, why: &str) {
    let before = (std::fs::read(path).unwrap(), std::fs::read(journal_file(path)).unwrap());
    let err = SqliteStore::open(&cfg(path)).unwrap_err();
    assert!(err.0.contains(why), "{err}");
    assert!(err.0.contains("rc-journal"), "names the file: {err}");
    assert!((std::fs::read(path).unwrap(), std::fs::read(journal_file(path)).unwrap()) == before, "both files left as they were");
}

#[test]
fn damage_inside_the_journal_file_refuses_the_database() {
    let dir = TempDir::new("journal", "damage");
    // A record in the middle with other bytes: dropping it would lose what it records.
    let (path, _, _) = journalled(&dir, "middle.db", Durability::Process, 30, 0);
    let file = journal_file(&path);
    let mut bytes = std::fs::read(&file).unwrap();
    let r = records(&bytes)[10].clone();
    bytes[r.start + 20] ^= 0x01;
    std::fs::write(&file, &bytes).unwrap();
    refused_untouched(&path, "damaged");

    // A record missing (a gap in the sequence numbers).
    let (path, _, _) = journalled(&dir, "gap.db", Durability::Process, 30, 0);
    let file = journal_file(&path);
    let mut bytes = std::fs::read(&file).unwrap();
    let r = records(&bytes)[10].clone();
    bytes.drain(r);
    std::fs::write(&file, &bytes).unwrap();
    refused_untouched(&path, "does not follow");

    // Another database's journal file.
    let (other, _, _) = journalled(&dir, "other.db", Durability::Process, 5, 0);
    std::fs::copy(journal_file(&other), &file).unwrap();
    refused_untouched(&path, "belongs to another database");

    // Not a journal file at all.
    std::fs::write(&file, "my notes, not a journal\n".repeat(5)).unwrap();
    refused_untouched(&path, "not a reliable-channel journal");
}

#[test]
fn records_a_fold_already_applied_are_skipped() {
    // A crash after the fold's commit, before the file was emptied: its records are still there.
    let dir = TempDir::new("journal", "skip");
    let (path, key, _) = journalled(&dir, "s.db", Durability::Process, 30, 0);
    let file = journal_file(&path);
    let old = std::fs::read(&file).unwrap();
    let mut mem = MemoryStore::new();
    assert_eq!(open(&mut mem), key);
    stream(&mut mem, key, 0..40);
    let want = state(&mut mem, key);
    drop(SqliteStore::open(&cfg(&path)).unwrap());
    std::fs::write(&file, &old).unwrap();
    // Applied twice, the events would break their UNIQUE seq and the open would fail.
    let mut sql = SqliteStore::open(&cfg(&path)).unwrap();
    // New records follow the folded ones (a reopen does not see them as a gap).
    stream(&mut sql, key, 30..40);
    drop(sql);
    let mut sql = SqliteStore::open(&cfg(&path)).unwrap();
    assert_eq!(state(&mut sql, key), want);
}

#[test]
fn a_version_4_database_with_journal_rows_is_migrated() {
    // Version 4 kept the journal in a table: the rows a version 4 library left are folded.
    let dir = TempDir::new("journal", "v4");
    let (path, key, want) = journalled(&dir, "v4.db", Durability::Process, 30, 0);
    let file = journal_file(&path);
    let bytes = std::fs::read(&file).unwrap();
    {
        let c = rusqlite::Connection::open(&path).unwrap();
        for r in records(&bytes) {
            c.execute("INSERT INTO journal (batch) VALUES (?1)", [&bytes[r.start + 16..r.end]]).unwrap();
        }
        c.execute_batch("DELETE FROM meta WHERE key IN ('journal_id', 'journal_folded'); PRAGMA user_version = 4;").unwrap();
    }
    std::fs::remove_file(&file).unwrap();
    let mut sql = SqliteStore::open(&cfg(&path)).unwrap();
    assert_eq!(state(&mut sql, key), want);
    let v: u32 = rusqlite::Connection::open(&path).unwrap().query_row("PRAGMA user_version", [], |r| r.get(0)).unwrap();
    assert_eq!(v, SCHEMA_VERSION);
    let rows: i64 = rusqlite::Connection::open(&path).unwrap().query_row("SELECT count(*) FROM journal", [], |r| r.get(0)).unwrap();
    assert_eq!(rows, 0);
}

#[test]
fn wherever_a_kill_cuts_the_journal_file_the_open_keeps_the_whole_records_before_it() {
    // The states after 0..=N batches, from the memory store.
    let dir = TempDir::new("journal", "cuts");
    let n = 12;
    let mut want = Vec::new();
    for k in 0..=n {
        let mut mem = MemoryStore::new();
        let key = open(&mut mem);
        stream(&mut mem, key, 0..k);
        want.push(state(&mut mem, key));
    }
    let (path, key, _) = journalled(&dir, "full.db", Durability::Process, n, 0);
    let db = std::fs::read(&path).unwrap();
    let journal = std::fs::read(journal_file(&path)).unwrap();
    let records = records(&journal);
    assert_eq!(records.len() as u64, n);
    // Cut at, inside and just after each record's header, in its payload, and at its end.
    let mut cuts = vec![0, 5, 8, 12, 16];
    for r in &records {
        cuts.extend([r.start + 1, r.start + 15, r.start + 16, r.start + 17, (r.start + r.end) / 2, r.end - 1, r.end]);
    }
    for cut in cuts {
        let case = dir.file(&format!("cut-{cut}.db"));
        std::fs::write(&case, &db).unwrap();
        std::fs::write(journal_file(&case), &journal[..cut]).unwrap();
        let whole = records.iter().filter(|r| r.end <= cut).count();
        let mut sql = SqliteStore::open(&cfg(&case)).unwrap_or_else(|e| panic!("cut at byte {cut}: {e}"));
        assert_eq!(state(&mut sql, key), want[whole], "cut at byte {cut}: the {whole} whole records");
        // And the database goes on from there.
        stream(&mut sql, key, whole as u64..n);
        drop(sql);
        let mut sql = SqliteStore::open(&cfg(&case)).unwrap();
        assert_eq!(state(&mut sql, key), want[n as usize], "cut at byte {cut}, then the rest committed again");
    }
}
