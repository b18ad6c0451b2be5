//! Lifecycle, channels, sending, events and statistics.

use std::ffi::{c_char, c_void, CString};
use std::sync::Arc;

use super::status::rc_status;
use super::user_data::UserData;
use crate::channel::ChannelEvent;
use crate::{Error, Event, Manager};

/// `rc_send` flag: the message is ephemeral (not retransmitted, not acknowledged, may be dropped
/// when the rate limit is nearly exhausted).
pub const RC_SEND_EPHEMERAL: u32 = 1;
/// Length of a RequestId (20 lowercase hex characters), without the NUL.
pub const RC_REQUEST_ID_LEN: usize = 20;
/// Largest payload `rc_send` accepts (1 MiB); larger ones get `RC_ERR_PAYLOAD_TOO_LARGE`.
pub const RC_MAX_PAYLOAD_BYTES: usize = 1_048_576;
/// Largest serialized WakuMessage (150 KiB on The Waku Network).
pub const RC_MAX_WAKU_MESSAGE_BYTES: usize = 153_600;
/// Bytes per message reserved for the encryption hook's expansion (nonce, tag, framing): an
/// encrypt callback must not grow a message by more.
pub const RC_ENCRYPTION_OVERHEAD_BUDGET: usize = 1_024;

#[cfg(test)]
mod tests {
    // The C constants are literals (cbindgen cannot evaluate paths): keep them in step.
    #[test]
    fn c_constants_match_the_crate() {
        assert_eq!(super::RC_MAX_PAYLOAD_BYTES, crate::segmentation::MAX_PAYLOAD_BYTES);
        assert_eq!(super::RC_MAX_WAKU_MESSAGE_BYTES, crate::wire::MAX_WAKU_MESSAGE_BYTES);
        assert_eq!(super::RC_ENCRYPTION_OVERHEAD_BUDGET, crate::channel::config::ENCRYPTION_OVERHEAD_BUDGET);
    }
}

/// An opaque manager handle from `rc_manager_new`, released with `rc_manager_free`.
pub struct rc_manager {
    pub(crate) inner: Manager,
}

/// The kind of an event.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum rc_event_kind {
    /// `reliable:message:received`: a whole message, reassembled, exactly once, in causal order.
    RC_EVENT_MESSAGE_RECEIVED = 1,
    /// `reliable:message:sent`: every chunk was accepted by the messaging layer.
    RC_EVENT_MESSAGE_SENT = 2,
    /// Every chunk was acknowledged end to end (final).
    RC_EVENT_MESSAGE_DELIVERED = 3,
    /// `reliable:message:send-error`: the send failed (final); `error` says which chunk and why.
    RC_EVENT_SEND_ERROR = 4,
    /// An incoming message can no longer be completed; `error` says why, `sender_id` whose it
    /// was (NULL when unknown).
    RC_EVENT_MESSAGE_LOST = 5,
}

/// An event, borrowed for the duration of the callback: copy what you keep.
#[repr(C)]
pub struct rc_event {
    pub kind: rc_event_kind,
    pub channel_id: *const c_char,
    /// RECEIVED: the remote sender's request id; SENT/DELIVERED/SEND_ERROR: ours; LOST: the
    /// lost message's request id when known, else NULL.
    pub request_id: *const c_char,
    /// RECEIVED: the remote participant; LOST: the remote participant whose message was lost,
    /// or NULL when unknown (e.g. a message that could not be decrypted); otherwise our own
    /// sender id.
    pub sender_id: *const c_char,
    pub content_topic: *const c_char,
    /// RECEIVED only (else NULL / 0).
    pub payload: *const u8,
    pub payload_len: usize,
    /// SEND_ERROR and MESSAGE_LOST: the reason; otherwise NULL.
    pub error: *const c_char,
    /// The event's sequence number, from 1: strictly increasing per manager and, with
    /// `storage`, per database across restarts; within a channel, strictly increasing in delivery
    /// order. An event of a durable channel (`historyBackend: "sqlite"`) is stored until this
    /// callback returned; one delivered again (after a crash, or when its channel was closed
    /// before delivery and is reopened) keeps its first `seq`. Store the last `seq` handled per
    /// channel in the application's own transaction and skip events at or below it: exactly once.
    pub seq: u64,
}

/// Event callback. Runs on the library's event thread; events of one channel arrive in order.
pub type rc_event_fn = Option<unsafe extern "C" fn(event: *const rc_event, user_data: *mut c_void)>;

