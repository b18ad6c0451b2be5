//! `make bench-relay`: two processes on loopback, a sender (this process) and a receiver (this
//! binary again, `RC_RELAY_BENCH_ROLE`), over Waku Relay, for
//!
//! * `rc`: the whole reliable-channel stack (`Manager` with `"transport": {"kind": "relay"}`:
//!   segmentation, SDS, rate limit off, the relay node), the receiver timing `RECEIVED` events, and
//! * `raw`: the same payloads as WakuMessages through bare rust-libp2p gossipsub swarms with the
//!   same Waku Relay configuration (no reliable-channel stack), in the same run.
//!
//! Phases: 1 KiB messages as fast as the sender may (throughput), 1 KiB messages paced 5 ms apart
//! (latency without queueing: p50, p99 from the send timestamp in the payload, one host clock),
//! 100 KiB messages as fast as possible (MB/s). CPU per message (user + system, each process) and
//! peak RSS of each process. Each run measures raw then rc back to back and gives its rc / raw
//! ratios; `RC_RELAY_BENCH_RUNS` runs (default 5) are made and the table and ratios are their
//! medians (the machine is shared). Results: a table on stdout and `target/bench/relay.json`.
//!
//! As in `benches/e2e.rs`, the sender's send queue is unbounded (`sendQueue`: a send stays pending
//! until acknowledged, and the receiver acknowledges with a sync 0.25–0.5 × the acknowledgement
//! timeout later): the bench measures the pipeline, not the backpressure window.

mod relay_common;

use relay_common::raw_swarm;

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use libp2p::futures::StreamExt;
use libp2p::gossipsub::{self, MessageAcceptance, PublishError};
use libp2p::swarm::SwarmEvent;
use libp2p::Multiaddr;
use parking_lot::Mutex;
use prost::Message as _;
use reliable_channel::channel::ChannelEvent;
use reliable_channel::wire::WakuMessage;
use reliable_channel::{Error, Manager};

const TOPIC: &str = "/waku/2/rs/42/0";
const CONTENT_TOPIC: &str = "/bench/1/relay-e2e/proto";
/// (name, payload size, messages, pacing between sends).
const PHASES: [(&str, usize, u32, Duration); 3] = [
    ("1KiB throughput", 1024, 5000, Duration::ZERO),
    ("1KiB latency", 1024, 400, Duration::from_millis(5)),
    ("100KiB throughput", 100 * 1024, 300, Duration::ZERO),
];
const HEADER: usize = 16;
const STALL: Duration = Duration::from_secs(120);

/// SDS acknowledgement timeout of both sides (`RC_RELAY_BENCH_ACK_MS`, default 5,000 ms): the
/// receiver acknowledges 0.5–0.75 × it after delivering, so with 2 s a loaded machine made the
/// sender retransmit most of the 1 KiB phase (BENCHMARKS.md, relay).
fn ack_ms() -> u64 {
    std::env::var("RC_RELAY_BENCH_ACK_MS").ok().and_then(|v| v.parse().ok()).unwrap_or(5_000)
}

fn unix_ns() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64)
}

fn cpu_ns() -> u64 {
    // SAFETY: getrusage writes into the zeroed struct it is given.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) };
    let t = |tv: libc::timeval| tv.tv_sec as u64 * 1_000_000_000 + tv.tv_usec as u64 * 1_000;
    t(u.ru_utime) + t(u.ru_stime)
}

/// This process's peak RSS (`VmHWM`). Not `getrusage`: its peak survives `fork`/`exec` (the
/// receiver would show the sender's) and could not be reset between the setups.
fn max_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status.lines().find_map(|l| l.strip_prefix("VmHWM:")).and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok()).unwrap_or(0)
}

/// Starts a new peak for [`max_rss_kib`] (Linux: `5` in `clear_refs` resets `VmHWM`).
fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// Whether phase `i` runs: `RC_RELAY_BENCH_PHASES` lists the phases to run by index
/// (`0,2`; default all), e.g. the 1 KiB throughput phase alone under `perf`.
fn phase_selected(i: usize) -> bool {
    std::env::var("RC_RELAY_BENCH_PHASES").map_or(true, |v| v.split(',').any(|p| p.trim().parse() == Ok(i)))
}

