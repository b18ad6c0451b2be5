//! The native Waku Relay transport among our own nodes on loopback (feature `relay`).
//!
//! * `star_reaches_every_subscriber` — four leaves around a hub: every message reaches every
//!   other node once, with the deterministic Waku hash; senders get `Sent` with the same hash and
//!   no echo; stats show peers and the mesh.
//! * `line_relays_over_several_hops` — a line of four: messages cross three hops through gossip,
//!   including through a node that relays without subscribing to the content topic.
//! * `faults_lose_or_duplicate_what_a_node_publishes` — `loss` and `duplicate`.
//! * `connect_at_run_time_and_redial_a_restarted_peer` — `connect`, unreachable peers retried
//!   with backoff, a restarted peer (same node key, same port) redialled.
//! * `metadata_disconnects_another_cluster` — a node of another cluster is dropped and forgotten.
//! * `missed_messages_are_retrieved_from_peers_stores` — a message lost on its way (the `loss`
//!   fault) is fetched by its hash from the sender's store cache, two hops away too; a forged or
//!   unknown hash brings nothing.
//! * `publish_refuses_what_peers_would_reject`, `errors_name_the_key_or_address`,
//!   `shutdown_silences_the_sink`.
//!
//! Conditions are awaited with generous timeouts (`relay_support::TIMEOUT`); nothing asserts on
//! elapsed time.
#![cfg(feature = "relay")]

mod relay_support;

use std::time::Duration;

use relay_support::{config, message, wait_for, wait_topic_peers, Node, CONTENT_TOPIC};
use reliable_channel::messaging::relay::{generate_node_key, RelayConfig, RelayError, RelayTransport};
use reliable_channel::messaging::{Transport, TransportEvent, TransportSink};

#[test]
fn star_reaches_every_subscriber() {
    let mut hub = Node::subscribed(&[]);
    let mut leaves: Vec<Node> = (0..4).map(|_| Node::subscribed(&[&hub])).collect();
    wait_topic_peers(&[&hub], &[4]);
    wait_topic_peers(&leaves.iter().collect::<Vec<_>>(), &[1; 4]);

    let topic = hub.handle.pubsub_topic().to_owned();
    let mut sent = Vec::new();
    for (i, leaf) in leaves.iter_mut().enumerate() {
        let m = message(CONTENT_TOPIC, format!("from leaf {i}").as_bytes());
        let id = leaf.publish(m.clone());
        sent.push((i, id, m));
    }
    let from_hub = message(CONTENT_TOPIC, b"from the hub");
    let hub_id = hub.publish(from_hub.clone());

    let got = hub.wait_received(4, "the hub to receive the four leaves' messages");
    for (_, _, m) in &sent {
        assert!(got.iter().any(|(r, h)| r == m && *h == Some(m.hash(&topic))), "hub missed {m:?}");
    }
    for (i, leaf) in leaves.iter().enumerate() {
        let got = leaf.wait_received(4, &format!("leaf {i} to receive 3 leaves + the hub"));
        for (j, _, m) in &sent {
            let copies = got.iter().filter(|(r, _)| r == m).count();
            assert_eq!(copies, usize::from(*j != i), "leaf {i} got {copies} copies of leaf {j}'s message (no echo, no duplicate)");
        }
        assert!(got.iter().any(|(r, h)| *r == from_hub && *h == Some(from_hub.hash(&topic))));
    }
    for (i, id, m) in &sent {
        assert_eq!(leaves[*i].outcome(*id), Some(TransportEvent::Sent { dispatch_id: *id, message_hash: Some(m.hash(&topic)) }));
    }
    assert!(matches!(hub.outcome(hub_id), Some(TransportEvent::Sent { .. })));

    // Exactly once everywhere (nothing straggles in late).
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(hub.received().len(), 4);
    let s = hub.stats();
    assert_eq!(s.connected_peers, 4);
    assert_eq!(s.counters.received, 4);
    assert_eq!(s.counters.published, 1);
    wait_for("the hub's mesh to hold its four leaves", || hub.stats().mesh_peers == 4);
    wait_for("every leaf's mesh to hold the hub", || leaves.iter().all(|l| l.stats().mesh_peers == 1));
}

