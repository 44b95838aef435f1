"""Write benchmarks/results/replay.md from the JSON of `automl bench replay`.

    automl bench replay benchmarks/banks/taskset_imdb_rnn.jsonl.gz --seeds 5 --trials 200 --jobs 2 \
        --json benchmarks/results/replay_taskset.json --plot benchmarks/results/replay_taskset.png
    python benchmarks/replay_report.py benchmarks/results/replay_taskset.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"


BUILTINS = ("median", "percentile25", "asha", "hyperband", "patient", "ray-asha", "ray-median")


def _targets(summary: dict) -> list[str]:
    """Issue 3's targets for ``signal``, checked against the best built-in: the one with the lowest
    median norm regret, then the highest kept-best rate, then the lowest cost."""
    have = [p for p in BUILTINS if p in summary and summary[p]["median_cost_ratio_vs_none"] is not None]
    sig, orc = summary.get("signal"), summary.get("oracle")
    if not have or sig is None:
        return []
    key = lambda p: (summary[p]["median_norm_regret"] if summary[p]["median_norm_regret"] is not None else float("inf"),  # noqa: E731
                     -summary[p]["kept_best_rate"], summary[p]["median_cost_ratio_vs_none"])
    best = min(have, key=key)
    b = summary[best]
    cost, ratio = sig["median_cost_ratio_vs_none"], sig["median_cost_ratio_vs_none"] / b["median_cost_ratio_vs_none"]
    ok = lambda c: "met" if c else "**not met**"  # noqa: E731
    rows = [
        ("kept best >= 90%", f"{sig['kept_best_rate']:.0%}", ok(sig["kept_best_rate"] >= 0.9)),
        (f"median norm regret <= {best}'s {b['median_norm_regret']:.3f}", f"{sig['median_norm_regret']:.3f}",
         ok(sig["median_norm_regret"] <= b["median_norm_regret"])),
        (f"cost <= 0.67x {best}'s {b['median_cost_ratio_vs_none']:.3f}", f"{cost:.3f} ({ratio:.2f}x)", ok(ratio <= 0.67)),
    ]
    tied = [p for p in have if summary[p]["median_norm_regret"] == b["median_norm_regret"]]
    cheapest = min(tied, key=lambda p: summary[p]["median_cost_ratio_vs_none"])
    if cheapest != best:  # the same regret for fewer epochs, though it loses the best run more often
        c = summary[cheapest]
        rows.append((f"(also) cost <= 0.67x {cheapest}'s {c['median_cost_ratio_vs_none']:.3f} (same regret, kept best "
                     f"{c['kept_best_rate']:.0%})", f"{cost:.3f} ({cost / c['median_cost_ratio_vs_none']:.2f}x)",
                     ok(cost <= 0.67 * c["median_cost_ratio_vs_none"])))
    if orc is not None:
        rows.append((f"cost <= 3x the oracle's {orc['median_cost_ratio_vs_none']:.3f}",
                     f"{cost / orc['median_cost_ratio_vs_none']:.1f}x", ok(cost <= 3 * orc["median_cost_ratio_vs_none"])))
    out = ["", f"## Targets for `signal` (issue 3); best built-in on regret: `{best}`", "",
           "| target | signal | |", "|---|---:|---|"]
    return out + [f"| {a} | {v} | {m} |" for a, v, m in rows]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("json_path")
    parser.add_argument("--out", default=str(RESULTS / "replay.md"))
    args = parser.parse_args()
    doc = json.loads(Path(args.json_path).read_text())
    meta, summary, tasks = doc.get("meta", {}), doc["summary"], doc["tasks"]
    pruners = list(summary)
    machine = f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}"
    banks = " ".join(Path(b).name for b in meta.get("banks", []))
    lines = [
        "# Replay benchmark",
        "",
        f"Command: `automl bench replay {banks} --seeds {meta.get('seeds')} --trials {meta.get('trials')} --jobs 2 "
        f"--json {Path(args.json_path).name} --plot {Path(args.json_path).with_suffix('.png').name}` "
        f"then `python benchmarks/replay_report.py {Path(args.json_path).name}"
        f"{'' if Path(args.out).name == 'replay.md' else ' --out ' + Path(args.out).name}`  ",
        f"Machine: {machine}; replay wall time {meta.get('wall_s')} s. Seeds 0..{meta.get('seeds', 1) - 1}; "
        f"{meta.get('trials')} runs drawn per task and seed, the same order for every pruner.",
        "",
        "Cost = epochs consumed, as a ratio to no pruning on the same task and seed. Regret is normalised by "
        "(best - median outcome) of the drawn runs. Kept best = the best drawn run was never stopped.",
        "",
        "## Summary (medians over tasks x seeds)",
        "",
        "| pruner | cost vs none | norm regret | kept best |",
        "|---|---:|---:|---:|",
    ]
    fmt = lambda v, f: "n/a" if v is None else format(v, f)  # noqa: E731
    for p in pruners:
        s = summary[p]
        lines.append(f"| {p} | {fmt(s['median_cost_ratio_vs_none'], '.3f')} | {fmt(s['median_norm_regret'], '.3f')} | "
                     f"{fmt(s['kept_best_rate'], '.0%')} |")
    lines += _targets(summary)
    lines += ["", "## Per task: cost vs none / kept best (over seeds)", ""]
    lines.append("| task | " + " | ".join(pruners) + " |")
    lines.append("|---|" + "---:|" * len(pruners))
    for task, per in tasks.items():
        base = {r["seed"]: r["cost_epochs"] for r in per.get("none", [])}
        cells = []
        for p in pruners:
            rows = per.get(p, [])
            ratio = np.median([r["cost_epochs"] / base[r["seed"]] for r in rows if base.get(r["seed"])])
            kept = np.mean([r["kept_best"] for r in rows])
            cells.append(f"{ratio:.2f} / {kept:.0%}")
        lines.append(f"| {task.split('/')[-1]} | " + " | ".join(cells) + " |")
    lines += ["", f"Plot: `{Path(args.json_path).with_suffix('.png').name}`."]
    Path(args.out).write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
