//! The embedded in-process Waku network: the default [`Transport`].
//!
//! # Why
//!
//! The library must work out of the box on one machine, without a Waku node: demos, examples and
//! tests run several managers (participants) in one process and let them talk through a *memory
//! network*. Every [`MemoryTransport`] created with the same network name (see
//! [`MemoryNetworkConfig::network`]) joins the same process-global network object and
//! behaves like a peer on one pubsub topic: what one endpoint publishes reaches every endpoint
//! subscribed to the message's content topic (the sender included, as on a real relay mesh, where
//! filtering echoes is the channel's job). A bounded store of recent messages answers
//! [`Transport::retrieve`] like a Waku store node would.
//!
//! Because a perfect network never exercises SDS repair, retransmission or reordering, an endpoint
//! can inject faults into what *it* publishes: per receiving endpoint, a copy can be lost,
//! duplicated, delayed or reordered, reproducibly from a seed (see [`MemoryNetworkConfig`]).
//!
//! # Threading and ownership
//!
//! * A process-global registry maps network names to `Weak` network handles; every
//!   [`MemoryTransport`] holds a strong reference to its network, so a network lives exactly as
//!   long as it has at least one endpoint (transport) and is then dropped together with its store.
//! * Undelayed copies are delivered synchronously, on the publishing thread, by calling the
//!   receivers' [`TransportSink`]s directly. No network lock is held while a sink runs (the receiver
//!   list is cloned first), so sinks may call back into any transport (including publishing).
//! * Delayed copies are handed to ONE delivery thread per network (started lazily on the first
//!   delayed copy, stopped and joined when the network is dropped). It keeps a min-heap of
//!   `(due instant, sequence)` and sleeps on a condition variable until the next copy is due.
//! * Each endpoint has a gate (a read/write lock) held in read mode while its sink is called and an
//!   `alive` flag checked under it; [`Transport::shutdown`] clears the flag and then takes the gate
//!   in write mode, i.e. waits for in-flight calls to finish. Hence after `shutdown` (or `drop`)
//!   returns, the endpoint's sink is never called again, from any thread. Sinks must therefore not
//!   block indefinitely (the seam's contract: a sink only enqueues).

