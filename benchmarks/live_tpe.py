"""Live benchmark: Optuna TPE with each pruner, real training, several seeds and datasets.

    python benchmarks/live_tpe.py --datasets digits,mnist1d --space mlp --trials 30 --epochs 20 \
        --seeds 0,1,2,3,4 --pruners none,signal,forecast,median,asha,hyperband

Each (dataset, seed, pruner) runs `automl search` (the library call it wraps) in memory with the TPE
sampler seeded by the seed; after the first pruned trial the sampler sees different feedback under
each pruner, so the trials differ between rows, as they would for a user. Reports per dataset and
pruner the epochs spent (vs no pruning, same seed), the best trial's validation value and the test
accuracy of that best model, as mean and spread over the seeds. Writes
benchmarks/results/live_tpe.{md,json}.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

import optuna

from automl.search import PRUNERS, SearchSettings, best_test_acc, run_search, summarize

RESULTS = Path(__file__).resolve().parent / "results"


def _ms(xs: list[float], fmt: str) -> str:
    xs = [x for x in xs if x is not None]
    if not xs:
        return ""
    sd = statistics.stdev(xs) if len(xs) > 1 else 0.0
    return f"{format(statistics.mean(xs), fmt)} ± {format(sd, fmt)}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--datasets", default="digits,mnist1d")
    ap.add_argument("--space", default="mlp")
    ap.add_argument("--trials", type=int, default=30)
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--seeds", default="0,1,2,3,4")
    ap.add_argument("--pruners", default="none,signal,forecast,median,asha,hyperband")
    ap.add_argument("--log", default=None, help="JSON Lines of finished runs: each run is appended, and runs "
                    "already there are not run again (resume an interrupted benchmark)")
    ap.add_argument("--report-only", action="store_true", help="write the report from --log alone (every seed it "
                    "holds per dataset), running nothing")
    args = ap.parse_args()
    pruners, datasets = args.pruners.split(","), args.datasets.split(",")
    seeds = [int(s) for s in args.seeds.split(",")]
    unknown = [p for p in pruners if p not in PRUNERS]
    if unknown or "none" not in pruners:
        ap.error(f"--pruners must include 'none' and name only {', '.join(PRUNERS)} (unknown: {unknown})")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    rows, t0 = [], time.time()
    done = {}
    if args.log and Path(args.log).exists():
        for line in Path(args.log).read_text().splitlines():
            if line.strip():
                r = json.loads(line)
                done[(r["dataset"], r["seed"], r["pruner"])] = r
    if args.report_only:
        seeds = sorted({s for (_, s, _) in done})
    for dataset in datasets:
        for seed in seeds:
            for pruner in pruners:
                if args.report_only:
                    if (dataset, seed, pruner) in done:
                        rows.append(done[(dataset, seed, pruner)])
                    continue
                if (dataset, seed, pruner) in done:
                    rows.append(done[(dataset, seed, pruner)])
                    continue
                settings = SearchSettings(space=args.space, dataset=dataset, trials=args.trials, epochs=args.epochs,
                                          pruner=pruner, storage="memory", seed=seed)
                start = time.perf_counter()
                study = run_search(settings)
                s = summarize(study)
                rows.append({"dataset": dataset, "seed": seed, "pruner": pruner, "epochs_used": s["epochs_used"],
                             "best_value": s["best_value"], "best_test_acc": best_test_acc(study),
                             "states": s["states"], "wall_s": round(time.perf_counter() - start, 1)})
                print(json.dumps(rows[-1]), flush=True)
                if args.log:
                    with open(args.log, "a") as f:
                        f.write(json.dumps(rows[-1]) + "\n")
    wall = sum(r["wall_s"] for r in rows)
    machine = f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}"
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "live_tpe.json").write_text(json.dumps({"args": vars(args), "machine": machine, "wall_s": round(wall),
                                                       "rows": rows}, indent=1))
    lines = [f"# Live search: TPE with each pruner, {args.space}, {args.trials} trials x {args.epochs} epochs", "",
             f"Command: `python benchmarks/live_tpe.py --datasets {args.datasets} --space {args.space} --trials {args.trials} "
             f"--epochs {args.epochs} --seeds {args.seeds} --pruners {args.pruners}"
             + (f" --log {args.log}" if args.log else "") + (" --report-only" if args.report_only else "") + "`  ",
             f"Machine: {machine}; {wall:.0f} s of searches. TPE seeded with each seed; real training on the CPU. Mean ± sd over "
             "the seeds each dataset lists; epochs as a share of the same seed's unpruned search.", ""]
    for dataset in datasets:
        none = {r["seed"]: r["epochs_used"] for r in rows if r["dataset"] == dataset and r["pruner"] == "none"}
        lines += [f"## {dataset} (seeds {sorted(none)})", "", "| pruner | epochs used | vs none | best val_acc | its test_acc | pruned | wall s |",
                  "|---|---:|---:|---:|---:|---:|---:|"]
        for pruner in pruners:
            rs = [r for r in rows if r["dataset"] == dataset and r["pruner"] == pruner]
            lines.append(f"| {pruner} | {_ms([r['epochs_used'] for r in rs], '.0f')} | "
                         f"{_ms([r['epochs_used'] / none[r['seed']] for r in rs], '.2f')} | "
                         f"{_ms([r['best_value'] for r in rs], '.4f')} | {_ms([r['best_test_acc'] for r in rs], '.4f')} | "
                         f"{_ms([r['states'].get('PRUNED', 0) for r in rs], '.1f')} | {_ms([r['wall_s'] for r in rs], '.0f')} |")
        lines.append("")
    (RESULTS / "live_tpe.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
