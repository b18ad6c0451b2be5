//! The manager and its threads: the only place with clocks, threads and queues.
//!
//! ```text
//! API calls (any thread) ──validate──► command queue ──► runtime thread (tokio, current-thread)
//!                                                          owns every Channel, its timers and
//!                                                          the Transport; drives the sans-I/O core
//! transport sink (any thread) ─────────► command queue        │ events
//!                                                             ▼
//!                                        event dispatcher thread ──► application callback
//! ```
//!
//! Channels are created on the thread that opens them and handed to the runtime; their
//! [`crate::channel::Outbox`] stays shared with the API threads. `send` checks once in the
//! caller's thread (unknown channel, empty, too large, queue full: [`Manager::reserve_send`]),
//! segments the payload and computes the chunks' SDS ids there (the Keccak pass over the payload
//! then runs in parallel with the runtime thread), and enqueues: it never waits for the pipeline
//! (on a durable channel it waits for the commit of the runtime batch that took the send, see
//! `batch.rs`). Events reach the application from a separate thread so that a slow application
//! cannot stall timers; per channel they keep their order.
//!
//! | file            | concern                                                          |
//! |-----------------|------------------------------------------------------------------|
//! | `config.rs`     | the manager's JSON configuration: transport, storage, defaults    |
//! | `manager.rs`    | [`Manager`], the public API: validation, the channel registry     |
//! | `driver.rs`     | the runtime thread: channels, timers, the transport               |
//! | `batch.rs`      | the write-ahead rule: a batch's output waits for its commit       |
//! | `answer.rs`     | the commit's answer to a caller blocked for it                    |
//! | `dispatcher.rs` | the event thread: hands events to the application                 |
//! | `relay.rs`      | the relay transport's node: built from the config, its node key   |
//! | `fault.rs`      | `RC_FAULT`: kills the process at a commit point (crash tests)     |

mod answer;
mod batch;
mod config;
mod dispatcher;
mod driver;
mod fault;
mod manager;
#[cfg(feature = "relay")]
mod relay;

pub use config::{ManagerConfig, TransportConfig};
pub use manager::{Event, EventHandler, Manager, SendPermit};

use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// Wall-clock milliseconds that never go backwards: Unix time at start plus monotonic elapsed
/// time. RLN epochs need Unix time; timers need monotonicity.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Clock {
    start_unix_ms: u64,
    start: Instant,
}

impl Clock {
    pub fn new() -> Self {
        let start_unix_ms = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
        Clock { start_unix_ms, start: Instant::now() }
    }
    pub fn now_ms(&self) -> u64 {
        self.start_unix_ms + self.start.elapsed().as_millis() as u64
    }
    pub fn instant_of(&self, ms: u64) -> Instant {
        self.start + std::time::Duration::from_millis(ms.saturating_sub(self.start_unix_ms))
    }
}
