//! The embedded in-process network (`messaging::memory`): delivery, isolation, faults, store,
//! shutdown and concurrency.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use bytes::Bytes;
use crossbeam_channel::{unbounded, Receiver};
use reliable_channel::messaging::memory::{
    network_stats, MemoryNetworkConfig, MemoryTransport, NetworkStats, DEFAULT_NETWORK, DEFAULT_PUBSUB_TOPIC, DEFAULT_STORE_CAPACITY,
};
use reliable_channel::messaging::{MessageHash, Transport, TransportEvent, TransportSink};
use reliable_channel::wire::WakuMessage;

/// Generous bound for waiting on an event that must arrive (not a speed claim).
const WAIT: Duration = Duration::from_secs(10);

/// A network name no other test uses (tests of this binary run concurrently in one process).
fn unique_net(tag: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    format!("test-{tag}-{}-{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed))
}

fn cfg(network: &str) -> MemoryNetworkConfig {
    MemoryNetworkConfig { network: network.to_owned(), ..MemoryNetworkConfig::default() }
}

fn endpoint(cfg: MemoryNetworkConfig) -> (MemoryTransport, Receiver<TransportEvent>) {
    let (tx, rx) = unbounded();
    let t = MemoryTransport::new(
        cfg,
        TransportSink::new(move |ev| {
            let _ = tx.send(ev);
        }),
    )
    .expect("valid config");
    (t, rx)
}

fn msg(topic: &str, payload: &str) -> WakuMessage {
    WakuMessage {
        payload: Bytes::copy_from_slice(payload.as_bytes()),
        content_topic: topic.to_owned(),
        timestamp: Some(1_700_000_000_000_000_000),
        ..WakuMessage::default()
    }
}

/// Every `Received` payload already queued (undelayed deliveries are synchronous with publish).
fn drain_received(rx: &Receiver<TransportEvent>) -> Vec<String> {
    rx.try_iter()
        .filter_map(|ev| match ev {
            TransportEvent::Received { message, .. } => Some(String::from_utf8(message.payload.to_vec()).unwrap()),
            _ => None,
        })
        .collect()
}

/// Waits (up to [`WAIT`]) for the next `Received` event, skipping others.
fn next_received(rx: &Receiver<TransportEvent>) -> (WakuMessage, Option<MessageHash>) {
    let deadline = Instant::now() + WAIT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left).expect("a Received event within the wait bound") {
            TransportEvent::Received { message, message_hash } => return (message, message_hash),
            _ => continue,
        }
    }
}

#[test]
fn defaults_match_the_documented_config() {
    let c = MemoryNetworkConfig::default();
    assert_eq!(c.network, DEFAULT_NETWORK);
    assert_eq!(c.network, "default");
    assert_eq!(c.pubsub_topic, DEFAULT_PUBSUB_TOPIC);
    assert_eq!(c.store_capacity, DEFAULT_STORE_CAPACITY);
    assert_eq!((c.loss, c.duplicate, c.reorder, c.delay_ms), (0.0, 0.0, 0.0, (0, 0)));
    assert!(c.validate().is_ok());
}

#[test]
fn validation_names_the_field() {
    let bad = |f: fn(&mut MemoryNetworkConfig)| {
        let mut c = cfg(&unique_net("bad"));
        f(&mut c);
        let e = c.validate().unwrap_err();
        assert!(MemoryTransport::new(c, TransportSink::new(|_| {})).is_err());
        e.to_string()
    };
    assert!(bad(|c| c.loss = 1.5).contains("loss"));
    assert!(bad(|c| c.loss = -0.1).contains("loss"));
    assert!(bad(|c| c.loss = f64::NAN).contains("loss"));
    assert!(bad(|c| c.duplicate = 2.0).contains("duplicate"));
    assert!(bad(|c| c.reorder = -1.0).contains("reorder"));
    assert!(bad(|c| c.delay_ms = (10, 5)).contains("delayMs"));
    assert!(bad(|c| c.network.clear()).contains("network"));
    assert!(bad(|c| c.store_capacity = 0).contains("storeCapacity"));
}

#[test]
fn joining_with_different_network_wide_settings_fails() {
    let net = unique_net("mismatch");
    let (_a, _) = endpoint(cfg(&net));
    let other_topic = MemoryNetworkConfig { pubsub_topic: "/waku/2/rs/1/0".into(), ..cfg(&net) };
    assert!(MemoryTransport::new(other_topic, TransportSink::new(|_| {})).unwrap_err().to_string().contains("pubsubTopic"));
    let other_cap = MemoryNetworkConfig { store_capacity: 7, ..cfg(&net) };
    assert!(MemoryTransport::new(other_cap, TransportSink::new(|_| {})).unwrap_err().to_string().contains("storeCapacity"));
}

