//! Shared by the relay benches: a bare rust-libp2p gossipsub swarm with the Waku Relay
//! configuration (no reliable-channel stack), the baseline both benches compare against: the same
//! gossipsub parameters and nwaku's peer scoring as the relay transport (`gossip.rs`).

use libp2p::gossipsub::{self, IdentTopic, MessageAuthenticity};
use libp2p::{noise, tcp, yamux, Swarm};
use reliable_channel::messaging::relay::{gossipsub_config, peer_score, MAX_FRAME_BYTES};

/// A bare gossipsub swarm subscribed to `topic` (run it on a tokio runtime).
pub fn raw_swarm(topic: &str) -> (Swarm<gossipsub::Behaviour>, IdentTopic) {
    let mut swarm = libp2p::SwarmBuilder::with_new_identity()
        .with_tokio()
        .with_tcp(tcp::Config::default().nodelay(true), noise::Config::new, yamux::Config::default)
        .unwrap()
        .with_behaviour(|_| {
            let mut g = gossipsub::Behaviour::new(MessageAuthenticity::Anonymous, gossipsub_config(MAX_FRAME_BYTES)).unwrap();
            let (params, thresholds) = peer_score(&IdentTopic::new(topic));
            g.with_peer_score(params, thresholds).unwrap();
            g
        })
        .unwrap()
        .build();
    let topic = IdentTopic::new(topic);
    swarm.behaviour_mut().subscribe(&topic).unwrap();
    (swarm, topic)
}
