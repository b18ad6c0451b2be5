//! The relay node's thread: one libp2p swarm on its own current-thread tokio runtime.
//!
//! The node owns the swarm, the content-topic subscription counts, the wanted-peer table (dial
//! and redial with backoff) and the per-peer inbound budgets. It takes [`Command`]s from the
//! transport and the handles, reports to the [`TransportSink`] through [`Shared::emit`], and
//! publishes its counters and gauges into [`Shared`] for `stats()`.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use libp2p::core::transport::ListenerId;
use libp2p::futures::StreamExt;
use libp2p::gossipsub::{self, IdentTopic, MessageAcceptance, MessageAuthenticity, PublishError, RawMessage, TopicHash};
use libp2p::multiaddr::Protocol;
use libp2p::request_response::{self, OutboundFailure};
use libp2p::swarm::dial_opts::{DialOpts, PeerCondition};
use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
use libp2p::{identify, noise, ping, tcp, yamux, Multiaddr, PeerId, Swarm};
use tokio::sync::mpsc::UnboundedReceiver;

use super::config::{RelayError, Resolved};
use super::gossip::{self, PeerBudgets, Refusal};
use super::metadata::{self, MetadataBehaviour, WakuMetadata};
use super::store::{self, MessageCache, Retrieved, StoreBehaviour, StoreQueryRequest, StoreQueryResponse};
use super::transport::{Command, Shared};
use crate::collections::FastMap;
use crate::messaging::{MessageHash, TransportEvent};

