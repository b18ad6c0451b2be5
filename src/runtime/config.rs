//! The manager configuration: the JSON layout of README.md "Configuration reference" — the transport,
//! the storage and the `channelDefaults` (parsed by `channel/config.rs`). Every error names the
//! full path of the offending key; unknown keys are refused.

use serde_json::Value;

use crate::channel::config::{apply_channel, HistoryBackend};
use crate::channel::{ChannelConfig, ConfigError};
use crate::json_config::{as_object, check_keys, get_f64, get_str, get_u64, parse_root};
use crate::messaging::memory::{MemoryNetworkConfig, DEFAULT_PUBSUB_TOPIC};
use crate::storage::{Durability, StorageConfig};

/// Largest `transport.delayMs` bound accepted (10 minutes).
pub const MAX_MEMORY_DELAY_MS: u64 = 600_000;
/// Largest `transport.storeCapacity` accepted.
pub const MAX_MEMORY_STORE_CAPACITY: u64 = 1 << 20;
/// Smallest `storage.maxSizeBytes` accepted (1 MiB: the schema and one largest message).
pub const MIN_STORAGE_BYTES: u64 = 1 << 20;

/// Which transport a manager uses.
#[derive(Debug, Clone, PartialEq)]
pub enum TransportConfig {
    /// The embedded in-process network.
    Memory(MemoryNetworkConfig),
    /// The host application moves WakuMessages (`rc_transport_*`).
    Host { pubsub_topic: String },
    /// The native Waku Relay transport: this process is a Waku Relay node (feature `relay`).
    #[cfg(feature = "relay")]
    Relay(crate::messaging::relay::RelayConfig),
}

impl Default for TransportConfig {
    fn default() -> Self {
        TransportConfig::Memory(Default::default())
    }
}

/// Manager configuration.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ManagerConfig {
    pub transport: TransportConfig,
    /// `storage`: the database of the channels with `historyBackend: "sqlite"`; `None`: none.
    pub storage: Option<StorageConfig>,
    pub channel_defaults: ChannelConfig,
}

impl ManagerConfig {
    /// Parses the manager JSON (`None` or empty = defaults).
    pub fn from_json(json: Option<&str>) -> Result<Self, ConfigError> {
        let mut cfg = ManagerConfig::default();
        let Some(v) = parse_root(json)? else { return Ok(cfg) };
        let obj = as_object(&v, "config")?;
        check_keys(obj, "", &["transport", "storage", "channelDefaults"])?;
        if let Some(t) = obj.get("transport") {
            cfg.transport = parse_transport(t)?;
        }
        if let Some(s) = obj.get("storage") {
            cfg.storage = Some(parse_storage(s)?);
        }
        if let Some(d) = obj.get("channelDefaults") {
            apply_channel(&mut cfg.channel_defaults, d, "channelDefaults")?;
        }
        cfg.check_backend(&cfg.channel_defaults, "channelDefaults")?;
        Ok(cfg)
    }

    /// A channel configuration (found at `path`) asking for `historyBackend: "sqlite"` needs the
    /// manager's `storage`.
    pub(crate) fn check_backend(&self, channel: &ChannelConfig, path: &str) -> Result<(), ConfigError> {
        if channel.history_backend == HistoryBackend::Sqlite && self.storage.is_none() {
            let why = "\"sqlite\" needs the manager's storage.path (the database of the manager's durable channels)";
            return Err(ConfigError::invalid(&format!("{path}.sdsConfig.historyBackend"), why));
        }
        Ok(())
    }
}

/// `storage`: `{"path": "<file>", "durability": "process" | "power", "maxSizeBytes": n}`.
fn parse_storage(v: &Value) -> Result<StorageConfig, ConfigError> {
    let path = "storage";
    let obj = as_object(v, path)?;
    check_keys(obj, path, &["path", "durability", "maxSizeBytes"])?;
    let file = get_str(obj, path, "path")?
        .filter(|p| !p.is_empty())
        .ok_or_else(|| ConfigError::invalid("storage.path", "a non-empty file name is required"))?;
    let durability = match get_str(obj, path, "durability")?.unwrap_or("process") {
        "process" => Durability::Process,
        "power" => Durability::Power,
        other => return Err(ConfigError::invalid("storage.durability", format!("unknown durability {other:?} (expected \"process\" or \"power\")"))),
    };
    let max_size_bytes = get_u64(obj, path, "maxSizeBytes", MIN_STORAGE_BYTES, u64::MAX >> 1)?;
    Ok(StorageConfig { path: file.into(), durability, max_size_bytes })
}

