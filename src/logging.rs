//! How the library logs, and the helpers its loggers share (crate-private).
//!
//! Every layer logs through the [`log`] facade (`log::warn!`, ...), the core included: the macros
//! are no I/O, they hand records to whatever logger the process installed. A Rust application
//! installs its own (env_logger, a tracing bridge, ...); the C API installs the one of
//! `src/ffi/log.rs` on the first `rc_set_log_callback` (or `rc_manager_new` with `RC_LOG` set).
//! Nothing is installed behind a Rust user's back.
//!
//! Levels, used the same way in every layer:
//!
//! | level | for                                          | e.g.                                                  |
//! |-------|----------------------------------------------|-------------------------------------------------------|
//! | ERROR | a failure the application must know         | storage failed, transport down                        |
//! | WARN  | something given up, lost or refused          | send given up, dependency lost, a malformed, undecryptable or unmarked message dropped |
//! | INFO  | lifecycle                                    | channel opened / closed, transport connected          |
//! | DEBUG | per-message decisions                        | duplicate dropped, chunk buffered, retransmission     |
//! | TRACE | wire bytes                                   | a [`ByteSummary`] summary of each message in and out        |
//!
//! - Targets are the default of the macros, the module path (`reliable_channel::channel::channel`):
//!   filters by layer work as in any Rust program.
//! - Messages name the channel (`channel {id}: ...`) and say what happened and why, in one line.
//! - Nothing is formatted below the enabled level: the macros compare with `log::max_level()` (one
//!   relaxed atomic load) before they evaluate their arguments. Keep work out of the arguments'
//!   evaluation anyway where it is not free: wrap it in a lazy `Display` such as [`ByteSummary`].
//! - Floods: a peer can make any WARN site fire once per message. The core has no clock, so rate
//!   limiting happens where records leave the library: [`SiteLimiter`], per call site, in the C
//!   API's logger. Call sites need not do anything about it.

use std::fmt;

use crate::collections::FastMap;

/// Records of one call site let through at once before the limit applies (ERROR and WARN).
pub(crate) const SITE_BURST: u32 = 10;
/// After the burst, one more record of the call site per this many milliseconds.
pub(crate) const SITE_REFILL_MS: u64 = 1_000;
/// Call sites tracked one by one; records of further sites share one budget (bounded memory).
pub(crate) const MAX_TRACKED_SITES: usize = 256;
/// Bytes of a message shown by [`ByteSummary`] before it elides the rest.
pub(crate) const BYTES_SHOWN: usize = 16;

/// A call site: source file and line of the macro.
pub(crate) type Site = (&'static str, u32);

/// What [`SiteLimiter::admit`] decided about a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Admit {
    /// Emit the record; first report `suppressed` records of its site dropped since the last one.
    Emit { suppressed: u64 },
    /// Drop it (counted for the next summary).
    Suppress,
}

/// Records suppressed at one call site since its last emitted record, for a summary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Suppressed {
    pub site: Option<Site>,
    pub level: log::Level,
    pub target: String,
    pub count: u64,
}

impl Suppressed {
    /// The summary's text; the count comes first so that it reads (and parses) as a number.
    pub fn message(count: u64, site: Option<Site>) -> String {
        let at = site.map_or_else(|| "several call sites".to_owned(), |(file, line)| format!("{file}:{line}"));
        format!(
            "{count} similar records suppressed ({at}; at most {SITE_BURST} at once, then 1 per {} s per call site)",
            SITE_REFILL_MS as f64 / 1000.0
        )
    }
}

/// A token bucket: [`SITE_BURST`] tokens, one more every [`SITE_REFILL_MS`].
#[derive(Debug)]
struct Bucket {
    tokens: u32,
    refilled_ms: u64,
    suppressed: u64,
    level: log::Level,
    target: String,
}

impl Bucket {
    fn new(now_ms: u64, level: log::Level, target: &str) -> Self {
        Bucket { tokens: SITE_BURST, refilled_ms: now_ms, suppressed: 0, level, target: target.to_owned() }
    }

    fn admit(&mut self, now_ms: u64) -> Admit {
        let periods = now_ms.saturating_sub(self.refilled_ms) / SITE_REFILL_MS;
        if periods > 0 {
            self.tokens = (u64::from(self.tokens) + periods).min(u64::from(SITE_BURST)) as u32;
            self.refilled_ms += periods * SITE_REFILL_MS;
        }
        if self.tokens == 0 {
            self.suppressed += 1;
            return Admit::Suppress;
        }
        self.tokens -= 1;
        Admit::Emit { suppressed: std::mem::take(&mut self.suppressed) }
    }
}

/// Per-call-site rate limiting of log records, sans-I/O: the caller passes the time.
#[derive(Debug)]
pub(crate) struct SiteLimiter {
    sites: FastMap<Site, Bucket>,
    /// Sites beyond [`MAX_TRACKED_SITES`], and records without a static location.
    shared: Option<Bucket>,
}

impl SiteLimiter {
    pub fn new() -> Self {
        SiteLimiter { sites: FastMap::default(), shared: None }
    }

    /// Whether a record of `level` and `target` from `site` may be emitted at `now_ms`.
    pub fn admit(&mut self, site: Option<Site>, level: log::Level, target: &str, now_ms: u64) -> Admit {
        let tracked = site.filter(|s| self.sites.len() < MAX_TRACKED_SITES || self.sites.contains_key(s));
        let bucket = match tracked {
            Some(s) => self.sites.entry(s).or_insert_with(|| Bucket::new(now_ms, level, target)),
            None => self.shared.get_or_insert_with(|| Bucket::new(now_ms, level, target)),
        };
        bucket.admit(now_ms)
    }