#[test]
fn line_relays_over_several_hops() {
    let mut a = Node::subscribed(&[]);
    // b relays without delivering: it has no channel on the content topic.
    let b = Node::start(config(&[&a]));
    let c = Node::subscribed(&[&b]);
    let mut d = Node::subscribed(&[&c]);
    wait_topic_peers(&[&a, &b, &c, &d], &[1, 2, 2, 1]);
    // Gossipsub forwards along its mesh: wait for the meshes to form (first heartbeat).
    wait_for("the line's meshes to form", || [&a, &b, &c, &d].iter().all(|n| n.stats().mesh_peers >= 1));
    wait_for("the middle nodes to mesh both neighbours", || b.stats().mesh_peers == 2 && c.stats().mesh_peers == 2);

    let m1 = message(CONTENT_TOPIC, b"from d, three hops to a");
    d.publish(m1.clone());
    let m2 = message(CONTENT_TOPIC, b"from a, three hops to d");
    a.publish(m2.clone());
    assert_eq!(a.wait_received(1, "a to receive d's message")[0].0, m1);
    assert_eq!(d.wait_received(1, "d to receive a's message")[0].0, m2);
    let at_c = c.wait_received(2, "c to receive both");
    assert!(at_c.iter().any(|(m, _)| *m == m1) && at_c.iter().any(|(m, _)| *m == m2));
    assert!(b.received().is_empty(), "b has no subscription: it relays, it does not deliver");
    wait_for("b to count both as relayed-not-delivered", || b.stats().counters.not_subscribed == 2);
}

#[test]
fn faults_lose_or_duplicate_what_a_node_publishes() {
    let receiver = Node::subscribed(&[]);
    let mut lossy = Node::start(RelayConfig { loss: 1.0, ..config(&[&receiver]) });
    let mut dup = Node::start(RelayConfig { duplicate: 1.0, seed: 9, ..config(&[&receiver]) });
    wait_topic_peers(&[&receiver, &lossy, &dup], &[2, 1, 1]);
    let topic = receiver.handle.pubsub_topic().to_owned();

    let lost = message(CONTENT_TOPIC, b"never sent");
    let id = lossy.publish(lost.clone());
    // Reported at once; the node thread keeps the lost message in its store cache.
    wait_for("the lost message's outcome", || lossy.outcome(id).is_some());
    assert_eq!(lossy.outcome(id), Some(TransportEvent::Sent { dispatch_id: id, message_hash: Some(lost.hash(&topic)) }));
    assert_eq!(lossy.stats().counters.lost_by_fault, 1);

    let twice = message(CONTENT_TOPIC, b"sent twice");
    dup.publish(twice.clone());
    let got = receiver.wait_received(2, "both copies of the duplicated message");
    assert!(got.iter().all(|(m, h)| *m == twice && *h == Some(twice.hash(&topic))), "copies decode to the same message and hash");
    assert_eq!(dup.stats().counters.duplicated_by_fault, 1);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(receiver.received().len(), 2, "the lost message never arrived");
}

#[test]
fn connect_at_run_time_and_redial_a_restarted_peer() {
    let key = generate_node_key();
    let port = {
        let probe = Node::start(RelayConfig::default());
        let addr = probe.addr();
        let port: u16 = addr.split("/tcp/").nth(1).and_then(|s| s.split('/').next()).and_then(|p| p.parse().ok()).expect("a tcp port");
        port
    };
    let listen = vec![format!("/ip4/127.0.0.1/tcp/{port}")];
    let server = Node::subscribed_with(RelayConfig { listen: listen.clone(), node_key: Some(key.clone()), ..RelayConfig::default() });
    let server_addr = server.addr();
    assert!(server_addr.contains(&format!("/tcp/{port}/p2p/")), "{server_addr}");

    let mut client = Node::subscribed(&[]);
    // An unreachable peer: retried with backoff, never fatal.
    let nobody = format!("/ip4/127.0.0.1/tcp/1/p2p/{}", reliable_channel::messaging::relay::peer_id_of_node_key(&generate_node_key()).unwrap());
    client.handle.connect(&nobody).unwrap();
    client.handle.connect(&server_addr).unwrap();
    wait_topic_peers(&[&client, &server], &[1, 1]);
    wait_for("two failed dials of the unreachable peer", || client.stats().counters.dial_failures >= 2);

    drop(server);
    wait_for("the client to notice the server is gone", || client.stats().connected_peers == 0);
    let server = Node::subscribed_with(RelayConfig { listen, node_key: Some(key), ..RelayConfig::default() });
    assert_eq!(server.addr(), server_addr, "same key and port: same address");
    wait_topic_peers(&[&client, &server], &[1, 1]);
    let m = message(CONTENT_TOPIC, b"after the restart");
    client.publish(m.clone());
    assert_eq!(server.wait_received(1, "the restarted server to receive")[0].0, m);
}

