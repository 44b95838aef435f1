"""The neural-capacitance ranking study (issue 4): record, then rank.

    python benchmarks/capacitance_study.py record   # trains 2 datasets x 3 families x 20 configs x 2 NCP modes
    python benchmarks/capacitance_study.py rank     # Kendall/Spearman tau at k observed epochs -> results/capacitance.json/.png

``record`` writes one curve bank per (dataset, family, NCP mode) under
``benchmarks/banks/capacitance/`` with ``automl.record.record_bank`` (resumable: re-run to finish an
interrupted recording). Shadow-mode runs train the candidate unchanged, so their true final
accuracy is the candidate's; head-mode runs train the candidate with the NCP as its output layer,
as in the paper, and are ranked by their own final accuracy.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
BANKS = HERE / "banks" / "capacitance"
RESULTS = HERE / "results"
DATASETS = ("digits", "mnist1d")
FAMILIES = ("mlp", "cnn", "resnet_small")
MODES = ("shadow", "head")
RUNS, EPOCHS, SEED = 20, 30, 0


def bank_path(dataset: str, family: str, mode: str) -> Path:
    return BANKS / f"{dataset}_{family}_{mode}.jsonl.gz"


def record(jobs: int) -> None:
    from automl.record import record_bank

    BANKS.mkdir(parents=True, exist_ok=True)
    for dataset in DATASETS:
        for mode in MODES:
            for family in FAMILIES:
                start = time.perf_counter()
                n = record_bank(family, dataset, runs=RUNS, epochs=EPOCHS, seed=SEED, out=bank_path(dataset, family, mode),
                                jobs=jobs, ncp=mode)
                print(f"{dataset} {family} {mode}: {n} runs in {time.perf_counter() - start:.0f} s", flush=True)


KS = (1, 2, 3, 5)
N_BOOT = 1000


def load_runs(dataset: str, mode: str) -> list:
    from automl.bank import read_bank

    runs = []
    for family in FAMILIES:
        path = bank_path(dataset, family, mode)
        if path.exists():
            runs += read_bank(path)
    return runs


def _scores(values) -> np.ndarray:
    """Predictions as ranking scores: a diverged run (nan) ranks below every finite one."""
    v = np.asarray(values, dtype=float)
    finite = v[np.isfinite(v)]
    floor = (finite.min() - 1.0) if finite.size else 0.0
    v = np.where(np.isnan(v) | (v == -np.inf), floor, v)
    return v


def _loo(runs, k: int, features: str, weighting: str) -> np.ndarray:
    """Leave-one-out population-model predictions: each run is predicted by a model fitted on all
    the other runs, as a study fits one model on its finished trials and scores the newcomer.
    (k-fold predictions would come from different models whose intercepts are not comparable.)"""
    from automl.signals.predictors import PopulationPredictor, prefix_features

    key = "beta_eff" if weighting == "product" else "beta_eff_downstream"
    X = np.array([prefix_features(r.signals[key], r.curves["val_acc"], k) for r in runs])
    y = np.array([_final(r) for r in runs])
    out = np.empty(len(runs))
    for i in range(len(runs)):
        rest = np.arange(len(runs)) != i
        out[i] = PopulationPredictor(features).fit(X[rest], y[rest]).predict(X[i : i + 1])[0]
    return out


def _final(run) -> float:
    v = run.curves["test_acc"][-1]
    return 0.0 if v is None or not np.isfinite(v) else float(v)


def predictions(runs, k: int) -> dict[str, np.ndarray]:
    from automl.signals.predictors import beta_ridge_final, power_law_final, tse_ema, vacces

    budget = max(len(r.curves["val_acc"]) for r in runs)
    preds = {
        "VAccES": [vacces(r.curves["val_acc"], k) for r in runs],
        "TSE-EMA": [tse_ema(r.curves["train_loss"], k) for r in runs],
        "power law": [power_law_final(r.curves["val_acc"], k, budget) for r in runs],
    }
    for weighting, key in (("product", "beta_eff"), ("downstream", "beta_eff_downstream")):
        preds[f"βeff_k ({weighting})"] = [r.signals[key][k - 1] for r in runs]
        preds[f"βeff BRR per-trial ({weighting})"] = [beta_ridge_final(r.signals[key], r.curves["val_acc"], k, budget)[0]
                                                       for r in runs]
        preds[f"population βeff ({weighting})"] = _loo(runs, k, "beta", weighting)
        preds[f"population βeff+acc ({weighting})"] = _loo(runs, k, "both", weighting)
    preds["population acc only (control)"] = _loo(runs, k, "curve", "product")
    return {name: _scores(v) for name, v in preds.items()}


def _tau(x, y) -> float:
    from scipy.stats import kendalltau

    t = kendalltau(x, y).statistic
    return float(t) if np.isfinite(t) else 0.0


def rank() -> dict:
    from scipy.stats import spearmanr

    rng = np.random.default_rng(SEED)
    table: dict = {"seed": SEED, "n_boot": N_BOOT, "ks": list(KS), "cells": []}
    for dataset in DATASETS:
        for mode in MODES:
            runs = load_runs(dataset, mode)
            if len(runs) < 10:
                print(f"skip {dataset} {mode}: {len(runs)} runs", flush=True)
                continue
            y = np.array([_final(r) for r in runs])
            boots = [rng.integers(0, len(runs), len(runs)) for _ in range(N_BOOT)]
            for k in KS:
                preds = predictions(runs, k)
                base = preds["VAccES"]
                base_taus = np.array([_tau(base[b], y[b]) for b in boots])
                for name, p in preds.items():
                    taus = np.array([_tau(p[b], y[b]) for b in boots])
                    gain = taus - base_taus
                    table["cells"].append({
                        "dataset": dataset, "mode": mode, "k": k, "method": name, "n": len(runs),
                        "tau": _tau(p, y), "tau_lo": float(np.quantile(taus, 0.025)), "tau_hi": float(np.quantile(taus, 0.975)),
                        "spearman": float(np.nan_to_num(spearmanr(p, y).statistic)),
                        "gain_vs_vacces": _tau(p, y) - _tau(base, y),
                        "gain_lo": float(np.quantile(gain, 0.025)), "gain_hi": float(np.quantile(gain, 0.975)),
                    })
                print(f"{dataset} {mode} k={k}: " + ", ".join(f"{c['method']}={c['tau']:.3f}" for c in table["cells"][-len(preds):]),
                      flush=True)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "capacitance.json").write_text(json.dumps(table, indent=1))
    _plot(table)
    return table


PLOTTED = ("VAccES", "TSE-EMA", "power law", "βeff_k (product)", "βeff BRR per-trial (product)",
           "population βeff (product)", "population βeff+acc (product)", "population acc only (control)")


def _plot(table: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = sorted({(c["dataset"], c["mode"]) for c in table["cells"]})
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.6), sharey=True, squeeze=False)
    for ax, (dataset, mode) in zip(axes[0], panels):
        for method in PLOTTED:
            cells = [c for c in table["cells"] if (c["dataset"], c["mode"], c["method"]) == (dataset, mode, method)]
            ks = [c["k"] for c in cells]
            ax.plot(ks, [c["tau"] for c in cells], marker="o", label=method, lw=2 if "βeff" in method else 1)
        ax.set_title(f"{dataset}, NCP {mode}")
        ax.set_xlabel("observed epochs k")
        ax.set_xticks(list(KS))
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("Kendall τ vs final test accuracy")
    axes[0][-1].legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(RESULTS / "capacitance.png", dpi=120)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    rec = sub.add_parser("record")
    rec.add_argument("--jobs", type=int, default=2)
    sub.add_parser("rank")
    args = parser.parse_args(argv)
    if args.cmd == "record":
        record(args.jobs)
    else:
        rank()
    return 0


if __name__ == "__main__":
    sys.exit(main())
