//! The encryption hook across the boundary.

use std::ffi::{c_char, c_int, c_void, CString};
use std::sync::Arc;

use super::manager::rc_manager;
use super::status::rc_status;
use super::user_data::{rc_free_fn, swap_hook, UserData};
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

/// The function of a non-NULL [`rc_crypto_fn`].
type CryptoCallback = unsafe extern "C" fn(*mut c_void, *const c_char, *const u8, usize, *mut rc_buffer) -> c_int;

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
        // `len` comes from C: the room left is computed without an addition that could wrap.
        let bytes = try_slice!(data, len, RC_BUFFER_MAX.saturating_sub(buf.data.len()));
        buf.data.extend_from_slice(bytes);
        Ok(())
    })
}

/// A C encrypt/decrypt pair.
struct CEncryption {
    encrypt: CryptoCallback,
    decrypt: CryptoCallback,
    user_data: UserData,
}

impl CEncryption {
    fn call(&self, f: CryptoCallback, what: &str, channel_id: &str, input: &[u8]) -> Result<Vec<u8>, CryptoError> {
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
        let m = try_manager!(mgr);
        let channel = try_opt_str!(channel_id);
        let hook = match (encrypt, decrypt) {
            (Some(e), Some(d)) => Some(Arc::new(CEncryption { encrypt: e, decrypt: d, user_data: UserData::new(user_data, free_user_data) })),
            (None, None) => None,
            _ => return Err(Error::InvalidArgument("encrypt and decrypt must both be set or both be NULL".into())),
        };
        swap_hook(hook, |h| &h.user_data, |h| m.set_encryption(channel, h.map(|h| h as Arc<dyn Encryption>)))
    })
}
