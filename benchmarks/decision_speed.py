"""How long one decision of the signal pruner takes at 200 finished trials (its own cost).

    python benchmarks/decision_speed.py

Times `automl.decide` alone (the pure core; also on its slowest path, the curve forecast with the
noise margin) and `SignalPruner.prune` on an in-memory Optuna
study (the core plus reading the study), for a running trial at epoch 10 of 51, over real
TaskSet curves. Writes benchmarks/results/decision_speed.md.
"""

from __future__ import annotations

import os
import platform
import statistics
import time
from pathlib import Path

import optuna

from automl import Policy, Population, TrialHistory, decide
from automl.bench.bank import read_bank, runs_by_task
from automl.bench.replay import replay_task
from pruners import SignalPruner

RESULTS = Path(__file__).resolve().parent / "results"
BANK = Path(__file__).resolve().parent / "banks" / "taskset_imdb_rnn.jsonl.gz"


def _time(fn, repeat: int = 2000) -> list[float]:
    out = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t) * 1e6)
    return out


def main() -> None:
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    runs = next(iter(runs_by_task(read_bank(BANK)).values()))[:201]
    finished, current = runs[:200], runs[200]
    pop = Population(
        [TrialHistory(i, {e: v for e, v in enumerate(r.values, 1)}, "COMPLETE", r.outcome) for i, r in enumerate(finished)],
        direction="minimize", metric="val_loss", max_epochs=51,
    )
    me = TrialHistory(200, {e: v for e, v in enumerate(current.values[:10], 1)})
    core = _time(lambda: decide(me, pop))
    # The slowest path: without the rank cut the curve forecast decides, and reads the outcome's
    # noise from the finished trials before it prunes.
    forecast_policy = Policy(rank_cut=0.0)
    forecast = _time(lambda: decide(me, pop, forecast_policy))
    source, forecast_source = decide(me, pop).source, decide(me, pop, forecast_policy).source
    # The forecaster's rule: features against the 200 finished trials, then the quantile model.
    learned_policy = Policy(rule="forecast")
    decide(me, pop, learned_policy)  # the model is parsed once per process, before timing
    learned = _time(lambda: decide(me, pop, learned_policy))
    learned_source = decide(me, pop, learned_policy).source
    # Policy(forecast_calibration=15) recalibrates P on the study's finished trials; that is cached
    # (keyed by their data and the epoch): a decision that meets new finished trials, or a new epoch,
    # computes it. Time both.
    from automl.decision import forecast as forecast_check

    calibrated_policy = Policy(rule="forecast", forecast_calibration=15)
    decide(me, pop, calibrated_policy)
    calibrated = _time(lambda: decide(me, pop, calibrated_policy))

    def cold() -> None:
        forecast_check._RETRO.clear()
        decide(me, pop, calibrated_policy)

    calibrated_cold = _time(cold, repeat=300)
    amortized = {}
    for name, pol in (("forecast_calibration=15", calibrated_policy), ("default (off)", learned_policy)):
        forecast_check._RETRO.clear()
        t = time.perf_counter()
        res = replay_task(runs, "forecast", seed=0, trials=200, policy=pol)
        amortized[name] = ((time.perf_counter() - t) * 1e6 / res.cost_epochs, res.cost_epochs)

    study = optuna.create_study(pruner=SignalPruner(max_epochs=51))
    for r in finished:
        t = study.ask()
        for e, v in enumerate(r.values, 1):
            t.report(v, e)
        study.tell(t, r.outcome if r.outcome == r.outcome else None, state=None if r.outcome == r.outcome else optuna.trial.TrialState.FAIL)
    trial = study.ask()
    for e, v in enumerate(current.values[:10], 1):
        trial.report(v, e)
    frozen = study.get_trials(deepcopy=False)[-1]  # what Trial.should_prune hands the pruner
    adapter = _time(lambda: study.pruner.prune(study, frozen))

    def stats(xs: list[float]) -> str:
        q = statistics.quantiles(xs, n=100)
        return f"{statistics.median(xs):.0f} | {q[94]:.0f}"

    machine = f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}"
    lines = [
        "# Decision speed of the signal pruner at 200 finished trials",
        "",
        "Command: `python benchmarks/decision_speed.py`  ",
        f"Machine: {machine}. 2000 calls each (300 uncached), a running trial at epoch 10 of 51, 200 finished TaskSet runs.",
        "",
        "| what | decided by | median µs | p95 µs |",
        "|---|---|---:|---:|",
        f"| `automl.decide` (pure core) | {source} | {stats(core)} |",
        f"| `automl.decide`, `Policy(rank_cut=0)` | {forecast_source} | {stats(forecast)} |",
        f"| `automl.decide`, `Policy(rule=\"forecast\")` (the forecaster) | {learned_source} | {stats(learned)} |",
        f"| the same, `forecast_calibration=15` (P recalibrated on the study; cached) | {learned_source} | {stats(calibrated)} |",
        f"| the same, not cached (the first decision at this epoch since a trial finished) "
        f"| {learned_source} | {stats(calibrated_cold)} |",
        f"| `SignalPruner.prune` (in-memory study) | {source} | {stats(adapter)} |",
        "",
        "Over a whole sequential study (this task's runs replayed through Optuna with `SignalPruner(Policy(rule=\"forecast\", ...))`, "
        "seed 0, everything included: Optuna's storage, the adapter, the decision), per report:",
        "",
        "| study calibration | reports | µs per report |",
        "|---|---:|---:|",
        *(f"| {k} | {n} | {us:.0f} |" for k, (us, n) in amortized.items()),
    ]
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "decision_speed.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
