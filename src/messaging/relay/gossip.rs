//! Gossipsub configured as Waku Relay, and the pure checks applied to what arrives.
//!
//! Everything here is sans-I/O: the parameters, [`classify`] (what to do with the data of one
//! gossipsub message) and [`PeerBudgets`] (the per-neighbour inbound budget, driven by `now`).
//! `swarm.rs` calls them from the node's thread.

use std::collections::HashMap;
use std::time::Duration;

use bytes::Bytes;
use libp2p::gossipsub::{
    self, ConfigBuilder, IdentTopic, MessageId, PeerScoreParams, PeerScoreThresholds, TopicScoreParams, ValidationMode, Version,
};
use libp2p::PeerId;
use prost::Message as _;
use sha2::{Digest, Sha256};

use crate::wire::{WakuMessage, MAX_WAKU_MESSAGE_BYTES};

/// The Waku Relay gossipsub protocol id.
pub const RELAY_PROTOCOL: &str = "/vac/waku/relay/2.0.0";

/// Room one gossipsub RPC frame has beyond the largest WakuMessage (several messages and control
/// entries share a frame; nwaku adds the same 64 KiB safety buffer).
pub const FRAME_SAFETY_BYTES: usize = 64 * 1024;

/// The largest gossipsub RPC frame accepted or sent.
pub const MAX_FRAME_BYTES: usize = MAX_WAKU_MESSAGE_BYTES + FRAME_SAFETY_BYTES;

/// Content topic of js-waku's keep-alive "relay pings": valid messages nobody subscribes to.
pub const RELAY_PING_CONTENT_TOPIC: &str = "/relay-ping/1/ping/null";

// nwaku's gossipsub parameters (waku/waku_relay/protocol.nim; /work/shared/reference/waku-relay.md).
const MESH_N: usize = 6;
const MESH_N_LOW: usize = 4;
const MESH_N_HIGH: usize = 8;
const MESH_OUTBOUND_MIN: usize = 3;
const GOSSIP_LAZY: usize = 6;
const GOSSIP_FACTOR: f64 = 0.25;
const HEARTBEAT: Duration = Duration::from_secs(1);
const HISTORY_LENGTH: usize = 6;
const HISTORY_GOSSIP: usize = 3;
const SEEN_TTL: Duration = Duration::from_secs(120);
const PRUNE_BACKOFF: Duration = Duration::from_secs(60);
const UNSUBSCRIBE_BACKOFF: Duration = Duration::from_secs(5);
const FANOUT_TTL: Duration = Duration::from_secs(60);

// nwaku's peer scoring: one invalid message costs 100 (the gossip threshold), ten in a burst
// (−100 × count², halved every second) graylist the sender.
const TOPIC_WEIGHT: f64 = 1.0;
const TIME_IN_MESH_WEIGHT: f64 = 0.01;
const TIME_IN_MESH_CAP: f64 = 10.0;
const FIRST_DELIVERIES_WEIGHT: f64 = 1.0;
const FIRST_DELIVERIES_DECAY: f64 = 0.5;
const FIRST_DELIVERIES_CAP: f64 = 10.0;
const INVALID_DELIVERIES_WEIGHT: f64 = -100.0;
const INVALID_DELIVERIES_DECAY: f64 = 0.5;
const GOSSIP_THRESHOLD: f64 = -100.0;
const PUBLISH_THRESHOLD: f64 = -1000.0;
const GRAYLIST_THRESHOLD: f64 = -10000.0;

/// The gossipsub message id of Waku Relay: the raw sha256 of the data (spec: relay.message-id).
pub fn message_id(data: &[u8]) -> MessageId {
    MessageId::new(Sha256::digest(data).as_slice())
}

/// Gossipsub as nwaku runs it: `/vac/waku/relay/2.0.0`, anonymous and unsigned, sha256 message
/// ids, nwaku's mesh and gossip parameters, frames large enough for a 150 KiB WakuMessage, and
/// validation by the application (every message waits for `report_message_validation_result`).
pub fn gossipsub_config(max_frame_bytes: usize) -> gossipsub::Config {
    // spec: relay.gossipsub-parameters
    let mut b = ConfigBuilder::default();
    b.protocol_id(RELAY_PROTOCOL, Version::V1_1)
        .validation_mode(ValidationMode::Anonymous)
        .message_id_fn(|m: &gossipsub::Message| message_id(&m.data))
        .mesh_n(MESH_N)
        .mesh_n_low(MESH_N_LOW)
        .mesh_n_high(MESH_N_HIGH)
        .mesh_outbound_min(MESH_OUTBOUND_MIN)
        .gossip_lazy(GOSSIP_LAZY)
        .gossip_factor(GOSSIP_FACTOR)
        .heartbeat_interval(HEARTBEAT)
        .history_length(HISTORY_LENGTH)
        .history_gossip(HISTORY_GOSSIP)
        .duplicate_cache_time(SEEN_TTL)
        .flood_publish(true)
        .prune_backoff(PRUNE_BACKOFF)
        .unsubscribe_backoff(UNSUBSCRIBE_BACKOFF)
        .fanout_ttl(FANOUT_TTL)
        .max_transmit_size(max_frame_bytes)
        .validate_messages();
    // The parameters above are constants that satisfy the builder's checks
    // (mesh_outbound_min <= mesh_n_low <= mesh_n <= mesh_n_high, ...): tested below.
    b.build().expect("Waku Relay gossipsub parameters are consistent")
}

