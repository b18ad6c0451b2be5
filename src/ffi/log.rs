//! The log callback across the boundary: `rc_set_log_callback`, `RC_LOG`, and the process-wide
//! logger behind them.
//!
//! The `log` facade takes one logger per process, once. [`CLogger`] is installed on the first
//! `rc_set_log_callback` (or the first `rc_manager_new` when `RC_LOG` is set; a Rust program that
//! only uses the Rust API never gets it) and forwards each record to the current sink: the C
//! callback, stderr (`RC_LOG`), or nothing. `log::set_max_level` follows the sink's level, so
//! below it the macros stop at one atomic load and format nothing.
//!
//! - Replacing the callback swaps the sink under a lock that forwarding holds for reading: the swap
//!   waits for the calls in progress, so the old `user_data` may go once `rc_set_log_callback`
//!   returned.
//! - While a record is formatted and forwarded a thread-local flag is set: records emitted
//!   meanwhile are dropped rather than recursing, and every export refuses with `RC_ERR_REENTRANT`
//!   (`ffi_boundary!`): a record may be emitted in the middle of the library's work (a
//!   channel's step, a registry update), where a call back in would find it half done.
//! - ERROR and WARN records are rate limited per call site (`crate::logging::SiteLimiter`, on the
//!   wall clock); suppressed records are counted in a summary before the site's next record, and
//!   when the callback is replaced.

use std::cell::{Cell, RefCell};
use std::ffi::{c_char, c_int, c_void};
use std::fmt::{self, Write as _};
use std::io::Write as _;
use std::sync::{Once, OnceLock};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use ::log::{Level, LevelFilter, Log, Metadata, Record};
use parking_lot::{Mutex, RwLock};

use super::status::rc_status;
use crate::logging::{Admit, SiteLimiter, Suppressed};
use crate::Error;

/// Severity of a log record, and the `max_level` of `rc_set_log_callback`: `RC_LOG_OFF` …
/// `RC_LOG_TRACE`. An `int` rather than an enum so that any value a caller passes is defined
/// behaviour (out-of-range ones are refused).
pub type rc_log_level = c_int;
/// No records (as `max_level`).
pub const RC_LOG_OFF: rc_log_level = 0;
/// A failure the application must know: storage failed, transport down.
pub const RC_LOG_ERROR: rc_log_level = 1;
/// Something given up, lost or refused: a send given up, a dependency lost, a malformed,
/// undecryptable or unmarked message dropped.
pub const RC_LOG_WARN: rc_log_level = 2;
/// Lifecycle: a channel opened or closed, the transport connected.
pub const RC_LOG_INFO: rc_log_level = 3;
/// Per-message decisions.
pub const RC_LOG_DEBUG: rc_log_level = 4;
/// Summaries of the wire bytes of each message.
pub const RC_LOG_TRACE: rc_log_level = 5;

/// Log callback: one record of `level` from `target` (the emitting module, e.g.
/// `"reliable_channel::channel::channel"`). `target` and `message` are NUL-terminated UTF-8,
/// borrowed for the duration of the call. Runs on whichever thread emitted the record (a
/// library thread, or yours inside an `rc_*` call), possibly on several threads at once; it
/// must be fast, must not block, and cannot call the library (`RC_ERR_REENTRANT`).
pub type rc_log_fn = Option<unsafe extern "C" fn(user_data: *mut c_void, level: rc_log_level, target: *const c_char, message: *const c_char)>;

/// Longest message handed on (bytes, without the NUL); a longer one is cut at a character
/// boundary and ends with "…".
const MAX_MESSAGE_BYTES: usize = 4096;
/// Longest target handed on (bytes).
const MAX_TARGET_BYTES: usize = 256;

/// Where records go.
#[derive(Clone, Copy)]
enum Sink {
    Off,
    Stderr,
    Callback { f: unsafe extern "C" fn(*mut c_void, rc_log_level, *const c_char, *const c_char), user_data: *mut c_void },
}

// SAFETY: the C contract of rc_set_log_callback: the callback and its user_data are usable from
// any thread, concurrently.
unsafe impl Send for Sink {}
unsafe impl Sync for Sink {}

/// The sink and its level (the process's `log::max_level`).
struct Current {
    sink: Sink,
    level: LevelFilter,
}

struct CLogger {
    current: RwLock<Current>,
    limiter: Mutex<SiteLimiter>,
    start: Instant,
}

thread_local! {
    /// Set while this thread formats or forwards a record.
    static BUSY: Cell<bool> = const { Cell::new(false) };
    /// The formatted target and message, reused by every record of the thread.
    static BUFFER: RefCell<String> = const { RefCell::new(String::new()) };
}

