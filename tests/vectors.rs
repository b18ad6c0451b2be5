//! Golden vectors produced by the reference implementation (@waku/sds 0.0.8, @waku/proto 0.0.15).
//!
//! Every SDS vector is decoded with the production decoder, checked field by field against the
//! JSON, and re-encoded to byte-identical output. The bloom filter and the WakuMessage hash are
//! checked against the reference values. The vector files live in `tests/vectors/`
//! (docs/wire-format.md says how they were produced).

use std::collections::BTreeMap;

use bytes::Bytes;
use prost::Message as _;
use serde_json::Value;

use reliable_channel::wire::bloom::{self, murmur3_i32, BLOOM_CAPACITY};
use reliable_channel::wire::waku_message::hash_to_hex;
use reliable_channel::wire::{
    message_hash, BloomFilter, BloomView, HistoryEntry, MessageKind, SdsMessage, WakuMessage, BLOOM_BITS, BLOOM_BYTES, BLOOM_HASHES,
};

fn load(name: &str) -> Value {
    let path = format!("{}/tests/vectors/{}", env!("CARGO_MANIFEST_DIR"), name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {path}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("parsing {path}: {e}"))
}

fn sds_vectors() -> Value {
    load("sds-waku-sds-0.0.8.json")
}

fn s<'a>(v: &'a Value, what: &str) -> &'a str {
    v.as_str().unwrap_or_else(|| panic!("{what}: expected a string, got {v}"))
}

fn unhex(v: &Value, what: &str) -> Vec<u8> {
    hex::decode(s(v, what)).unwrap_or_else(|e| panic!("{what}: bad hex: {e}"))
}

/// Decodes with the production decoder and checks the prost re-encoding is byte-identical.
fn decode_and_reencode(bytes: &[u8], name: &str) -> (SdsMessage, MessageKind) {
    let (msg, kind) = SdsMessage::decode_bytes(Bytes::copy_from_slice(bytes)).unwrap_or_else(|e| panic!("{name}: decode_bytes failed: {e}"));
    assert_eq!(msg.kind().unwrap(), kind, "{name}: kind() disagrees with decode_bytes");
    let re = msg.encode_to_vec();
    assert_eq!(re.len(), bytes.len(), "{name}: re-encoded length differs");
    assert!(re == bytes, "{name}: re-encoding is not byte-identical");
    assert_eq!(msg.encoded_len(), bytes.len(), "{name}: encoded_len differs");
    (msg, kind)
}

fn kind_of(name: &str) -> MessageKind {
    match name {
        "content" => MessageKind::Content,
        "sync" => MessageKind::Sync,
        "ephemeral" => MessageKind::Ephemeral,
        other => panic!("unknown kind {other:?} in vectors"),
    }
}

/// Compares decoded history entries with the JSON list (absent JSON list == empty).
fn check_entries(got: &[HistoryEntry], want: Option<&Value>, name: &str, what: &str) {
    let empty = Vec::new();
    let want = want.map(|v| v.as_array().expect("history is an array")).unwrap_or(&empty);
    assert_eq!(got.len(), want.len(), "{name}: {what} length");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        let ctx = format!("{name}: {what}[{i}]");
        assert_eq!(g.message_id, s(&w["messageId"], &ctx), "{ctx}: messageId");
        match w.get("retrievalHint") {
            Some(h) => assert_eq!(g.retrieval_hint.as_deref(), Some(&unhex(h, &ctx)[..]), "{ctx}: retrievalHint"),
            None => assert_eq!(g.retrieval_hint, None, "{ctx}: retrievalHint should be absent"),
        }
        match w.get("senderId") {
            Some(v) => assert_eq!(g.sender_id.as_deref(), Some(s(v, &ctx)), "{ctx}: senderId"),
            None => assert_eq!(g.sender_id, None, "{ctx}: senderId should be absent"),
        }
    }
}

