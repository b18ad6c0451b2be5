//! [`RelayTransport`] (the [`Transport`] the runtime thread owns), [`RelayHandle`] (what the
//! manager and the FFI keep) and [`RelayStats`].

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::{JoinHandle, ThreadId};

use libp2p::{Multiaddr, PeerId};
use parking_lot::RwLock;
use prost::Message as _;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use tokio::sync::mpsc::{self, UnboundedSender};

use super::config::{parse_peer_addr, RelayConfig, RelayError};
use super::gossip::duplicate_copy;
use super::node::Node;
use crate::messaging::{DispatchId, MessageHash, Transport, TransportEvent, TransportSink};
use crate::wire::{WakuMessage, MAX_WAKU_MESSAGE_BYTES};

/// How many publishes may wait for the node thread at once. Beyond it `publish` fails at once
/// rather than queueing without bound (the node thread, not the caller, is then the bottleneck).
pub const MAX_QUEUED_PUBLISHES: usize = 8192;

/// What the transport and the handles ask of the node thread.
pub(crate) enum Command {
    /// Publish `data` (an encoded WakuMessage whose hash is `hash`); `duplicate` is a second,
    /// distinct copy to publish first (fault injection). Already reported `Sent`.
    Publish {
        data: Vec<u8>,
        hash: MessageHash,
        duplicate: Option<Vec<u8>>,
        /// The message itself, kept in the node's store cache.
        message: WakuMessage,
        /// The `loss` fault: cached (so that peers can retrieve it) but not sent.
        lost: bool,
    },
    /// Fetch these messages from the peers' stores (SDS retrieval hints).
    Retrieve(Vec<MessageHash>),
    Subscribe(String),
    Unsubscribe(String),
    Connect(Multiaddr, PeerId),
    Shutdown,
}