/// The flag of [`BUSY`] for one record; `None` when the thread is already at it.
struct Busy;

impl Busy {
    fn enter() -> Option<Busy> {
        // Lazily: a `Busy` made and dropped here would clear the flag.
        (!BUSY.replace(true)).then(|| Busy)
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        BUSY.set(false);
    }
}

/// Refuses an export on a thread that is running the log callback (see the module docs).
pub(crate) fn refuse_inside_log_callback() -> Result<(), Error> {
    if BUSY.get() {
        return Err(Error::Reentrant("rc_* functions cannot be called from the log callback".into()));
    }
    Ok(())
}

impl Log for CLogger {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        metadata.level() <= ::log::max_level()
    }

    fn log(&self, record: &Record<'_>) {
        let Some(_busy) = Busy::enter() else { return };
        let current = self.current.read();
        let level = record.level();
        if level > current.level {
            return;
        }
        if level <= Level::Warn {
            let site = record.file_static().zip(record.line());
            let admit = self.limiter.lock().admit(site, level, record.target(), self.now_ms());
            match admit {
                Admit::Suppress => return,
                Admit::Emit { suppressed: 0 } => {}
                Admit::Emit { suppressed } => current.sink.emit(level, record.target(), format_args!("{}", Suppressed::message(suppressed, site))),
            }
        }
        current.sink.emit(level, record.target(), *record.args());
    }

    /// Reports the records suppressed since their site's last record.
    fn flush(&self) {
        let Some(_busy) = Busy::enter() else { return };
        let current = self.current.read();
        let pending = self.limiter.lock().take_suppressed();
        for s in pending.into_iter().filter(|s| s.level <= current.level) {
            current.sink.emit(s.level, &s.target, format_args!("{}", Suppressed::message(s.count, s.site)));
        }
    }
}

impl CLogger {
    fn now_ms(&self) -> u64 {
        self.start.elapsed().as_millis() as u64
    }
}

impl Sink {
    fn emit(self, level: Level, target: &str, args: fmt::Arguments<'_>) {
        match self {
            Sink::Off => {}
            Sink::Stderr => with_buffer(|buf| {
                let t = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
                let _ = write!(buf, "{}.{:03} {level} ", t.as_secs(), t.subsec_millis());
                write_capped(buf, format_args!("{target}"), MAX_TARGET_BYTES);
                buf.push_str(": ");
                write_capped(buf, args, MAX_MESSAGE_BYTES);
                buf.push('\n');
                let _ = std::io::stderr().lock().write_all(buf.as_bytes());
            }),
            Sink::Callback { f, user_data } => with_buffer(|buf| {
                write_capped(buf, format_args!("{target}"), MAX_TARGET_BYTES);
                buf.push('\0');
                let message = buf.len();
                write_capped(buf, args, MAX_MESSAGE_BYTES);
                buf.push('\0');
                // SAFETY: both strings are NUL-terminated (NULs inside are escaped) and live until
                // the call returns; the callback follows the C contract.
                unsafe { f(user_data, level as usize as rc_log_level, buf.as_ptr().cast(), buf[message..].as_ptr().cast()) };
            }),
        }
    }
}

/// Runs `f` on the thread's cleared buffer (a fresh one while thread-locals are torn down).
fn with_buffer(f: impl FnOnce(&mut String)) {
    let mut f = Some(f);
    let _ = BUFFER.try_with(|b| {
        if let Ok(mut buf) = b.try_borrow_mut() {
            if let Some(f) = f.take() {
                buf.clear();
                f(&mut buf);
            }
        }
    });
    if let Some(f) = f {
        f(&mut String::new());
    }
}

/// Formats `args` into `out`, at most `max` bytes of it (then "…"); NUL bytes become `\0`.
fn write_capped(out: &mut String, args: fmt::Arguments<'_>, max: usize) {
    let mut w = Capped { out, room: max, cut: false };
    // An error is the cut, or a Display impl's failure: either way keep what was written.
    let _ = fmt::write(&mut w, args);
    if w.cut {
        w.out.push('…');
    }
}

struct Capped<'a> {
    out: &'a mut String,
    room: usize,
    cut: bool,
}

impl fmt::Write for Capped<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        if s.len() <= self.room && !s.contains('\0') {
            self.out.push_str(s);
            self.room -= s.len();
            return Ok(());
        }
        let mut utf8 = [0u8; 4];
        for c in s.chars() {
            let piece = if c == '\0' { "\\0" } else { c.encode_utf8(&mut utf8) };
            if piece.len() > self.room {
                self.cut = true;
                return Err(fmt::Error);
            }
            self.out.push_str(piece);
            self.room -= piece.len();
        }
        Ok(())
    }
}