#[test]
fn two_endpoints_exchange_with_waku_hashes() {
    let net = unique_net("two");
    let (mut a, rx_a) = endpoint(cfg(&net));
    let (mut b, rx_b) = endpoint(cfg(&net));
    assert_eq!(a.pubsub_topic(), DEFAULT_PUBSUB_TOPIC);
    a.subscribe("/app/1/chat/proto");
    b.subscribe("/app/1/chat/proto");

    let m = msg("/app/1/chat/proto", "hello from a");
    let expected = m.hash(DEFAULT_PUBSUB_TOPIC);
    a.publish(7, m.clone());
    let evs_a: Vec<_> = rx_a.try_iter().collect();
    assert_eq!(
        evs_a,
        vec![
            TransportEvent::Sent { dispatch_id: 7, message_hash: Some(expected) },
            TransportEvent::Received { message: m.clone(), message_hash: Some(expected) },
        ]
    );
    let (got, hash) = next_received(&rx_b);
    assert_eq!(got, m);
    assert_eq!(hash, Some(expected));

    b.publish(8, msg("/app/1/chat/proto", "hello from b"));
    assert_eq!(drain_received(&rx_a), vec!["hello from b"]);
    let evs_b: Vec<_> = rx_b.try_iter().collect();
    assert_eq!(evs_b.len(), 2);
    assert!(matches!(evs_b[0], TransportEvent::Sent { dispatch_id: 8, message_hash: Some(_) }));
    assert!(matches!(&evs_b[1], TransportEvent::Received { message, .. } if message.payload.as_ref() == b"hello from b"));
    let s = network_stats(&net).unwrap();
    assert_eq!((s.published, s.delivered), (2, 4));
}

#[test]
fn three_endpoints_all_receive_everything() {
    let net = unique_net("three");
    let mut eps: Vec<_> = (0..3).map(|_| endpoint(cfg(&net))).collect();
    for (t, _) in &mut eps {
        t.subscribe("t");
    }
    for (i, (t, _)) in eps.iter_mut().enumerate() {
        t.publish(i as u64, msg("t", &format!("m{i}")));
    }
    for (_, rx) in &eps {
        assert_eq!(drain_received(rx), vec!["m0", "m1", "m2"]);
    }
}

#[test]
fn sender_receives_its_own_echo() {
    let net = unique_net("echo");
    let (mut a, rx) = endpoint(cfg(&net));
    a.subscribe("t");
    a.publish(1, msg("t", "me"));
    let evs: Vec<_> = rx.try_iter().collect();
    assert_eq!(evs.len(), 2);
    assert!(matches!(evs[0], TransportEvent::Sent { dispatch_id: 1, message_hash: Some(_) }));
    assert!(matches!(&evs[1], TransportEvent::Received { message, .. } if message.payload.as_ref() == b"me"));
}

#[test]
fn content_topics_filter_and_subscriptions_are_counted() {
    let net = unique_net("topics");
    let (mut a, _rx_a) = endpoint(cfg(&net));
    let (mut b, rx_b) = endpoint(cfg(&net));
    b.subscribe("other");
    a.publish(1, msg("t", "not for b"));
    assert!(drain_received(&rx_b).is_empty());

    b.subscribe("t");
    b.subscribe("t");
    b.unsubscribe("t");
    a.publish(2, msg("t", "still subscribed once"));
    a.publish(3, msg("other", "other topic"));
    assert_eq!(drain_received(&rx_b), vec!["still subscribed once", "other topic"]);

    b.unsubscribe("t");
    b.unsubscribe("t"); // extra unsubscribe is harmless
    a.publish(4, msg("t", "after unsubscribe"));
    assert!(drain_received(&rx_b).is_empty());
}

#[test]
fn distinct_network_names_are_isolated() {
    let (n1, n2) = (unique_net("iso1"), unique_net("iso2"));
    let (mut a, _) = endpoint(cfg(&n1));
    let (mut b, rx_b) = endpoint(cfg(&n2));
    let (mut c, rx_c) = endpoint(cfg(&n1));
    b.subscribe("t");
    c.subscribe("t");
    a.publish(1, msg("t", "net1"));
    assert!(drain_received(&rx_b).is_empty());
    assert_eq!(drain_received(&rx_c), vec!["net1"]);
    assert_eq!(network_stats(&n2).unwrap(), NetworkStats::default());
    assert_eq!(network_stats(&n1).unwrap().published, 1);
    assert!(network_stats(&unique_net("never-created")).is_none());
}

