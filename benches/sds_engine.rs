//! SDS engine alone: wrap + receive of 1 KiB content messages carrying the full bloom filter.
//!
//! Two engines talk in turn, so every message also acknowledges the previous one through its
//! causal history (the steady state of a conversation). `history_scaling` then checks that the
//! per-message cost does not grow with the local log: the first 10,000 messages against the
//! 10,000 after 100,000 (printed, and recorded in BENCHMARKS.md). `floor_calibration` relates the
//! engine's cost to that of the Keccak-256 every wrap computes.

use std::time::Instant;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use reliable_channel::sds::{SdsConfig, SdsEngine};

const T0: u64 = 1_700_000_000_000;

struct Pair {
    a: SdsEngine,
    b: SdsEngine,
    n: u64,
    payload: Vec<u8>,
}

impl Pair {
    fn new() -> Self {
        Pair {
            // Every message carries the full bloom filter (as in a two-way conversation).
            a: SdsEngine::new("bench", "alice", SdsConfig { always_send_bloom: true, ..Default::default() }, T0, 1),
            b: SdsEngine::new("bench", "bob", SdsConfig { always_send_bloom: true, ..Default::default() }, T0, 2),
            n: 0,
            payload: vec![0x5a; 1024],
        }
    }

    /// One message: wrap on one side, receive on the other, drain both.
    fn step(&mut self) {
        self.n += 1;
        let now = T0 + self.n;
        self.payload[..8].copy_from_slice(&self.n.to_le_bytes());
        let (tx, rx) = if self.n.is_multiple_of(2) { (&mut self.a, &mut self.b) } else { (&mut self.b, &mut self.a) };
        let w = tx.wrap_content(now, &self.payload, None).expect("room");
        tx.on_dispatched(now, &w.message_id, None);
        rx.receive(now, w.bytes, None);
        while rx.poll_event().is_some() {}
        while tx.poll_event().is_some() {}
    }
}

fn wrap_receive(c: &mut Criterion) {
    let mut g = c.benchmark_group("sds");
    g.throughput(Throughput::Elements(1));
    let mut pair = Pair::new();
    for _ in 0..1_000 {
        pair.step();
    }
    g.bench_function("wrap_receive_1KiB", |bch| bch.iter(|| pair.step()));
    g.finish();
}

/// The first 10,000 messages of a fresh pair against the 10,000 after 100,000 of an aged one,
/// timed in interleaved blocks of 1,000 so that the machine's speed drifts (see below) hit both
/// alike.
fn history_scaling(_c: &mut Criterion) {
    const BLOCK: usize = 1_000;
    let time = |pair: &mut Pair, n: usize| {
        let t = Instant::now();
        for _ in 0..n {
            pair.step();
        }
        t.elapsed().as_secs_f64()
    };
    let mut aged = Pair::new();
    time(&mut aged, 100_000);
    let mut fresh = Pair::new();
    let (mut t_first, mut t_last) = (0.0, 0.0);
    for _ in 0..10_000 / BLOCK {
        t_first += time(&mut fresh, BLOCK);
        t_last += time(&mut aged, BLOCK);
    }
    let (first, last) = (10_000.0 / t_first, 10_000.0 / t_last);
    println!("sds/history_scaling: first 10k {:.0} msgs/s, 10k after 100k {:.0} msgs/s, ratio {:.2}", first, last, first / last);
}

/// This machine's speed drifts by up to 1.5x within minutes (a shared host), which moves the
/// criterion estimate above. Interleaved rounds of the engine and of its floor, Keccak-256 of the
/// same content (the message id every wrap must compute), show what the engine adds on top of
/// the floor independently of the drift: median and best of 15 rounds of 2,000 messages.
fn floor_calibration(_c: &mut Criterion) {
    use reliable_channel::wire::keccak::keccak256;
    const ROUNDS: usize = 15;
    const STEPS: u32 = 2_000;
    let mut pair = Pair::new();
    for _ in 0..1_000 {
        pair.step();
    }
    let content = vec![0x5au8; 1024 + 40];
    let (mut engine, mut floor) = (Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        let t = Instant::now();
        for _ in 0..STEPS {
            pair.step();
        }
        engine.push(t.elapsed().as_secs_f64() * 1e6 / f64::from(STEPS));
        let t = Instant::now();
        for i in 0..STEPS {
            std::hint::black_box(keccak256(&[b"alice1700000000000000000", &i.to_le_bytes(), &content]));
        }
        floor.push(t.elapsed().as_secs_f64() * 1e6 / f64::from(STEPS));
    }
    let med = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        (v[v.len() / 2], v[0])
    };
    let ((e_med, e_best), (f_med, f_best)) = (med(&mut engine), med(&mut floor));
    println!(
        "sds/floor_calibration: wrap+receive median {e_med:.2} us ({:.0} msgs/s), best {e_best:.2} us ({:.0} msgs/s); \
         Keccak-256 of the content alone median {f_med:.2} us, best {f_best:.2} us; engine minus floor {:.2} us",
        1e6 / e_med,
        1e6 / e_best,
        e_med - f_med
    );
}

criterion_group!(benches, wrap_receive, history_scaling, floor_calibration);
criterion_main!(benches);
