#!/usr/bin/env python3
"""Plot RLN-budget efficiency from `cargo bench --bench wire` (`make bench-wire`).

Reads target/bench/wire.json and writes docs/wire_efficiency.png: WakuMessages published per
delivered message against the loss rate, one panel per number of participants, one line per pace
(median over the seeds, each seed a small dot beside it), against the ideal for the same loss
(transmit until every receiver has it, acknowledgements free) and the goal of issue #10; below,
the p99 time to delivery at the RLN pace (log scale). With
`--before` (e.g. the figures of `WIRE_STORE=0 make bench-wire`, the plain timing, written to
target/bench/wire_variant.json) their medians are drawn as thin dashed lines for comparison.

    pip install matplotlib
    make bench-wire
    python3 benches/plot_wire.py [--input target/bench/wire.json] [--output docs/wire_efficiency.png]
                                 [--before target/bench/wire_variant.json]
"""

import argparse
import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

PACE_STYLE = {"rln": ("tab:blue", "o"), "chat": ("tab:orange", "s")}


def pace_label(cell):
    return f"{cell['pace']} pace: {cell['messages_per_participant']} messages, one per {cell['interval_ms'] / 1000:g} s"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--input", default=os.path.join(ROOT, "target", "bench", "wire.json"))
    ap.add_argument("--output", default=os.path.join(ROOT, "docs", "wire_efficiency.png"))
    ap.add_argument("--before", help="another wire.json whose medians are drawn as thin dashed lines")
    args = ap.parse_args()
    before_cells, before_label = [], None
    if args.before:
        with open(args.before) as f:
            before = json.load(f)
        before_cells = before.get("cells", [])
        bc = before.get("config", {})
        before_label = "channels unaware of the store" if bc.get("channels_know_store") is False else (bc.get("channel_config_json") or "before")

    try:
        with open(args.input) as f:
            data = json.load(f)
    except FileNotFoundError:
        sys.exit(f"{args.input} not found: run `make bench-wire` first")
    cells = data.get("cells", [])
    if not cells:
        sys.exit(f"{args.input} has no cells")

    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        sys.exit("matplotlib is required: pip install matplotlib")

    config = data.get("config", {})
    goal = config.get("goal_wm_per_delivered")
    participants = sorted({c["participants"] for c in cells})
    paces = sorted({c["pace"] for c in cells}, key=lambda p: p != "rln")
    ymax = max([c["wm_per_delivered_max"] for c in cells] + [c["ideal_wm_per_delivered"] for c in cells]
               + [c["wm_per_delivered"] for c in before_cells]) * 1.08

    fig, axes = plt.subplots(2, len(participants), figsize=(5.2 * len(participants), 8.4), dpi=110, sharey="row", squeeze=False,
                             gridspec_kw={"height_ratios": [3, 2]})
    for ax, n in zip(axes[0], participants):
        mine = [c for c in cells if c["participants"] == n]
        ideal = sorted({(c["loss"], c["ideal_wm_per_delivered"]) for c in mine})
        ax.plot([100 * x for x, _ in ideal], [y for _, y in ideal], "k--", lw=1.5, label="ideal: E[max of n geometric], acks free")
        if goal:
            ax.axhline(goal, color="tab:green", ls=":", lw=1.2, label=f"goal ≤ {goal:g} (issue #10)")
        for pace in paces:
            pts = sorted((c for c in mine if c["pace"] == pace), key=lambda c: c["loss"])
            if not pts:
                continue
            color, marker = PACE_STYLE.get(pace, ("tab:gray", "^"))
            x = [100 * c["loss"] for c in pts]
            # Every seed as a small dot beside its median (the chat pace is bimodal: see BENCHMARKS.md).
            offset = -0.6 if pace == "rln" else 0.6
            sx = [100 * c["loss"] + offset for c in pts for _ in c.get("runs", [])]
            sy = [r["wm_per_delivered"] for c in pts for r in c.get("runs", [])]
            ax.plot(sx, sy, marker=marker, color=color, ls="none", ms=3, alpha=0.35)
            y = [c["wm_per_delivered"] for c in pts]
            ax.plot(x, y, marker=marker, color=color, lw=2, label=pace_label(pts[0]))
            old = sorted((c for c in before_cells if c["participants"] == n and c["pace"] == pace), key=lambda c: c["loss"])
            if old:
                ax.plot([100 * c["loss"] for c in old], [c["wm_per_delivered"] for c in old], marker=marker, color=color, lw=1, ls="--",
                        alpha=0.6, ms=3, label=f"{pace} pace, {before_label}")
            for xi, yi, c in zip(x, y, pts):
                lost = c["delivered"] < c["expected"]
                ax.annotate(f"{yi:.2f}{'*' if lost else ''}", (xi, yi), textcoords="offset points", xytext=(0, 7), ha="center", fontsize=7, color=color)
        ax.set_title(f"{n} participants ({n - 1} receiver{'s' if n > 2 else ''} per message)", fontsize=10)
        ax.set_xlabel("loss per copy (%)")
        ax.set_xticks(sorted({100 * c["loss"] for c in mine}))
        ax.set_ylim(0, ymax)
        ax.grid(True, alpha=0.3)
    axes[0][0].set_ylabel("WakuMessages published per delivered message")
    axes[0][0].legend(loc="upper left", fontsize=7)
    # p99 time to delivery at the RLN pace (the latency the store-aware timing trades, issue #10).
    color, marker = PACE_STYLE["rln"]
    for ax, n in zip(axes[1], participants):
        pts = sorted((c for c in cells if c["participants"] == n and c["pace"] == "rln"), key=lambda c: c["loss"])
        old = sorted((c for c in before_cells if c["participants"] == n and c["pace"] == "rln"), key=lambda c: c["loss"])
        if pts:
            x = [100 * c["loss"] for c in pts]
            y = [max(c["latency_p99_ms"], 1) / 1000 for c in pts]
            ax.plot(x, y, marker=marker, color=color, lw=2, label="rln pace, p99")
            for xi, yi in zip(x, y):
                ax.annotate(f"{yi:.1f}", (xi, yi), textcoords="offset points", xytext=(0, 7), ha="center", fontsize=7, color=color)
        if old:
            ax.plot([100 * c["loss"] for c in old], [max(c["latency_p99_ms"], 1) / 1000 for c in old], marker=marker, color=color, lw=1,
                    ls="--", alpha=0.6, ms=3, label=f"rln pace, p99, {before_label}")
        ax.set_yscale("log")
        ax.set_xlabel("loss per copy (%)")
        ax.set_xticks(sorted({100 * c["loss"] for c in cells if c["participants"] == n}))
        ax.grid(True, which="both", alpha=0.3)
    axes[1][0].set_ylabel("p99 time to delivery (s), RLN pace")
    axes[1][0].legend(loc="upper left", fontsize=7)
    seeds = config.get("seeds_per_cell", "?")
    variant = config.get("channel_config_json")
    if config.get("channels_know_store") is not None:
        known = "channels know of the store" if config["channels_know_store"] else "channels unaware of the store"
        variant = f"{variant}, {known}" if variant else known
    title = (f"reliable_channel, RLN-budget efficiency on a virtual clock (benches/wire.rs): default config{' + ' + variant if variant else ''}, "
             f"{config.get('payload_bytes', '?')} B payloads\n"
             f"line: median of {seeds} seeds (dots: each seed); everything published until quiescence counts; "
             "store fetches free; * = a message missed a receiver")
    fig.suptitle(title, fontsize=8.5)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
    fig.savefig(args.output)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