#[test]
fn network_lives_as_long_as_its_endpoints() {
    let net = unique_net("lifetime");
    let (mut a, _) = endpoint(cfg(&net));
    a.publish(1, msg("t", "x"));
    assert_eq!(network_stats(&net).unwrap().published, 1);
    drop(a);
    assert!(network_stats(&net).is_none());
    // A new endpoint creates a fresh network under the same name (empty store, zero counters).
    let (mut b, rx_b) = endpoint(cfg(&net));
    assert_eq!(network_stats(&net).unwrap(), NetworkStats::default());
    b.retrieve("t", &[msg("t", "x").hash(DEFAULT_PUBSUB_TOPIC)]);
    assert!(drain_received(&rx_b).is_empty());
}

#[test]
fn total_loss_drops_every_copy_but_still_reports_sent() {
    let net = unique_net("loss");
    let (mut a, rx_a) = endpoint(MemoryNetworkConfig { loss: 1.0, ..cfg(&net) });
    let (mut b, rx_b) = endpoint(cfg(&net));
    a.subscribe("t");
    b.subscribe("t");
    for i in 0..20 {
        a.publish(i, msg("t", &format!("m{i}")));
    }
    let evs: Vec<_> = rx_a.try_iter().collect();
    assert_eq!(evs.len(), 20);
    assert!(evs.iter().all(|e| matches!(e, TransportEvent::Sent { .. })));
    assert!(drain_received(&rx_b).is_empty());
    let s = network_stats(&net).unwrap();
    assert_eq!((s.published, s.delivered, s.dropped), (20, 0, 40));
    // Faults apply only to what the faulty endpoint publishes.
    b.publish(99, msg("t", "from b"));
    assert_eq!(drain_received(&rx_a), vec!["from b"]);
}

#[test]
fn total_duplication_delivers_every_copy_twice() {
    let net = unique_net("dup");
    let (mut a, _) = endpoint(MemoryNetworkConfig { duplicate: 1.0, ..cfg(&net) });
    let (mut b, rx_b) = endpoint(cfg(&net));
    b.subscribe("t");
    a.publish(1, msg("t", "x"));
    a.publish(2, msg("t", "y"));
    assert_eq!(drain_received(&rx_b), vec!["x", "x", "y", "y"]);
    let s = network_stats(&net).unwrap();
    assert_eq!((s.delivered, s.duplicated), (4, 2));
}

/// Which of 64 messages reach the receiver with loss 0.5 and `seed`, on a fresh network.
fn loss_pattern(seed: u64) -> Vec<bool> {
    let net = unique_net("pattern");
    let (mut a, _) = endpoint(MemoryNetworkConfig { loss: 0.5, duplicate: 0.2, seed, ..cfg(&net) });
    let (mut b, rx_b) = endpoint(cfg(&net));
    b.subscribe("t");
    (0..64)
        .map(|i| {
            a.publish(i, msg("t", &format!("m{i}")));
            !drain_received(&rx_b).is_empty()
        })
        .collect()
}

#[test]
fn a_fixed_seed_reproduces_the_fault_pattern() {
    let first = loss_pattern(42);
    assert_eq!(first, loss_pattern(42));
    assert!(first.iter().any(|&x| x) && first.iter().any(|&x| !x), "loss 0.5 both drops and delivers: {first:?}");
    assert_ne!(first, loss_pattern(43), "another seed gives another pattern");
}

#[test]
fn delayed_copies_arrive_later() {
    let net = unique_net("delay");
    let (mut a, rx_a) = endpoint(MemoryNetworkConfig { delay_ms: (60, 80), ..cfg(&net) });
    let (mut b, rx_b) = endpoint(cfg(&net));
    b.subscribe("t");
    let start = Instant::now();
    a.publish(1, msg("t", "late"));
    // Sent is immediate (synchronous), the copy is not.
    assert!(matches!(rx_a.try_recv(), Ok(TransportEvent::Sent { dispatch_id: 1, .. })));
    let (got, _) = next_received(&rx_b);
    assert!(start.elapsed() >= Duration::from_millis(60), "delivered after at least the minimum delay");
    assert_eq!(got.payload.as_ref(), b"late");
    let s = network_stats(&net).unwrap();
    assert_eq!((s.delayed, s.delivered), (1, 1));
}

