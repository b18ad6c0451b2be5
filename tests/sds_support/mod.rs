//! Shared by the SDS-level tests (tests/exactly_once.rs, tests/protocol_hardening.rs,
//! tests/sds_engine.rs): content messages built by hand, as a peer (honest or not) would send
//! them, and what the engine's events say.
#![allow(dead_code)]

use bytes::Bytes;
use prost::Message as _;
use reliable_channel::sds::SdsEvent;
use reliable_channel::wire::{HistoryEntry, SdsMessage};

/// The channel id of these tests.
pub const CHANNEL: &str = "chan";

/// An encoded content message of `sender` on [`CHANNEL`], its payload naming `id`.
pub fn content(sender: &str, id: &str, lamport: u64, history: Vec<HistoryEntry>) -> Bytes {
    SdsMessage {
        sender_id: sender.into(),
        message_id: id.into(),
        channel_id: CHANNEL.into(),
        lamport_timestamp: Some(lamport),
        causal_history: history,
        content: Some(Bytes::from(format!("payload of {id}"))),
        ..Default::default()
    }
    .encode_to_vec()
    .into()
}

/// The ids the events acknowledge, in order.
pub fn acked(ev: &[SdsEvent]) -> Vec<String> {
    ev.iter()
        .filter_map(|e| match e {
            SdsEvent::Acknowledged { message_id } => Some(message_id.to_string()),
            _ => None,
        })
        .collect()
}
