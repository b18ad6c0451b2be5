//! [`RelayConfig`] (plain data), its validation, and [`RelayError`].

use libp2p::identity::{secp256k1, Keypair};
use libp2p::multiaddr::Protocol;
use libp2p::{Multiaddr, PeerId};

/// The cluster id used when none is configured. Cluster 1 is The Waku Network, which requires RLN
/// proofs this library does not produce; a private cluster keeps test and RLN-less deployments
/// apart from it (see `/work/shared/reference/waku-relay.md` "Networks").
pub const DEFAULT_CLUSTER_ID: u32 = 42;

/// Per-peer inbound budget (messages per second, also the burst) used when none is configured.
/// A relay mesh forwards everyone's traffic through a few peers, so this is per *neighbour*, not
/// per author; it only exists to bound what one hostile neighbour can push into the runtime.
pub const DEFAULT_PEER_MESSAGES_PER_SEC: u32 = 2_000;

/// Per-peer inbound budget in bytes per second (also the burst) used when none is configured.
pub const DEFAULT_PEER_BYTES_PER_SEC: u64 = 32 * 1024 * 1024;

/// How many peers may be connected at once (nwaku's default `max-connections` is 50). Inbound
/// connections beyond it are closed at once; configured peers count too.
pub const DEFAULT_MAX_PEERS: usize = 50;

/// Configuration of one relay node. Plain data: `Clone`, `Send`, `Sync`; every field is checked
/// by [`RelayConfig::validate`] and errors name the JSON key phase B maps them to
/// (`transport.listen[1]`, `transport.nodeKey`, ...).
#[derive(Debug, Clone, PartialEq)]
pub struct RelayConfig {
    /// Multiaddrs to listen on (`/ip4/0.0.0.0/tcp/60000`; port 0 picks a free port). May be empty
    /// (a dial-only node).
    pub listen: Vec<String>,
    /// Peers to dial at start and to keep connected (redialled with backoff): multiaddrs ending
    /// in `/p2p/<peer id>`.
    pub peers: Vec<String>,
    /// The Waku cluster id, announced and checked by the metadata protocol.
    pub cluster_id: u32,
    /// The shard within the cluster; the pubsub topic is `/waku/2/rs/<cluster>/<shard>`.
    pub shard: u16,
    /// An explicit pubsub topic instead of `cluster_id` + `shard` (a `/waku/2/rs/C/S` topic must
    /// agree with `cluster_id`).
    pub pubsub_topic: Option<String>,
    /// The node's secp256k1 secret key as 64 hex digits; `None` generates a fresh identity
    /// (see [`generate_node_key`] for keeping one across restarts).
    pub node_key: Option<String>,
    /// Maximum number of connected peers.
    pub max_peers: usize,
    /// Per-peer inbound budget in messages per second (0 = unlimited).
    pub peer_messages_per_sec: u32,
    /// Per-peer inbound budget in bytes per second (0 = unlimited).
    pub peer_bytes_per_sec: u64,
    /// Test-only fault: probability in `[0, 1]` that a message this node publishes is not sent at
    /// all (it is still reported `Sent`, as a message lost in the network would be). TCP hides
    /// packet loss, so SDS repair over a relay is exercised with this.
    pub loss: f64,
    /// Test-only fault: probability in `[0, 1]` that a message this node publishes is sent twice
    /// (the second copy differs in an unknown protobuf field, so gossipsub does not deduplicate it
    /// while every receiver decodes the same WakuMessage with the same hash).
    pub duplicate: f64,
    /// Seed of the fault generator: equal seeds and equal traffic give equal faults.
    pub seed: u64,
}

impl Default for RelayConfig {
    fn default() -> Self {
        RelayConfig {
            listen: vec!["/ip4/127.0.0.1/tcp/0".to_owned()],
            peers: Vec::new(),
            cluster_id: DEFAULT_CLUSTER_ID,
            shard: 0,
            pubsub_topic: None,
            node_key: None,
            max_peers: DEFAULT_MAX_PEERS,
            peer_messages_per_sec: DEFAULT_PEER_MESSAGES_PER_SEC,
            peer_bytes_per_sec: DEFAULT_PEER_BYTES_PER_SEC,
            loss: 0.0,
            duplicate: 0.0,
            seed: 1,
        }
    }
}

