#!/usr/bin/env python3
"""Plot end-to-end throughput against payload size from `cargo bench --bench e2e`.

Reads the "sizes" array of target/bench/e2e.json ({payload_bytes, mb_per_s, msgs_per_s} per
size) and writes docs/throughput.png: MB/s of payload (left axis) and messages/s (right axis)
against the payload size (log scale), with the two throughput targets marked.

    pip install matplotlib
    cargo bench --bench e2e
    python3 benches/plot_throughput.py [--input target/bench/e2e.json] [--output docs/throughput.png]
"""

import argparse
import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

TARGET_MB_PER_S = 200.0  # 1 MiB messages
TARGET_MSGS_PER_S = 65_000.0  # 1 KiB messages
DISTURBED_CORES = 0.25  # as in benches/e2e.rs


def human(n):
    for unit, scale in (("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= scale:
            v = n / scale
            return f"{v:.0f} {unit}" if v == int(v) else f"{v:.1f} {unit}"
    return f"{n} B"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--input", default=os.path.join(ROOT, "target", "bench", "e2e.json"))
    ap.add_argument("--output", default=os.path.join(ROOT, "docs", "throughput.png"))
    args = ap.parse_args()

    try:
        with open(args.input) as f:
            data = json.load(f)
    except FileNotFoundError:
        sys.exit(f"{args.input} not found: run `cargo bench --bench e2e` first")
    sizes = sorted(data.get("sizes", []), key=lambda s: s["payload_bytes"])
    if not sizes:
        sys.exit(f"{args.input} has no \"sizes\" array (run the full bench, or E2E_ONLY=sizes)")

    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        sys.exit("matplotlib is required: pip install matplotlib")

    x = [s["payload_bytes"] for s in sizes]
    mb = [s["mb_per_s"] for s in sizes]
    msgs = [s["msgs_per_s"] for s in sizes]

    # e2e_details.json (written next to e2e.json) records, per run, the CPU other processes took:
    # points measured while the machine was busy with something else are marked.
    disturbed = set()
    details = os.path.join(os.path.dirname(os.path.abspath(args.input)), "e2e_details.json")
    try:
        with open(details) as f:
            for r in json.load(f).get("sizes_runs", []):
                if r.get("cpu_cores_other_processes", 0.0) > DISTURBED_CORES:
                    disturbed.add(r["payload_bytes"])
    except (OSError, ValueError):
        pass

    fig, ax = plt.subplots(figsize=(9, 5.2), dpi=110)
    ax.set_xscale("log", base=2)
    l1 = ax.plot(x, mb, "o-", color="tab:blue", lw=2, label="payload MB/s (left)")
    for xi, yi in zip(x, mb):
        mark = "*" if xi in disturbed else ""
        ax.annotate(f"{yi:.0f}{mark}", (xi, yi), textcoords="offset points", xytext=(0, 7), ha="center", fontsize=8, color="tab:blue")
    if disturbed:
        ax.plot([v for v in x if v in disturbed], [m for v, m in zip(x, mb) if v in disturbed], "o", mfc="white", mec="tab:red", ms=9, mew=1.5)
        ax.text(0.99, 0.02, "* red ring: measured while other processes used > %.2f cores" % DISTURBED_CORES,
                transform=ax.transAxes, ha="right", va="bottom", fontsize=7, color="tab:red")
    ax.axhline(TARGET_MB_PER_S, color="tab:blue", ls=":", lw=1)
    ax.text(x[0], TARGET_MB_PER_S, f" target {TARGET_MB_PER_S:.0f} MB/s (1 MiB messages)", va="bottom", fontsize=8, color="tab:blue")
    ax.set_xlabel("payload size per message")
    ax.set_ylabel("throughput, MB/s of payload (10^6 B/s)")
    ax.set_xticks(x)
    ax.set_xticklabels([human(v) for v in x], rotation=30)
    ax.set_ylim(0, max(max(mb), TARGET_MB_PER_S) * 1.2)
    ax.grid(True, which="major", alpha=0.3)

    ax2 = ax.twinx()
    ax2.set_yscale("log")
    l2 = ax2.plot(x, msgs, "s--", color="tab:orange", lw=1.5, label="messages/s (right, log)")
    ax2.axhline(TARGET_MSGS_PER_S, color="tab:orange", ls=":", lw=1)
    ax2.text(x[-1], TARGET_MSGS_PER_S, f"target {TARGET_MSGS_PER_S:,.0f} msgs/s (1 KiB) ", va="bottom", ha="right", fontsize=8, color="tab:orange")
    ax2.set_ylabel("messages/s")
    ax2.set_ylim(min(msgs) / 2, max(max(msgs), TARGET_MSGS_PER_S) * 3)

    lines = l1 + l2
    ax.legend(lines, [ln.get_label() for ln in lines], loc="upper left", fontsize=8)
    ax.set_title("reliable_channel end to end: send → RECEIVED, 2 managers, embedded network\n"
                 "(identity encryption, no loss, rate limit off; 100 KiB chunks, bloom filter only in messages that acknowledge)",
                 fontsize=9)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
    fig.savefig(args.output)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
