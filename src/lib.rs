//! libreliable_channel: the Logos Messaging (Waku) Reliable Channel API.
//!
//! Layers, bottom up; each imports only from the layers below it:
//!
//! | layer            | what                                                                   |
//! |------------------|------------------------------------------------------------------------|
//! | [`wire`]         | the bytes: WakuMessage, SDS message, chunk frame, bloom filter, hashes |
//! | [`sds`], [`segmentation`], [`ratelimit`] | Scalable Data Sync, chunking and reassembly, the RLN budget |
//! | [`channel`]      | one reliable channel: the sans-I/O pipeline tying the three together    |
//! | [`messaging`]    | the transport seam and its implementations (memory network, host)      |
//! | [`storage`]      | durable channels: the manager's database (SQLite), the group commit    |
//! | [`runtime`]      | [`Manager`]: threads, clocks, timers and queues driving the channels    |
//! | [`ffi`]          | the C ABI over the manager (`include/reliable_channel.h`)              |
//!
//! `wire` through `channel` are the sans-I/O core: they take `now` and inputs and return outputs;
//! they never name `messaging`, `storage`, `runtime` or `ffi`. Crate-private helpers below every layer:
//! `collections` (bounded maps and sets), `json_config` (the configuration JSON readers) and
//! `logging` (every layer logs through the `log` facade: levels and conventions there).

/// See the `mimalloc` feature in Cargo.toml: message buffers cross threads, which mimalloc
/// handles without locks. Only this library's Rust allocations use it.
#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

pub mod channel;
mod collections;
mod error;
pub mod ffi;
mod json_config;
mod logging;
pub mod messaging;
pub mod ratelimit;
pub mod runtime;
pub mod sds;
pub mod segmentation;
pub mod storage;
pub mod wire;

pub use error::Error;
pub use runtime::{Event, EventHandler, Manager, ManagerConfig, SendPermit};