#[test]
fn reordered_copies_all_arrive() {
    let net = unique_net("reorder");
    let (mut a, _) = endpoint(MemoryNetworkConfig { reorder: 1.0, seed: 5, ..cfg(&net) });
    let (mut b, rx_b) = endpoint(cfg(&net));
    b.subscribe("t");
    for i in 0..30 {
        a.publish(i, msg("t", &format!("m{i}")));
    }
    let mut got: Vec<String> = (0..30).map(|_| String::from_utf8(next_received(&rx_b).0.payload.to_vec()).unwrap()).collect();
    got.sort();
    let mut want: Vec<String> = (0..30).map(|i| format!("m{i}")).collect();
    want.sort();
    assert_eq!(got, want);
    assert_eq!(network_stats(&net).unwrap().delayed, 30);
}

#[test]
fn retrieve_answers_from_the_bounded_store() {
    let net = unique_net("store");
    let (mut a, _) = endpoint(MemoryNetworkConfig { store_capacity: 3, ..cfg(&net) });
    let (mut b, rx_b) = endpoint(MemoryNetworkConfig { store_capacity: 3, ..cfg(&net) });
    let (mut c, rx_c) = endpoint(MemoryNetworkConfig { store_capacity: 3, ..cfg(&net) });
    c.subscribe("t");
    let msgs: Vec<_> = (0..5).map(|i| msg("t", &format!("m{i}"))).collect();
    let hashes: Vec<_> = msgs.iter().map(|m| m.hash(DEFAULT_PUBSUB_TOPIC)).collect();
    for (i, m) in msgs.iter().enumerate() {
        a.publish(i as u64, m.clone());
    }
    assert_eq!(drain_received(&rx_c).len(), 5);

    // Only the 3 most recent survive; the answer goes to the asking endpoint only, even unsubscribed.
    b.retrieve("t", &hashes);
    let got: Vec<_> = rx_b
        .try_iter()
        .map(|ev| match ev {
            TransportEvent::Received { message, message_hash } => (message, message_hash.unwrap()),
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    assert_eq!(got.len(), 3);
    for (k, (m, h)) in got.iter().enumerate() {
        assert_eq!(m, &msgs[k + 2]);
        assert_eq!(h, &hashes[k + 2]);
    }
    assert!(drain_received(&rx_c).is_empty());

    // Wrong content topic or unknown hash: nothing.
    b.retrieve("other", &hashes);
    b.retrieve("t", &[[0u8; 32]]);
    assert!(rx_b.try_iter().next().is_none());
}

#[test]
fn retrieve_ignores_faults() {
    let net = unique_net("store-faults");
    let (mut a, _) = endpoint(MemoryNetworkConfig { loss: 1.0, ..cfg(&net) });
    let (mut b, rx_b) = endpoint(cfg(&net));
    b.subscribe("t");
    let m = msg("t", "lost on relay");
    a.publish(1, m.clone());
    assert!(drain_received(&rx_b).is_empty());
    b.retrieve("t", &[m.hash(DEFAULT_PUBSUB_TOPIC)]);
    assert_eq!(drain_received(&rx_b), vec!["lost on relay"]);
}

#[test]
fn oversized_messages_fail() {
    let net = unique_net("big");
    let (mut a, rx_a) = endpoint(cfg(&net));
    a.subscribe("t");
    let big = WakuMessage { payload: Bytes::from(vec![0u8; 200 * 1024]), ..msg("t", "") };
    a.publish(5, big);
    let evs: Vec<_> = rx_a.try_iter().collect();
    assert_eq!(evs.len(), 1);
    assert!(matches!(&evs[0], TransportEvent::Failed { dispatch_id: 5, .. }));
}

#[test]
fn shutdown_stops_deliveries_including_scheduled_ones() {
    let net = unique_net("shutdown");
    let (mut a, rx_a) = endpoint(MemoryNetworkConfig { delay_ms: (100, 100), ..cfg(&net) });
    let (mut b, rx_b) = endpoint(cfg(&net));
    a.subscribe("t");
    b.subscribe("t");
    a.publish(1, msg("t", "scheduled")); // copies to a and b are both scheduled 100 ms out
    b.shutdown();
    b.shutdown(); // idempotent
                  // Once a's own (equally delayed) copy arrived, b's copy was due too and must have been discarded.
    assert_eq!(next_received(&rx_a).0.payload.as_ref(), b"scheduled");
    std::thread::sleep(Duration::from_millis(50));
    assert!(rx_b.try_iter().next().is_none());

    // Undelayed copies and b's own operations are silent too.
    let (mut c, _) = endpoint(cfg(&net));
    c.publish(2, msg("t", "sync"));
    b.publish(3, msg("t", "from a dead endpoint"));
    b.retrieve("t", &[msg("t", "sync").hash(DEFAULT_PUBSUB_TOPIC)]);
    assert!(rx_b.try_iter().next().is_none());
    drop(b);

    // Dropping also detaches.
    drop(a);
    c.subscribe("t");
    c.publish(4, msg("t", "x"));
    assert!(rx_a.try_iter().all(|ev| !matches!(ev, TransportEvent::Received { ref message, .. } if message.payload.as_ref() == b"x")));
}

#[test]
fn sink_never_runs_after_shutdown_returns_under_concurrent_traffic() {
    use std::sync::atomic::AtomicBool;
    let net = unique_net("shutdown-race");
    let calls = Arc::new(AtomicU64::new(0));
    let after = Arc::new(AtomicBool::new(false));
    let violated = Arc::new(AtomicBool::new(false));
    let (calls2, after2, violated2) = (calls.clone(), after.clone(), violated.clone());
    let mut victim = MemoryTransport::new(
        cfg(&net),
        TransportSink::new(move |_| {
            calls2.fetch_add(1, Ordering::SeqCst);
            if after2.load(Ordering::SeqCst) {
                violated2.store(true, Ordering::SeqCst);
            }
        }),
    )
    .unwrap();
    victim.subscribe("t");
    let stop = Arc::new(AtomicBool::new(false));
    // Two publishers: one delivering synchronously, one through the delivery thread.
    let publishers: Vec<_> = [(0, 0), (0, 2)]
        .into_iter()
        .map(|delay_ms| {
            let (stop, net) = (stop.clone(), net.clone());
            std::thread::spawn(move || {
                let (mut p, _) = endpoint(MemoryNetworkConfig { delay_ms, ..cfg(&net) });
                let mut i = 0;
                while !stop.load(Ordering::SeqCst) {
                    p.publish(i, msg("t", &format!("{i}")));
                    i += 1;
                    if i % 64 == 0 {
                        std::thread::yield_now();
                    }
                }
            })
        })
        .collect();
    // Shut down while traffic keeps coming.
    let deadline = Instant::now() + WAIT;
    while calls.load(Ordering::SeqCst) < 100 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(1));
    }
    assert!(calls.load(Ordering::SeqCst) >= 100, "traffic reached the victim");
    victim.shutdown();
    after.store(true, Ordering::SeqCst);
    std::thread::sleep(Duration::from_millis(30));
    stop.store(true, Ordering::SeqCst);
    for p in publishers {
        p.join().unwrap();
    }
    assert!(!violated.load(Ordering::SeqCst), "sink called after shutdown returned");
}