/// A payload: phase, index, send time, then filler.
fn payload(phase: usize, index: u32, size: usize) -> Vec<u8> {
    let mut p = vec![0x5au8; size];
    p[..4].copy_from_slice(&(phase as u32).to_le_bytes());
    p[4..8].copy_from_slice(&index.to_le_bytes());
    p[8..16].copy_from_slice(&unix_ns().to_le_bytes());
    p
}

/// What the receiver records per phase: arrival count, first send time, last arrival, latencies.
#[derive(Default)]
struct PhaseLog {
    first_sent: u64,
    last_arrival: u64,
    latencies: Vec<u64>,
    cpu_at_start: u64,
}

struct Recorder {
    phases: Mutex<Vec<PhaseLog>>,
    done: AtomicU64,
}

impl Recorder {
    fn new() -> Arc<Recorder> {
        Arc::new(Recorder { phases: Mutex::new((0..PHASES.len()).map(|_| PhaseLog::default()).collect()), done: AtomicU64::new(0) })
    }

    /// Records one arrival; prints the phase's result line when it is complete.
    fn arrived(&self, p: &[u8]) {
        if p.len() < HEADER {
            return;
        }
        let now = unix_ns();
        let phase = u32::from_le_bytes(p[..4].try_into().unwrap()) as usize;
        let index = u32::from_le_bytes(p[4..8].try_into().unwrap());
        let sent = u64::from_le_bytes(p[8..16].try_into().unwrap());
        let Some(&(_, _, n, _)) = PHASES.get(phase) else { return };
        let mut phases = self.phases.lock();
        let log = &mut phases[phase];
        if log.latencies.is_empty() {
            log.cpu_at_start = cpu_ns();
        }
        if index == 0 || log.first_sent == 0 {
            log.first_sent = if log.first_sent == 0 { sent } else { log.first_sent.min(sent) };
        }
        log.last_arrival = now;
        log.latencies.push(now.saturating_sub(sent));
        if log.latencies.len() == n as usize {
            let mut l = log.latencies.clone();
            l.sort_unstable();
            let cpu = cpu_ns() - log.cpu_at_start;
            println!(
                "RESULT {phase} {} {} {} {cpu} {}",
                log.last_arrival.saturating_sub(log.first_sent),
                l[l.len() / 2],
                l[l.len() * 99 / 100],
                max_rss_kib()
            );
            let _ = std::io::stdout().flush();
            self.done.fetch_add(1, Ordering::Release);
        }
    }
}

fn waku(p: Vec<u8>) -> Vec<u8> {
    WakuMessage { payload: Bytes::from(p), content_topic: CONTENT_TOPIC.into(), timestamp: Some(unix_ns() as i64), ..Default::default() }
        .encode_to_vec()
}

/// Receiver roles: print the address, record arrivals, exit on stdin EOF.
fn receiver(role: &str) {
    let rec = Recorder::new();
    std::thread::spawn(|| {
        let mut s = String::new();
        while std::io::stdin().read_line(&mut s).map(|n| n > 0).unwrap_or(false) {}
        std::process::exit(0);
    });
    if role == "raw" {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async move {
            let (mut swarm, _) = raw_swarm(TOPIC);
            swarm.listen_on("/ip4/127.0.0.1/tcp/0".parse().unwrap()).unwrap();
            loop {
                match swarm.select_next_some().await {
                    SwarmEvent::NewListenAddr { address, .. } => {
                        println!("ADDR {address}");
                        let _ = std::io::stdout().flush();
                    }
                    SwarmEvent::Behaviour(gossipsub::Event::Message { propagation_source, message_id, message }) => {
                        // The validation round trip and decode the relay transport makes too.
                        swarm.behaviour_mut().report_message_validation_result(&message_id, &propagation_source, MessageAcceptance::Accept);
                        if let Ok(m) = WakuMessage::decode(Bytes::from(message.data)) {
                            rec.arrived(&m.payload);
                        }
                    }
                    _ => {}
                }
            }
        });
    } else {
        let cfg = format!(
            r#"{{"transport": {{"kind": "relay", "listen": ["/ip4/127.0.0.1/tcp/0"], "peerMessagesPerSec": 0, "peerBytesPerSec": 0}},
                "channelDefaults": {{"rateLimitConfig": {{"enabled": false}}, "sdsConfig": {{"acknowledgementTimeoutMs": {}}}}}}}"#,
            ack_ms()
        );
        let m = Manager::from_json(Some(&cfg)).unwrap();
        let r = Arc::clone(&rec);
        m.set_event_handler(Some(Arc::new(move |e: &reliable_channel::Event<'_>| {
            if let ChannelEvent::Received { payload, .. } = e.event {
                r.arrived(payload);
            }
        })))
        .unwrap();
        m.open_channel("bench", CONTENT_TOPIC, "receiver", None).unwrap();
        println!("ADDR {}", m.relay_listen_addresses().unwrap()[0]);
        let _ = std::io::stdout().flush();
        loop {
            std::thread::sleep(Duration::from_secs(1));
        }
    }
}

