//! Shared by the relay tests: relay nodes on loopback whose sink records every event, and
//! waiting for conditions (with generous timeouts: nothing asserts on elapsed time).
#![allow(dead_code)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use parking_lot::Mutex;
use reliable_channel::messaging::relay::{RelayConfig, RelayHandle, RelayStats, RelayTransport};
use reliable_channel::messaging::{MessageHash, Transport, TransportEvent, TransportSink};
use reliable_channel::wire::WakuMessage;

/// How long any condition may take to come true (loaded 2-core CI machines are slow).
pub const TIMEOUT: Duration = Duration::from_secs(60);

/// The content topic the tests talk on.
pub const CONTENT_TOPIC: &str = "/relay-test/1/chat/proto";

/// A relay node whose sink records its events.
pub struct Node {
    pub transport: RelayTransport,
    pub handle: RelayHandle,
    pub events: Arc<Mutex<Vec<TransportEvent>>>,
    next_dispatch: u64,
}

/// A loopback relay node on an OS-chosen port with `peers`.
pub fn config(peers: &[&Node]) -> RelayConfig {
    RelayConfig { peers: peers.iter().map(|p| p.addr()).collect(), ..RelayConfig::default() }
}

impl Node {
    pub fn start(cfg: RelayConfig) -> Node {
        let events = Arc::new(Mutex::new(Vec::new()));
        let ev = Arc::clone(&events);
        let sink = TransportSink::new(move |e| ev.lock().push(e));
        let (transport, handle) = RelayTransport::new(cfg, sink).expect("relay node starts");
        Node { transport, handle, events, next_dispatch: 1 }
    }

    /// A subscribed node connected to `peers`.
    pub fn subscribed(peers: &[&Node]) -> Node {
        Node::subscribed_with(config(peers))
    }

    /// A node with `cfg`, subscribed to [`CONTENT_TOPIC`].
    pub fn subscribed_with(cfg: RelayConfig) -> Node {
        let mut n = Node::start(cfg);
        n.transport.subscribe(CONTENT_TOPIC);
        n
    }

    /// The first listen address (with /p2p/).
    pub fn addr(&self) -> String {
        self.handle.listen_addresses().first().expect("a listen address").to_string()
    }

    pub fn stats(&self) -> RelayStats {
        self.handle.stats()
    }

    /// Publishes `msg`; returns its dispatch id.
    pub fn publish(&mut self, msg: WakuMessage) -> u64 {
        let id = self.next_dispatch;
        self.next_dispatch += 1;
        self.transport.publish(id, msg);
        id
    }

    /// The messages received so far, in arrival order.
    pub fn received(&self) -> Vec<(WakuMessage, Option<MessageHash>)> {
        self.events
            .lock()
            .iter()
            .filter_map(|e| match e {
                TransportEvent::Received { message, message_hash } => Some((message.clone(), *message_hash)),
                _ => None,
            })
            .collect()
    }

    /// The outcome of dispatch `id`, if reported.
    pub fn outcome(&self, id: u64) -> Option<TransportEvent> {
        self.events
            .lock()
            .iter()
            .find(|e| matches!(e, TransportEvent::Sent { dispatch_id, .. } | TransportEvent::Failed { dispatch_id, .. } if *dispatch_id == id))
            .cloned()
    }

    /// Waits until `n` messages were received.
    pub fn wait_received(&self, n: usize, what: &str) -> Vec<(WakuMessage, Option<MessageHash>)> {
        wait_for(what, || self.received().len() >= n);
        self.received()
    }
}

/// Polls `cond` until it holds; panics naming `what` after [`TIMEOUT`].
pub fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + TIMEOUT;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Waits until every node sees every other node of `nodes` that it is connected to subscribed to
/// the pubsub topic, i.e. until publishing reaches them: `expected[i]` topic peers for node i.
pub fn wait_topic_peers(nodes: &[&Node], expected: &[usize]) {
    for (i, (n, want)) in nodes.iter().zip(expected).enumerate() {
        wait_for(&format!("node {i} to see {want} topic peers"), || n.stats().topic_peers >= *want);
    }
}

static STAMP: AtomicU64 = AtomicU64::new(1_700_000_000_000_000_000);

/// A distinct WakuMessage on `topic` (unique timestamp, so equal payloads still differ).
pub fn message(topic: &str, payload: &[u8]) -> WakuMessage {
    WakuMessage {
        payload: Bytes::copy_from_slice(payload),
        content_topic: topic.to_owned(),
        timestamp: Some(STAMP.fetch_add(1, Ordering::Relaxed) as i64),
        meta: Some(Bytes::from_static(reliable_channel::wire::SPEC_MARKER)),
        ..Default::default()
    }
}
