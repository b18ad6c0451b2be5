//! The relay transport through the manager and its JSON configuration (what C, Go and Nim use):
//! real relay nodes on loopback, real threads, bounded waits (nothing asserts on elapsed time).
//!
//! * `managers_talk_over_relay_from_the_config` — three managers in a line, configured with
//!   `"transport": {"kind": "relay", ...}`: text and a 1 MiB message from each end reach everyone
//!   once, every send is DELIVERED; listen addresses and relay stats.
//! * `connect_at_run_time` — `relay_connect` joins two managers that were configured with no peer;
//!   an unreachable peer is retried, not an error.
//! * `node_key_survives_a_restart_with_storage` — with `storage.path`, the peer id is kept.
//! * `configuration_errors_name_the_key_or_address` — bad multiaddrs, keys, busy ports, calls on
//!   other transports.
#![cfg(feature = "relay")]

use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{unbounded, Receiver};
use reliable_channel::channel::ChannelEvent;
use reliable_channel::{Error, Manager};

const WAIT: Duration = Duration::from_secs(60);
const TOPIC: &str = "/relay-manager/1/room/proto";
/// Quick retransmission and syncs: a message published before the mesh formed is resent soon.
const CHANNEL: &str = r#"{"sdsConfig": {"acknowledgementTimeoutMs": 1000, "syncIntervalMs": 1000, "maxRetransmissions": 30}}"#;

fn relay_manager(transport_extra: &str, top_extra: &str) -> (Manager, Receiver<ChannelEvent>) {
    let json = format!(r#"{{"transport": {{"kind": "relay", "listen": ["/ip4/127.0.0.1/tcp/0"]{transport_extra}}}{top_extra}}}"#);
    let m = Manager::from_json(Some(&json)).unwrap_or_else(|e| panic!("{json}: {e}"));
    let (tx, rx) = unbounded();
    m.set_event_handler(Some(Arc::new(move |e: &reliable_channel::Event<'_>| {
        let _ = tx.send(e.event.clone());
    })))
    .unwrap();
    (m, rx)
}

fn addr(m: &Manager) -> String {
    m.relay_listen_addresses().unwrap().into_iter().next().expect("a listen address")
}

