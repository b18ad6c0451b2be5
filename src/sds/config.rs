//! SDS tunables. Defaults follow the Reliable Channel spec (`DefaultSdsConfig`) and @waku/sds.

/// Default of [`SdsConfig::max_clock_skew_ms`]: ten minutes, far beyond honest clock drift, far
/// below what would let one peer push every clock in the channel out of reach.
pub const DEFAULT_MAX_CLOCK_SKEW_MS: u64 = 600_000;
/// Largest [`SdsConfig::max_clock_skew_ms`] accepted (one hour).
pub const MAX_CLOCK_SKEW_LIMIT_MS: u64 = 3_600_000;

/// How content message ids are derived.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MessageIdScheme {
    /// spec: sds.message-id — `hex(keccak256(sender_id ‖ decimal wrap time in ns ‖ content))`:
    /// unique per chunk even for identical payloads.
    #[default]
    Keccak,
    /// `hex(sha256(content))`, what @waku/sds 0.0.8 does. Identical payloads collide, so this is
    /// only for reproducing the reference's bytes in interop tests.
    ReferenceSha256,
}

/// Configuration of one SDS engine. Every limit is here, named.
#[derive(Debug, Clone, PartialEq)]
pub struct SdsConfig {
    /// Wait this long for an acknowledgement before retransmitting (ms).
    pub acknowledgement_timeout_ms: u64,
    /// Retransmissions before a message is given up.
    pub max_retransmissions: u32,
    /// Entries of the local log carried as causal history.
    pub causal_history_size: usize,
    /// Bloom-filter hits that count as an acknowledgement.
    pub possible_acks_threshold: u32,
    /// A missing dependency is declared lost this long after it was first seen missing (ms), and a
    /// message waiting for dependencies is delivered at the latest this long after it arrived.
    pub dependency_timeout_ms: u64,
    /// Mean interval between idle sync messages (ms); each interval is randomised ±25 %.
    pub sync_interval_ms: u64,
    /// Idle syncs sent (one per interval) after the log last changed, before the channel goes quiet.
    pub idle_sync_rounds: u32,
    /// Most per-sender heads (latest message of a sender) carried by a sync message.
    pub max_sync_heads: usize,
    /// Local log capacity; the earliest arrivals are evicted.
    pub max_local_history: usize,
    /// spec: sds.lamport.skew — a received lamport timestamp moves our clock at most this far
    /// past our `now` (ms): one message with a huge lamport cannot pin every clock that hears it.
    pub max_clock_skew_ms: u64,
    /// Most messages waiting for dependencies.
    pub max_incoming_messages: usize,
    /// Most bytes (encoded SDS messages) waiting for dependencies.
    pub max_incoming_bytes: usize,
    /// Most dependencies tracked as missing at once.
    pub max_missing: usize,
    /// Most own messages awaiting acknowledgement.
    pub max_outgoing_messages: usize,
    /// Most bytes (encoded SDS messages) awaiting acknowledgement.
    pub max_outgoing_bytes: usize,
    /// How content message ids are derived.
    pub message_id_scheme: MessageIdScheme,
    /// Carry the bloom filter in every content message, as @waku/sds does. Off by default: a
    /// content message carries it only while it has news for peers (see `engine.rs`), which
    /// keeps 18,752 bytes off most messages of a one-way flow. Syncs always carry it.
    pub always_send_bloom: bool,
}

impl Default for SdsConfig {
    fn default() -> Self {
        SdsConfig {
            acknowledgement_timeout_ms: 5_000,
            max_retransmissions: 5,
            causal_history_size: 2,
            possible_acks_threshold: 2,
            dependency_timeout_ms: 60_000,
            sync_interval_ms: 30_000,
            idle_sync_rounds: 3,
            max_sync_heads: 32,
            max_local_history: 10_000,
            max_clock_skew_ms: DEFAULT_MAX_CLOCK_SKEW_MS,
            max_incoming_messages: 1_024,
            max_incoming_bytes: 32 * 1024 * 1024,
            max_missing: 8_192,
            max_outgoing_messages: 4_096,
            max_outgoing_bytes: 64 * 1024 * 1024,
            message_id_scheme: MessageIdScheme::Keccak,
            always_send_bloom: false,
        }
    }
}
