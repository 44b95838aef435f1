"""Replay recorded learning curves through pruners: the project's measuring instrument.

For each task of a bank and each seed, a fixed random order of runs (the same for every pruner)
is fed epoch by epoch:

- to Optuna pruners through ask/tell on an in-memory study (``none``, ``median``,
  ``percentile25``, ``asha``, ``hyperband``, ``patient``, ``signal``);
- to Ray Tune schedulers by calling their callbacks directly, without starting Ray
  (``ray-asha``, ``ray-median``, ``signal-ray``);
- and to two bounds: ``topk1`` (every run one epoch, the best 10% to the end) and ``oracle``
  (knows the outcomes: one epoch per loser, the full budget for the best run).

Per task and seed: **cost** = epochs consumed; **regret** = best outcome among the drawn runs
minus the outcome of the best run the pruner let finish (in the metric's units, >= 0);
**norm_regret** = regret / (best - median outcome); **kept_best** = the best run (any of them, if several tie) was never pruned.
A run's outcome is its metric's last value; a run that ended non-finite is the worst outcome.

With ``Policy(convergence="dynamics")`` and banks that carry the activation trace (``act_rms``,
``act_steps``), ``signal`` and ``signal-ray`` also stop converged runs: each run's convergence
rule is replayed epoch by epoch as a probe would apply it (:func:`run_dynamics`), and a run stopped
as converged finishes with the value it reached then (its outcome for the regret).
"""

from __future__ import annotations

import math
import warnings
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Optional

import numpy as np

from automl.bench.bank import Run
from automl.decision import Policy
from automl.reporting import store_record
from automl.validation import check_positive_int, finite_or_none

__all__ = ["run_dynamics", "steps_per_epoch", "PRUNERS", "OPTUNA_PRUNERS", "RAY_SCHEDULERS", "RAY_NAMES", "BOUNDS", "ReplayResult",
           "make_pruner", "replay_task", "replay", "summarize", "draw_order", "sequential_reads"]

OPTUNA_PRUNERS = ("none", "median", "percentile25", "asha", "hyperband", "patient", "signal", "forecast")
RAY_SCHEDULERS = ("ray-asha", "ray-median", "signal-ray", "forecast-ray")
BOUNDS = ("topk1", "oracle")
PRUNERS = OPTUNA_PRUNERS + RAY_SCHEDULERS + BOUNDS


@dataclass(frozen=True)
class ReplayResult:
    """One pruner on one task and seed."""

    seed: int
    cost_epochs: int
    regret: Optional[float]  # None: the pruner let no run with a finite outcome finish
    norm_regret: Optional[float]
    kept_best: bool
    n_pruned: int
    n_converged: int = 0


def draw_order(task: str, n_runs: int, seed: int, trials: int) -> np.ndarray:
    """Indices of the runs fed in this order; the same for every pruner (task and seed fix it)."""
    rng = np.random.default_rng([seed, zlib.crc32(task.encode())])
    return rng.permutation(n_runs)[: min(trials, n_runs)]


def sequential_reads(tasks: dict, seeds: int, trials: int, *, min_done: int = 3,
                     per_trial: int = 3) -> Iterator[tuple[list[np.ndarray], list[int], int, int]]:
    """Real studies read as the forecaster is trained: for each task and seed, the first ``trials``
    runs of the drawn order (signed, lower is better), and for each run ``i`` with at least
    ``min_done`` earlier runs finished (every earlier run ran to its end) a few of its epochs ``e``
    (up to ``per_trial``, drawn with the seed, before it diverged and before its last):
    ``(curves, done, i, e)``, ``done`` the earlier runs with a finite final value."""
    for task, runs in tasks.items():
        for seed in range(seeds):
            order = draw_order(task, len(runs), seed, trials)
            rng = np.random.default_rng([seed, 11])
            sign = 1.0 if runs[0].direction == "minimize" else -1.0
            curves = [sign * np.asarray(runs[i].values, dtype=float) for i in order]
            for i in range(min_done, len(curves)):
                done = [j for j in range(i) if np.isfinite(curves[j][-1])]
                c = curves[i]
                ok = np.isfinite(c)
                last = len(c) if ok.all() else int(np.argmin(ok))
                if len(done) < min_done or last < 2 or len(c) < 3:
                    continue
                for e in sorted(set(rng.integers(1, min(last, len(c) - 1) + 1, size=per_trial).tolist())):
                    yield curves, done, i, e


