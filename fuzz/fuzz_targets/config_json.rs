//! The configuration JSON parsers, `ManagerConfig::from_json` and `ChannelConfig::with_json`
//! (`crate::channel::config` on this branch), on raw strings and on JSON built from the known
//! keys with values of every type and range. Never a panic; an error names its key; an accepted
//! channel config fits a WakuMessage, keeps its derived bounds, is idempotent, and opens a channel
//! that takes a send within its bounds; a manager's `channelDefaults` parse as a channel config.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use reliable_channel::channel::{Channel, ChannelConfig};
use reliable_channel::runtime::ManagerConfig;
use serde_json::{Map, Value};

const CHANNEL_KEYS: &[&str] = &[
    "segmentationConfig.chunkSizeBytes",
    "segmentationConfig.reassemblyMaxBytes",
    "segmentationConfig.reassemblyMaxMessages",
    "segmentationConfig.reassemblyExpiryMs",
    "sdsConfig.historyBackend",
    "sdsConfig.acknowledgementTimeoutMs",
    "sdsConfig.maxRetransmissions",
    "sdsConfig.causalHistorySize",
    "sdsConfig.possibleAcksThreshold",
    "sdsConfig.dependencyTimeoutMs",
    "sdsConfig.syncIntervalMs",
    "sdsConfig.idleSyncRounds",
    "sdsConfig.maxLocalHistory",
    "rateLimitConfig.enabled",
    "rateLimitConfig.epochSizeMs",
    "rateLimitConfig.messagesPerEpoch",
    "rateLimitConfig.accounting",
    "rateLimitConfig.approachThreshold",
    "rateLimitConfig.controlShare",
    "sendQueue.maxPendingChunks",
    "sendQueue.maxPendingBytes",
];
const TRANSPORT_KEYS: &[&str] = &["kind", "network", "pubsubTopic", "loss", "duplicate", "reorder", "delayMs", "seed", "storeCapacity"];
const STRINGS: &[&str] = &["memory", "host", "firstChunk", "allMessages", "sqlite", "", "/waku/2/rs/0/0"];

#[derive(Debug, Arbitrary)]
enum Key {
    /// A channel key (`CHANNEL_KEYS[i % len]`), under `channelDefaults` for a manager.
    Channel(u8),
    /// `transport.TRANSPORT_KEYS[i % len]` (managers only).
    Transport(u8),
    /// A key of our own at the top level or in a section.
    Unknown { section: Option<u8>, name: String },
}

#[derive(Debug, Arbitrary)]
enum Val {
    U64(u64),
    Small(u16),
    Neg(i32),
    F64(f64),
    Str(u8),
    Text(String),
    Bool(bool),
    Null,
    Pair(u64, u64),
    Object,
}

#[derive(Debug, Arbitrary)]
enum Input {
    Raw(String),
    Channel(Vec<(Key, Val)>),
    Manager(Vec<(Key, Val)>),
}

fn value(v: &Val) -> Value {
    match v {
        Val::U64(n) => Value::from(*n),
        Val::Small(n) => Value::from(*n),
        Val::Neg(n) => Value::from(*n),
        Val::F64(f) => serde_json::Number::from_f64(*f).map_or(Value::Null, Value::Number),
        Val::Str(i) => Value::from(STRINGS[*i as usize % STRINGS.len()]),
        Val::Text(s) => Value::from(s.as_str()),
        Val::Bool(b) => Value::from(*b),
        Val::Null => Value::Null,
        Val::Pair(a, b) => Value::from(vec![*a, *b]),
        Val::Object => Value::Object(Map::new()),
    }
}

/// Sets `path` (dot-separated) in `root`, making objects on the way.
fn set(root: &mut Value, path: &str, v: Value) {
    let mut cur = root;
    let mut parts = path.split('.').peekable();
    while let Some(p) = parts.next() {
        if !cur.is_object() {
            *cur = Value::Object(Map::new());
        }
        let obj = cur.as_object_mut().expect("just made an object");
        if parts.peek().is_none() {
            obj.insert(p.to_owned(), v);
            return;
        }
        cur = obj.entry(p.to_owned()).or_insert_with(|| Value::Object(Map::new()));
    }
}

fn build(settings: &[(Key, Val)], manager: bool) -> String {
    let mut root = Value::Object(Map::new());
    let prefix = if manager { "channelDefaults." } else { "" };
    for (k, v) in settings {
        let path = match k {
            Key::Channel(i) => format!("{prefix}{}", CHANNEL_KEYS[*i as usize % CHANNEL_KEYS.len()]),
            Key::Transport(i) => format!("transport.{}", TRANSPORT_KEYS[*i as usize % TRANSPORT_KEYS.len()]),
            Key::Unknown { section: Some(i), name } => {
                let section = CHANNEL_KEYS[*i as usize % CHANNEL_KEYS.len()].split('.').next().unwrap_or_default();
                format!("{prefix}{section}.{}", name.replace('.', "_"))
            }
            Key::Unknown { section: None, name } => name.replace('.', "_"),
        };
        set(&mut root, &path, value(v));
    }
    root.to_string()
}

fn check_channel(json: &str) {
    match ChannelConfig::default().with_json(Some(json)) {
        Ok(c) => {
            c.check_fits("channel", 0).expect("an accepted config fits a WakuMessage");
            assert_eq!(c.sds.max_outgoing_messages, c.max_pending_chunks, "derived SDS outgoing bound");
            assert_eq!(c.rate_limit.max_queued_items, c.max_pending_chunks + 1_024, "derived rate-limit queue bound");
            assert_eq!(c.with_json(Some(json)).as_ref(), Ok(&c), "applying a config twice changes it");
            let mut ch = Channel::new("fuzz", "/fuzz/1/config/proto", "me", c, 1_700_000_000_000, 1);
            ch.send(1_700_000_000_000, "r", b"x", false).expect("a fresh channel takes a 1-byte send");
            for (what, value, bound) in ch.bounds() {
                assert!(value <= bound, "{what} {value} > {bound}");
            }
        }
        Err(e) => {
            let e = e.to_string();
            assert!(e.starts_with("channel") || e.starts_with("invalid JSON"), "error names no key: {e}")
        }
    }
}

fn check_manager(json: &str) {
    match ManagerConfig::from_json(Some(json)) {
        Ok(_) => {
            // The parser trims Unicode whitespace (form feeds, no-break spaces) before parsing.
            let Ok(v) = serde_json::from_str::<Value>(json.trim()) else {
                assert!(json.trim().is_empty(), "accepted a manager config that is not JSON");
                return;
            };
            // Compare through one serialisation of the same value: serde_json's float parsing
            // is not exact (no `float_roundtrip`), so the original text and a re-serialisation
            // may differ in the last bit of a number.
            let Ok(m) = ManagerConfig::from_json(Some(&v.to_string())) else { return };
            let expected = match v.get("channelDefaults") {
                Some(d) => ChannelConfig::default().with_json(Some(&d.to_string())).expect("accepted channelDefaults parse as a channel config"),
                None => ChannelConfig::default(),
            };
            assert_eq!(m.channel_defaults, expected, "channelDefaults differ from the same JSON parsed as a channel config");
        }
        Err(e) => assert!(!e.to_string().is_empty()),
    }
}

fuzz_target!(|input: Input| match input {
    Input::Raw(s) => {
        check_channel(&s);
        check_manager(&s);
    }
    Input::Channel(settings) => check_channel(&build(&settings, false)),
    Input::Manager(settings) => check_manager(&build(&settings, true)),
});
