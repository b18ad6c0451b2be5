//! The reliable channel: segmentation → SDS → rate limit → encryption → dispatch, and back.
//!
//! | file           | concern                                                          |
//! |----------------|------------------------------------------------------------------|
//! | `config.rs`    | JSON configuration, validation, worst-case size check             |
//! | `crypto.rs`    | the encryption hook                                               |
//! | `events.rs`    | what the application is told (RECEIVED, SENT, DELIVERED, ...)     |
//! | `prepare.rs`   | segmentation and chunk ids, done on the sending thread            |
//! | `send_state.rs`| per-send state machine: one RequestId, one entry per chunk        |
//! | `channel.rs`   | the sans-I/O channel tying segmentation, SDS and rate limiting     |
//! | `stats.rs`     | per-channel counters                                              |

mod channel;
pub mod config;
mod crypto;
mod events;
mod prepare;
mod send_state;
mod stats;

pub use channel::{Channel, ChannelAction, SendError};
pub use config::{ChannelConfig, ConfigError, ManagerConfig, TransportConfig};
pub use crypto::{CryptoError, Encryption};
pub use events::ChannelEvent;
pub use prepare::{prepare_send, PreparedChunk, PreparedSend};
pub use stats::ChannelStats;
