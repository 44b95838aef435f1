"""Train the forecaster on the synthetic prior of studies and check its calibration on studies it
never saw; writes automl/models/forecaster.json.gz (XGBoost's JSON model format, gzipped; no pickle) and
benchmarks/results/forecaster.md.

    python benchmarks/train_forecaster.py --studies 300 --holdout 60 --seed 0

By default only synthetic studies are used, so every real bank stays held out from training.
``--bank`` adds real curves from the *tuning half* of the banks' tasks (sorted task names, even
positions; the replay reports score the odd ones): studies drawn from each task's runs, each also
resampled in time (every 2nd and 3rd epoch), so the model sees real curve shapes without ever
seeing a held-out task.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from automl.forecast.features import NAMES
from automl.forecast.model import MODEL_PATH, MONOTONE, QUANTILES, Forecaster, p_below, training_rows
from automl.forecast.prior import sample_study

RESULTS = Path(__file__).resolve().parent / "results"


def _study_rows(args: tuple[int, int]) -> tuple[np.ndarray, np.ndarray, str]:
    seed, n_trials = args
    rng = np.random.default_rng([seed, 7])
    study = sample_study(rng, n_trials)
    X, y = training_rows(study.curves, study.budgets, rng)
    return X, y, study.kind


def _bank_rows(args: tuple) -> tuple[np.ndarray, np.ndarray, str]:
    curves, seed, n_trials, stride = args
    rng = np.random.default_rng([seed, stride, 13])
    pick = rng.permutation(len(curves))[:n_trials]
    drawn = [np.asarray(curves[i], dtype=float)[stride - 1::stride] for i in pick]
    drawn = [c for c in drawn if len(c) >= 3]
    X, y = training_rows(drawn, [len(c) for c in drawn], rng)
    return X, y, "bank"


def bank_rows(banks: list[str], studies_per_task: int, n_trials: int, jobs: int) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Rows from the tuning half of the banks' tasks (signed lower-is-better)."""
    from automl.bench.bank import read_bank, runs_by_task

    tasks: dict = {}
    for b in banks:
        tasks.update(runs_by_task(read_bank(b)))
    names = sorted(tasks)[0::2]
    jobs_args = []
    for name in names:
        runs = tasks[name]
        sign = 1.0 if runs[0].direction == "minimize" else -1.0
        curves = [sign * np.asarray(r.values, dtype=float) for r in runs]
        jobs_args += [(curves, seed, n_trials, stride) for seed in range(studies_per_task) for stride in (1, 2, 3)]
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        parts = list(pool.map(_bank_rows, jobs_args))
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]), names