fn filter_of<'a>(ids: impl IntoIterator<Item = &'a str>) -> BloomFilter {
    let mut f = BloomFilter::new();
    for id in ids {
        f.insert(id);
    }
    f
}

#[test]
fn sds_messages_decode_match_fields_and_reencode() {
    let v = sds_vectors();
    let messages = v["messages"].as_array().expect("messages");
    assert!(!messages.is_empty());
    let mut kinds_seen = Vec::new();
    for m in messages {
        let name = s(&m["name"], "name");
        let bytes = unhex(&m["hex"], name);
        let (msg, kind) = decode_and_reencode(&bytes, name);
        let f = &m["fields"];

        assert_eq!(kind, kind_of(s(&m["kind"], name)), "{name}: kind");
        kinds_seen.push(kind);
        assert_eq!(msg.sender_id, s(&f["senderId"], name), "{name}: senderId");
        assert_eq!(msg.message_id, s(&f["messageId"], name), "{name}: messageId");
        assert_eq!(msg.channel_id, s(&f["channelId"], name), "{name}: channelId");
        match f.get("lamportTimestamp") {
            Some(t) => {
                let want: u64 = s(t, name).parse().expect("lamportTimestamp is a decimal string");
                assert_eq!(msg.lamport_timestamp, Some(want), "{name}: lamportTimestamp");
            }
            None => assert_eq!(msg.lamport_timestamp, None, "{name}: lamportTimestamp should be absent"),
        }
        check_entries(&msg.causal_history, f.get("causalHistory"), name, "causalHistory");
        check_entries(&msg.repair_request, f.get("repairRequest"), name, "repairRequest");
        match f.get("content_utf8") {
            Some(c) => assert_eq!(msg.content.as_deref(), Some(s(c, name).as_bytes()), "{name}: content"),
            None => assert!(msg.content.as_ref().is_none_or(|c| c.is_empty()), "{name}: content should be absent/empty"),
        }
        match f.get("bloomFilterContains") {
            Some(ids) => {
                let raw = msg.bloom_filter.as_ref().unwrap_or_else(|| panic!("{name}: bloom filter missing"));
                assert_eq!(raw.len(), BLOOM_BYTES, "{name}: bloom length");
                let view = BloomView::new(raw).expect("a full-size filter gives a view");
                let ids: Vec<&str> = ids.as_array().unwrap().iter().map(|i| s(i, name)).collect();
                for id in &ids {
                    assert!(view.contains_positions(&bloom::positions(id)), "{name}: bloom should contain {id}");
                }
                // The reference filter holds exactly these ids: rebuilding it gives the same bytes.
                assert!(filter_of(ids.iter().copied()).as_bytes() == &raw[..], "{name}: bloom bytes differ");
                assert!(!view.contains_positions(&bloom::positions(&msg.message_id)), "{name}: own id in bloom");
            }
            None => assert_eq!(msg.bloom_filter, None, "{name}: bloom filter should be absent"),
        }
    }
    for k in [MessageKind::Content, MessageKind::Sync, MessageKind::Ephemeral] {
        assert!(kinds_seen.contains(&k), "vectors cover {k:?}");
    }
}