/// The logger, installed on first use; `None` when another logger of the `log` crate took the
/// process first (a Rust program linking the library).
static LOGGER: OnceLock<Option<&'static CLogger>> = OnceLock::new();

fn logger() -> Result<&'static CLogger, Error> {
    let installed = LOGGER.get_or_init(|| {
        let l: &'static CLogger = Box::leak(Box::new(CLogger {
            current: RwLock::new(Current { sink: Sink::Off, level: LevelFilter::Off }),
            limiter: Mutex::new(SiteLimiter::new()),
            start: Instant::now(),
        }));
        ::log::set_logger(l).ok().map(|()| l)
    });
    installed.ok_or_else(|| {
        Error::Config(
            "another logger of the `log` crate is installed in this process (a Rust program linking the library logs through its own)".into(),
        )
    })
}

/// `RC_LOG` (off, error, warn, info, debug, trace), read once.
fn env_level() -> LevelFilter {
    static LEVEL: OnceLock<LevelFilter> = OnceLock::new();
    *LEVEL.get_or_init(|| {
        let Ok(v) = std::env::var("RC_LOG") else { return LevelFilter::Off };
        if v.trim().is_empty() {
            return LevelFilter::Off;
        }
        v.trim().parse().unwrap_or_else(|_| {
            eprintln!("reliable_channel: RC_LOG={v:?} is not one of off, error, warn, info, debug, trace: logging stays off");
            LevelFilter::Off
        })
    })
}

/// Where records go without a callback: stderr at the `RC_LOG` level, or nowhere.
fn default_current() -> Current {
    match env_level() {
        LevelFilter::Off => Current { sink: Sink::Off, level: LevelFilter::Off },
        level => Current { sink: Sink::Stderr, level },
    }
}

/// Installs the stderr logger when `RC_LOG` asks for one and no callback was set (once; called
/// by `rc_manager_new`).
pub(crate) fn init_from_env() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        if env_level() == LevelFilter::Off {
            return;
        }
        let Ok(l) = logger() else { return };
        let mut current = l.current.write();
        if matches!(current.sink, Sink::Off) {
            *current = default_current();
            ::log::set_max_level(current.level);
        }
    });
}

/// Reports the records suppressed so far (when a manager is freed: a flood's last count would
/// otherwise wait for the next record of its site).
pub(crate) fn flush() {
    if let Some(Some(l)) = LOGGER.get() {
        l.flush();
    }
}

fn level_filter(level: rc_log_level) -> Result<LevelFilter, Error> {
    Ok(match level {
        RC_LOG_OFF => LevelFilter::Off,
        RC_LOG_ERROR => LevelFilter::Error,
        RC_LOG_WARN => LevelFilter::Warn,
        RC_LOG_INFO => LevelFilter::Info,
        RC_LOG_DEBUG => LevelFilter::Debug,
        RC_LOG_TRACE => LevelFilter::Trace,
        _ => return Err(Error::InvalidArgument(format!("max_level {level} is not an rc_log_level (RC_LOG_OFF = 0 … RC_LOG_TRACE = 5)"))),
    })
}