#[test]
fn four_threads_publishing_at_once_deliver_everything() {
    const THREADS: usize = 4;
    const PER_THREAD: usize = 250;
    let net = unique_net("concurrent");
    let barrier = Arc::new(Barrier::new(THREADS));
    let mut eps: Vec<_> = (0..THREADS).map(|_| endpoint(cfg(&net))).collect();
    for (t, _) in &mut eps {
        t.subscribe("t");
    }
    let rxs: Vec<_> = eps.iter().map(|(_, rx)| rx.clone()).collect();
    let handles: Vec<_> = eps
        .into_iter()
        .enumerate()
        .map(|(k, (mut t, _))| {
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                barrier.wait();
                for i in 0..PER_THREAD {
                    t.publish(i as u64, msg("t", &format!("{k}-{i}")));
                }
                t // keep the endpoint subscribed until every thread is done
            })
        })
        .collect();
    let endpoints: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    for rx in &rxs {
        let mut got = drain_received(rx);
        assert_eq!(got.len(), THREADS * PER_THREAD);
        got.sort();
        got.dedup();
        assert_eq!(got.len(), THREADS * PER_THREAD, "no duplicates without the duplicate fault");
    }
    let s = network_stats(&net).unwrap();
    assert_eq!(s.published, (THREADS * PER_THREAD) as u64);
    assert_eq!(s.delivered, (THREADS * THREADS * PER_THREAD) as u64);
    drop(endpoints);
}
