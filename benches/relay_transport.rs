//! Is the relay transport the bottleneck? Two nodes on loopback, one publishing messages with at
//! most `window` in flight, the other receiving them: throughput with a window of 512, and
//! publish-to-receive latency one message at a time (window 1, so no queueing), for
//!
//! * `raw`: two bare rust-libp2p gossipsub swarms with the same Waku Relay configuration, each on
//!   its own thread (the sender publishes bytes, the receiver timestamps arrivals), and
//! * `transport`: two `RelayTransport`s (encode + hash on the caller, validation + decode + hash
//!   + sink on the node thread).
//!
//! `cargo bench --bench relay_transport` (phase B adds the full stack and `make bench-relay`).

mod relay_common;

use relay_common::raw_swarm;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use libp2p::futures::StreamExt;
use libp2p::gossipsub::{self, MessageAcceptance};
use libp2p::swarm::SwarmEvent;
use libp2p::Multiaddr;
use parking_lot::Mutex;
use prost::Message as _;
use reliable_channel::messaging::relay::{RelayConfig, RelayTransport};
use reliable_channel::messaging::{Transport, TransportEvent, TransportSink};
use reliable_channel::wire::WakuMessage;
use tokio::sync::mpsc;

/// (messages, window) of the throughput runs and of the latency runs.
const THROUGHPUT: (usize, u64) = (20_000, 512);
const LATENCY: (usize, u64) = (2_000, 1);
const TOPIC: &str = "/waku/2/rs/42/0";
const CONTENT_TOPIC: &str = "/bench/1/relay/proto";

/// Arrival times (ns since the bench epoch) by message index, and the count.
#[derive(Default)]
struct Arrivals {
    at: Mutex<Vec<u64>>,
    count: AtomicU64,
}

impl Arrivals {
    fn record(&self, index: usize, epoch: Instant) {
        let ns = epoch.elapsed().as_nanos() as u64;
        let mut at = self.at.lock();
        if index < at.len() && at[index] == 0 {
            at[index] = ns;
            self.count.fetch_add(1, Ordering::Release);
        }
    }
}

fn waku_message(index: usize, size: usize) -> WakuMessage {
    let mut payload = vec![0xa5u8; size.max(8)];
    payload[..8].copy_from_slice(&(index as u64).to_le_bytes());
    WakuMessage {
        payload: Bytes::from(payload),
        content_topic: CONTENT_TOPIC.to_owned(),
        timestamp: Some(1_700_000_000_000_000_000 + index as i64),
        ..Default::default()
    }
}

fn index_of(payload: &[u8]) -> usize {
    u64::from_le_bytes(payload[..8].try_into().unwrap()) as usize
}

/// Publishes `n` messages through `publish`, keeping at most `window` ahead of the arrivals;
/// returns (messages per second, p50 latency, p99 latency).
fn drive(
    (n, window): (usize, u64),
    size: usize,
    arrivals: &Arrivals,
    epoch: Instant,
    mut publish: impl FnMut(usize, WakuMessage),
) -> (f64, Duration, Duration) {
    *arrivals.at.lock() = vec![0; n];
    arrivals.count.store(0, Ordering::Release);
    let mut sent_at = vec![0u64; n];
    let start = Instant::now();
    for (i, sent) in sent_at.iter_mut().enumerate() {
        while (i as u64) - arrivals.count.load(Ordering::Acquire) >= window {
            // Sleep, not spin: the two node threads need both cores.
            std::thread::sleep(Duration::from_micros(50));
            assert!(start.elapsed() < Duration::from_secs(300), "bench stalled at {i}");
        }
        *sent = epoch.elapsed().as_nanos() as u64;
        publish(i, waku_message(i, size));
    }
    while arrivals.count.load(Ordering::Acquire) < n as u64 {
        std::thread::sleep(Duration::from_micros(200));
        assert!(start.elapsed() < Duration::from_secs(300), "bench stalled at the end");
    }
    let elapsed = start.elapsed();
    let at = arrivals.at.lock();
    let mut lat: Vec<u64> = at.iter().zip(&sent_at).map(|(r, s)| r.saturating_sub(*s)).collect();
    lat.sort_unstable();
    (n as f64 / elapsed.as_secs_f64(), Duration::from_nanos(lat[n / 2]), Duration::from_nanos(lat[n * 99 / 100]))
}

