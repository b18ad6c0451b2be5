//! Writes the seed corpora of the decoder targets from the golden vectors of `tests/vectors/`:
//! `seed DIR` creates `DIR/<target>/<name>` for `waku_message`, `sds_message`, `message_chunk`
//! and `config_json`. Deterministic, so re-running it adds nothing new; `run.sh` runs it before
//! fuzzing so that the seeds are never committed (the largest golden messages are 19 KB each).

use std::path::Path;

use bytes::Bytes;
use prost::Message as _;
use reliable_channel::wire::{MessageChunk, SdsMessage};
use reliable_channel_fuzz::forge::Forge;
use reliable_channel_fuzz::vectors::{sds_messages, waku_messages};

/// Configuration JSON seeds (`Input::Raw` of `config_json`: a zero variant tag, then the text).
const CONFIGS: &[&str] = &[
    "{}",
    r#"{"segmentationConfig": {"chunkSizeBytes": 65536, "reassemblyMaxBytes": 1048576, "reassemblyMaxMessages": 4, "reassemblyExpiryMs": 60000},
        "sdsConfig": {"historyBackend": "memory", "acknowledgementTimeoutMs": 2000, "maxRetransmissions": 2, "causalHistorySize": 2,
                      "possibleAcksThreshold": 2, "dependencyTimeoutMs": 30000, "syncIntervalMs": 5000, "idleSyncRounds": 3, "maxLocalHistory": 256},
        "sendQueue": {"maxPendingChunks": 64, "maxPendingBytes": 2097152},
        "rateLimitConfig": {"enabled": true, "epochSizeMs": 1000, "messagesPerEpoch": 5, "accounting": "allMessages", "approachThreshold": 0.9}}"#,
    r#"{"transport": {"kind": "memory", "network": "n", "pubsubTopic": "/waku/2/rs/0/0", "loss": 0.1, "duplicate": 0.1, "reorder": 0.5,
                      "delayMs": [0, 50], "seed": 7, "storeCapacity": 1024},
        "channelDefaults": {"rateLimitConfig": {"enabled": false, "accounting": "firstChunk"}}}"#,
    r#"{"transport": {"kind": "host", "pubsubTopic": "/waku/2/rs/1/4"}, "channelDefaults": {"segmentationConfig": {"chunkSizeBytes": 1024}}}"#,
];

fn write(dir: &Path, target: &str, name: &str, bytes: &[u8]) -> std::io::Result<()> {
    let d = dir.join(target);
    std::fs::create_dir_all(&d)?;
    let name: String = name.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '_' }).collect();
    std::fs::write(d.join(format!("golden-{name}")), bytes)
}

fn main() -> std::io::Result<()> {
    let Some(dir) = std::env::args_os().nth(1) else {
        eprintln!("usage: seed DIR");
        std::process::exit(2);
    };
    let dir = Path::new(&dir);
    for (name, bytes) in waku_messages() {
        write(dir, "waku_message", name, bytes)?;
    }
    for (name, bytes) in sds_messages() {
        write(dir, "sds_message", name, bytes)?;
        // The same message as a reliable channel puts it on the wire.
        write(dir, "waku_message", &format!("wrapped-{name}"), &Forge::waku(Bytes::copy_from_slice(bytes)).encode_to_vec())?;
        // Its content as the payload of a first and of a second chunk.
        let sds = SdsMessage::decode(bytes.as_slice()).expect("golden SDS messages decode");
        let payload = sds.content.unwrap_or_default();
        for (k, prev) in [(0u32, ""), (1, "prev-chunk")] {
            let chunk = MessageChunk {
                chunk_id: format!("{}-c{k}", sds.message_id),
                previous_chunk_id: prev.to_owned(),
                chunk_index: k,
                last_chunk_index: 1,
                request_id: sds.message_id.clone(),
                payload: payload.clone(),
            };
            write(dir, "message_chunk", &format!("{name}-{k}"), &chunk.encode_to_vec())?;
        }
    }
    for (i, json) in CONFIGS.iter().enumerate() {
        let mut seed = vec![0u8; 4];
        seed.extend_from_slice(json.as_bytes());
        write(dir, "config_json", &format!("config-{i}"), &seed)?;
    }
    Ok(())
}
