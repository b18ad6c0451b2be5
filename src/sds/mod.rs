//! Scalable Data Sync: one participant's state for one channel, sans-I/O.
//!
//! The engine never reads a clock, sleeps, spawns or does I/O. Every call takes `now` (Unix
//! milliseconds, clamped to be non-decreasing) and records what happened as [`SdsEvent`]s, which
//! the caller drains with [`SdsEngine::poll_event`]. Timers are reported by
//! [`SdsEngine::next_deadline`] and fired by [`SdsEngine::handle_timeout`].
//!
//! | file            | concern                                                        |
//! |-----------------|----------------------------------------------------------------|
//! | `config.rs`     | tunables and their defaults                                    |
//! | `history.rs`    | the local log behind the [`HistoryStore`] storage seam          |
//! | `outgoing.rs`   | unacknowledged own messages: acks, retransmission, give-up      |
//! | `incoming.rs`   | messages waiting for causal dependencies, missing/lost tracking |
//! | `sync.rs`       | when to send sync messages                                     |
//! | `engine.rs`     | the state machine tying them together                          |

mod config;
mod engine;
mod events;
mod history;
mod incoming;
mod outgoing;
mod sync;

pub use config::{MessageIdScheme, SdsConfig};
pub use engine::{message_id, ReceiveOutcome, SdsEngine, SdsError, SdsStats, WrapClock, Wrapped};
pub use events::{Delivered, MissingDependency, SdsEvent};
pub use history::{HistoryStore, LogEntry, MemoryHistory};

/// Message ids are opaque strings shared between the engine's tables without copying.
pub type MessageId = std::sync::Arc<str>;
