//! Interop of the native relay transport with js-waku: a Waku Relay node in node.js
//! (`tests/relay_interop/relay_peer.mjs`: libp2p 2.x, gossipsub 14.1 configured as js-waku's
//! relay, js-waku's metadata service, @waku/proto, @waku/core hashes, @waku/sds), one process per
//! test, driven over stdin/stdout.
//!
//! * `js_waku_joins_our_mesh_in_both_directions` — the js node dials us; a WakuMessage we publish
//!   (marker in `meta`, payload an SDS message from our engine) is decoded by js-waku with the
//!   same hash and SDS fields; a WakuMessage js-waku publishes with an SDS message built by
//!   `@waku/sds` reaches us with the same hash and is delivered by our SDS engine; js-waku's relay
//!   pings are relayed, not delivered; js-waku's metadata query reads our cluster and shard.
//! * `we_dial_js_waku_and_survive_its_pings` — we dial the js node; traffic flows both ways, and
//!   still does after js-waku's 10 s ping interval has passed.
//! * `js_waku_relays_between_two_of_our_nodes` — two of our nodes that only know the js node talk
//!   through its gossipsub mesh (multi-hop through the other implementation).
//! * `js_waku_of_another_cluster_is_disconnected` — our metadata query finds another cluster.
//! * `js_waku_in_the_mesh_of_two_managers` — full stack, through the real configuration path: two
//!   managers (`"transport": {"kind": "relay", "peers": [<js node>]}`) whose only peer is the js
//!   node hold a reliable channel through js-waku's gossipsub (a message each way, DELIVERED);
//!   js-waku decodes our channel's WakuMessages with @waku/sds, and a message it publishes (an
//!   SDS message built by @waku/sds around our chunk frame) is RECEIVED by both managers.
//!
//! Needs Node (>= 20) and `npm ci --prefix tests/relay_interop`. Without them the tests print
//! `SKIPPED` and pass, unless `CI` is set, in which case they fail.
#![cfg(feature = "relay")]

mod node_peer;
mod relay_support;

use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use node_peer::{NodePeer, PeerScript};
use relay_support::{message, wait_for, Node, CONTENT_TOPIC, TIMEOUT};
use reliable_channel::messaging::relay::{RelayConfig, RELAY_PING_CONTENT_TOPIC};
use reliable_channel::sds::{ReceiveOutcome, SdsConfig, SdsEngine, SdsEvent};
use reliable_channel::wire::{SdsMessage, SPEC_MARKER};
use serde_json::{json, Value};

const CHANNEL: &str = "relay-interop-channel";
const T0: u64 = 1_700_000_000_000;

/// The js-waku relay node: `node tests/relay_interop/relay_peer.mjs`.
static JS_PEER: PeerScript = PeerScript {
    test: "relay_interop",
    dir: "tests/relay_interop",
    script: "tests/relay_interop/relay_peer.mjs",
    installed: &["node_modules/@chainsafe/libp2p-gossipsub/package.json", "node_modules/@waku/sds/package.json"],
    against: "js-waku",
    reply_timeout: Duration::from_secs(TIMEOUT.as_secs() + 10),
};

struct JsPeer {
    node: NodePeer,
}

impl JsPeer {
    /// Spawns the js-waku node, or returns `None` (after a loud notice) when Node or the npm
    /// packages are missing and `CI` is not set.
    fn start() -> Option<JsPeer> {
        let mut peer = JsPeer { node: NodePeer::start(&JS_PEER)? };
        let v = peer.call(json!({"cmd": "ping"}));
        assert_eq!(v["sds"], "0.0.8", "{v}");
        assert_eq!(v["gossipsub"], "14.1.1", "{v}");
        Some(peer)
    }

    /// Sends one command and returns its response; panics on `{error}` or no answer.
    fn call(&mut self, cmd: Value) -> Value {
        self.node.call(&cmd)
    }

