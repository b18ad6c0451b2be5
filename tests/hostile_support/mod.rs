//! The victim of the hostile-input tests (`tests/hostile.rs`, `tests/hostile_floods.rs`): a
//! [`Channel`] with tight bounds, driven step by step, its bounds checked after every step.
#![allow(dead_code)]

use bytes::Bytes;
use prost::Message as _;
use reliable_channel::channel::{Channel, ChannelAction, ChannelConfig, ChannelEvent};
use reliable_channel::wire::{HistoryEntry, MessageChunk, SdsMessage, WakuMessage};

pub const T0: u64 = 1_700_000_000_000;
pub const CHANNEL: &str = "hostile-channel";
pub const TOPIC: &str = "/hostile/1/chat/proto";
pub const VICTIM: &str = "victim";
pub const PUBSUB: &str = "/waku/2/rs/0/0";

pub fn victim_config() -> ChannelConfig {
    let json = r#"{
        "segmentationConfig": {"chunkSizeBytes": 65536, "reassemblyMaxBytes": 1048576, "reassemblyMaxMessages": 4, "reassemblyExpiryMs": 60000},
        "sdsConfig": {"maxLocalHistory": 256, "dependencyTimeoutMs": 30000, "acknowledgementTimeoutMs": 2000, "maxRetransmissions": 2},
        "sendQueue": {"maxPendingChunks": 64, "maxPendingBytes": 2097152},
        "rateLimitConfig": {"enabled": true, "epochSizeMs": 1000, "messagesPerEpoch": 5, "accounting": "allMessages"}
    }"#;
    let mut c = ChannelConfig::default().with_json(Some(json)).expect("valid config");
    c.sds.max_incoming_messages = 32;
    c.sds.max_incoming_bytes = 3 * 1024 * 1024;
    c.sds.max_missing = 128;
    c
}

/// Every memory bound of the channel, against its effective configuration.
pub fn check_bounds(ch: &Channel) -> Result<(), String> {
    let checks = ch.bounds();
    for (what, v, max) in checks {
        if v > max {
            return Err(format!("{what} {v} exceeds its bound {max}"));
        }
    }
    Ok(())
}

/// The victim and what it did.
pub struct Harness {
    pub ch: Channel,
    pub now: u64,
    pub tokens: Vec<u64>,
    pub retrieve_requests: usize,
    pub received: usize,
    pub dispatched: Vec<WakuMessage>,
}

impl Harness {
    pub fn new(seed: u64) -> Self {
        let ch = Channel::new(CHANNEL, TOPIC, VICTIM, victim_config(), T0, seed);
        let mut h = Harness { ch, now: T0, tokens: Vec::new(), retrieve_requests: 0, received: 0, dispatched: Vec::new() };
        h.settle().expect("fresh channel within bounds");
        h
    }

    /// Drains actions, fires due timers (a bounded number of rounds), checks the bounds.
    pub fn settle(&mut self) -> Result<(), String> {
        for _ in 0..8 {
            while let Some(a) = self.ch.poll_action() {
                match a {
                    ChannelAction::Dispatch { token, message } => {
                        self.tokens.push(token);
                        if self.dispatched.len() < 64 {
                            self.dispatched.push(message);
                        }
                    }
                    ChannelAction::Retrieve { hashes } => self.retrieve_requests += hashes.len(),
                    ChannelAction::Event(ChannelEvent::Received { sender_id, request_id, .. }) => {
                        if sender_id == VICTIM {
                            return Err(format!("accepted a spoofed echo as received ({request_id})"));
                        }
                        self.received += 1;
                    }
                    ChannelAction::Event(_) => {}
                }
            }
            check_bounds(&self.ch)?;
            match self.ch.next_deadline() {
                Some(d) if d <= self.now => self.ch.handle_timeout(self.now),
                _ => return Ok(()),
            }
        }
        check_bounds(&self.ch)
    }

    pub fn feed(&mut self, msg: &WakuMessage, with_hash: bool) -> Result<(), String> {
        let hash = with_hash.then(|| msg.hash(PUBSUB));
        self.ch.on_message(self.now, msg, hash);
        self.settle()
    }

    pub fn advance(&mut self, ms: u64) -> Result<(), String> {
        self.now = self.now.saturating_add(ms);
        self.ch.handle_timeout(self.now);
        self.settle()
    }

    pub fn send(&mut self, len: usize, ephemeral: bool, n: u64) -> Result<(), String> {
        let payload = vec![(n % 251) as u8; len];
        // Refusals (queue full, duplicate id, empty) are fine: the point is that nothing breaks.
        let _ = self.ch.send(self.now, &format!("own-{n}"), &payload, ephemeral);
        self.settle()
    }

    pub fn dispatch_result(&mut self, pick: usize, ok: bool) -> Result<(), String> {
        let token = if self.tokens.is_empty() || pick.is_multiple_of(7) { pick as u64 * 7919 } else { self.tokens[pick % self.tokens.len()] };
        let result = if ok { Ok(Some([pick as u8; 32])) } else { Err("refused".to_owned()) };
        self.ch.on_dispatch_result(self.now, token, result);
        self.settle()
    }
}

pub fn waku(payload: Bytes) -> WakuMessage {
    WakuMessage::reliable(TOPIC, payload, 1_700_000_000_000)
}

pub fn fill(len: usize, seed: u8) -> Bytes {
    Bytes::from((0..len).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed)).collect::<Vec<u8>>())
}

pub fn content(sender: &str, id: &str, lamport: u64, history: Vec<HistoryEntry>, chunk: MessageChunk) -> WakuMessage {
    waku(Bytes::from(
        SdsMessage {
            sender_id: sender.into(),
            message_id: id.into(),
            channel_id: CHANNEL.into(),
            lamport_timestamp: Some(lamport),
            causal_history: history,
            bloom_filter: None,
            repair_request: Vec::new(),
            content: Some(Bytes::from(chunk.encode_to_vec())),
        }
        .encode_to_vec(),
    ))
}

pub fn first_chunk(request: &str, last: u32, len: usize) -> MessageChunk {
    MessageChunk {
        chunk_id: format!("{request}-0"),
        previous_chunk_id: String::new(),
        chunk_index: 0,
        last_chunk_index: last,
        request_id: request.into(),
        payload: fill(len, 9),
    }
}