/// nwaku's peer-score parameters for `topic`, and its thresholds.
pub fn peer_score(topic: &IdentTopic) -> (PeerScoreParams, PeerScoreThresholds) {
    let mut params = PeerScoreParams {
        // Many honest nodes share an address behind a NAT (and every test node shares
        // 127.0.0.1); connection limits and RLN bound sybils instead.
        ip_colocation_factor_weight: 0.0,
        ..PeerScoreParams::default()
    };
    params.topics.insert(
        topic.hash(),
        TopicScoreParams {
            topic_weight: TOPIC_WEIGHT,
            time_in_mesh_weight: TIME_IN_MESH_WEIGHT,
            time_in_mesh_quantum: Duration::from_secs(1),
            time_in_mesh_cap: TIME_IN_MESH_CAP,
            first_message_deliveries_weight: FIRST_DELIVERIES_WEIGHT,
            first_message_deliveries_decay: FIRST_DELIVERIES_DECAY,
            first_message_deliveries_cap: FIRST_DELIVERIES_CAP,
            mesh_message_deliveries_weight: 0.0,
            mesh_failure_penalty_weight: 0.0,
            invalid_message_deliveries_weight: INVALID_DELIVERIES_WEIGHT,
            invalid_message_deliveries_decay: INVALID_DELIVERIES_DECAY,
            ..TopicScoreParams::default()
        },
    );
    let thresholds = PeerScoreThresholds {
        gossip_threshold: GOSSIP_THRESHOLD,
        publish_threshold: PUBLISH_THRESHOLD,
        graylist_threshold: GRAYLIST_THRESHOLD,
        ..PeerScoreThresholds::default()
    };
    (params, thresholds)
}

/// Why an incoming gossipsub message was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Over [`MAX_WAKU_MESSAGE_BYTES`] (rejected: the sender is penalised).
    Oversized,
    /// Not a protobuf WakuMessage (rejected).
    Malformed,
    /// A WakuMessage with an empty payload or content topic (rejected, as nwaku and js-waku do).
    Invalid,
}

/// The verdict on the data of one gossipsub message on our pubsub topic (spec:
/// relay.validation). `Ok` carries the decoded message; the caller accepts it (forwards it) and
/// delivers it when its content topic is subscribed.
pub fn classify(data: Bytes) -> Result<WakuMessage, Refusal> {
    if data.len() > MAX_WAKU_MESSAGE_BYTES {
        return Err(Refusal::Oversized);
    }
    let message = WakuMessage::decode(data).map_err(|_| Refusal::Malformed)?;
    if message.payload.is_empty() || message.content_topic.is_empty() {
        return Err(Refusal::Invalid);
    }
    Ok(message)
}

/// Field number of the unknown protobuf field that makes a fault-injected duplicate differ in its
/// bytes (and so in its gossipsub message id) but not in the WakuMessage it decodes to.
const DUPLICATE_MARK_FIELD: u32 = 1999;

/// The bytes of a second, distinct copy of the encoded WakuMessage `encoded`: the same message
/// plus one unknown varint field, which decoders skip and message hashes do not cover.
pub fn duplicate_copy(encoded: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(encoded.len() + 4);
    out.extend_from_slice(encoded);
    prost::encoding::encode_key(DUPLICATE_MARK_FIELD, prost::encoding::WireType::Varint, &mut out);
    prost::encoding::encode_varint(1, &mut out);
    out
}

/// Per-neighbour inbound budgets: a token bucket of messages and one of bytes per peer, each
/// refilled continuously up to one second's worth (the burst). Sans-I/O: `now` is in ms.
#[derive(Debug)]
pub struct PeerBudgets {
    messages_per_sec: u32,
    bytes_per_sec: u64,
    buckets: HashMap<PeerId, Bucket>,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    messages: f64,
    bytes: f64,
    at_ms: u64,
}

impl PeerBudgets {
    /// Budgets of `messages_per_sec` and `bytes_per_sec` per peer (0 = unlimited).
    pub fn new(messages_per_sec: u32, bytes_per_sec: u64) -> Self {
        PeerBudgets { messages_per_sec, bytes_per_sec, buckets: HashMap::new() }
    }