/// Why a relay node could not be configured or started, or a call on it failed. Each variant
/// names the offending key or address: phase B maps `Config` variants to `RC_ERR_CONFIG` and
/// `Listen`/`Runtime`/`ShutDown` to `RC_ERR_TRANSPORT`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RelayError {
    /// A configuration value is invalid.
    #[error("{key}: {reason}")]
    Config {
        /// The configuration key, e.g. `transport.peers[2]`.
        key: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A listen address could not be bound (busy port, address not on this host, ...).
    #[error("transport.listen: cannot listen on {addr}: {reason}")]
    Listen {
        /// The listen address as configured.
        addr: String,
        /// The operating system's or libp2p's reason.
        reason: String,
    },
    /// The node's thread or runtime could not be started.
    #[error("relay: cannot start: {0}")]
    Runtime(String),
    /// The node was shut down.
    #[error("relay: the transport is shut down")]
    ShutDown,
}

impl RelayError {
    pub(crate) fn config(key: impl Into<String>, reason: impl Into<String>) -> Self {
        RelayError::Config { key: key.into(), reason: reason.into() }
    }
}

/// What [`RelayConfig::validate`] derives: everything the node needs, parsed.
pub(crate) struct Resolved {
    pub listen: Vec<(String, Multiaddr)>,
    pub peers: Vec<(Multiaddr, PeerId)>,
    pub pubsub_topic: String,
    /// Shards announced in the metadata protocol (empty for a named, unsharded topic).
    pub shards: Vec<u32>,
    pub keypair: Keypair,
}

/// The keys of a relay `"transport"` object in the manager's JSON configuration.
pub const JSON_KEYS: &[&str] = &[
    "kind",
    "listen",
    "peers",
    "clusterId",
    "shard",
    "pubsubTopic",
    "nodeKey",
    "maxPeers",
    "peerMessagesPerSec",
    "peerBytesPerSec",
    "loss",
    "duplicate",
    "seed",
];

/// The most peers `maxPeers` may allow.
pub const MAX_MAX_PEERS: u64 = 10_000;

