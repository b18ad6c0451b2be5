//! The library's error type; each variant maps to one `rc_status` of the C ABI.

/// Why an API call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// A NULL pointer, invalid UTF-8, an empty or oversized name, ...
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// The configuration is malformed or impossible; the message names the key.
    #[error("configuration error: {0}")]
    Config(String),
    /// A channel with this id is already open.
    #[error("channel already exists: {0}")]
    ChannelExists(String),
    /// No open channel has this id.
    #[error("unknown channel: {0}")]
    UnknownChannel(String),
    /// `send` with an empty payload.
    #[error("payload is empty")]
    PayloadEmpty,
    /// `send` with a payload over 1 MiB.
    #[error("payload of {len} bytes exceeds the maximum of {max}")]
    PayloadTooLarge { len: usize, max: usize },
    /// Backpressure: too much is pending on this channel; retry later.
    #[error("queue full: {0}")]
    QueueFull(String),
    /// The manager is shutting down or stopped.
    #[error("manager stopped")]
    Stopped,
    /// The manager's database failed or was refused (see `rc_status::RC_ERR_STORAGE`).
    #[error("storage error: {0}")]
    Storage(String),
    /// The transport refused the call (unknown dispatch id, wrong transport kind, ...).
    #[error("transport error: {0}")]
    Transport(String),
    /// Called from inside a library callback where that is not allowed.
    #[error("not allowed from inside a library callback: {0}")]
    Reentrant(String),
    /// A bug: an invariant of the library does not hold (reported like a caught panic).
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<crate::channel::ConfigError> for Error {
    fn from(e: crate::channel::ConfigError) -> Self {
        Error::Config(e.to_string())
    }
}

impl From<crate::messaging::memory::MemoryNetworkError> for Error {
    /// Every memory-network error names a `transport.*` key of the configuration.
    fn from(e: crate::messaging::memory::MemoryNetworkError) -> Self {
        Error::Config(e.to_string())
    }
}

impl From<crate::messaging::host::HostError> for Error {
    fn from(e: crate::messaging::host::HostError) -> Self {
        Error::Transport(e.to_string())
    }
}

impl From<crate::channel::SendError> for Error {
    /// The user's mistakes and backpressure keep their own codes; the rest cannot happen for a
    /// send the manager prepared itself.
    fn from(e: crate::channel::SendError) -> Self {
        use crate::channel::SendError as S;
        match e {
            S::Empty => Error::PayloadEmpty,
            S::TooLarge { len, max } => Error::PayloadTooLarge { len, max },
            S::QueueFull { pending_chunks, pending_bytes, max_chunks, max_bytes } => {
                Error::QueueFull(format!("{pending_chunks} chunks / {pending_bytes} bytes pending (limits {max_chunks} / {max_bytes})"))
            }
            S::NotReserved { .. } => Error::InvalidArgument(e.to_string()),
            S::OtherChannel | S::DuplicateRequestId(_) | S::Segmentation(_) => Error::Internal(e.to_string()),
        }
    }
}
