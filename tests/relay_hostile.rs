//! Hostile peers on the relay mesh: a plain rust-libp2p gossipsub peer speaking Waku Relay with
//! no validation of its own publishes what honest nodes never would. Our node rejects, ignores
//! or relays each kind, counts it, never delivers it, and keeps serving honest peers.
//!
//! * `garbage_empty_and_oversized_messages_are_rejected_and_counted`
//! * `oversized_frames_are_dropped`
//! * `a_flood_from_one_peer_is_capped_by_its_budget`
//! * `forged_store_replies_are_dropped_and_counted` — a store node (`/vac/waku/store-query/3.0.0`)
//!   answering our node's queries with garbage, an oversized response, 10 000 empty entries, a
//!   forged message under the asked hash, a message of another topic, one nobody asked for, the
//!   asked message with a 200 KiB forged proof, a replay: each dropped and counted (`storeRejected`,
//!   `storeDuplicates`), nothing delivered falsely or twice; the honest store's copy and the honest
//!   neighbour's conversation get through.
#![cfg(feature = "relay")]

mod relay_support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use libp2p::futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, StreamExt};
use libp2p::gossipsub::{self, ConfigBuilder, IdentTopic, MessageAuthenticity, ValidationMode, Version};
use libp2p::request_response;
use libp2p::swarm::SwarmEvent;
use libp2p::{noise, tcp, yamux, Multiaddr, StreamProtocol};
use parking_lot::Mutex;
use prost::Message as _;
use relay_support::{config, message, wait_for, wait_topic_peers, Node, CONTENT_TOPIC};
use reliable_channel::messaging::relay::{
    message_id, RelayConfig, StoreQueryRequest, StoreQueryResponse, WakuMessageKeyValue, MAX_RESPONSE_BYTES, RELAY_PROTOCOL, STORE_PROTOCOL,
};
use reliable_channel::messaging::Transport;
use reliable_channel::wire::WakuMessage;
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

/// The store query protocol as a hostile store node speaks it: requests decoded, responses written
/// verbatim (whatever bytes the test forges, length prefix included).
#[derive(Debug, Clone, Copy, Default)]
struct RawStoreCodec;

impl request_response::Codec for RawStoreCodec {
    type Protocol = StreamProtocol;
    type Request = StoreQueryRequest;
    type Response = Vec<u8>;

    async fn read_request<T: AsyncRead + Unpin + Send>(&mut self, _: &StreamProtocol, io: &mut T) -> std::io::Result<StoreQueryRequest> {
        let mut buf = Vec::new();
        io.take(64 * 1024).read_to_end(&mut buf).await?;
        StoreQueryRequest::decode_length_delimited(buf.as_slice()).map_err(std::io::Error::other)
    }

    async fn read_response<T: AsyncRead + Unpin + Send>(&mut self, _: &StreamProtocol, _: &mut T) -> std::io::Result<Vec<u8>> {
        Err(std::io::Error::other("the hostile store only answers"))
    }

    async fn write_request<T: AsyncWrite + Unpin + Send>(&mut self, _: &StreamProtocol, _: &mut T, _: StoreQueryRequest) -> std::io::Result<()> {
        Err(std::io::Error::other("the hostile store only answers"))
    }

    async fn write_response<T: AsyncWrite + Unpin + Send>(&mut self, _: &StreamProtocol, io: &mut T, res: Vec<u8>) -> std::io::Result<()> {
        io.write_all(&res).await?;
        io.close().await
    }
}

type Forge = Box<dyn FnMut(&StoreQueryRequest) -> Vec<u8> + Send>;

