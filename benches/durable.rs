//! Durable channels against memory channels (issue #11), ratios measured in one run.
//!
//! Two managers on the embedded memory network (no faults, rate limit off, acknowledgements as in
//! `benches/e2e.rs`), both channels of the same backend: `memory`, `sqlite` with
//! `durability: "process"`, `sqlite` with `"power"`. Databases live in `target/bench/durable/`
//! (on the machine's disk, not a tmpfs).
//!
//! * throughput — 1 KiB messages sent by `SENDERS` threads (a durable `send` waits for its
//!   commit: concurrent senders share one group commit per runtime batch), window of
//!   `WINDOW` messages in flight, until the receiver has every one: messages/s, median of 5 rounds
//!   that run each backend once in turn (the ratio process / memory: the median of the rounds');
//!   with the p99 and the maximum of the `send` calls of the three runs (under load), and for
//!   `sqlite` the pauses of the runtime thread folding the journal (the store's `debug` line,
//!   `src/storage/sqlite_journal.rs`, caught by this bench's logger): count, median, maximum;
//! * latency — the duration of one `send` call, unloaded (one message in flight): p50 / p99;
//! * large — the duration of a 1 MiB `send` call: median;
//! * idle — `IDLE_CHANNELS` idle channels opened on one manager, of each backend:
//!   `/proc/self/statm` RSS delta per channel (the `sqlite` ones include SQLite's page cache).
//!
//! Each run's databases are removed when it ends, and the latency sections start after a `sync`:
//! "unloaded" includes the disk (not busy writing back what the throughput runs wrote).
//!
//! A durable `send` returns after the commit of the batch that took it; that commit holds the
//! events (the outbox) and the channel's own state (the send's chunks, the log, the clocks).
//!
//! `DURABLE_MESSAGES` overrides the messages per throughput run, `DURABLE_SENDERS` the sender threads; `DURABLE_ONLY=throughput,latency,
//! large,idle` runs a subset, `DURABLE_BACKENDS=memory,process,power` a subset of the backends (for profiling) (idle first when chosen: it measures the process's RSS). Writes `target/bench/durable.json`.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::Thread;
use std::time::{Duration, Instant};

use reliable_channel::channel::ChannelEvent;
use reliable_channel::{Error, Event, Manager};

const TOPIC: &str = "/bench/1/durable/proto";
const SMALL: usize = 1024;
const LARGE: usize = 1 << 20;
/// Sender threads of the throughput runs (`DURABLE_SENDERS` overrides).
const SENDERS: usize = 8;
const WINDOW: u64 = 512;
const REPEATS: usize = 5;
const LATENCY_SENDS: usize = 2_000;
const LARGE_SENDS: usize = 20;
const RUN_TIMEOUT: Duration = Duration::from_secs(300);
const IDLE_CHANNELS: usize = 2_000;

#[derive(Clone, Copy, PartialEq)]
enum Backend {
    Memory,
    Process,
    Power,
}

impl Backend {
    fn name(self) -> &'static str {
        match self {
            Backend::Memory => "memory",
            Backend::Process => "sqlite/process",
            Backend::Power => "sqlite/power",
        }
    }
}

struct Probe {
    received: AtomicU64,
    problems: AtomicU64,
    wake_at: AtomicU64,
    waiter: Thread,
}

struct Pair {
    a: Manager,
    _b: Manager,
    probe: Arc<Probe>,
    // Dropped last, after the managers closed their databases.
    _files: DbFiles,
}

/// A run's database files, removed when the run ends: what the next section measures is not
/// slowed by the kernel writing back a finished run's pages (see `settle`).
struct DbFiles(Vec<PathBuf>);

impl Drop for DbFiles {
    fn drop(&mut self) {
        for p in &self.0 {
            remove_db(p);
        }
    }
}

/// Writes back every dirty page of the system before an unloaded measurement.
fn settle() {
    // SAFETY: sync has no preconditions.
    unsafe { libc::sync() };
}