macro_rules! counters {
    ($($(#[$doc:meta])* $name:ident,)*) => {
        /// Cumulative counters of one relay node (see [`RelayStats`]).
        #[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
        pub struct RelayCounters {
            $($(#[$doc])* pub $name: u64,)*
        }

        /// The node's counters, written by the node thread (and the transport), read by any.
        #[derive(Debug, Default)]
        pub(crate) struct AtomicCounters {
            $(pub $name: AtomicU64,)*
        }

        impl AtomicCounters {
            fn snapshot(&self) -> RelayCounters {
                RelayCounters { $($name: self.$name.load(Ordering::Relaxed),)* }
            }
        }

        impl RelayCounters {
            /// Every counter with its name (snake_case, as the field).
            pub fn named(&self) -> Vec<(&'static str, u64)> {
                vec![$((stringify!($name), self.$name),)*]
            }
        }
    };
}

counters! {
    /// Messages handed to gossipsub and sent to at least one peer (or already known to it).
    published,
    /// Messages accepted but sent to nobody (no peer on the topic, or every peer's queue full);
    /// reported `Sent`: SDS retransmits them until acknowledged.
    published_unrouted,
    /// Messages refused by the transport (too large, empty, too many queued: reported `Failed`)
    /// or, rarely, by gossipsub after `Sent` was reported (logged; SDS retransmits them).
    publish_failed,
    /// Messages not sent at all because of the `loss` fault.
    lost_by_fault,
    /// Messages sent twice because of the `duplicate` fault.
    duplicated_by_fault,
    /// Messages on a subscribed content topic delivered to the sink.
    received,
    /// Valid messages on content topics nobody here subscribed to (relay pings included):
    /// relayed, not delivered.
    not_subscribed,
    /// Messages over the 150 KiB WakuMessage limit: rejected (the sender is penalised). Frames
    /// over the gossipsub frame limit never get this far: gossipsub drops them uncounted.
    rejected_oversized,
    /// Data that is not a protobuf WakuMessage: rejected.
    rejected_malformed,
    /// WakuMessages with an empty payload or content topic: rejected.
    rejected_invalid,
    /// Messages over a neighbour's inbound budget: ignored (not forwarded, not penalised).
    rate_limited,
    /// Gossipsub messages on pubsub topics this node does not relay: dropped.
    wrong_topic,
    /// Failed dials of wanted peers (each is retried with backoff).
    dial_failures,
    /// Peers disconnected because the metadata protocol showed another (or no) cluster.
    metadata_rejected,
    /// Store queries sent to peers for missing messages (SDS retrieval hints).
    store_queries,
    /// Messages fetched from a peer's store and delivered to the sink.
    store_retrieved,
    /// Messages served from our cache to peers' store queries.
    store_served,
    /// Store responses or messages dropped: not asked for (forged, wrong hash, another topic),
    /// over the size limits, with too many entries, malformed.
    store_rejected,
    /// Messages in store responses that this node already held (a replayed message, or a second
    /// peer answering the same query): dropped, not delivered again.
    store_duplicates,
    /// Inbound peers disconnected because the node had `max_peers` peers.
    peers_refused,
}

/// Gauges refreshed by the node thread (on connection changes and every 100 ms).
#[derive(Debug, Default)]
pub(crate) struct Gauges {
    pub connected_peers: AtomicUsize,
    pub mesh_peers: AtomicUsize,
    pub topic_peers: AtomicUsize,
}

/// A snapshot of a relay node's state: peers, mesh and counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RelayStats {
    /// Peers with at least one open connection.
    pub connected_peers: usize,
    /// Peers in this node's gossipsub mesh for the pubsub topic.
    pub mesh_peers: usize,
    /// Connected peers subscribed to the pubsub topic.
    pub topic_peers: usize,
    /// Cumulative counters.
    pub counters: RelayCounters,
}

impl RelayStats {
    /// The stats as the JSON object of the `"relay"` key of the channel stats
    /// (`rc_channel_stats_json`): camelCase names, `connectedPeers`, `meshPeers`, `topicPeers`
    /// and every counter.
    pub fn to_json(&self) -> serde_json::Value {
        let mut o = serde_json::Map::new();
        o.insert("connectedPeers".into(), self.connected_peers.into());
        o.insert("meshPeers".into(), self.mesh_peers.into());
        o.insert("topicPeers".into(), self.topic_peers.into());
        for (name, v) in self.counters.named() {
            o.insert(camel_case(name), v.into());
        }
        serde_json::Value::Object(o)
    }
}

fn camel_case(snake: &str) -> String {
    let mut out = String::with_capacity(snake.len());
    let mut upper = false;
    for c in snake.chars() {
        if c == '_' {
            upper = true;
        } else if upper {
            out.push(c.to_ascii_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

/// State shared by the transport, the handles and the node thread.
pub(crate) struct Shared {
    pub local_peer_id: PeerId,
    pub pubsub_topic: String,
    commands: UnboundedSender<Command>,
    sink: TransportSink,
    /// Cleared by shutdown before it waits for the node thread: no event is emitted after.
    alive: AtomicBool,
    pub listen: RwLock<Vec<Multiaddr>>,
    pub counters: AtomicCounters,
    pub gauges: Gauges,
    /// Publishes sent to the node thread and not yet handled by it.
    pub queued_publishes: AtomicUsize,
}

impl Shared {
    /// Reports to the sink unless the transport is shut down.
    pub fn emit(&self, ev: TransportEvent) {
        if self.alive.load(Ordering::Acquire) {
            self.sink.emit(ev);
        }
    }

    fn send(&self, cmd: Command) -> Result<(), RelayError> {
        self.commands.send(cmd).map_err(|_| RelayError::ShutDown)
    }

    #[cfg(test)]
    pub fn for_tests() -> Arc<Shared> {
        Arc::new(Shared {
            local_peer_id: PeerId::random(),
            pubsub_topic: String::new(),
            commands: mpsc::unbounded_channel().0,
            sink: TransportSink::new(|_| {}),
            alive: AtomicBool::new(true),
            listen: RwLock::new(Vec::new()),
            counters: AtomicCounters::default(),
            gauges: Gauges::default(),
            queued_publishes: AtomicUsize::new(0),
        })
    }
}

/// A cloneable handle on a relay node for the manager and the FFI: addresses, run-time
/// `connect`, stats. Every method is callable from any thread and never blocks on the network.
#[derive(Clone)]
pub struct RelayHandle {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for RelayHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RelayHandle").field("peer_id", &self.shared.local_peer_id).finish()
    }
}

impl RelayHandle {
    /// This node's peer id.
    pub fn peer_id(&self) -> PeerId {
        self.shared.local_peer_id
    }

    /// The pubsub topic this node relays on.
    pub fn pubsub_topic(&self) -> &str {
        &self.shared.pubsub_topic
    }

    /// The addresses the node listens on, each ending in `/p2p/<peer id>`, with the real port
    /// where port 0 was configured (one per interface for an unspecified address like 0.0.0.0).
    pub fn listen_addresses(&self) -> Vec<Multiaddr> {
        self.shared.listen.read().clone()
    }

    /// Asks the node to connect to `addr` (a multiaddr ending in `/p2p/<peer id>`) and to keep
    /// it connected, redialling with backoff. Returns once the request is queued; an unreachable
    /// peer is logged and retried, not reported here.
    pub fn connect(&self, addr: &str) -> Result<(), RelayError> {
        let (addr, peer) = parse_peer_addr("address", addr)?;
        self.shared.send(Command::Connect(addr, peer))
    }

    /// A snapshot of peers, mesh and counters.
    pub fn stats(&self) -> RelayStats {
        let g = &self.shared.gauges;
        RelayStats {
            connected_peers: g.connected_peers.load(Ordering::Relaxed),
            mesh_peers: g.mesh_peers.load(Ordering::Relaxed),
            topic_peers: g.topic_peers.load(Ordering::Relaxed),
            counters: self.shared.counters.snapshot(),
        }
    }
}

/// The native Waku Relay [`Transport`]: a libp2p node on its own thread. Owned by the runtime
/// thread; dropping it shuts the node down.
pub struct RelayTransport {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
    thread_id: ThreadId,
    rng: SmallRng,
    loss: f64,
    duplicate: f64,
}

impl std::fmt::Debug for RelayTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RelayTransport").field("peer_id", &self.shared.local_peer_id).field("pubsub_topic", &self.shared.pubsub_topic).finish()
    }
}

impl RelayTransport {
    /// Validates `cfg`, starts the node (its thread, runtime and swarm), binds every listen
    /// address and starts dialling the configured peers. Returns once the listen addresses are
    /// known. Errors name the offending key or address.
    pub fn new(cfg: RelayConfig, sink: TransportSink) -> Result<(RelayTransport, RelayHandle), RelayError> {
        let resolved = cfg.resolve()?;
        let (tx, rx) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            local_peer_id: resolved.keypair.public().to_peer_id(),
            pubsub_topic: resolved.pubsub_topic.clone(),
            commands: tx,
            sink,
            alive: AtomicBool::new(true),
            listen: RwLock::new(Vec::new()),
            counters: AtomicCounters::default(),
            gauges: Gauges::default(),
            queued_publishes: AtomicUsize::new(0),
        });
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let node_shared = Arc::clone(&shared);
        let node_cfg = cfg.clone();
        let thread = std::thread::Builder::new()
            .name("rc-relay".to_owned())
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = ready_tx.send(Err(RelayError::Runtime(e.to_string())));
                        return;
                    }
                };
                rt.block_on(async move {
                    let started = match Node::new(&node_cfg, resolved, node_shared) {
                        Ok(mut node) => node.start().await.map(|_| node),
                        Err(e) => Err(e),
                    };
                    match started {
                        Ok(node) => {
                            let _ = ready_tx.send(Ok(()));
                            node.run(rx).await;
                        }
                        Err(e) => {
                            let _ = ready_tx.send(Err(e));
                        }
                    }
                });
            })
            .map_err(|e| RelayError::Runtime(e.to_string()))?;
        let thread_id = thread.thread().id();
        let outcome = ready_rx.recv().unwrap_or_else(|_| Err(RelayError::Runtime("the relay thread stopped while starting".to_owned())));
        if let Err(e) = outcome {
            let _ = thread.join();
            return Err(e);
        }
        let handle = RelayHandle { shared: Arc::clone(&shared) };
        let transport = RelayTransport {
            shared,
            thread: Some(thread),
            thread_id,
            rng: SmallRng::seed_from_u64(cfg.seed),
            loss: cfg.loss,
            duplicate: cfg.duplicate,
        };
        Ok((transport, handle))
    }

    /// A handle on this transport's node.
    pub fn handle(&self) -> RelayHandle {
        RelayHandle { shared: Arc::clone(&self.shared) }
    }

    fn fail(&self, dispatch_id: DispatchId, error: String) {
        self.shared.counters.publish_failed.fetch_add(1, Ordering::Relaxed);
        self.shared.emit(TransportEvent::Failed { dispatch_id, error });
    }
}

