//! Three participants chat and share a 1 MiB file over a lossy embedded network.
//!
//! ```text
//! cargo run --release --example demo                  # 20 % loss, seed 1
//! cargo run --release --example demo -- --loss 0.3 --seed 7
//! ```
//!
//! alice, bob and carol each run their own [`Manager`] (their own runtime and event threads) on
//! the same in-process memory network. Every manager's transport drops 20 % of the copies it
//! publishes, per receiver, reproducibly from its seed. Reliability comes from SDS alone:
//! acknowledgements via causal history and bloom filters, retransmission after
//! `acknowledgementTimeoutMs`, sync messages, and store retrieval of missing dependencies.
//!
//! The demo prints every event as it happens, a live progress line while the file travels, and a
//! summary. It exits 0 once every send is final (DELIVERED or SEND_ERROR), every receiver got
//! every message and the file arrived byte-identical at both receivers; it exits 1 on any failure
//! or when that takes longer than two minutes.

use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::rngs::SmallRng;
use rand::{RngCore, SeedableRng};
use reliable_channel::channel::{ChannelEvent, ChannelStats};
use reliable_channel::messaging::memory::network_stats;
use reliable_channel::segmentation::chunk_count;
use reliable_channel::{Event, EventHandler, Manager};
use sha2::{Digest, Sha256};

const NAMES: [&str; 3] = ["alice", "bob", "carol"];
const NETWORK: &str = "demo";
const CHANNEL: &str = "team";
const TOPIC: &str = "/demo/1/team/proto";
const CHUNK_SIZE: usize = 102_400;
const FILE_SIZE: usize = 1 << 20;
const FILE_NAME: &str = "design-doc.bin";
const OVERALL_TIMEOUT: Duration = Duration::from_secs(120);
const ACK_TIMEOUT_MS: u64 = 750;

/// The manager configuration: lossy memory transport, fast acknowledgements, no rate limit.
fn config(loss: f64, seed: u64) -> String {
    format!(
        r#"{{
  "transport": {{ "kind": "memory", "network": "{NETWORK}", "loss": {loss}, "seed": {seed} }},
  "channelDefaults": {{
    "segmentationConfig": {{ "chunkSizeBytes": {CHUNK_SIZE} }},
    "sdsConfig": {{ "acknowledgementTimeoutMs": {ACK_TIMEOUT_MS}, "maxRetransmissions": 20,
                    "syncIntervalMs": 1500, "idleSyncRounds": 5, "dependencyTimeoutMs": 30000 }},
    "rateLimitConfig": {{ "enabled": false }}
  }}
}}"#
    )
}

// ---------------------------------------------------------------------------------------------
// Console: event lines scroll, one progress line stays at the bottom (`\r` updates on a terminal).

struct Console {
    start: Instant,
    tty: bool,
    progress: String,
}

impl Console {
    fn line(&mut self, s: &str) {
        let mut out = std::io::stdout().lock();
        if self.tty {
            let _ = write!(out, "\r\x1b[2K");
        }
        let _ = writeln!(out, "[{:>6.2}s] {s}", self.start.elapsed().as_secs_f64());
        if self.tty && !self.progress.is_empty() {
            let _ = write!(out, "{}", self.progress);
        }
        let _ = out.flush();
    }

    fn set_progress(&mut self, s: String) {
        self.progress = s;
        let mut out = std::io::stdout().lock();
        if self.tty {
            let _ = write!(out, "\r\x1b[2K{}", self.progress);
        } else {
            let _ = writeln!(out, "[{:>6.2}s] {}", self.start.elapsed().as_secs_f64(), self.progress);
        }
        let _ = out.flush();
    }

    fn end_progress(&mut self) {
        if self.tty && !self.progress.is_empty() {
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "\r\x1b[2K{}", self.progress);
            let _ = out.flush();
        }
        self.progress.clear();
    }
}

// ---------------------------------------------------------------------------------------------
// What happened to every send, filled by the event handlers of the three managers.

