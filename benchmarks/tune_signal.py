"""Choose the signal pruner's policy by replay, on tasks split into a tuning and a held-out half.

Every candidate ``automl.Policy`` is replayed (through ``SignalScheduler``, which decides exactly
as ``SignalPruner``) on the tuning tasks, in studies of ``--trials`` runs and in small studies of
``--small-trials`` runs (most searches are small, and a policy that prunes early on the word of a few
finished trials loses the best run there first); the candidates that keep the best run at least
``--keep`` of the time at both sizes are ranked by median cost at ``--trials``, and the chosen one is
then reported on the held-out tasks it never saw, at both sizes, beside the built-ins on the same
tasks and seeds.

    python benchmarks/tune_signal.py --bank benchmarks/banks/taskset_imdb_rnn.jsonl.gz \
        benchmarks/banks/{digits_mlp,mnist5k_mlp,mnist1d_cnn}.jsonl.gz --seeds 5 --trials 200 \
        --small-trials 60 --unseen 'benchmarks/banks/dynamics/*.jsonl.gz' 'benchmarks/banks/capacitance/*_head.jsonl.gz'

``--unseen`` banks (other tasks, other recordings) only report the chosen policy beside the default.

Writes benchmarks/results/tune_signal.md and .json.
"""

from __future__ import annotations

import argparse
import glob
import itertools
import json
import os
import platform
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from automl import Policy
from automl.bench.bank import read_bank, runs_by_task
from automl.bench.replay import draw_order, replay, replay_task

RESULTS = Path(__file__).resolve().parent / "results"
BANKS = Path(__file__).resolve().parent / "banks"


def bank_path(b: str) -> str:
    """``b`` as given, or the bundled bank of that name (the reports' command lines name banks by file name)."""
    return b if Path(b).exists() else str(BANKS / b)

