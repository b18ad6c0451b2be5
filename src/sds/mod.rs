//! Scalable Data Sync: one participant's state for one channel, sans-I/O.
//!
//! The engine never reads a clock, sleeps, spawns or does I/O. Every call takes `now` (Unix
//! milliseconds, clamped to be non-decreasing) and records what happened as [`SdsEvent`]s, which
//! the caller drains with [`SdsEngine::poll_event`]. Timers are reported by
//! [`SdsEngine::next_deadline`] and fired by [`SdsEngine::handle_timeout`].
//!
//! | file          | concern                                                                |
//! |---------------|------------------------------------------------------------------------|
//! | `config.rs`   | tunables and their defaults                                            |
//! | `events.rs`   | what the engine reports: events, wrap/receive results, counters        |
//! | `id.rs`       | message ids: content/ephemeral ids, the wrap clock, sync ids           |
//! | `history.rs`  | the local log behind the [`HistoryStore`] storage seam, causal history |
//! | `durable.rs`  | the log of a durable channel: records its changes for storage          |
//! | `outgoing.rs` | unacknowledged own messages: acks, retransmission, give-up             |
//! | `incoming.rs` | messages waiting for causal dependencies, missing/lost tracking        |
//! | `sync.rs`     | when to send sync messages                                             |
//! | `repair.rs`   | answering peers' repair requests with the retrieval hints we know      |
//! | `requests.rs` | which missing dependencies our syncs ask for, and when (backoff)       |
//! | `engine.rs`   | the state machine tying them together                                  |
//!
//! The bytes of an SDS message are `crate::wire`'s concern: the engine hands
//! [`crate::wire::SdsMessageRef`] the fields borrowed from its state.

mod config;
mod durable;
mod engine;
mod events;
mod history;
mod id;
mod incoming;
mod outgoing;
mod repair;
mod requests;
mod sync;

pub use config::{MessageIdScheme, SdsConfig, DEFAULT_MAX_CLOCK_SKEW_MS, MAX_CLOCK_SKEW_LIMIT_MS};
pub use durable::{JournaledHistory, LogChange};
pub use engine::{SdsEngine, MAX_SYNC_ACKS};
pub use events::{Delivered, MissingDependency, ReceiveOutcome, SdsError, SdsEvent, SdsStats, Wrapped};
pub use history::{HistoryStore, LogEntry, MemoryHistory};
pub use id::{message_id, WrapClock};
pub use requests::{backoff as repair_backoff, MAX_REPAIR_BACKOFF_DOUBLINGS};

/// Message ids are opaque strings shared between the engine's tables without copying.
pub type MessageId = std::sync::Arc<str>;
