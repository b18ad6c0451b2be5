//! Aggregation of `benches/wire.rs`'s runs into per-cell figures, and the stdout tables.

use std::fmt::Write as _;

use serde_json::{json, Value};

use super::{ideal, Cell, RunResult, BUDGET, PAYLOAD_BYTES};

fn median(v: &mut [f64]) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let m = v.len() / 2;
    if v.len() % 2 == 1 {
        v[m]
    } else {
        (v[m - 1] + v[m]) / 2.0
    }
}

/// Nearest-rank percentile of sorted values.
fn percentile(sorted: &[u64], q: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 {
        f64::NAN
    } else {
        a as f64 / b as f64
    }
}

/// One cell's figures: per-seed ratios as medians (with min and max), counts as sums, kinds per
/// delivered message pooled over the seeds, latency percentiles pooled over every reception.
pub fn summarize(cell: Cell, runs: &[RunResult]) -> Value {
    let per_seed = |f: &dyn Fn(&RunResult) -> f64| {
        let mut v: Vec<f64> = runs.iter().map(f).collect();
        let med = median(&mut v);
        (med, v.first().copied().unwrap_or(f64::NAN), v.last().copied().unwrap_or(f64::NAN))
    };
    let wm = per_seed(&|r| ratio(r.published, r.delivered));
    let bytes = per_seed(&|r| ratio(r.bytes_published, r.payload_bytes_delivered));
    let mut budget: Vec<f64> =
        runs.iter().flat_map(|r| r.delivered_by.iter().zip(&r.cost_by).map(|(&d, &c)| BUDGET * ratio(d, c)).collect::<Vec<_>>()).collect();
    let budget_median = median(&mut budget);
    let sum = |f: &dyn Fn(&RunResult) -> u64| runs.iter().map(f).sum::<u64>();
    let delivered = sum(&|r| r.delivered);
    let per_delivered = |x: u64| ratio(x, delivered);
    let mut lat: Vec<u64> = runs.iter().flat_map(|r| r.latencies_ms.iter().copied()).collect();
    lat.sort_unstable();
    let ideal = ideal(cell.n - 1, cell.loss);
    json!({
        "participants": cell.n,
        "pace": cell.pace.name,
        "messages_per_participant": cell.pace.messages,
        "interval_ms": cell.pace.interval_ms,
        "loss": cell.loss,
        "seeds": runs.len(),
        "ideal_wm_per_delivered": ideal,
        "ideal_delivered_per_budget": BUDGET / ideal,
        "wm_per_delivered": wm.0,
        "wm_per_delivered_min": wm.1,
        "wm_per_delivered_max": wm.2,
        "delivered_per_budget": budget_median,
        "bytes_per_payload_byte": bytes.0,
        "latency_p50_ms": percentile(&lat, 0.50),
        "latency_p99_ms": percentile(&lat, 0.99),
        "latency_max_ms": lat.last().copied().unwrap_or(0),
        "per_delivered": {
            "all": per_delivered(sum(&|r| r.published)),
            "content": per_delivered(sum(&|r| r.content)),
            "retransmission": per_delivered(sum(&|r| r.retransmissions)),
            "sync": per_delivered(sum(&|r| r.syncs)),
            "rebroadcast": per_delivered(sum(&|r| r.rebroadcasts)),
            "repair_answer": per_delivered(sum(&|r| r.repairs)),
            "tail": per_delivered(sum(&|r| r.tail)),
            "store_fetch": per_delivered(sum(&|r| r.store_fetches)),
        },
        "sent": sum(&|r| r.sent),
        "expected": runs.len() * cell.n * cell.pace.messages,
        "delivered": delivered,
        "missing_receptions": sum(&|r| r.missing),
        "duplicate_receptions": sum(&|r| r.duplicates),
        "wrong_payloads": sum(&|r| r.wrong_payload),
        "send_errors": sum(&|r| r.send_errors),
        "lost_events": sum(&|r| r.lost_events),
        "rate_limit_dropped": sum(&|r| r.rate_limit_dropped),
        "published": sum(&|r| r.published),
        "bytes_published": sum(&|r| r.bytes_published),
        "quiescent_runs": runs.iter().filter(|r| r.quiescent).count(),
        "virtual_s_median": median(&mut runs.iter().map(|r| r.virtual_ms as f64 / 1e3).collect::<Vec<_>>()),
        "runs": runs.iter().map(|r| json!({
            "seed": r.seed,
            "wm_per_delivered": ratio(r.published, r.delivered),
            "published": r.published,
            "delivered": r.delivered,
            "retransmissions": r.retransmissions,
            "syncs": r.syncs,
            "send_errors": r.send_errors,
            "virtual_s": r.virtual_ms as f64 / 1e3,
        })).collect::<Vec<_>>(),
    })
}

