//! The host transport across the boundary (`transport.kind = "host"`).

use std::ffi::{c_char, c_int, c_void, CString};
use std::sync::Arc;

use bytes::Bytes;

use super::manager::rc_manager;
use super::status::rc_status;
use super::user_data::{rc_free_fn, swap_hook, UserData};
use crate::messaging::host::{HostRetriever, HostSendError, HostSender};
use crate::messaging::{DispatchId, MessageHash};
use crate::wire::waku_message::hash_to_hex;
use crate::wire::{WakuMessage, MAX_WAKU_MESSAGE_BYTES};
use crate::Error;

/// A WakuMessage as exchanged with the host, borrowed for the duration of the call.
#[repr(C)]
pub struct rc_waku_message {
    /// NUL-terminated content topic.
    pub content_topic: *const c_char,
    pub payload: *const u8,
    pub payload_len: usize,
    /// The reliable-channel marker `RELIABLE-CHANNEL-API/1`; publish it as the message's `meta`.
    pub meta: *const u8,
    pub meta_len: usize,
    /// Unix time in nanoseconds.
    pub timestamp_ns: i64,
    pub ephemeral: bool,
}

/// The host's publish callback: publish `msg` through the host's Waku node and later report
/// `rc_transport_sent` / `rc_transport_failed` with `dispatch_id` (possibly from inside this
/// call). A non-zero return fails the dispatch at once. Runs on the runtime thread.
pub type rc_transport_send_fn = Option<unsafe extern "C" fn(user_data: *mut c_void, dispatch_id: u64, msg: *const rc_waku_message) -> c_int>;

/// The function of a non-NULL [`rc_transport_send_fn`].
type SendCallback = unsafe extern "C" fn(*mut c_void, u64, *const rc_waku_message) -> c_int;

struct CSender {
    send: SendCallback,
    user_data: UserData,
}

impl HostSender for CSender {
    fn send(&self, dispatch_id: DispatchId, m: &WakuMessage) -> Result<(), HostSendError> {
        let topic = CString::new(m.content_topic.as_str()).map_err(|_| HostSendError::Unrepresentable("the content topic contains NUL"))?;
        let meta = m.meta.as_deref().unwrap_or(&[]);
        let msg = rc_waku_message {
            content_topic: topic.as_ptr(),
            payload: m.payload.as_ptr(),
            payload_len: m.payload.len(),
            meta: meta.as_ptr(),
            meta_len: meta.len(),
            timestamp_ns: m.timestamp.unwrap_or(0),
            ephemeral: m.ephemeral.unwrap_or(false),
        };
        // SAFETY: pointers valid for the call; the callback follows the C contract.
        let rc = unsafe { (self.send)(self.user_data.ptr, dispatch_id, &msg) };
        if rc == 0 {
            Ok(())
        } else {
            Err(HostSendError::Refused(rc))
        }
    }
}

/// Installs the host's publish callback (`send` NULL removes it). `free_user_data` (may be
/// NULL) runs once the library no longer uses `user_data`. `RC_ERR_TRANSPORT` unless the
/// manager was created with `transport.kind = "host"`.
///
/// # Safety
///
/// `mgr` is NULL (refused) or a handle from `rc_manager_new` not yet passed to `rc_manager_free`;
/// `user_data` is used as `send` requires, from the runtime thread, until `free_user_data` runs.
#[no_mangle]
pub unsafe extern "C" fn rc_set_transport(
    mgr: *mut rc_manager,
    send: rc_transport_send_fn,
    user_data: *mut c_void,
    free_user_data: rc_free_fn,
) -> rc_status {
    ffi_boundary!({
        let m = try_manager!(mgr);
        let sender = send.map(|f| Arc::new(CSender { send: f, user_data: UserData::new(user_data, free_user_data) }));
        swap_hook(sender, |s| &s.user_data, |s| m.set_host_sender(s.map(|s| s as Arc<dyn HostSender>)))
    })
}

/// The host's store callback (optional, see `rc_set_transport_retrieve`): fetch the `count`
/// messages whose Waku message hashes are `message_hashes` ("0x" + 64 hex each) on
/// `content_topic` from a Store node, and hand each one found to `rc_transport_receive` with its
/// hash, now or later, from any thread. Best effort: a request that finds nothing is repeated
/// while SDS still misses the message. Runs on the runtime thread and must not block; the
/// strings are valid only during the call.
pub type rc_transport_retrieve_fn =
    Option<unsafe extern "C" fn(user_data: *mut c_void, content_topic: *const c_char, message_hashes: *const *const c_char, count: usize)>;

/// The function of a non-NULL [`rc_transport_retrieve_fn`].
type RetrieveCallback = unsafe extern "C" fn(*mut c_void, *const c_char, *const *const c_char, usize);

struct CRetriever {
    retrieve: RetrieveCallback,
    user_data: UserData,
}

impl HostRetriever for CRetriever {
    fn retrieve(&self, content_topic: &str, hashes: &[MessageHash]) {
        let Ok(topic) = CString::new(content_topic) else { return };
        let hex: Vec<CString> = hashes.iter().filter_map(|h| CString::new(hash_to_hex(h)).ok()).collect();
        let ptrs: Vec<*const c_char> = hex.iter().map(|h| h.as_ptr()).collect();
        // SAFETY: every pointer is valid for the call; the callback follows the C contract.
        unsafe { (self.retrieve)(self.user_data.ptr, topic.as_ptr(), ptrs.as_ptr(), ptrs.len()) };
    }
}

