//! The SIGKILL loop through the C ABI (issue #11): tests/c/crash_child.c runs two durable
//! managers on a lossy embedded network; this test kills it at random moments and at fault points
//! (`RC_FAULT`: before a commit, after a commit before anything of its batch is released, after a
//! commit that stored a chunk of a partial incoming message; `RC_CRASH_IN_CALLBACK`: inside an
//! event callback), restarts it each time, and finally lets it finish. Then, from the child's log
//! (events by `seq`) and the databases:
//! - every accepted send is RECEIVED exactly once by the peer, in send order;
//! - exactly one final event (DELIVERED or SEND_ERROR) per accepted send, and no SEND_ERROR or
//!   MESSAGE_LOST on a lossless run;
//! - an event delivered again after a restart carries its first `seq` and the same content;
//! - each sender's own messages have strictly increasing lamport timestamps in its stored log,
//!   across every restart;
//! - the stored RLN usage never exceeds the budget.
//!
//! Run by `make test-c-crash` (50 kills, in `make test`) and `make test-crash` (500), which build
//! the child and set `RC_CRASH_CHILD`; without it this test only says it was skipped.
//! Environment: RC_CRASH_KILLS (50), RC_CRASH_MESSAGES (per sender, 150), RC_CRASH_LOSS (0.05),
//! RC_CRASH_SEED.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

/// RLN budget per epoch in the child's channel configuration.
const RLN_LIMIT: i64 = 400;
/// Longest wait for the final life to deliver everything.
const FINISH: Duration = Duration::from_secs(120);