fn peers(list: &[&Manager]) -> String {
    let a: Vec<String> = list.iter().map(|m| format!("\"{}\"", addr(m))).collect();
    format!(r#", "peers": [{}]"#, a.join(","))
}

fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let end = Instant::now() + WAIT;
    while !cond() {
        assert!(Instant::now() < end, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn topic_peers(m: &Manager) -> u64 {
    m.relay_stats_json().unwrap()["topicPeers"].as_u64().unwrap()
}

/// Collects events until `received` messages arrived and `delivered` of ours were delivered.
fn collect(rx: &Receiver<ChannelEvent>, received: usize, delivered: usize) -> (Vec<(String, Vec<u8>)>, Vec<String>) {
    let (mut r, mut d) = (Vec::new(), Vec::new());
    let end = Instant::now() + WAIT;
    while r.len() < received || d.len() < delivered {
        let left = end.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left).unwrap_or_else(|_| panic!("timed out: {} of {received} received, {} of {delivered} delivered", r.len(), d.len()))
        {
            ChannelEvent::Received { sender_id, payload, .. } => r.push((sender_id, payload)),
            ChannelEvent::Delivered { request_id } => d.push(request_id),
            ChannelEvent::SendError { error, .. } => panic!("send error: {error}"),
            ChannelEvent::Lost { error, .. } => panic!("message lost: {error}"),
            ChannelEvent::Sent { .. } => {}
        }
    }
    (r, d)
}

#[test]
fn managers_talk_over_relay_from_the_config() {
    let (a, arx) = relay_manager("", "");
    let (b, brx) = relay_manager(&peers(&[&a]), "");
    let (c, crx) = relay_manager(&peers(&[&b]), "");
    let addrs = a.relay_listen_addresses().unwrap();
    assert!(addrs.iter().all(|s| s.starts_with("/ip4/127.0.0.1/tcp/") && !s.contains("/tcp/0/") && s.contains("/p2p/")), "{addrs:?}");
    for (m, id) in [(&a, "alice"), (&b, "bob"), (&c, "carol")] {
        m.open_channel("room", TOPIC, id, Some(CHANNEL)).unwrap();
    }
    wait_until("the line a - b - c", || topic_peers(&a) == 1 && topic_peers(&b) == 2 && topic_peers(&c) == 1);

    let big: Vec<u8> = (0..1_048_576u32).map(|i| (i * 13 % 251) as u8).collect();
    let mut ids = Vec::new();
    for (m, who) in [(&a, "alice"), (&c, "carol")] {
        ids.push(m.send("room", format!("hello from {who}").as_bytes(), false).unwrap());
        ids.push(m.send("room", &big, false).unwrap());
    }
    let (ra, da) = collect(&arx, 2, 2);
    let (rb, _) = collect(&brx, 4, 0);
    let (rc, dc) = collect(&crx, 2, 2);
    assert_eq!(ra, vec![("carol".to_owned(), b"hello from carol".to_vec()), ("carol".to_owned(), big.clone())]);
    assert_eq!(rc, vec![("alice".to_owned(), b"hello from alice".to_vec()), ("alice".to_owned(), big.clone())]);
    for who in ["alice", "carol"] {
        let theirs: Vec<&Vec<u8>> = rb.iter().filter(|(s, _)| s == who).map(|(_, p)| p).collect();
        assert_eq!(theirs, vec![&format!("hello from {who}").into_bytes(), &big], "bob got {who}'s messages once, in order");
    }
    assert_eq!(da.iter().chain(&dc).collect::<std::collections::HashSet<_>>().len(), 4);
    // Exactly once: nothing more arrives.
    std::thread::sleep(Duration::from_millis(500));
    assert!(brx.try_iter().all(|e| !matches!(e, ChannelEvent::Received { .. })));
    let s = b.relay_stats_json().unwrap();
    assert_eq!(s["connectedPeers"], 2);
    assert!(s["received"].as_u64().unwrap() >= 22, "{s}");
}

#[test]
fn connect_at_run_time() {
    let (a, arx) = relay_manager("", "");
    let (b, brx) = relay_manager("", "");
    a.open_channel("room", TOPIC, "alice", Some(CHANNEL)).unwrap();
    b.open_channel("room", TOPIC, "bob", Some(CHANNEL)).unwrap();
    // A peer nobody listens for: retried in the background, never an error.
    let dead = format!("/ip4/127.0.0.1/tcp/1/p2p/{}", addr(&a).rsplit('/').next().unwrap());
    b.relay_connect(&dead).unwrap();
    b.relay_connect(&addr(&a)).unwrap();
    wait_until("b connected to a", || topic_peers(&a) == 1 && topic_peers(&b) == 1);
    let id = b.send("room", b"dialled at run time", false).unwrap();
    let (ra, _) = collect(&arx, 1, 0);
    assert_eq!(ra, vec![("bob".to_owned(), b"dialled at run time".to_vec())]);
    let (_, db) = collect(&brx, 0, 1);
    assert_eq!(db, vec![id]);
    assert!(matches!(b.relay_connect("not a multiaddr"), Err(Error::InvalidArgument(m)) if m.contains("multiaddr")));
    assert!(matches!(b.relay_connect("/ip4/127.0.0.1/tcp/5"), Err(Error::InvalidArgument(m)) if m.contains("/p2p/")));
}

#[test]
fn node_key_survives_a_restart_with_storage() {
    let dir = std::env::temp_dir().join(format!("rc-relay-key-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let db = dir.join("channels.db");
    let storage = format!(r#", "storage": {{"path": "{}"}}"#, db.display());
    let peer_id = |m: &Manager| addr(m).rsplit('/').next().unwrap().to_owned();
    let (mut m, _rx) = relay_manager("", &storage);
    let first = peer_id(&m);
    m.shutdown().unwrap();
    drop(m);
    let key_file = dir.join("channels.db.relay-key");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&key_file).unwrap().permissions().mode() & 0o777, 0o600, "the node key is private");
    }
    let (m, _rx) = relay_manager("", &storage);
    assert_eq!(peer_id(&m), first, "same peer id after a restart");
    drop(m);
    // A configured nodeKey wins over the stored one.
    let key = "11".repeat(32);
    let (m, _rx) = relay_manager(&format!(r#", "nodeKey": "{key}""#), &storage);
    assert_ne!(peer_id(&m), first);
    drop(m);
    // A damaged key file is a storage error naming the file.
    std::fs::write(&key_file, "not a key").unwrap();
    let json = format!(r#"{{"transport": {{"kind": "relay"}}{storage}}}"#);
    match Manager::from_json(Some(&json)) {
        Err(Error::Storage(m)) => assert!(m.contains("relay-key"), "{m}"),
        other => panic!("{:?}", other.map(|_| ())),
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn configuration_errors_name_the_key_or_address() {
    let err = |json: &str| match Manager::from_json(Some(json)) {
        Err(e) => e,
        Ok(_) => panic!("{json} was accepted"),
    };
    let e = err(r#"{"transport": {"kind": "relay", "listen": ["/ip4/127.0.0.1/tcp/0", "nonsense"]}}"#);
    assert!(matches!(&e, Error::Config(m) if m.contains("transport.listen[1]")), "{e:?}");
    let e = err(r#"{"transport": {"kind": "relay", "peers": ["/ip4/127.0.0.1/tcp/1"]}}"#);
    assert!(matches!(&e, Error::Config(m) if m.contains("transport.peers[0]")), "{e:?}");
    let e = err(r#"{"transport": {"kind": "relay", "nodeKey": "abcd"}}"#);
    assert!(matches!(&e, Error::Config(m) if m.contains("transport.nodeKey")), "{e:?}");
    let e = err(r#"{"transport": {"kind": "relay", "bogus": 1}}"#);
    assert!(matches!(&e, Error::Config(m) if m.contains("transport.bogus")), "{e:?}");
    let e = err(r#"{"transport": {"kind": "relay", "loss": 2}}"#);
    assert!(matches!(&e, Error::Config(m) if m.contains("transport.loss")), "{e:?}");
    // A busy port: RC_ERR_TRANSPORT naming the address.
    let (a, _rx) = relay_manager("", "");
    let taken = addr(&a).split("/p2p/").next().unwrap().to_owned();
    let e = err(&format!(r#"{{"transport": {{"kind": "relay", "listen": ["{taken}"]}}}}"#));
    assert!(matches!(&e, Error::Transport(m) if m.contains(&taken)), "{e:?}");
    // Relay calls on another transport.
    let m = Manager::from_json(None).unwrap();
    assert!(matches!(m.relay_listen_addresses(), Err(Error::Transport(_))));
    assert!(matches!(m.relay_connect(&addr(&a)), Err(Error::Transport(_))));
    assert!(m.relay_stats_json().is_none());
}