/// The function of a non-NULL [`rc_event_fn`].
type EventCallback = unsafe extern "C" fn(*const rc_event, *mut c_void);

pub(crate) fn cstring(s: &str) -> CString {
    CString::new(s.replace('\0', "")).unwrap_or_default()
}

/// Creates a manager from a JSON configuration (NULL = defaults; unknown keys are refused
/// with `RC_ERR_CONFIG` naming the key) and starts its runtime and event threads. With
/// `storage.path`, first opens the manager's database: `RC_ERR_STORAGE` when it is in use by
/// another manager (of this or another process), is not a SQLite database, belongs to another
/// application, has a newer schema version, has a damaged journal file (`<path>-rc-journal`) or
/// another database's, or cannot be created; a refused file is left as it was.
/// On success `*out` receives the handle, owned by the caller until `rc_manager_free`.
///
/// # Safety
///
/// `config_json` is NULL or a NUL-terminated string; `out` is NULL (refused) or writable.
#[no_mangle]
pub unsafe extern "C" fn rc_manager_new(config_json: *const c_char, out: *mut *mut rc_manager) -> rc_status {
    ffi_boundary!({
        super::log::init_from_env();
        let out = try_out!(out);
        let m = Manager::from_json(try_opt_str!(config_json))?;
        // SAFETY: `out` is writable (the caller's contract); the last step, so only on success.
        unsafe { out.write(Box::into_raw(Box::new(rc_manager { inner: m }))) };
        Ok(())
    })
}

/// Drains submitted work, stops the transport, delivers the events already produced, joins
/// every thread and frees the handle; no callback runs after it returns and every
/// `free_user_data` has run exactly once. NULL is fine (`RC_OK`). From inside a library
/// callback: `RC_ERR_REENTRANT`, and the handle stays valid and working.
/// Must be the last call on the handle.
///
/// # Safety
///
/// `mgr` is NULL (a no-op) or a handle from `rc_manager_new` not yet passed to `rc_manager_free`;
/// once this returns `RC_OK` the handle is invalid.
#[no_mangle]
pub unsafe extern "C" fn rc_manager_free(mgr: *mut rc_manager) -> rc_status {
    ffi_boundary!({
        if mgr.is_null() {
            return Ok(());
        }
        // SAFETY: non-NULL handle from rc_manager_new, not yet freed (the caller's contract).
        let m = unsafe { &mut *mgr };
        m.inner.shutdown()?;
        // SAFETY: shut down and not in a callback: no library thread references it any more.
        drop(unsafe { Box::from_raw(mgr) });
        super::log::flush();
        Ok(())
    })
}

