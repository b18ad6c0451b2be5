//! libreliable_channel: the Logos Messaging (Waku) Reliable Channel API.
//!
//! Layers, bottom up: [`wire`] (the bytes), [`sds`] (Scalable Data Sync), [`segmentation`],
//! [`ratelimit`], [`channel`] (the sans-I/O pipeline), [`messaging`] (transports). Every layer
//! logs through the `log` facade (levels and conventions: `src/logging.rs`).
pub mod channel;

/// See the `mimalloc` feature in Cargo.toml: message buffers cross threads, which mimalloc
/// handles without locks. Only this library's Rust allocations use it.
#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod collections;
mod error;
pub mod ffi;
mod logging;
pub mod messaging;
pub mod ratelimit;
pub mod runtime;
pub mod sds;
pub mod segmentation;
pub mod wire;

pub use error::Error;
pub use runtime::{Event, EventHandler, Manager};
