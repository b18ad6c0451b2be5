//! Rate-limit tunables. Defaults follow the Reliable Channel spec (`DefaultRateLimitConfig`) and
//! the RLN relay defaults (100 messages per 10-minute epoch).

use std::fmt;
use std::str::FromStr;

/// Default RLN epoch length (ms): `DefaultRateLimitConfig.epochSizeMs`.
pub const DEFAULT_EPOCH_SIZE_MS: u64 = 600_000;
/// Default RLN message budget per epoch.
pub const DEFAULT_MESSAGES_PER_EPOCH: u32 = 100;
/// Default fraction of the budget above which droppable traffic (sync, ephemeral) is refused.
pub const DEFAULT_APPROACH_THRESHOLD: f64 = 0.9;
/// Default fraction of `messages_per_epoch` that sync traffic (acknowledgement, idle and repair
/// syncs, repair answers, rebroadcasts) may spend per epoch: the rest is kept for content and
/// retransmissions, whatever a hostile peer makes us want to say (issue #10 item 6).
pub const DEFAULT_CONTROL_SHARE: f64 = 0.5;
/// Default bound on items waiting for a later epoch.
pub const DEFAULT_MAX_QUEUED_ITEMS: usize = 4_096;
/// Default bound on bytes waiting for a later epoch.
pub const DEFAULT_MAX_QUEUED_BYTES: usize = 64 * 1024 * 1024;

/// Absorbs binary floating-point error in `threshold × limit` so that e.g. `0.29 × 100`
/// (= 28.999999999999996 in f64) yields 29, not 28. Far below any meaningful fraction of a message.
const THRESHOLD_EPSILON: f64 = 1e-9;

/// Which WakuMessages count against the RLN budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub enum Accounting {
    /// spec: ratelimit.first-chunk — only the first chunk of each message costs 1; later chunks
    /// of the same message cost 0 (receivers MUST accept them rate-limit wise).
    #[default]
    FirstChunk,
    /// Every WakuMessage costs 1: for relays that enforce RLN on every message.
    AllMessages,
}

impl Accounting {
    /// The configuration spelling: `"firstChunk"` or `"allMessages"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Accounting::FirstChunk => "firstChunk",
            Accounting::AllMessages => "allMessages",
        }
    }
}

impl fmt::Display for Accounting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An accounting name that is neither `firstChunk` nor `allMessages`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown rate-limit accounting {0:?} (expected \"firstChunk\" or \"allMessages\")")]
pub struct ParseAccountingError(pub String);

impl FromStr for Accounting {
    type Err = ParseAccountingError;

    /// Accepts `firstChunk` / `allMessages`, ASCII case-insensitively.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.eq_ignore_ascii_case("firstChunk") {
            Ok(Accounting::FirstChunk)
        } else if s.eq_ignore_ascii_case("allMessages") {
            Ok(Accounting::AllMessages)
        } else {
            Err(ParseAccountingError(s.to_owned()))
        }
    }
}

/// Why a [`RateLimitConfig`] is unusable.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RateLimitConfigError {
    /// Epochs must last at least one millisecond.
    #[error("epoch_size_ms must be > 0")]
    ZeroEpochSize,
    /// With limiting enabled and no budget, nothing that costs could ever be sent.
    #[error("messages_per_epoch must be > 0 when rate limiting is enabled")]
    ZeroMessagesPerEpoch,
    /// The threshold is a fraction of the budget.
    #[error("approach_threshold must be within [0, 1], got {0}")]
    ThresholdOutOfRange(f64),
    /// The control share is a fraction of the budget.
    #[error("control_share must be within [0, 1], got {0}")]
    ControlShareOutOfRange(f64),
}

