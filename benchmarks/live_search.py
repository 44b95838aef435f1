"""Live search benchmark: the same seeded search under several pruners, real training.

Runs `automl search` (through the library call it wraps) once per pruner with the same space,
dataset, budget and seed, so the sampler proposes the same first configurations, and writes what
each pruner spent and kept:

    python benchmarks/live_search.py --space mlp --dataset digits --trials 30 --epochs 20 --seed 0

Results: benchmarks/results/live_<space>_<dataset>_seed<seed>.md and .json. The replay benchmark
(many seeds, recorded curves) is the measuring instrument; this one is a single real run, to show
the end-to-end behaviour and its cost in wall time.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import optuna

from automl.search import PRUNERS, SearchSettings, best_test_acc, run_search, summarize

RESULTS = Path(__file__).resolve().parent / "results"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--space", default="mlp")
    parser.add_argument("--dataset", default="digits")
    parser.add_argument("--trials", type=int, default=30)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--pruners", default="none,signal,median,asha,hyperband")
    parser.add_argument("--backend", default="optuna", choices=("optuna", "ray"))
    args = parser.parse_args()
    pruners = args.pruners.split(",")
    unknown = [p for p in pruners if p not in PRUNERS]
    if unknown:
        parser.error(f"unknown pruners {unknown}; choose from {', '.join(PRUNERS)}")

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    rows = []
    for pruner in pruners:
        settings = SearchSettings(
            space=args.space, dataset=args.dataset, trials=args.trials, epochs=args.epochs, backend=args.backend,
            pruner=pruner, storage="memory", seed=args.seed,
        )
        start = time.perf_counter()
        study = run_search(settings)
        wall = time.perf_counter() - start
        s = summarize(study)
        test_acc = best_test_acc(study)
        rows.append({"pruner": pruner, **s, "wall_s": round(wall, 1), "best_test_acc": test_acc})
        print(f"{pruner:10s} epochs {s['epochs_used']:4d}/{s['epochs_full_budget']}  best val_acc {s['best_value']:.4f}  "
              f"states {s['states']}  {wall:.0f} s", flush=True)

    none = next((r for r in rows if r["pruner"] == "none"), None)
    machine = f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}"
    name = f"live_{args.space}_{args.dataset}_seed{args.seed}"
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps({"args": vars(args), "machine": machine, "rows": rows}, indent=2))
    lines = [
        f"# Live search: {args.space} on {args.dataset}, {args.trials} trials x {args.epochs} epochs, seed {args.seed}",
        "",
        f"Command: `python benchmarks/live_search.py --space {args.space} --dataset {args.dataset} --trials {args.trials} "
        f"--epochs {args.epochs} --seed {args.seed} --pruners {args.pruners} --backend {args.backend}`",
        f"Machine: {machine}. Backend: {args.backend}, TPE sampler seeded with {args.seed}; one run per pruner.",
        "",
        "| pruner | epochs used | vs none | best val_acc | its test_acc | complete | pruned | wall s |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        ratio = f"{r['epochs_used'] / none['epochs_used']:.2f}" if none else ""
        best = "" if r["best_value"] is None else f"{r['best_value']:.4f}"
        test = "" if r["best_test_acc"] is None else f"{r['best_test_acc']:.4f}"
        lines.append(
            f"| {r['pruner']} | {r['epochs_used']} | {ratio} | {best} | {test} | {r['states'].get('COMPLETE', 0)} | "
            f"{r['states'].get('PRUNED', 0)} | {r['wall_s']} |"
        )
    lines += [
        "",
        "One seed: the sampler sees different feedback under each pruner after the first pruned trial, so the",
        "trials differ between rows; read cost and best value together, and the replay benchmark for a verdict.",
    ]
    (RESULTS / f"{name}.md").write_text("\n".join(lines) + "\n")
    print(f"wrote {RESULTS / name}.md")


if __name__ == "__main__":
    main()
