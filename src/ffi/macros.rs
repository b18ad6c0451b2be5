//! The panic boundary and argument checks shared by every export (after rustls-ffi's
//! `ffi_panic_boundary!` and hyper's `ffi_fn!`).

/// The panic boundary of every export returning `rc_status`: runs the body (which returns
/// `Result<(), crate::Error>`), turns errors and panics into status codes and records
/// `rc_last_error`. The export itself stays a plain `extern "C" fn` so cbindgen sees it. Every
/// export is refused from inside the log callback (see `src/ffi/log.rs`).
macro_rules! ffi_boundary {
    ($body:block) => {
        $crate::ffi::status::finish(::std::panic::catch_unwind(::std::panic::AssertUnwindSafe(move || -> Result<(), $crate::Error> {
            $crate::ffi::log::refuse_inside_log_callback()?;
            $body
        })))
    };
}

/// `&CStr` → `&str`, or an `InvalidArgument` error naming the parameter.
macro_rules! c_str {
    ($p:expr, $name:literal) => {
        $crate::ffi::status::str_arg($p, $name)?
    };
}

/// `*const T` → `&T`, or an `InvalidArgument` error naming the parameter.
macro_rules! non_null {
    ($p:expr, $name:literal) => {
        match unsafe { $p.as_ref() } {
            Some(r) => r,
            None => return Err($crate::Error::InvalidArgument(concat!($name, " is NULL").into())),
        }
    };
}