struct Row {
    setup: &'static str,
    phase: usize,
    rate: f64,
    p50_us: f64,
    p99_us: f64,
    cpu_send_us: f64,
    cpu_recv_us: f64,
    rss_send_mib: f64,
    rss_recv_mib: f64,
}

/// Runs one setup: spawns the receiver, sends every phase, collects the receiver's result lines.
fn run(setup: &'static str, mut send: impl FnMut(&str) -> Box<dyn FnMut(Vec<u8>)>) -> Vec<Row> {
    reset_peak_rss();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .env("RC_RELAY_BENCH_ROLE", setup)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("the receiver process");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let addr = loop {
        let l = lines.next().expect("the receiver's address").unwrap();
        if let Some(a) = l.strip_prefix("ADDR ") {
            break a.to_owned();
        }
    };
    let mut publish = send(&addr);
    let mut rows = Vec::new();
    for (phase, &(_, size, n, pace)) in PHASES.iter().enumerate() {
        if !phase_selected(phase) {
            continue;
        }
        let cpu0 = cpu_ns();
        for i in 0..n {
            publish(payload(phase, i, size));
            if !pace.is_zero() {
                std::thread::sleep(pace);
            }
        }
        let line = lines.next().expect("a result line").unwrap();
        let cpu_send = cpu_ns() - cpu0;
        let f: Vec<u64> = line.split_whitespace().skip(1).map(|x| x.parse().unwrap()).collect();
        let (elapsed, p50, p99, cpu_recv, rss_recv) = (f[1], f[2], f[3], f[4], f[5]);
        rows.push(Row {
            setup,
            phase,
            rate: f64::from(n) / (elapsed as f64 / 1e9),
            p50_us: p50 as f64 / 1e3,
            p99_us: p99 as f64 / 1e3,
            cpu_send_us: cpu_send as f64 / 1e3 / f64::from(n),
            cpu_recv_us: cpu_recv as f64 / 1e3 / f64::from(n),
            rss_send_mib: max_rss_kib() as f64 / 1024.0,
            rss_recv_mib: rss_recv as f64 / 1024.0,
        });
    }
    drop(child.stdin.take());
    let _ = child.wait();
    rows
}

fn raw_sender(addr: &str) -> Box<dyn FnMut(Vec<u8>)> {
    let target: Multiaddr = addr.parse().unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Vec<u8>>();
    let (ready_tx, ready_rx) = crossbeam_channel::bounded(1);
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async move {
            let (mut swarm, topic) = raw_swarm(TOPIC);
            swarm.dial(target).unwrap();
            let mut ready = Some(ready_tx);
            // Published as soon as handed over; a full gossipsub queue is retried every
            // millisecond (backpressure), in order.
            let mut backlog: std::collections::VecDeque<Vec<u8>> = std::collections::VecDeque::new();
            let mut retry = tokio::time::interval(Duration::from_millis(1));
            loop {
                tokio::select! {
                    ev = swarm.select_next_some() => {
                        if let SwarmEvent::Behaviour(gossipsub::Event::Subscribed { .. }) = ev {
                            if let Some(r) = ready.take() { let _ = r.send(()); }
                        }
                    }
                    d = rx.recv() => match d {
                        Some(d) => backlog.push_back(d),
                        None => break,
                    },
                    _ = retry.tick(), if !backlog.is_empty() => {}
                }
                while let Some(d) = backlog.pop_front() {
                    if let Err(PublishError::AllQueuesFull(_)) = swarm.behaviour_mut().publish(topic.clone(), d.clone()) {
                        backlog.push_front(d);
                        break;
                    }
                }
            }
        });
    });
    ready_rx.recv_timeout(STALL).expect("the raw receiver subscribed");
    Box::new(move |p| tx.send(waku(p)).unwrap())
}

