"""Choosing the study calibration's two settings on the tuning half of the tasks only.

    python benchmarks/study_calibration_tune.py --seeds 2 --trials 60

The forecast pruner moves the model's P(beat the best finished trial) by a log-odds offset fitted
to the study's latest ``k`` finished trials (``Policy.forecast_calibration``) under a normal prior
of scale ``prior`` (``automl.forecast.model.STUDY_PRIOR``). Both are chosen here by the log loss of
the moved P on the even-numbered tasks of the sorted task list (the tuning half of
``tune_signal.py`` and ``forecast_report.py``), in sequential studies read as in training: each trial
at a few epochs against every earlier trial, finished. Writes
benchmarks/results/study_calibration_tune.{md,json}.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np

from automl.bench.bank import read_bank, runs_by_task
from automl.bench.replay import sequential_reads
from automl.decision import TrialHistory
from automl.decision.forecast import finished_chances
from automl.forecast.model import frame_from_curves, load_forecaster, shift, study_offset

HERE = Path(__file__).resolve().parent
BANKS = ("taskset_imdb_rnn", "digits_mlp", "mnist5k_mlp", "mnist1d_cnn")


def rows(tasks: dict, seeds: int, trials: int, ks: list[int]) -> list[dict]:
    """One row per (trial, epoch): the model's P, whether the trial beat the best finished one, and
    for each k the finished trials' chances and who won."""
    model = load_forecaster()
    out = []
    for curves, done, i, e in sequential_reads(tasks, seeds, trials, min_done=5, per_trial=2):
        c = curves[i]
        history = [TrialHistory(j, dict(enumerate(curves[j].tolist(), 1)), "COMPLETE", float(curves[j][-1]),
                                budget=len(curves[j])) for j in done]
        best = min(curves[j][-1] for j in done)
        frame = frame_from_curves([curves[j] for j in done], [len(curves[j]) for j in done], e, len(c))
        row = {"p": model.forecast(c[:e], len(c), frame).p_beat, "hit": float(np.isfinite(c[-1]) and c[-1] < best)}
        for k in ks:
            row[k] = finished_chances(history, sign=1.0, step=e, budget=len(c), k=k)
        out.append(row)
    return out


def score(p: np.ndarray, y: np.ndarray) -> dict:
    q = np.clip(p, 1e-6, 1 - 1e-6)
    return {"log_loss": float(-np.mean(y * np.log(q) + (1 - y) * np.log(1 - q))), "brier": float(np.mean((p - y) ** 2))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=2)
    ap.add_argument("--trials", type=int, default=60)
    ap.add_argument("--k", type=int, nargs="+", default=[8, 15, 30])
    ap.add_argument("--prior", type=float, nargs="+", default=[0.5, 1.0, 2.0, 4.0, 8.0])
    args = ap.parse_args()
    tasks: dict = {}
    for bank in BANKS:
        tasks.update(runs_by_task(read_bank(HERE / "banks" / f"{bank}.jsonl.gz")))
    names = sorted(tasks)
    tuning = {t: tasks[t] for t in names[0::2]}
    t0 = time.time()
    data = rows(tuning, args.seeds, args.trials, args.k)
    p, y = np.array([r["p"] for r in data]), np.array([r["hit"] for r in data])
    results = [{"k": None, "prior": None, **score(p, y)}]
    for k in args.k:
        for prior in args.prior:
            moved = np.array([shift(r["p"], study_offset(*r[k], prior=prior)) if len(r[k][0]) >= 3 else r["p"] for r in data])
            results.append({"k": k, "prior": prior, **score(moved, y)})
    wall = time.time() - t0
    best = min(results[1:], key=lambda r: (round(r["log_loss"], 4), r["k"]))
    machine = f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}"
    res = HERE / "results"
    res.mkdir(exist_ok=True)
    (res / "study_calibration_tune.json").write_text(json.dumps(
        {"args": vars(args), "machine": machine, "wall_s": round(wall, 1), "tuning_tasks": sorted(tuning),
         "n": len(y), "base_rate": float(y.mean()), "results": results, "chosen": best}, indent=1))
    lines = ["# The study calibration's settings, chosen on the tuning half", "",
             f"Command: `python benchmarks/study_calibration_tune.py --seeds {args.seeds} --trials {args.trials}`  ",
             f"Machine: {machine}; {wall:.0f} s. {len(tuning)} tuning tasks ({', '.join(sorted(tuning))}), seeds "
             f"0..{args.seeds - 1}, the first {args.trials} runs of each drawn order; {len(y)} trial-epochs, "
             f"base rate {y.mean():.3f}.", "",
             "| finished trials read (k) | prior scale | log loss | Brier |", "|---|---:|---:|---:|"]
    for r in results:
        k = "model's P, not moved" if r["k"] is None else str(r["k"])
        lines.append(f"| {k} | {'' if r['prior'] is None else r['prior']:} | {r['log_loss']:.4f} | {r['brier']:.4f} |")
    lines += ["", f"Lowest log loss (ties to 4 decimals go to the smaller k): k = {best['k']}, prior scale {best['prior']}."]
    (res / "study_calibration_tune.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