impl Transport for RelayTransport {
    /// Encodes and hashes the message here (on the runtime thread), applies the test faults,
    /// hands it to the node thread and reports `Sent` at once (also when no peer will be there to
    /// take it: SDS retransmits). Messages over `MAX_WAKU_MESSAGE_BYTES` or with an empty
    /// payload or content topic fail at once: peers would reject them and penalise us.
    fn publish(&mut self, dispatch_id: DispatchId, message: WakuMessage) {
        if self.thread.is_none() {
            return;
        }
        if message.payload.is_empty() || message.content_topic.is_empty() {
            return self.fail(dispatch_id, "relay: refusing to publish an empty payload or content topic".to_owned());
        }
        let data = message.encode_to_vec();
        if data.len() > MAX_WAKU_MESSAGE_BYTES {
            return self.fail(dispatch_id, format!("message of {} bytes exceeds the {MAX_WAKU_MESSAGE_BYTES}-byte limit", data.len()));
        }
        let hash = message.hash(&self.shared.pubsub_topic);
        let counters = &self.shared.counters;
        // A message lost by the fault is still kept in the node's store cache (as a message lost
        // on its way is still in the network's stores): peers retrieve it by its hash.
        let lost = self.loss > 0.0 && self.rng.gen::<f64>() < self.loss;
        let duplicate = if !lost && self.duplicate > 0.0 && self.rng.gen::<f64>() < self.duplicate {
            counters.duplicated_by_fault.fetch_add(1, Ordering::Relaxed);
            Some(duplicate_copy(&data))
        } else {
            None
        };
        if self.shared.queued_publishes.fetch_add(1, Ordering::AcqRel) >= MAX_QUEUED_PUBLISHES {
            self.shared.queued_publishes.fetch_sub(1, Ordering::AcqRel);
            return self.fail(dispatch_id, format!("relay: {MAX_QUEUED_PUBLISHES} publishes already wait for the network"));
        }
        if lost {
            counters.lost_by_fault.fetch_add(1, Ordering::Relaxed);
        }
        if self.shared.send(Command::Publish { data, hash, duplicate, message, lost }).is_err() {
            return self.fail(dispatch_id, "relay: the node has stopped".to_owned());
        }
        // Reported here, on the runtime thread, rather than by the node thread once gossipsub has
        // it: gossipsub refuses nothing that passed the checks above (to nobody is still `Sent`:
        // SDS retransmits), and one event less crossing threads per message is CPU the speed goal
        // needs (BENCHMARKS.md, relay).
        self.shared.emit(TransportEvent::Sent { dispatch_id, message_hash: Some(hash) });
    }

