//! Hostile peers on the relay mesh: a plain rust-libp2p gossipsub peer speaking Waku Relay with
//! no validation of its own publishes what honest nodes never would. Our node rejects, ignores
//! or relays each kind, counts it, never delivers it, and keeps serving honest peers.
//!
//! * `garbage_empty_and_oversized_messages_are_rejected_and_counted`
//! * `oversized_frames_are_dropped`
//! * `a_flood_from_one_peer_is_capped_by_its_budget`
#![cfg(feature = "relay")]

mod relay_support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use libp2p::futures::StreamExt;
use libp2p::gossipsub::{self, ConfigBuilder, IdentTopic, MessageAuthenticity, ValidationMode, Version};
use libp2p::swarm::SwarmEvent;
use libp2p::{noise, tcp, yamux, Multiaddr};
use prost::Message as _;
use relay_support::{config, message, wait_for, wait_topic_peers, Node, CONTENT_TOPIC};
use reliable_channel::messaging::relay::{message_id, RelayConfig, RELAY_PROTOCOL};
use tokio::sync::mpsc;

/// What a hostile peer's frames may carry (far over the relay's 214 KiB frame limit).
const HOSTILE_FRAME_BYTES: usize = 1 << 20;

/// A gossipsub peer on its own thread that publishes whatever bytes it is given.
struct Hostile {
    publish: mpsc::UnboundedSender<Vec<u8>>,
    topic_peers: Arc<AtomicUsize>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Hostile {
    fn connect(target: &str, pubsub_topic: &str) -> Hostile {
        let (tx, mut rx) = mpsc::unbounded_channel::<Vec<u8>>();
        let topic_peers = Arc::new(AtomicUsize::new(0));
        let seen = Arc::clone(&topic_peers);
        let target: Multiaddr = target.parse().unwrap();
        let topic = IdentTopic::new(pubsub_topic);
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(async move {
                let cfg = ConfigBuilder::default()
                    .protocol_id(RELAY_PROTOCOL, Version::V1_1)
                    .validation_mode(ValidationMode::None)
                    .message_id_fn(|m: &gossipsub::Message| message_id(&m.data))
                    .max_transmit_size(HOSTILE_FRAME_BYTES)
                    .build()
                    .unwrap();
                let mut swarm = libp2p::SwarmBuilder::with_new_identity()
                    .with_tokio()
                    .with_tcp(tcp::Config::default(), noise::Config::new, yamux::Config::default)
                    .unwrap()
                    .with_behaviour(|_| -> gossipsub::Behaviour { gossipsub::Behaviour::new(MessageAuthenticity::Anonymous, cfg).unwrap() })
                    .unwrap()
                    .build();
                swarm.behaviour_mut().subscribe(&topic).unwrap();
                swarm.dial(target).unwrap();
                loop {
                    tokio::select! {
                        data = rx.recv() => match data {
                            Some(data) => { let _ = swarm.behaviour_mut().publish(topic.clone(), data); }
                            None => break,
                        },
                        ev = swarm.select_next_some() => {
                            if let SwarmEvent::Behaviour(gossipsub::Event::Subscribed { .. }) = ev {
                                seen.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                    }
                }
            });
        });
        let h = Hostile { publish: tx, topic_peers, thread: Some(thread) };
        wait_for("the hostile peer to see our node on the topic", || h.topic_peers.load(Ordering::Relaxed) >= 1);
        h
    }

    fn send(&self, data: Vec<u8>) {
        self.publish.send(data).unwrap();
    }
}

impl Drop for Hostile {
    fn drop(&mut self) {
        let (tx, _) = mpsc::unbounded_channel();
        drop(std::mem::replace(&mut self.publish, tx));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Our node (subscribed) with an honest subscribed neighbour; waits until both see each other.
fn honest_pair(cfg: RelayConfig) -> (Node, Node) {
    let target = Node::subscribed_with(cfg);
    let honest = Node::subscribed(&[&target]);
    wait_topic_peers(&[&target, &honest], &[1, 1]);
    (target, honest)
}

/// The honest neighbour still gets through to `target`.
fn honest_traffic_flows(target: &Node, honest: &mut Node) {
    let before = target.received().len();
    let m = message(CONTENT_TOPIC, b"honest");
    honest.publish(m.clone());
    assert_eq!(target.wait_received(before + 1, "the honest message")[before].0, m);
}

#[test]
fn garbage_empty_and_oversized_messages_are_rejected_and_counted() {
    let (target, mut honest) = honest_pair(RelayConfig::default());
    let x = Hostile::connect(&target.addr(), target.handle.pubsub_topic());

    // Valid, but for no subscriber: relayed, counted, not delivered.
    for i in 0..2u8 {
        x.send(message("/other-app/1/chat/proto", &[i]).encode_to_vec());
    }
    wait_for("2 relayed messages of another content topic", || target.stats().counters.not_subscribed == 2);
    // Then what nwaku and js-waku reject (few enough that peer scoring keeps listening).
    for i in 0..3u8 {
        x.send(vec![0xff, 0xff, 0xff, i]);
    }
    x.send(message(CONTENT_TOPIC, b"").encode_to_vec());
    x.send(message("", b"no content topic").encode_to_vec());
    x.send(message(CONTENT_TOPIC, &vec![7u8; 160 * 1024]).encode_to_vec());
    wait_for("every hostile message to be judged", || {
        let c = target.stats().counters;
        (c.rejected_malformed, c.rejected_invalid, c.rejected_oversized) == (3, 2, 1)
    });
    assert!(target.received().is_empty(), "nothing hostile is delivered");
    honest_traffic_flows(&target, &mut honest);
    assert!(honest.received().is_empty(), "rejected messages are not forwarded, others not delivered");
    wait_for("the honest neighbour to relay the 2 valid ones", || honest.stats().counters.not_subscribed == 2);
}

#[test]
fn oversized_frames_are_dropped() {
    let (target, mut honest) = honest_pair(RelayConfig::default());
    let x = Hostile::connect(&target.addr(), target.handle.pubsub_topic());
    x.send(message(CONTENT_TOPIC, &vec![1u8; 300 * 1024]).encode_to_vec());
    // Gossipsub's codec refuses the frame before any validation: nothing to count, nothing
    // delivered, and the node goes on serving.
    honest_traffic_flows(&target, &mut honest);
    std::thread::sleep(Duration::from_millis(300));
    let c = target.stats().counters;
    assert_eq!(target.received().len(), 1);
    assert_eq!((c.rejected_oversized, c.rejected_malformed, c.received), (0, 0, 1));
}

#[test]
fn a_flood_from_one_peer_is_capped_by_its_budget() {
    const FLOOD: u64 = 1_000;
    const RATE: u32 = 20;
    let (target, mut honest) = honest_pair(RelayConfig { peer_messages_per_sec: RATE, ..config(&[]) });
    let x = Hostile::connect(&target.addr(), target.handle.pubsub_topic());
    for i in 0..FLOOD {
        x.send(message(CONTENT_TOPIC, &i.to_le_bytes()).encode_to_vec());
    }
    wait_for("the whole flood to be judged", || {
        let c = target.stats().counters;
        c.received + c.rate_limited == FLOOD
    });
    let c = target.stats().counters;
    // A burst of RATE, then RATE per second: the flood arrives in far less than the 49 s it
    // would take to earn it all.
    assert!(c.rate_limited > 0 && c.received < FLOOD, "{c:?}");
    assert_eq!(target.received().len() as u64, c.received);
    honest_traffic_flows(&target, &mut honest);
}