fn rc_sender(addr: &str) -> Box<dyn FnMut(Vec<u8>)> {
    let cfg = format!(
        r#"{{"transport": {{"kind": "relay", "listen": ["/ip4/127.0.0.1/tcp/0"], "peers": ["{addr}"], "peerMessagesPerSec": 0, "peerBytesPerSec": 0}},
            "channelDefaults": {{"rateLimitConfig": {{"enabled": false}}, "sdsConfig": {{"acknowledgementTimeoutMs": {ack}}},
                                 "sendQueue": {{"maxPendingChunks": 1048576, "maxPendingBytes": 17179869184}}}}}}"#,
        ack = ack_ms()
    );
    let m = Manager::from_json(Some(&cfg)).unwrap();
    m.open_channel("bench", CONTENT_TOPIC, "sender", None).unwrap();
    let start = Instant::now();
    while m.relay_stats_json().unwrap()["topicPeers"] == 0 {
        assert!(start.elapsed() < STALL, "the receiver never subscribed");
        std::thread::sleep(Duration::from_millis(5));
    }
    let m = ShowRelayStats(m);
    Box::new(move |p| loop {
        match m.0.send("bench", &p, false) {
            Ok(_) => break,
            Err(Error::QueueFull(_)) => std::thread::sleep(Duration::from_micros(200)),
            Err(e) => panic!("send: {e}"),
        }
    })
}

/// Prints the sender's relay and channel counters when the run is over (to stderr):
/// `publishedUnrouted` above 0 means gossipsub's per-peer queue overflowed; retransmissions mean
/// acknowledgements came later than the acknowledgement timeout.
struct ShowRelayStats(Manager);

impl Drop for ShowRelayStats {
    fn drop(&mut self) {
        if let (Some(s), Ok(c)) = (self.0.relay_stats_json(), self.0.channel_stats("bench")) {
            eprintln!(
                "rc sender: relay published {}, unrouted {}, failed {}; channel retransmissions {}, syncs {}",
                s["published"], s["publishedUnrouted"], s["publishFailed"], c.retransmissions, c.syncs_sent
            );
        }
    }
}