#[derive(Default)]
struct Tracker {
    /// request id → (sender index, label), recorded when `send` returns.
    sends: HashMap<String, (usize, String)>,
    /// request id → final outcome (Ok = DELIVERED, Err = SEND_ERROR reason).
    finals: HashMap<String, Result<(), String>>,
    /// request id → receiver indices, in arrival order.
    received: HashMap<String, Vec<usize>>,
    /// (receiver, request id) → payload, for large payloads (checked byte for byte).
    large: HashMap<(usize, String), Vec<u8>>,
    /// RECEIVED twice at the same receiver (must never happen).
    double_receptions: u64,
    lost_events: u64,
    /// (receiver, request id) reported MESSAGE_LOST: that receiver will never get it.
    lost: Vec<(usize, String)>,
}

impl Tracker {
    /// Sends among `ids` that some receiver reported lost (unrecoverable).
    fn lost_among(&self, ids: &[String]) -> Vec<String> {
        self.lost
            .iter()
            .filter(|(_, rid)| ids.contains(rid))
            .map(|(r, rid)| {
                let label = self.sends.get(rid).map_or("", |s| s.1.as_str());
                format!("{} {label}: reported MESSAGE_LOST by {}", short(rid), NAMES[*r])
            })
            .collect()
    }

    /// What is still missing for these sends; empty when all are complete.
    fn missing(&self, ids: &[String]) -> Vec<String> {
        let mut out = Vec::new();
        for rid in ids {
            let Some((from, label)) = self.sends.get(rid) else { continue };
            match self.finals.get(rid) {
                None => out.push(format!("{} {} {label}: no DELIVERED / SEND_ERROR yet", NAMES[*from], short(rid))),
                Some(Err(_)) => continue,
                Some(Ok(())) => {}
            }
            let got = self.received.get(rid).map(Vec::as_slice).unwrap_or(&[]);
            for (i, name) in NAMES.iter().enumerate() {
                if i != *from && !got.contains(&i) {
                    out.push(format!("{} {} {label}: not received by {name}", NAMES[*from], short(rid)));
                }
            }
        }
        out
    }
}

struct State {
    console: Console,
    tracker: Tracker,
}

type Shared = Arc<Mutex<State>>;

fn short(rid: &str) -> &str {
    &rid[..rid.len().min(8)]
}

fn fmt_size(n: usize) -> String {
    if n >= 1 << 20 {
        format!("{:.2} MiB", n as f64 / (1 << 20) as f64)
    } else if n >= 1024 {
        format!("{:.1} KiB", n as f64 / 1024.0)
    } else {
        format!("{n} B")
    }
}

fn sha_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

fn preview(payload: &[u8]) -> String {
    match std::str::from_utf8(payload) {
        Ok(s) if payload.len() <= 256 => {
            let cut: String = s.chars().take(60).collect();
            let ellipsis = if cut.len() < s.len() { "…" } else { "" };
            format!("\"{cut}{ellipsis}\"")
        }
        _ => format!("<{}, sha256 {}…>", fmt_size(payload.len()), &sha_hex(payload)[..12]),
    }
}

fn handler(me: usize, shared: Shared) -> EventHandler {
    Arc::new(move |e: &Event<'_>| {
        let mut guard = shared.lock().unwrap_or_else(|p| p.into_inner());
        let st = &mut *guard;
        let name = NAMES[me];
        let line = match e.event {
            ChannelEvent::Received { request_id, sender_id, payload } => {
                let got = st.tracker.received.entry(request_id.clone()).or_default();
                if got.contains(&me) {
                    st.tracker.double_receptions += 1;
                } else {
                    got.push(me);
                }
                if payload.len() > 4096 {
                    st.tracker.large.insert((me, request_id.clone()), payload.clone());
                }
                format!("{name:<6} RECEIVED    {}  from {sender_id:<6} {}", short(request_id), preview(payload))
            }
            ChannelEvent::Sent { request_id } => {
                let label = st.tracker.sends.get(request_id).map_or("", |s| s.1.as_str());
                format!("{name:<6} SENT        {}  {label}", short(request_id))
            }
            ChannelEvent::Delivered { request_id } => {
                st.tracker.finals.insert(request_id.clone(), Ok(()));
                let label = st.tracker.sends.get(request_id).map_or("", |s| s.1.as_str());
                format!("{name:<6} DELIVERED   {}  {label}", short(request_id))
            }
            ChannelEvent::SendError { request_id, error } => {
                st.tracker.finals.insert(request_id.clone(), Err(error.clone()));
                format!("{name:<6} SEND_ERROR  {}  {error}", short(request_id))
            }
            ChannelEvent::Lost { request_id, sender_id, error } => {
                st.tracker.lost_events += 1;
                if let Some(rid) = request_id {
                    st.tracker.lost.push((me, rid.clone()));
                }
                let rid = request_id.as_deref().map_or("-", short);
                format!("{name:<6} LOST        {rid}  from {}: {error}", sender_id.as_deref().unwrap_or("?"))
            }
        };
        st.console.line(&line);
    })
}

