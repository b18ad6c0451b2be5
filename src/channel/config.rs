//! The channel configuration: `channelDefaults` of the manager JSON, or the JSON given when a
//! channel is opened (the layout in README.md "Configuration reference", with the seed spec's names).
//!
//! Impossible values (e.g. a chunk size that cannot fit a 150 KiB WakuMessage) are caught when the
//! manager is created or the channel opened, not on the first send. The JSON helpers and
//! [`ConfigError`] are shared with the manager configuration (`runtime/config.rs`).

use serde_json::Value;

pub use crate::json_config::ConfigError;
use crate::json_config::{as_object, check_keys, get_bool, get_f64, get_str, get_u64, join, parse_root};
use crate::ratelimit::{Accounting, RateLimitConfig};
use crate::sds::{SdsConfig, MAX_CLOCK_SKEW_LIMIT_MS};
use crate::segmentation::{ReassemblyConfig, DEFAULT_CHUNK_SIZE_BYTES, MAX_PAYLOAD_BYTES};
use crate::wire::{BLOOM_BYTES, MAX_ID_BYTES, MAX_RETRIEVAL_HINT_BYTES, MAX_WAKU_MESSAGE_BYTES};

/// Bytes reserved for the host's encryption hook to expand one message (nonce, tag, framing).
pub const ENCRYPTION_OVERHEAD_BUDGET: usize = 1_024;
/// Smallest chunk size accepted.
pub const MIN_CHUNK_SIZE_BYTES: usize = 1_024;
/// Most entries `causalHistorySize` may ask for.
pub const MAX_CAUSAL_HISTORY_SIZE: usize = 64;
/// Longest channel id, content topic or sender id accepted.
pub const MAX_NAME_BYTES: usize = MAX_ID_BYTES;

/// `sdsConfig.historyBackend`: where the channel's state lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HistoryBackend {
    /// In memory only: gone when the channel closes or the process ends.
    #[default]
    Memory,
    /// In the manager's database (`storage.path`), resumed when the channel is reopened.
    Sqlite,
}

/// Per-channel configuration (`channelDefaults`, or the JSON given when opening a channel).
#[derive(Debug, Clone, PartialEq)]
pub struct ChannelConfig {
    /// `segmentationConfig.chunkSizeBytes`.
    pub chunk_size_bytes: usize,
    /// Reassembly bounds (`segmentationConfig.reassembly*`).
    pub reassembly: ReassemblyConfig,
    /// `sdsConfig.*`.
    pub sds: SdsConfig,
    /// `rateLimitConfig.*`.
    pub rate_limit: RateLimitConfig,
    /// `sendQueue.maxPendingChunks`: chunks accepted by `send` and not yet final (backpressure).
    pub max_pending_chunks: usize,
    /// `sendQueue.maxPendingBytes`: payload bytes accepted by `send` and not yet final.
    pub max_pending_bytes: usize,
    /// `sdsConfig.historyBackend` (the runtime checks that the manager has storage for it).
    pub history_backend: HistoryBackend,
}

impl Default for ChannelConfig {
    fn default() -> Self {
        let max_pending_chunks = 4_096;
        let max_pending_bytes = 64 * 1024 * 1024;
        let mut c = ChannelConfig {
            chunk_size_bytes: DEFAULT_CHUNK_SIZE_BYTES,
            reassembly: ReassemblyConfig::default(),
            sds: SdsConfig::default(),
            rate_limit: RateLimitConfig::default(),
            max_pending_chunks,
            max_pending_bytes,
            history_backend: HistoryBackend::Memory,
        };
        c.derive_bounds();
        c
    }
}

impl ChannelConfig {
    /// This config with the channel JSON applied on top (`None` or empty = unchanged).
    pub fn with_json(&self, json: Option<&str>) -> Result<Self, ConfigError> {
        let mut cfg = self.clone();
        if let Some(v) = parse_root(json)? {
            apply_channel(&mut cfg, &v, "channel")?;
        }
        Ok(cfg)
    }

    /// Sets the bounds that follow from others, so that no inner buffer refuses what an outer one
    /// accepted: the SDS outgoing buffer and the rate-limit queue from the send queue, and the
    /// incoming buffers from the chunk size ([`Self::raise_incoming_bounds`]).
    pub fn derive_bounds(&mut self) {
        self.sds.max_outgoing_messages = self.max_pending_chunks;
        self.sds.max_outgoing_bytes = self.max_pending_bytes * 2 + self.max_pending_chunks * (BLOOM_BYTES + 4096);
        self.rate_limit.max_queued_items = self.max_pending_chunks + 1_024;
        self.rate_limit.max_queued_bytes = self.sds.max_outgoing_bytes;
        self.raise_incoming_bounds();
    }

