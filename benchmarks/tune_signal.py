"""Choose the signal pruner's policy by replay, on tasks split into a tuning and a held-out half.

Every candidate ``automl.Policy`` is replayed (through ``SignalScheduler``, which decides exactly
as ``SignalPruner``) on the tuning tasks; the candidates that keep the best run at least
``--keep`` of the time are ranked by median cost, and the chosen one is then reported on the
held-out tasks it never saw, beside the built-ins on the same tasks and seeds.

    python benchmarks/tune_signal.py --bank ../shared/data/taskset_imdb_rnn.jsonl.gz \
        benchmarks/banks/{digits_mlp,mnist5k_mlp,mnist1d_cnn}.jsonl.gz --seeds 3 --trials 200

Writes benchmarks/results/tune_signal.md and .json.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from automl import Policy
from automl.bank import read_bank, runs_by_task
from automl.replay import draw_order, replay, replay_task

RESULTS = Path(__file__).resolve().parent / "results"

# The rank cut, the forecast's band and the first epoch it (and the median rule) may prune, over the
# contender and noise guards chosen by the previous grid (min_epochs x protect_top x noise_margin).
GRID = [
    {"rank_cut": cut, "min_epochs": first, "fallback_warmup_epochs": first, "band": band}
    for cut in (0.0, 0.3, 0.4, 0.5)
    for first in (3, 5)
    for band in (0.95, 0.8)
]

BARE = {"protect_top": 0.0, "noise_margin": 0.0, "rank_cut": 0.0}


def _score(policy_kwargs: dict, tasks: dict, seeds: int, trials: int) -> dict:
    """Cost ratio vs no pruning, kept-best rate and median norm regret of one policy over tasks x seeds."""
    policy = Policy(**policy_kwargs)
    ratios, norms, kept = [], [], []
    for task, runs in tasks.items():
        for seed in range(seeds):
            r = replay_task(runs, "signal-ray", seed=seed, trials=trials, policy=policy)
            full = sum(runs[i].budget for i in draw_order(task, len(runs), seed, trials))  # what `none` costs
            ratios.append(r.cost_epochs / full)
            norms.append(np.inf if r.norm_regret is None else r.norm_regret)
            kept.append(r.kept_best)
    return {
        "policy": policy_kwargs,
        "median_cost_ratio_vs_none": float(np.median(ratios)),
        "median_norm_regret": float(np.median(norms)),
        "kept_best_rate": float(np.mean(kept)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bank", nargs="+", default=[str(Path(__file__).resolve().parents[2] / "shared" / "data" / "taskset_imdb_rnn.jsonl.gz")],
                        help="one or more banks; their tasks are pooled, then split alternately into tuning and held-out")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--trials", type=int, default=200)
    parser.add_argument("--keep", type=float, default=0.9, help="required kept-best rate on the tuning tasks")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--grid", default=None, help="JSON: an object of Policy fields to lists of values (their "
                        "product), or a list of Policy field objects (default: GRID)")
    args = parser.parse_args()

    tasks = {}
    for bank in args.bank:
        tasks.update(runs_by_task(read_bank(bank)))
    names = sorted(tasks)
    tune_tasks = {t: tasks[t] for t in names[0::2]}
    held_out = {t: tasks[t] for t in names[1::2]}
    space = json.loads(args.grid) if args.grid else GRID
    if isinstance(space, dict):
        grid = [dict(zip(space, values)) for values in itertools.product(*space.values())]
    elif isinstance(space, list) and all(isinstance(p, dict) for p in space):
        grid = space
    else:
        raise SystemExit(f"--grid must be a JSON object of lists or a list of objects, but got {args.grid!r}.")
    for p in grid:
        Policy(**p)  # a bad field or value fails here, naming it, before any replay
    start = time.perf_counter()
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        scores = list(pool.map(_score, grid, [tune_tasks] * len(grid), [args.seeds] * len(grid), [args.trials] * len(grid)))
    ok = [s for s in scores if s["kept_best_rate"] >= args.keep]
    if ok:  # the cheapest that keeps the best often enough
        chosen = min(ok, key=lambda s: (s["median_cost_ratio_vs_none"], s["median_norm_regret"]))
    else:  # none does: the one that keeps it most often, then the cheapest
        chosen = min(scores, key=lambda s: (-s["kept_best_rate"], s["median_cost_ratio_vs_none"]))
    held = _score(chosen["policy"], held_out, args.seeds, args.trials)
    default = _score({}, held_out, args.seeds, args.trials)
    # The forecast alone, as it was before the contender and noise guards and the rank cut: what they buy.
    bare = _score(BARE, held_out, args.seeds, args.trials)
    builtins = replay(held_out, ["none", "median", "asha", "hyperband", "patient", "ray-median", "oracle"],
                      seeds=args.seeds, trials=args.trials, jobs=args.jobs)["summary"]
    wall = time.perf_counter() - start

    RESULTS.mkdir(parents=True, exist_ok=True)
    doc = {"args": vars(args), "grid": space, "scores": scores, "chosen": chosen, "held_out": held,
           "default_on_held_out": default, "bare_on_held_out": bare, "builtins_on_held_out": builtins, "wall_s": round(wall, 1)}
    (RESULTS / "tune_signal.json").write_text(json.dumps(doc, indent=1))
    machine = f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}"
    top = sorted(scores, key=lambda s: (-s["kept_best_rate"], s["median_cost_ratio_vs_none"]))[:10]
    lines = [
        "# Tuning the signal pruner's policy by replay",
        "",
        f"Command: `python benchmarks/tune_signal.py --bank {' '.join(Path(b).name for b in args.bank)} --seeds {args.seeds} "
        f"--trials {args.trials} --keep {args.keep}`  ",
        f"Machine: {machine}; {wall:.0f} s. Seeds 0..{args.seeds - 1}; {args.trials} runs drawn per task and seed.",
        "",
        f"Tuning tasks ({len(tune_tasks)}): {', '.join(t.split('/')[-1] for t in tune_tasks)}.  ",
        f"Held-out tasks ({len(held_out)}): {', '.join(t.split('/')[-1] for t in held_out)}.",
        "",
        f"Grid: {len(grid)} policies: {json.dumps(space) if isinstance(space, dict) else ', '.join(f'`{json.dumps(p)}`' for p in grid)}. Rule: among policies keeping the best run in "
        f">= {args.keep:.0%} of tuning task-seeds, the cheapest; if none does, the one keeping it most often.",
        "",
        "## Best ten on the tuning tasks",
        "",
        "| policy | cost vs none | kept best | norm regret |",
        "|---|---:|---:|---:|",
    ]
    for s in top:
        lines.append(f"| `{json.dumps(s['policy'])}` | {s['median_cost_ratio_vs_none']:.3f} | {s['kept_best_rate']:.0%} | {s['median_norm_regret']:.3f} |")
    lines += [
        "",
        "## On the held-out tasks",
        "",
        "| pruner | cost vs none | kept best | norm regret |",
        "|---|---:|---:|---:|",
        f"| signal, chosen policy | {held['median_cost_ratio_vs_none']:.3f} | {held['kept_best_rate']:.0%} | {held['median_norm_regret']:.3f} |",
        f"| signal, default `Policy()` | {default['median_cost_ratio_vs_none']:.3f} | {default['kept_best_rate']:.0%} | {default['median_norm_regret']:.3f} |",
        f"| signal, the forecast alone (`{json.dumps(BARE)}`) | {bare['median_cost_ratio_vs_none']:.3f} | "
        f"{bare['kept_best_rate']:.0%} | {bare['median_norm_regret']:.3f} |",
    ]
    for p, s in builtins.items():
        lines.append(f"| {p} | {s['median_cost_ratio_vs_none']:.3f} | {s['kept_best_rate']:.0%} | {s['median_norm_regret']:.3f} |")
    lines += ["", f"Chosen policy: `{json.dumps(chosen['policy'])}`."]
    (RESULTS / "tune_signal.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