use std::cell::RefCell;
use std::cmp::Ordering as CmpOrdering;
use std::collections::{BTreeMap, BinaryHeap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::thread::{JoinHandle, ThreadId};
use std::time::{Duration, Instant};

use once_cell::sync::Lazy;
use parking_lot::{Condvar, Mutex, RwLock};
use prost::Message as _;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use super::{DispatchId, MessageHash, Transport, TransportEvent, TransportSink};
use crate::collections::BoundedMap;
use crate::wire::{WakuMessage, MAX_WAKU_MESSAGE_BYTES};

/// The network name used when none is configured.
pub const DEFAULT_NETWORK: &str = "default";

/// The pubsub topic every memory network pretends to run on (used in message hashes):
/// cluster 0, shard 0 of the Waku Network's auto-sharding scheme.
pub const DEFAULT_PUBSUB_TOPIC: &str = "/waku/2/rs/0/0";

/// How many recent messages (by hash) a memory network's store keeps by default.
pub const DEFAULT_STORE_CAPACITY: usize = 4096;

/// Lower bound of the random extra delay range for a reordered copy, in milliseconds: a reordered
/// copy waits up to `2 × max(delay_ms.1, REORDER_MIN_SPREAD_MS)` extra milliseconds.
pub const REORDER_MIN_SPREAD_MS: u64 = 10;

/// Configuration of one memory-network endpoint (and, for the network-wide fields, of the
/// network it creates). Plain data: `Clone`, `Send`, `Sync`.
///
/// Network-wide fields (`pubsub_topic`, `store_capacity`) are fixed by the endpoint that creates
/// the network; a later endpoint naming the same network must agree or
/// [`MemoryTransport::new`] fails. Fault fields apply only to what the configured endpoint
/// publishes.
#[derive(Debug, Clone, PartialEq)]
pub struct MemoryNetworkConfig {
    /// Name of the network to join; endpoints of one process naming the same network share it.
    /// Default [`DEFAULT_NETWORK`].
    pub network: String,
    /// Pubsub topic used to compute message hashes. Default [`DEFAULT_PUBSUB_TOPIC`].
    pub pubsub_topic: String,
    /// Probability in `[0, 1]` that a copy sent to one receiving endpoint is dropped.
    pub loss: f64,
    /// Probability in `[0, 1]` that a (not dropped) copy is delivered twice.
    pub duplicate: f64,
    /// Probability in `[0, 1]` that a copy gets an extra random delay of up to
    /// `2 × max(delay_ms.1, REORDER_MIN_SPREAD_MS)` ms, so that it overtakes or is overtaken.
    pub reorder: f64,
    /// Base delay of every copy, uniform in `[min, max]` milliseconds (`min <= max`).
    pub delay_ms: (u64, u64),
    /// Seed of this endpoint's fault generator: equal seeds and equal traffic give equal faults.
    pub seed: u64,
    /// Capacity of the network's store of recent messages (at least 1).
    /// Default [`DEFAULT_STORE_CAPACITY`].
    pub store_capacity: usize,
}

impl Default for MemoryNetworkConfig {
    fn default() -> Self {
        MemoryNetworkConfig {
            network: DEFAULT_NETWORK.to_owned(),
            pubsub_topic: DEFAULT_PUBSUB_TOPIC.to_owned(),
            loss: 0.0,
            duplicate: 0.0,
            reorder: 0.0,
            delay_ms: (0, 0),
            seed: 1,
            store_capacity: DEFAULT_STORE_CAPACITY,
        }
    }
}

/// Why a memory-network endpoint cannot be created; the message names the `transport.*` key.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum MemoryNetworkError {
    #[error("transport.network: must not be empty")]
    EmptyNetwork,
    #[error("transport.pubsubTopic: must not be empty")]
    EmptyPubsubTopic,
    /// `loss`, `duplicate` or `reorder` outside `[0, 1]` (or NaN).
    #[error("transport.{field}: must be a probability in [0, 1], got {value}")]
    NotAProbability { field: &'static str, value: f64 },
    #[error("transport.delayMs: min ({min}) must not exceed max ({max})")]
    DelayRange { min: u64, max: u64 },
    #[error("transport.storeCapacity: must be at least 1")]
    ZeroStoreCapacity,
    /// The network exists with another pubsub topic (a network-wide setting).
    #[error("transport.pubsubTopic: network {network:?} already runs on {existing:?}, not {requested:?}")]
    PubsubTopicMismatch { network: String, existing: String, requested: String },
    /// The network exists with another store capacity (a network-wide setting).
    #[error("transport.storeCapacity: network {network:?} already has a store of {existing}, not {requested}")]
    StoreCapacityMismatch { network: String, existing: usize, requested: usize },
}

impl MemoryNetworkConfig {
    /// Checks the configuration; the error names the offending field.
    pub fn validate(&self) -> Result<(), MemoryNetworkError> {
        if self.network.is_empty() {
            return Err(MemoryNetworkError::EmptyNetwork);
        }
        if self.pubsub_topic.is_empty() {
            return Err(MemoryNetworkError::EmptyPubsubTopic);
        }
        for (field, value) in [("loss", self.loss), ("duplicate", self.duplicate), ("reorder", self.reorder)] {
            if !(0.0..=1.0).contains(&value) {
                return Err(MemoryNetworkError::NotAProbability { field, value });
            }
        }
        if self.delay_ms.0 > self.delay_ms.1 {
            return Err(MemoryNetworkError::DelayRange { min: self.delay_ms.0, max: self.delay_ms.1 });
        }
        if self.store_capacity == 0 {
            return Err(MemoryNetworkError::ZeroStoreCapacity);
        }
        Ok(())
    }
}

/// Counters of one memory network, summed over all its endpoints (see [`network_stats`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NetworkStats {
    /// Messages accepted by `publish`.
    pub published: u64,
    /// Copies handed to a receiver's sink (retrieval answers not included).
    pub delivered: u64,
    /// Copies dropped by injected loss.
    pub dropped: u64,
    /// Extra copies created by injected duplication.
    pub duplicated: u64,
    /// Copies scheduled with a delay > 0 (delivered later by the delivery thread).
    pub delayed: u64,
}

