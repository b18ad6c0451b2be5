//! libreliable_channel: the Logos Messaging (Waku) Reliable Channel API.
//!
//! Layers, bottom up: [`wire`] (the bytes), [`sds`] (Scalable Data Sync, sans-I/O).
pub mod sds;
pub mod wire;
