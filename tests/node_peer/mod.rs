//! A node.js peer process driven over newline-delimited JSON on stdin/stdout, shared by the interop
//! tests (tests/interop_reference.rs: the reference SDS; tests/relay_interop.rs: a js-waku relay
//! node). One command line in, one JSON reply line out; EOF on stdin ends the process.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::sync::{Arc, Mutex, Once};
use std::time::{Duration, Instant};

use serde_json::Value;

/// What a test needs of its peer: the script and the npm packages it loads.
pub struct PeerScript {
    /// The test's name, in notices and panics.
    pub test: &'static str,
    /// The npm project folder (`npm ci --prefix <dir>`), relative to the crate root.
    pub dir: &'static str,
    /// The script, relative to the crate root.
    pub script: &'static str,
    /// Files below `dir` that must exist (the installed packages).
    pub installed: &'static [&'static str],
    /// What the peer stands for, in the skip notice ("@waku/sds", "js-waku").
    pub against: &'static str,
    /// How long one command may take.
    pub reply_timeout: Duration,
}

/// A running peer process.
pub struct NodePeer {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    stderr: Arc<Mutex<String>>,
    script: &'static PeerScript,
}

impl NodePeer {
    /// Spawns the peer, or returns `None` after a loud notice when Node or the npm packages are
    /// missing and the `CI` environment variable is not set (in CI that is a failure).
    pub fn start(script: &'static PeerScript) -> Option<NodePeer> {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let installed = script.installed.iter().all(|f| root.join(script.dir).join(f).is_file());
        let node_ok = Command::new("node").arg("--version").stdin(Stdio::null()).output().is_ok_and(|o| o.status.success());
        let problem = if !node_ok {
            Some("`node` (>= 20) was not found on PATH".to_owned())
        } else if !installed {
            Some(format!("{}/node_modules is not installed", script.dir))
        } else {
            None
        };
        if let Some(problem) = problem {
            let (test, dir) = (script.test, script.dir);
            if std::env::var_os("CI").is_some() {
                panic!("{test}: {problem}. CI is set, so this is a failure: install Node >= 20 and run `npm ci --prefix {dir}` (make interop-deps) before `cargo test`.");
            }
            // Written to the stderr handle directly: libtest captures `eprintln!` of passing tests.
            static BANNER: Once = Once::new();
            BANNER.call_once(|| {
                let _ = writeln!(
                    std::io::stderr(),
                    "\n==================================================================\n\
                     SKIPPED {test}: {problem}.\n\
                     run `npm ci --prefix {dir}` (Node >= 20) to test against {}\n\
                     ==================================================================",
                    script.against
                );
            });
            return None;
        }
        let mut child = Command::new("node")
            .arg(script.script)
            .current_dir(root)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("spawning node {}: {e}", script.script));
        let stdout = child.stdout.take().unwrap();
        let mut stderr_pipe = child.stderr.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stderr = Arc::new(Mutex::new(String::new()));
        let sink = stderr.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = stderr_pipe.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock().unwrap().push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        Some(NodePeer { stdin: child.stdin.take(), child, lines, stderr, script })
    }

    /// What the peer wrote to stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Sends one command and returns its reply. Panics on a reply with `error`, or none in time.
    pub fn call(&mut self, cmd: &Value) -> Value {
        let line = cmd.to_string();
        let shown: String = line.chars().take(160).collect();
        let script = self.script.script;
        let stdin = self.stdin.as_mut().expect("peer stdin");
        if let Err(e) = writeln!(stdin, "{line}").and_then(|_| stdin.flush()) {
            std::thread::sleep(Duration::from_millis(200)); // let the peer's last words reach stderr
            panic!("writing to {script} failed ({e}) on {shown}\nstderr:\n{}", self.stderr());
        }
        let reply = self.lines.recv_timeout(self.script.reply_timeout).unwrap_or_else(|e| {
            std::thread::sleep(Duration::from_millis(200));
            panic!("no reply from {script} ({e}) to {shown}\nstderr:\n{}", self.stderr())
        });
        let v: Value = serde_json::from_str(&reply).unwrap_or_else(|e| panic!("bad reply from {script} ({e}): {reply}"));
        if let Some(err) = v.get("error") {
            panic!("{script} failed on {shown}:\n{}\nstderr:\n{}", err.as_str().unwrap_or_default(), self.stderr());
        }
        v
    }
}

impl Drop for NodePeer {
    fn drop(&mut self) {
        drop(self.stdin.take()); // EOF: the peer's read loop ends and node exits.
        let deadline = Instant::now() + Duration::from_secs(3);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
