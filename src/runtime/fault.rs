//! Fault injection for the crash tests (tests/crash_loop.rs, tests/c/crash_child.c): the
//! environment variable `RC_FAULT=<point>:<n>` kills the process with SIGKILL at the `n`-th
//! occurrence (counted from 1, per process) of `point`:
//!
//! | point          | where                                                                   |
//! |----------------|-------------------------------------------------------------------------|
//! | `commit-before`| a group commit is about to be written                                    |
//! | `commit-after` | a group commit was written; nothing of its batch was released yet        |
//! | `partial`      | a commit stored a chunk of a partial incoming message (mid-reassembly)   |
//!
//! Read once per process; unset (the normal case) it costs one atomic load per commit.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

/// A place where the runtime can be killed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Point {
    CommitBefore,
    CommitAfter,
    Partial,
}

impl Point {
    fn name(self) -> &'static str {
        match self {
            Point::CommitBefore => "commit-before",
            Point::CommitAfter => "commit-after",
            Point::Partial => "partial",
        }
    }
}

/// The armed point and occurrence, if any.
fn armed() -> Option<(&'static str, u64)> {
    static SPEC: OnceLock<Option<(&'static str, u64)>> = OnceLock::new();
    *SPEC.get_or_init(|| {
        let v = std::env::var("RC_FAULT").ok()?;
        let (point, n) = v.split_once(':')?;
        let point = [Point::CommitBefore, Point::CommitAfter, Point::Partial].into_iter().find(|p| p.name() == point)?;
        Some((point.name(), n.parse().ok()?))
    })
}

/// True when `point` is armed: lets a caller skip work done only to decide whether it is hit.
pub(crate) fn is_armed(point: Point) -> bool {
    armed().is_some_and(|(p, _)| p == point.name())
}

/// Counts an occurrence of `point`; kills the process at the armed one.
pub(crate) fn hit(point: Point) {
    static COUNT: AtomicU64 = AtomicU64::new(0);
    let Some((p, n)) = armed() else { return };
    if p == point.name() && COUNT.fetch_add(1, Ordering::Relaxed) + 1 == n {
        log::warn!("RC_FAULT: killing the process at {p} #{n}");
        // SAFETY: raising a signal has no memory-safety preconditions; SIGKILL does not return.
        unsafe {
            libc::raise(libc::SIGKILL);
        }
    }
}