fn parse_transport(v: &Value) -> Result<TransportConfig, ConfigError> {
    let path = "transport";
    let obj = as_object(v, path)?;
    let kind = get_str(obj, path, "kind")?.unwrap_or("memory");
    match kind {
        "memory" => {
            check_keys(obj, path, &["kind", "network", "pubsubTopic", "loss", "duplicate", "reorder", "delayMs", "seed", "storeCapacity"])?;
            let mut m = MemoryNetworkConfig::default();
            if let Some(n) = get_str(obj, path, "network")? {
                m.network = n.to_owned();
            }
            if let Some(t) = get_str(obj, path, "pubsubTopic")? {
                m.pubsub_topic = t.to_owned();
            }
            m.loss = get_f64(obj, path, "loss", 0.0, 1.0)?.unwrap_or(m.loss);
            m.duplicate = get_f64(obj, path, "duplicate", 0.0, 1.0)?.unwrap_or(m.duplicate);
            m.reorder = get_f64(obj, path, "reorder", 0.0, 1.0)?.unwrap_or(m.reorder);
            m.seed = get_u64(obj, path, "seed", 0, u64::MAX)?.unwrap_or(m.seed);
            m.store_capacity = get_u64(obj, path, "storeCapacity", 0, MAX_MEMORY_STORE_CAPACITY)?.map_or(m.store_capacity, |n| n as usize);
            if let Some(d) = obj.get("delayMs") {
                m.delay_ms = parse_delay(d)?;
            }
            Ok(TransportConfig::Memory(m))
        }
        "host" => {
            check_keys(obj, path, &["kind", "pubsubTopic"])?;
            let pubsub_topic = get_str(obj, path, "pubsubTopic")?.unwrap_or(DEFAULT_PUBSUB_TOPIC).to_owned();
            Ok(TransportConfig::Host { pubsub_topic })
        }
        "relay" => parse_relay(v),
        other => Err(ConfigError::invalid("transport.kind", format!("unknown transport {other:?} (expected \"memory\", \"host\" or \"relay\")"))),
    }
}

/// `transport` of kind `"relay"`: parsed and validated by the relay module; its errors name the key.
#[cfg(feature = "relay")]
fn parse_relay(v: &Value) -> Result<TransportConfig, ConfigError> {
    use crate::messaging::relay::{RelayConfig, RelayError};
    RelayConfig::from_json(v).map(TransportConfig::Relay).map_err(|e| match e {
        RelayError::Config { key, reason } => ConfigError::invalid(&key, reason),
        other => ConfigError::invalid("transport", other.to_string()),
    })
}

#[cfg(not(feature = "relay"))]
fn parse_relay(_: &Value) -> Result<TransportConfig, ConfigError> {
    Err(ConfigError::invalid("transport.kind", "\"relay\": this build of the library has no relay transport (cargo feature `relay`)"))
}

/// `transport.delayMs`: `[min, max]` milliseconds.
fn parse_delay(d: &Value) -> Result<(u64, u64), ConfigError> {
    let path = "transport.delayMs";
    let wrong = |expected| ConfigError::WrongType { path: path.to_owned(), expected };
    let arr = d.as_array().filter(|a| a.len() == 2).ok_or_else(|| wrong("[min, max]"))?;
    let lo = arr[0].as_u64().ok_or_else(|| wrong("non-negative integers"))?;
    let hi = arr[1].as_u64().ok_or_else(|| wrong("non-negative integers"))?;
    if lo > hi || hi > MAX_MEMORY_DELAY_MS {
        return Err(ConfigError::invalid(path, format!("[{lo}, {hi}] must satisfy min <= max <= {MAX_MEMORY_DELAY_MS}")));
    }
    Ok((lo, hi))
}