def rows(seeds: range, n_trials: int, jobs: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        parts = list(pool.map(_study_rows, [(s, n_trials) for s in seeds]))
    X = np.concatenate([p[0] for p in parts])
    y = np.concatenate([p[1] for p in parts])
    kinds = np.concatenate([[p[2]] * len(p[1]) for p in parts])
    return X, y, kinds


def train(X: np.ndarray, y: np.ndarray, *, rounds: int, seed: int) -> Forecaster:
    import xgboost as xgb

    data = xgb.DMatrix(X, y)
    boosters = []
    # One booster per level, each on the pinball loss as a custom objective (gradient, unit hessian):
    # XGBoost's own reg:quantileerror re-fits leaf values after each tree and so breaks monotone
    # constraints (measured: a worse current value forecast a better end by up to 0.5 z units).
    for alpha in QUANTILES:
        def pinball(pred: np.ndarray, d: "xgb.DMatrix", a: float = alpha) -> tuple[np.ndarray, np.ndarray]:
            g = np.where(d.get_label() < pred, 1.0 - a, -a)
            return g, np.ones_like(g)

        params = {"tree_method": "hist", "max_depth": 5, "learning_rate": 0.3, "min_child_weight": 20,
                  "subsample": 0.8, "colsample_bynode": 0.8, "base_score": float(np.quantile(y, alpha)),
                  "monotone_constraints": "(" + ",".join(map(str, MONOTONE)) + ")",
                  "seed": seed, "nthread": os.cpu_count() or 1}
        boosters.append(xgb.train(params, data, num_boost_round=rounds, obj=pinball))
    return Forecaster.from_boosters(boosters)


def calibration(model: Forecaster, X: np.ndarray, y: np.ndarray, kinds: np.ndarray) -> dict:
    q = model.predict_z(X)
    out = {"coverage": {f"{a:g}": float(np.mean(y <= q[:, i])) for i, a in enumerate(QUANTILES)}}
    p = np.array([p_below(r) for r in q])
    beat = (y < 0).astype(float)
    out["brier_p_beat"] = float(np.mean((p - beat) ** 2))
    out["base_rate_beat"] = float(beat.mean())
    bins = np.array([0, 0.01, 0.02, 0.05, 0.1, 0.2, 0.4, 0.6, 0.8, 1.0001])
    out["reliability"] = [{"p_from": float(lo), "p_to": float(hi), "n": int(m.sum()), "mean_p": float(p[m].mean()),
                           "observed": float(beat[m].mean())}
                          for lo, hi in zip(bins[:-1], bins[1:]) if (m := (p >= lo) & (p < hi)).sum()]
    out["by_kind"] = {k: {"coverage_0.1": float(np.mean(y[kinds == k] <= q[kinds == k, QUANTILES.index(0.1)])),
                          "coverage_0.9": float(np.mean(y[kinds == k] <= q[kinds == k, QUANTILES.index(0.9)]))}
                      for k in sorted(set(kinds))}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--studies", type=int, default=300, help="synthetic studies to train on")
    ap.add_argument("--holdout", type=int, default=100, help="synthetic studies kept for the calibration check")
    ap.add_argument("--trials", type=int, default=150, help="trials per synthetic study")
    ap.add_argument("--rounds", type=int, default=150)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--out", default=str(MODEL_PATH))
    ap.add_argument("--bank", nargs="*", default=[], help="banks whose tuning-half tasks add real curves")
    ap.add_argument("--bank-studies", type=int, default=8, help="studies drawn per tuning task (x3 time resamplings)")
    args = ap.parse_args()
    if args.studies < 1 or args.holdout < 1 or args.trials < 3:
        ap.error("--studies and --holdout must be >= 1 and --trials >= 3")
    t0 = time.time()
    base = args.seed * 1_000_000
    X, y, _ = rows(range(base, base + args.studies), args.trials, args.jobs)
    Xh, yh, kh = rows(range(base + args.studies, base + args.studies + args.holdout), args.trials, args.jobs)
    bank_tasks: list[str] = []
    if args.bank:
        Xb, yb, bank_tasks = bank_rows(args.bank, args.bank_studies, args.trials, args.jobs)
        X, y = np.concatenate([X, Xb]), np.concatenate([y, yb])
    t_rows = time.time() - t0
    model = train(X, y, rounds=args.rounds, seed=args.seed)
    t_train = time.time() - t0 - t_rows
    model.save(args.out)
    cal = calibration(model, Xh, yh, kh)
    doc = {"command": f"python benchmarks/train_forecaster.py --studies {args.studies} --holdout {args.holdout} "
                      f"--trials {args.trials} --rounds {args.rounds} --seed {args.seed}"
                      + (f" --bank {' '.join(Path(b).name for b in args.bank)} --bank-studies {args.bank_studies}" if args.bank else ""),
           "bank_tasks": bank_tasks,
           "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}",
           "rows_train": len(y), "rows_holdout": len(yh), "seconds_rows": round(t_rows, 1),
           "seconds_train": round(t_train, 1), "features": list(NAMES), **cal}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "forecaster.json").write_text(json.dumps(doc, indent=1))
    lines = ["# Forecaster: calibration on synthetic studies it never saw", "",
             f"Command: `{doc['command']}`  ", f"Machine: {doc['machine']}; rows {t_rows:.0f} s, training {t_train:.0f} s.",
             f"{len(y)} training rows from {args.studies} studies"
             + (f" and the tuning-half tasks {', '.join(t.split('/')[-1] for t in bank_tasks)}" if bank_tasks else "")
             + f"; {len(yh)} held-out rows from {args.holdout} other synthetic studies.", "",
             "| quantile | share of held-out finals at or below it |", "|---:|---:|"]
    lines += [f"| {a} | {v:.3f} |" for a, v in cal["coverage"].items()]
    lines += ["", f"P(beat the best finished trial): Brier {cal['brier_p_beat']:.4f} (base rate {cal['base_rate_beat']:.3f}).", "",
              "| predicted P | rows | mean predicted | observed |", "|---|---:|---:|---:|"]
    lines += [f"| {r['p_from']:.2f}-{min(r['p_to'], 1):.2f} | {r['n']} | {r['mean_p']:.3f} | {r['observed']:.3f} |"
              for r in cal["reliability"]]
    (RESULTS / "forecaster.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