/// The recorded two-party conversation: every wire message decodes, re-encodes identically, and is
/// consistent with the event log around it.
#[test]
fn sds_conversation_wire_messages() {
    let v = sds_vectors();
    let conv = v["conversation"].as_array().expect("conversation");
    let mut last_sent: Option<(String, String, &str)> = None; // (who, id, event)
                                                              // Content messages seen on the wire so far: id -> sender.
    let mut earlier: Vec<(String, String)> = Vec::new();
    let mut last_lamport: Option<u64> = None;
    let mut channel: Option<String> = None;
    let mut wires = 0;
    for (i, entry) in conv.iter().enumerate() {
        if let Some(ev) = entry.get("event") {
            let ev = s(ev, "event");
            if ev == "sds:out:message-sent" || ev == "sds:out:sync-sent" {
                let who = s(&entry["who"], "who").to_string();
                last_sent = Some((who, s(&entry["detail"], "detail").to_string(), ev));
            }
            continue;
        }
        let w = &entry["wire"];
        let name = format!("conversation[{i}]");
        let bytes = unhex(&w["hex"], &name);
        let (msg, kind) = decode_and_reencode(&bytes, &name);
        wires += 1;

        let from = s(&w["from"], &name);
        assert_eq!(msg.sender_id, from, "{name}: sender");
        let is_sync = w.get("sync").and_then(Value::as_bool).unwrap_or(false);
        let (who, sent_id, ev) = last_sent.take().unwrap_or_else(|| panic!("{name}: no preceding send event"));
        assert_eq!(who, from, "{name}: sender of the preceding send event");
        assert_eq!(msg.message_id, sent_id, "{name}: message id of the preceding send event");
        if is_sync {
            assert_eq!(ev, "sds:out:sync-sent");
            assert_eq!(kind, MessageKind::Sync, "{name}: kind");
            assert!(w["text"].is_null());
            assert!(msg.content.as_ref().is_none_or(|c| c.is_empty()), "{name}: sync has no content");
        } else {
            assert_eq!(ev, "sds:out:message-sent");
            assert_eq!(kind, MessageKind::Content, "{name}: kind");
            assert_eq!(msg.content.as_deref(), Some(s(&w["text"], &name).as_bytes()), "{name}: content");
        }
        match &channel {
            Some(c) => assert_eq!(&msg.channel_id, c, "{name}: channel"),
            None => channel = Some(msg.channel_id.clone()),
        }
        let ts = msg.lamport_timestamp.expect("conversation messages carry a lamport timestamp");
        if let Some(prev) = last_lamport {
            assert!(ts > prev, "{name}: lamport {ts} not after {prev}");
        }
        last_lamport = Some(ts);
        assert!(msg.repair_request.is_empty(), "{name}: no repair requests expected");

        // Causal history only names earlier content messages, with their original sender.
        for e in &msg.causal_history {
            let (_, sender) =
                earlier.iter().find(|(id, _)| *id == e.message_id).unwrap_or_else(|| panic!("{name}: history names unknown id {}", e.message_id));
            assert_eq!(e.sender_id.as_deref(), Some(sender.as_str()), "{name}: history sender");
            assert_eq!(e.retrieval_hint, None, "{name}: no retrieval hints in this conversation");
        }

        // The bloom filter is always sent full-size and holds exactly the earlier content messages
        // (every one of them had been sent or delivered by this party before this message).
        let raw = msg.bloom_filter.as_ref().unwrap_or_else(|| panic!("{name}: bloom filter missing"));
        assert_eq!(raw.len(), BLOOM_BYTES, "{name}: bloom length");
        let view = BloomView::new(raw).unwrap();
        for (id, _) in &earlier {
            assert!(view.contains_positions(&bloom::positions(id)), "{name}: bloom should contain {id}");
        }
        assert!(
            filter_of(earlier.iter().map(|(id, _)| id.as_str())).as_bytes() == &raw[..],
            "{name}: bloom bytes differ from the filter of the earlier messages"
        );

        if kind == MessageKind::Content {
            earlier.push((msg.message_id.clone(), msg.sender_id.clone()));
        }
    }
    assert_eq!(wires, 5, "conversation has 5 wire messages");
}

#[test]
fn bloom_params_match_constants() {
    let v = sds_vectors();
    let p = &v["bloom"]["params"];
    assert_eq!(p["capacity"].as_u64(), Some(BLOOM_CAPACITY as u64));
    assert_eq!(p["errorRate"].as_f64(), Some(0.001));
    assert_eq!(p["mBits"].as_u64(), Some(BLOOM_BITS as u64));
    assert_eq!(p["kHashes"].as_u64(), Some(BLOOM_HASHES as u64));
    assert_eq!(p["bytes"].as_u64(), Some(BLOOM_BYTES as u64));
    assert_eq!(BloomFilter::new().as_bytes().len(), BLOOM_BYTES);
}

