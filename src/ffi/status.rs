//! Status codes, the thread-local last error, and version information.

use std::cell::RefCell;
use std::ffi::{c_char, CStr, CString};

use crate::Error;

/// Major version of the library (and of `RC_VERSION_MAJOR`).
pub const RC_VERSION_MAJOR: u32 = 0;
/// Minor version.
pub const RC_VERSION_MINOR: u32 = 1;
/// Patch version.
pub const RC_VERSION_PATCH: u32 = 0;

/// Result of every fallible function. `RC_OK` is 0.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum rc_status {
    /// Success.
    RC_OK = 0,
    /// A NULL pointer, invalid UTF-8, an empty or oversized name, an unknown flag.
    RC_ERR_INVALID_ARGUMENT = 1,
    /// Malformed or impossible configuration; `rc_last_error()` names the key.
    RC_ERR_CONFIG = 2,
    /// A channel with this id is already open.
    RC_ERR_CHANNEL_EXISTS = 3,
    /// No open channel has this id.
    RC_ERR_UNKNOWN_CHANNEL = 4,
    /// `rc_send` with an empty payload.
    RC_ERR_PAYLOAD_EMPTY = 5,
    /// `rc_send` with a payload over 1 MiB.
    RC_ERR_PAYLOAD_TOO_LARGE = 6,
    /// Backpressure: too much pending on the channel; retry later.
    RC_ERR_QUEUE_FULL = 7,
    /// The manager is shutting down.
    RC_ERR_STOPPED = 8,
    /// The manager's database failed or was refused: opened by another manager, not ours, of a
    /// newer version, full, I/O error. `rc_last_error()` has SQLite's message. After a failed
    /// commit, durable channels refuse every send with it until the manager is restarted.
    RC_ERR_STORAGE = 9,
    /// Host transport misuse: unknown or repeated dispatch id, wrong transport kind.
    RC_ERR_TRANSPORT = 10,
    /// Not allowed from inside a library callback (e.g. `rc_manager_free`).
    RC_ERR_REENTRANT = 11,
    /// A bug in the library: a Rust panic was caught at the boundary, or an internal invariant
    /// did not hold.
    RC_ERR_PANIC = 12,
}

impl From<&Error> for rc_status {
    fn from(e: &Error) -> Self {
        match e {
            Error::InvalidArgument(_) => rc_status::RC_ERR_INVALID_ARGUMENT,
            Error::Config(_) => rc_status::RC_ERR_CONFIG,
            Error::ChannelExists(_) => rc_status::RC_ERR_CHANNEL_EXISTS,
            Error::UnknownChannel(_) => rc_status::RC_ERR_UNKNOWN_CHANNEL,
            Error::PayloadEmpty => rc_status::RC_ERR_PAYLOAD_EMPTY,
            Error::PayloadTooLarge { .. } => rc_status::RC_ERR_PAYLOAD_TOO_LARGE,
            Error::QueueFull(_) => rc_status::RC_ERR_QUEUE_FULL,
            Error::Stopped => rc_status::RC_ERR_STOPPED,
            Error::Storage(_) => rc_status::RC_ERR_STORAGE,
            Error::Transport(_) => rc_status::RC_ERR_TRANSPORT,
            Error::Reentrant(_) => rc_status::RC_ERR_REENTRANT,
            Error::Internal(_) => rc_status::RC_ERR_PANIC,
        }
    }
}

thread_local! {
    static LAST_ERROR: RefCell<CString> = RefCell::new(CString::default());
}

pub(crate) fn set_last_error(msg: &str) {
    let c = CString::new(msg.replace('\0', "\\0")).unwrap_or_default();
    LAST_ERROR.with(|e| *e.borrow_mut() = c);
}

/// Converts a boundary result into a status, recording the error text.
pub(crate) fn finish(result: std::thread::Result<Result<(), Error>>) -> rc_status {
    match result {
        Ok(Ok(())) => rc_status::RC_OK,
        Ok(Err(e)) => {
            set_last_error(&e.to_string());
            rc_status::from(&e)
        }
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            set_last_error(&format!("internal error (panic): {what}"));
            rc_status::RC_ERR_PANIC
        }
    }
}

/// The detail of the last failure on the calling thread ("" if none). The pointer is valid until
/// the next failing call on this thread. Thread-safe; never NULL.
#[no_mangle]
pub extern "C" fn rc_last_error() -> *const c_char {
    LAST_ERROR.with(|e| e.borrow().as_ptr())
}

/// The name of a status code, e.g. `"RC_ERR_QUEUE_FULL"` (static storage; never NULL). Takes an
/// `int` so that any value, even one that is not an `rc_status`, is safe to pass.
#[no_mangle]
pub extern "C" fn rc_status_name(status: std::ffi::c_int) -> *const c_char {
    let s: &'static CStr = match status {
        0 => c"RC_OK",
        1 => c"RC_ERR_INVALID_ARGUMENT",
        2 => c"RC_ERR_CONFIG",
        3 => c"RC_ERR_CHANNEL_EXISTS",
        4 => c"RC_ERR_UNKNOWN_CHANNEL",
        5 => c"RC_ERR_PAYLOAD_EMPTY",
        6 => c"RC_ERR_PAYLOAD_TOO_LARGE",
        7 => c"RC_ERR_QUEUE_FULL",
        8 => c"RC_ERR_STOPPED",
        9 => c"RC_ERR_STORAGE",
        10 => c"RC_ERR_TRANSPORT",
        11 => c"RC_ERR_REENTRANT",
        12 => c"RC_ERR_PANIC",
        _ => c"RC_UNKNOWN_STATUS",
    };
    s.as_ptr()
}

/// The library version, e.g. `"0.1.0"` (static storage).
#[no_mangle]
pub extern "C" fn rc_version() -> *const c_char {
    concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr().cast()
}

#[cfg(test)]
mod tests {
    #[test]
    fn version_macros_match_the_crate() {
        let v = format!("{}.{}.{}", super::RC_VERSION_MAJOR, super::RC_VERSION_MINOR, super::RC_VERSION_PATCH);
        assert_eq!(v, env!("CARGO_PKG_VERSION"));
    }
}
