"""The forecast pruner on tasks it was never trained or tuned on: per task, against the best
built-in; and how calibrated its probability is on real curves.

    python benchmarks/forecast_report.py --bank benchmarks/banks/taskset_imdb_rnn.jsonl.gz \
        benchmarks/banks/{digits_mlp,mnist5k_mlp,mnist1d_cnn}.jsonl.gz --seeds 5 --trials 200 \
        --policy '{"risk": 0.02, "forecast_tie": 2.0, "protect_top": 0.05}' \
        --unseen 'benchmarks/banks/dynamics/*.jsonl.gz'

The forecaster is trained on synthetic studies only (benchmarks/train_forecaster.py), so every real
task is unseen by the model; ``--policy`` (its ``risk``) comes from ``tune_signal.py --name forecast_tune``, which
chose it on the even-numbered tasks of the sorted task list. This report replays the odd-numbered
ones (the held-out half) and the ``--unseen`` banks (outside both halves). Per task the targets of
the forecasting issue: kept best >= 90%, median norm regret no worse than the best built-in's (the
lowest median regret, then the highest kept-best rate, then the lowest cost), cost <= 0.67x its
cost. Writes benchmarks/results/forecast_replay.{md,json} and forecast_calibration.png.
"""

from __future__ import annotations

import argparse
import glob
import json
import math
import os
import platform
import time
from pathlib import Path

import numpy as np

from automl.bench.bank import read_bank, runs_by_task
from automl.bench.replay import replay, sequential_reads, summarize
from automl.decision import Policy

RESULTS = Path(__file__).resolve().parent / "results"
BANKS = Path(__file__).resolve().parent / "banks"


def bank_path(b: str) -> str:
    """``b`` as given, or the bundled bank of that name (the reports' command lines name banks by file name)."""
    return b if Path(b).exists() else str(BANKS / b)
BUILTINS = ("median", "percentile25", "asha", "hyperband", "patient", "ray-asha", "ray-median")
PRUNERS = ("none", *BUILTINS, "topk1", "oracle", "signal", "forecast")


def _cell(rows: list[dict], base: dict[int, int]) -> dict:
    norms = [math.inf if r["norm_regret"] is None else r["norm_regret"] for r in rows]
    return {"cost": float(np.median([r["cost_epochs"] / base[r["seed"]] for r in rows])),
            "norm_regret": float(np.median(norms)), "kept_best": float(np.mean([r["kept_best"] for r in rows]))}


def per_task(doc: dict) -> list[dict]:
    out = []
    for task, per in doc["tasks"].items():
        base = {r["seed"]: r["cost_epochs"] for r in per["none"]}
        cells = {p: _cell(rows, base) for p, rows in per.items()}
        best = min(BUILTINS, key=lambda p: (cells[p]["norm_regret"], -cells[p]["kept_best"], cells[p]["cost"]))
        f, b = cells["forecast"], cells[best]
        out.append({"task": task, "best_builtin": best, "cells": cells,
                    "kept_ok": f["kept_best"] >= 0.9, "regret_ok": f["norm_regret"] <= b["norm_regret"] + 1e-12,
                    "cost_ratio": f["cost"] / b["cost"], "cost_ok": f["cost"] <= 0.67 * b["cost"]})
    return out


def _reliability(p: np.ndarray, y: np.ndarray) -> dict:
    bins = np.array([0, 0.01, 0.02, 0.05, 0.1, 0.2, 0.4, 0.6, 0.8, 1.0001])
    rel = [{"p_from": float(lo), "p_to": float(min(hi, 1)), "n": int(m.sum()), "mean_p": float(p[m].mean()),
            "observed": float(y[m].mean())} for lo, hi in zip(bins[:-1], bins[1:]) if (m := (p >= lo) & (p < hi)).sum()]
    return {"n": len(p), "brier": float(np.mean((p - y) ** 2)), "base_rate": float(y.mean()), "reliability": rel}