/// The median of `v` (the mean of the middle two for an even count).
fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n == 0 {
        return f64::NAN;
    }
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// Runs of raw then rc (`RC_RELAY_BENCH_RUNS`, default 5); each run's ratios compare the two
/// setups measured back to back, and the result is the median over the runs (the machine is
/// shared: one run alone is noise). `RC_RELAY_BENCH_SETUPS=rc` (or `raw`) runs one setup only
/// (for profiling), `RC_RELAY_BENCH_PHASES=0` some phases only (see [`phase_selected`]).
fn main() {
    if let Ok(role) = std::env::var("RC_RELAY_BENCH_ROLE") {
        return receiver(&role);
    }
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let runs: usize = std::env::var("RC_RELAY_BENCH_RUNS").ok().and_then(|v| v.parse().ok()).unwrap_or(5).max(1);
    let setups = std::env::var("RC_RELAY_BENCH_SETUPS").unwrap_or_else(|_| "raw,rc".to_owned());
    let mut per_run: Vec<Vec<Row>> = Vec::new();
    for i in 0..runs {
        let mut rows = Vec::new();
        if setups.contains("raw") {
            rows.extend(run("raw", raw_sender));
        }
        if setups.contains("rc") {
            rows.extend(run("rc", rc_sender));
        }
        // Each run's rates and CPU, so that the scatter behind the medians can be reported.
        for r in &rows {
            println!(
                "run {}/{runs}: {:>3} {:>18} {:>8.0} msgs/s, CPU send {:.1} µs, recv {:.1} µs per message",
                i + 1,
                r.setup,
                PHASES[r.phase].0,
                r.rate,
                r.cpu_send_us,
                r.cpu_recv_us
            );
        }
        if let Some((r1, r100, p50)) = ratios(&rows) {
            println!("run {}/{runs}: rc / raw 1 KiB {r1:.2}x, 100 KiB {r100:.2}x, p50 overhead {p50:.0} µs", i + 1);
        }
        per_run.push(rows);
    }
    println!(
        "{:>5} {:>18} {:>10} {:>9} {:>10} {:>10} {:>13} {:>13} {:>9} {:>9}",
        "setup", "phase", "msgs/s", "MB/s", "p50", "p99", "CPU send/msg", "CPU recv/msg", "RSS send", "RSS recv"
    );
    // The median of each column over the runs.
    let mut table = Vec::new();
    for setup in ["raw", "rc"] {
        for phase in 0..PHASES.len() {
            let of = |f: fn(&Row) -> f64| median(per_run.iter().flatten().filter(|r| r.setup == setup && r.phase == phase).map(f).collect());
            if per_run.iter().flatten().all(|r| r.setup != setup || r.phase != phase) {
                continue;
            }
            table.push(Row {
                setup,
                phase,
                rate: of(|r| r.rate),
                p50_us: of(|r| r.p50_us),
                p99_us: of(|r| r.p99_us),
                cpu_send_us: of(|r| r.cpu_send_us),
                cpu_recv_us: of(|r| r.cpu_recv_us),
                rss_send_mib: of(|r| r.rss_send_mib),
                rss_recv_mib: of(|r| r.rss_recv_mib),
            });
        }
    }
    for r in &table {
        let (name, size, _, _) = PHASES[r.phase];
        println!(
            "{:>5} {:>18} {:>10.0} {:>9.1} {:>8.0}µs {:>8.0}µs {:>11.1}µs {:>11.1}µs {:>7.0}MiB {:>7.0}MiB",
            r.setup,
            name,
            r.rate,
            r.rate * size as f64 / 1e6,
            r.p50_us,
            r.p99_us,
            r.cpu_send_us,
            r.cpu_recv_us,
            r.rss_send_mib,
            r.rss_recv_mib
        );
    }
    let all: Vec<(f64, f64, f64)> = per_run.iter().filter_map(|rows| ratios(rows)).collect();
    let (ratio1k, ratio100k, p50_overhead_us) =
        (median(all.iter().map(|r| r.0).collect()), median(all.iter().map(|r| r.1).collect()), median(all.iter().map(|r| r.2).collect()));
    println!(
        "median of {} runs: rc / raw throughput 1 KiB {ratio1k:.2}x, 100 KiB {ratio100k:.2}x (goal >= 0.8); p50 latency overhead {p50_overhead_us:.0} µs (goal <= 1000)",
        all.len()
    );
    let json = serde_json::json!({
        "runs": runs,
        "rows": table.iter().map(|r| serde_json::json!({
            "setup": r.setup, "phase": PHASES[r.phase].0, "msgsPerSec": r.rate, "p50Us": r.p50_us, "p99Us": r.p99_us,
            "cpuSendUsPerMsg": r.cpu_send_us, "cpuRecvUsPerMsg": r.cpu_recv_us, "rssSendMiB": r.rss_send_mib, "rssRecvMiB": r.rss_recv_mib,
        })).collect::<Vec<_>>(),
        "perRun": all.iter().map(|r| serde_json::json!({"ratio1KiB": r.0, "ratio100KiB": r.1, "p50OverheadUs": r.2})).collect::<Vec<_>>(),
        "ratio1KiB": ratio1k, "ratio100KiB": ratio100k, "p50OverheadUs": p50_overhead_us,
    });
    let _ = std::fs::create_dir_all("target/bench");
    let _ = std::fs::write("target/bench/relay.json", serde_json::to_string_pretty(&json).unwrap());
}

/// One run's rc / raw ratios: 1 KiB throughput, 100 KiB throughput, p50 latency overhead (µs).
fn ratios(rows: &[Row]) -> Option<(f64, f64, f64)> {
    let find = |setup: &str, phase: usize| rows.iter().find(|r| r.setup == setup && r.phase == phase);
    Some((find("rc", 0)?.rate / find("raw", 0)?.rate, find("rc", 2)?.rate / find("raw", 2)?.rate, find("rc", 1)?.p50_us - find("raw", 1)?.p50_us))
}
