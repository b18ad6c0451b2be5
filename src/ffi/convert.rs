//! Argument conversions shared by every export, after rustls-ffi's `try_slice!` /
//! `try_mut_from_ptr!`: each checks one pointer (and length) from C and returns the Rust view, or
//! an `InvalidArgument` error naming the parameter. The `try_*!` macros in `macros.rs` call them
//! with the parameter's own name and `?`.

use std::ffi::{c_char, CStr};
use std::ptr::NonNull;

use super::manager::rc_manager;
use crate::{Error, Manager};

/// A NUL-terminated UTF-8 argument.
///
/// # Safety
///
/// `p` is NULL or points to a NUL-terminated string valid for `'a`.
pub(crate) unsafe fn str_arg<'a>(p: *const c_char, name: &str) -> Result<&'a str, Error> {
    if p.is_null() {
        return Err(Error::InvalidArgument(format!("{name} is NULL")));
    }
    // SAFETY: non-NULL and NUL-terminated (the caller's contract).
    unsafe { CStr::from_ptr(p) }.to_str().map_err(|_| Error::InvalidArgument(format!("{name} is not valid UTF-8")))
}

/// [`str_arg`] where NULL means "not given".
///
/// # Safety
///
/// As [`str_arg`].
pub(crate) unsafe fn opt_str_arg<'a>(p: *const c_char, name: &str) -> Result<Option<&'a str>, Error> {
    if p.is_null() {
        Ok(None)
    } else {
        // SAFETY: forwarded contract.
        unsafe { str_arg(p, name) }.map(Some)
    }
}

/// A borrowed struct argument.
///
/// # Safety
///
/// `p` is NULL or points to a `T` valid for `'a`.
pub(crate) unsafe fn ref_arg<'a, T>(p: *const T, name: &str) -> Result<&'a T, Error> {
    // SAFETY: the caller's contract.
    unsafe { p.as_ref() }.ok_or_else(|| Error::InvalidArgument(format!("{name} is NULL")))
}

/// A pointer + length argument as a slice. `len` 0 is the empty slice (the pointer may then be
/// NULL); over `max` is refused before any slice exists, so a huge length from C is never read.
///
/// # Safety
///
/// When `0 < len <= max`, `p` is NULL or readable for `len` elements for `'a`.
pub(crate) unsafe fn slice_arg<'a, T>(p: *const T, len: usize, max: usize, name: &str) -> Result<&'a [T], Error> {
    if len == 0 {
        return Ok(&[]);
    }
    if len > max {
        return Err(Error::InvalidArgument(format!("{name} of {len} bytes exceeds the limit of {max}")));
    }
    if p.is_null() {
        return Err(Error::InvalidArgument(format!("{name} is NULL with a non-zero length")));
    }
    // SAFETY: non-NULL, `len` readable elements (the caller's contract), `len <= max` is sane.
    Ok(unsafe { std::slice::from_raw_parts(p, len) })
}

/// An out-pointer, checked up front and written at most once, at the end: an export writes it
/// only on success because every failure returns before.
pub(crate) struct Out<T>(NonNull<T>);

impl<T> Out<T> {
    pub fn new(p: *mut T, name: &str) -> Result<Self, Error> {
        NonNull::new(p).map(Out).ok_or_else(|| Error::InvalidArgument(format!("{name} is NULL")))
    }

    /// Writes the output.
    ///
    /// # Safety
    ///
    /// The pointer given to [`Out::new`] is writable for a `T` (it may be uninitialised).
    pub unsafe fn write(self, value: T) {
        // SAFETY: non-NULL and writable (the caller's contract); nothing is read or dropped.
        unsafe { self.0.as_ptr().write(value) }
    }
}

impl Out<c_char> {
    /// Writes `s` and a NUL into a buffer of `s.len() + 1` bytes.
    ///
    /// # Safety
    ///
    /// The pointer given to [`Out::new`] is writable for `s.len() + 1` bytes.
    pub unsafe fn write_str(self, s: &str) {
        let p = self.0.as_ptr().cast::<u8>();
        // SAFETY: `s.len() + 1` writable bytes (the caller's contract); `s` does not overlap them.
        unsafe {
            std::ptr::copy_nonoverlapping(s.as_ptr(), p, s.len());
            p.add(s.len()).write(0);
        }
    }
}

/// The manager behind a handle.
///
/// # Safety
///
/// `mgr` is NULL or a handle from `rc_manager_new` not yet passed to `rc_manager_free`.
pub(crate) unsafe fn manager_arg<'a>(mgr: *const rc_manager) -> Result<&'a Manager, Error> {
    // SAFETY: a live handle (the caller's contract).
    unsafe { ref_arg(mgr, "mgr") }.map(|m| &m.inner)
}
