"""Write benchmarks/results/replay.md from the JSON of `automl bench replay`.

    automl bench replay ../shared/data/taskset_imdb_rnn.jsonl.gz --seeds 5 --trials 200 --jobs 2 \
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
        f"then `python benchmarks/replay_report.py {Path(args.json_path).name}`  ",
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