    /// Charges one message of `len` bytes from `peer` at `now_ms`; false when over budget
    /// (nothing is charged then).
    pub fn admit(&mut self, peer: PeerId, len: usize, now_ms: u64) -> bool {
        if self.messages_per_sec == 0 && self.bytes_per_sec == 0 {
            return true;
        }
        let (msg_cap, byte_cap) = (f64::from(self.messages_per_sec), self.bytes_per_sec as f64);
        let b = self.buckets.entry(peer).or_insert(Bucket { messages: msg_cap, bytes: byte_cap, at_ms: now_ms });
        let elapsed = now_ms.saturating_sub(b.at_ms) as f64 / 1000.0;
        b.at_ms = b.at_ms.max(now_ms);
        b.messages = (b.messages + elapsed * msg_cap).min(msg_cap);
        b.bytes = (b.bytes + elapsed * byte_cap).min(byte_cap);
        let len = len as f64;
        let msg_ok = self.messages_per_sec == 0 || b.messages >= 1.0;
        let bytes_ok = self.bytes_per_sec == 0 || b.bytes >= len;
        if !(msg_ok && bytes_ok) {
            return false;
        }
        b.messages -= 1.0;
        b.bytes -= len;
        true
    }

    /// Forgets a disconnected peer (the table holds connected peers only).
    pub fn forget(&mut self, peer: &PeerId) {
        self.buckets.remove(peer);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(payload: &[u8], topic: &str) -> WakuMessage {
        WakuMessage { payload: Bytes::copy_from_slice(payload), content_topic: topic.into(), ..Default::default() }
    }

    #[test]
    fn config_builds_with_nwaku_parameters() {
        let c = gossipsub_config(MAX_FRAME_BYTES);
        assert_eq!((c.mesh_n(), c.mesh_n_low(), c.mesh_n_high(), c.mesh_outbound_min()), (6, 4, 8, 3));
        assert_eq!(c.duplicate_cache_time(), SEEN_TTL);
        assert_eq!(c.max_transmit_size(), MAX_WAKU_MESSAGE_BYTES + 64 * 1024);
        assert!(c.validate_messages() && c.flood_publish());
        let (params, thresholds) = peer_score(&IdentTopic::new("/waku/2/rs/42/0"));
        params.validate().unwrap();
        thresholds.validate().unwrap();
    }

    #[test]
    fn message_id_is_raw_sha256_of_the_data() {
        let id = message_id(b"abc");
        assert_eq!(hex::encode(&id.0), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    }

    #[test]
    fn classify_refuses_what_nwaku_refuses() {
        let ok = msg(b"x", "/app/1/chat/proto");
        assert_eq!(classify(ok.encode_to_vec().into()), Ok(ok));
        assert_eq!(classify(Bytes::from_static(b"\xff\xff\xff")), Err(Refusal::Malformed));
        assert_eq!(classify(msg(b"", "/a/1/b/c").encode_to_vec().into()), Err(Refusal::Invalid));
        assert_eq!(classify(msg(b"x", "").encode_to_vec().into()), Err(Refusal::Invalid));
        let big = msg(&vec![7u8; MAX_WAKU_MESSAGE_BYTES], "/a/1/b/c");
        assert_eq!(classify(big.encode_to_vec().into()), Err(Refusal::Oversized));
    }

    #[test]
    fn duplicate_copy_differs_in_bytes_but_not_in_message_or_hash() {
        let m = WakuMessage { timestamp: Some(5), meta: Some(Bytes::from_static(b"m")), ..msg(b"pay", "/a/1/b/c") };
        let enc = m.encode_to_vec();
        let dup = duplicate_copy(&enc);
        assert_ne!(message_id(&enc), message_id(&dup));
        let back = classify(dup.into()).unwrap();
        assert_eq!(back, m);
        assert_eq!(back.hash("/waku/2/rs/42/0"), m.hash("/waku/2/rs/42/0"));
    }

    #[test]
    fn budgets_refill_over_time_and_are_per_peer() {
        let (a, b) = (PeerId::random(), PeerId::random());
        let mut budgets = PeerBudgets::new(3, 1_000);
        assert!((0..3).all(|_| budgets.admit(a, 10, 0)));
        assert!(!budgets.admit(a, 10, 0), "the burst is one second's worth");
        assert!(budgets.admit(b, 10, 0), "another peer has its own bucket");
        assert!(!budgets.admit(a, 10, 300), "0.9 of a message after 300 ms");
        assert!(budgets.admit(a, 10, 340));
        assert!(!budgets.admit(b, 1_000, 0), "bytes are budgeted too");
        budgets.forget(&a);
        assert!((0..3).all(|_| budgets.admit(a, 1, 340)));
        let mut unlimited = PeerBudgets::new(0, 0);
        assert!((0..10_000).all(|_| unlimited.admit(a, 1 << 20, 0)));
    }
}