/// A snapshot of the counters of the live network named `name`, or `None` when no endpoint
/// currently belongs to such a network. Callable from any thread.
pub fn network_stats(name: &str) -> Option<NetworkStats> {
    let net = REGISTRY.lock().get(name).and_then(Weak::upgrade)?;
    Some(net.stats.snapshot())
}

// ---------------------------------------------------------------------------------------------
// Registry

static REGISTRY: Lazy<Mutex<HashMap<String, Weak<Network>>>> = Lazy::new(|| Mutex::new(HashMap::new()));

static NEXT_ENDPOINT_ID: AtomicU64 = AtomicU64::new(1);

/// Joins the network named in `cfg`, creating it when absent.
fn join_network(cfg: &MemoryNetworkConfig) -> Result<Arc<Network>, MemoryNetworkError> {
    let mut reg = REGISTRY.lock();
    reg.retain(|_, w| w.strong_count() > 0);
    if let Some(net) = reg.get(&cfg.network).and_then(Weak::upgrade) {
        if net.pubsub_topic != cfg.pubsub_topic {
            return Err(MemoryNetworkError::PubsubTopicMismatch {
                network: cfg.network.clone(),
                existing: net.pubsub_topic.clone(),
                requested: cfg.pubsub_topic.clone(),
            });
        }
        if net.store_capacity != cfg.store_capacity {
            return Err(MemoryNetworkError::StoreCapacityMismatch {
                network: cfg.network.clone(),
                existing: net.store_capacity,
                requested: cfg.store_capacity,
            });
        }
        return Ok(net);
    }
    let net = Arc::new(Network {
        pubsub_topic: cfg.pubsub_topic.clone(),
        store_capacity: cfg.store_capacity,
        state: Mutex::new(NetState::default()),
        stats: Arc::new(Stats::default()),
        scheduler: Arc::new(Scheduler::default()),
    });
    reg.insert(cfg.network.clone(), Arc::downgrade(&net));
    Ok(net)
}

// ---------------------------------------------------------------------------------------------
// Network

struct Network {
    pubsub_topic: String,
    store_capacity: usize,
    state: Mutex<NetState>,
    stats: Arc<Stats>,
    scheduler: Arc<Scheduler>,
}

#[derive(Default)]
struct NetState {
    /// Endpoints by id (ids grow with join order, so iteration order is deterministic).
    endpoints: BTreeMap<u64, Arc<Endpoint>>,
    store: Option<BoundedMap<MessageHash, WakuMessage>>,
}

impl Network {
    fn store(&self, st: &mut NetState, hash: MessageHash, msg: &WakuMessage) {
        let store = st.store.get_or_insert_with(|| BoundedMap::new(self.store_capacity));
        if !store.contains(&hash) {
            store.insert(hash, msg.clone(), &mut None);
        }
    }
}

impl Drop for Network {
    fn drop(&mut self) {
        self.scheduler.stop();
    }
}

#[derive(Default)]
struct Stats {
    published: AtomicU64,
    delivered: AtomicU64,
    dropped: AtomicU64,
    duplicated: AtomicU64,
    delayed: AtomicU64,
}