fn f(v: &Value, key: &str) -> f64 {
    v[key].as_f64().unwrap_or(f64::NAN)
}

fn u(v: &Value, key: &str) -> u64 {
    v[key].as_u64().unwrap_or(0)
}

/// The stdout table; `!` marks a cell where a message missed a receiver, was received twice or
/// altered.
pub fn table(cells: &[Value], seeds: u64) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "RLN-budget efficiency: {PAYLOAD_BYTES} B payloads, {seeds} seeds per cell. WM/msg, /100 and B/B: median over seeds (WM/msg also min-max);\n\
         kinds: WakuMessages per delivered message, pooled over the seeds ((rep) = repair answers, counted among the syncs too;\n\
         tail = published after the last message reached everyone; store = store fetches, free); latency percentiles pooled.\n"
    );
    let _ = writeln!(
        s,
        "{:>2} {:>4} {:>4} | {:>12} {:>3} {:>4} | {:>6} {:>11} {:>5} | {:>5} {:>5} {:>5} {:>5} {:>5} {:>5} {:>5} | {:>5} {:>5} | {:>5} | {:>6} {:>6} | {:>5}",
        "n", "pace", "loss", "delivered", "dup", "err", "WM/msg", "(min-max)", "ideal", "cont", "retx", "sync", "rebr", "(rep)", "tail", "store", "/100", "ideal", "B/B",
        "p50 s", "p99 s", "quiet"
    );
    for c in cells {
        let pd = &c["per_delivered"];
        let ok = u(c, "delivered") == u(c, "expected") && u(c, "duplicate_receptions") == 0 && u(c, "wrong_payloads") == 0;
        let delivered = format!("{}/{}{}", u(c, "delivered"), u(c, "expected"), if ok { " " } else { "!" });
        let range = format!("({:.2}-{:.2})", f(c, "wm_per_delivered_min"), f(c, "wm_per_delivered_max"));
        let _ = writeln!(
            s,
            "{:>2} {:>4} {:>3.0}% | {:>12} {:>3} {:>4} | {:>6.2} {:>11} {:>5.2} | {:>5.2} {:>5.2} {:>5.2} {:>5.2} {:>5.2} {:>5.2} {:>5.2} | {:>5.1} {:>5.1} | {:>5.0} | {:>6.1} {:>6.1} | {:>2}/{:<2}",
            u(c, "participants"),
            c["pace"].as_str().unwrap_or(""),
            f(c, "loss") * 100.0,
            delivered,
            u(c, "duplicate_receptions"),
            u(c, "send_errors"),
            f(c, "wm_per_delivered"),
            range,
            f(c, "ideal_wm_per_delivered"),
            f(pd, "content"),
            f(pd, "retransmission"),
            f(pd, "sync"),
            f(pd, "rebroadcast"),
            f(pd, "repair_answer"),
            f(pd, "tail"),
            f(pd, "store_fetch"),
            f(c, "delivered_per_budget"),
            f(c, "ideal_delivered_per_budget"),
            f(c, "bytes_per_payload_byte"),
            f(c, "latency_p50_ms") / 1e3,
            f(c, "latency_p99_ms") / 1e3,
            u(c, "quiescent_runs"),
            u(c, "seeds"),
        );
    }
    s
}

