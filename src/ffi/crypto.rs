//! The encryption hook across the boundary.

use std::ffi::{c_char, c_int, c_void, CString};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use super::manager::{manager, rc_manager};
use super::status::rc_status;
use crate::channel::{CryptoError, Encryption};
use crate::Error;

/// Largest output an encryption or decryption callback may produce (16 MiB).
pub const RC_BUFFER_MAX: usize = 16 * 1024 * 1024;

/// A library-owned output sink handed to crypto callbacks; fill it with `rc_buffer_append`.
/// Valid only during the callback.
pub struct rc_buffer {
    data: Vec<u8>,
}

/// Encrypt or decrypt callback: transform `input` into `output`; return 0 on success, anything
/// else fails the message (no plaintext fallback). Runs on the runtime thread; it may call
/// `rc_send`, `rc_open_channel`, `rc_close_channel` and `rc_transport_*`.
pub type rc_crypto_fn = Option<
    unsafe extern "C" fn(user_data: *mut c_void, channel_id: *const c_char, input: *const u8, input_len: usize, output: *mut rc_buffer) -> c_int,
>;

/// Finalizer of a user-data pointer, called exactly once when the library no longer uses it.
pub type rc_free_fn = Option<unsafe extern "C" fn(user_data: *mut c_void)>;

/// Appends `len` bytes to a callback's output buffer (`data` may be NULL when `len` is 0).
/// `RC_ERR_INVALID_ARGUMENT` past `RC_BUFFER_MAX` bytes in all.
///
/// # Safety
///
/// `out` is NULL (refused) or the buffer passed to the running encrypt/decrypt callback;
/// `data` is NULL only with `len == 0`, else readable for `len` bytes.
#[no_mangle]
pub unsafe extern "C" fn rc_buffer_append(out: *mut rc_buffer, data: *const u8, len: usize) -> rc_status {
    ffi_boundary!({
        // SAFETY: `out` is the buffer passed to the running callback (the caller's contract).
        let Some(buf) = (unsafe { out.as_mut() }) else { return Err(Error::InvalidArgument("out is NULL".into())) };
        if len == 0 {
            return Ok(());
        }
        if data.is_null() {
            return Err(Error::InvalidArgument("data is NULL with a non-zero length".into()));
        }
        // `len` comes from C: compare without an addition that could wrap around.
        if len > RC_BUFFER_MAX.saturating_sub(buf.data.len()) {
            return Err(Error::InvalidArgument(format!("output would exceed RC_BUFFER_MAX ({RC_BUFFER_MAX} bytes)")));
        }
        // SAFETY: the caller passes `len` readable bytes.
        buf.data.extend_from_slice(unsafe { std::slice::from_raw_parts(data, len) });
        Ok(())
    })
}

/// A host's user-data pointer and its finalizer. The finalizer runs exactly once, when the last
/// owner drops, and only if the library took ownership ([`Self::arm`]): a failed setter call
/// leaves the pointer with the caller.
pub(crate) struct UserData {
    pub ptr: *mut c_void,
    free: rc_free_fn,
    armed: AtomicBool,
}

// SAFETY: the C contract requires callbacks and their user data to be usable from any thread.
unsafe impl Send for UserData {}
unsafe impl Sync for UserData {}

impl UserData {
    pub fn new(ptr: *mut c_void, free: rc_free_fn) -> Self {
        UserData { ptr, free, armed: AtomicBool::new(false) }
    }
    pub fn arm(&self) {
        self.armed.store(true, Ordering::Release);
    }
}

impl Drop for UserData {
    fn drop(&mut self) {
        if let (true, Some(f)) = (self.armed.load(Ordering::Acquire), self.free) {
            // SAFETY: the finalizer the host gave for this pointer; runs once, after the last use.
            unsafe { f(self.ptr) };
        }
    }
}