/// A peer that answers every store query of our node with what `forge` makes of it.
struct HostileStore {
    forge: Arc<Mutex<Forge>>,
    answered: Arc<AtomicUsize>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl HostileStore {
    fn connect(target: &str) -> HostileStore {
        let forge: Arc<Mutex<Forge>> = Arc::new(Mutex::new(Box::new(|_: &StoreQueryRequest| Vec::new())));
        let answered = Arc::new(AtomicUsize::new(0));
        let (f, n) = (Arc::clone(&forge), Arc::clone(&answered));
        let (stop, mut stopped) = tokio::sync::oneshot::channel();
        let target: Multiaddr = target.parse().unwrap();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(async move {
                let mut swarm = libp2p::SwarmBuilder::with_new_identity()
                    .with_tokio()
                    .with_tcp(tcp::Config::default(), noise::Config::new, yamux::Config::default)
                    .unwrap()
                    .with_behaviour(|_| {
                        request_response::Behaviour::<RawStoreCodec>::new(
                            [(STORE_PROTOCOL, request_response::ProtocolSupport::Inbound)],
                            request_response::Config::default(),
                        )
                    })
                    .unwrap()
                    .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(120)))
                    .build();
                swarm.dial(target).unwrap();
                loop {
                    tokio::select! {
                        _ = &mut stopped => break,
                        ev = swarm.select_next_some() => {
                            if let SwarmEvent::Behaviour(request_response::Event::Message {
                                message: request_response::Message::Request { request, channel, .. }, ..
                            }) = ev {
                                let res = (f.lock())(&request);
                                let _ = swarm.behaviour_mut().send_response(channel, res);
                                n.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                    }
                }
            });
        });
        HostileStore { forge, answered, stop: Some(stop), thread: Some(thread) }
    }

    fn forge(&self, f: impl FnMut(&StoreQueryRequest) -> Vec<u8> + Send + 'static) {
        *self.forge.lock() = Box::new(f);
    }
}