impl Stats {
    fn snapshot(&self) -> NetworkStats {
        NetworkStats {
            published: self.published.load(Ordering::Relaxed),
            delivered: self.delivered.load(Ordering::Relaxed),
            dropped: self.dropped.load(Ordering::Relaxed),
            duplicated: self.duplicated.load(Ordering::Relaxed),
            delayed: self.delayed.load(Ordering::Relaxed),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Endpoint

struct Endpoint {
    id: u64,
    sink: TransportSink,
    /// Held in read mode while the sink runs; taken in write mode by shutdown to wait them out.
    gate: RwLock<()>,
    alive: AtomicBool,
    /// Subscription reference counts by content topic.
    topics: Mutex<HashMap<String, usize>>,
}

thread_local! {
    /// Endpoints whose sink the current thread is inside of (to make shutdown from inside one's
    /// own sink not wait for itself).
    static IN_SINK: RefCell<Vec<u64>> = const { RefCell::new(Vec::new()) };
}

impl Endpoint {
    fn is_subscribed(&self, topic: &str) -> bool {
        self.topics.lock().get(topic).is_some_and(|&n| n > 0)
    }

    /// Calls the sink unless the endpoint is shut down. Returns whether it was called.
    fn emit(&self, ev: TransportEvent) -> bool {
        // read_recursive: a sink may (through other transports) re-enter delivery to this same
        // endpoint on this thread while a shutdown on another thread waits for the write lock.
        let _g = self.gate.read_recursive();
        if !self.alive.load(Ordering::Acquire) {
            return false;
        }
        IN_SINK.with(|s| s.borrow_mut().push(self.id));
        struct Pop;
        impl Drop for Pop {
            fn drop(&mut self) {
                IN_SINK.with(|s| {
                    s.borrow_mut().pop();
                });
            }
        }
        let _pop = Pop;
        self.sink.emit(ev);
        true
    }

    /// Makes `emit` a no-op and waits for sink calls in flight on other threads.
    fn kill(&self) {
        self.alive.store(false, Ordering::Release);
        let reentrant = IN_SINK.with(|s| s.borrow().contains(&self.id));
        if !reentrant {
            drop(self.gate.write());
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Delivery thread

struct Scheduled {
    due: Instant,
    seq: u64,
    endpoint: Arc<Endpoint>,
    message: WakuMessage,
    hash: MessageHash,
}

impl PartialEq for Scheduled {
    fn eq(&self, other: &Self) -> bool {
        self.due == other.due && self.seq == other.seq
    }
}
impl Eq for Scheduled {}
impl PartialOrd for Scheduled {
    fn partial_cmp(&self, other: &Self) -> Option<CmpOrdering> {
        Some(self.cmp(other))
    }
}
impl Ord for Scheduled {
    /// Reversed, so that `BinaryHeap` (a max-heap) pops the earliest `(due, seq)` first.
    fn cmp(&self, other: &Self) -> CmpOrdering {
        (other.due, other.seq).cmp(&(self.due, self.seq))
    }
}

#[derive(Default)]
struct Scheduler {
    state: Mutex<SchedState>,
    cond: Condvar,
}

#[derive(Default)]
struct SchedState {
    heap: BinaryHeap<Scheduled>,
    seq: u64,
    stop: bool,
    thread: Option<(JoinHandle<()>, ThreadId)>,
}

impl Scheduler {
    fn schedule(self: &Arc<Self>, stats: &Arc<Stats>, delay: Duration, endpoint: Arc<Endpoint>, message: WakuMessage, hash: MessageHash) {
        let mut st = self.state.lock();
        if st.stop {
            return;
        }
        st.seq += 1;
        let seq = st.seq;
        st.heap.push(Scheduled { due: Instant::now() + delay, seq, endpoint, message, hash });
        if st.thread.is_none() {
            let sched = Arc::clone(self);
            let stats = Arc::clone(stats);
            let spawned = std::thread::Builder::new().name("rc-memnet-delivery".to_owned()).spawn(move || sched.run(&stats));
            match spawned {
                Ok(h) => {
                    let id = h.thread().id();
                    st.thread = Some((h, id));
                }
                Err(_) => {
                    // Cannot spawn: the copy is lost, as on a real network under pressure.
                    st.heap.pop();
                    return;
                }
            }
        }
        self.cond.notify_one();
    }

    fn run(&self, stats: &Stats) {
        let mut st = self.state.lock();
        loop {
            if st.stop {
                return;
            }
            let now = Instant::now();
            match st.heap.peek().map(|top| top.due) {
                None => self.cond.wait(&mut st),
                Some(due) if due <= now => {
                    let item = st.heap.pop().expect("peeked");
                    parking_lot::MutexGuard::unlocked(&mut st, || {
                        // Counted before the receiver can observe the copy (and taken back if
                        // the endpoint is gone), so that stats never lag behind deliveries.
                        if item.endpoint.is_subscribed(&item.message.content_topic) {
                            stats.delivered.fetch_add(1, Ordering::Relaxed);
                            if !item.endpoint.emit(TransportEvent::Received { message: item.message, message_hash: Some(item.hash) }) {
                                stats.delivered.fetch_sub(1, Ordering::Relaxed);
                            }
                        }
                    });
                }
                Some(due) => {
                    self.cond.wait_until(&mut st, due);
                }
            }
        }
    }

    fn stop(&self) {
        let thread = {
            let mut st = self.state.lock();
            st.stop = true;
            st.heap.clear();
            st.thread.take()
        };
        self.cond.notify_all();
        if let Some((h, id)) = thread {
            if std::thread::current().id() != id {
                let _ = h.join();
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Transport

/// One participant endpoint on a memory network; implements [`Transport`].
///
/// Owned by one thread at a time (the runtime thread); `Send + Sync`. It keeps its network alive;
/// dropping it shuts it down (see [`Transport::shutdown`]). Events go to the [`TransportSink`]
/// given to [`MemoryTransport::new`], from the publishing thread of any endpoint of the network
/// or from the network's delivery thread.
pub struct MemoryTransport {
    network: Arc<Network>,
    endpoint: Arc<Endpoint>,
    rng: Mutex<SmallRng>,
    loss: f64,
    duplicate: f64,
    reorder: f64,
    delay_ms: (u64, u64),
    shut_down: bool,
}

impl std::fmt::Debug for MemoryTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryTransport")
            .field("endpoint", &self.endpoint.id)
            .field("pubsub_topic", &self.network.pubsub_topic)
            .field("shut_down", &self.shut_down)
            .finish()
    }
}

impl MemoryTransport {
    /// Validates `cfg` and joins (or creates) the network it names, as a new endpoint delivering
    /// its events to `sink`. Fails with a message naming the field when `cfg` is invalid or
    /// disagrees with the existing network's pubsub topic or store capacity.
    pub fn new(cfg: MemoryNetworkConfig, sink: TransportSink) -> Result<MemoryTransport, MemoryNetworkError> {
        cfg.validate()?;
        let network = join_network(&cfg)?;
        let endpoint = Arc::new(Endpoint {
            id: NEXT_ENDPOINT_ID.fetch_add(1, Ordering::Relaxed),
            sink,
            gate: RwLock::new(()),
            alive: AtomicBool::new(true),
            topics: Mutex::new(HashMap::new()),
        });
        network.state.lock().endpoints.insert(endpoint.id, Arc::clone(&endpoint));
        Ok(MemoryTransport {
            network,
            endpoint,
            rng: Mutex::new(SmallRng::seed_from_u64(cfg.seed)),
            loss: cfg.loss,
            duplicate: cfg.duplicate,
            reorder: cfg.reorder,
            delay_ms: cfg.delay_ms,
            shut_down: false,
        })
    }

    /// The pubsub topic of this endpoint's network (the one message hashes are computed with).
    pub fn pubsub_topic(&self) -> &str {
        &self.network.pubsub_topic
    }

    /// Draws the fate of one copy for one receiver: the delays of the copies to deliver
    /// (empty = lost, two entries = duplicated).
    fn draw_copies(&self, rng: &mut SmallRng) -> Vec<Duration> {
        if self.loss > 0.0 && rng.gen::<f64>() < self.loss {
            return Vec::new();
        }
        let copies = if self.duplicate > 0.0 && rng.gen::<f64>() < self.duplicate { 2 } else { 1 };
        (0..copies)
            .map(|_| {
                let (lo, hi) = self.delay_ms;
                let mut ms = if hi > lo { rng.gen_range(lo..=hi) } else { lo };
                if self.reorder > 0.0 && rng.gen::<f64>() < self.reorder {
                    let spread = 2 * hi.max(REORDER_MIN_SPREAD_MS);
                    ms += rng.gen_range(1..=spread);
                }
                Duration::from_millis(ms)
            })
            .collect()
    }
}

impl Transport for MemoryTransport {
    /// Reports `Sent` (or `Failed` for a message larger than `MAX_WAKU_MESSAGE_BYTES` encoded),
    /// stores the message, then delivers it to every endpoint subscribed to its content topic,
    /// applying this endpoint's faults per receiver. Does nothing after shutdown.
    fn publish(&mut self, dispatch_id: DispatchId, message: WakuMessage) {
        if self.shut_down {
            return;
        }
        let size = message.encoded_len();
        if size > MAX_WAKU_MESSAGE_BYTES {
            self.endpoint.emit(TransportEvent::Failed {
                dispatch_id,
                error: format!("message of {size} bytes exceeds the {MAX_WAKU_MESSAGE_BYTES}-byte limit"),
            });
            return;
        }
        let net = &self.network;
        let hash = message.hash(&net.pubsub_topic);
        net.stats.published.fetch_add(1, Ordering::Relaxed);
        self.endpoint.emit(TransportEvent::Sent { dispatch_id, message_hash: Some(hash) });

        let receivers: Vec<Arc<Endpoint>> = {
            let mut st = net.state.lock();
            net.store(&mut st, hash, &message);
            st.endpoints.values().filter(|ep| ep.is_subscribed(&message.content_topic)).cloned().collect()
        };

        // Draw every fate first (one lock of the generator), then deliver with no lock held.
        let plan: Vec<(Arc<Endpoint>, Vec<Duration>)> = {
            let mut rng = self.rng.lock();
            receivers
                .into_iter()
                .map(|ep| {
                    let copies = self.draw_copies(&mut rng);
                    (ep, copies)
                })
                .collect()
        };
        for (ep, copies) in plan {
            match copies.len() {
                0 => {
                    net.stats.dropped.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                2 => {
                    net.stats.duplicated.fetch_add(1, Ordering::Relaxed);
                }
                _ => {}
            }
            for delay in copies {
                if delay.is_zero() {
                    net.stats.delivered.fetch_add(1, Ordering::Relaxed);
                    if !ep.emit(TransportEvent::Received { message: message.clone(), message_hash: Some(hash) }) {
                        net.stats.delivered.fetch_sub(1, Ordering::Relaxed);
                    }
                } else {
                    net.stats.delayed.fetch_add(1, Ordering::Relaxed);
                    net.scheduler.schedule(&net.stats, delay, Arc::clone(&ep), message.clone(), hash);
                }
            }
        }
    }

    /// Increments this endpoint's subscription count for `content_topic`.
    fn subscribe(&mut self, content_topic: &str) {
        *self.endpoint.topics.lock().entry(content_topic.to_owned()).or_insert(0) += 1;
    }

    /// Decrements the subscription count; at zero, copies on `content_topic` (including delayed
    /// ones not yet delivered) no longer reach this endpoint.
    fn unsubscribe(&mut self, content_topic: &str) {
        let mut topics = self.endpoint.topics.lock();
        if let Some(n) = topics.get_mut(content_topic) {
            *n -= 1;
            if *n == 0 {
                topics.remove(content_topic);
            }
        }
    }

    /// Every memory network runs a store (of `store_capacity` recent messages).
    fn has_store(&self) -> bool {
        true
    }

    /// Delivers, synchronously and to this endpoint only, every stored message among `hashes`
    /// whose content topic is `content_topic` (no faults; unknown or evicted hashes are skipped).
    fn retrieve(&mut self, content_topic: &str, hashes: &[MessageHash]) {
        if self.shut_down {
            return;
        }
        let found: Vec<(MessageHash, WakuMessage)> = {
            let st = self.network.state.lock();
            hashes
                .iter()
                .filter_map(|h| st.store.as_ref().and_then(|s| s.get(h)).filter(|m| m.content_topic == content_topic).map(|m| (*h, m.clone())))
                .collect()
        };
        for (hash, message) in found {
            self.endpoint.emit(TransportEvent::Received { message, message_hash: Some(hash) });
        }
    }

    /// Detaches the endpoint from its network. After it returns, this endpoint's sink is never
    /// called again (it waits for calls in flight on other threads). Idempotent.
    fn shutdown(&mut self) {
        if self.shut_down {
            return;
        }
        self.shut_down = true;
        self.network.state.lock().endpoints.remove(&self.endpoint.id);
        self.endpoint.kill();
    }
}

impl Drop for MemoryTransport {
    fn drop(&mut self) {
        self.shutdown();
    }
}
