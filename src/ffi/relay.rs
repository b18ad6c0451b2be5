//! The native Waku Relay transport across the boundary (`transport.kind = "relay"`): the node's
//! addresses and dialling peers at run time. Both exist in every build; a library built without
//! the `relay` cargo feature answers `RC_ERR_TRANSPORT`.

use std::ffi::c_char;

use super::manager::{cstring, rc_manager};
use super::status::rc_status;
use crate::Error;

/// This node's listen addresses as a JSON array of strings, each a full multiaddr ending in
/// `/p2p/<peer id>` (give one to the other participants), with the real port where port 0 was
/// configured; one per interface for an unspecified address such as `0.0.0.0`. `*json_out`
/// receives a string to release with `rc_string_free`. `RC_ERR_TRANSPORT` when the manager's
/// transport is not `"relay"`. Callable from any thread, callbacks included; never blocks on
/// the network.
///
/// # Safety
///
/// `mgr` is NULL (refused) or a handle from `rc_manager_new` not yet passed to `rc_manager_free`;
/// `json_out` is NULL (refused) or writable.
#[no_mangle]
pub unsafe extern "C" fn rc_relay_listen_addresses(mgr: *mut rc_manager, json_out: *mut *mut c_char) -> rc_status {
    ffi_boundary!({
        let m = try_manager!(mgr);
        let out = try_out!(json_out);
        let addrs = m.relay_listen_addresses()?;
        let json = serde_json::to_string(&addrs).map_err(|e| Error::Internal(format!("listen addresses as JSON: {e}")))?;
        // SAFETY: `json_out` is writable (the caller's contract); the last step, so only on success.
        unsafe { out.write(cstring(&json).into_raw()) };
        Ok(())
    })
}

/// Dials a peer at run time and keeps it connected: `multiaddr` ends in `/p2p/<peer id>` (as
/// `rc_relay_listen_addresses` gives it). Returns once the dial is queued: an unreachable peer is
/// retried with backoff (0.5 s doubling to 30 s) and logged at WARN, never failing the manager.
/// `RC_ERR_INVALID_ARGUMENT` for a string that is not such a multiaddr; `RC_ERR_TRANSPORT` when
/// the manager's transport is not `"relay"`. Callable from any thread, callbacks included.
///
/// # Safety
///
/// `mgr` is NULL (refused) or a handle from `rc_manager_new` not yet passed to `rc_manager_free`;
/// `multiaddr` is NULL (refused) or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn rc_relay_connect(mgr: *mut rc_manager, multiaddr: *const c_char) -> rc_status {
    ffi_boundary!({
        let m = try_manager!(mgr);
        m.relay_connect(try_str!(multiaddr))
    })
}