    /// Starts the js node on `topic`; returns (peer id, first address).
    fn start_node(&mut self, topic: &str, cluster_id: u32) -> (String, String) {
        let v = self.call(json!({"cmd": "start", "pubsubTopic": topic, "clusterId": cluster_id}));
        (str_of(&v["peerId"]), str_of(&v["addrs"][0]))
    }

    fn wait_peer(&mut self, peer_id: &str) {
        self.call(json!({"cmd": "waitPeer", "peerId": peer_id, "timeoutMs": TIMEOUT.as_millis() as u64}));
    }

    fn wait_received(&mut self, count: usize) -> Vec<Value> {
        let v = self.call(json!({"cmd": "waitReceived", "count": count, "timeoutMs": TIMEOUT.as_millis() as u64}));
        v["messages"].as_array().cloned().unwrap_or_default()
    }
}

fn str_of(v: &Value) -> String {
    v.as_str().unwrap_or_else(|| panic!("expected a string, got {v}")).to_owned()
}

fn unhex(v: &Value) -> Vec<u8> {
    hex::decode(str_of(v)).expect("hex")
}

/// A WakuMessage as our channel layer sends it: the marker in `meta`, an SDS message (from our
/// engine) as payload.
fn our_sds_message(engine: &mut SdsEngine, now: u64, content: &[u8]) -> (reliable_channel::wire::WakuMessage, String) {
    let w = engine.wrap_content(now, content, None).expect("wrap_content");
    let mut m = message(CONTENT_TOPIC, &w.bytes);
    m.meta = Some(Bytes::from_static(SPEC_MARKER));
    (m, w.message_id.to_string())
}