// ---------------------------------------------------------------------------------------------

struct Demo {
    managers: Vec<Manager>,
    shared: Shared,
    deadline: Instant,
    all_sends: Vec<String>,
}

impl Demo {
    fn log(&self, s: &str) {
        self.shared.lock().unwrap_or_else(|p| p.into_inner()).console.line(s);
    }

    fn send(&mut self, who: usize, payload: &[u8], label: &str) -> String {
        // The tracker lock is held across `send` so that the SENT event (printed by another
        // thread) finds the label.
        let shared = self.shared.clone();
        let mut st = shared.lock().unwrap_or_else(|p| p.into_inner());
        let rid = match self.managers[who].send(CHANNEL, payload, false) {
            Ok(rid) => rid,
            Err(e) => {
                drop(st);
                fail(&format!("{} could not send {label}: {e}", NAMES[who]));
            }
        };
        st.tracker.sends.insert(rid.clone(), (who, label.to_owned()));
        st.console.line(&format!("{:<6} send        {}  {label}", NAMES[who], short(&rid)));
        drop(st);
        self.all_sends.push(rid.clone());
        rid
    }

    fn stats(&self, who: usize) -> ChannelStats {
        self.managers[who].channel_stats(CHANNEL).unwrap_or_else(|e| fail(&format!("channel stats of {}: {e}", NAMES[who])))
    }