/// Configuration of one [`RateLimiter`](super::RateLimiter). Every limit is here, named.
#[derive(Debug, Clone, PartialEq)]
pub struct RateLimitConfig {
    /// spec: ratelimit.enabled — when false nothing is delayed or dropped (usage is still counted).
    pub enabled: bool,
    /// spec: ratelimit.epoch — RLN epoch length (ms); MUST match the relay's `epochSizeMs`.
    pub epoch_size_ms: u64,
    /// RLN budget: messages (per [`Accounting`]) allowed in one epoch.
    pub messages_per_epoch: u32,
    /// Which WakuMessages cost budget.
    pub accounting: Accounting,
    /// Fraction of `messages_per_epoch` usable by droppable traffic (sync, ephemeral): see
    /// [`RateLimitConfig::approach_limit`].
    pub approach_threshold: f64,
    /// spec: ratelimit.control-share — fraction of `messages_per_epoch` sync traffic may spend in
    /// one epoch (`rateLimitConfig.controlShare`): see [`RateLimitConfig::control_limit`].
    pub control_share: f64,
    /// Most items waiting for a later epoch.
    pub max_queued_items: usize,
    /// Most bytes (as reported by the caller per item) waiting for a later epoch.
    pub max_queued_bytes: usize,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        RateLimitConfig {
            enabled: true,
            epoch_size_ms: DEFAULT_EPOCH_SIZE_MS,
            messages_per_epoch: DEFAULT_MESSAGES_PER_EPOCH,
            accounting: Accounting::FirstChunk,
            approach_threshold: DEFAULT_APPROACH_THRESHOLD,
            control_share: DEFAULT_CONTROL_SHARE,
            max_queued_items: DEFAULT_MAX_QUEUED_ITEMS,
            max_queued_bytes: DEFAULT_MAX_QUEUED_BYTES,
        }
    }
}

impl RateLimitConfig {
    /// Rejects values the limiter would otherwise have to clamp (see [`RateLimiter::new`](super::RateLimiter::new)).
    pub fn validate(&self) -> Result<(), RateLimitConfigError> {
        if self.epoch_size_ms == 0 {
            return Err(RateLimitConfigError::ZeroEpochSize);
        }
        if self.enabled && self.messages_per_epoch == 0 {
            return Err(RateLimitConfigError::ZeroMessagesPerEpoch);
        }
        if !(0.0..=1.0).contains(&self.approach_threshold) {
            // Also catches NaN, which is in no range.
            return Err(RateLimitConfigError::ThresholdOutOfRange(self.approach_threshold));
        }
        if !(0.0..=1.0).contains(&self.control_share) {
            return Err(RateLimitConfigError::ControlShareOutOfRange(self.control_share));
        }
        Ok(())
    }

    /// The epoch length actually used: `epoch_size_ms`, at least 1 so division is defined.
    pub fn effective_epoch_size_ms(&self) -> u64 {
        self.epoch_size_ms.max(1)
    }

    /// spec: ratelimit.approach — the per-epoch usage droppable traffic may bring the budget to:
    /// `floor(approach_threshold × messages_per_epoch)` (with a 1e-9 guard against float error),
    /// within `[0, messages_per_epoch]`. A threshold below 0 counts as 0, above 1 as 1, and NaN as
    /// the default 0.9. Defaults: `floor(0.9 × 100) = 90`.
    pub fn approach_limit(&self) -> u32 {
        share_of(self.messages_per_epoch, self.approach_threshold, DEFAULT_APPROACH_THRESHOLD)
    }

    /// spec: ratelimit.control-share — the most budget sync traffic may spend in one epoch:
    /// `floor(control_share × messages_per_epoch)`, rounded and clamped like
    /// [`Self::approach_limit`] (NaN counts as the default 0.5), but at least 1 when the share is
    /// above 0 (a small budget still lets one sync out per epoch). Defaults: 50 of 100.
    pub fn control_limit(&self) -> u32 {
        let limit = share_of(self.messages_per_epoch, self.control_share, DEFAULT_CONTROL_SHARE);
        if self.control_share > 0.0 || self.control_share.is_nan() {
            limit.max(1).min(self.messages_per_epoch)
        } else {
            limit
        }
    }
}

/// `floor(t × limit)` within `[0, limit]`, `t` NaN counting as `default`.
fn share_of(limit: u32, t: f64, default: f64) -> u32 {
    let t = if t.is_nan() { default } else { t };
    if t <= 0.0 {
        return 0;
    }
    if t >= 1.0 {
        return limit;
    }
    let v = (t * f64::from(limit) + THRESHOLD_EPSILON).floor();
    // `as` saturates; the min keeps the result within the budget whatever the rounding.
    (v as u32).min(limit)
}