    fn subscribe(&mut self, content_topic: &str) {
        let _ = self.shared.send(Command::Subscribe(content_topic.to_owned()));
    }

    /// Asks the connected peers' stores for these messages (`store.rs`); found ones arrive as
    /// `Received`. Repeated requests for a hash are throttled by the node.
    fn retrieve(&mut self, _content_topic: &str, hashes: &[MessageHash]) {
        if !hashes.is_empty() {
            let _ = self.shared.send(Command::Retrieve(hashes.to_vec()));
        }
    }

    fn unsubscribe(&mut self, content_topic: &str) {
        let _ = self.shared.send(Command::Unsubscribe(content_topic.to_owned()));
    }

    // `has_store` stays `false` (the plain retransmission timing), although `retrieve` works:
    // what a peer can fetch is only what its *connected* peers' caches hold (bounded, only what
    // they relayed). A participant behind a partition, or one whose neighbours all missed the
    // message (the `loss` fault drops a publication for every peer), finds nothing, and with the
    // store-aware timing it would then wait 6 × the acknowledgement timeout for the sender's
    // retransmission. Peers of other implementations (js-waku) do not query our caches at all.

    /// Stops the node and closes its connections. After it returns the sink is never called
    /// again; called from the node thread itself (inside the sink) it stops the node without
    /// waiting for it. Idempotent.
    fn shutdown(&mut self) {
        let Some(thread) = self.thread.take() else { return };
        self.shared.alive.store(false, Ordering::Release);
        let _ = self.shared.send(Command::Shutdown);
        if std::thread::current().id() != self.thread_id {
            let _ = thread.join();
        }
    }
}

impl Drop for RelayTransport {
    fn drop(&mut self) {
        self.shutdown();
    }
}