#[test]
fn bloom_positions_match_reference() {
    assert_eq!(murmur3_i32(b"hello"), 613_153_351);
    let v = sds_vectors();
    let list = v["bloom"]["positions"].as_array().expect("positions");
    assert!(!list.is_empty());
    for e in list {
        let id = s(&e["id"], "id");
        let want: Vec<u32> = e["positions"].as_array().unwrap().iter().map(|p| p.as_u64().unwrap() as u32).collect();
        assert_eq!(want.len(), BLOOM_HASHES);
        assert_eq!(bloom::positions(id).to_vec(), want, "positions of {id:?}");
    }
}

#[test]
fn bloom_filter_example_bytes() {
    let v = sds_vectors();
    let ex = &v["bloom"]["filter_example"];
    let inserted: Vec<&str> = ex["inserted"].as_array().unwrap().iter().map(|i| s(i, "inserted")).collect();
    let f = filter_of(inserted.iter().copied());
    let bytes = f.as_bytes();
    assert_eq!(bytes.len() as u64, ex["length"].as_u64().unwrap());

    let want: BTreeMap<usize, u8> =
        ex["nonzero_bytes"].as_object().unwrap().iter().map(|(k, v)| (k.parse().unwrap(), v.as_u64().unwrap() as u8)).collect();
    let got: BTreeMap<usize, u8> = bytes.iter().enumerate().filter(|(_, &b)| b != 0).map(|(i, &b)| (i, b)).collect();
    assert_eq!(got, want, "non-zero bytes of the example filter");

    let view = BloomView::new(bytes).unwrap();
    for id in &inserted {
        assert!(f.contains(id));
        assert!(view.contains_positions(&bloom::positions(id)));
    }
    assert_eq!(BloomFilter::from_bytes(bytes).as_ref(), Some(&f));
}

#[test]
fn waku_message_hash_vectors() {
    let v = load("waku-message-hash.json");
    let list = v.as_array().expect("hash vectors are a list");
    assert!(!list.is_empty());
    for e in list {
        let name = s(&e["name"], "name");
        let pubsub = s(&e["pubsub_topic"], name);
        let payload = unhex(&e["payload"], name);
        let content_topic = s(&e["content_topic"], name);
        let meta = unhex(&e["meta"], name);
        let timestamp = e["timestamp"].as_i64().unwrap_or_else(|| panic!("{name}: timestamp"));
        let want = s(&e["hash"], name);

        let h = message_hash(pubsub, &payload, content_topic, &meta, timestamp);
        assert_eq!(hash_to_hex(&h), want, "{name}: message_hash");
        assert_eq!(format!("0x{}", hex::encode(h)), want, "{name}: rendering");

        // The same hash from a WakuMessage, with meta absent when empty and also present-but-empty:
        // absent meta hashes as empty meta.
        let metas: Vec<Option<Bytes>> = if meta.is_empty() { vec![None, Some(Bytes::new())] } else { vec![Some(Bytes::from(meta.clone()))] };
        for m in metas {
            let msg = WakuMessage {
                payload: Bytes::from(payload.clone()),
                content_topic: content_topic.to_string(),
                version: Some(0),
                timestamp: Some(timestamp),
                meta: m.clone(),
                rate_limit_proof: None,
                ephemeral: None,
            };
            assert_eq!(hash_to_hex(&msg.hash(pubsub)), want, "{name}: WakuMessage::hash (meta {m:?})");
            let enc = msg.encode_to_vec();
            let back = WakuMessage::decode_bytes(Bytes::from(enc.clone())).expect("decodes");
            assert_eq!(back, msg, "{name}: round trip");
            assert_eq!(back.encode_to_vec(), enc, "{name}: re-encoding");
            assert_eq!(hash_to_hex(&back.hash(pubsub)), want, "{name}: hash after round trip");
        }
    }
}