    /// The SDS incoming buffer must hold the chunks of two maximal messages waiting behind one
    /// missing early chunk: with small chunks the defaults cannot (1 MiB at 1 KiB chunks is 1,024
    /// chunks of ~20 KB), and chunks dropped as buffer-full after other peers acknowledged them
    /// are never retransmitted. Only ever raises. (Found by tests/simulation.rs.)
    pub fn raise_incoming_bounds(&mut self) {
        let per_message = crate::segmentation::chunk_count(MAX_PAYLOAD_BYTES, self.chunk_size_bytes.max(1));
        let encoded_chunk = self.chunk_size_bytes + BLOOM_BYTES + 2_048;
        self.sds.max_incoming_messages = self.sds.max_incoming_messages.max(2 * per_message);
        self.sds.max_incoming_bytes = self.sds.max_incoming_bytes.max(2 * per_message * encoded_chunk);
    }

    /// The largest SDS + WakuMessage overhead a content message of this channel can have, for a
    /// content topic of `topic_len` bytes: every id at its maximum, full history, full bloom.
    pub fn worst_case_overhead(&self, topic_len: usize) -> usize {
        let id = MAX_ID_BYTES + 3;
        let entry = 3 + id + (MAX_RETRIEVAL_HINT_BYTES + 3) + id;
        let sds = 3 * id + 11 + (self.sds.causal_history_size + 1) * entry + (BLOOM_BYTES + 4) + 5;
        let chunk = 3 * (MAX_ID_BYTES + 3) + 12 + 5;
        let waku = (topic_len + 3) + 6 + 11 + (crate::wire::SPEC_MARKER.len() + 2) + 3 + 5;
        sds + chunk + waku + ENCRYPTION_OVERHEAD_BUDGET
    }

    /// Checks that a full chunk fits a WakuMessage on a topic of `topic_len` bytes.
    pub fn check_fits(&self, path: &str, topic_len: usize) -> Result<(), ConfigError> {
        let max = MAX_WAKU_MESSAGE_BYTES.saturating_sub(self.worst_case_overhead(topic_len));
        if self.chunk_size_bytes > max {
            return Err(ConfigError::invalid(
                &format!("{path}.segmentationConfig.chunkSizeBytes"),
                format!(
                    "{} cannot fit a {}-byte WakuMessage with the SDS overhead (causal history of {}, bloom filter, ids, chunk header, encryption budget): at most {max}",
                    self.chunk_size_bytes, MAX_WAKU_MESSAGE_BYTES, self.sds.causal_history_size
                ),
            ));
        }
        Ok(())
    }
}