fn env<T: std::str::FromStr>(key: &str, default: T) -> T {
    std::env::var(key).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn spawn(child: &Path, dir: &Path, n: u32, loss: f64, fault: &[(&str, String)]) -> Child {
    let mut c = Command::new(child);
    c.args([dir.to_str().unwrap(), &n.to_string(), &loss.to_string()]).stdout(Stdio::null()).stderr(Stdio::null());
    for (k, v) in fault {
        c.env(k, v);
    }
    c.spawn().expect("spawn the crash child")
}

/// Waits up to `limit` for the child to die by itself (a fault point); kills it otherwise.
fn wait_or_kill(child: &mut Child, limit: Duration) -> bool {
    let t = Instant::now();
    while t.elapsed() < limit {
        if child.try_wait().unwrap().is_some() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let _ = child.kill();
    child.wait().unwrap();
    false
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Event {
    kind: u32,
    request: String,
    sender: String,
    index: Option<u64>,
}

#[derive(Default)]
struct Log {
    /// who → index → request ids accepted (a retry after a kill between RC_OK and the log line
    /// gives an index a second request).
    accepted: HashMap<String, Vec<(u64, String)>>,
    /// who → seq → event.
    events: HashMap<String, BTreeMap<u64, Event>>,
    problems: Vec<String>,
    sent_lines: usize,
}

fn read_log(path: &Path) -> Log {
    let mut log = Log::default();
    let text = std::fs::read_to_string(path).unwrap_or_default();
    for line in text.lines() {
        let f: Vec<&str> = line.split(' ').collect();
        match f.as_slice() {
            ["A", who, index, rid] => log.accepted.entry(who.to_string()).or_default().push((index.parse().unwrap(), rid.to_string())),
            ["E", who, seq, kind, rid, sender, index] => {
                let e = Event { kind: kind.parse().unwrap(), request: rid.to_string(), sender: sender.to_string(), index: index.parse().ok() };
                let seq: u64 = seq.parse().unwrap();
                let seen = log.events.entry(who.to_string()).or_default();
                if let Some(prev) = seen.get(&seq) {
                    if *prev != e {
                        log.problems.push(format!("{who}: seq {seq} delivered again as {e:?}, first {prev:?}"));
                    }
                }
                seen.insert(seq, e);
            }
            ["X", ..] => log.problems.push(line.to_owned()),
            ["S", "sent"] => log.sent_lines += 1,
            _ => {} // a line cut short by a kill inside write(2) cannot happen: one write per line
        }
    }
    log
}

const RECEIVED: u32 = 1;
const DELIVERED: u32 = 3;
const SEND_ERROR: u32 = 4;
const LOST: u32 = 5;

/// Everything accepted is final at its sender and received by its peer.
fn complete(log: &Log, n: u32) -> bool {
    ["alice", "bob"].iter().all(|who| {
        let acc = log.accepted.get(*who).map_or(&[][..], |v| v.as_slice());
        let max = acc.iter().map(|a| a.0 + 1).max().unwrap_or(0);
        let peer = if *who == "alice" { "bob" } else { "alice" };
        let finals: HashSet<&str> = log
            .events
            .get(*who)
            .map_or(HashSet::new(), |ev| ev.values().filter(|e| e.kind == DELIVERED || e.kind == SEND_ERROR).map(|e| e.request.as_str()).collect());
        let received: HashSet<&str> = log
            .events
            .get(peer)
            .map_or(HashSet::new(), |ev| ev.values().filter(|e| e.kind == RECEIVED && e.sender == *who).map(|e| e.request.as_str()).collect());
        max == u64::from(n) && acc.iter().all(|(_, r)| finals.contains(r.as_str()) && received.contains(r.as_str()))
    })
}

/// What `complete` still waits for.
fn missing(log: &Log, n: u32) -> Vec<String> {
    let mut out = Vec::new();
    for who in ["alice", "bob"] {
        let peer = if who == "alice" { "bob" } else { "alice" };
        let acc = log.accepted.get(who).map_or(&[][..], |v| v.as_slice());
        out.push(format!("{who}: {} of {n} accepted", acc.iter().map(|a| a.0 + 1).max().unwrap_or(0)));
        let empty = BTreeMap::new();
        let mine = log.events.get(who).unwrap_or(&empty);
        let theirs = log.events.get(peer).unwrap_or(&empty);
        for (i, r) in acc {
            let fin = mine.values().any(|e| (e.kind == DELIVERED || e.kind == SEND_ERROR) && e.request == *r);
            let rec = theirs.values().any(|e| e.kind == RECEIVED && e.request == *r);
            if !fin || !rec {
                out.push(format!("{who} {i} {r}: final {fin}, received {rec}"));
            }
        }
    }
    out
}

fn check(log: &Log, lossless: bool) -> Vec<String> {
    let mut bad = log.problems.clone();
    for who in ["alice", "bob"] {
        let peer = if who == "alice" { "bob" } else { "alice" };
        let empty = BTreeMap::new();
        let mine = log.events.get(who).unwrap_or(&empty);
        let theirs = log.events.get(peer).unwrap_or(&empty);
        for e in mine.values() {
            if e.kind == LOST {
                bad.push(format!("{who}: MESSAGE_LOST {e:?}"));
            }
            if lossless && e.kind == SEND_ERROR {
                bad.push(format!("{who}: SEND_ERROR on a lossless run {e:?}"));
            }
        }
        for (index, rid) in log.accepted.get(who).map_or(&[][..], |v| v.as_slice()) {
            let finals = mine.values().filter(|e| (e.kind == DELIVERED || e.kind == SEND_ERROR) && e.request == *rid).count();
            if finals != 1 {
                bad.push(format!("{who}: {finals} final events for {rid} (message {index})"));
            }
            let received = theirs.values().filter(|e| e.kind == RECEIVED && e.request == *rid).count();
            let failed = mine.values().any(|e| e.kind == SEND_ERROR && e.request == *rid);
            if received != 1 && !(failed && received == 0) {
                bad.push(format!("{peer}: received {who}'s message {index} ({rid}) {received} times"));
            }
        }
        // In order: the indices the peer received from `who`, by seq, never go back (a retried
        // index may follow itself).
        let order: Vec<u64> = theirs.values().filter(|e| e.kind == RECEIVED && e.sender == who).filter_map(|e| e.index).collect();
        if order.windows(2).any(|w| w[1] < w[0]) {
            bad.push(format!("{peer} received {who}'s messages out of order: {order:?}"));
        }
    }
    bad
}

/// From a database of a dead child: own log entries' lamports strictly increase in insertion
/// order, and the stored RLN usage is within the budget.
fn check_db(path: &Path, who: &str) -> Vec<String> {
    let mut bad = Vec::new();
    let Ok(c) = rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY) else { return bad };
    let Ok(mut st) = c.prepare("SELECT lamport FROM log WHERE sender = ?1 ORDER BY rowid") else { return bad };
    let lamports: Vec<i64> = st.query_map([who], |r| r.get(0)).unwrap().map(Result::unwrap).collect();
    if let Some(w) = lamports.windows(2).find(|w| w[1] <= w[0]) {
        bad.push(format!("{who}: own lamport {} after {}", w[1], w[0]));
    }
    let used: Option<i64> = c.query_row("SELECT max(rln_used) FROM channel_state", [], |r| r.get(0)).unwrap_or(None);
    if used.is_some_and(|u| u > RLN_LIMIT) {
        bad.push(format!("{who}: stored RLN usage {used:?} above {RLN_LIMIT}"));
    }
    bad
}

#[test]
fn sigkill_loop() {
    let Some(child) = std::env::var_os("RC_CRASH_CHILD").map(PathBuf::from) else {
        eprintln!("sigkill_loop: skipped (set RC_CRASH_CHILD, as `make test-c-crash` does)");
        return;
    };
    let kills: u32 = env("RC_CRASH_KILLS", 50);
    let n: u32 = env("RC_CRASH_MESSAGES", 150);
    let loss: f64 = env("RC_CRASH_LOSS", 0.05);
    let seed: u64 = env("RC_CRASH_SEED", 11);
    let mut rng = SmallRng::seed_from_u64(seed);
    let dir = std::env::temp_dir().join(format!("rc-crash-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let log_path = dir.join("events.log");
    let mut by_fault = BTreeMap::<&str, u32>::new();
    let mut problems = Vec::new();
    for _ in 0..kills {
        let (name, fault): (&str, Vec<(&str, String)>) = match rng.gen_range(0..6) {
            0 => ("commit-before", vec![("RC_FAULT", format!("commit-before:{}", rng.gen_range(1..12)))]),
            1 => ("commit-after", vec![("RC_FAULT", format!("commit-after:{}", rng.gen_range(1..12)))]),
            2 => ("partial", vec![("RC_FAULT", format!("partial:{}", rng.gen_range(1..4)))]),
            3 => ("callback", vec![("RC_CRASH_IN_CALLBACK", rng.gen_range(1..12).to_string())]),
            _ => ("timer", vec![]),
        };
        let mut c = spawn(&child, &dir, n, loss, &fault);
        let died = if fault.is_empty() {
            std::thread::sleep(Duration::from_millis(rng.gen_range(30..400)));
            let _ = c.kill();
            c.wait().unwrap();
            true
        } else {
            wait_or_kill(&mut c, Duration::from_millis(1_000))
        };
        *by_fault.entry(if died { name } else { "timer (fault point not reached)" }).or_default() += 1;
        for who in ["alice", "bob"] {
            problems.extend(check_db(&dir.join(format!("{who}.db")), who));
        }
    }
    // The last life runs until everything is delivered.
    let mut c = spawn(&child, &dir, n, loss, &[]);
    let t = Instant::now();
    while !complete(&read_log(&log_path), n) && t.elapsed() < FINISH {
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = c.kill();
    c.wait().unwrap();
    let log = read_log(&log_path);
    for who in ["alice", "bob"] {
        problems.extend(check_db(&dir.join(format!("{who}.db")), who));
    }
    problems.extend(check(&log, loss == 0.0));
    let restarts = std::fs::read_to_string(&log_path).unwrap_or_default().lines().filter(|l| *l == "S started").count();
    eprintln!("sigkill_loop: {kills} kills ({by_fault:?}), {restarts} lives, {n} messages per sender, loss {loss}, complete: {}", complete(&log, n));
    assert!(complete(&log, n), "not everything was delivered within {FINISH:?} (see {}):\n{}", dir.display(), missing(&log, n).join("\n"));
    assert!(problems.is_empty(), "{} problems:\n{}", problems.len(), problems.join("\n"));
    let _ = std::fs::remove_dir_all(&dir);
}