/// A C encrypt/decrypt pair.
struct CEncryption {
    encrypt: unsafe extern "C" fn(*mut c_void, *const c_char, *const u8, usize, *mut rc_buffer) -> c_int,
    decrypt: unsafe extern "C" fn(*mut c_void, *const c_char, *const u8, usize, *mut rc_buffer) -> c_int,
    user_data: UserData,
}

impl CEncryption {
    fn call(
        &self,
        f: unsafe extern "C" fn(*mut c_void, *const c_char, *const u8, usize, *mut rc_buffer) -> c_int,
        what: &str,
        channel_id: &str,
        input: &[u8],
    ) -> Result<Vec<u8>, CryptoError> {
        let cid = CString::new(channel_id).map_err(|_| CryptoError("channel id contains NUL".into()))?;
        let mut out = rc_buffer { data: Vec::with_capacity(input.len() + 64) };
        // SAFETY: all pointers are valid for the call; the callback follows the C contract.
        let rc = unsafe { f(self.user_data.ptr, cid.as_ptr(), input.as_ptr(), input.len(), &mut out) };
        if rc == 0 {
            Ok(out.data)
        } else {
            Err(CryptoError(format!("{what} callback returned {rc}")))
        }
    }
}

impl Encryption for CEncryption {
    fn encrypt(&self, channel_id: &str, plaintext: &[u8]) -> Result<Vec<u8>, CryptoError> {
        self.call(self.encrypt, "encrypt", channel_id, plaintext)
    }
    fn decrypt(&self, channel_id: &str, ciphertext: &[u8]) -> Result<Vec<u8>, CryptoError> {
        self.call(self.decrypt, "decrypt", channel_id, ciphertext)
    }
}

/// Installs a hook built around the caller's `user_data`: the finalizer is armed only once the
/// swap succeeded (a refused call leaves `user_data` with the caller; arming while we still hold a
/// reference makes the last drop run it), and a replaced hook is dropped after the swap.
pub(super) fn swap_hook<H, P>(
    hook: Option<Arc<H>>,
    data: fn(&H) -> &UserData,
    swap: impl FnOnce(Option<Arc<H>>) -> Result<P, Error>,
) -> Result<(), Error> {
    let previous = swap(hook.clone())?;
    if let Some(h) = &hook {
        data(h).arm();
    }
    drop(previous);
    Ok(())
}

/// Sets the encryption hook of `channel_id`, or with `channel_id` NULL the default of every
/// channel without its own. Both callbacks NULL removes the hook (back to the default, or
/// plaintext). `free_user_data` (may be NULL) runs once the library no longer uses
/// `user_data`: on replacement or `rc_manager_free`. On failure the library does not take
/// `user_data` and does not call `free_user_data`.
///
/// # Safety
///
/// `mgr` is NULL (refused) or a handle from `rc_manager_new` not yet passed to `rc_manager_free`;
/// `channel_id` is NULL (the manager-wide default) or a NUL-terminated string;
/// `user_data` is used as the callbacks require, from the runtime thread, until `free_user_data` runs.
#[no_mangle]
pub unsafe extern "C" fn rc_set_encryption(
    mgr: *mut rc_manager,
    channel_id: *const c_char,
    encrypt: rc_crypto_fn,
    decrypt: rc_crypto_fn,
    user_data: *mut c_void,
    free_user_data: rc_free_fn,
) -> rc_status {
    ffi_boundary!({
        let m = manager(mgr)?;
        let channel = if channel_id.is_null() { None } else { Some(c_str!(channel_id, "channel_id")) };
        let hook = match (encrypt, decrypt) {
            (Some(e), Some(d)) => Some(Arc::new(CEncryption { encrypt: e, decrypt: d, user_data: UserData::new(user_data, free_user_data) })),
            (None, None) => None,
            _ => return Err(Error::InvalidArgument("encrypt and decrypt must both be set or both be NULL".into())),
        };
        swap_hook(hook, |h| &h.user_data, |h| m.set_encryption(channel, h.map(|h| h as Arc<dyn Encryption>)))
    })
}