    /// Waits until every send in `ids` is final and received by everyone else; `tick` runs
    /// every 100 ms meanwhile (progress display).
    fn wait_complete(&self, ids: &[String], mut tick: impl FnMut(&Demo)) {
        loop {
            let (missing, lost) = {
                let st = self.shared.lock().unwrap_or_else(|p| p.into_inner());
                (st.tracker.missing(ids), st.tracker.lost_among(ids))
            };
            if missing.is_empty() {
                return;
            }
            if !lost.is_empty() {
                self.shared.lock().unwrap_or_else(|p| p.into_inner()).console.end_progress();
                eprintln!("\nFAILED: a message can no longer be completed (the library gave up on it):");
                for l in &lost {
                    eprintln!("  - {l}");
                }
                for (i, n) in NAMES.iter().enumerate() {
                    eprintln!("  {n}: {:?}", self.stats(i));
                }
                std::process::exit(1);
            }
            if Instant::now() > self.deadline {
                let mut st = self.shared.lock().unwrap_or_else(|p| p.into_inner());
                st.console.end_progress();
                drop(st);
                eprintln!("\nTIMEOUT: not complete after {} s. Still missing:", OVERALL_TIMEOUT.as_secs());
                for m in &missing {
                    eprintln!("  - {m}");
                }
                for (i, n) in NAMES.iter().enumerate() {
                    eprintln!("  {n}: {:?}", self.stats(i));
                }
                std::process::exit(1);
            }
            tick(self);
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

fn fail(msg: &str) -> ! {
    eprintln!("\nDEMO FAILED: {msg}");
    std::process::exit(1);
}

fn parse_args() -> (f64, u64) {
    let (mut loss, mut seed) = (0.2, 1u64);
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut val = || args.next().unwrap_or_else(|| fail(&format!("{a} needs a value")));
        match a.as_str() {
            "--loss" => loss = val().parse().unwrap_or_else(|_| fail("--loss expects a probability")),
            "--seed" => seed = val().parse().unwrap_or_else(|_| fail("--seed expects an integer")),
            "-h" | "--help" => {
                println!("usage: demo [--loss P (default 0.2)] [--seed N (default 1)]");
                std::process::exit(0);
            }
            other => fail(&format!("unknown argument {other:?} (try --help)")),
        }
    }
    if !(0.0..0.95).contains(&loss) {
        fail("--loss must be in [0, 0.95)");
    }
    (loss, seed)
}

fn main() {
    let (loss, seed) = parse_args();
    let start = Instant::now();
    let shared: Shared = Arc::new(Mutex::new(State {
        console: Console { start, tty: std::io::stdout().is_terminal(), progress: String::new() },
        tracker: Tracker::default(),
    }));

    println!("Reliable Channel demo: alice, bob and carol on an embedded Waku network that loses");
    println!("{:.0} % of the copies every participant publishes (seed {seed}); acknowledgement timeout {ACK_TIMEOUT_MS} ms,", loss * 100.0);
    println!("rate limit off. Events: who, kind, request id, details.\n");

    let mut managers = Vec::new();
    for (i, name) in NAMES.iter().enumerate() {
        let node_seed = seed.wrapping_mul(1_000).wrapping_add(i as u64 + 1);
        let m = Manager::from_json(Some(&config(loss, node_seed))).unwrap_or_else(|e| fail(&format!("{name}: {e}")));
        m.set_event_handler(Some(handler(i, shared.clone()))).unwrap_or_else(|e| fail(&e.to_string()));
        m.open_channel(CHANNEL, TOPIC, name, None).unwrap_or_else(|e| fail(&format!("{name}: {e}")));
        managers.push(m);
    }
    let mut demo = Demo { managers, shared: shared.clone(), deadline: start + OVERALL_TIMEOUT, all_sends: Vec::new() };
    // A stats round trip through each runtime thread: every channel is open and subscribed.
    for i in 0..NAMES.len() {
        demo.stats(i);
    }
    demo.log(&format!("channel {CHANNEL:?} on {TOPIC} open at alice, bob and carol"));

    // 1. A short chat.
    let chat: [(usize, String); 5] = [
        (0, "Hi bob, hi carol! I'll share the design doc in a minute.".into()),
        (1, "Hey alice, great, the network is flaky today though.".into()),
        (2, format!("Hi both! {:.0}% loss here, let's see if SDS copes.", loss * 100.0)),
        (0, "It retransmits until someone acknowledges, and fills gaps from the store.".into()),
        (1, "Ready when you are.".into()),
    ];
    let mut ids = Vec::new();
    for (who, text) in &chat {
        let who = *who;
        ids.push(demo.send(who, text.as_bytes(), &format!("\"{text}\"")));
        std::thread::sleep(Duration::from_millis(150));
    }
    demo.wait_complete(&ids, |_| {});
    demo.log("-- chat complete: every message delivered and received by everyone --");

    // 2. The 1 MiB file.
    let mut file = vec![0u8; FILE_SIZE];
    SmallRng::seed_from_u64(seed ^ 0x5eed).fill_bytes(&mut file);
    let digest = sha_hex(&file);
    let total_chunks = chunk_count(FILE_SIZE, CHUNK_SIZE) as u64;
    let before = demo.stats(0);
    let file_start = Instant::now();
    let label = format!("{FILE_NAME} ({}, {total_chunks} chunks, sha256 {}…)", fmt_size(FILE_SIZE), &digest[..12]);
    let file_rid = demo.send(0, &file, &label);
    let fr = file_rid.clone();
    let mut last_print = Instant::now() - Duration::from_secs(10);
    demo.wait_complete(std::slice::from_ref(&file_rid), |d| {
        let tty = d.shared.lock().unwrap_or_else(|p| p.into_inner()).console.tty;
        if !tty && last_print.elapsed() < Duration::from_secs(1) {
            return;
        }
        last_print = Instant::now();
        let a = d.stats(0);
        let acked = (a.acks - before.acks).min(total_chunks);
        let retx = a.retransmissions - before.retransmissions;
        let got: Vec<usize> = d.shared.lock().unwrap_or_else(|p| p.into_inner()).tracker.received.get(&fr).cloned().unwrap_or_default();
        let mut line = format!("  >> {FILE_NAME}: alice {acked}/{total_chunks} chunks acknowledged, {retx} retransmitted");
        for (r, name) in NAMES.iter().enumerate().skip(1) {
            let part = if got.contains(&r) {
                "complete".to_owned()
            } else {
                let s = d.stats(r);
                format!("{:>4}/{} KiB", s.reassembly_bytes / 1024, FILE_SIZE / 1024)
            };
            line.push_str(&format!(" | {name} {part}"));
        }
        line.push_str(&format!(" | {:.1} s", file_start.elapsed().as_secs_f64()));
        d.shared.lock().unwrap_or_else(|p| p.into_inner()).console.set_progress(line);
    });
    {
        let a = demo.stats(0);
        let mut st = shared.lock().unwrap_or_else(|p| p.into_inner());
        st.console.set_progress(format!(
            "  >> {FILE_NAME}: {total_chunks}/{total_chunks} chunks acknowledged, {} retransmitted, received by bob and carol in {:.2} s",
            a.retransmissions - before.retransmissions,
            file_start.elapsed().as_secs_f64()
        ));
        st.console.end_progress();
    }

    // 3. The receivers check the file and say so.
    let mut ids = Vec::new();
    let mut file_ok = true;
    for r in 1..NAMES.len() {
        let copy = shared.lock().unwrap_or_else(|p| p.into_inner()).tracker.large.get(&(r, file_rid.clone())).cloned();
        let ok = copy.as_deref() == Some(&file[..]);
        file_ok &= ok;
        let text = if ok {
            format!("Got {FILE_NAME}: {} bytes, sha256 {}…, identical.", FILE_SIZE, &digest[..12])
        } else {
            format!("{FILE_NAME} arrived CORRUPTED ({} bytes)", copy.map_or(0, |c| c.len()))
        };
        ids.push(demo.send(r, text.as_bytes(), &format!("\"{text}\"")));
    }
    demo.wait_complete(&ids, |_| {});

    // Summary.
    let elapsed = start.elapsed();
    let stats: Vec<ChannelStats> = (0..NAMES.len()).map(|i| demo.stats(i)).collect();
    let net = network_stats(NETWORK).unwrap_or_default();
    let st = shared.lock().unwrap_or_else(|p| p.into_inner());
    let t = &st.tracker;
    let errors = t.finals.values().filter(|f| f.is_err()).count();
    let delivered = t.finals.values().filter(|f| f.is_ok()).count();
    let receptions: usize = t.received.values().map(Vec::len).sum();
    let double = t.double_receptions;
    let lost_events = t.lost_events;
    drop(st);

    println!("\nSummary");
    println!(
        "  sends: {} ({} DELIVERED, {} SEND_ERROR); receptions: {} of {} expected",
        demo.all_sends.len(),
        delivered,
        errors,
        receptions,
        demo.all_sends.len() * (NAMES.len() - 1)
    );
    println!(
        "  {:<7}{:>6}{:>10}{:>10}{:>8}{:>9}{:>7}{:>7}{:>8}{:>12}{:>6}",
        "", "sent", "delivered", "received", "chunks", "retrans", "dups", "syncs", "rebcast", "retrievals", "lost"
    );
    for (i, s) in stats.iter().enumerate() {
        println!(
            "  {:<7}{:>6}{:>10}{:>10}{:>8}{:>9}{:>7}{:>7}{:>8}{:>12}{:>6}",
            NAMES[i],
            s.messages_sent,
            s.messages_delivered,
            s.messages_received,
            s.chunks_sent,
            s.retransmissions,
            s.duplicates,
            s.syncs_sent,
            s.rebroadcasts,
            s.retrievals_requested,
            s.messages_lost
        );
    }
    let copies = net.delivered + net.dropped;
    println!(
        "  network {NETWORK:?}: {} messages published, {} copies delivered, {} copies dropped ({:.1} % loss), {} duplicated",
        net.published,
        net.delivered,
        net.dropped,
        if copies > 0 { 100.0 * net.dropped as f64 / copies as f64 } else { 0.0 },
        net.duplicated
    );
    println!("  file: {} bytes, sha256 {digest}: {}", FILE_SIZE, if file_ok { "byte-identical at bob and carol" } else { "MISMATCH" });
    println!("  elapsed: {:.2} s", elapsed.as_secs_f64());

    for m in &mut demo.managers {
        let _ = m.shutdown();
    }
    let mut problems = Vec::new();
    if !file_ok {
        problems.push("the file did not arrive byte-identical".to_owned());
    }
    if errors > 0 {
        problems.push(format!("{errors} send(s) ended with SEND_ERROR"));
    }
    if double > 0 {
        problems.push(format!("{double} message(s) RECEIVED twice by the same participant"));
    }
    if lost_events > 0 {
        problems.push(format!("{lost_events} MESSAGE_LOST event(s)"));
    }
    if !problems.is_empty() {
        fail(&problems.join("; "));
    }
    println!("\nOK: every message delivered and received exactly once by everyone.");
}
