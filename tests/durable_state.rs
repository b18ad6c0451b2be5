//! The channel-state tables of the stores (issue #11): the memory store is a faithful model of
//! the SQLite one for real channel changes (sends queued behind the rate limiter, chunks wrapped
//! and acknowledged, partial incoming messages, messages waiting for dependencies, the log), the
//! SQLite one keeps them across a reopen, a version 1 database is migrated, and the time to
//! reopen a channel with 10,000 log entries and 1,000 pending chunks is measured (printed, not
//! asserted: see BENCHMARKS.md "Durable channels").

use std::path::{Path, PathBuf};
use std::time::Instant;

use reliable_channel::channel::{Change, Channel, ChannelAction, ChannelChanges, ChannelConfig, ChannelEvent, ChannelSnapshot};
use reliable_channel::sds::{HistoryStore, LogChange, LogEntry};
use reliable_channel::storage::{Batch, ChannelKey, ChannelRecord, Durability, MemoryStore, SqliteStore, StorageConfig, Store};
use reliable_channel::wire::WakuMessage;

mod storage_support;
use storage_support::TempDir;

const T0: u64 = 1_700_000_000_000;
const TOPIC: &str = "/app/1/room/proto";

fn cfg(path: &Path) -> StorageConfig {
    StorageConfig { path: path.to_owned(), durability: Durability::Process, max_size_bytes: None }
}

fn open_channel(store: &mut dyn Store, id: &str, sender: &str) -> ChannelKey {
    let key = store.allocate_key();
    let rec = ChannelRecord { key, channel_id: id.into(), sender_id: sender.into(), content_topic: TOPIC.into() };
    store.commit(&Batch { new_channels: vec![rec], ..Batch::default() }).unwrap();
    key
}

fn dispatched(ch: &mut Channel, now: u64) -> Vec<WakuMessage> {
    let mut out = Vec::new();
    while let Some(a) = ch.poll_action() {
        if let ChannelAction::Dispatch { token, message } = a {
            ch.on_dispatch_result(now, token, Ok(None));
            out.push(message);
        }
    }
    out
}