/// Applies a channel JSON object found at `path` (`channelDefaults` or `channel`) over `cfg`,
/// then derives the dependent bounds and checks that a full chunk fits a WakuMessage.
pub(crate) fn apply_channel(cfg: &mut ChannelConfig, v: &Value, path: &str) -> Result<(), ConfigError> {
    let obj = as_object(v, path)?;
    check_keys(obj, path, &["segmentationConfig", "sdsConfig", "rateLimitConfig", "sendQueue"])?;
    if let Some(s) = obj.get("segmentationConfig") {
        let p = join(path, "segmentationConfig");
        let o = as_object(s, &p)?;
        check_keys(o, &p, &["chunkSizeBytes", "reassemblyMaxBytes", "reassemblyMaxMessages", "reassemblyExpiryMs"])?;
        if let Some(n) = get_u64(o, &p, "chunkSizeBytes", MIN_CHUNK_SIZE_BYTES as u64, MAX_PAYLOAD_BYTES as u64)? {
            cfg.chunk_size_bytes = n as usize;
        }
        if let Some(n) = get_u64(o, &p, "reassemblyMaxBytes", MAX_PAYLOAD_BYTES as u64, 1 << 32)? {
            cfg.reassembly.max_bytes = n as usize;
        }
        if let Some(n) = get_u64(o, &p, "reassemblyMaxMessages", 1, 1 << 20)? {
            cfg.reassembly.max_messages = n as usize;
        }
        if let Some(n) = get_u64(o, &p, "reassemblyExpiryMs", 1, u32::MAX as u64)? {
            cfg.reassembly.expiry_ms = n;
        }
    }
    if let Some(s) = obj.get("sdsConfig") {
        let p = join(path, "sdsConfig");
        let o = as_object(s, &p)?;
        check_keys(
            o,
            &p,
            &[
                "historyBackend",
                "acknowledgementTimeoutMs",
                "maxRetransmissions",
                "causalHistorySize",
                "possibleAcksThreshold",
                "dependencyTimeoutMs",
                "syncIntervalMs",
                "idleSyncRounds",
                "maxLocalHistory",
                "maxClockSkewMs",
            ],
        )?;
        if let Some(b) = get_str(o, &p, "historyBackend")? {
            cfg.history_backend = match b {
                "memory" => HistoryBackend::Memory,
                "sqlite" => HistoryBackend::Sqlite,
                _ => {
                    return Err(ConfigError::invalid(
                        &join(&p, "historyBackend"),
                        format!("unsupported backend {b:?} (expected \"memory\" or \"sqlite\")"),
                    ))
                }
            };
        }
        let s = &mut cfg.sds;
        s.acknowledgement_timeout_ms = get_u64(o, &p, "acknowledgementTimeoutMs", 1, 3_600_000)?.unwrap_or(s.acknowledgement_timeout_ms);
        s.max_retransmissions = get_u64(o, &p, "maxRetransmissions", 0, 1_000)?.map_or(s.max_retransmissions, |n| n as u32);
        s.causal_history_size = get_u64(o, &p, "causalHistorySize", 0, MAX_CAUSAL_HISTORY_SIZE as u64)?.map_or(s.causal_history_size, |n| n as usize);
        s.possible_acks_threshold = get_u64(o, &p, "possibleAcksThreshold", 1, 1_000)?.map_or(s.possible_acks_threshold, |n| n as u32);
        s.dependency_timeout_ms = get_u64(o, &p, "dependencyTimeoutMs", 1, 86_400_000)?.unwrap_or(s.dependency_timeout_ms);
        s.sync_interval_ms = get_u64(o, &p, "syncIntervalMs", 0, 86_400_000)?.unwrap_or(s.sync_interval_ms);
        s.idle_sync_rounds = get_u64(o, &p, "idleSyncRounds", 0, 100)?.map_or(s.idle_sync_rounds, |n| n as u32);
        s.max_local_history = get_u64(o, &p, "maxLocalHistory", 1, 10_000_000)?.map_or(s.max_local_history, |n| n as usize);
        s.max_clock_skew_ms = get_u64(o, &p, "maxClockSkewMs", 0, MAX_CLOCK_SKEW_LIMIT_MS)?.unwrap_or(s.max_clock_skew_ms);
    }
    if let Some(s) = obj.get("rateLimitConfig") {
        let p = join(path, "rateLimitConfig");
        let o = as_object(s, &p)?;
        check_keys(o, &p, &["enabled", "epochSizeMs", "messagesPerEpoch", "accounting", "approachThreshold"])?;
        let r = &mut cfg.rate_limit;
        r.enabled = get_bool(o, &p, "enabled")?.unwrap_or(r.enabled);
        r.epoch_size_ms = get_u64(o, &p, "epochSizeMs", 1, 86_400_000)?.unwrap_or(r.epoch_size_ms);
        r.messages_per_epoch = get_u64(o, &p, "messagesPerEpoch", 1, u32::MAX as u64)?.map_or(r.messages_per_epoch, |n| n as u32);
        r.approach_threshold = get_f64(o, &p, "approachThreshold", 0.0, 1.0)?.unwrap_or(r.approach_threshold);
        if let Some(a) = get_str(o, &p, "accounting")? {
            r.accounting = match a {
                "firstChunk" => Accounting::FirstChunk,
                "allMessages" => Accounting::AllMessages,
                other => {
                    let why = format!("unknown accounting {other:?} (expected \"firstChunk\" or \"allMessages\")");
                    return Err(ConfigError::invalid(&join(&p, "accounting"), why));
                }
            };
        }
    }
    if let Some(s) = obj.get("sendQueue") {
        let p = join(path, "sendQueue");
        let o = as_object(s, &p)?;
        check_keys(o, &p, &["maxPendingChunks", "maxPendingBytes"])?;
        if let Some(n) = get_u64(o, &p, "maxPendingChunks", 1, 1 << 20)? {
            cfg.max_pending_chunks = n as usize;
        }
        if let Some(n) = get_u64(o, &p, "maxPendingBytes", MAX_PAYLOAD_BYTES as u64, 1 << 34)? {
            cfg.max_pending_bytes = n as usize;
        }
    }
    cfg.derive_bounds();
    cfg.check_fits(path, 0)
}