impl RelayConfig {
    /// Parses the manager's `"transport": {"kind": "relay", ...}` object (keys in [`JSON_KEYS`],
    /// absent keys keep their defaults) and validates it. Errors name the key
    /// (`transport.peers[1]`, `transport.clusterId`, ...), ready for `RC_ERR_CONFIG`.
    pub fn from_json(v: &serde_json::Value) -> Result<RelayConfig, RelayError> {
        use serde_json::Value;
        let key = |k: &str| format!("transport.{k}");
        let obj = v.as_object().ok_or_else(|| RelayError::config("transport", "expected an object"))?;
        if let Some(k) = obj.keys().find(|k| !JSON_KEYS.contains(&k.as_str())) {
            return Err(RelayError::config(key(k), format!("unknown key (expected one of {})", JSON_KEYS.join(", "))));
        }
        let uint = |k: &str, max: u64| -> Result<Option<u64>, RelayError> {
            obj.get(k)
                .map(|x| x.as_u64().filter(|n| *n <= max).ok_or_else(|| RelayError::config(key(k), format!("expected an integer in [0, {max}]"))))
                .transpose()
        };
        let strings = |k: &str| -> Result<Option<Vec<String>>, RelayError> {
            obj.get(k)
                .map(|x| {
                    x.as_array()
                        .and_then(|a| a.iter().map(|s| s.as_str().map(str::to_owned)).collect::<Option<Vec<_>>>())
                        .ok_or_else(|| RelayError::config(key(k), "expected an array of multiaddr strings"))
                })
                .transpose()
        };
        let string = |k: &str| -> Result<Option<String>, RelayError> {
            obj.get(k).map(|x| x.as_str().map(str::to_owned).ok_or_else(|| RelayError::config(key(k), "expected a string"))).transpose()
        };
        let probability = |k: &str| -> Result<Option<f64>, RelayError> {
            obj.get(k).map(|x| x.as_f64().ok_or_else(|| RelayError::config(key(k), "expected a number in [0, 1]"))).transpose()
        };
        if obj.get("kind").is_some_and(|k| k != &Value::from("relay")) {
            return Err(RelayError::config("transport.kind", "expected \"relay\""));
        }
        if obj.contains_key("shard") && obj.contains_key("pubsubTopic") {
            return Err(RelayError::config("transport.pubsubTopic", "give either shard or pubsubTopic, not both"));
        }
        let d = RelayConfig::default();
        let cfg = RelayConfig {
            listen: strings("listen")?.unwrap_or(d.listen),
            peers: strings("peers")?.unwrap_or(d.peers),
            cluster_id: uint("clusterId", u64::from(u32::MAX))?.map_or(d.cluster_id, |n| n as u32),
            shard: uint("shard", u64::from(u16::MAX))?.map_or(d.shard, |n| n as u16),
            pubsub_topic: string("pubsubTopic")?,
            node_key: string("nodeKey")?,
            max_peers: uint("maxPeers", MAX_MAX_PEERS)?.map_or(d.max_peers, |n| n as usize),
            peer_messages_per_sec: uint("peerMessagesPerSec", u64::from(u32::MAX))?.map_or(d.peer_messages_per_sec, |n| n as u32),
            peer_bytes_per_sec: uint("peerBytesPerSec", u64::MAX)?.unwrap_or(d.peer_bytes_per_sec),
            loss: probability("loss")?.unwrap_or(d.loss),
            duplicate: probability("duplicate")?.unwrap_or(d.duplicate),
            seed: uint("seed", u64::MAX)?.unwrap_or(d.seed),
        };
        cfg.validate()?;
        Ok(cfg)
    }

    /// The pubsub topic this node relays on.
    pub fn resolved_pubsub_topic(&self) -> String {
        self.pubsub_topic.clone().unwrap_or_else(|| static_shard_topic(self.cluster_id, self.shard))
    }

    /// Checks every field; the error names the first offending key.
    pub fn validate(&self) -> Result<(), RelayError> {
        self.resolve().map(|_| ())
    }

    pub(crate) fn resolve(&self) -> Result<Resolved, RelayError> {
        let mut listen = Vec::with_capacity(self.listen.len());
        for (i, a) in self.listen.iter().enumerate() {
            let addr = parse_multiaddr(&format!("transport.listen[{i}]"), a)?;
            if addr.iter().any(|p| matches!(p, Protocol::P2p(_))) {
                return Err(RelayError::config(format!("transport.listen[{i}]"), format!("{a:?} must not name a peer id (/p2p/)")));
            }
            listen.push((a.clone(), addr));
        }
        let mut peers = Vec::with_capacity(self.peers.len());
        for (i, a) in self.peers.iter().enumerate() {
            peers.push(parse_peer_addr(&format!("transport.peers[{i}]"), a)?);
        }
        let pubsub_topic = self.resolved_pubsub_topic();
        if pubsub_topic.is_empty() {
            return Err(RelayError::config("transport.pubsubTopic", "must not be empty"));
        }
        let shards = match parse_static_shard_topic(&pubsub_topic) {
            Some((cluster, _)) if cluster != self.cluster_id => {
                return Err(RelayError::config(
                    "transport.pubsubTopic",
                    format!("{pubsub_topic:?} is on cluster {cluster}, but transport.clusterId is {}", self.cluster_id),
                ));
            }
            Some((_, shard)) => vec![u32::from(shard)],
            None => Vec::new(),
        };
        if self.max_peers == 0 {
            return Err(RelayError::config("transport.maxPeers", "must be at least 1"));
        }
        for (key, p) in [("transport.loss", self.loss), ("transport.duplicate", self.duplicate)] {
            if !(0.0..=1.0).contains(&p) {
                return Err(RelayError::config(key, format!("must be a probability in [0, 1], got {p}")));
            }
        }
        let keypair = match &self.node_key {
            Some(hex) => parse_node_key(hex)?,
            None => Keypair::generate_secp256k1(),
        };
        Ok(Resolved { listen, peers, pubsub_topic, shards, keypair })
    }
}