#[test]
fn js_waku_joins_our_mesh_in_both_directions() {
    let Some(mut js) = JsPeer::start() else { return };
    let mut ours = Node::subscribed_with(RelayConfig::default());
    let topic = ours.handle.pubsub_topic().to_owned();
    let (js_id, _) = js.start_node(&topic, 42);
    js.call(json!({"cmd": "subscribe", "contentTopic": CONTENT_TOPIC}));
    js.call(json!({"cmd": "dial", "addr": ours.addr()}));
    js.wait_peer(&ours.handle.peer_id().to_string());
    wait_for("us to see the js node on the topic", || ours.stats().topic_peers == 1);

    // Ours -> js-waku.
    let mut alice = SdsEngine::new(CHANNEL, "alice", SdsConfig::default(), T0, 1);
    let (m, id) = our_sds_message(&mut alice, T0, b"hello js-waku");
    ours.publish(m.clone());
    let got = js.wait_received(1);
    let g = &got[0];
    assert_eq!(g["contentTopic"], CONTENT_TOPIC);
    assert_eq!(unhex(&g["meta"]), SPEC_MARKER);
    assert_eq!(unhex(&g["payload"]), m.payload.to_vec());
    assert_eq!(unhex(&g["hash"]), m.hash(&topic).to_vec(), "js-waku computes the same message hash");
    assert_eq!(g["sds"]["decodes"], true, "@waku/sds decodes our SDS message: {g}");
    assert_eq!(g["sds"]["messageId"], id.as_str());
    assert_eq!(g["sds"]["channelId"], CHANNEL);
    assert_eq!(g["sds"]["senderId"], "alice");
    assert_eq!(unhex(&g["sds"]["content"]), b"hello js-waku");

    // js-waku -> ours: an SDS message built by @waku/sds, published by js-waku.
    js.call(json!({"cmd": "sdsNew", "channel": CHANNEL, "sender": "bob"}));
    let ts = m.timestamp.unwrap() + 1_000_000;
    let r = js.call(json!({"cmd": "sdsSend", "contentTopic": CONTENT_TOPIC, "content": hex::encode("hello rust"), "timestampNs": ts.to_string()}));
    assert_eq!(r["recipients"], 1);
    let (wm, hash) = ours.wait_received(1, "the js-waku message")[0].clone();
    assert_eq!(hash.map(|h| h.to_vec()), Some(unhex(&r["hash"])), "we compute js-waku's message hash");
    assert_eq!(wm.payload.to_vec(), unhex(&r["wire"]));
    assert_eq!(wm.timestamp, Some(ts));
    let (sds, _) = SdsMessage::decode_bytes(wm.payload.clone()).expect("our codec decodes @waku/sds");
    assert_eq!(sds.message_id, str_of(&r["messageId"]));
    assert_eq!(alice.receive(T0 + 1, wm.payload.clone(), hash.map(|h| Bytes::copy_from_slice(&h))), ReceiveOutcome::Delivered);
    let delivered: Vec<_> = std::iter::from_fn(|| alice.poll_event())
        .filter_map(|e| match e {
            SdsEvent::Delivered(d) => Some(d),
            _ => None,
        })
        .collect();
    assert_eq!(delivered.len(), 1);
    assert_eq!((delivered[0].sender_id.as_str(), &delivered[0].content[..]), ("bob", &b"hello rust"[..]));

    // js-waku's keep-alive relay ping: relayed, counted, not delivered.
    js.call(json!({"cmd": "publish", "contentTopic": RELAY_PING_CONTENT_TOPIC, "payload": "01", "ephemeral": true}));
    wait_for("the relay ping to be counted", || ours.stats().counters.not_subscribed == 1);
    assert_eq!(ours.received().len(), 1);

    // js-waku's metadata query reads our cluster and shard; ours accepted js-waku's answer.
    let md = js.call(json!({"cmd": "metadata", "peerId": ours.handle.peer_id().to_string()}));
    assert_eq!((md["clusterId"].as_u64(), md["shards"].clone()), (Some(42), json!([0])));
    let s = ours.stats();
    assert_eq!((s.counters.metadata_rejected, s.connected_peers), (0, 1));
    assert_eq!(s.counters.rejected_malformed + s.counters.rejected_invalid + s.counters.rejected_oversized, 0);
    let state = js.call(json!({"cmd": "state"}));
    assert_eq!(state["connections"], json!([ours.handle.peer_id().to_string()]), "{state}");
    // Both grafted the other into their gossipsub mesh (on their heartbeats).
    let me = ours.handle.peer_id().to_string();
    wait_for("js-waku to mesh with us", || js.call(json!({"cmd": "state"}))["mesh"].as_array().is_some_and(|m| m.contains(&json!(me))));
    wait_for("us to mesh with js-waku", || ours.stats().mesh_peers == 1);
    let _ = js_id;
}

#[test]
fn js_waku_relays_between_two_of_our_nodes() {
    let Some(mut js) = JsPeer::start() else { return };
    let probe = Node::start(RelayConfig::default());
    let topic = probe.handle.pubsub_topic().to_owned();
    drop(probe);
    let (_, js_addr) = js.start_node(&topic, 42);
    // a and b only know the js node: everything between them crosses js-waku's gossipsub.
    let peers = vec![js_addr];
    let mut a = Node::subscribed_with(RelayConfig { peers: peers.clone(), ..RelayConfig::default() });
    let mut b = Node::subscribed_with(RelayConfig { peers, ..RelayConfig::default() });
    for n in [&a, &b] {
        js.wait_peer(&n.handle.peer_id().to_string());
    }
    let (ida, idb) = (json!(a.handle.peer_id().to_string()), json!(b.handle.peer_id().to_string()));
    wait_for("js-waku to mesh with both", || {
        let mesh = js.call(json!({"cmd": "state"}))["mesh"].clone();
        mesh.as_array().is_some_and(|m| m.contains(&ida) && m.contains(&idb))
    });
    let (ma, mb) = (message(CONTENT_TOPIC, b"a to b via js-waku"), message(CONTENT_TOPIC, b"b to a via js-waku"));
    a.publish(ma.clone());
    b.publish(mb.clone());
    assert_eq!(b.wait_received(1, "a's message via js-waku")[0].0, ma);
    assert_eq!(a.wait_received(1, "b's message via js-waku")[0].0, mb);
}

