//! Lifecycle, channels, sending, events and statistics.

use std::ffi::{c_char, c_void, CString};
use std::sync::Arc;

use super::status::rc_status;
use crate::channel::ChannelEvent;
use crate::segmentation::MAX_PAYLOAD_BYTES;
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
    /// An incoming message can no longer be completed; `error` says why.
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
    /// RECEIVED: the remote participant; otherwise our own sender id.
    pub sender_id: *const c_char,
    pub content_topic: *const c_char,
    /// RECEIVED only (else NULL / 0).
    pub payload: *const u8,
    pub payload_len: usize,
    /// SEND_ERROR and MESSAGE_LOST: the reason; otherwise NULL.
    pub error: *const c_char,
}

/// Event callback. Runs on the library's event thread; events of one channel arrive in order.
pub type rc_event_fn = Option<unsafe extern "C" fn(event: *const rc_event, user_data: *mut c_void)>;

pub(crate) fn manager<'a>(mgr: *const rc_manager) -> Result<&'a Manager, Error> {
    // SAFETY: a non-NULL handle comes from rc_manager_new and is live until rc_manager_free.
    match unsafe { mgr.as_ref() } {
        Some(m) => Ok(&m.inner),
        None => Err(Error::InvalidArgument("mgr is NULL".into())),
    }
}

fn opt_str<'a>(p: *const c_char, name: &str) -> Result<Option<&'a str>, Error> {
    if p.is_null() {
        Ok(None)
    } else {
        super::status::str_arg(p, name).map(Some)
    }
}

fn cstring(s: &str) -> CString {
    CString::new(s.replace('\0', "")).unwrap_or_default()
}

/// Creates a manager from a JSON configuration (NULL = defaults; unknown keys are refused
/// with `RC_ERR_CONFIG` naming the key) and starts its runtime and event threads.
/// On success `*out` receives the handle, owned by the caller until `rc_manager_free`.
///
/// # Safety
///
/// `config_json` is NULL or a NUL-terminated string; `out` is NULL (refused) or writable.
#[no_mangle]
pub unsafe extern "C" fn rc_manager_new(config_json: *const c_char, out: *mut *mut rc_manager) -> rc_status {
    ffi_boundary!({
        super::log::init_from_env();
        if out.is_null() {
            return Err(Error::InvalidArgument("out is NULL".into()));
        }
        let json = opt_str(config_json, "config_json")?;
        let m = Manager::from_json(json)?;
        let b = Box::into_raw(Box::new(rc_manager { inner: m }));
        // SAFETY: checked non-NULL above; written only on success.
        unsafe { *out = b };
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
/// `mgr` is NULL (refused) or a handle from `rc_manager_new` not yet passed to `rc_manager_free` (NULL is a no-op); the handle is invalid afterwards.
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
        let m = manager(mgr)?;
        let handler = callback.map(|f| {
            // Not owned (the event callback has no finalizer): never armed.
            let ud = super::crypto::UserData::new(user_data, None);
            Arc::new(move |e: &Event<'_>| deliver(f, &ud, e)) as crate::EventHandler
        });
        m.set_event_handler(handler)
    })
}

fn deliver(f: unsafe extern "C" fn(*const rc_event, *mut c_void), ud: &super::crypto::UserData, e: &Event<'_>) {
    let channel_id = cstring(e.channel_id);
    let topic = cstring(e.content_topic);
    let local = cstring(e.local_sender_id);
    let (kind, request, sender, payload, error): (rc_event_kind, Option<CString>, CString, &[u8], Option<CString>) = match e.event {
        ChannelEvent::Received { request_id, sender_id, payload } => {
            (rc_event_kind::RC_EVENT_MESSAGE_RECEIVED, Some(cstring(request_id)), cstring(sender_id), payload, None)
        }
        ChannelEvent::Sent { request_id } => (rc_event_kind::RC_EVENT_MESSAGE_SENT, Some(cstring(request_id)), local, &[], None),
        ChannelEvent::Delivered { request_id } => (rc_event_kind::RC_EVENT_MESSAGE_DELIVERED, Some(cstring(request_id)), local, &[], None),
        ChannelEvent::SendError { request_id, error } => {
            (rc_event_kind::RC_EVENT_SEND_ERROR, Some(cstring(request_id)), local, &[], Some(cstring(error)))
        }
        ChannelEvent::Lost { request_id, sender_id, error } => {
            let err = match sender_id {
                Some(s) => format!("{error} (from {s})"),
                None => error.clone(),
            };
            (rc_event_kind::RC_EVENT_MESSAGE_LOST, request_id.as_deref().map(cstring), local, &[], Some(cstring(&err)))
        }
    };
    let ev = rc_event {
        kind,
        channel_id: channel_id.as_ptr(),
        request_id: request.as_ref().map_or(std::ptr::null(), |c| c.as_ptr()),
        sender_id: sender.as_ptr(),
        content_topic: topic.as_ptr(),
        payload: if payload.is_empty() { std::ptr::null() } else { payload.as_ptr() },
        payload_len: payload.len(),
        error: error.as_ref().map_or(std::ptr::null(), |c| c.as_ptr()),
    };
    // SAFETY: the callback receives pointers valid for the duration of the call.
    unsafe { f(&ev, ud.ptr) };
}

/// Opens a channel on `content_topic` with our `sender_id`. `channel_config_json` (NULL =
/// `channelDefaults`) overrides the defaults key by key. Callable from callbacks.
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
        let m = manager(mgr)?;
        let id = c_str!(channel_id, "channel_id");
        let topic = c_str!(content_topic, "content_topic");
        let sender = c_str!(sender_id, "sender_id");
        let cfg = opt_str(channel_config_json, "channel_config_json")?;
        m.open_channel(id, topic, sender, cfg)
    })
}