/// The static-sharding pubsub topic of a cluster and shard: `/waku/2/rs/<cluster>/<shard>`.
pub fn static_shard_topic(cluster_id: u32, shard: u16) -> String {
    format!("/waku/2/rs/{cluster_id}/{shard}")
}

/// `Some((cluster, shard))` when `topic` is a static-sharding topic `/waku/2/rs/<cluster>/<shard>`.
pub fn parse_static_shard_topic(topic: &str) -> Option<(u32, u16)> {
    let rest = topic.strip_prefix("/waku/2/rs/")?;
    let (cluster, shard) = rest.split_once('/')?;
    Some((cluster.parse().ok()?, shard.parse().ok()?))
}

/// A fresh secp256k1 node key as 64 hex digits: the hook for keeping a peer id across restarts
/// (phase B stores it under `storage.path` and passes it back as [`RelayConfig::node_key`]).
pub fn generate_node_key() -> String {
    match Keypair::generate_secp256k1().try_into_secp256k1() {
        Ok(kp) => hex::encode(kp.secret().to_bytes()),
        // generate_secp256k1 always yields a secp256k1 keypair.
        Err(_) => unreachable!("a generated secp256k1 keypair is secp256k1"),
    }
}

/// The peer id a node key (64 hex digits) gives.
pub fn peer_id_of_node_key(hex_key: &str) -> Result<PeerId, RelayError> {
    Ok(parse_node_key(hex_key)?.public().to_peer_id())
}

fn parse_node_key(hex_key: &str) -> Result<Keypair, RelayError> {
    let bad = |reason: &str| RelayError::config("transport.nodeKey", reason.to_owned());
    let mut bytes = hex::decode(hex_key.trim_start_matches("0x")).map_err(|_| bad("must be 64 hex digits (a secp256k1 secret key)"))?;
    if bytes.len() != 32 {
        return Err(bad("must be 64 hex digits (a secp256k1 secret key)"));
    }
    let secret = secp256k1::SecretKey::try_from_bytes(&mut bytes).map_err(|_| bad("is not a valid secp256k1 secret key"))?;
    Ok(Keypair::from(secp256k1::Keypair::from(secret)))
}

fn parse_multiaddr(key: &str, s: &str) -> Result<Multiaddr, RelayError> {
    s.parse::<Multiaddr>().map_err(|e| RelayError::config(key, format!("{s:?} is not a multiaddr: {e}")))
}