#[test]
fn we_dial_js_waku_and_survive_its_pings() {
    let Some(mut js) = JsPeer::start() else { return };
    let mut ours = Node::subscribed_with(RelayConfig::default());
    let topic = ours.handle.pubsub_topic().to_owned();
    let (_, js_addr) = js.start_node(&topic, 42);
    js.call(json!({"cmd": "subscribe", "contentTopic": CONTENT_TOPIC}));
    ours.handle.connect(&js_addr).unwrap();
    js.wait_peer(&ours.handle.peer_id().to_string());
    wait_for("us to see the js node on the topic", || ours.stats().topic_peers == 1);

    let exchange = |ours: &mut Node, js: &mut JsPeer, round: u8| {
        let m = message(CONTENT_TOPIC, &[b'r', round]);
        ours.publish(m.clone());
        let got = js.wait_received(1);
        assert_eq!(unhex(&got[0]["hash"]), m.hash(&topic).to_vec());
        let before = ours.received().len();
        let ts = 1_700_000_000_000_000_000i64 + i64::from(round);
        js.call(json!({"cmd": "publish", "contentTopic": CONTENT_TOPIC, "payload": hex::encode([b'j', round]), "timestampNs": ts.to_string()}));
        let (wm, _) = ours.wait_received(before + 1, "js-waku's message")[before].clone();
        assert_eq!(&wm.payload[..], &[b'j', round]);
    };
    exchange(&mut ours, &mut js, 1);
    // js-waku pings every 10 s and closes the connection on a failed ping: outlive two rounds.
    std::thread::sleep(Duration::from_secs(21));
    assert_eq!(ours.stats().connected_peers, 1, "the connection survived js-waku's pings");
    exchange(&mut ours, &mut js, 2);
}

#[test]
fn js_waku_of_another_cluster_is_disconnected() {
    let Some(mut js) = JsPeer::start() else { return };
    let topic = "/relay-test/interop-shared".to_owned();
    let ours = Node::start(RelayConfig { pubsub_topic: Some(topic.clone()), ..RelayConfig::default() });
    js.start_node(&topic, 7);
    js.call(json!({"cmd": "dial", "addr": ours.addr()}));
    wait_for("our metadata query to find cluster 7", || ours.stats().counters.metadata_rejected >= 1);
    wait_for("the js node to be disconnected", || ours.stats().connected_peers == 0);
}