/// Sets the event callback (`fn` NULL removes it). `user_data` is passed back unchanged; the
/// library does not own it. A callback being replaced may finish its current call.
///
/// # Safety
///
/// `mgr` is NULL (refused) or a handle from `rc_manager_new` not yet passed to `rc_manager_free`;
/// `user_data` stays valid for as long as the callback may run (until it is replaced and this call returned, or the manager is freed).
#[no_mangle]
pub unsafe extern "C" fn rc_set_event_callback(mgr: *mut rc_manager, callback: rc_event_fn, user_data: *mut c_void) -> rc_status {
    ffi_boundary!({
        let m = try_manager!(mgr);
        let handler = callback.map(|f| {
            // Not owned (the event callback has no finalizer): never armed.
            let ud = UserData::new(user_data, None);
            Arc::new(move |e: &Event<'_>| deliver(f, &ud, e)) as crate::EventHandler
        });
        m.set_event_handler(handler)
    })
}

/// Converts an event for C and calls the callback: the strings live until it returns.
fn deliver(f: EventCallback, ud: &UserData, e: &Event<'_>) {
    let channel_id = cstring(e.channel_id);
    let topic = cstring(e.content_topic);
    let local = cstring(e.local_sender_id);
    let (kind, request, sender, payload, error): (rc_event_kind, Option<CString>, Option<CString>, &[u8], Option<CString>) = match e.event {
        ChannelEvent::Received { request_id, sender_id, payload } => {
            (rc_event_kind::RC_EVENT_MESSAGE_RECEIVED, Some(cstring(request_id)), Some(cstring(sender_id)), payload, None)
        }
        ChannelEvent::Sent { request_id } => (rc_event_kind::RC_EVENT_MESSAGE_SENT, Some(cstring(request_id)), Some(local), &[], None),
        ChannelEvent::Delivered { request_id } => (rc_event_kind::RC_EVENT_MESSAGE_DELIVERED, Some(cstring(request_id)), Some(local), &[], None),
        ChannelEvent::SendError { request_id, error } => {
            (rc_event_kind::RC_EVENT_SEND_ERROR, Some(cstring(request_id)), Some(local), &[], Some(cstring(error)))
        }
        ChannelEvent::Lost { request_id, sender_id, error } => {
            (rc_event_kind::RC_EVENT_MESSAGE_LOST, request_id.as_deref().map(cstring), sender_id.as_deref().map(cstring), &[], Some(cstring(error)))
        }
    };
    let ptr = |c: &Option<CString>| c.as_ref().map_or(std::ptr::null(), |c| c.as_ptr());
    let ev = rc_event {
        kind,
        channel_id: channel_id.as_ptr(),
        request_id: ptr(&request),
        sender_id: ptr(&sender),
        content_topic: topic.as_ptr(),
        payload: if payload.is_empty() { std::ptr::null() } else { payload.as_ptr() },
        payload_len: payload.len(),
        error: ptr(&error),
        seq: e.seq,
    };
    // SAFETY: the callback receives pointers valid for the duration of the call.
    unsafe { f(&ev, ud.ptr) };
}

/// Opens a channel on `content_topic` with our `sender_id`. `channel_config_json` (NULL =
/// `channelDefaults`) overrides the defaults key by key. Callable from callbacks.
///
/// A durable channel (`sdsConfig.historyBackend: "sqlite"`, which needs the manager's
/// `storage.path`, else `RC_ERR_CONFIG`) returns once it is stored. One stored before resumes:
/// `RC_ERR_CONFIG` when `sender_id` or `content_topic` differ from the stored ones (purge it to
/// start over); its events not yet delivered are delivered again first, with their `seq`.
/// `RC_ERR_STORAGE` once the storage failed; `RC_ERR_REENTRANT` from the encryption or transport
/// callbacks (durable channels only).
///
/// # Safety
///
/// `mgr` is NULL (refused) or a handle from `rc_manager_new` not yet passed to `rc_manager_free`;
/// the strings are NULL (refused, except `channel_config_json`: defaults) or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn rc_open_channel(
    mgr: *mut rc_manager,
    channel_id: *const c_char,
    content_topic: *const c_char,
    sender_id: *const c_char,
    channel_config_json: *const c_char,
) -> rc_status {
    ffi_boundary!({
        let m = try_manager!(mgr);
        m.open_channel(try_str!(channel_id), try_str!(content_topic), try_str!(sender_id), try_opt_str!(channel_config_json))
    })
}

/// Closes a channel and releases its state in memory. No event of the channel is delivered after
/// it returns (from inside the event callback: after the current callback). Callable from
/// callbacks. A durable channel's stored state is kept: reopening it resumes it (its events not
/// delivered are delivered then); `rc_channel_purge` deletes it.
///
/// # Safety
///
/// `mgr` is NULL (refused) or a handle from `rc_manager_new` not yet passed to `rc_manager_free`;
/// `channel_id` is NULL (refused) or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn rc_close_channel(mgr: *mut rc_manager, channel_id: *const c_char) -> rc_status {
    ffi_boundary!({
        let m = try_manager!(mgr);
        m.close_channel(try_str!(channel_id))
    })
}