def calibration(tasks: dict, seeds: int, trials: int, epochs_per_trial: int = 3, k: int = 15) -> dict:
    """P(beat the best finished trial) for trials at a few epochs of real studies (every earlier
    trial finished, as in training), against whether the trial's final value did beat the best
    finished one: the model's P, which the pruner acts on (``model``), and that P recalibrated on
    the study's latest ``k`` finished trials (``study``; ``Policy(forecast_calibration=k)``, off by
    default)."""
    from automl.decision import TrialHistory
    from automl.decision.forecast import calibrate_on
    from automl.forecast.model import frame_from_curves, load_forecaster, shift

    model = load_forecaster()
    ps, qs, hits = [], [], []
    for curves, done, i, e in sequential_reads(tasks, seeds, trials, min_done=3, per_trial=epochs_per_trial):
        c = curves[i]
        best = min(curves[j][-1] for j in done)
        history = [TrialHistory(j, dict(enumerate(curves[j].tolist(), 1)), "COMPLETE", float(curves[j][-1]),
                                budget=len(curves[j])) for j in done[-k:]]
        frame = frame_from_curves([curves[j] for j in done], [len(curves[j]) for j in done], e, len(c),
                                  others=[curves[j] for j in range(i) if j not in done])
        p = model.forecast(c[:e], len(c), frame).p_beat
        offset, _ = calibrate_on(history, sign=1.0, step=e, budget=len(c), k=k)
        ps.append(p)
        qs.append(shift(p, offset))
        hits.append(float(np.isfinite(c[-1]) and c[-1] < best))
    y = np.asarray(hits)
    return {"model": _reliability(np.asarray(ps), y), "study": _reliability(np.asarray(qs), y)}