#[test]
fn metadata_disconnects_another_cluster() {
    let topic = Some("/relay-test/shared-topic".to_owned());
    let ours = Node::start(RelayConfig { cluster_id: 42, pubsub_topic: topic.clone(), ..RelayConfig::default() });
    let theirs = Node::start(RelayConfig { cluster_id: 43, pubsub_topic: topic, ..config(&[&ours]) });
    // Whichever side judges first disconnects; the dialler redials until it has judged too
    // (its own query or our request), and then forgets the configured peer.
    wait_for("the dialler to reject the other cluster", || theirs.stats().counters.metadata_rejected >= 1);
    wait_for("the connection to close", || ours.stats().connected_peers == 0 && theirs.stats().connected_peers == 0);
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!((ours.stats().connected_peers, theirs.stats().connected_peers), (0, 0), "not redialled");
    assert_eq!(theirs.stats().counters.dial_failures, 0);
}

#[test]
fn publish_refuses_what_peers_would_reject() {
    let mut n = Node::subscribed(&[]);
    let empty = n.publish(message(CONTENT_TOPIC, b""));
    let no_topic = n.publish(message("", b"x"));
    let huge = n.publish(message(CONTENT_TOPIC, &vec![1u8; 150 * 1024]));
    for id in [empty, no_topic, huge] {
        assert!(matches!(n.outcome(id), Some(TransportEvent::Failed { .. })), "dispatch {id}: {:?}", n.outcome(id));
    }
    // Alone on the network: accepted (SDS retransmits), counted as unrouted.
    let alone = n.publish(message(CONTENT_TOPIC, b"nobody listens"));
    wait_for("the lonely publish to be reported", || n.outcome(alone).is_some());
    assert!(matches!(n.outcome(alone), Some(TransportEvent::Sent { message_hash: Some(_), .. })));
    wait_for("the lonely publish to be counted unrouted", || n.stats().counters.published_unrouted == 1);
    assert_eq!(n.stats().counters.publish_failed, 3);
}

#[test]
fn errors_name_the_key_or_address() {
    let sink = || TransportSink::new(|_| {});
    let busy = Node::start(RelayConfig::default());
    let taken = busy.handle.listen_addresses()[0].to_string();
    let taken = taken.split("/p2p/").next().unwrap().to_owned();
    match RelayTransport::new(RelayConfig { listen: vec![taken.clone()], ..RelayConfig::default() }, sink()) {
        Err(RelayError::Listen { addr, .. }) => assert_eq!(addr, taken),
        other => panic!("expected a listen error, got {other:?}"),
    }
    let bad = RelayConfig { peers: vec!["/ip4/127.0.0.1/tcp/5".into()], ..RelayConfig::default() };
    assert!(matches!(RelayTransport::new(bad, sink()), Err(RelayError::Config { key, .. }) if key == "transport.peers[0]"));
    assert!(matches!(busy.handle.connect("not a multiaddr"), Err(RelayError::Config { .. })));
}

#[test]
fn shutdown_silences_the_sink() {
    let mut quiet = Node::subscribed(&[]);
    let mut talker = Node::subscribed(&[&quiet]);
    wait_topic_peers(&[&quiet, &talker], &[1, 1]);
    let handle = quiet.handle.clone();
    quiet.transport.shutdown();
    let before = quiet.events.lock().len();
    assert_eq!(handle.connect(&talker.addr()), Err(RelayError::ShutDown));
    quiet.publish(message(CONTENT_TOPIC, b"after shutdown"));
    wait_for("the talker to lose its peer", || talker.stats().connected_peers == 0);
    talker.publish(message(CONTENT_TOPIC, b"to nobody"));
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(quiet.events.lock().len(), before, "no event after shutdown returned");
}

#[test]
fn missed_messages_are_retrieved_from_peers_stores() {
    let mut a = Node::start(RelayConfig { loss: 1.0, ..RelayConfig::default() });
    let mut b = Node::subscribed(&[&a]);
    let mut c = Node::subscribed(&[&b]);
    wait_topic_peers(&[&a, &b, &c], &[1, 2, 1]);
    let topic = a.handle.pubsub_topic().to_owned();
    let m = message(CONTENT_TOPIC, b"lost on its way");
    let id = a.publish(m.clone());
    wait_for("the lost message's outcome", || a.outcome(id).is_some());
    assert!(matches!(a.outcome(id), Some(TransportEvent::Sent { .. })));
    let hash = m.hash(&topic);
    // b asks its peers (a has it in its cache).
    b.transport.retrieve(CONTENT_TOPIC, &[hash, [7u8; 32]]);
    let got = b.wait_received(1, "b to retrieve the lost message from a's store");
    assert_eq!(got[0], (m.clone(), Some(hash)));
    assert!(b.stats().counters.store_retrieved >= 1);
    assert!(a.stats().counters.store_served >= 1);
    // c, two hops from a, gets it from b's cache (b kept what it retrieved).
    c.transport.retrieve(CONTENT_TOPIC, &[hash]);
    let got = c.wait_received(1, "c to retrieve the message from b's store");
    assert_eq!(got[0].0, m);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(b.received().len(), 1, "the unknown hash brought nothing");
}