fn dir() -> PathBuf {
    let d = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/bench/durable");
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn remove_db(p: &std::path::Path) {
    for ext in ["", "-wal", "-shm", "-rc-journal"] {
        let _ = std::fs::remove_file(format!("{}{ext}", p.display()));
    }
}

impl Pair {
    fn new(backend: Backend, run: &str) -> Pair {
        let network = format!("durable-{run}");
        let files = std::cell::RefCell::new(Vec::new());
        let config = |who: &str| {
            let storage = match backend {
                Backend::Memory => String::new(),
                Backend::Process | Backend::Power => {
                    let path = dir().join(format!("{run}-{who}.db"));
                    remove_db(&path);
                    files.borrow_mut().push(path.clone());
                    let d = if backend == Backend::Power { "power" } else { "process" };
                    format!(r#""storage": {{"path": "{}", "durability": "{d}"}},"#, path.display())
                }
            };
            let backend = if backend == Backend::Memory { "memory" } else { "sqlite" };
            format!(
                r#"{{"transport": {{"kind": "memory", "network": "{network}"}}, {storage}
                  "channelDefaults": {{"sdsConfig": {{"historyBackend": "{backend}", "acknowledgementTimeoutMs": 500, "syncIntervalMs": 0}},
                  "rateLimitConfig": {{"enabled": false}},
                  "sendQueue": {{"maxPendingChunks": 1048576, "maxPendingBytes": 17179869184}}}}}}"#
            )
        };
        let probe = Arc::new(Probe {
            received: AtomicU64::new(0),
            problems: AtomicU64::new(0),
            wake_at: AtomicU64::new(u64::MAX),
            waiter: std::thread::current(),
        });
        let a = Manager::from_json(Some(&config("a"))).expect("manager a");
        let b = Manager::from_json(Some(&config("b"))).expect("manager b");
        let p = probe.clone();
        a.set_event_handler(Some(Arc::new(move |e: &Event<'_>| {
            if matches!(e.event, ChannelEvent::SendError { .. } | ChannelEvent::Lost { .. }) {
                p.problems.fetch_add(1, Ordering::Relaxed);
            }
        })))
        .unwrap();
        let p = probe.clone();
        b.set_event_handler(Some(Arc::new(move |e: &Event<'_>| match e.event {
            ChannelEvent::Received { .. } => {
                let n = p.received.fetch_add(1, Ordering::SeqCst) + 1;
                if n >= p.wake_at.load(Ordering::SeqCst) {
                    p.waiter.unpark();
                }
            }
            ChannelEvent::SendError { .. } | ChannelEvent::Lost { .. } => {
                p.problems.fetch_add(1, Ordering::Relaxed);
            }
            _ => {}
        })))
        .unwrap();
        a.open_channel("c", TOPIC, "alice", None).unwrap();
        b.open_channel("c", TOPIC, "bob", None).unwrap();
        a.channel_stats("c").unwrap();
        b.channel_stats("c").unwrap();
        Pair { a, _b: b, probe, _files: DbFiles(files.into_inner()) }
    }

    /// Waits until `n` messages were received.
    fn wait_received(&self, n: u64, t0: Instant) {
        self.probe.wake_at.store(n, Ordering::SeqCst);
        while self.probe.received.load(Ordering::SeqCst) < n {
            assert!(t0.elapsed() < RUN_TIMEOUT, "run timed out");
            std::thread::park_timeout(Duration::from_millis(50));
        }
        self.probe.wake_at.store(u64::MAX, Ordering::SeqCst);
    }

    fn send(&self, payload: &[u8]) {
        loop {
            match self.a.send("c", payload, false) {
                Ok(_) => return,
                Err(Error::QueueFull(_)) => std::thread::yield_now(),
                Err(e) => panic!("send: {e}"),
            }
        }
    }
}

/// Fold durations (µs) reported by the store's `debug` line since the last [`take_folds`].
static FOLDS: Mutex<Vec<f64>> = Mutex::new(Vec::new());

/// Catches the store's "folded N journal rows in D µs" lines (nothing else is formatted).
struct FoldLogger;

impl log::Log for FoldLogger {
    fn enabled(&self, m: &log::Metadata<'_>) -> bool {
        m.target().ends_with("sqlite_journal")
    }

    fn log(&self, r: &log::Record<'_>) {
        if !self.enabled(r.metadata()) {
            return;
        }
        let text = r.args().to_string();
        let us = text.strip_prefix("folded ").and_then(|t| t.split(" in ").nth(1)).and_then(|t| t.strip_suffix(" µs"));
        if let Some(us) = us.and_then(|u| u.parse::<f64>().ok()) {
            FOLDS.lock().unwrap().push(us);
        }
    }

    fn flush(&self) {}
}

fn take_folds() -> Vec<f64> {
    let mut v = std::mem::take(&mut *FOLDS.lock().unwrap());
    v.sort_by(f64::total_cmp);
    v
}