/// Runs `f` on a new thread with its own current-thread runtime (as the transport's node runs).
fn on_own_thread<F: std::future::Future<Output = ()> + 'static>(f: impl FnOnce() -> F + Send + 'static) {
    std::thread::spawn(move || tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(f()));
}

/// The bare gossipsub pair: returns the sender's publish channel once both see each other.
fn raw_pair(arrivals: Arc<Arrivals>, epoch: Instant) -> mpsc::UnboundedSender<Vec<u8>> {
    let (addr_tx, addr_rx) = std::sync::mpsc::channel::<Multiaddr>();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel::<()>();
    on_own_thread(move || async move {
        let (mut swarm, _) = raw_swarm(TOPIC);
        swarm.listen_on("/ip4/127.0.0.1/tcp/0".parse().unwrap()).unwrap();
        loop {
            match swarm.select_next_some().await {
                SwarmEvent::NewListenAddr { address, .. } => addr_tx.send(address).unwrap(),
                SwarmEvent::Behaviour(gossipsub::Event::Message { propagation_source, message_id, message }) => {
                    // The same validation round trip the transport makes, with no decoding.
                    swarm.behaviour_mut().report_message_validation_result(&message_id, &propagation_source, MessageAcceptance::Accept);
                    let m = WakuMessage::decode(message.data.as_slice()).unwrap();
                    arrivals.record(index_of(&m.payload), epoch);
                }
                _ => {}
            }
        }
    });
    let target = addr_rx.recv().unwrap();
    let (tx, mut rx) = mpsc::unbounded_channel::<Vec<u8>>();
    on_own_thread(move || async move {
        let (mut swarm, topic) = raw_swarm(TOPIC);
        swarm.dial(target).unwrap();
        let mut ready = Some(ready_tx);
        loop {
            tokio::select! {
                data = rx.recv() => match data {
                    Some(d) => { let _ = swarm.behaviour_mut().publish(topic.clone(), d); }
                    None => break,
                },
                ev = swarm.select_next_some() => {
                    if let SwarmEvent::Behaviour(gossipsub::Event::Subscribed { .. }) = ev {
                        if let Some(r) = ready.take() { let _ = r.send(()); }
                    }
                }
            }
        }
    });
    ready_rx.recv().unwrap();
    tx
}

fn main() {
    let epoch = Instant::now();
    println!("{:>10} {:>8} {:>7} {:>12} {:>10} {:>10} {:>10}", "setup", "size", "window", "msgs/s", "MB/s", "p50", "p99");
    let row = |setup: &str, size: usize, run: (usize, u64), (rate, p50, p99): (f64, Duration, Duration)| {
        println!("{setup:>10} {size:>8} {:>7} {rate:>12.0} {:>10.1} {p50:>10.2?} {p99:>10.2?}", run.1, rate * size as f64 / 1e6);
    };
    for (size, run) in [(1024usize, LATENCY), (1024, THROUGHPUT), (16 * 1024, THROUGHPUT)] {
        let arrivals = Arc::new(Arrivals::default());
        let tx = raw_pair(Arc::clone(&arrivals), epoch);
        row("raw", size, run, drive(run, size, &arrivals, epoch, |_, m| tx.send(m.encode_to_vec()).unwrap()));

        let arrivals = Arc::new(Arrivals::default());
        let rx_arrivals = Arc::clone(&arrivals);
        let sink = TransportSink::new(move |ev| {
            if let TransportEvent::Received { message, .. } = ev {
                rx_arrivals.record(index_of(&message.payload), epoch);
            }
        });
        let unlimited = RelayConfig { peer_messages_per_sec: 0, peer_bytes_per_sec: 0, ..RelayConfig::default() };
        let (mut receiver, rh) = RelayTransport::new(unlimited, sink).unwrap();
        receiver.subscribe(CONTENT_TOPIC);
        let peers = vec![rh.listen_addresses()[0].to_string()];
        let (mut sender, sh) = RelayTransport::new(RelayConfig { peers, ..RelayConfig::default() }, TransportSink::new(|_| {})).unwrap();
        while sh.stats().topic_peers == 0 || rh.stats().topic_peers == 0 {
            std::thread::sleep(Duration::from_millis(5));
        }
        row("transport", size, run, drive(run, size, &arrivals, epoch, |i, m| sender.publish(i as u64, m)));
        sender.shutdown();
        receiver.shutdown();
    }
}
