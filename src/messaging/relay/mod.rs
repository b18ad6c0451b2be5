//! The native Waku Relay transport: this process joins a Waku Relay mesh itself (rust-libp2p:
//! TCP + Noise + Yamux, gossipsub as `/vac/waku/relay/2.0.0`, identify, ping and the Waku
//! metadata protocol), with no Waku node beside it. Built with the `relay` cargo feature (on by
//! default); without it the library has no libp2p at all.
//!
//! # Protocol (see `/work/shared/reference/waku-relay.md` for the facts it follows)
//!
//! * Gossipsub with nwaku's parameters (`gossip.rs`): anonymous unsigned messages, message id =
//!   raw sha256 of the data, topic = the pubsub topic string (`/waku/2/rs/<cluster>/<shard>`),
//!   data = the protobuf WakuMessage, frames up to 150 KiB + 64 KiB, nwaku's peer scoring.
//! * Validation: every message waits for the node's verdict. Data over 150 KiB, not a
//!   WakuMessage, or with an empty payload or content topic is *rejected* (peer scoring
//!   penalises the sender: ten such messages in a burst graylist it); messages over a
//!   neighbour's inbound budget (`peer_messages_per_sec`, `peer_bytes_per_sec`) are *ignored*;
//!   everything else is accepted and forwarded, and delivered to the sink when its content topic
//!   is subscribed. js-waku's relay pings (`/relay-ping/1/ping/null`) are relayed, not
//!   delivered. Each outcome has a counter in [`RelayStats`].
//! * Metadata `/vac/waku/metadata/1.0.0` (`metadata.rs`), both sides: every new connection asks
//!   for the peer's cluster; another (or no) cluster in a response, or another cluster in a
//!   request, disconnects the peer (and forgets it if it was configured), as nwaku does. Peers
//!   that do not speak it (js-waku without the metadata service) are tolerated.
//! * Store `/vac/waku/store-query/3.0.0` (`store.rs`), lookups by message hash only: every node
//!   keeps a bounded cache of the messages it relayed or published and answers peers' queries
//!   from it; SDS's retrievals of missing dependencies (by their Waku hash) ask the connected
//!   peers. This is what brings a late joiner, or a node back from a partition, what it missed.
//! * Publishing never sends an empty payload or content topic (js-waku penalises that) and
//!   never more than 150 KiB: those fail at once. A message gossipsub accepts but can send to
//!   nobody (no peer yet, queues full) is reported `Sent` and counted as `published_unrouted`:
//!   a `Failed` would fail the whole send in the channel layer, whereas SDS retransmits an
//!   unacknowledged message until a peer is there. `Sent` is reported by `publish` itself, on
//!   the runtime thread (no event crosses back from the node thread per message). Own messages
//!   are not echoed back.
//!
//! # Threads and ownership
//!
//! * [`RelayTransport::new`] starts one thread (`rc-relay`) running a current-thread tokio
//!   runtime that owns the swarm (`node.rs`): the runtime thread never polls the network, it
//!   only sends commands over a channel (publish, subscribe, connect, shutdown; `transport.rs`)
//!   after encoding and hashing the message itself. At most [`MAX_QUEUED_PUBLISHES`] publishes
//!   wait for the node thread; beyond that `publish` fails at once instead of queueing.
//! * The node thread is the one owner of the swarm, the content-topic subscription counts, the
//!   wanted-peer table and the per-peer budgets. It reports `Received` to the
//!   [`TransportSink`](crate::messaging::TransportSink) and keeps counters and gauges in atomics
//!   that [`RelayHandle::stats`] reads from any thread.
//! * [`Transport::shutdown`](crate::messaging::Transport::shutdown) clears the alive flag, tells
//!   the node to stop and joins its thread: no event after it returns.
//! * Wanted peers (configured or `connect`ed) are dialled at once and redialled after a failed
//!   dial or a lost connection, from 0.5 s doubling to 30 s, each failure logged with `log::warn!`.
//!   Inbound peers beyond `max_peers` are disconnected.
//!
//! # In the manager
//!
//! * Manager config `"transport": {"kind": "relay", "listen": [...], "peers": [...],
//!   "clusterId": 42, "shard": 0 | "pubsubTopic": "...", "nodeKey": "<hex>", "maxPeers": 50,
//!   "peerMessagesPerSec": 2000, "peerBytesPerSec": 33554432, "loss": 0, "duplicate": 0,
//!   "seed": 1}` is parsed and validated by [`RelayConfig::from_json`] (`runtime/config.rs`).
//!   [`RelayError::Config`] becomes `RC_ERR_CONFIG` (its message names the key), the other
//!   variants `RC_ERR_TRANSPORT`.
//! * The runtime builds the transport with its `transport_sink` and keeps the [`RelayHandle`] in
//!   the manager (`runtime/relay.rs`): `rc_relay_listen_addresses` = [`RelayHandle::listen_addresses`],
//!   `rc_relay_connect` = [`RelayHandle::connect`], `"relay"` in the stats JSON = [`RelayStats::to_json`].
//! * Node key persistence: with `storage.path` and no `nodeKey`, the runtime keeps a key from
//!   [`generate_node_key`] in `<storage.path>.relay-key`, so the peer id survives restarts.
//! * Tests: `tests/relay.rs` (our nodes on loopback: star, line, faults, store retrieval, stats,
//!   connect, errors), `tests/relay_hostile.rs` (hostile gossipsub peers), `tests/relay_interop.rs`
//!   (a js-waku node in node.js, `tests/relay_interop/`), `tests/relay_manager.rs` (managers from
//!   the JSON configuration), `tests/relay_proc/` and `tests/netns/` (processes, namespaces).

mod config;
mod gossip;
mod lp;
mod metadata;
mod node;
mod store;
mod transport;

pub use config::{
    generate_node_key, parse_static_shard_topic, peer_id_of_node_key, static_shard_topic, RelayConfig, RelayError, DEFAULT_CLUSTER_ID,
    DEFAULT_MAX_PEERS, DEFAULT_PEER_BYTES_PER_SEC, DEFAULT_PEER_MESSAGES_PER_SEC, JSON_KEYS, MAX_MAX_PEERS,
};
pub use gossip::{gossipsub_config, message_id, peer_score, MAX_FRAME_BYTES, RELAY_PING_CONTENT_TOPIC, RELAY_PROTOCOL};
pub use lp::LpCodec;
pub use metadata::{MetadataCodec, WakuMetadata, METADATA_PROTOCOL};
pub use node::{REDIAL_INITIAL, REDIAL_MAX};
pub use store::{
    StoreCodec, StoreQueryRequest, StoreQueryResponse, WakuMessageKeyValue, MAX_HASHES_PER_QUERY, MAX_RESPONSE_BYTES, STORE_CACHE_BYTES,
    STORE_CACHE_MESSAGES, STORE_PROTOCOL,
};
pub use transport::{RelayCounters, RelayHandle, RelayStats, RelayTransport, MAX_QUEUED_PUBLISHES};

/// The libp2p crate this transport is built on (its `Multiaddr` and `PeerId` appear in the API;
/// tests build their own peers with it).
pub use libp2p;
