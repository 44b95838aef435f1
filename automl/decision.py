"""The one decision core: ``decide(trial_history, population, policy) -> Verdict``.

Both adapters (the Optuna pruner and the Ray Tune scheduler) turn their trials into
``TrialHistory`` objects and call :func:`decide`, so a study decides the same whichever
backend or worker asks. ``decide`` is a pure function of its arguments: it reads numbers, never
a storage, and has no randomness, so any verdict can be reproduced from stored records.

Order of checks (cheapest and most certain first):

1. no value yet -> continue;
2. a non-finite metric value, or a non-finite loss in the last record -> prune
   ("diverged at epoch 3: val_loss=nan"); then, at the budget (``max_epochs``) -> continue;
3. the current incumbent (best value at this epoch among all trials, or already better than
   every finished trial) -> continue, always; with ``Policy(protect_top=q)``, so does a
   *contender*: a trial in the top ``q`` of every trial that reached this epoch or stopped
   before it (a trial stopped earlier counts as behind); with ``Policy(failure="model")``, a trial
   the failure meta-classifier labels a sure failure is pruned ("failure"); with
   ``Policy(rank_cut=c)``, a trial with more than the fraction ``c`` of those trials ahead of it is
   pruned ("rank");
4. with ``Policy(capacitance="auto")`` and βeff in the records: a population model fitted on the
   finished trials (βeff, its change, the metric, its change at this epoch -> final value) is used
   only where it predicts the finished trials' ends better than the same model without βeff
   (leave-one-out error): the learned weights decide how much βeff counts, and the data decide
   whether it counts at all. Prune when its optimistic end cannot beat the best finished trial;
5. enough finished peers seen at this epoch -> curve forecast: prune when even its optimistic
   end cannot beat the best finished trial;
6. otherwise the evidence is thin -> the fallback rule (median, as Optuna's ``MedianPruner``),
   or "thin" for an adapter that wraps a classic pruner of its own.

"Will lose" and "will not gain" are different verdicts. With ``Policy(convergence="dynamics")``,
a trial that none of the checks above prunes is stopped as ``converged`` (see
:func:`converged_verdict`) when the probe found its layer dynamics settled and its metric has not
improved for ``convergence_patience`` epochs: it finishes normally with the value it reached.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple, Optional

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator

from automl.signals.curve import forecast_final, median_at_step, rank_correlation, rank_tail

__all__ = ["TrialHistory", "Population", "Policy", "Verdict", "decide", "converged_verdict"]

Direction = Literal["minimize", "maximize"]
Action = Literal["continue", "prune", "converged"]
Source = Literal["no_data", "budget", "divergence", "incumbent", "contender", "rank", "capacitance", "curve", "fallback", "thin", "dynamics", "failure"]

_FINISHED_OK = "COMPLETE"
_LOSS_KEYS = ("train_loss", "val_loss")


class TrialHistory(NamedTuple):
    """What is known of one trial: its metric per epoch, and its final value once finished.

    Attributes:
        number: the trial's number in its study (Optuna's ``trial.number``, or Ray's order).
        values: metric value per epoch (1-based step -> value); ``nan``/``inf`` mark divergence.
        state: ``"RUNNING"``, ``"COMPLETE"``, ``"PRUNED"`` or ``"FAIL"`` (Optuna's names).
        final: the objective value of a ``COMPLETE`` trial.
        records: the trial's ``EpochRecord`` dicts (``EpochRecord.compact()``: a key holding
            ``None`` is a non-finite value, an absent key was not measured), oldest first.
    """

    number: int
    values: Mapping[int, float]
    state: str = "RUNNING"
    final: Optional[float] = None
    records: Sequence[Mapping[str, Any]] = ()

    @property
    def last_step(self) -> Optional[int]:
        return max(self.values) if self.values else None


@dataclass(frozen=True, slots=True)
class Population:
    """The other trials of the study, and how to read their metric."""

    trials: Sequence[TrialHistory]
    direction: Direction = "minimize"
    metric: str = "value"
    max_epochs: Optional[int] = None  # the budget; at it, stopping saves nothing

    def __post_init__(self) -> None:
        if self.direction not in ("minimize", "maximize"):
            raise ValueError(f"direction must be 'minimize' or 'maximize', but got {self.direction!r}.")


class Policy(BaseModel):
    """How ``decide`` weighs the evidence. One pydantic model: it validates on construction.

    Attributes:
        min_finished: finished peers with a value at this epoch needed before the curve
            forecast decides; below it the evidence is thin and the fallback rule applies.
        min_epochs: no curve-forecast pruning before this epoch.
        protect_top: a trial ranked in this top fraction at its epoch, among every trial that
            reached the epoch or stopped before it (those count as behind), is never pruned by
            the failure classifier, the capacitance model, the forecast or the median rule
            (divergence still prunes it): the eventual best run is usually
            near the top from epoch 2, if rarely first (benchmarks/results/best_run_rank.md). 0 = off.
        rank_cut: from epoch ``rank_cut_from`` on, prune a trial with more than this fraction of
            the trials ahead of it at its epoch (every trial that reached the epoch or stopped
            before it, stopped ones counting as behind), once ``min_finished`` trials finished:
            the eventual best run is rarely outside the top quarter from epoch 2 on
            (benchmarks/results/best_run_rank.md), and the curve forecast needs epochs to be sure.
            0 = off.
        rank_cut_from: the first epoch the rank cut applies (epoch 1 ranks the best run anywhere).
        rank_confidence: 0 = the rank cut reads the fraction ahead as it is, and waits for
            ``min_finished`` finished trials. Above 0, it prunes only where a trial standing exactly
            at the cut would see so many trials ahead with probability at most ``1 - rank_confidence``
            (a one-sided binomial test, :func:`automl.signals.curve.rank_tail`): sure with many
            trials to compare, cautious with few, so it waits for no finished trial.
        noise_margin: prune only if the optimistic forecast is worse than the best finished
            value by more than this many times the outcome's noise: the median over the 16 latest
            finished trials of the epoch-to-epoch spread of their last 6 values (a last value measured on a
            small validation set can end best by luck). 0 = off.
        n_neighbors: peers used by the forecast (at least; more with many finished trials).
        band: central mass of the forecast's uncertainty band; the optimistic end is its
            lower ``(1 - band) / 2`` quantile.
        margin: prune only if the optimistic forecast is worse than the best finished value
            by more than this (metric units).
        optimism: the optimistic end of the forecast: the band's lower quantile over the
            nearest finished trials (``"neighbors"``), or also no later than the largest
            improvement any finished trial made from this epoch (``"all"``: fewer lost late
            bloomers, more epochs spent).
        min_rank_corr: the curve decides at an epoch only if, among finished trials, the value
            at that epoch ranks their final values at least this well (Spearman); below it the
            epoch says too little about the end and the evidence counts as thin. 0 = off.
        fallback: rule while evidence is thin: ``"median"`` (Optuna's MedianPruner rule) or
            ``"none"`` (continue; an adapter may then ask a classic pruner it wraps).
        fallback_startup_trials: finished trials needed before the median rule prunes.
        fallback_warmup_epochs: the median rule does not prune before this epoch.
        capacitance: ``"off"``, or ``"auto"``: use βeff from the records (``EpochRecord.beta_eff``)
            through a population model, where it beats the curve-only model on the finished
            trials (see the module docstring). Needs records of the finished trials.
        capacitance_min_finished: finished trials with βeff at this epoch needed to fit it.
        capacitance_min_epochs: no capacitance pruning before this epoch.
        capacitance_min_gain: βeff counts only if it lowers the leave-one-out error of the
            curve-only model by at least this fraction.
        convergence: ``"off"``, or ``"dynamics"``: stop a trial as converged when the probe's
            convergence rule over layer activations has fired (``EpochRecord.dynamics``, see
            :func:`automl.signals.dynamics.convergence`) and the metric confirms it.
        convergence_patience: the confirmation: the best value of the last this many epochs is
            no better than the best before them (by more than ``convergence_tol``).
        convergence_tol: improvement still counted as none, as a fraction of the improvement
            since epoch 1.
        failure: ``"off"``, or ``"model"``: prune a trial (never the incumbent) that the shipped
            failure meta-classifier (:func:`automl.diagnosis.diagnose`, on the trial's records)
            gives one of ``failure_labels`` with probability >= ``failure_threshold``.
        failure_labels: the labels that prune. "Will never be good" labels by default; ``shift``
            says the test data differ (every trial shares it), ``overfit`` and ``oscillation`` may
            still end best by the validation metric, ``plateau`` at a high level is convergence.
        failure_min_epochs: epochs read before the classifier may prune (it was validated at 3, 5, 8).
        failure_relative: labels that depend on the task's pace (:data:`RELATIVE_FAILURES`:
            ``underfit``, ``plateau``, ``oscillation``, ``overfit``) prune only a trial also behind
            the median of at least 3 finished peers at that epoch. ``False``: the classifier alone.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    # Defaults chosen by replay on TaskSet + our banks, in two grids, each judged on held-out tasks
    # (benchmarks/results/tune_signal.md; the first grid is in its git history). The first chose
    # the contender and noise guards: 95% of held-out task-seeds kept the best run (76% without).
    # The second, over them, chose the rank cut from epoch 2 with the forecast and the median rule
    # from epoch 5 (at epochs 3-4 they lost the eventual best run most often), and an 80% band:
    # 94% kept for 0.153 of the epochs (0.158 before; the forecast alone, with these epochs: 69%, 0.157).
    # A third added min_finished 2/3 and small (60-run) studies to the rule; it chose rank_cut 0.3,
    # band 0.95, min_finished 2, which kept the best run less often on every set it was not tuned on
    # (held-out 91%/86% vs 94%/89%; dynamics and capacitance banks 87%/83% vs 100%/97%): not adopted.
    # A fourth added rank_confidence 0.9 and chose that same policy again; rank_confidence stays off.
    min_finished: int = Field(5, ge=1)
    min_epochs: int = Field(5, ge=1)
    protect_top: float = Field(0.05, ge=0.0, lt=1.0)
    noise_margin: float = Field(4.0, ge=0.0)
    rank_cut: float = Field(0.4, ge=0.0, lt=1.0)
    rank_cut_from: int = Field(2, ge=1)
    rank_confidence: float = Field(0.0, ge=0.0, lt=1.0)
    n_neighbors: int = Field(15, ge=1)
    band: float = Field(0.8, gt=0.0, lt=1.0)
    margin: float = Field(0.0, ge=0.0)
    min_rank_corr: float = Field(0.0, ge=-1.0, le=1.0)
    optimism: Literal["neighbors", "all"] = "neighbors"
    fallback: Literal["median", "none"] = "median"
    fallback_startup_trials: int = Field(5, ge=0)
    fallback_warmup_epochs: int = Field(5, ge=0)
    capacitance: Literal["off", "auto"] = "off"
    capacitance_min_finished: int = Field(10, ge=4)
    capacitance_min_epochs: int = Field(2, ge=1)
    capacitance_min_gain: float = Field(0.1, ge=0.0, lt=1.0)
    # Chosen on development banks, measured on held-out ones (benchmarks/results/dynamics.md).
    convergence: Literal["off", "dynamics"] = "off"
    convergence_patience: int = Field(3, ge=1)
    convergence_tol: float = Field(0.0, ge=0.0, lt=1.0)
    failure: Literal["off", "model"] = "off"
    failure_threshold: float = Field(0.9, gt=0.0, le=1.0)
    failure_labels: tuple[str, ...] = ("nonfinite", "exploding_gradient", "vanishing_gradient", "dying_relu", "underfit")
    failure_min_epochs: int = Field(3, ge=2)
    failure_relative: bool = True

    @field_validator("failure_labels")
    @classmethod
    def _known_labels(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        from automl.signals.failure import LABELS

        bad = [x for x in v if x not in LABELS]
        if bad:
            raise ValueError(f"unknown failure label(s) {bad}; expected some of {list(LABELS)}.")
        return tuple(v)


class Verdict(BaseModel):
    """A decision with the reason a person can read and the numbers behind it.

    Attributes:
        action: ``"continue"``, ``"prune"`` (will lose) or ``"converged"`` (will not gain).
        reason: one sentence, e.g. ``"diverged at epoch 3: val_loss=nan"``.
        evidence: the numbers the reason rests on (JSON-ready; non-finite as ``None``).
        predicted_final: the forecast final metric value, in the metric's own units.
        source: which check decided (``divergence``, ``budget``, ``incumbent``, ``contender``,
            ``rank``, ``failure``, ``capacitance``,
            ``curve``, ``fallback``, ``thin``, ``no_data``, ``dynamics``).
    """

    model_config = ConfigDict(frozen=True, ser_json_inf_nan="null")

    action: Action
    reason: str
    evidence: dict[str, Any] = Field(default_factory=dict)
    predicted_final: Optional[float] = None
    source: Source

    @property
    def should_stop(self) -> bool:
        return self.action != "continue"


def _fmt(x: float) -> str:
    return f"{x:.4g}" if math.isfinite(x) else str(x)


def _finite(x: Any) -> bool:
    return x is not None and math.isfinite(x)


def _json_number(x: float) -> Optional[float]:
    return float(x) if _finite(x) else None


def decide(trial_history: TrialHistory, population: Population, policy: Optional[Policy] = None) -> Verdict:
    """Decide whether a running trial should continue, be pruned, or stop as converged.

    Args:
        trial_history: the trial asking, with its metric values so far.
        population: the study's other trials (any state); the trial itself may be among
            them, it is skipped by number.
        policy: thresholds; ``Policy()`` when omitted.

    Returns:
        A ``Verdict``. ``nan``/``inf`` in the trial's own values prune it ("diverged"); in
        other trials' values they are ignored at that epoch, and a finished trial with a
        non-finite final value counts as finished but never as the incumbent.

    Example:
        >>> done = [TrialHistory(i, {1: 1.0 + i, 2: 0.5 + i, 3: 0.4 + i}, "COMPLETE", 0.4 + i) for i in range(6)]
        >>> pop = Population(done, direction="minimize", metric="val_loss")
        >>> decide(TrialHistory(9, {1: 0.9}), pop).source
        'incumbent'
        >>> v = decide(TrialHistory(9, {1: 4.0, 2: float("nan")}), pop)
        >>> v.action, v.reason
        ('prune', 'diverged at epoch 2: val_loss=nan')
        >>> v = decide(TrialHistory(9, {1: 5.0, 2: 4.5}), pop)
        >>> v.action, v.reason
        ('prune', 'rank 5 of 7 trials at epoch 2: more than 40% of the trials are ahead (val_loss 4.5)')
        >>> v = decide(TrialHistory(9, {1: 5.0, 2: 4.5, 3: 4.4}), pop, Policy(min_epochs=3, rank_cut=0))
        >>> v.action, v.source
        ('prune', 'curve')
    """
    policy = policy or _DEFAULT_POLICY
    verdict = _decide(trial_history, population, policy)
    if verdict.action == "continue" and verdict.source not in ("budget", "no_data") and policy.convergence != "off":
        stop = converged_verdict(trial_history, population.direction, policy, metric=population.metric)
        if stop is not None:
            return stop
    return verdict


def _final_noise(trials: Sequence[TrialHistory], me: int, last: int = 6, most: int = 16) -> float:
    """How much a finished trial's value moves from epoch to epoch near its end: the median, over
    the ``most`` latest finished trials, of the standard deviation of the differences of their last
    ``last`` reported values, over sqrt 2 (the per-epoch noise of a flat curve; a steady trend does
    not count). Computed only when the forecast is about to prune: it reads many trials."""
    tails = []
    for t in reversed(trials):
        if t.number != me and t.state == _FINISHED_OK and len(t.values) >= last:
            end = next(reversed(t.values))  # the last reported step
            tails.append([t.values.get(s) for s in range(end - last + 1, end + 1)])
            if len(tails) == 2 * most:  # room for the diverged ones dropped below
                break
    if not tails:
        return 0.0
    arr = np.asarray(tails, dtype=float)  # a missing step (None) becomes nan
    arr = arr[np.isfinite(arr).all(axis=1)][:most]
    if not len(arr):
        return 0.0
    d = arr[:, 1:] - arr[:, :-1]
    d -= d.mean(axis=1, keepdims=True)
    spread = sorted(((d * d).mean(axis=1) ** 0.5).tolist())
    n = len(spread)
    return (spread[n // 2] + spread[(n - 1) // 2]) / 2.0 / math.sqrt(2.0)


def _rank_phrase(n_ahead: int, n_others: int, step: int) -> str:
    return f"rank {n_ahead + 1} of {n_others + 1} trials at epoch {step}"


def _rank_evidence(step: int, value: float, n_ahead: int, n_others: int, **threshold: float) -> dict[str, Any]:
    return {"epoch": step, "value": value, "rank": n_ahead + 1, "n_at_epoch": n_others + 1, **threshold}


def _decide(trial_history: TrialHistory, population: Population, policy: Policy) -> Verdict:
    metric = population.metric
    values = trial_history.values
    if not values:
        return Verdict(action="continue", reason="no value reported yet", source="no_data")
    step = max(values)

    # 2. Divergence: any non-finite value so far (the earliest is the one to report).
    for s in sorted(values):
        v = values[s]
        if not _finite(v):
            return Verdict(
                action="prune",
                reason=f"diverged at epoch {s}: {metric}={float(v)}",
                evidence={"epoch": s, "value": None},
                source="divergence",
            )

    # An accuracy can stay finite while the loss behind it has diverged: read the last record.
    if trial_history.records:
        last = trial_history.records[-1]
        for key in _LOSS_KEYS:
            if key in last and not _finite(last[key]):
                epoch = last.get("epoch", step)
                return Verdict(
                    action="prune",
                    reason=f"diverged at epoch {epoch}: {key}={'nan' if last[key] is None else float(last[key])}",
                    evidence={"epoch": epoch, key: None},
                    source="divergence",
                )

    if population.max_epochs is not None and step >= population.max_epochs:
        return Verdict(
            action="continue",
            reason=f"budget reached at epoch {step}: stopping now would save nothing",
            evidence={"epoch": step, "max_epochs": population.max_epochs},
            source="budget",
        )

    sign = 1.0 if population.direction == "minimize" else -1.0
    current = sign * values[step]
    best_so_far = min(sign * v for v in values.values())

    # One pass over the population: peers at this epoch and the best finished value.
    others_best_now = math.inf
    n_at_step = n_ahead = 0
    best_final, best_final_number = math.inf, None
    n_finished = 0
    peers_now: list[float] = []
    peers_final: list[float] = []
    me = trial_history.number
    # The hot path (one pass over up to hundreds of trials per decision): `x - x == 0` is True
    # exactly for finite floats, and plain comparisons replace min() calls.
    for t in population.trials:
        if t.number == me:
            continue
        v = t.values.get(step)
        if v is not None and v - v == 0:
            v = sign * v
            n_at_step += 1
            if v < current:
                n_ahead += 1
            if v < others_best_now:
                others_best_now = v
        else:
            v = None
            if t.state != "RUNNING" and t.values:
                # Stopped before this epoch: a pruned or failed trial is behind; one that finished
                # early (converged) is compared by its final value.
                n_at_step += 1
                if t.state == _FINISHED_OK and t.final is not None and sign * t.final < current:
                    n_ahead += 1
        if t.state != _FINISHED_OK:
            continue
        n_finished += 1
        f = t.final
        if f is None or f - f != 0:
            continue
        f = sign * f
        if f < best_final:
            best_final, best_final_number = f, t.number
        if v is not None:
            peers_now.append(v)
            peers_final.append(f)

    # 3. Never stop the incumbent: the leader at this epoch (among trials that reached it), or a
    # trial already better than every finished one. Alone at an epoch, a trial leads nothing.
    if current <= others_best_now < math.inf or best_so_far < best_final < math.inf:
        why = (
            f"already better than every finished trial ({metric} {_fmt(sign * best_so_far)})"
            if best_so_far < best_final
            else f"best {metric} at epoch {step} among all trials ({_fmt(values[step])})"
        )
        return Verdict(
            action="continue",
            reason=f"incumbent: {why}",
            evidence={"epoch": step, "value": values[step], "best_finished": _json_number(sign * best_final)},
            source="incumbent",
        )

    # 3a. A contender: in the top ``protect_top`` of every trial that reached this epoch or stopped before it.
    # Alone at an epoch, a trial is no contender (as it is no incumbent).
    if policy.protect_top > 0 and n_at_step > 0 and n_ahead < policy.protect_top * (n_at_step + 1):
        return Verdict(
            action="continue",
            reason=f"contender: {_rank_phrase(n_ahead, n_at_step, step)} (top {policy.protect_top:.0%} are never pruned)",
            evidence=_rank_evidence(step, values[step], n_ahead, n_at_step, protect_top=policy.protect_top),
            source="contender",
        )

    # 3b. Failure labels: the meta-classifier on this trial's own records. Before the rank cut: the
    # verdicts prune the same trials either way, and a named failure says more than a rank.
    if policy.failure == "model" and step >= policy.failure_min_epochs and trial_history.records:
        verdict = _failure(trial_history, policy, step, current, peers_now, sign, population.metric)
        if verdict is not None:
            return verdict

    # 3c. The rank cut: far behind the trials at this epoch (with a confidence: surely so).
    if (policy.rank_cut > 0 and step >= policy.rank_cut_from and n_ahead > policy.rank_cut * (n_at_step + 1)
            and (policy.rank_confidence > 0 or n_finished >= policy.min_finished)):
        rank, shown = _rank_phrase(n_ahead, n_at_step, step), f"{metric} {_fmt(values[step])}"
        evidence = _rank_evidence(step, values[step], n_ahead, n_at_step, rank_cut=policy.rank_cut)
        if policy.rank_confidence == 0:
            return Verdict(action="prune", reason=f"{rank}: more than {policy.rank_cut:.0%} of the trials are ahead ({shown})",
                           evidence=evidence, source="rank")
        tail = rank_tail(n_ahead, n_at_step, policy.rank_cut)
        if tail <= 1.0 - policy.rank_confidence:
            return Verdict(
                action="prune",
                reason=f"{rank} ({shown}): a trial in the top {policy.rank_cut:.0%} would see {n_ahead} of {n_at_step} "
                f"ahead with probability {tail:.2g}",
                evidence={**evidence, "rank_confidence": policy.rank_confidence, "p_value": tail},
                source="rank",
            )

    # 4. Capacitance: a population model on βeff, where it is informative.
    if policy.capacitance == "auto" and step >= policy.capacitance_min_epochs:
        verdict = _capacitance(trial_history, population, policy, step, sign, best_final, best_final_number)
        if verdict is not None:
            return verdict

    # 5. Curve forecast from finished peers at this epoch, if this epoch tells about the end.
    informative, rho = True, math.nan
    if policy.min_rank_corr > 0 and len(peers_now) >= policy.min_finished and step >= policy.min_epochs:
        rho = rank_correlation(np.asarray(peers_now), np.asarray(peers_final))
        informative = not math.isnan(rho) and rho >= policy.min_rank_corr
    if len(peers_now) >= policy.min_finished and step >= policy.min_epochs and informative:
        fc = forecast_final(
            current, np.asarray(peers_now), np.asarray(peers_final), n_neighbors=policy.n_neighbors, band=policy.band
        )
        low = fc.low
        if policy.optimism == "all":
            low = min(low, current + min(f - n for n, f in zip(peers_now, peers_final)))
        pred, optimistic, pessimistic = sign * fc.mean, sign * low, sign * fc.high
        evidence = {
            "epoch": step,
            "value": values[step],
            "predicted_final": pred,
            "optimistic_final": optimistic,
            "pessimistic_final": pessimistic,
            "band": policy.band,
            "n_neighbors": fc.n_neighbors,
            "n_finished_at_epoch": len(peers_now),
            "best_finished": sign * best_final,
            "best_finished_trial": best_final_number,
            "rank_corr_at_epoch": None if math.isnan(rho) else rho,
        }
        noise = 0.0
        if policy.noise_margin > 0 and low > best_final + policy.margin:
            noise = _final_noise(population.trials, me)
            evidence["noise"] = noise
        if low > best_final + policy.margin + policy.noise_margin * noise:
            beyond = f", even by {policy.noise_margin:g}x its noise {_fmt(noise)}" if noise > 0 else ""
            reason = (
                f"predicted final {metric} {_fmt(pred)} (optimistic {_fmt(optimistic)}, "
                f"{policy.band:.0%} band from the {fc.n_neighbors} finished trials closest at epoch {step}) "
                f"cannot beat the best finished trial #{best_final_number} ({_fmt(sign * best_final)}){beyond}"
            )
            return Verdict(action="prune", reason=reason, evidence=evidence, predicted_final=pred, source="curve")
        reason = (
            f"may still beat the best finished trial: optimistic final {metric} {_fmt(optimistic)} "
            f"vs {_fmt(sign * best_final)}"
            + (f" (within {policy.noise_margin:g}x the outcome's noise {_fmt(noise)})" if noise > 0 else "")
        )
        return Verdict(action="continue", reason=reason, evidence=evidence, predicted_final=pred, source="curve")

    # 6. Thin evidence.
    if not informative:
        shown = "undefined" if math.isnan(rho) else f"{rho:.2f}"
        thin = (f"at epoch {step} the curve barely ranks the {len(peers_now)} finished trials' final values "
                f"(Spearman {shown} < {policy.min_rank_corr})")
    else:
        thin = f"{len(peers_now)} finished trials reached epoch {step} (curve forecast needs {policy.min_finished})"
    if policy.fallback == "none":
        return Verdict(action="continue", reason=f"thin evidence: {thin}", evidence={"epoch": step}, source="thin")
    if n_finished < policy.fallback_startup_trials or step < policy.fallback_warmup_epochs or not peers_now:
        return Verdict(
            action="continue",
            reason=f"thin evidence: {thin}; median rule waits for "
            f"{policy.fallback_startup_trials} finished trials and epoch {policy.fallback_warmup_epochs}",
            evidence={"epoch": step, "n_finished": n_finished},
            source="fallback",
        )
    median = median_at_step(np.asarray(peers_now))
    evidence = {"epoch": step, "best_so_far": sign * best_so_far, "median": sign * median, "n_peers": len(peers_now)}
    if best_so_far > median:
        reason = (
            f"median rule (evidence thin): best {metric} so far {_fmt(sign * best_so_far)} is worse than the "
            f"median {_fmt(sign * median)} of {len(peers_now)} finished trials at epoch {step}"
        )
        return Verdict(action="prune", reason=reason, evidence=evidence, source="fallback")
    return Verdict(
        action="continue",
        reason=f"median rule (evidence thin): {metric} {_fmt(sign * best_so_far)} is within the median "
        f"{_fmt(sign * median)} at epoch {step}",
        evidence=evidence,
        source="fallback",
    )


def converged_verdict(trial_history: TrialHistory, direction: Direction, policy: Optional[Policy] = None, *,
                      metric: str = "value") -> Optional[Verdict]:
    """The ``converged`` verdict for a trial, or ``None``: the probe's convergence rule over its
    layer activations has fired (the last record's ``dynamics["converged_step"]``), and the metric
    agrees: its best value over the last ``convergence_patience`` epochs is no better than its best
    before them (within ``convergence_tol`` of the gain since epoch 1). ``decide`` asks it for a
    trial no other check stops; ``Probe.should_stop`` asks it directly.

    Example:
        >>> rec = {"epoch": 9, "dynamics": {"converged_step": 270, "volatility": 0.01, "volatility_peak": 0.05,
        ...        "dsi": 0.6, "integration": 1.2, "metastability": 0.05, "null_fired_share": 0.1}}
        >>> h = TrialHistory(0, {e: min(0.9, 0.5 + 0.1 * e) for e in range(1, 10)}, records=[rec])
        >>> converged_verdict(h, "maximize", Policy(convergence="dynamics"), metric="val_acc").reason[:40]
        'converged at epoch 9: the layer dynamics'
    """
    policy = policy or _DEFAULT_POLICY
    values = trial_history.values
    if not values or not trial_history.records:
        return None
    last = trial_history.records[-1]
    dyn = last.get("dynamics") or {}
    if dyn.get("converged_step") is None:
        return None
    step = max(values)
    m = policy.convergence_patience
    if len(values) <= m:
        return None
    sign = 1.0 if direction == "minimize" else -1.0
    ordered = [sign * values[s] for s in sorted(values)]
    if not all(_finite(v) for v in ordered):
        return None  # a diverged trial is pruned, not converged
    before, recent = min(ordered[:-m]), min(ordered[-m:])
    gain = max(ordered[0] - min(ordered), 0.0)
    if before - recent > policy.convergence_tol * gain:
        return None  # the metric still improves: the dynamics alone do not stop a trial
    peak = dyn.get("volatility_peak")
    evidence = {
        "epoch": step,
        "value": values[step],
        "best_value": sign * min(ordered),
        **{k: dyn.get(k) for k in ("converged_step", "volatility", "volatility_peak", "dsi", "integration",
                                   "metastability", "null_fired_share", "null_median_step")},
        "patience": m,
    }
    calm = (f"stability-index volatility {_fmt(dyn['volatility'])} <= 0.3 of its peak {_fmt(peak)}"
            if _finite(dyn.get("volatility")) and _finite(peak) else "stability-index volatility at its floor")
    share = dyn.get("null_fired_share")
    null = f", earlier than on {1 - share:.0%} of shifted-layer nulls" if _finite(share) else ""
    reason = (f"converged at epoch {step}: the layer dynamics settled at step {dyn['converged_step']} ({calm}{null}) "
              f"and {metric} has not improved for {m} epochs (best {_fmt(sign * min(ordered))})")
    return Verdict(action="converged", reason=reason, evidence=evidence, predicted_final=values[step], source="dynamics")


#: Labels that depend on the task's pace: the classifier learned them on 12-epoch runs, and on a
#: slower task a run still climbing at epoch 5 looks just like one that will never learn. They
#: prune only a trial that is also behind the median of its finished peers at the same epoch, with
#: ``Policy(failure_relative=True)`` (on 108 runs it had never seen, from 40-epoch tasks slower than
#: its corpus, "underfit" fell on 18% of the runs that ended in the better half at p >= 0.5 and on
#: 1.8% at p >= 0.9: benchmarks/results/diagnosis_replay.md).
RELATIVE_FAILURES = frozenset({"underfit", "plateau", "oscillation", "overfit"})
_MIN_PEERS_RELATIVE = 3


def _failure(trial: TrialHistory, policy: Policy, step: int, current: float, peers_now: Sequence[float],
             sign: float, metric: str) -> Optional[Verdict]:
    """Prune on a failure label the classifier is sure of, with the label, p and its evidence."""
    from automl.diagnosis import diagnose

    try:
        diag = diagnose(trial.records)
    except ValueError:  # records without the four curves: the classifier has nothing to read
        return None
    median = median_at_step(np.asarray(peers_now)) if len(peers_now) >= _MIN_PEERS_RELATIVE else None
    behind = median is not None and current > median
    hits = [lab for lab in diag.present if lab in policy.failure_labels and diag.labels[lab] >= policy.failure_threshold
            and (lab not in RELATIVE_FAILURES or behind or not policy.failure_relative)]
    if not hits:
        return None
    lab = hits[0]
    why = next((r for r in diag.reasons if r.startswith(f"{lab} ")), lab)
    if lab in RELATIVE_FAILURES and behind:
        why += f", and {metric} {_fmt(sign * current)} is behind the median {_fmt(sign * median)} of {len(peers_now)} finished trials"
    return Verdict(
        action="prune",
        reason=f"failure at epoch {step}: {why}",
        evidence={"epoch": step, "label": lab, "p": diag.labels[lab], "labels": diag.labels, "healthy": diag.healthy},
        source="failure",
    )


def _beta_by_epoch(records: Sequence[Mapping[str, Any]]) -> dict[int, float]:
    out = {}
    for r in records:
        b, e = r.get("beta_eff"), r.get("epoch")
        if e is not None:
            out[int(e)] = math.nan if b is None else float(b)
    return out


def _features(beta: Mapping[int, float], values: Mapping[int, float], step: int, sign: float) -> Optional[np.ndarray]:
    """``prefix_features`` without its TSE column, at ``step`` (values signed so that lower is
    better): the same features the ranking study measured; None if one is missing or not finite."""
    from automl.signals.predictors import prefix_features

    if step < 1:
        return None
    epochs = range(1, step + 1)
    row = prefix_features([beta.get(e, math.nan) for e in epochs],
                          [sign * values[e] if e in values else math.nan for e in epochs], step)[:5]
    return row if np.isfinite(row).all() else None


def _capacitance(trial: TrialHistory, population: Population, policy: Policy, step: int, sign: float,
                 best_final: float, best_number: Optional[int]) -> Optional[Verdict]:
    """The capacitance check: a verdict to prune, or None (not enough data, βeff uninformative
    here, or the trial may still win), in which case the curve forecast decides."""
    from automl.signals.predictors import PopulationPredictor, loo_ridge_mse

    mine = _features(_beta_by_epoch(trial.records), trial.values, step, sign)
    if mine is None or not math.isfinite(best_final):
        return None
    rows, targets = [], []
    for t in population.trials:
        if t.number == trial.number or t.state != _FINISHED_OK or not _finite(t.final) or not t.records:
            continue
        row = _features(_beta_by_epoch(t.records), t.values, step, sign)
        if row is not None:
            rows.append(row)
            targets.append(sign * t.final)
    if len(rows) < policy.capacitance_min_finished:
        return None
    X, y = np.asarray(rows), np.asarray(targets)
    err_curve, err_both = loo_ridge_mse(X[:, 3:], y), loo_ridge_mse(X, y)
    if not (err_curve > 0 and err_both <= (1.0 - policy.capacitance_min_gain) * err_curve):
        return None  # βeff does not help predict this study's ends at this epoch
    model = PopulationPredictor("both").fit(X, y)
    mean, std = (float(a[0]) for a in model.predict(np.asarray([mine]), return_std=True))
    from scipy.stats import norm

    optimistic = mean - float(norm.ppf(0.5 + policy.band / 2)) * std
    if not optimistic > best_final + policy.margin:
        return None
    metric = population.metric
    evidence = {
        "epoch": step,
        "beta_eff": mine[0],
        "value": trial.values[step],
        "predicted_final": sign * mean,
        "optimistic_final": sign * optimistic,
        "band": policy.band,
        "loo_mse_with_beta": err_both,
        "loo_mse_curve_only": err_curve,
        "weights": dict(zip(("beta_eff", "d_beta_eff", "beta_eff_growth", "value", "d_value"), map(float, model.coef_))),
        "n_finished_at_epoch": len(rows),
        "best_finished": sign * best_final,
        "best_finished_trial": best_number,
    }
    reason = (
        f"capacitance: βeff {_fmt(mine[0])} with {metric} {_fmt(trial.values[step])} at epoch {step} predicts final "
        f"{metric} {_fmt(sign * mean)} (optimistic {_fmt(sign * optimistic)}, model of {len(rows)} finished trials whose "
        f"leave-one-out error βeff cuts by {1 - err_both / err_curve:.0%}): cannot beat the best finished trial "
        f"#{best_number} ({_fmt(sign * best_final)})"
    )
    return Verdict(action="prune", reason=reason, evidence=evidence, predicted_final=sign * mean, source="capacitance")


_DEFAULT_POLICY = Policy()