/// Installs the host's store callback (`retrieve` NULL removes it): SDS then asks the host for
/// messages it misses whose retrieval hint (Waku message hash) it knows, e.g. the sender's
/// earlier message after a loss. Without it, missing messages are recovered by SDS alone
/// (retransmission, syncs, repair requests to peers). While a store callback is installed and
/// the channel's rate limit is on, channels rely on the store (README "Behaviour in brief"): the
/// first retransmission of a message confirmed with its hash (`rc_transport_sent`) waits 6 ×
/// `acknowledgementTimeoutMs` and acknowledgement syncs go out later, which saves RLN budget; so
/// report message hashes and serve lookups promptly. `free_user_data` (may be NULL) runs once
/// the library no longer uses `user_data`. `RC_ERR_TRANSPORT` unless the manager was created
/// with `transport.kind = "host"`.
///
/// # Safety
///
/// `mgr` is NULL (refused) or a handle from `rc_manager_new` not yet passed to `rc_manager_free`;
/// `user_data` is used as `retrieve` requires, from the runtime thread, until `free_user_data` runs.
#[no_mangle]
pub unsafe extern "C" fn rc_set_transport_retrieve(
    mgr: *mut rc_manager,
    retrieve: rc_transport_retrieve_fn,
    user_data: *mut c_void,
    free_user_data: rc_free_fn,
) -> rc_status {
    ffi_boundary!({
        let m = try_manager!(mgr);
        let retriever = retrieve.map(|f| Arc::new(CRetriever { retrieve: f, user_data: UserData::new(user_data, free_user_data) }));
        swap_hook(retriever, |r| &r.user_data, |r| m.set_host_retriever(r.map(|r| r as Arc<dyn HostRetriever>)))
    })
}

/// A `message_hash` argument ("0x" + 64 hex, or without the prefix; NULL = not given).
fn parse_hash(message_hash: Option<&str>) -> Result<Option<MessageHash>, Error> {
    let Some(s) = message_hash else { return Ok(None) };
    let h = s.strip_prefix("0x").unwrap_or(s);
    let mut out = [0u8; 32];
    hex::decode_to_slice(h, &mut out).map_err(|_| Error::InvalidArgument("message_hash must be 32 bytes of hex (0x-prefixed or not)".into()))?;
    Ok(Some(out))
}

/// Reports that dispatch `dispatch_id` was published; `message_hash` ("0x" + 64 hex, or NULL)
/// becomes the SDS retrieval hint. `RC_ERR_TRANSPORT` for an unknown or repeated id.
/// Callable from any thread, including from inside the send callback.
///
/// # Safety
///
/// `mgr` is NULL (refused) or a handle from `rc_manager_new` not yet passed to `rc_manager_free`;
/// `message_hash` is NULL or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn rc_transport_sent(mgr: *mut rc_manager, dispatch_id: u64, message_hash: *const c_char) -> rc_status {
    ffi_boundary!({
        let m = try_manager!(mgr);
        let hash = parse_hash(try_opt_str!(message_hash))?;
        m.transport_sent(dispatch_id, hash)
    })
}

/// Reports that dispatch `dispatch_id` could not be published (`error` may be NULL).
/// `RC_ERR_TRANSPORT` for an unknown or repeated id.
///
/// # Safety
///
/// `mgr` is NULL (refused) or a handle from `rc_manager_new` not yet passed to `rc_manager_free`;
/// `error` is NULL or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn rc_transport_failed(mgr: *mut rc_manager, dispatch_id: u64, error: *const c_char) -> rc_status {
    ffi_boundary!({
        let m = try_manager!(mgr);
        let err = try_opt_str!(error).unwrap_or("transport failed");
        m.transport_failed(dispatch_id, err)
    })
}

/// Hands the library a WakuMessage the host's node received (copied before returning);
/// foreign traffic is filtered by the library. `message_hash` (or NULL: computed) becomes
/// the SDS retrieval hint.
///
/// # Safety
///
/// `mgr` is NULL (refused) or a handle from `rc_manager_new` not yet passed to `rc_manager_free`;
/// `msg` is NULL (refused) or points to a message whose pointers are readable for their lengths
/// (`content_topic` NUL-terminated) for the duration of the call; `message_hash` is NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn rc_transport_receive(mgr: *mut rc_manager, msg: *const rc_waku_message, message_hash: *const c_char) -> rc_status {
    ffi_boundary!({
        let m = try_manager!(mgr);
        let w = try_ref!(msg);
        let topic = try_str!(w.content_topic, "msg->content_topic");
        let payload = try_slice!(w.payload, w.payload_len, MAX_WAKU_MESSAGE_BYTES, "msg->payload");
        let meta = try_slice!(w.meta, w.meta_len, MAX_WAKU_MESSAGE_BYTES, "msg->meta");
        let hash = parse_hash(try_opt_str!(message_hash))?;
        let message = WakuMessage {
            payload: Bytes::copy_from_slice(payload),
            content_topic: topic.to_owned(),
            version: Some(0),
            timestamp: Some(w.timestamp_ns),
            meta: (!meta.is_empty()).then(|| Bytes::copy_from_slice(meta)),
            rate_limit_proof: None,
            ephemeral: w.ephemeral.then_some(true),
        };
        m.transport_receive(message, hash)
    })
}
