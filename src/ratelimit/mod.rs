//! Rate Limit Manager: keeps a channel's dispatches within its RLN budget, sans-I/O.
//!
//! RLN relays accept at most `messages_per_epoch` messages per sender per epoch; exceeding it
//! gets the sender's messages dropped and, with slashing, the sender excluded. The limiter is the
//! only gate between the channel and the transport, so every WakuMessage the channel produces
//! (first dispatches, SDS retransmissions, sync messages, ephemeral chunks) is offered to it with
//! its [`MessageClass`], and the budget holds whatever mix the channel sends.
//!
//! - spec: ratelimit.epoch — epoch = `floor(now_unix_ms / epoch_size_ms)`; only the current
//!   epoch's usage is kept. `now` is passed in and clamped to be non-decreasing: the limiter never
//!   reads a clock, sleeps or spawns.
//! - spec: ratelimit.first-chunk — under [`Accounting::FirstChunk`] (default) only chunk 0 of a
//!   message costs 1, fresh or retransmitted; a sync message costs 1. [`Accounting::AllMessages`]
//!   charges 1 for every WakuMessage.
//! - spec: ratelimit.delay — content chunks and retransmissions that do not fit the current
//!   epoch wait in one bounded FIFO queue and are released, in order, once an epoch has room.
//!   Strict FIFO: while anything is queued every later offer queues behind it, even at cost 0, so
//!   chunks of a message are never reordered. A full queue hands the item back ([`Admit::Full`]);
//!   [`RateLimiter::has_room`] lets the caller refuse a send up front instead.
//! - spec: ratelimit.approach — sync and ephemeral traffic is best effort and never waits: it is
//!   admitted only while nothing is queued and `cost == 0 || used + cost <= approach_limit`,
//!   where `approach_limit = floor(approach_threshold × messages_per_epoch)` (90 of 100 by
//!   default); otherwise it is handed back as [`Admit::Dropped`] and counted. This keeps the last
//!   `messages_per_epoch − approach_limit` messages of each epoch for reliable content.
//! - spec: ratelimit.control-share — sync traffic (class [`MessageClass::Sync`]: syncs, repair
//!   answers, rebroadcasts) is also admitted only while the epoch's sync spending stays within
//!   `control_limit = floor(control_share × messages_per_epoch)` (50 of 100 by default), so that
//!   however much a peer makes us want to repair, content and retransmissions keep the rest.
//! - spec: ratelimit.enabled — `enabled: false` admits everything at once; usage is still
//!   counted in [`RateLimitStats`].
//!
//! Invariant: with limiting enabled, the cost charged in any epoch never exceeds
//! `messages_per_epoch` (charging happens only in `offer` and `next_ready`, both guarded).
//!
//! | file          | concern                                                  |
//! |---------------|----------------------------------------------------------|
//! | `config.rs`   | tunables, defaults, validation, the approach-limit rule  |
//! | `limiter.rs`  | costs, the epoch counter and the FIFO queue              |

mod config;
mod limiter;

pub use config::{
    Accounting, ParseAccountingError, RateLimitConfig, RateLimitConfigError, DEFAULT_APPROACH_THRESHOLD, DEFAULT_CONTROL_SHARE,
    DEFAULT_EPOCH_SIZE_MS, DEFAULT_MAX_QUEUED_BYTES, DEFAULT_MAX_QUEUED_ITEMS, DEFAULT_MESSAGES_PER_EPOCH,
};
pub use limiter::{Admit, Discard, MessageClass, RateLimitStats, RateLimiter};
