//! The panic boundary and the argument conversions of every export (after rustls-ffi's
//! `ffi_panic_boundary!`, `try_slice!`, `try_mut_from_ptr!` and hyper's `ffi_fn!`). The
//! conversions (`convert.rs`) return `InvalidArgument` naming the parameter; these macros pass
//! the parameter's own name and return early with `?`.

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

/// `*const c_char` → `&str` (NULL or invalid UTF-8 refused). Relies on the export's `# Safety`.
macro_rules! try_str {
    ($p:ident) => {
        try_str!($p, stringify!($p))
    };
    ($p:expr, $name:expr) => {
        unsafe { $crate::ffi::convert::str_arg($p, $name) }?
    };
}

/// `*const c_char` → `Option<&str>` (NULL = `None`). Relies on the export's `# Safety`.
macro_rules! try_opt_str {
    ($p:ident) => {
        unsafe { $crate::ffi::convert::opt_str_arg($p, stringify!($p)) }?
    };
}

/// `*const T` → `&T` (NULL refused). Relies on the export's `# Safety`.
macro_rules! try_ref {
    ($p:ident) => {
        unsafe { $crate::ffi::convert::ref_arg($p, stringify!($p)) }?
    };
}

/// Pointer + length → slice: 0 is empty, over `max` refused before any slice is built, NULL with
/// a length refused. Relies on the export's `# Safety`.
macro_rules! try_slice {
    ($p:ident, $len:expr, $max:expr) => {
        try_slice!($p, $len, $max, stringify!($p))
    };
    ($p:expr, $len:expr, $max:expr, $name:expr) => {
        unsafe { $crate::ffi::convert::slice_arg($p, $len, $max, $name) }?
    };
}

/// An out-pointer, checked now, written (only on success) with `Out::write` at the end.
macro_rules! try_out {
    ($p:ident) => {
        $crate::ffi::convert::Out::new($p, stringify!($p))?
    };
}

/// `*mut rc_manager` → `&Manager` (NULL refused). Relies on the export's `# Safety`.
macro_rules! try_manager {
    ($p:ident) => {
        unsafe { $crate::ffi::convert::manager_arg($p) }?
    };
}
