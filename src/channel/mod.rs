//! The reliable channel: segmentation → SDS → rate limit → encryption → dispatch, and back.
//!
//! | file           | concern                                                               |
//! |----------------|-----------------------------------------------------------------------|
//! | `config.rs`    | the channel's JSON configuration, validation, worst-case size check   |
//! | `crypto.rs`    | the encryption hook                                                   |
//! | `events.rs`    | what the application is told (RECEIVED, SENT, DELIVERED, ...)         |
//! | `outbox.rs`    | the sending side shared with the API threads: the one check of a send, its pending counts, segmentation and chunk ids |
//! | `send_state.rs`| per-send state machine: one RequestId, one entry per chunk            |
//! | `pipeline.rs`  | the sans-I/O [`Channel`] tying segmentation, SDS and rate limiting    |
//! | `pipeline/snapshot.rs` | a durable channel's changes and snapshot as plain data, its restore |
//! | `pipeline/store_timing.rs` | where a store serves our messages: later retransmissions and acks, content wrapped after its predecessor's hint |
//! | `pipeline/inspect.rs` | the channel's bounded buffers and counters |
//! | `retrieval.rs` | store lookups of missing dependencies: batches, backoff, cap per minute |
//! | `stats.rs`     | per-channel counters                                                  |

pub mod config;
mod crypto;
mod events;
mod outbox;
mod pipeline;
mod retrieval;
mod send_state;
mod stats;

pub use config::{ChannelConfig, ConfigError};
pub use crypto::{CryptoError, Encryption};
pub use events::ChannelEvent;
pub use outbox::{Outbox, PreparedChunk, PreparedSend, Reservation};
pub use pipeline::Channel;
pub use pipeline::{hint_wait_ms, HINT_WAIT_DIVISOR, STORE_ACK_DELAY_SCALE, STORE_FIRST_RETRANSMIT_TIMEOUTS};
pub use pipeline::{
    Change, ChannelAction, ChannelChanges, ChannelSnapshot, ClockBounds, SendError, StoredChunk, StoredIncoming, StoredPartialChunk, StoredSend,
    LAMPORT_RESERVE, WRAP_RESERVE_NS,
};
pub use retrieval::{CROWDED_MISSING, MAX_CROWDED_LOOKUPS_PER_MINUTE, MAX_STORE_LOOKUPS_PER_MINUTE, MAX_STORE_LOOKUP_BATCH};
pub use stats::ChannelStats;