/// Closes a channel and releases its state. No event of the channel is delivered after it
/// returns (from inside the event callback: after the current callback). Callable from callbacks.
///
/// # Safety
///
/// `mgr` is NULL (refused) or a handle from `rc_manager_new` not yet passed to `rc_manager_free`;
/// `channel_id` is NULL (refused) or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn rc_close_channel(mgr: *mut rc_manager, channel_id: *const c_char) -> rc_status {
    ffi_boundary!({
        let m = manager(mgr)?;
        m.close_channel(c_str!(channel_id, "channel_id"))
    })
}

/// Sends `payload` (copied before returning) on a channel. Validates (unknown channel, empty,
/// over 1 MiB, queue full), segments the payload and computes its chunk ids in the calling
/// thread, and returns without waiting for the pipeline, which runs on the runtime thread. On
/// success writes the RequestId (20 hex chars + NUL) to `request_id_out`. `flags`:
/// `RC_SEND_EPHEMERAL` or 0. Callable from callbacks.
///
/// # Safety
///
/// `mgr` is NULL (refused) or a handle from `rc_manager_new` not yet passed to `rc_manager_free`;
/// `channel_id` is NULL (refused) or NUL-terminated; `payload` is readable for `payload_len` bytes
/// (NULL only with `payload_len == 0`, refused); `request_id_out` is NULL (refused) or writable for
/// `RC_REQUEST_ID_LEN + 1` bytes.
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
        let m = manager(mgr)?;
        let id = c_str!(channel_id, "channel_id");
        if request_id_out.is_null() {
            return Err(Error::InvalidArgument("request_id_out is NULL".into()));
        }
        if flags & !RC_SEND_EPHEMERAL != 0 {
            return Err(Error::InvalidArgument(format!("unknown flags 0x{:x}", flags & !RC_SEND_EPHEMERAL)));
        }
        let data: &[u8] = if payload_len == 0 {
            &[]
        } else if payload.is_null() {
            return Err(Error::InvalidArgument("payload is NULL with a non-zero length".into()));
        } else if payload_len > MAX_PAYLOAD_BYTES {
            // Never build a slice of a length the library will not read (it may exceed
            // isize::MAX); answer what `send` would, an unknown channel first.
            if !m.channels().iter().any(|c| c == id) {
                return Err(Error::UnknownChannel(id.to_owned()));
            }
            return Err(Error::PayloadTooLarge { len: payload_len, max: MAX_PAYLOAD_BYTES });
        } else {
            // SAFETY: the caller passes payload_len readable bytes.
            unsafe { std::slice::from_raw_parts(payload, payload_len) }
        };
        let rid = m.send(id, data, flags & RC_SEND_EPHEMERAL != 0)?;
        debug_assert_eq!(rid.len(), RC_REQUEST_ID_LEN);
        // SAFETY: the caller provides RC_REQUEST_ID_LEN + 1 writable bytes.
        unsafe {
            std::ptr::copy_nonoverlapping(rid.as_ptr(), request_id_out.cast::<u8>(), RC_REQUEST_ID_LEN);
            *request_id_out.add(RC_REQUEST_ID_LEN) = 0;
        }
        Ok(())
    })
}

/// The counters of a channel as a JSON object; `*json_out` receives a string to release with
/// `rc_string_free`. Not callable from the encryption or transport callbacks (`RC_ERR_REENTRANT`).
///
/// # Safety
///
/// `mgr` is NULL (refused) or a handle from `rc_manager_new` not yet passed to `rc_manager_free`;
/// `channel_id` is NULL (refused) or NUL-terminated; `json_out` is NULL (refused) or writable.
#[no_mangle]
pub unsafe extern "C" fn rc_channel_stats_json(mgr: *mut rc_manager, channel_id: *const c_char, json_out: *mut *mut c_char) -> rc_status {
    ffi_boundary!({
        let m = manager(mgr)?;
        let id = c_str!(channel_id, "channel_id");
        if json_out.is_null() {
            return Err(Error::InvalidArgument("json_out is NULL".into()));
        }
        let stats = m.channel_stats(id)?;
        let json = serde_json::to_string(&stats).map_err(|e| Error::Storage(e.to_string()))?;
        // SAFETY: checked non-NULL; written only on success.
        unsafe { *json_out = cstring(&json).into_raw() };
        Ok(())
    })
}

/// Frees a string returned by the library (`rc_channel_stats_json`). NULL is fine.
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