# The rank cut, read as a plain fraction or by a binomial test (rank_confidence), the forecast's
# band and how many finished trials the forecast (and the plain rank cut) waits for; over the
# contender and noise guards of the first grid and the forecast's first epoch (5) of the second
# (min_epochs 3 lost the eventual best run most often there).
GRID = [{"rank_cut": 0.0, "band": band, "min_finished": wait} for band in (0.95, 0.8) for wait in (2, 3, 5)] + [
    {"rank_cut": cut, "rank_confidence": conf, "band": band, "min_finished": wait}
    for cut in (0.3, 0.4, 0.5)
    for conf in (0.0, 0.9)
    for band in (0.95, 0.8)
    for wait in (2, 3, 5)
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
    parser.add_argument("--bank", nargs="+", default=[str(Path(__file__).resolve().parent / "banks" / "taskset_imdb_rnn.jsonl.gz")],
                        help="one or more banks; their tasks are pooled, then split alternately into tuning and held-out")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--trials", type=int, default=200)
    parser.add_argument("--small-trials", type=int, default=60,
                        help="the size of the small studies a policy must also keep the best run in (0: skip them)")
    parser.add_argument("--unseen", nargs="*", default=[], metavar="GLOB",
                        help="banks (a glob each, one set per glob) that only report the chosen policy beside the "
                        "default, in studies of --small-trials runs; they never take part in the choice")
    parser.add_argument("--keep", type=float, default=0.9, help="required kept-best rate on the tuning tasks")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--name", default="tune_signal",
                        help="write benchmarks/results/NAME.md and NAME.json (another name keeps the published record)")
    parser.add_argument("--grid", default=None, help="JSON: an object of Policy fields to lists of values (their "
                        "product), or a list of Policy field objects (default: GRID)")
    args = parser.parse_args()
    args.bank = [bank_path(b) for b in args.bank]

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
    if args.small_trials < 0:
        raise SystemExit(f"--small-trials must be >= 0 (0: no small studies), but got {args.small_trials}.")
    unseen_tasks: dict[str, dict] = {}
    for pattern in args.unseen:
        banks = sorted(glob.glob(pattern))
        if not banks:
            raise SystemExit(f"--unseen {pattern!r} matches no bank file.")
        unseen_tasks[pattern] = {}
        for bank in banks:
            unseen_tasks[pattern].update(runs_by_task(read_bank(bank)))
    start = time.perf_counter()
    sizes = [args.trials] + ([args.small_trials] if args.small_trials else [])
    n = len(grid)
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        scores = list(pool.map(_score, grid, [tune_tasks] * n, [args.seeds] * n, [args.trials] * n))
        small = list(pool.map(_score, grid, [tune_tasks] * n, [args.seeds] * n, [args.small_trials] * n)) if args.small_trials else []
    for s, sm in zip(scores, small):
        s["small"] = {k: v for k, v in sm.items() if k != "policy"}
    # A policy's worst kept-best rate over the study sizes is what the rule reads.
    for s in scores:
        s["kept_best_worst"] = min(s["kept_best_rate"], s.get("small", s)["kept_best_rate"])
    ok = [s for s in scores if s["kept_best_worst"] >= args.keep]
    if ok:  # the cheapest that keeps the best often enough at every size
        chosen = min(ok, key=lambda s: (s["median_cost_ratio_vs_none"], s["median_norm_regret"]))
    else:  # none does: the one that keeps it most often, then the cheapest
        chosen = min(scores, key=lambda s: (-s["kept_best_worst"], s["median_cost_ratio_vs_none"]))
    held: dict[int, dict] = {}
    for size in sizes:
        held[size] = {
            "chosen": _score(chosen["policy"], held_out, args.seeds, size),
            "default": _score({}, held_out, args.seeds, size),
            # The forecast alone, as it was before the contender and noise guards and the rank cut: what they buy.
            "bare": _score(BARE, held_out, args.seeds, size),
            "builtins": replay(held_out, ["none", "median", "asha", "hyperband", "patient", "ray-median", "oracle"],
                               seeds=args.seeds, trials=size, jobs=args.jobs)["summary"],
        }
    unseen: dict[str, dict] = {}
    for pattern, group in unseen_tasks.items():
        size = args.small_trials or args.trials
        unseen[pattern] = {"tasks": len(group), "trials": size, "chosen": _score(chosen["policy"], group, args.seeds, size),
                           "default": _score({}, group, args.seeds, size)}
    wall = time.perf_counter() - start

    RESULTS.mkdir(parents=True, exist_ok=True)
    doc = {"args": vars(args), "grid": space, "scores": scores, "chosen": chosen,
           "held_out": {str(size): h for size, h in held.items()}, "unseen": unseen, "wall_s": round(wall, 1)}
    (RESULTS / f"{args.name}.json").write_text(json.dumps(doc, indent=1))
    machine = f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}"
    top = sorted(scores, key=lambda s: (-s["kept_best_worst"], s["median_cost_ratio_vs_none"]))[:10]
    small_note = f" and in small studies of {args.small_trials} runs" if args.small_trials else ""
    lines = [
        "# Tuning the signal pruner's policy by replay",
        "",
        f"Command: `python benchmarks/tune_signal.py --bank {' '.join(Path(b).name for b in args.bank)} --seeds {args.seeds} "
        f"--trials {args.trials} --small-trials {args.small_trials} --keep {args.keep}"
        + (f" --unseen {' '.join(repr(u) for u in args.unseen)}" if args.unseen else "")
        + (f" --grid '{args.grid}' --name {args.name}" if args.name != "tune_signal" else "") + "`  ",
        f"Machine: {machine}; {wall:.0f} s. Seeds 0..{args.seeds - 1}; {args.trials} runs drawn per task and seed{small_note}.",
        "",
        f"Tuning tasks ({len(tune_tasks)}): {', '.join(t.split('/')[-1] for t in tune_tasks)}.  ",
        f"Held-out tasks ({len(held_out)}): {', '.join(t.split('/')[-1] for t in held_out)}.",
        "",
        f"Grid: {len(grid)} policies: {json.dumps(space) if isinstance(space, dict) else ', '.join(f'`{json.dumps(p)}`' for p in grid)}. Rule: among policies keeping the best run in "
        f">= {args.keep:.0%} of tuning task-seeds at {' and at '.join(map(str, sizes))} runs, the cheapest at {args.trials}; "
        "if none does, the one keeping it most often.",
        "",
        "## Best ten on the tuning tasks",
        "",
        "| policy | " + " | ".join(f"cost, {z} runs | kept best, {z} runs" for z in sizes) + " | norm regret |",
        "|---|" + "---:|---:|" * len(sizes) + "---:|",
    ]
    for s in top:
        cells = [s] + ([s["small"]] if args.small_trials else [])
        lines.append(f"| `{json.dumps(s['policy'])}` | " + " | ".join(f"{c['median_cost_ratio_vs_none']:.3f} | {c['kept_best_rate']:.0%}" for c in cells)
                     + f" | {s['median_norm_regret']:.3f} |")
    for size, h in held.items():
        rows = [("signal, chosen policy", h["chosen"]), ("signal, default `Policy()`", h["default"]),
                (f"signal, the forecast alone (`{json.dumps(BARE)}`)", h["bare"]), *h["builtins"].items()]
        lines += ["", f"## On the held-out tasks, {size} runs per study", "",
                  "| pruner | cost vs none | kept best | norm regret |", "|---|---:|---:|---:|"]
        lines += [f"| {name} | {r['median_cost_ratio_vs_none']:.3f} | {r['kept_best_rate']:.0%} | {r['median_norm_regret']:.3f} |" for name, r in rows]
    if unseen:
        lines += ["", "## Banks outside both halves (reported, never used to choose)", "",
                  "| banks | tasks | runs per study | chosen: cost | chosen: kept best | default: cost | default: kept best |",
                  "|---|---:|---:|---:|---:|---:|---:|"]
        lines += [f"| `{u}` | {r['tasks']} | {r['trials']} | {r['chosen']['median_cost_ratio_vs_none']:.3f} | {r['chosen']['kept_best_rate']:.0%} "
                  f"| {r['default']['median_cost_ratio_vs_none']:.3f} | {r['default']['kept_best_rate']:.0%} |" for u, r in unseen.items()]
    lines += ["", f"Chosen policy: `{json.dumps(chosen['policy'])}`."]
    (RESULTS / f"{args.name}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