/// Sets the process-wide log callback: records up to `max_level` go to `callback` (NULL removes
/// it: then, if the environment variable `RC_LOG` is set, e.g. `RC_LOG=debug`, to stderr, else
/// nowhere). Off by default. Records above `max_level` are not even formatted. May be called at
/// any time, from any thread, any number of times; `RC_ERR_INVALID_ARGUMENT` for a `max_level`
/// outside `RC_LOG_OFF` … `RC_LOG_TRACE`, `RC_ERR_CONFIG` when a Rust program linking the library
/// installed its own logger of the `log` crate (nothing changes then).
///
/// - The callback runs on the thread that emitted the record: the runtime and event threads of
///   every manager, or your own thread inside an `rc_*` call; on several threads at once. It must
///   be fast and must not block (a blocked callback stalls that thread: for the runtime thread,
///   every channel of its manager).
/// - From inside the callback every function returning `rc_status` fails with
///   `RC_ERR_REENTRANT` (a record may be emitted in the middle of the library's work); copy what
///   you need and act elsewhere.
/// - ERROR and WARN records are rate limited per call site (10 at once, then 1 per second); a
///   record "N similar records suppressed (…)" reports what was dropped, before the site's next
///   record and when the callback is replaced.
/// - When this function returns, the callback it replaced has returned from every call and is
///   not called again.
///
/// # Safety
///
/// `callback` is NULL or a function following the contract above; `user_data` is passed back
/// unchanged and is not owned by the library: it must stay valid until a call replacing or
/// removing the callback has returned.
#[no_mangle]
pub unsafe extern "C" fn rc_set_log_callback(callback: rc_log_fn, user_data: *mut c_void, max_level: rc_log_level) -> rc_status {
    ffi_boundary!({
        let level = level_filter(max_level)?;
        let next = match callback {
            Some(f) => Current { sink: Sink::Callback { f, user_data }, level },
            None => default_current(),
        };
        if matches!(next.sink, Sink::Off) && !matches!(LOGGER.get(), Some(Some(_))) {
            return Ok(()); // nothing installed, nothing to remove
        }
        let l = logger()?;
        l.flush();
        // Waits for the calls of the current callback in progress.
        let mut current = l.current.write();
        *current = next;
        ::log::set_max_level(current.level);
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn capped(args: fmt::Arguments<'_>, max: usize) -> String {
        let mut s = String::new();
        write_capped(&mut s, args, max);
        s
    }

    #[test]
    fn messages_are_capped_at_a_character_boundary() {
        assert_eq!(capped(format_args!("{}", "abc"), 3), "abc");
        assert_eq!(capped(format_args!("{}", "abcd"), 3), "abc…");
        assert_eq!(capped(format_args!("{}{}", "ab", "cd"), 3), "abc…");
        // "é" is two bytes: it does not fit in the last one.
        assert_eq!(capped(format_args!("abé"), 3), "ab…");
        assert_eq!(capped(format_args!("{}", "x".repeat(10 * MAX_MESSAGE_BYTES)), MAX_MESSAGE_BYTES).len(), MAX_MESSAGE_BYTES + '…'.len_utf8());
    }

    #[test]
    fn a_nested_use_of_the_buffer_gets_a_fresh_one() {
        let mut ran = 0;
        with_buffer(|outer| {
            outer.push('x');
            with_buffer(|inner| {
                assert!(inner.is_empty());
                ran += 1;
            });
        });
        assert_eq!(ran, 1);
    }

    #[test]
    fn nul_bytes_are_escaped() {
        assert_eq!(capped(format_args!("{}", "a\0b"), 100), "a\\0b");
    }

    #[test]
    fn levels_map_one_to_one_and_others_are_refused() {
        for (c, l) in [
            (RC_LOG_ERROR, Level::Error),
            (RC_LOG_WARN, Level::Warn),
            (RC_LOG_INFO, Level::Info),
            (RC_LOG_DEBUG, Level::Debug),
            (RC_LOG_TRACE, Level::Trace),
        ] {
            assert_eq!(level_filter(c).unwrap(), l.to_level_filter());
            assert_eq!(l as usize as rc_log_level, c);
        }
        assert_eq!(level_filter(RC_LOG_OFF).unwrap(), LevelFilter::Off);
        assert!(matches!(level_filter(6), Err(Error::InvalidArgument(_))));
        assert!(matches!(level_filter(-1), Err(Error::InvalidArgument(_))));
    }

    /// A record emitted from inside the callback (here by the callback itself) is dropped, not
    /// delivered recursively. The logger is process-wide: other tests' records are ignored.
    #[test]
    fn records_from_inside_the_callback_are_dropped() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static SEEN: AtomicUsize = AtomicUsize::new(0);
        unsafe extern "C" fn cb(_: *mut c_void, _: rc_log_level, _: *const c_char, message: *const c_char) {
            // SAFETY: the library passes a NUL-terminated string valid for the call.
            if unsafe { std::ffi::CStr::from_ptr(message) }.to_bytes().starts_with(b"ffi::log test") {
                SEEN.fetch_add(1, Ordering::SeqCst);
                ::log::warn!("ffi::log test: nested");
            }
        }
        // SAFETY: a valid callback without user data.
        assert_eq!(unsafe { rc_set_log_callback(Some(cb), std::ptr::null_mut(), RC_LOG_WARN) }, rc_status::RC_OK);
        ::log::warn!("ffi::log test: outer");
        // SAFETY: removing the callback.
        assert_eq!(unsafe { rc_set_log_callback(None, std::ptr::null_mut(), RC_LOG_OFF) }, rc_status::RC_OK);
        assert_eq!(SEEN.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn the_busy_flag_refuses_exports_and_nests_once() {
        assert!(refuse_inside_log_callback().is_ok());
        {
            let _b = Busy::enter().unwrap();
            assert!(Busy::enter().is_none());
            assert!(matches!(refuse_inside_log_callback(), Err(Error::Reentrant(_))));
        }
        assert!(refuse_inside_log_callback().is_ok());
    }
}