/// Messages per second of `n` 1 KiB messages from `senders` threads, `WINDOW` in flight, and the
/// duration (µs) of every `send` call.
fn throughput(backend: Backend, run: &str, n: u64, senders: usize) -> (f64, Vec<f64>) {
    let pair = Pair::new(backend, run);
    let next = AtomicU64::new(0);
    let calls = Mutex::new(Vec::with_capacity(n as usize));
    let t0 = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..senders {
            s.spawn(|| {
                let payload = vec![0x5a; SMALL];
                let mut mine = Vec::new();
                loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    if i >= n {
                        break;
                    }
                    while i >= pair.probe.received.load(Ordering::SeqCst) + WINDOW {
                        assert!(t0.elapsed() < RUN_TIMEOUT, "run timed out");
                        std::thread::yield_now();
                    }
                    let t = Instant::now();
                    pair.send(&payload);
                    mine.push(t.elapsed().as_secs_f64() * 1e6);
                }
                calls.lock().unwrap().extend(mine);
            });
        }
    });
    pair.wait_received(n, t0);
    let rate = n as f64 / t0.elapsed().as_secs_f64();
    assert_eq!(pair.probe.problems.load(Ordering::Relaxed), 0, "no send error or loss");
    (rate, calls.into_inner().unwrap())
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// Durations (µs) of `sends` send calls of `size` bytes, one message in flight at a time.
fn call_durations(backend: Backend, run: &str, size: usize, sends: usize) -> Vec<f64> {
    let pair = Pair::new(backend, run);
    let payload = vec![0xa5; size];
    let mut out = Vec::with_capacity(sends);
    let t0 = Instant::now();
    for i in 0..sends {
        let t = Instant::now();
        pair.send(&payload);
        out.push(t.elapsed().as_secs_f64() * 1e6);
        pair.wait_received(i as u64 + 1, t0);
    }
    out.sort_by(f64::total_cmp);
    out
}

fn rss_bytes() -> u64 {
    let s = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = s.split_whitespace().nth(1).and_then(|v| v.parse().ok()).unwrap_or(0);
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(1) as u64;
    pages * page
}