/// The two sides of a mixed channel (`WIRE_MIXED`): participant 0, and the others pooled. Per
/// side, over the seeds: WakuMessages it published (all, retransmissions and rebroadcasts, syncs)
/// per own message delivered, its sends ended SEND_ERROR; time to delivery from participant 0 to
/// the others, from the others to participant 0, and among the others.
pub fn mixed_summary(cell: Cell, runs: &[RunResult]) -> Value {
    let side = |first: bool| {
        let of = |v: &dyn Fn(&RunResult) -> &Vec<u64>| -> u64 {
            runs.iter().map(|r| (0..cell.n).filter(|&p| (p == 0) == first).map(|p| v(r)[p]).sum::<u64>()).sum()
        };
        let delivered = of(&|r| &r.delivered_by);
        json!({
            "delivered": delivered,
            "wm_per_own_delivered": ratio(of(&|r| &r.published_by), delivered),
            "retx_per_own_delivered": ratio(of(&|r| &r.retx_by), delivered),
            "sync_per_own_delivered": ratio(of(&|r| &r.syncs_by), delivered),
            "send_errors": of(&|r| &r.send_errors_by),
        })
    };
    let latency = |keep: &dyn Fn(usize, usize) -> bool| {
        let mut lat: Vec<u64> = runs
            .iter()
            .flat_map(|r| r.latencies_ms.iter().zip(&r.latency_pairs).filter(|(_, &(from, to))| keep(from, to)).map(|(&l, _)| l))
            .collect();
        lat.sort_unstable();
        json!({ "receptions": lat.len(), "p50_ms": percentile(&lat, 0.50), "p99_ms": percentile(&lat, 0.99) })
    };
    json!({
        "participant0": side(true),
        "others": side(false),
        "latency_from0": latency(&|from, _| from == 0),
        "latency_to0": latency(&|_, to| to == 0),
        "latency_among_others": latency(&|from, to| from != 0 && to != 0),
    })
}

/// The per-side table of a mixed channel (see [`mixed_summary`]); `first` names participant 0.
pub fn mixed_table(cells: &[Value], first: &str) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "Per side: {first} (participant 0) and the others pooled: WakuMessages published per own message delivered (all, retx+rebr, sync),\n\
         send errors; p50/p99 time to delivery from {first}, to {first}, among the others (s).\n"
    );
    let _ = writeln!(
        s,
        "{:>2} {:>4} {:>4} | {:>5} {:>5} {:>5} {:>4} | {:>5} {:>5} {:>5} {:>4} | {:>5} {:>5} | {:>5} {:>5} | {:>5} {:>5}",
        "n", "pace", "loss", "WM0", "retx0", "sync0", "err0", "WMo", "retxo", "synco", "erro", "p50fr", "p99fr", "p50to", "p99to", "p50oo", "p99oo"
    );
    for c in cells {
        let m = &c["mixed"];
        let (a, o) = (&m["participant0"], &m["others"]);
        let secs = |v: &Value, key: &str| if u(v, "receptions") == 0 { f64::NAN } else { f(v, key) / 1e3 };
        let _ = writeln!(
            s,
            "{:>2} {:>4} {:>3.0}% | {:>5.2} {:>5.2} {:>5.2} {:>4} | {:>5.2} {:>5.2} {:>5.2} {:>4} | {:>5.1} {:>5.1} | {:>5.1} {:>5.1} | {:>5.1} {:>5.1}",
            u(c, "participants"),
            c["pace"].as_str().unwrap_or(""),
            f(c, "loss") * 100.0,
            f(a, "wm_per_own_delivered"),
            f(a, "retx_per_own_delivered"),
            f(a, "sync_per_own_delivered"),
            u(a, "send_errors"),
            f(o, "wm_per_own_delivered"),
            f(o, "retx_per_own_delivered"),
            f(o, "sync_per_own_delivered"),
            u(o, "send_errors"),
            secs(&m["latency_from0"], "p50_ms"),
            secs(&m["latency_from0"], "p99_ms"),
            secs(&m["latency_to0"], "p50_ms"),
            secs(&m["latency_to0"], "p99_ms"),
            secs(&m["latency_among_others"], "p50_ms"),
            secs(&m["latency_among_others"], "p99_ms"),
        );
    }
    s
}