/// Sends `payload` (copied before returning) on a channel. Validates (unknown channel, empty,
/// over 1 MiB, queue full, in that order; `payload` is read only once `payload_len` passed),
/// segments the payload and computes its chunk ids in the calling thread, and returns without
/// waiting for the pipeline, which runs on the runtime thread. On success writes the RequestId
/// (20 hex chars + NUL) to `request_id_out`. `flags`: `RC_SEND_EPHEMERAL` or 0. Callable from
/// callbacks.
///
/// On a durable channel `rc_send` returns once the send is committed to the manager's database
/// (concurrent senders share one commit): `RC_OK` means it survives a crash. `RC_ERR_STORAGE`
/// (with SQLite's message in `rc_last_error`) when the commit failed, and for every send after
/// it; `RC_ERR_REENTRANT` from the encryption or transport callbacks (they run on the thread
/// that commits).
///
/// # Safety
///
/// `mgr` is NULL (refused) or a handle from `rc_manager_new` not yet passed to `rc_manager_free`;
/// `channel_id` is NULL (refused) or NUL-terminated; `payload` is readable for `payload_len` bytes
/// (it may be NULL when `payload_len` is 0; NULL with a length is refused); `request_id_out` is
/// NULL (refused) or writable for `RC_REQUEST_ID_LEN + 1` bytes.
#[no_mangle]
pub unsafe extern "C" fn rc_send(
    mgr: *mut rc_manager,
    channel_id: *const c_char,
    payload: *const u8,
    payload_len: usize,
    flags: u32,
    request_id_out: *mut c_char,
) -> rc_status {
    ffi_boundary!({
        let m = try_manager!(mgr);
        let id = try_str!(channel_id);
        let out = try_out!(request_id_out);
        if flags & !RC_SEND_EPHEMERAL != 0 {
            return Err(Error::InvalidArgument(format!("unknown flags 0x{:x}", flags & !RC_SEND_EPHEMERAL)));
        }
        // The length is checked (with the channel, in the order `send` checks) before a slice is
        // built: a C caller may pass one the library will never read, even past isize::MAX.
        let permit = m.reserve_send(id, payload_len)?;
        let rid = permit.send(try_slice!(payload, payload_len, RC_MAX_PAYLOAD_BYTES), flags & RC_SEND_EPHEMERAL != 0)?;
        debug_assert_eq!(rid.len(), RC_REQUEST_ID_LEN);
        // SAFETY: RC_REQUEST_ID_LEN + 1 writable bytes (the caller's contract); only on success.
        unsafe { out.write_str(&rid) };
        Ok(())
    })
}

/// Deletes the stored state of a durable channel that is not open (its record and its events
/// not yet delivered), in one transaction: reopening the id starts afresh, with any sender id and
/// content topic. `RC_ERR_CHANNEL_EXISTS` while the channel is open (close it first); `RC_OK`
/// when nothing is stored under the id, and on a manager without `storage`. `RC_ERR_STORAGE`
/// when the database fails; `RC_ERR_REENTRANT` from the encryption or transport callbacks.
///
/// # Safety
///
/// `mgr` is NULL (refused) or a handle from `rc_manager_new` not yet passed to `rc_manager_free`;
/// `channel_id` is NULL (refused) or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn rc_channel_purge(mgr: *mut rc_manager, channel_id: *const c_char) -> rc_status {
    ffi_boundary!({
        let m = try_manager!(mgr);
        m.purge_channel(try_str!(channel_id))
    })
}

/// The counters of a channel as a JSON object; `*json_out` receives a string to release with
/// `rc_string_free`. With the relay transport the object also has `"relay"`: the node's
/// `connectedPeers`, `meshPeers`, `topicPeers` and counters (shared by every channel). Not callable from the encryption or transport callbacks (`RC_ERR_REENTRANT`).
///
/// # Safety
///
/// `mgr` is NULL (refused) or a handle from `rc_manager_new` not yet passed to `rc_manager_free`;
/// `channel_id` is NULL (refused) or NUL-terminated; `json_out` is NULL (refused) or writable.
#[no_mangle]
pub unsafe extern "C" fn rc_channel_stats_json(mgr: *mut rc_manager, channel_id: *const c_char, json_out: *mut *mut c_char) -> rc_status {
    ffi_boundary!({
        let m = try_manager!(mgr);
        let id = try_str!(channel_id);
        let out = try_out!(json_out);
        let stats = m.channel_stats(id)?;
        // Counters only: serialisation cannot fail, so a failure is a bug.
        let mut value = serde_json::to_value(&stats).map_err(|e| Error::Internal(format!("channel stats as JSON: {e}")))?;
        if let (Some(relay), Some(obj)) = (m.relay_stats_json(), value.as_object_mut()) {
            obj.insert("relay".to_owned(), relay);
        }
        let json = value.to_string();
        // SAFETY: `json_out` is writable (the caller's contract); the last step, so only on success.
        unsafe { out.write(cstring(&json).into_raw()) };
        Ok(())
    })
}

/// Frees a string returned by the library (`rc_channel_stats_json`, `rc_relay_listen_addresses`).
/// NULL is fine.
///
/// # Safety
///
/// `s` is NULL (no-op) or a string this library returned and not yet freed.
#[no_mangle]
pub unsafe extern "C" fn rc_string_free(s: *mut c_char) {
    if !s.is_null() {
        let _ = std::panic::catch_unwind(|| {
            // SAFETY: `s` came from CString::into_raw in this library (the caller's contract).
            drop(unsafe { CString::from_raw(s) });
        });
    }
}
