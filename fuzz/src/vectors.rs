//! The golden vectors of `tests/vectors/`, embedded at compile time: the SDS messages that
//! @waku/sds 0.0.8 encoded (named messages and every wire message of the recorded conversation)
//! and the WakuMessages of the message-hash vectors, encoded.

use std::sync::OnceLock;

use bytes::Bytes;
use prost::Message as _;
use reliable_channel::wire::WakuMessage;
use serde_json::Value;

const SDS_JSON: &str = include_str!("../../tests/vectors/sds-waku-sds-0.0.8.json");
const WAKU_JSON: &str = include_str!("../../tests/vectors/waku-message-hash.json");

/// A golden vector: a name and the encoded bytes.
pub type Vector = (String, Vec<u8>);

fn hex_field(v: &Value, key: &str) -> Vec<u8> {
    hex::decode(v[key].as_str().unwrap_or_default()).expect("golden vectors are valid hex")
}

/// Every encoded SDS message of the golden vectors.
pub fn sds_messages() -> &'static [Vector] {
    static V: OnceLock<Vec<Vector>> = OnceLock::new();
    V.get_or_init(|| {
        let doc: Value = serde_json::from_str(SDS_JSON).expect("golden SDS vectors parse");
        let mut out = Vec::new();
        for m in doc["messages"].as_array().into_iter().flatten() {
            out.push((m["name"].as_str().unwrap_or("message").to_owned(), hex_field(m, "hex")));
        }
        for (i, step) in doc["conversation"].as_array().into_iter().flatten().enumerate() {
            if let Some(wire) = step.get("wire") {
                out.push((format!("conversation-{i}-{}", wire["from"].as_str().unwrap_or("?")), hex_field(wire, "hex")));
            }
        }
        out
    })
}

/// Every WakuMessage of the message-hash vectors, encoded.
pub fn waku_messages() -> &'static [Vector] {
    static V: OnceLock<Vec<Vector>> = OnceLock::new();
    V.get_or_init(|| {
        let doc: Value = serde_json::from_str(WAKU_JSON).expect("golden WakuMessage vectors parse");
        doc.as_array()
            .into_iter()
            .flatten()
            .map(|v| {
                let meta = hex_field(v, "meta");
                let m = WakuMessage {
                    payload: Bytes::from(hex_field(v, "payload")),
                    content_topic: v["content_topic"].as_str().unwrap_or_default().to_owned(),
                    version: Some(0),
                    timestamp: v["timestamp"].as_i64(),
                    meta: (!meta.is_empty()).then(|| Bytes::from(meta)),
                    rate_limit_proof: None,
                    ephemeral: None,
                };
                (v["name"].as_str().unwrap_or("waku").to_owned(), m.encode_to_vec())
            })
            .collect()
    })
}