/// Parses a peer address: a multiaddr ending in `/p2p/<peer id>`.
pub(crate) fn parse_peer_addr(key: &str, s: &str) -> Result<(Multiaddr, PeerId), RelayError> {
    let addr = parse_multiaddr(key, s)?;
    match addr.iter().last() {
        Some(Protocol::P2p(peer)) => Ok((addr, peer)),
        _ => Err(RelayError::config(key, format!("{s:?} must end in /p2p/<peer id>"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_from_cluster_and_shard_and_back() {
        let cfg = RelayConfig { cluster_id: 7, shard: 3, ..RelayConfig::default() };
        assert_eq!(cfg.resolved_pubsub_topic(), "/waku/2/rs/7/3");
        assert_eq!(parse_static_shard_topic("/waku/2/rs/7/3"), Some((7, 3)));
        assert_eq!(parse_static_shard_topic("/waku/2/default-waku/proto"), None);
        assert_eq!(parse_static_shard_topic("/waku/2/rs/7/70000"), None);
    }

    #[test]
    fn errors_name_the_key() {
        let err = |cfg: RelayConfig| cfg.validate().unwrap_err().to_string();
        let base = RelayConfig::default;
        assert!(err(RelayConfig { listen: vec!["/ip4/127.0.0.1/tcp/0".into(), "nonsense".into()], ..base() }).starts_with("transport.listen[1]:"));
        assert!(err(RelayConfig { peers: vec!["/ip4/127.0.0.1/tcp/1".into()], ..base() }).starts_with("transport.peers[0]: "));
        assert!(err(RelayConfig { node_key: Some("abcd".into()), ..base() }).starts_with("transport.nodeKey:"));
        assert!(err(RelayConfig { node_key: Some("00".repeat(32)), ..base() }).contains("not a valid secp256k1"));
        assert!(err(RelayConfig { pubsub_topic: Some("/waku/2/rs/1/0".into()), ..base() }).contains("cluster 1"));
        assert!(err(RelayConfig { loss: 1.5, ..base() }).starts_with("transport.loss:"));
        assert!(err(RelayConfig { max_peers: 0, ..base() }).starts_with("transport.maxPeers:"));
    }

    #[test]
    fn node_key_round_trip_gives_a_stable_peer_id() {
        let key = generate_node_key();
        assert_eq!(key.len(), 64);
        let a = peer_id_of_node_key(&key).unwrap();
        let r = RelayConfig { node_key: Some(key.clone()), ..RelayConfig::default() }.resolve().unwrap();
        assert_eq!(r.keypair.public().to_peer_id(), a);
        assert_ne!(peer_id_of_node_key(&generate_node_key()).unwrap(), a);
    }

    #[test]
    fn from_json_reads_every_key_and_names_bad_ones() {
        let key = generate_node_key();
        let peer = format!("/ip4/127.0.0.1/tcp/60001/p2p/{}", peer_id_of_node_key(&generate_node_key()).unwrap());
        let cfg = RelayConfig::from_json(&serde_json::json!({
            "kind": "relay", "listen": ["/ip4/0.0.0.0/tcp/60000"], "clusterId": 7, "shard": 2, "nodeKey": key, "peers": [peer],
            "maxPeers": 9, "peerMessagesPerSec": 0, "peerBytesPerSec": 5, "loss": 0.5, "duplicate": 0.25, "seed": 3
        }))
        .unwrap();
        assert_eq!((&cfg.listen, &cfg.peers), (&vec!["/ip4/0.0.0.0/tcp/60000".to_owned()], &vec![peer]));
        assert_eq!((cfg.cluster_id, cfg.shard, cfg.resolved_pubsub_topic()), (7, 2, "/waku/2/rs/7/2".to_owned()));
        assert_eq!((cfg.max_peers, cfg.peer_messages_per_sec, cfg.peer_bytes_per_sec, cfg.seed), (9, 0, 5, 3));
        assert_eq!((cfg.loss, cfg.duplicate, cfg.node_key), (0.5, 0.25, Some(key)));
        assert_eq!(RelayConfig::from_json(&serde_json::json!({"kind": "relay"})).unwrap(), RelayConfig::default());
        let err = |v: serde_json::Value| RelayConfig::from_json(&v).unwrap_err().to_string();
        assert!(err(serde_json::json!({"port": 1})).starts_with("transport.port: unknown key"));
        assert!(err(serde_json::json!({"clusterId": -1})).starts_with("transport.clusterId:"));
        assert!(err(serde_json::json!({"shard": 70000})).starts_with("transport.shard:"));
        assert!(err(serde_json::json!({"peers": "x"})).starts_with("transport.peers:"));
        assert!(err(serde_json::json!({"peers": ["x"]})).starts_with("transport.peers[0]:"));
        assert!(err(serde_json::json!({"shard": 1, "pubsubTopic": "/t"})).starts_with("transport.pubsubTopic:"));
        assert!(err(serde_json::json!({"loss": 2})).starts_with("transport.loss:"));
        assert!(err(serde_json::json!({"kind": "memory"})).starts_with("transport.kind:"));
    }

    #[test]
    fn named_topic_announces_no_shards() {
        let r = RelayConfig { pubsub_topic: Some("/waku/2/default-waku/proto".into()), ..RelayConfig::default() }.resolve().unwrap();
        assert!(r.shards.is_empty());
        let r = RelayConfig { shard: 5, ..RelayConfig::default() }.resolve().unwrap();
        assert_eq!(r.shards, vec![5]);
    }
}
