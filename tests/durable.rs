//! Durable channels through the manager (issue #11): `storage` and `historyBackend`
//! configuration, event sequence numbers, the outbox (events not delivered are delivered again on
//! reopen, with their `seq`), close/reopen checks, purge, the database lock between managers, the
//! failure behaviour (a full database stops durable channels, never a silent fallback), and the
//! channel's own state across a restart (a pending send completes, nothing is received twice).
//!
//! Real threads and real time on the embedded network: waits are bounded by generous timeouts,
//! nothing is asserted about speed.

use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use crossbeam_channel::{unbounded, Receiver, Sender};
use reliable_channel::channel::ChannelEvent;
use reliable_channel::{Error, Event, Manager};

mod storage_support;
use storage_support::TempDir;

const WAIT: Duration = Duration::from_secs(30);
const TOPIC: &str = "/app/1/room/proto";
const SQLITE: &str = r#"{"sdsConfig": {"historyBackend": "sqlite"}}"#;

#[derive(Debug, Clone, PartialEq)]
struct Ev {
    seq: u64,
    channel: String,
    event: ChannelEvent,
}

fn config(network: &str, storage: Option<&str>) -> String {
    let storage = storage.map_or(String::new(), |s| format!(r#", "storage": {s}"#));
    format!(r#"{{"transport": {{"kind": "memory", "network": "{network}"}}{storage}}}"#)
}

fn recorder(m: &Manager) -> Receiver<Ev> {
    let (tx, rx) = unbounded();
    m.set_event_handler(Some(Arc::new(move |e: &Event<'_>| {
        let _ = tx.send(Ev { seq: e.seq, channel: e.channel_id.into(), event: e.event.clone() });
    })))
    .unwrap();
    rx
}

fn wait_for(rx: &Receiver<Ev>, mut pred: impl FnMut(&Ev) -> bool) -> Ev {
    loop {
        let e = rx.recv_timeout(WAIT).expect("event within the timeout");
        if pred(&e) {
            return e;
        }
    }
}

fn payload(e: &Ev) -> Option<Vec<u8>> {
    match &e.event {
        ChannelEvent::Received { payload, .. } => Some(payload.clone()),
        _ => None,
    }
}

/// Polls `f` until true (bounded): for state only visible through the API, never a sleep as a
/// correctness assumption.
fn eventually(mut f: impl FnMut() -> bool) {
    let t0 = Instant::now();
    while !f() {
        assert!(t0.elapsed() < WAIT, "condition not reached within the timeout");
        std::thread::sleep(Duration::from_millis(2));
    }
}

#[test]
fn configuration_names_the_key() {
    let dir = TempDir::new("durable", "config");
    let e = Manager::from_json(Some(&config("d-cfg", None))).unwrap().open_channel("c", TOPIC, "me", Some(SQLITE)).unwrap_err();
    assert!(matches!(&e, Error::Config(m) if m.contains("channel.sdsConfig.historyBackend") && m.contains("storage.path")), "{e:?}");
    let defaults = r#"{"channelDefaults": {"sdsConfig": {"historyBackend": "sqlite"}}}"#;
    let e = Manager::from_json(Some(defaults)).err().unwrap();
    assert!(matches!(&e, Error::Config(m) if m.contains("channelDefaults.sdsConfig.historyBackend")), "{e:?}");
    for (storage, key) in [
        (r#"{"durability": "process"}"#, "storage.path"),
        (r#"{"path": ""}"#, "storage.path"),
        (r#"{"path": "x.db", "durability": "disk"}"#, "storage.durability"),
        (r#"{"path": "x.db", "maxSizeBytes": 10}"#, "storage.maxSizeBytes"),
        (r#"{"path": "x.db", "bogus": 1}"#, "storage.bogus"),
        (r#""x.db""#, "storage"),
    ] {
        let e = Manager::from_json(Some(&config("d-cfg", Some(storage)))).err().unwrap();
        assert!(matches!(&e, Error::Config(m) if m.contains(key)), "{storage}: {e:?}");
    }
    // With storage, the channel defaults may ask for sqlite; "memory" stays the default.
    let s = format!(r#"{{"path": "{}", "durability": "power"}}"#, dir.db("c.db"));
    let m = Manager::from_json(Some(&config("d-cfg", Some(&s)))).unwrap();
    m.open_channel("mem", TOPIC, "me", None).unwrap();
    m.open_channel("dur", "/app/1/other/proto", "me", Some(SQLITE)).unwrap();
    // A directory that does not exist: the manager is not created.
    let bad = r#"{"path": "/nonexistent-dir/rc/x.db"}"#;
    let e = Manager::from_json(Some(&config("d-cfg", Some(bad)))).err().unwrap();
    assert!(matches!(&e, Error::Storage(m) if m.contains("/nonexistent-dir/rc/x.db")), "{e:?}");
}

#[test]
fn seq_counts_from_one_and_grows_in_delivery_order() {
    let a = Manager::from_json(Some(&config("d-seq", None))).unwrap();
    let b = Manager::from_json(Some(&config("d-seq", None))).unwrap();
    let (arx, brx) = (recorder(&a), recorder(&b));
    a.open_channel("room", TOPIC, "alice", None).unwrap();
    b.open_channel("room", TOPIC, "bob", None).unwrap();
    // A memory channel's open returns before its runtime subscribed it: a stats call (a round
    // trip through bob's runtime) makes sure bob hears the first send. Without it, a send
    // published before the subscription was missed and came only with alice's retransmission
    // after the acknowledgement timeout (the test took 5-30 s in about one run of six).
    b.channel_stats("room").unwrap();
    for i in 0..5u8 {
        a.send("room", &[i; 10], false).unwrap();
    }
    let mut seqs = Vec::new();
    while seqs.len() < 5 {
        let e = wait_for(&brx, |e| payload(e).is_some());
        seqs.push(e.seq);
    }
    assert_eq!(seqs[0], 1, "a memory-only manager counts from 1");
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
    let first = wait_for(&arx, |_| true);
    assert_eq!(first.seq, 1);
}

/// Two managers on one network, bob's durable: the shared setup of the tests below.
struct Pair {
    _dir: TempDir,
    db: String,
    network: String,
    a: Manager,
}

impl Pair {
    fn new(name: &str) -> Pair {
        let dir = TempDir::new("durable", name);
        let db = dir.db("bob.db");
        let network = format!("d-{name}");
        let a = Manager::from_json(Some(&config(&network, None))).unwrap();
        // No retransmission during a test: the events each test expects are exact.
        a.open_channel("room", TOPIC, "alice", Some(r#"{"sdsConfig": {"acknowledgementTimeoutMs": 600000}}"#)).unwrap();
        Pair { _dir: dir, db, network, a }
    }

    fn bob(&self) -> Manager {
        let storage = format!(r#"{{"path": "{}"}}"#, self.db);
        Manager::from_json(Some(&config(&self.network, Some(&storage)))).unwrap()
    }
}

#[test]
fn delivered_events_are_not_delivered_again_after_a_restart_and_seq_continues() {
    let p = Pair::new("restart");
    let max_seq = {
        let bob = p.bob();
        let rx = recorder(&bob);
        bob.open_channel("room", TOPIC, "bob", Some(SQLITE)).unwrap();
        for i in 0..3u8 {
            p.a.send("room", &[i; 100], false).unwrap();
        }
        let got: Vec<Ev> = (0..3).map(|_| wait_for(&rx, |e| payload(e).is_some())).collect();
        assert!(got.windows(2).all(|w| w[0].seq < w[1].seq));
        got.last().unwrap().seq
    };
    // The manager was shut down: its deliveries were recorded, so the restarted one delivers
    // nothing from its outbox again: every event it hands out has a new seq.
    let bob = p.bob();
    let rx = recorder(&bob);
    bob.open_channel("room", TOPIC, "bob", Some(SQLITE)).unwrap();
    p.a.send("room", b"after the restart", false).unwrap();
    // The restarted channel's log holds alice's earlier messages: the first message it
    // receives is the new one.
    let e = wait_for(&rx, |e| {
        assert!(e.seq > max_seq, "nothing re-delivered from the outbox, seq continues: {} after {max_seq}", e.seq);
        payload(e).is_some()
    });
    assert_eq!(payload(&e).unwrap(), b"after the restart");
}

/// Alice's durable channel accepts a send nobody hears (bob is not subscribed yet), and her
/// manager shuts down before any acknowledgement. Restarted, it sends the stored chunks again:
/// bob, now listening, receives the message once, and alice's new manager reports exactly one
/// DELIVERED for the request id of before the restart.
#[test]
fn a_pending_send_completes_after_a_restart() {
    let dir = TempDir::new("durable", "pending");
    let network = "d-pending";
    let storage = format!(r#"{{"path": "{}"}}"#, dir.db("alice.db"));
    let alice_cfg = r#"{"sdsConfig": {"historyBackend": "sqlite", "acknowledgementTimeoutMs": 300}}"#;
    let payload_sent = vec![7u8; 250_000];
    let request_id = {
        let alice = Manager::from_json(Some(&config(network, Some(&storage)))).unwrap();
        alice.open_channel("room", TOPIC, "alice", Some(alice_cfg)).unwrap();
        alice.send("room", &payload_sent, false).unwrap()
    };
    let bob = Manager::from_json(Some(&config(network, None))).unwrap();
    let bob_rx = recorder(&bob);
    bob.open_channel("room", TOPIC, "bob", Some(r#"{"sdsConfig": {"acknowledgementTimeoutMs": 300}}"#)).unwrap();
    let alice = Manager::from_json(Some(&config(network, Some(&storage)))).unwrap();
    let alice_rx = recorder(&alice);
    alice.open_channel("room", TOPIC, "alice", Some(alice_cfg)).unwrap();
    let got = wait_for(&bob_rx, |e| payload(e).is_some());
    assert_eq!(payload(&got).unwrap(), payload_sent);
    let done = wait_for(&alice_rx, |e| matches!(&e.event, ChannelEvent::Delivered { .. } | ChannelEvent::SendError { .. }));
    assert_eq!(done.event, ChannelEvent::Delivered { request_id: request_id.to_string() });
    // Nothing more: no second RECEIVED at bob, no second final event at alice.
    alice.send("room", b"marker", false).unwrap();
    let next = wait_for(&bob_rx, |e| payload(e).is_some());
    assert_eq!(payload(&next).unwrap(), b"marker");
    let next = wait_for(&alice_rx, |e| matches!(&e.event, ChannelEvent::Delivered { .. } | ChannelEvent::SendError { .. }));
    assert_ne!(next.event, done.event);
}

/// Bob's handler closes the channel from inside the first RECEIVED once alice's five messages
/// reached bob's runtime: the other four (stored, not delivered) are delivered when the channel
/// is reopened — after a restart of the manager too — each exactly once, in order.
fn close_inside_the_first_event(p: &Pair, bob: &Arc<Manager>) -> (Receiver<Ev>, Sender<()>) {
    let (tx, rx) = unbounded();
    let (go_tx, go_rx) = unbounded::<()>();
    let weak: Weak<Manager> = Arc::downgrade(bob);
    let closed = Mutex::new(false);
    bob.set_event_handler(Some(Arc::new(move |e: &Event<'_>| {
        let _ = tx.send(Ev { seq: e.seq, channel: e.channel_id.into(), event: e.event.clone() });
        let mut closed = closed.lock().unwrap();
        if !*closed && matches!(e.event, ChannelEvent::Received { .. }) {
            *closed = true;
            go_rx.recv_timeout(WAIT).expect("go");
            weak.upgrade().unwrap().close_channel("room").unwrap();
        }
    })))
    .unwrap();
    bob.open_channel("room", TOPIC, "bob", Some(SQLITE)).unwrap();
    for i in 0..5u8 {
        p.a.send("room", &[i; 64], false).unwrap();
    }
    (rx, go_tx)
}

fn five_received_once_in_order(first: &[Ev], then: &[Ev]) {
    let all: Vec<&Ev> = first.iter().chain(then).filter(|e| payload(e).is_some()).collect();
    let payloads: Vec<u8> = all.iter().map(|e| payload(e).unwrap()[0]).collect();
    assert_eq!(payloads, vec![0, 1, 2, 3, 4], "each message exactly once, in order");
    assert!(all.windows(2).all(|w| w[0].seq < w[1].seq), "seq grows in delivery order: {:?}", all.iter().map(|e| e.seq).collect::<Vec<_>>());
}

#[test]
fn events_dropped_by_a_close_are_delivered_again_on_reopen() {
    let p = Pair::new("reopen");
    let bob = Arc::new(p.bob());
    let (rx, go) = close_inside_the_first_event(&p, &bob);
    let first = wait_for(&rx, |e| payload(e).is_some());
    eventually(|| bob.channel_stats("room").is_ok_and(|s| s.messages_received == 5));
    go.send(()).unwrap();
    eventually(|| bob.channels().is_empty());
    let rx2 = recorder(&bob);
    bob.open_channel("room", TOPIC, "bob", Some(SQLITE)).unwrap();
    let again: Vec<Ev> = (0..4).map(|_| wait_for(&rx2, |e| payload(e).is_some())).collect();
    five_received_once_in_order(&[first], &again);
    assert!(rx2.recv_timeout(Duration::from_millis(200)).map_or(true, |e| payload(&e).is_none()), "no fifth re-delivery");
}

#[test]
fn undelivered_events_survive_a_restart_and_a_purge_deletes_them() {
    let p = Pair::new("purge");
    let first = {
        let bob = Arc::new(p.bob());
        let (rx, go) = close_inside_the_first_event(&p, &bob);
        let first = wait_for(&rx, |e| payload(e).is_some());
        eventually(|| bob.channel_stats("room").is_ok_and(|s| s.messages_received == 5));
        go.send(()).unwrap();
        eventually(|| bob.channels().is_empty());
        first
    };
    let bob = p.bob();
    // Another sender id or content topic is refused: the stored state is somebody else's.
    let e = bob.open_channel("room", TOPIC, "mallory", Some(SQLITE)).unwrap_err();
    assert!(matches!(&e, Error::Config(m) if m.contains("sender id") && m.contains("\"bob\"") && m.contains("\"mallory\"")), "{e:?}");
    let e = bob.open_channel("room", "/app/1/elsewhere/proto", "bob", Some(SQLITE)).unwrap_err();
    assert!(matches!(&e, Error::Config(m) if m.contains("content topic")), "{e:?}");
    assert!(bob.channels().is_empty(), "a refused open leaves nothing open");
    let rx = recorder(&bob);
    bob.open_channel("room", TOPIC, "bob", Some(SQLITE)).unwrap();
    let again: Vec<Ev> = (0..4).map(|_| wait_for(&rx, |e| payload(e).is_some())).collect();
    five_received_once_in_order(&[first], &again);

    // Purge: refused while open, then the stored state is gone.
    assert_eq!(bob.purge_channel("room"), Err(Error::ChannelExists("room".into())));
    bob.close_channel("room").unwrap();
    bob.purge_channel("room").unwrap();
    bob.purge_channel("room").unwrap();
    bob.purge_channel("never-stored").unwrap();
    bob.open_channel("room", TOPIC, "mallory", Some(SQLITE)).expect("after a purge any sender id may open it");
}

#[test]
fn a_second_manager_on_one_database_is_refused() {
    let dir = TempDir::new("durable", "twice");
    let storage = format!(r#"{{"path": "{}"}}"#, dir.db("one.db"));
    let first = Manager::from_json(Some(&config("d-twice", Some(&storage)))).unwrap();
    let e = Manager::from_json(Some(&config("d-twice", Some(&storage)))).err().unwrap();
    assert!(matches!(&e, Error::Storage(m) if m.contains("in use by another manager")), "{e:?}");
    drop(first);
    Manager::from_json(Some(&config("d-twice", Some(&storage)))).expect("free once the first is gone");
}

/// A full database (`maxSizeBytes`): the commit holding a 1 MiB RECEIVED fails. The event is not
/// delivered, durable sends are refused with SQLite's message, durable opens too; the manager's
/// memory channels go on working.
#[test]
fn a_full_database_stops_durable_channels_without_a_fallback() {
    let dir = TempDir::new("durable", "full");
    let network = "d-full";
    let a = Manager::from_json(Some(&config(network, None))).unwrap();
    let arx = recorder(&a);
    a.open_channel("room", TOPIC, "alice", None).unwrap();
    a.open_channel("plain", "/app/1/plain/proto", "alice", None).unwrap();
    let storage = format!(r#"{{"path": "{}", "maxSizeBytes": 1048576}}"#, dir.db("small.db"));
    let bob = Manager::from_json(Some(&config(network, Some(&storage)))).unwrap();
    let brx = recorder(&bob);
    bob.open_channel("room", TOPIC, "bob", Some(SQLITE)).unwrap();
    bob.open_channel("plain", "/app/1/plain/proto", "bob", None).unwrap();
    bob.send("room", b"small, committed", false).unwrap();
    wait_for(&arx, |e| payload(e).is_some_and(|p| p == b"small, committed"));

    a.send("room", &vec![7u8; 1_048_576], false).unwrap();
    let err = {
        let t0 = Instant::now();
        loop {
            match bob.send("room", b"x", false) {
                Err(e) => break e,
                Ok(_) => assert!(t0.elapsed() < WAIT, "the commit of the 1 MiB message never failed"),
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    };
    assert!(matches!(&err, Error::Storage(m) if m.contains("full")), "SQLite's message: {err:?}");
    let e = bob.open_channel("room2", "/app/1/room2/proto", "bob", Some(SQLITE)).unwrap_err();
    assert!(matches!(e, Error::Storage(_)), "{e:?}");
    // The memory channel is unaffected.
    a.send("plain", b"still here", false).unwrap();
    let got = wait_for(&brx, |e| e.channel == "plain" && payload(e).is_some());
    assert_eq!(payload(&got).unwrap(), b"still here");
    // The 1 MiB message was never handed over: it is not on disk.
    assert!(brx.try_iter().all(|e| payload(&e).is_none_or(|p| p.len() < 1_000_000)));
}