def _signed_outcomes(runs: Sequence[Run], sign: float) -> np.ndarray:
    out = np.array([sign * r.outcome for r in runs], dtype=float)
    out[~np.isfinite(out)] = np.inf  # diverged at the end: the worst outcome
    return out


def steps_per_epoch(run: Run) -> Optional[int]:
    """Optimizer steps per epoch of a recorded run: stored by ``automl bench record``, or inferred
    from the trace (logged every k steps from step k) and the budget; ``None`` if undetermined."""
    sig = run.signals
    if sig.get("steps_per_epoch"):
        return int(sig["steps_per_epoch"])
    steps, k = sig.get("act_steps") or [], int(sig.get("every_k_steps") or 0)
    if not steps or k < 1:
        return None
    last, epochs = int(steps[-1]), run.budget
    fits = [spe for spe in range(max(1, last // epochs), last // epochs + 2) if 0 <= spe * epochs - last < k]
    return fits[0] if len(fits) == 1 else None


def run_dynamics(run: Run, rule: Optional[dict] = None) -> Optional[int]:
    """The epoch at whose end a probe applying the convergence rule to ``run``'s activation trace
    would first report it converged (``None``: never, or the bank has no trace)."""
    from automl.signals.dynamics import converged_epoch

    rms, steps, spe = run.signals.get("act_rms"), run.signals.get("act_steps"), steps_per_epoch(run)
    if not rms or not steps or spe is None:
        return None
    x = np.array([[math.nan if v is None else v for v in row] for row in rms], dtype=float).T
    epoch, _ = converged_epoch(x, steps, spe, **(rule or {}))
    return epoch


def _dyn_record(epoch: int, converged: Optional[int]) -> dict:
    """The record a probe would report at ``epoch`` (only what the convergence check reads)."""
    return {"epoch": epoch, "dynamics": {"converged_step": epoch} if converged is not None and epoch >= converged else {}}


# -- feeding runs to each kind of pruner: returns the epochs each run consumed, and which runs ------
# -- stopped as converged (those finish with the value they reached) -------------------------------
def _bank_record(run: Run, epoch: int) -> dict:
    """The ``EpochRecord.compact()`` dict a probe would have stored at ``epoch``: the curves, and
    per-layer gradient and weight statistics where the bank has them (for the failure classifier)."""
    i = epoch - 1
    rec: dict[str, Any] = {}
    for key in ("train_loss", "val_loss", "train_acc", "val_acc", "test_loss", "test_acc"):
        c = run.curves.get(key)
        if c is not None and i < len(c):
            rec[key] = finite_or_none(c[i])
    sig = run.signals
    if sig.get("grad_norm") and i < len(sig["grad_norm"]):
        cols = [sig.get(k, [])[i] if i < len(sig.get(k, [])) else None for k in ("grad_norm", "zero_grad_frac", "weight_norm")]
        rec["layers"] = [{"name": str(j), "grad_norm": g, "zero_grad_frac": z, "weight_norm": w}
                         for j, (g, z, w) in enumerate(zip(*[c or [None] * len(cols[0]) for c in cols]))]
    return rec


def _flat_record(run: Run, epoch: int) -> dict:
    """What ``automl.records.tune_metrics`` would have reported to Ray Tune at ``epoch``."""
    from automl.diagnosis import run_from_records

    flat = run_from_records([_bank_record(run, epoch)])
    return {key: v[0] if isinstance(v, list) else v for key, v in flat.items() if key != "n_classes"}


#: The Ray Tune scheduler each replay name stands for (Optuna's pruners keep their own names).
RAY_NAMES = {"ray-asha": "asha", "ray-median": "median", "signal-ray": "signal", "forecast-ray": "forecast"}


#: Where a task's runs differ in length, each replayed trial carries its own budget as this
#: hyperparameter (Optuna) or config key (Ray), and the signal pruner reads it from there.
BUDGET_PARAM = "epochs"


def make_pruner(name: str, budget: int, policy: Optional[Policy] = None, *, metric: Optional[str] = None,
                mode: Optional[str] = None, per_trial_budget: bool = False) -> Any:
    """The pruner or scheduler a replay name stands for, built by :mod:`pruners`' registry exactly as
    ``automl search`` builds it (Ray's step by ``training_iteration``, one per replayed epoch).
    ``per_trial_budget``: the signal pruner reads each trial's budget from :data:`BUDGET_PARAM`."""
    from pruners import optuna_pruner, ray_scheduler

    own = BUDGET_PARAM if per_trial_budget else None
    if name in RAY_NAMES:
        return ray_scheduler(RAY_NAMES[name], max_t=budget, time_attr="training_iteration", policy=policy,
                             metric=metric, mode=mode, budget=own)
    if name in OPTUNA_PRUNERS:
        return optuna_pruner(name, max_epochs=budget, policy=policy, budget=own)
    raise ValueError(f"unknown pruner {name!r}; choose from {', '.join(OPTUNA_PRUNERS + RAY_SCHEDULERS)}.")


def _should_prune(trial: Any, name: str) -> bool:
    if name != "patient":
        return trial.should_prune()
    # PatientPruner takes np.nanmin over its patience window; a diverged trial's window is all NaN,
    # which numpy warns about. That is Optuna's behaviour to measure, not ours to report: the NaN
    # comparison is false and Patient lets the diverged trial go on, as it would in a real study.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="All-NaN slice encountered", category=RuntimeWarning)
        return trial.should_prune()


def _varied(runs: Sequence[Run]) -> bool:
    """Whether the runs differ in budget (then each trial says its own)."""
    return len({r.budget for r in runs}) > 1


def _feed_optuna(name: str, runs: Sequence[Run], direction: str, budget: int, policy: Optional[Policy] = None,
                 conv: Optional[Sequence[Optional[int]]] = None) -> tuple[list[int], list[bool]]:
    import optuna
    from optuna.trial import TrialState

    from automl.decision import TrialHistory, converged_verdict

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    # A fixed study name: Hyperband assigns brackets from a hash of the study name and trial number.
    study = optuna.create_study(study_name="replay", direction=direction, pruner=make_pruner(name, budget, policy, per_trial_budget=_varied(runs)),
                                sampler=optuna.samplers.RandomSampler(seed=0))
    if runs:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study.set_metric_names([runs[0].metric])  # names the metric in prune reasons
    consumed, converged = [], []
    # The capacitance model reads βeff from the trials' records, as automl.report stores them.
    feed_beta = policy is not None and policy.capacitance != "off" and name == "signal"
    # The training loop asks the probe (Probe.should_stop) after the pruner, as the examples do.
    feed_dyn = policy is not None and policy.convergence != "off" and name == "signal" and conv is not None
    # The failure classifier reads the trial's curves and gradient statistics from its records.
    feed_fail = policy is not None and policy.failure != "off" and name == "signal"
    varied = _varied(runs)
    for i, run in enumerate(runs):
        trial = study.ask()
        if varied:  # the run's budget is a hyperparameter of its trial, as in a budget search
            trial.suggest_int(BUDGET_PARAM, run.budget, run.budget)
        used = 0
        stopped = done = False
        beta = run.signals.get("beta_eff") if feed_beta else None
        for epoch, value in enumerate(run.values, 1):
            record: dict = {"epoch": epoch}
            if beta is not None and epoch <= len(beta):
                record["beta_eff"] = beta[epoch - 1]
            if feed_dyn:
                record.update(_dyn_record(epoch, conv[i]))  # type: ignore[index]
            if feed_fail:
                record.update(_bank_record(run, epoch))
            if len(record) > 1:
                store_record(trial, epoch, record)
            trial.report(value, epoch)
            used = epoch
            if epoch < run.budget and _should_prune(trial, name):
                stopped = True
                break
            if feed_dyn and epoch < run.budget:
                history = TrialHistory(trial.number, dict(enumerate(run.values[:epoch], 1)), records=[record])
                if converged_verdict(history, direction, policy) is not None:  # type: ignore[arg-type]
                    done = True
                    break
        if stopped:
            study.tell(trial, state=TrialState.PRUNED)
        elif done and math.isfinite(run.values[used - 1]):
            study.tell(trial, run.values[used - 1])
        elif not done and math.isfinite(run.outcome):
            study.tell(trial, run.outcome)
        else:
            study.tell(trial, state=TrialState.FAIL)
        consumed.append(used if stopped or done else run.budget)
        converged.append(done)
    return consumed, converged


class _SequentialController:
    """What a scheduler may ask of Tune's controller in a sequential replay: no trial waits."""

    def get_live_trials(self) -> list:
        return []


def _feed_ray(name: str, runs: Sequence[Run], direction: str, budget: int, policy: Optional[Policy] = None,
             conv: Optional[Sequence[Optional[int]]] = None) -> tuple[list[int], list[bool]]:
    from ray.tune.experiment import Trial
    from ray.tune.schedulers import TrialScheduler

    metric = runs[0].metric if runs else "value"
    varied = _varied(runs)
    scheduler = make_pruner(name, budget, policy, metric=metric, mode="min" if direction == "minimize" else "max",
                            per_trial_budget=varied)
    controller = _SequentialController()
    feed_dyn = policy is not None and policy.convergence != "off" and name == "signal-ray" and conv is not None
    feed_fail = policy is not None and policy.failure != "off" and name == "signal-ray"
    consumed, converged = [], []
    for i, run in enumerate(runs):
        trial = Trial("__replay", config={BUDGET_PARAM: run.budget} if varied else None, trial_id=f"r{i:05d}", stub=True)
        scheduler.on_trial_add(controller, trial)
        used, result = 0, {}
        stopped = False
        for epoch, value in enumerate(run.values, 1):
            result = {metric: value, "training_iteration": epoch}
            if feed_dyn and conv[i] is not None and epoch >= conv[i]:  # type: ignore[index, operator]
                result["dynamics_converged_step"] = epoch  # as automl.report flattens the record
            if feed_fail:
                result.update(_flat_record(run, epoch))
            used = epoch
            decision = scheduler.on_trial_result(controller, trial, result)
            if decision == TrialScheduler.STOP and epoch < run.budget:
                stopped = True
                break
        scheduler.on_trial_complete(controller, trial, result)
        verdict = getattr(scheduler, "verdicts", {}).get(trial.trial_id) if stopped else None
        consumed.append(used if stopped else run.budget)
        converged.append(verdict is not None and verdict.action == "converged")
    return consumed, converged


def _feed_bound(name: str, runs: Sequence[Run], direction: str, budget: int, policy: Optional[Policy] = None,
                conv: Optional[Sequence[Optional[int]]] = None) -> tuple[list[int], list[bool]]:
    sign = 1.0 if direction == "minimize" else -1.0
    none = [False] * len(runs)
    if name == "oracle":
        outcomes = _signed_outcomes(runs, sign)
        best = int(np.argmin(outcomes))
        return [run.budget if i == best else 1 for i, run in enumerate(runs)], none
    # topk1: every run one epoch, then the best 10% (at least one) by epoch-1 value to the end.
    first = np.array([sign * r.values[0] for r in runs], dtype=float)
    first[~np.isfinite(first)] = np.inf
    k = max(1, int(math.ceil(0.1 * len(runs))))
    keep = set(np.argsort(first, kind="stable")[:k].tolist())
    return [run.budget if i in keep else 1 for i, run in enumerate(runs)], none


def _feeder(name: str) -> Callable[..., list[int]]:
    if name in OPTUNA_PRUNERS:
        return _feed_optuna
    if name in RAY_SCHEDULERS:
        return _feed_ray
    if name in BOUNDS:
        return _feed_bound
    raise ValueError(f"unknown pruner {name!r}; choose from {', '.join(PRUNERS)}.")


def replay_task(runs: Sequence[Run], pruner: str, *, seed: int, trials: int, policy: Optional[Policy] = None,
                converged_epochs: Optional[Sequence[Optional[int]]] = None) -> ReplayResult:
    """Replay one task's runs (already grouped) through one pruner for one seed; ``policy``
    replaces ``Policy()`` for ``signal`` and ``signal-ray``. ``converged_epochs`` (one per run,
    from :func:`run_dynamics`) is computed here when the policy stops converged runs and it is
    not given."""
    if not runs:
        raise ValueError("a task needs at least one run to replay.")
    feed = _feeder(pruner)
    task = runs[0].task
    order = draw_order(task, len(runs), seed, trials)
    drawn = [runs[i] for i in order]
    direction = drawn[0].direction
    budget = max(r.budget for r in drawn)
    conv = None
    if policy is not None and policy.convergence != "off" and pruner in ("signal", "signal-ray"):
        if converged_epochs is None:
            converged_epochs = [run_dynamics(r) for r in runs]
        conv = [converged_epochs[i] for i in order]
    consumed, converged = feed(pruner, drawn, direction, budget, policy, conv)
    sign = 1.0 if direction == "minimize" else -1.0
    outcomes = _signed_outcomes(drawn, sign)
    # What each run finished with: its last value, or the value reached when stopped as converged.
    reached = np.array([sign * r.values[c - 1] if done else o for r, c, done, o in zip(drawn, consumed, converged, outcomes)])
    reached[~np.isfinite(reached)] = np.inf
    finished = np.array([c >= r.budget or done for c, r, done in zip(consumed, drawn, converged)])
    best = outcomes.min()
    # Runs that tie for the best outcome are equally the best: keeping any of them keeps it.
    best_runs = outcomes == best
    finished_outcomes = reached[finished]
    best_kept = float(finished_outcomes.min()) if finished_outcomes.size else math.inf
    regret = best_kept - best if math.isfinite(best_kept) and math.isfinite(best) else None
    finite = outcomes[np.isfinite(outcomes)]
    spread = float(np.median(finite) - best) if finite.size else 0.0
    norm = (regret / spread if spread > 0 else 0.0) if regret is not None else None
    return ReplayResult(
        seed=seed,
        cost_epochs=int(sum(consumed)),
        regret=None if regret is None else float(regret),
        norm_regret=None if norm is None else float(norm),
        kept_best=bool(finished[best_runs].any()),
        n_pruned=int((~finished).sum()),
        n_converged=int(sum(converged)),
    )


def _replay_cell(args: tuple) -> tuple[str, str, list[dict]]:
    task, runs, pruner, seeds, trials, policy = args
    conv = None
    if policy is not None and policy.convergence != "off" and pruner in ("signal", "signal-ray"):
        conv = [run_dynamics(r) for r in runs]  # once per task, not once per seed
    return task, pruner, [asdict(replay_task(runs, pruner, seed=s, trials=trials, policy=policy, converged_epochs=conv))
                          for s in seeds]


def replay(
    tasks: dict[str, Sequence[Run]],
    pruners: Iterable[str],
    *,
    seeds: int = 5,
    trials: int = 200,
    jobs: int = 1,
    policy: Optional[Policy] = None,
    progress: Optional[Callable[[str, str], None]] = None,
) -> dict[str, Any]:
    """Replay every task through every pruner for ``seeds`` seeds; returns the JSON document
    ``{"tasks": {TASK: {PRUNER: [per-seed results]}}, "summary": {PRUNER: {...}}}``."""
    pruners = list(pruners)
    unknown = [p for p in pruners if p not in PRUNERS]
    if unknown:
        raise ValueError(f"unknown pruners {unknown}; choose from {', '.join(PRUNERS)}.")
    seeds = check_positive_int("seeds", seeds)
    trials = check_positive_int("trials", trials)
    cells = [(task, list(runs), p, list(range(seeds)), trials, policy) for task, runs in tasks.items() for p in pruners]
    out: dict[str, dict[str, list[dict]]] = {task: {} for task in tasks}
    if jobs > 1:
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(max_workers=jobs) as pool:
            for task, pruner, rows in pool.map(_replay_cell, cells):
                out[task][pruner] = rows
                if progress:
                    progress(task, pruner)
    else:
        for cell in cells:
            task, pruner, rows = _replay_cell(cell)
            out[task][pruner] = rows
            if progress:
                progress(task, pruner)
    for task in out:  # a stable order: the order the pruners were asked in
        out[task] = {p: out[task][p] for p in pruners}
    return {"tasks": out, "summary": summarize(out)}


def summarize(tasks: dict[str, dict[str, list[dict]]]) -> dict[str, dict[str, Optional[float]]]:
    """Per pruner: median cost ratio vs ``none`` (same task and seed), median norm_regret, kept_best rate."""
    pruners: list[str] = []
    for per in tasks.values():
        pruners += [p for p in per if p not in pruners]
    summary = {}
    for p in pruners:
        ratios, norms, kept = [], [], []
        for per in tasks.values():
            base = {r["seed"]: r["cost_epochs"] for r in per.get("none", [])}
            for r in per.get(p, []):
                if r["seed"] in base and base[r["seed"]] > 0:
                    ratios.append(r["cost_epochs"] / base[r["seed"]])
                norms.append(math.inf if r["norm_regret"] is None else r["norm_regret"])
                kept.append(r["kept_best"])
        summary[p] = {
            "median_cost_ratio_vs_none": float(np.median(ratios)) if ratios else None,
            "median_norm_regret": finite_or_none(np.median(norms)) if norms else None,
            "kept_best_rate": float(np.mean(kept)) if kept else None,
        }
    return summary


def plot(doc: dict[str, Any], path: str) -> None:
    """Cost vs regret: one small dot per pruner and task (median over seeds), one large marker
    per pruner (median over tasks and seeds); the x axis is the cost ratio to ``none``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5.5))
    cmap = plt.get_cmap("tab20")
    pruners = list(doc["summary"])
    for k, p in enumerate(pruners):
        color = cmap(k % 20)
        xs, ys = [], []
        for per in doc["tasks"].values():
            base = {r["seed"]: r["cost_epochs"] for r in per.get("none", [])}
            rows = per.get(p, [])
            ratios = [r["cost_epochs"] / base[r["seed"]] for r in rows if base.get(r["seed"])]
            norms = [r["norm_regret"] for r in rows if r["norm_regret"] is not None]
            if ratios and norms:
                xs.append(float(np.median(ratios)))
                ys.append(float(np.median(norms)))
        ax.scatter(xs, ys, s=12, color=color, alpha=0.45)
        s = doc["summary"][p]
        if s["median_cost_ratio_vs_none"] is not None and s["median_norm_regret"] is not None:
            ax.scatter([s["median_cost_ratio_vs_none"]], [s["median_norm_regret"]], s=90, color=color,
                       edgecolor="black", label=f"{p} (kept best {s['kept_best_rate']:.0%})", zorder=3)
    ax.set_xscale("log")
    ax.set_xlabel("epochs consumed / epochs of no pruning (median over seeds; log)")
    ax.set_ylabel("normalised regret (median over seeds)")
    ax.set_title(f"Replay: {len(doc['tasks'])} tasks; dots = tasks, circles = all tasks")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, loc="upper right", ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
