//! Issue #10 item 8: every WakuMessage the library publishes (content, retransmission, sync,
//! repair answer) fits 150 KiB including the encryption overhead budget, with every id at its
//! maximum length: the channel id, the content topic, our sender id, the peers' sender ids and
//! message ids, the missing dependencies' ids.

use bytes::Bytes;
use prost::Message as _;

use reliable_channel::channel::{Channel, ChannelAction, ChannelConfig};
use reliable_channel::wire::{
    HistoryEntry, MessageChunk, SdsMessage, WakuMessage, BLOOM_BYTES, ENCRYPTION_OVERHEAD_BUDGET, MAX_ID_BYTES, MAX_PUBLISHED_SDS_BYTES,
    MAX_WAKU_MESSAGE_BYTES,
};

const T0: u64 = 1_700_000_000_000;
const PUBSUB: &str = "/waku/2/rs/0/0";

/// `prefix` padded to `MAX_ID_BYTES` with a distinct tail.
fn max_id(prefix: &str, n: usize) -> String {
    let head = format!("{prefix}-{n}-");
    format!("{head}{}", "x".repeat(MAX_ID_BYTES - head.len()))
}

fn waku(topic: &str, payload: Vec<u8>) -> WakuMessage {
    WakuMessage::reliable(topic, payload.into(), 1_700_000_000_000)
}

struct Sizes {
    largest_sync: usize,
    largest_content: usize,
    published: usize,
}

fn drain(ch: &mut Channel, now: u64, sizes: &mut Sizes) {
    while let Some(a) = ch.poll_action() {
        if let ChannelAction::Dispatch { token, message } = a {
            let len = message.encoded_len();
            assert!(
                len + ENCRYPTION_OVERHEAD_BUDGET <= MAX_WAKU_MESSAGE_BYTES,
                "published {len} bytes: over {} with the encryption budget",
                MAX_WAKU_MESSAGE_BYTES - ENCRYPTION_OVERHEAD_BUDGET
            );
            let sds = SdsMessage::decode(message.payload.clone()).expect("SDS");
            assert!(sds.encoded_len() <= MAX_PUBLISHED_SDS_BYTES || sds.content.is_some());
            if sds.content.is_some() {
                sizes.largest_content = sizes.largest_content.max(len);
            } else {
                sizes.largest_sync = sizes.largest_sync.max(len);
            }
            sizes.published += 1;
            let hash = message.hash(PUBSUB);
            ch.on_dispatch_result(now, token, Ok(Some(hash)));
        }
    }
}

#[test]
fn every_publication_fits_with_maximum_length_ids() {
    let channel = max_id("channel", 0);
    let topic = max_id("/topic/1/chat/proto", 0);
    let me = max_id("me", 0);
    // Ack timeout 5 s, no retransmission limit worth waiting for: syncs are what grows.
    let config = ChannelConfig::default();
    let ack = config.sds.acknowledgement_timeout_ms;
    let mut ch = Channel::new(&channel, &topic, &me, config, T0, 1);
    let mut sizes = Sizes { largest_sync: 0, largest_content: 0, published: 0 };
    let mut now = T0;

    // 300 messages from 40 senders, every id at its maximum, each naming two unknown
    // dependencies without hint (64 repair requests of maximal ids) and one with a hint.
    let mut received_ids = Vec::new();
    for i in 0..300 {
        let sender = max_id("peer", i % 40);
        let id = max_id("msg", i);
        let missing = |k: usize, hinted: bool| HistoryEntry {
            message_id: max_id("missing", 3 * i + k),
            retrieval_hint: hinted.then(|| Bytes::from(vec![k as u8; 32])),
            sender_id: Some(max_id("peer", (i + 7) % 40)),
        };
        let chunk = MessageChunk {
            chunk_id: max_id("chunk", i),
            previous_chunk_id: String::new(),
            chunk_index: 0,
            last_chunk_index: 0,
            request_id: max_id("request", i),
            payload: Bytes::from_static(b"payload"),
        };
        let m = SdsMessage {
            sender_id: sender,
            message_id: id.clone(),
            channel_id: channel.clone(),
            lamport_timestamp: Some(now),
            causal_history: vec![missing(0, false), missing(1, false), missing(2, true)],
            bloom_filter: None,
            repair_request: vec![],
            content: Some(Bytes::from(chunk.encode_to_vec())),
        };
        let w = waku(&topic, m.encode_to_vec());
        ch.on_message(now, &w, Some(w.hash(PUBSUB)));
        received_ids.push(id);
        drain(&mut ch, now, &mut sizes);
        now += 10;
    }
    // A peer asks for 64 of them with an empty bloom filter: the answer carries every hint it can.
    now += ack;
    let request = SdsMessage {
        sender_id: max_id("asker", 0),
        message_id: "sync-asker00000".into(),
        channel_id: channel.clone(),
        lamport_timestamp: Some(now),
        causal_history: vec![],
        bloom_filter: Some(Bytes::from(vec![0u8; BLOOM_BYTES])),
        repair_request: received_ids
            .iter()
            .take(64)
            .map(|id| HistoryEntry { message_id: id.clone(), retrieval_hint: None, sender_id: Some(max_id("peer", 0)) })
            .collect(),
        content: None,
    };
    let w = waku(&topic, request.encode_to_vec());
    ch.on_message(now, &w, Some(w.hash(PUBSUB)));
    drain(&mut ch, now, &mut sizes);
    // Our own maximal content, then every timer until the channel is quiet.
    ch.send(now, &max_id("own", 0)[..20], &vec![7u8; ch.config().chunk_size_bytes], false).expect("send");
    drain(&mut ch, now, &mut sizes);
    let end = now + 3_600_000;
    while let Some(d) = ch.next_deadline().filter(|d| *d <= end) {
        now = now.max(d);
        ch.handle_timeout(now);
        drain(&mut ch, now, &mut sizes);
    }
    let left_out = ch.sds().stats().sync_entries_left_out;
    assert!(sizes.published > 3, "published {}", sizes.published);
    assert!(left_out > 0, "no sync reached the limit: the test exercises nothing (largest sync {} B)", sizes.largest_sync);
    assert!(sizes.largest_sync > MAX_PUBLISHED_SDS_BYTES / 2, "largest sync {} B", sizes.largest_sync);
    assert!(sizes.largest_content > ch.config().chunk_size_bytes, "largest content {} B", sizes.largest_content);
}