#[test]
fn js_waku_in_the_mesh_of_two_managers() {
    use reliable_channel::channel::ChannelEvent;
    use reliable_channel::Manager;

    let Some(mut js) = JsPeer::start() else { return };
    let topic = reliable_channel::messaging::relay::static_shard_topic(42, 0);
    let (_, js_addr) = js.start_node(&topic, 42);
    js.call(json!({"cmd": "subscribe", "contentTopic": CONTENT_TOPIC}));
    let config = format!(
        r#"{{"transport": {{"kind": "relay", "listen": ["/ip4/127.0.0.1/tcp/0"], "peers": ["{js_addr}"], "clusterId": 42, "shard": 0}},
            "channelDefaults": {{"sdsConfig": {{"acknowledgementTimeoutMs": 1000, "syncIntervalMs": 1000, "maxRetransmissions": 60}},
                                 "rateLimitConfig": {{"enabled": false}}}}}}"#
    );
    let managers: Vec<(Manager, mpsc::Receiver<ChannelEvent>)> = ["alice", "bob"]
        .iter()
        .map(|who| {
            let m = Manager::from_json(Some(&config)).expect("a relay manager from the JSON configuration");
            let (tx, rx) = mpsc::channel();
            let tx = Mutex::new(tx);
            m.set_event_handler(Some(Arc::new(move |e: &reliable_channel::Event<'_>| {
                let _ = tx.lock().unwrap().send(e.event.clone());
            })))
            .unwrap();
            m.open_channel(CHANNEL, CONTENT_TOPIC, who, None).unwrap();
            (m, rx)
        })
        .collect();
    let ids: Vec<Value> = managers.iter().map(|(m, _)| json!(m.relay_listen_addresses().unwrap()[0].rsplit('/').next().unwrap())).collect();
    wait_for("js-waku to mesh with both managers", || {
        let mesh = js.call(json!({"cmd": "state"}))["mesh"].clone();
        mesh.as_array().is_some_and(|m| ids.iter().all(|id| m.contains(id)))
    });
    // Waits until every predicate matched some event (events arrive in any order between them).
    let all = |rx: &mpsc::Receiver<ChannelEvent>, what: &str, preds: &[&dyn Fn(&ChannelEvent) -> bool]| -> Vec<ChannelEvent> {
        let end = std::time::Instant::now() + TIMEOUT;
        let mut found: Vec<Option<ChannelEvent>> = vec![None; preds.len()];
        while found.iter().any(Option::is_none) {
            let left = end.saturating_duration_since(std::time::Instant::now());
            let e = rx.recv_timeout(left).unwrap_or_else(|_| panic!("timed out waiting for {what}"));
            if let Some(i) = (0..preds.len()).find(|&i| found[i].is_none() && preds[i](&e)) {
                found[i] = Some(e);
            }
        }
        found.into_iter().flatten().collect()
    };
    let received = |sender: &'static str, text: &'static [u8]| move |e: &ChannelEvent| matches!(e, ChannelEvent::Received { sender_id, payload, .. } if sender_id == sender && payload == text);

    // alice -> bob through js-waku's mesh; js-waku decodes it.
    let (alice, arx) = &managers[0];
    let (bob, brx) = &managers[1];
    let rid = alice.send(CHANNEL, b"hello bob, via js-waku", false).unwrap();
    let rid2 = bob.send(CHANNEL, b"hello alice", false).unwrap();
    let delivered = |rid: String| move |e: &ChannelEvent| matches!(e, ChannelEvent::Delivered { request_id } if *request_id == rid);
    all(brx, "bob to receive alice's message, his send DELIVERED", &[&received("alice", b"hello bob, via js-waku"), &delivered(rid2)]);
    all(arx, "alice to receive bob's message, her send DELIVERED", &[&received("bob", b"hello alice"), &delivered(rid)]);
    let seen = js.wait_received(2);
    let ours: Vec<&Value> = seen.iter().filter(|g| g["sds"]["decodes"] == true && g["sds"]["channelId"] == CHANNEL).collect();
    assert!(ours.iter().any(|g| g["sds"]["senderId"] == "alice"), "js-waku decoded alice's SDS message: {seen:?}");
    assert!(ours.iter().all(|g| unhex(&g["meta"]) == SPEC_MARKER));

    // js-waku -> both managers: @waku/sds wraps our chunk frame, js-waku publishes it.
    let frames = reliable_channel::segmentation::segment(b"hello from js-waku", 102_400, "0123456789abcdef0123", &mut rand::thread_rng()).unwrap();
    assert_eq!(frames.len(), 1);
    js.call(json!({"cmd": "sdsNew", "channel": CHANNEL, "sender": "carol-js"}));
    let ts = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    let r = js.call(json!({"cmd": "sdsSend", "contentTopic": CONTENT_TOPIC, "content": hex::encode(&frames[0]),
                           "meta": hex::encode(SPEC_MARKER), "timestampNs": ts.to_string()}));
    assert_eq!(r["recipients"], 2, "{r}");
    for (_, rx) in &managers {
        let e = all(rx, "the js-waku message", &[&received("carol-js", b"hello from js-waku")]);
        assert!(matches!(&e[0], ChannelEvent::Received { request_id, .. } if request_id == "0123456789abcdef0123"));
    }
    let s = alice.relay_stats_json().unwrap();
    assert_eq!(s["rejectedMalformed"].as_u64().unwrap() + s["rejectedInvalid"].as_u64().unwrap(), 0, "{s}");
}