    /// Takes the counts of records suppressed since their site's last emitted record (to report
    /// them before the logger goes away or changes).
    pub fn take_suppressed(&mut self) -> Vec<Suppressed> {
        let tracked = self.sites.iter_mut().map(|(s, b)| (Some(*s), b));
        let all = tracked.chain(self.shared.as_mut().map(|b| (None, b)));
        all.filter(|(_, b)| b.suppressed > 0)
            .map(|(site, b)| Suppressed { site, level: b.level, target: b.target.clone(), count: std::mem::take(&mut b.suppressed) })
            .collect()
    }
}

/// A lazy summary of wire bytes for TRACE records: the length and the first [`BYTES_SHOWN`]
/// bytes in hex, e.g. `42 B 0a1b2c…`. Formats nothing unless the record is emitted.
pub(crate) struct ByteSummary<'a>(pub &'a [u8]);

impl fmt::Display for ByteSummary<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} B ", self.0.len())?;
        for b in self.0.iter().take(BYTES_SHOWN) {
            write!(f, "{b:02x}")?;
        }
        if self.0.len() > BYTES_SHOWN {
            f.write_str("…")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use log::Level::Warn;

    const A: Site = ("src/a.rs", 1);
    const B: Site = ("src/b.rs", 2);

    fn run(l: &mut SiteLimiter, site: Site, now_ms: u64, n: usize) -> (usize, u64) {
        let (mut emitted, mut reported) = (0, 0);
        for _ in 0..n {
            if let Admit::Emit { suppressed } = l.admit(Some(site), Warn, "t", now_ms) {
                emitted += 1;
                reported += suppressed;
            }
        }
        (emitted, reported)
    }

    #[test]
    fn a_burst_passes_then_one_record_per_period_with_the_count_of_the_suppressed() {
        let mut l = SiteLimiter::new();
        assert_eq!(run(&mut l, A, 0, 100), (SITE_BURST as usize, 0));
        // Within the same period nothing more passes.
        assert_eq!(run(&mut l, A, SITE_REFILL_MS - 1, 5), (0, 0));
        // One period later one record passes, reporting the 95 suppressed before it.
        assert_eq!(l.admit(Some(A), Warn, "t", SITE_REFILL_MS), Admit::Emit { suppressed: 95 });
        assert_eq!(l.admit(Some(A), Warn, "t", SITE_REFILL_MS), Admit::Suppress);
        // A long pause refills the burst, not more.
        assert_eq!(run(&mut l, A, 100 * SITE_REFILL_MS, 2 * SITE_BURST as usize), (SITE_BURST as usize, 1));
    }

    #[test]
    fn sites_have_their_own_budgets() {
        let mut l = SiteLimiter::new();
        run(&mut l, A, 0, 50);
        assert_eq!(run(&mut l, B, 0, 3), (3, 0));
    }

    #[test]
    fn take_suppressed_reports_each_site_once() {
        let mut l = SiteLimiter::new();
        run(&mut l, A, 0, SITE_BURST as usize + 7);
        run(&mut l, B, 0, 2);
        let s = l.take_suppressed();
        assert_eq!(s, vec![Suppressed { site: Some(A), level: Warn, target: "t".into(), count: 7 }]);
        assert!(l.take_suppressed().is_empty());
        // The count restarts: the next emitted record reports only what came after.
        run(&mut l, A, 0, 2);
        assert_eq!(l.admit(Some(A), Warn, "t", SITE_REFILL_MS), Admit::Emit { suppressed: 2 });
    }

    #[test]
    fn memory_is_bounded_by_the_tracked_sites() {
        let mut l = SiteLimiter::new();
        let files: Vec<&'static str> = (0..MAX_TRACKED_SITES + 50).map(|i| &*Box::leak(format!("f{i}").into_boxed_str())).collect();
        for f in &files {
            l.admit(Some((f, 1)), Warn, "t", 0);
        }
        assert_eq!(l.sites.len(), MAX_TRACKED_SITES);
        // The untracked sites shared one budget: the burst, then nothing.
        assert_eq!(l.take_suppressed().iter().map(|s| s.count).sum::<u64>(), 50 - u64::from(SITE_BURST));
        // A record without a location shares it too.
        assert_eq!(l.admit(None, Warn, "t", 0), Admit::Suppress);
    }

    #[test]
    fn the_limits_are_the_documented_ones() {
        // Quoted by rc_set_log_callback (include/reliable_channel.h), docs/c-api.md and README.md.
        assert_eq!((SITE_BURST, SITE_REFILL_MS), (10, 1_000));
    }

    #[test]
    fn the_summary_starts_with_its_count() {
        let m = Suppressed::message(42, Some(A));
        assert!(m.starts_with("42 similar records suppressed (src/a.rs:1;"), "{m}");
        assert!(Suppressed::message(3, None).contains("several call sites"));
    }

    #[test]
    fn bytes_shows_the_length_and_a_prefix() {
        assert_eq!(ByteSummary(&[0x0a, 0xff]).to_string(), "2 B 0aff");
        let long = [0u8; 40];
        assert_eq!(ByteSummary(&long).to_string(), format!("40 B {}…", "00".repeat(BYTES_SHOWN)));
    }
}