def _plot(cal: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 5))
    for i, (name, c) in enumerate(cal.items()):
        for kind, style in (("study", "o-"), ("model", "x:")):
            r = c[kind]["reliability"]
            label = f"{name}, {'recalibrated' if kind == 'study' else 'model'} (Brier {c[kind]['brier']:.3f})"
            ax.plot([x["mean_p"] for x in r], [x["observed"] for x in r], style, color=f"C{i}", label=label)
    ax.plot([0, 1], [0, 1], "k--", lw=0.8)
    ax.set_xlabel("predicted P(beat the best finished trial)")
    ax.set_ylabel("observed share that did")
    ax.set_title("Forecaster reliability on real curves it never saw")
    ax.legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bank", nargs="+", required=True)
    ap.add_argument("--unseen", nargs="*", default=[], metavar="GLOB")
    ap.add_argument("--policy", required=True, help="JSON of the Policy fields chosen by tune_signal.py --name "
                    "forecast_tune (its 'Chosen policy'); 'rule' is set to 'forecast' for the forecast pruner")
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--trials", type=int, default=200)
    ap.add_argument("--jobs", type=int, default=2)
    args = ap.parse_args()
    args.bank = [bank_path(b) for b in args.bank]
    if args.seeds < 1 or args.trials < 3:
        ap.error("--seeds must be >= 1 and --trials >= 3")
    try:
        chosen = {k: v for k, v in json.loads(args.policy).items() if k != "rule"}
        Policy(**chosen)
    except (ValueError, TypeError, AttributeError) as exc:
        ap.error(f"--policy must be a JSON object of Policy fields: {exc}")
    tasks: dict = {}
    for bank in args.bank:
        tasks.update(runs_by_task(read_bank(bank)))
    names = sorted(tasks)
    groups = {"held-out half": {t: tasks[t] for t in names[1::2]}}
    for pattern in args.unseen:
        banks = sorted(glob.glob(pattern))
        if not banks:
            ap.error(f"--unseen {pattern!r} matches no bank file")
        groups[f"unseen {pattern}"] = {t: r for b in banks for t, r in runs_by_task(read_bank(b)).items()}
    # `signal` runs Policy()'s checks (these fields are the forecaster's or guards shared by both;
    # `forecast` adds rule="forecast"). protect_top is shared: keep the default for `signal`.
    policy = Policy(**{k: v for k, v in chosen.items() if k != "protect_top"})
    forecast_policy = Policy(rule="forecast", **chosen)
    t0 = time.time()
    docs = {}
    for g, ts in groups.items():
        docs[g] = replay(ts, PRUNERS[:-1], seeds=args.seeds, trials=args.trials, jobs=args.jobs, policy=policy)
        fc = replay(ts, ["forecast"], seeds=args.seeds, trials=args.trials, jobs=args.jobs, policy=forecast_policy)
        for task, per in fc["tasks"].items():
            docs[g]["tasks"][task]["forecast"] = per["forecast"]
        docs[g]["summary"] = summarize(docs[g]["tasks"])
    cal = {g: calibration(ts, min(args.seeds, 3), args.trials) for g, ts in groups.items()}
    wall = time.time() - t0
    machine = f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}"
    report = {g: per_task(d) for g, d in docs.items()}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "forecast_replay.json").write_text(json.dumps(
        {"args": vars(args), "wall_s": round(wall, 1), "machine": machine,
         "summary": {g: d["summary"] for g, d in docs.items()}, "per_task": report, "calibration": cal}, indent=1))
    _plot(cal, RESULTS / "forecast_calibration.png")
    lines = ["# The forecast pruner on held-out tasks", "",
             f"Command: `python benchmarks/forecast_report.py --bank {' '.join(Path(b).name for b in args.bank)} "
             f"--policy '{args.policy}' --seeds {args.seeds} --trials {args.trials}"
             + (f" --unseen {' '.join(repr(u) for u in args.unseen)}" if args.unseen else "") + "`  ",
             f"Machine: {machine}; {wall:.0f} s. Seeds 0..{args.seeds - 1}, {args.trials} runs drawn per task and seed. "
             "The forecaster saw no real curve in training; `risk` was chosen on the other half of the tasks.", ""]
    for g, rows in report.items():
        s = docs[g]["summary"]
        lines += [f"## {g}: summary (medians over tasks x seeds)", "", "| pruner | cost vs none | norm regret | kept best |",
                  "|---|---:|---:|---:|"]
        lines += [f"| {p} | {v['median_cost_ratio_vs_none']:.3f} | {v['median_norm_regret']:.3f} | {v['kept_best_rate']:.0%} |"
                  for p, v in s.items()]
        met = sum(r["kept_ok"] and r["regret_ok"] and r["cost_ok"] for r in rows)
        lines += ["", f"## {g}: per task, forecast vs the best built-in (targets met on {met} of {len(rows)})", "",
                  "| task | forecast: cost / regret / kept | signal: cost / regret / kept | best built-in | its cost / regret / kept "
                  "| cost ratio | kept >= 90% | regret | cost <= 0.67x |", "|---|---|---|---|---|---:|---|---|---|"]
        for r in rows:
            f, sg, b = r["cells"]["forecast"], r["cells"]["signal"], r["cells"][r["best_builtin"]]
            tri = lambda c: f"{c['cost']:.3f} / {c['norm_regret']:.3f} / {c['kept_best']:.0%}"  # noqa: E731
            yes = lambda ok: "met" if ok else "**not met**"  # noqa: E731
            lines.append(f"| {r['task'].split('/')[-1]} | {tri(f)} | {tri(sg)} | {r['best_builtin']} | {tri(b)} | "
                         f"{r['cost_ratio']:.2f} | {yes(r['kept_ok'])} | {yes(r['regret_ok'])} | {yes(r['cost_ok'])} |")
        m, c = cal[g]["model"], cal[g]["study"]
        lines += ["", f"Calibration of P(beat the best finished trial) on these real curves: {m['n']} trial-epochs "
                  f"(base rate {m['base_rate']:.3f}). The model's P, which the pruner acts on: Brier {m['brier']:.4f}; "
                  f"recalibrated on each study's latest 15 finished trials (`forecast_calibration=15`, off by default): "
                  f"Brier {c['brier']:.4f}.", "",
                  "| predicted P | n | mean predicted | observed | recalibrated: n | mean | observed |",
                  "|---|---:|---:|---:|---:|---:|---:|"]
        moved = {x["p_from"]: x for x in c["reliability"]}
        for x in m["reliability"]:
            r = moved.get(x["p_from"])
            tail = f"{r['n']} | {r['mean_p']:.3f} | {r['observed']:.3f}" if r else "0 | - | -"
            lines.append(f"| {x['p_from']:.2f}-{x['p_to']:.2f} | {x['n']} | {x['mean_p']:.3f} | {x['observed']:.3f} | {tail} |")
        lines.append("")
    lines.append("Reliability plot: `forecast_calibration.png`.")
    (RESULTS / "forecast_replay.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