impl Drop for HostileStore {
    fn drop(&mut self) {
        let _ = self.stop.take().map(|s| s.send(()));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A well-formed response carrying `messages` (each with the hash the forger claims for it).
fn response(req: &StoreQueryRequest, messages: Vec<(Option<[u8; 32]>, WakuMessage)>) -> Vec<u8> {
    StoreQueryResponse {
        request_id: req.request_id.clone(),
        status_code: Some(200),
        messages: messages
            .into_iter()
            .map(|(h, m)| WakuMessageKeyValue {
                message_hash: h.map(|h| Bytes::copy_from_slice(&h)),
                message: Some(m),
                pubsub_topic: req.pubsub_topic.clone(),
            })
            .collect(),
        ..Default::default()
    }
    .encode_length_delimited_to_vec()
}

#[test]
fn forged_store_replies_are_dropped_and_counted() {
    // target talks with honest neighbour `a`; `s` is an honest store (everything it publishes is
    // lost on its way, the `loss` fault, so its messages reach target only through store queries);
    // `x` answers every store query of target with a forgery.
    let mut t = Node::subscribed_with(RelayConfig::default());
    let mut a = Node::subscribed(&[&t]);
    let mut s = Node::start(RelayConfig { loss: 1.0, ..config(&[&t]) });
    let x = HostileStore::connect(&t.addr());
    wait_topic_peers(&[&t, &a], &[2, 1]);
    wait_for("target to be connected to a, s and the hostile store", || t.stats().connected_peers >= 3);
    let mut w = World { topic: t.handle.pubsub_topic().to_owned(), expected: Vec::new(), round: 0 };

    let forgeries: Vec<(&str, Forge)> = vec![
        ("garbage", Box::new(|_: &StoreQueryRequest| [vec![200, 1], vec![0xff; 200]].concat())),
        (
            "an oversized response",
            Box::new(|_: &StoreQueryRequest| {
                let mut out = Vec::new();
                prost::encoding::encode_varint((MAX_RESPONSE_BYTES + 1) as u64, &mut out);
                out.extend(std::iter::repeat_n(0u8, 64 * 1024));
                out
            }),
        ),
        (
            "10 000 empty entries",
            Box::new(|_: &StoreQueryRequest| {
                let body: Vec<u8> = (0..10_000).flat_map(|_| [0xa2, 0x01, 0x00]).collect();
                let mut out = Vec::new();
                prost::encoding::encode_varint(body.len() as u64, &mut out);
                [out, body].concat()
            }),
        ),
        (
            "a forged message under the asked hash",
            Box::new(|req: &StoreQueryRequest| {
                let h: [u8; 32] = req.message_hashes[0][..].try_into().unwrap();
                response(req, vec![(Some(h), message(CONTENT_TOPIC, b"forged"))])
            }),
        ),
        (
            "a message of another pubsub and content topic",
            Box::new(|req: &StoreQueryRequest| {
                let m = message("/other-app/1/chat/proto", b"elsewhere");
                let other = StoreQueryRequest { pubsub_topic: Some("/waku/2/rs/99/0".into()), ..req.clone() };
                response(&other, vec![(Some(m.hash("/waku/2/rs/99/0")), m)])
            }),
        ),
        (
            "a message on our topic nobody asked for",
            Box::new(|req: &StoreQueryRequest| response(req, vec![(None, message(CONTENT_TOPIC, b"unasked"))])),
        ),
    ];
    let mut rejected = 0;
    for (what, forge) in forgeries {
        x.forge(forge);
        rejected += 1;
        w.retrieve_past(&mut t, &mut s, &x, |_| {});
        wait_for(&format!("{what} to be rejected"), || t.stats().counters.store_rejected >= rejected);
        w.a_says(&mut a, &t);
    }

    // The asked message itself with a forged 200 KiB rate-limit proof (a field the hash does not
    // cover): over the WakuMessage limit, dropped; the honest copy is delivered.
    let asked = Arc::new(Mutex::new(None::<WakuMessage>));
    let seen = Arc::clone(&asked);
    x.forge(move |req: &StoreQueryRequest| {
        let m = seen.lock().clone().expect("the message of this round");
        response(req, vec![(None, WakuMessage { rate_limit_proof: Some(Bytes::from(vec![1u8; 200 * 1024])), ..m })])
    });
    rejected += 1;
    w.retrieve_past(&mut t, &mut s, &x, |m| *asked.lock() = Some(m.clone()));
    wait_for("the oversized copy to be rejected", || t.stats().counters.store_rejected >= rejected);

    // A replay of a message target already holds: a duplicate, not delivered again.
    let replay = w.expected.last().unwrap().clone();
    x.forge(move |req: &StoreQueryRequest| response(req, vec![(None, replay.clone())]));
    let duplicates = t.stats().counters.store_duplicates;
    w.retrieve_past(&mut t, &mut s, &x, |_| {});
    wait_for("the replay to be counted", || t.stats().counters.store_duplicates > duplicates);
    w.a_says(&mut a, &t);

    // Nothing forged, nothing twice: exactly the honest messages, each once.
    std::thread::sleep(Duration::from_millis(300));
    let mut got: Vec<WakuMessage> = t.received().into_iter().map(|(m, _)| m).collect();
    let mut want = w.expected.clone();
    got.sort_by_key(|m| m.payload.clone());
    want.sort_by_key(|m| m.payload.clone());
    assert_eq!(got, want);
    let c = t.stats().counters;
    assert_eq!((c.store_rejected, c.store_retrieved), (rejected, 8), "{c:?}");
}

/// The honest messages of [`forged_store_replies_are_dropped_and_counted`].
struct World {
    topic: String,
    expected: Vec<WakuMessage>,
    round: usize,
}

impl World {
    /// `s` publishes a message (lost on its way, kept in its store); target asks its peers for it
    /// and gets it from `s`, whatever the hostile store answers. `before` sees the message first.
    fn retrieve_past(&mut self, t: &mut Node, s: &mut Node, x: &HostileStore, before: impl FnOnce(&WakuMessage)) {
        self.round += 1;
        let m = message(CONTENT_TOPIC, format!("lost {}", self.round).as_bytes());
        before(&m);
        let id = s.publish(m.clone());
        wait_for("the lost message's outcome", || s.outcome(id).is_some());
        let answered = x.answered.load(Ordering::Relaxed);
        t.transport.retrieve(CONTENT_TOPIC, &[m.hash(&self.topic)]);
        wait_for("the honest store's copy", || t.received().iter().any(|(r, _)| *r == m));
        wait_for("the hostile store to answer", || x.answered.load(Ordering::Relaxed) > answered);
        self.expected.push(m);
    }

    /// The honest neighbour's conversation goes on.
    fn a_says(&mut self, a: &mut Node, t: &Node) {
        self.round += 1;
        let m = message(CONTENT_TOPIC, format!("honest {}", self.round).as_bytes());
        a.publish(m.clone());
        wait_for("the honest conversation", || t.received().iter().any(|(r, _)| *r == m));
        self.expected.push(m);
    }
}