/// First redial delay of a wanted peer after a failed dial or a lost connection.
pub const REDIAL_INITIAL: Duration = Duration::from_millis(500);
/// Longest redial delay (the delay doubles per failed attempt up to this).
pub const REDIAL_MAX: Duration = Duration::from_secs(30);
/// How often the node checks due redials and refreshes the peer and mesh gauges.
const TICK: Duration = Duration::from_millis(100);
/// Commands handled in a row before the connection tasks get to write.
const COMMAND_BATCH: usize = 64;
/// How long startup waits for every listener to report its address.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(10);
/// Metadata request timeout.
const METADATA_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections with no open stream are closed after this long (gossipsub and ping keep busy
/// connections open; this only reaps connections nothing uses).
const IDLE_CONNECTION_TIMEOUT: Duration = Duration::from_secs(120);
/// The identify protocol version string (what nwaku announces).
const IDENTIFY_PROTOCOL_VERSION: &str = "/ipfs/id/1.0.0";

/// Counts gossipsub messages on pubsub topics this node does not relay. Gossipsub drops them
/// before validation without an event; its data transform is the one place that sees them.
pub(crate) struct CountingTransform {
    topic: TopicHash,
    shared: Arc<Shared>,
}

impl gossipsub::DataTransform for CountingTransform {
    fn inbound_transform(&self, raw: RawMessage) -> Result<gossipsub::Message, std::io::Error> {
        if raw.topic != self.topic {
            self.shared.counters.wrong_topic.fetch_add(1, Ordering::Relaxed);
        }
        Ok(gossipsub::Message { source: raw.source, data: raw.data, sequence_number: raw.sequence_number, topic: raw.topic })
    }

    fn outbound_transform(&self, _topic: &TopicHash, data: Vec<u8>) -> Result<Vec<u8>, std::io::Error> {
        Ok(data)
    }
}

/// The protocols a relay node speaks.
#[derive(NetworkBehaviour)]
pub(crate) struct RelayBehaviour {
    gossipsub: gossipsub::Behaviour<CountingTransform>,
    metadata: MetadataBehaviour,
    store: StoreBehaviour,
    identify: identify::Behaviour,
    ping: ping::Behaviour,
}

/// A peer to keep connected: dialled at start or by `connect`, redialled with backoff.
struct Wanted {
    addr: Multiaddr,
    attempt: u32,
    /// When the next dial is due (`None`: connected or dialling).
    next_at: Option<Instant>,
}

pub(crate) struct Node {
    swarm: Swarm<RelayBehaviour>,
    shared: Arc<Shared>,
    topic: IdentTopic,
    /// `topic`'s hash, cloned per publish (cheaper than converting the topic each time).
    topic_hash: TopicHash,
    cluster_id: u32,
    shards: Vec<u32>,
    max_peers: usize,
    /// Listeners that have not reported an address yet (startup waits for them).
    listeners: Vec<(ListenerId, String)>,
    /// Content-topic subscription counts (one per open channel on the topic).
    subscriptions: FastMap<String, usize>,
    wanted: HashMap<PeerId, Wanted>,
    /// Peers of another cluster to disconnect once our metadata answer to them is sent.
    refused: HashSet<PeerId>,
    budgets: PeerBudgets,
    started: Instant,
    /// Recent messages by hash, served to peers' store queries; the hashes we asked for.
    cache: MessageCache,
    next_store_request: u64,
}

/// Fails when `addr` names a TCP port some socket already listens on. libp2p-tcp listens with
/// SO_REUSEPORT, so without this check a second node would silently share a busy port with the
/// first (each getting some of the connections); a plain bind, without SO_REUSEPORT, refuses.
fn check_port_free(addr: &Multiaddr) -> std::io::Result<()> {
    let (mut ip, mut port) = (None, None);
    for p in addr.iter() {
        match p {
            Protocol::Ip4(a) => ip = Some(std::net::IpAddr::V4(a)),
            Protocol::Ip6(a) => ip = Some(std::net::IpAddr::V6(a)),
            Protocol::Tcp(p) => port = Some(p),
            _ => {}
        }
    }
    match (ip, port) {
        (Some(ip), Some(port)) if port != 0 => std::net::TcpListener::bind((ip, port)).map(drop),
        _ => Ok(()),
    }
}

fn backoff(attempt: u32) -> Duration {
    REDIAL_INITIAL.saturating_mul(1u32 << attempt.min(16)).min(REDIAL_MAX)
}

impl Node {
    /// Builds the swarm and binds every listen address (errors name the address).
    pub(crate) fn new(cfg: &super::RelayConfig, resolved: Resolved, shared: Arc<Shared>) -> Result<Node, RelayError> {
        let topic = IdentTopic::new(resolved.pubsub_topic.clone());
        let runtime_err = |e: &dyn std::fmt::Display| RelayError::Runtime(e.to_string());
        let transform = CountingTransform { topic: topic.hash(), shared: Arc::clone(&shared) };
        let mut swarm = libp2p::SwarmBuilder::with_existing_identity(resolved.keypair)
            .with_tokio()
            .with_tcp(tcp::Config::default().nodelay(true), noise::Config::new, yamux::Config::default)
            .map_err(|e| runtime_err(&e))?
            .with_behaviour(|key| {
                let mut gossipsub = gossipsub::Behaviour::new_with_transform(
                    MessageAuthenticity::Anonymous,
                    gossip::gossipsub_config(gossip::MAX_FRAME_BYTES),
                    transform,
                )?;
                let (params, thresholds) = gossip::peer_score(&topic);
                gossipsub.with_peer_score(params, thresholds)?;
                let identify = identify::Behaviour::new(
                    identify::Config::new(IDENTIFY_PROTOCOL_VERSION.to_owned(), key.public())
                        .with_agent_version(format!("reliable-channel/{}", env!("CARGO_PKG_VERSION"))),
                );
                Ok(RelayBehaviour {
                    gossipsub,
                    metadata: metadata::behaviour(METADATA_TIMEOUT),
                    store: store::behaviour(),
                    identify,
                    ping: ping::Behaviour::default(),
                })
            })
            .map_err(|e| runtime_err(&e))?
            .with_swarm_config(|c| c.with_idle_connection_timeout(IDLE_CONNECTION_TIMEOUT))
            .build();
        let mut listeners = Vec::with_capacity(resolved.listen.len());
        for (text, addr) in resolved.listen {
            check_port_free(&addr).map_err(|e| RelayError::Listen { addr: text.clone(), reason: e.to_string() })?;
            let id = swarm.listen_on(addr).map_err(|e| RelayError::Listen { addr: text.clone(), reason: e.to_string() })?;
            listeners.push((id, text));
        }
        let mut wanted = HashMap::new();
        for (addr, peer) in resolved.peers {
            wanted.insert(peer, Wanted { addr, attempt: 0, next_at: Some(Instant::now()) });
        }
        Ok(Node {
            swarm,
            shared,
            topic_hash: topic.hash(),
            topic,
            cluster_id: cfg.cluster_id,
            shards: resolved.shards,
            max_peers: cfg.max_peers,
            listeners,
            subscriptions: FastMap::default(),
            wanted,
            refused: HashSet::new(),
            budgets: PeerBudgets::new(cfg.peer_messages_per_sec, cfg.peer_bytes_per_sec),
            started: Instant::now(),
            cache: MessageCache::default(),
            next_store_request: 0,
        })
    }

    /// Waits until every listener reported an address (so `listen_addresses` has the real
    /// ports), subscribes to the pubsub topic and dials the configured peers.
    pub(crate) async fn start(&mut self) -> Result<(), RelayError> {
        let deadline = tokio::time::Instant::now() + STARTUP_TIMEOUT;
        while let Some(first) = self.listeners.first().map(|(_, text)| text.clone()) {
            let failed = |reason: String| RelayError::Listen { addr: first.clone(), reason };
            let ev = match tokio::time::timeout_at(deadline, self.swarm.select_next_some()).await {
                Ok(ev) => ev,
                Err(_) => return Err(failed("no address reported in time".to_owned())),
            };
            match &ev {
                SwarmEvent::ListenerError { error, .. } => return Err(failed(error.to_string())),
                SwarmEvent::ListenerClosed { reason: Err(e), .. } => return Err(failed(e.to_string())),
                SwarmEvent::NewListenAddr { listener_id, .. } => self.listeners.retain(|(id, _)| id != listener_id),
                _ => {}
            }
            self.on_swarm_event(ev);
        }
        self.swarm
            .behaviour_mut()
            .gossipsub
            .subscribe(&self.topic)
            .map_err(|e| RelayError::Runtime(format!("cannot subscribe to {}: {e}", self.topic)))?;
        self.dial_due(Instant::now());
        Ok(())
    }

    /// Runs until a `Shutdown` command (or until every command sender is gone).
    pub(crate) async fn run(mut self, mut commands: UnboundedReceiver<Command>) {
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        'run: loop {
            tokio::select! {
                cmd = commands.recv() => {
                    // Up to COMMAND_BATCH commands in a row (a burst of publishes is handed to
                    // gossipsub at once and written together), then the connection tasks run:
                    // `try_recv` takes no tokio budget, so without the yield a long burst would
                    // fill gossipsub's per-peer queues (5,000), whose overflow drops messages
                    // until SDS retransmits them.
                    let mut cmd = cmd;
                    let mut handled = 0;
                    loop {
                        match cmd {
                            None | Some(Command::Shutdown) => break 'run,
                            Some(c) => self.on_command(c),
                        }
                        handled += 1;
                        if handled == COMMAND_BATCH {
                            break;
                        }
                        match commands.try_recv() {
                            Ok(next) => cmd = Some(next),
                            Err(_) => break,
                        }
                    }
                    tokio::task::yield_now().await;
                }
                ev = self.swarm.select_next_some() => self.on_swarm_event(ev),
                _ = tick.tick() => {
                    self.dial_due(Instant::now());
                    self.refresh_gauges();
                }
            }
        }
        log::debug!("relay {}: stopped", self.shared.local_peer_id);
    }

    fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    fn on_command(&mut self, cmd: Command) {
        match cmd {
            Command::Publish { data, hash, duplicate, message, lost } => {
                self.shared.queued_publishes.fetch_sub(1, Ordering::AcqRel);
                self.cache.insert(hash, message, data.len());
                if lost {
                    return;
                }
                let counters = &self.shared.counters;
                let gs = &mut self.swarm.behaviour_mut().gossipsub;
                if let Some(copy) = duplicate {
                    let _ = gs.publish(self.topic_hash.clone(), copy);
                }
                // spec: relay.publish — `Sent` was reported by the transport already (see
                // RelayTransport::publish); what goes wrong here is counted and left to SDS.
                match gs.publish(self.topic_hash.clone(), data) {
                    Ok(_) | Err(PublishError::Duplicate) => {
                        counters.published.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(e @ (PublishError::NoPeersSubscribedToTopic | PublishError::AllQueuesFull(_))) => {
                        log::debug!("relay {}: message published to nobody: {e}", self.shared.local_peer_id);
                        counters.published_unrouted.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(e) => {
                        counters.publish_failed.fetch_add(1, Ordering::Relaxed);
                        log::warn!("relay {}: publish failed: {e}; SDS retransmits it", self.shared.local_peer_id);
                    }
                }
            }
            Command::Retrieve(hashes) => self.retrieve(&hashes),
            Command::Subscribe(topic) => *self.subscriptions.entry(topic).or_insert(0) += 1,
            Command::Unsubscribe(topic) => {
                if let Some(n) = self.subscriptions.get_mut(&topic) {
                    *n -= 1;
                    if *n == 0 {
                        self.subscriptions.remove(&topic);
                    }
                }
            }
            Command::Connect(addr, peer) => {
                if peer == self.shared.local_peer_id {
                    log::warn!("relay: not connecting to {addr}: that is this node");
                    return;
                }
                let w = self.wanted.entry(peer).or_insert(Wanted { addr: addr.clone(), attempt: 0, next_at: None });
                w.addr = addr;
                w.attempt = 0;
                if !self.swarm.is_connected(&peer) {
                    w.next_at = Some(Instant::now());
                    self.dial_due(Instant::now());
                }
            }
            Command::Shutdown => {}
        }
    }

    /// Dials every wanted, unconnected peer whose redial is due.
    fn dial_due(&mut self, now: Instant) {
        let due: Vec<(PeerId, Multiaddr)> = self
            .wanted
            .iter_mut()
            .filter(|(_, w)| w.next_at.is_some_and(|t| t <= now))
            .map(|(p, w)| {
                w.next_at = None;
                (*p, w.addr.clone())
            })
            .collect();
        for (peer, addr) in due {
            if self.swarm.is_connected(&peer) {
                continue;
            }
            let opts = DialOpts::peer_id(peer).addresses(vec![addr.clone()]).condition(PeerCondition::DisconnectedAndNotDialing).build();
            if let Err(e) = self.swarm.dial(opts) {
                self.dial_failed(peer, &e.to_string());
            }
        }
    }

    fn dial_failed(&mut self, peer: PeerId, reason: &str) {
        let Some(w) = self.wanted.get_mut(&peer) else { return };
        self.shared.counters.dial_failures.fetch_add(1, Ordering::Relaxed);
        let delay = backoff(w.attempt);
        w.attempt = w.attempt.saturating_add(1);
        w.next_at = Some(Instant::now() + delay);
        log::warn!("relay: cannot reach {} ({reason}); retrying in {delay:?}", w.addr);
    }

    fn refresh_gauges(&mut self) {
        let gs = &self.swarm.behaviour().gossipsub;
        let hash = self.topic.hash();
        let mesh = gs.mesh_peers(&hash).count();
        let topic_peers = gs.all_peers().filter(|(_, topics)| topics.contains(&&hash)).count();
        let g = &self.shared.gauges;
        g.connected_peers.store(self.swarm.connected_peers().count(), Ordering::Relaxed);
        g.mesh_peers.store(mesh, Ordering::Relaxed);
        g.topic_peers.store(topic_peers, Ordering::Relaxed);
    }

    fn on_swarm_event(&mut self, ev: SwarmEvent<RelayBehaviourEvent>) {
        match ev {
            SwarmEvent::Behaviour(RelayBehaviourEvent::Gossipsub(ev)) => self.on_gossipsub(ev),
            SwarmEvent::Behaviour(RelayBehaviourEvent::Metadata(ev)) => self.on_metadata(ev),
            SwarmEvent::Behaviour(RelayBehaviourEvent::Store(ev)) => self.on_store(ev),
            SwarmEvent::Behaviour(RelayBehaviourEvent::Identify(_) | RelayBehaviourEvent::Ping(_)) => {}
            SwarmEvent::NewListenAddr { address, .. } => {
                let full = address.with(Protocol::P2p(self.shared.local_peer_id));
                log::info!("relay: listening on {full}");
                self.shared.listen.write().push(full);
            }
            SwarmEvent::ExpiredListenAddr { address, .. } => {
                let full = address.with(Protocol::P2p(self.shared.local_peer_id));
                self.shared.listen.write().retain(|a| *a != full);
            }
            SwarmEvent::ConnectionEstablished { peer_id, num_established, endpoint, .. } => {
                if num_established.get() == 1 {
                    let connected = self.swarm.connected_peers().count();
                    if connected > self.max_peers && !self.wanted.contains_key(&peer_id) {
                        self.shared.counters.peers_refused.fetch_add(1, Ordering::Relaxed);
                        log::debug!("relay: refusing {peer_id}: {connected} peers exceed the limit of {}", self.max_peers);
                        let _ = self.swarm.disconnect_peer_id(peer_id);
                        return;
                    }
                    // INFO: lifecycle (src/logging.rs); the first peer means the transport is connected.
                    log::info!("relay: peer connected: {peer_id} at {} ({connected} connected)", endpoint.get_remote_address());
                    if connected == 1 {
                        log::info!("relay: transport connected");
                    }
                    // spec: relay.metadata — ask every new peer for its cluster.
                    let ours = WakuMetadata::ours(self.cluster_id, &self.shards);
                    self.swarm.behaviour_mut().metadata.send_request(&peer_id, ours);
                }
                if let Some(w) = self.wanted.get_mut(&peer_id) {
                    w.attempt = 0;
                    w.next_at = None;
                }
                self.refresh_gauges();
            }
            SwarmEvent::ConnectionClosed { peer_id, num_established: 0, cause, .. } => {
                log::info!("relay: peer disconnected: {peer_id}");
                self.budgets.forget(&peer_id);
                self.refused.remove(&peer_id);
                if let Some(w) = self.wanted.get_mut(&peer_id) {
                    let delay = backoff(w.attempt);
                    w.next_at = Some(Instant::now() + delay);
                    log::warn!("relay: lost {} ({}); redialling in {delay:?}", w.addr, cause.map_or("closed".to_owned(), |c| c.to_string()));
                }
                self.refresh_gauges();
            }
            SwarmEvent::OutgoingConnectionError { peer_id: Some(peer), error, .. } => self.dial_failed(peer, &error.to_string()),
            SwarmEvent::IncomingConnectionError { error, .. } => log::debug!("relay: incoming connection failed: {error}"),
            _ => {}
        }
    }

    fn on_gossipsub(&mut self, ev: gossipsub::Event) {
        let gossipsub::Event::Message { propagation_source, message_id, message } = ev else {
            if let gossipsub::Event::Subscribed { .. } | gossipsub::Event::Unsubscribed { .. } = ev {
                self.refresh_gauges();
            }
            return;
        };
        let counters = &self.shared.counters;
        let size = message.data.len();
        let verdict = if message.topic != self.topic_hash {
            // Not reached while the node subscribes to one topic only (gossipsub drops the
            // others; the transform counts them).
            MessageAcceptance::Ignore
        } else if !self.budgets.admit(propagation_source, message.data.len(), self.now_ms()) {
            // Over budget: neither forwarded nor delivered, but not penalised (an honest
            // neighbour relaying a burst looks the same); SDS repairs what this drops.
            counters.rate_limited.fetch_add(1, Ordering::Relaxed);
            MessageAcceptance::Ignore
        } else {
            // spec: relay.validation
            match gossip::classify(Bytes::from(message.data)) {
                Ok(wm) => {
                    let hash = wm.hash(&self.shared.pubsub_topic);
                    self.cache.insert(hash, wm.clone(), size);
                    if self.subscriptions.contains_key(&wm.content_topic) {
                        counters.received.fetch_add(1, Ordering::Relaxed);
                        self.shared.emit(TransportEvent::Received { message: wm, message_hash: Some(hash) });
                    } else {
                        // Relay pings and other applications' traffic: relayed, not delivered.
                        counters.not_subscribed.fetch_add(1, Ordering::Relaxed);
                    }
                    MessageAcceptance::Accept
                }
                Err(refusal) => {
                    let c = match refusal {
                        Refusal::Oversized => &counters.rejected_oversized,
                        Refusal::Malformed => &counters.rejected_malformed,
                        Refusal::Invalid => &counters.rejected_invalid,
                    };
                    c.fetch_add(1, Ordering::Relaxed);
                    log::debug!("relay: rejected a message from {propagation_source}: {refusal:?}");
                    MessageAcceptance::Reject
                }
            }
        };
        self.swarm.behaviour_mut().gossipsub.report_message_validation_result(&message_id, &propagation_source, verdict);
    }

    fn on_metadata(&mut self, ev: request_response::Event<WakuMetadata, WakuMetadata>) {
        match ev {
            request_response::Event::Message { peer, message: request_response::Message::Request { request, channel, .. }, .. } => {
                let ours = WakuMetadata::ours(self.cluster_id, &self.shards);
                let answered = self.swarm.behaviour_mut().metadata.send_response(channel, ours).is_ok();
                // A request without a cluster id is answered and tolerated (light clients send
                // none); another cluster is refused once our answer is out, so that the peer
                // learns why (and, if it dialled us, stops redialling).
                if request.cluster_id.is_some() {
                    if let Err(why) = metadata::acceptable(self.cluster_id, &request) {
                        self.reject(peer, &why, answered);
                    }
                }
            }
            request_response::Event::Message { peer, message: request_response::Message::Response { response, .. }, .. } => {
                if let Err(why) = metadata::acceptable(self.cluster_id, &response) {
                    self.reject(peer, &why, false);
                }
            }
            request_response::Event::OutboundFailure { peer, error: OutboundFailure::UnsupportedProtocols, .. } => {
                // js-waku and plain gossipsub peers need not speak it; nwaku always does.
                log::debug!("relay: {peer} does not speak the metadata protocol");
            }
            request_response::Event::OutboundFailure { peer, error, .. } => log::debug!("relay: metadata query to {peer} failed: {error}"),
            request_response::Event::InboundFailure { peer, error, .. } => {
                log::debug!("relay: metadata request from {peer} failed: {error}");
                self.disconnect_if_refused(peer);
            }
            request_response::Event::ResponseSent { peer, .. } => self.disconnect_if_refused(peer),
        }
    }

    /// SDS misses these messages: those in our own cache are delivered at once, the others are
    /// asked of up to [`store::MAX_QUERY_PEERS`] connected peers (throttled per hash).
    fn retrieve(&mut self, hashes: &[MessageHash]) {
        let now = self.now_ms();
        let mut missing = Vec::new();
        for h in hashes {
            match self.cache.get(h) {
                Some(m) => {
                    let m = m.clone();
                    if self.subscriptions.contains_key(&m.content_topic) {
                        self.shared.emit(TransportEvent::Received { message: m, message_hash: Some(*h) });
                    }
                }
                None => missing.push(*h),
            }
        }
        let ask = self.cache.due_queries(&missing, now);
        if ask.is_empty() {
            return;
        }
        let peers: Vec<PeerId> = self.swarm.connected_peers().copied().take(store::MAX_QUERY_PEERS).collect();
        for group in ask.chunks(store::MAX_HASHES_PER_QUERY) {
            for peer in &peers {
                self.next_store_request += 1;
                let req = StoreQueryRequest {
                    request_id: format!("rc-{}", self.next_store_request),
                    include_data: true,
                    pubsub_topic: Some(self.shared.pubsub_topic.clone()),
                    content_topics: Vec::new(),
                    message_hashes: group.iter().map(|h| Bytes::copy_from_slice(h)).collect(),
                };
                self.swarm.behaviour_mut().store.send_request(peer, req);
                self.shared.counters.store_queries.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    fn on_store(&mut self, ev: request_response::Event<StoreQueryRequest, StoreQueryResponse>) {
        let counters = &self.shared.counters;
        match ev {
            request_response::Event::Message { message: request_response::Message::Request { request, channel, .. }, .. } => {
                // spec: relay.store — serve lookups by hash from the cache.
                let res = store::answer(&self.cache, &request, &self.shared.pubsub_topic);
                counters.store_served.fetch_add(res.messages.len() as u64, Ordering::Relaxed);
                let _ = self.swarm.behaviour_mut().store.send_response(channel, res);
            }
            request_response::Event::Message { peer, message: request_response::Message::Response { response, .. }, .. } => {
                for kv in response.messages {
                    // The hash is recomputed over our topic, never taken from the response.
                    let Some(m) = kv.message else { continue };
                    let hash = m.hash(&self.shared.pubsub_topic);
                    let size = prost::Message::encoded_len(&m);
                    match store::judge(&self.cache, &hash, &m, size) {
                        Retrieved::Accept => {
                            self.cache.found(&hash);
                            self.cache.insert(hash, m.clone(), size);
                            if self.subscriptions.contains_key(&m.content_topic) {
                                counters.store_retrieved.fetch_add(1, Ordering::Relaxed);
                                self.shared.emit(TransportEvent::Received { message: m, message_hash: Some(hash) });
                            }
                        }
                        Retrieved::Duplicate => {
                            counters.store_duplicates.fetch_add(1, Ordering::Relaxed);
                        }
                        Retrieved::Reject(why) => {
                            counters.store_rejected.fetch_add(1, Ordering::Relaxed);
                            log::warn!("relay: dropping a message of {size} bytes from {peer}'s store response: {why}");
                        }
                    }
                }
            }
            request_response::Event::OutboundFailure { peer, error: OutboundFailure::Io(e), .. }
                if matches!(e.kind(), std::io::ErrorKind::InvalidData | std::io::ErrorKind::UnexpectedEof) =>
            {
                // A response that is not a StoreQueryResponse, truncated, over the size limit or
                // with too many entries (store::check_response_shape): dropped whole.
                counters.store_rejected.fetch_add(1, Ordering::Relaxed);
                log::warn!("relay: dropping {peer}'s store response: {e}");
            }
            request_response::Event::OutboundFailure { peer, error, .. } => log::debug!("relay: store query to {peer} failed: {error}"),
            request_response::Event::InboundFailure { peer, error, .. } => {
                counters.store_rejected.fetch_add(1, Ordering::Relaxed);
                log::debug!("relay: store request from {peer} failed: {error}");
            }
            request_response::Event::ResponseSent { .. } => {}
        }
    }

    /// Refuses a peer of another cluster: forgets it if it was wanted and disconnects it, now or,
    /// with `after_response`, once the metadata answer in flight to it is sent.
    fn reject(&mut self, peer: PeerId, why: &str, after_response: bool) {
        self.shared.counters.metadata_rejected.fetch_add(1, Ordering::Relaxed);
        if let Some(w) = self.wanted.remove(&peer) {
            log::warn!("relay: dropping configured peer {}: {why}", w.addr);
        } else {
            log::info!("relay: disconnecting {peer}: {why}");
        }
        if after_response {
            self.refused.insert(peer);
        } else {
            let _ = self.swarm.disconnect_peer_id(peer);
        }
    }

    fn disconnect_if_refused(&mut self, peer: PeerId) {
        if self.refused.remove(&peer) {
            let _ = self.swarm.disconnect_peer_id(peer);
        }
    }
}

#[cfg(test)]
mod tests {
    use gossipsub::DataTransform as _;

    use super::*;

    #[test]
    fn redial_backoff_doubles_up_to_the_cap() {
        assert_eq!(backoff(0), REDIAL_INITIAL);
        assert_eq!(backoff(1), REDIAL_INITIAL * 2);
        assert_eq!(backoff(3), REDIAL_INITIAL * 8);
        assert_eq!(backoff(10), REDIAL_MAX);
        assert_eq!(backoff(u32::MAX), REDIAL_MAX);
    }

    #[test]
    fn the_transform_counts_messages_on_other_pubsub_topics() {
        let shared = Shared::for_tests();
        let t = CountingTransform { topic: TopicHash::from_raw("/waku/2/rs/42/0"), shared: Arc::clone(&shared) };
        let raw = |topic: &str| RawMessage {
            source: None,
            data: vec![1, 2],
            sequence_number: None,
            topic: TopicHash::from_raw(topic),
            signature: None,
            key: None,
            validated: false,
        };
        assert_eq!(t.inbound_transform(raw("/waku/2/rs/42/0")).unwrap().data, vec![1, 2]);
        assert_eq!(shared.counters.wrong_topic.load(Ordering::Relaxed), 0);
        t.inbound_transform(raw("/waku/2/rs/42/1")).unwrap();
        assert_eq!(shared.counters.wrong_topic.load(Ordering::Relaxed), 1);
    }
}