/// RSS bytes per idle channel of `backend`: `IDLE_CHANNELS` opened on one manager.
fn idle_bytes(backend: Backend) -> f64 {
    let storage = if backend == Backend::Memory {
        String::new()
    } else {
        let path = dir().join("idle.db");
        remove_db(&path);
        format!(r#""storage": {{"path": "{}"}},"#, path.display())
    };
    let history = if backend == Backend::Memory { "memory" } else { "sqlite" };
    let config = format!(
        r#"{{"transport": {{"kind": "memory", "network": "durable-idle-{history}"}}, {storage}
          "channelDefaults": {{"sdsConfig": {{"historyBackend": "{history}"}}}}}}"#
    );
    let m = Manager::from_json(Some(&config)).expect("manager");
    m.open_channel("warm-up", "/bench/1/warm-up/proto", "alice", None).unwrap();
    m.channel_stats("warm-up").unwrap();
    let rss0 = rss_bytes();
    let mut last = String::new();
    for i in 0..IDLE_CHANNELS {
        last = format!("chan-{i:05}");
        m.open_channel(&last, &format!("/bench/1/{last}/proto"), "alice", None).unwrap();
    }
    m.channel_stats(&last).unwrap();
    let per = rss_bytes().saturating_sub(rss0) as f64 / IDLE_CHANNELS as f64;
    drop(m);
    per
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let n: u64 = std::env::var("DURABLE_MESSAGES").ok().and_then(|v| v.parse().ok()).unwrap_or(30_000);
    let senders: usize = std::env::var("DURABLE_SENDERS").ok().and_then(|v| v.parse().ok()).unwrap_or(SENDERS);
    // `DURABLE_BACKENDS=process` (for profiling) runs only the named backends; the ratios need all.
    let named: Option<String> = std::env::var("DURABLE_BACKENDS").ok();
    let backends: Vec<Backend> = [Backend::Memory, Backend::Process, Backend::Power]
        .into_iter()
        .filter(|b| named.as_deref().is_none_or(|n| n.split(',').any(|x| b.name().ends_with(x.trim()))))
        .collect();
    let only: Option<Vec<String>> = std::env::var("DURABLE_ONLY").ok().map(|s| s.split(',').map(|x| x.trim().to_owned()).collect());
    let want = |name: &str| only.as_ref().is_none_or(|v| v.iter().any(|x| x == name));
    let mut json = String::from("{");
    if log::set_logger(&FoldLogger).is_ok() {
        log::set_max_level(log::LevelFilter::Debug);
    }
    // Idle memory first, while the process's heap is small and untouched by the other sections.
    if want("idle") {
        println!("durable: idle memory, {IDLE_CHANNELS} channels on one manager");
        for b in [Backend::Memory, Backend::Process] {
            let per = idle_bytes(b);
            println!("  {:<16} {:>7.0} B/channel  (goal <= 64 KiB)", b.name(), per);
            json += &format!("\"idle_bytes_per_channel_{}\": {per:.0}, ", b.name().replace('/', "_"));
        }
    }
    if want("throughput") {
        println!(
            "durable: 1 KiB end to end, {senders} sender threads, window {WINDOW}, {n} messages, {REPEATS} rounds (each backend once per round, in turn)"
        );
        // Interleaved: every round runs each backend once, so that a slower or faster moment of
        // this shared machine weighs on all of them; the ratio is taken per round.
        let mut runs = vec![Vec::new(); backends.len()];
        let mut calls = vec![Vec::new(); backends.len()];
        let mut folds = vec![Vec::new(); backends.len()];
        take_folds();
        for r in 0..REPEATS {
            for (i, &b) in backends.iter().enumerate() {
                let (rate, c) = throughput(b, &format!("tp-{}-{r}", b.name().replace('/', "-")), n, senders);
                runs[i].push(rate);
                calls[i].extend(c);
                folds[i].extend(take_folds());
            }
        }
        let mut rates = Vec::new();
        for (i, b) in backends.iter().enumerate() {
            let m = median(runs[i].clone());
            rates.push(m);
            let key = b.name().replace('/', "_");
            println!("  {:<16} {:>9.0} msg/s   (runs {:?})", b.name(), m, runs[i].iter().map(|r| r.round()).collect::<Vec<_>>());
            let calls = &mut calls[i];
            calls.sort_by(f64::total_cmp);
            let (p99, max) = (percentile(calls, 0.99), percentile(calls, 1.0));
            println!("  {:<16} send under load: p50 {:.0} µs, p99 {p99:.0} µs, max {max:.0} µs", "", percentile(calls, 0.5));
            json += &format!("\"throughput_{key}\": {m:.0}, \"loaded_send_p99_us_{key}\": {p99:.0}, \"loaded_send_max_us_{key}\": {max:.0}, ");
            let folds = &mut folds[i];
            folds.sort_by(f64::total_cmp);
            if !folds.is_empty() {
                let (p50, fmax) = (percentile(folds, 0.5), percentile(folds, 1.0));
                println!("  {:<16} journal folds: {} in {REPEATS} runs, p50 {:.1} ms, max {:.1} ms", "", folds.len(), p50 / 1e3, fmax / 1e3);
                json +=
                    &format!("\"folds_{key}\": {}, \"fold_p50_ms_{key}\": {:.1}, \"fold_max_ms_{key}\": {:.1}, ", folds.len(), p50 / 1e3, fmax / 1e3);
            }
        }
        if backends.starts_with(&[Backend::Memory, Backend::Process]) {
            let ratios: Vec<f64> = runs[1].iter().zip(&runs[0]).map(|(p, m)| p / m).collect();
            let ratio = median(ratios.clone());
            println!(
                "  ratio process / memory: {ratio:.2}, median of the rounds' {:?}  (goal >= 0.5)",
                ratios.iter().map(|r| (r * 100.0).round() / 100.0).collect::<Vec<_>>()
            );
            json += &format!("\"ratio_process_memory\": {ratio:.2}, ");
        }
        if let Some(i) = backends.iter().position(|&b| b == Backend::Power) {
            println!("  power: {:.0} durable sends/s  (goal >= 1000)", rates[i]);
        }
    }
    if want("latency") {
        settle();
        println!("durable: send call, 1 KiB, unloaded ({LATENCY_SENDS} sends)");
        for &b in &backends {
            let d = call_durations(b, &format!("lat-{}", b.name().replace('/', "-")), SMALL, LATENCY_SENDS);
            let (p50, p99) = (percentile(&d, 0.5), percentile(&d, 0.99));
            println!("  {:<16} p50 {:>7.0} µs   p99 {:>7.0} µs", b.name(), p50, p99);
            json += &format!("\"send_p50_us_{0}\": {p50:.0}, \"send_p99_us_{0}\": {p99:.0}, ", b.name().replace('/', "_"));
        }
    }
    if want("large") {
        settle();
        println!("durable: send call, 1 MiB ({LARGE_SENDS} sends)");
        for b in [Backend::Memory, Backend::Process] {
            let d = call_durations(b, &format!("large-{}", b.name().replace('/', "-")), LARGE, LARGE_SENDS);
            let m = percentile(&d, 0.5);
            println!("  {:<16} median {:>7.1} ms  (goal <= 30 ms with process)", b.name(), m / 1000.0);
            json += &format!("\"large_send_ms_{}\": {:.1}, ", b.name().replace('/', "_"), m / 1000.0);
        }
    }
    json.truncate(json.len() - 2);
    json += "}\n";
    let out = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/bench/durable.json");
    std::fs::write(&out, json).unwrap();
    let _ = std::fs::remove_dir_all(dir());
    println!("wrote {}", out.display());
}
