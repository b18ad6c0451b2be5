//! A host's `user_data` pointer with its finalizer, and the swap that installs a hook built
//! around one (the encryption hook, the host transport's hooks, the event callback).

use std::ffi::c_void;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crate::Error;

/// Finalizer of a user-data pointer, called exactly once when the library no longer uses it.
pub type rc_free_fn = Option<unsafe extern "C" fn(user_data: *mut c_void)>;

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

/// Installs a hook built around the caller's `user_data`: the finalizer is armed only once the
/// swap succeeded (a refused call leaves `user_data` with the caller; arming while we still hold a
/// reference makes the last drop run it), and a replaced hook is dropped after the swap.
pub(crate) fn swap_hook<H, P>(
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