#[test]
fn both_stores_hold_the_same_channel_state_and_sqlite_keeps_it() {
    let dir = TempDir::new("state", "same");
    let path = dir.file("s.db");
    let mut mem = MemoryStore::new();
    let mut sql = SqliteStore::open(&cfg(&path)).unwrap();
    let key = open_channel(&mut mem, "room", "alice");
    assert_eq!(open_channel(&mut sql, "room", "alice"), key);
    let bob_key = open_channel(&mut mem, "room-b", "bob");
    assert_eq!(open_channel(&mut sql, "room-b", "bob"), bob_key);
    let config = ChannelConfig::default()
        .with_json(Some(r#"{"segmentationConfig": {"chunkSizeBytes": 1024}, "rateLimitConfig": {"epochSizeMs": 1000, "messagesPerEpoch": 7, "accounting": "allMessages"}}"#))
        .unwrap();
    let mut alice = Channel::new("room", TOPIC, "alice", config.clone(), T0, 1);
    let mut bob = Channel::new("room", TOPIC, "bob", config, T0, 2);
    alice.restore(T0, ChannelSnapshot::default());
    bob.restore(T0, ChannelSnapshot::default());
    let commit = |mem: &mut MemoryStore, sql: &mut SqliteStore, key: ChannelKey, ch: &mut Channel| {
        let changes = [(key, ch.take_changes().unwrap())];
        mem.commit(&Batch { channels: &changes, ..Batch::default() }).unwrap();
        sql.commit(&Batch { channels: &changes, ..Batch::default() }).unwrap();
    };
    // Three messages of three chunks: seven chunks go out this epoch, two wait.
    for i in 0..3u8 {
        alice.send(T0, &format!("r{i}"), &[i; 3_000], false).unwrap();
    }
    let out = dispatched(&mut alice, T0);
    assert_eq!(out.len(), 7);
    commit(&mut mem, &mut sql, key, &mut alice);
    // Bob misses the last chunk of r0: its first two make a partial message, and every later
    // chunk waits for the missing one (alice's chunks name their predecessor): the incoming buffer.
    for (i, m) in out.iter().enumerate() {
        if i != 2 {
            bob.on_message(T0 + 10, m, None);
        }
    }
    commit(&mut mem, &mut sql, bob_key, &mut bob);
    let b = bob.stats();
    assert_eq!((b.messages_received, b.incoming_buffered, b.reassembly_messages), (0, 4, 1), "{b:?}");
    // Bob's messages acknowledge what he has; alice's next epoch releases the rest.
    bob.send(T0 + 20, "b0", b"ack", false).unwrap();
    for m in dispatched(&mut bob, T0 + 20) {
        alice.on_message(T0 + 30, &m, None);
    }
    commit(&mut mem, &mut sql, bob_key, &mut bob);
    alice.handle_timeout(T0 + 1_000);
    assert_eq!(dispatched(&mut alice, T0 + 1_000).len(), 2);
    commit(&mut mem, &mut sql, key, &mut alice);
    for k in [key, bob_key] {
        let want = mem.load_snapshot(k).unwrap();
        assert_eq!(sql.load_snapshot(k).unwrap(), want);
        assert!(!want.log.is_empty() && want.clocks.is_some() && want.rln.is_some());
    }
    let alice_state = mem.load_snapshot(key).unwrap();
    assert!(alice_state.sends.iter().any(|s| s.chunks.iter().any(|c| c.acked)), "some chunks acknowledged");
    assert!(alice_state.sends.iter().all(|s| s.chunks.iter().all(|c| c.frame.is_none())), "every chunk wrapped");
    let bob_state = mem.load_snapshot(bob_key).unwrap();
    assert_eq!((bob_state.incoming.len(), bob_state.partials.len()), (4, 2));
    drop(sql);
    let mut sql = SqliteStore::open(&cfg(&path)).unwrap();
    assert_eq!(sql.load_snapshot(key).unwrap(), alice_state);
    assert_eq!(sql.load_snapshot(bob_key).unwrap(), bob_state);
    // Restored, bob's channel holds what it held: one partial, four waiting messages, its log.
    let mut bob2 = Channel::new("room", TOPIC, "bob", ChannelConfig::default(), T0 + 40, 3);
    bob2.restore(T0 + 40, bob_state);
    let s = bob2.stats();
    assert_eq!((s.incoming_buffered, s.reassembly_messages), (4, 1), "{s:?}");
    assert_eq!(bob2.sds().history().len(), bob.sds().history().len());
    // A purge deletes every row of the channel.
    sql.purge("room-b").unwrap();
    assert_eq!(sql.load_snapshot(bob_key).unwrap(), ChannelSnapshot::default());
    assert_ne!(sql.load_snapshot(key).unwrap(), ChannelSnapshot::default());
}

#[test]
fn a_version_1_database_is_migrated() {
    let dir = TempDir::new("state", "v1");
    let path = dir.file("v1.db");
    {
        let c = rusqlite::Connection::open(&path).unwrap();
        c.execute_batch(
            "PRAGMA application_id = 1382826856; PRAGMA user_version = 1;
             CREATE TABLE meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
             CREATE TABLE channels (key INTEGER PRIMARY KEY, channel_id TEXT NOT NULL UNIQUE, sender_id TEXT NOT NULL, content_topic TEXT NOT NULL);
             CREATE TABLE events (seq INTEGER PRIMARY KEY, channel INTEGER NOT NULL, kind INTEGER NOT NULL, request_id TEXT, sender_id TEXT, payload BLOB, error TEXT);
             INSERT INTO meta VALUES ('seq_bound', 42);
             INSERT INTO channels VALUES (1, 'room', 'alice', '/app/1/room/proto');",
        )
        .unwrap();
    }
    let mut s = SqliteStore::open(&cfg(&path)).unwrap();
    assert_eq!(s.seq_bound(), 42);
    let rec = s.load_channel("room").unwrap().expect("kept");
    assert_eq!(s.load_snapshot(rec.key).unwrap(), ChannelSnapshot::default());
    let e = LogEntry { message_id: "m".into(), lamport_timestamp: 5, sender_id: Some("bob".into()), retrieval_hint: None };
    let changes = [(rec.key, ChannelChanges { log: vec![LogChange::Insert(e.clone())], ..Default::default() })];
    s.commit(&Batch { channels: &changes, ..Batch::default() }).unwrap();
    drop(s);
    let v: u32 = rusqlite::Connection::open(&path).unwrap().query_row("PRAGMA user_version", [], |r| r.get(0)).unwrap();
    assert_eq!(v, reliable_channel::storage::SCHEMA_VERSION);
    let mut s = SqliteStore::open(&cfg(&path)).unwrap();
    assert_eq!(s.load_snapshot(rec.key).unwrap().log, vec![e]);
}

/// The database, its write-ahead log and its journal file, in bytes.
fn file_size(path: &Path) -> u64 {
    ["", "-wal", "-rc-journal"].iter().map(|ext| std::fs::metadata(PathBuf::from(format!("{}{ext}", path.display()))).map_or(0, |m| m.len())).sum()
}

/// A channel with 10,000 log entries and 1,000 pending chunks (100 sends of 10 wrapped chunks of
/// 1 KiB): the time of the read and of the restore, and the database size, printed.
#[test]
fn reopen_with_10000_log_entries_and_1000_pending_chunks() {
    let dir = TempDir::new("state", "reopen");
    let path = dir.file("r.db");
    let key = {
        let mut s = SqliteStore::open(&cfg(&path)).unwrap();
        let key = open_channel(&mut s, "room", "alice");
        let mut log = Vec::new();
        for i in 0..10_000u64 {
            let sender = if i % 2 == 0 { "alice" } else { "bob" };
            let hint = Some(bytes::Bytes::from(vec![(i % 251) as u8; 32]));
            log.push(LogChange::Insert(LogEntry {
                message_id: format!("{:064x}", i * 7_919).into(),
                lamport_timestamp: T0 + i,
                sender_id: Some(sender.into()),
                retrieval_hint: hint,
            }));
        }
        let c = [(key, ChannelChanges { log, ..Default::default() })];
        s.commit(&Batch { channels: &c, ..Batch::default() }).unwrap();
        let mut changes = Vec::new();
        for r in 0..100u32 {
            let request: std::sync::Arc<str> = format!("req{r:04}").into();
            let chunks = (0..10u32).map(|c| (format!("{:064x}", 1_000_000 + r * 10 + c).into(), bytes::Bytes::from(vec![1u8; 1_024]))).collect();
            changes.push(Change::SendAccepted { request: request.clone(), ephemeral: false, bytes: 10_240, chunks });
            for index in 0..10u32 {
                changes.push(Change::ChunkWrapped {
                    request: request.clone(),
                    index,
                    lamport: T0 + 20_000,
                    bytes: bytes::Bytes::from(vec![2u8; 1_300]),
                });
            }
        }
        let log_size = file_size(&path);
        let c = [(key, ChannelChanges { changes, ..Default::default() })];
        s.commit(&Batch { channels: &c, ..Batch::default() }).unwrap();
        eprintln!("database size with 10,000 log entries: {} KiB", log_size / 1024);
        key
    };
    let size = file_size(&path);
    let t = Instant::now();
    let mut s = SqliteStore::open(&cfg(&path)).unwrap();
    let opened = t.elapsed();
    let snap = s.load_snapshot(key).unwrap();
    let read = t.elapsed();
    assert_eq!((snap.log.len(), snap.sends.len()), (10_000, 100));
    let mut ch = Channel::new("room", TOPIC, "alice", ChannelConfig::default(), T0 + 30_000, 1);
    ch.restore(T0 + 30_000, snap);
    let restored = t.elapsed();
    assert_eq!(ch.sds().history().len(), 10_000);
    assert_eq!(ch.sds().outgoing_len().0, 1_000);
    eprintln!(
        "reopen: open {opened:?}, read {:?}, restore {:?}, total {restored:?}; database {} KiB (10,000 log entries + 1,000 chunks of ~1.3 KiB; {} KiB once the open folded the journal into the tables)",
        read - opened,
        restored - read,
        size / 1024,
        file_size(&path) / 1024
    );
}

/// Dispatches what `ch` wants to send (every publication succeeds) and collects its events.
fn run(ch: &mut Channel, now: u64) -> (Vec<WakuMessage>, Vec<ChannelEvent>) {
    let (mut out, mut events) = (Vec::new(), Vec::new());
    while let Some(a) = ch.poll_action() {
        match a {
            ChannelAction::Dispatch { token, message } => {
                ch.on_dispatch_result(now, token, Ok(None));
                out.push(message);
            }
            ChannelAction::Event(e) => events.push(e),
            ChannelAction::Retrieve { .. } => {}
        }
    }
    (out, events)
}

fn commit_changes(store: &mut MemoryStore, key: ChannelKey, ch: &mut Channel) {
    let changes = [(key, ch.take_changes().unwrap())];
    store.commit(&Batch { channels: &changes, ..Batch::default() }).unwrap();
}

/// Issue #11: a chunk's retransmissions are stored and go on counting across restarts: a process
/// killed one ack timeout after each restart (before, every restart started the count afresh and
/// such a process re-sent the chunk for ever) gives an unacknowledged chunk up after
/// `maxRetransmissions` in all — with exactly one SEND_ERROR, and nothing of the send left in the
/// store. The re-send right after a restart is not counted (the process lost the timer, not the
/// network the message).
#[test]
fn retransmissions_count_across_restarts_until_the_chunk_is_given_up() {
    let json = r#"{"sdsConfig": {"acknowledgementTimeoutMs": 1000, "maxRetransmissions": 3}, "rateLimitConfig": {"enabled": false}}"#;
    let config = ChannelConfig::default().with_json(Some(json)).unwrap();
    let mut store = MemoryStore::new();
    let key = open_channel(&mut store, "room", "alice");
    let mut ch = Channel::new("room", TOPIC, "alice", config.clone(), T0, 1);
    ch.restore(T0, ChannelSnapshot::default());
    ch.send(T0, "r0", b"nobody acknowledges this", false).unwrap();
    assert_eq!(run(&mut ch, T0).0.len(), 1);
    commit_changes(&mut store, key, &mut ch);
    let mut now = T0;
    let mut errors = Vec::new();
    let mut counts = Vec::new();
    for restart in 1..=10u64 {
        now += 10;
        let snap = store.load_snapshot(key).unwrap();
        let Some(stored) = snap.sends.iter().flat_map(|s| &s.chunks).map(|c| c.retransmissions).next() else { break };
        counts.push(stored);
        let mut ch = Channel::new("room", TOPIC, "alice", config.clone(), now, restart + 1);
        ch.restore(now, snap);
        // The restored chunk is re-sent at once (the only one: the first slot of the spread).
        ch.handle_timeout(now);
        assert_eq!(run(&mut ch, now).0.len(), 1, "re-sent after restart {restart}");
        commit_changes(&mut store, key, &mut ch);
        // One ack timeout later: a retransmission (counted, stored) or the end; then killed.
        now += 1_000;
        ch.handle_timeout(now);
        let (_, events) = run(&mut ch, now);
        commit_changes(&mut store, key, &mut ch);
        errors.extend(events.into_iter().filter(|e| matches!(e, ChannelEvent::SendError { .. })));
    }
    assert_eq!(counts, [0, 1, 2, 3], "the count of retransmissions goes on across restarts");
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(matches!(&errors[0], ChannelEvent::SendError { request_id, .. } if request_id == "r0"));
    assert!(store.load_snapshot(key).unwrap().sends.is_empty());
}

/// Issue #11: 200 chunks restored are re-sent spread over one ack timeout, not at once: a tight
/// RLN budget is not spent on re-sends at the restart (a new send goes out at once), and no
/// tenth of the timeout re-sends more than about a tenth of them.
#[test]
fn restored_chunks_are_re_sent_spread_over_the_ack_timeout() {
    let free = r#"{"sdsConfig": {"acknowledgementTimeoutMs": 1000}, "rateLimitConfig": {"enabled": false}}"#;
    let tight = r#"{"sdsConfig": {"acknowledgementTimeoutMs": 1000}, "rateLimitConfig": {"epochSizeMs": 100, "messagesPerEpoch": 25, "accounting": "allMessages"}}"#;
    let mut store = MemoryStore::new();
    let key = open_channel(&mut store, "room", "alice");
    let mut ch = Channel::new("room", TOPIC, "alice", ChannelConfig::default().with_json(Some(free)).unwrap(), T0, 1);
    ch.restore(T0, ChannelSnapshot::default());
    for i in 0..200 {
        ch.send(T0, &format!("r{i}"), b"x", false).unwrap();
    }
    assert_eq!(run(&mut ch, T0).0.len(), 200);
    commit_changes(&mut store, key, &mut ch);
    let now = T0 + 100;
    let mut ch = Channel::new("room", TOPIC, "alice", ChannelConfig::default().with_json(Some(tight)).unwrap(), now, 2);
    ch.restore(now, store.load_snapshot(key).unwrap());
    ch.send(now, "fresh", b"new", false).unwrap();
    let (out, _) = run(&mut ch, now);
    assert_eq!(out.len(), 1, "the new send goes out at once, no re-send is queued before it");
    let mut resent = Vec::new();
    for step in 0..10u64 {
        let t = now + step * 100;
        ch.handle_timeout(t);
        resent.push(run(&mut ch, t).0.len());
    }
    // The k-th of 200 is due at k × 1000 / 200 ms: one at once, then 20 per 100 ms (within the
    // 25 per epoch of the limiter); the last 19 by 995 ms.
    let mut want = vec![20; 10];
    want[0] = 1;
    assert_eq!(resent, want);
}
