"""``Policy``: how ``decide`` weighs the evidence, one group of settings per check.

Each group is a pydantic model of its own (documented with the check it tunes); ``Policy`` joins
them into one flat, frozen, validated model, so ``Policy(rank_cut=0.3, band=0.95)`` reads as
before. The defaults were chosen by replay on TaskSet and our banks, judged on held-out tasks; the
grids and what they chose are in ``benchmarks/results/tune_signal.md``.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from automl.decision.defaults import DEFAULT_RISK

__all__ = ["Policy", "DEFAULT_RISK", "GuardPolicy", "RankPolicy", "ForecastPolicy", "FallbackPolicy", "CapacitancePolicy",
           "FailurePolicy", "ForecasterPolicy", "ConvergencePolicy"]

_CONFIG = ConfigDict(frozen=True, extra="forbid")


class GuardPolicy(BaseModel):
    """Who is never pruned by a judgement (divergence still prunes anyone).

    Attributes:
        protect_top: a trial ranked in this top fraction at its epoch, among every trial that
            reached the epoch or stopped before it (those count as behind), is never pruned by
            the failure classifier, the rank cut, the capacitance model, the forecast or the
            median rule: the eventual best run is usually near the top from epoch 2, if rarely
            first (benchmarks/results/best_run_rank.md). 0 = off.
    """

    model_config = _CONFIG
    protect_top: float = Field(0.05, ge=0.0, lt=1.0)


class RankPolicy(BaseModel):
    """The rank cut: far behind the trials at this epoch.

    Attributes:
        rank_cut: from epoch ``rank_cut_from`` on, prune a trial with more than this fraction of
            the trials ahead of it at its epoch (every trial that reached the epoch or stopped
            before it, stopped ones counting as behind), once ``min_finished`` trials finished:
            the eventual best run is rarely outside the top quarter from epoch 2 on
            (benchmarks/results/best_run_rank.md). 0 = off.
        rank_cut_from: the first epoch the rank cut applies (epoch 1 ranks the best run anywhere).
        rank_confidence: 0 = the rank cut reads the fraction ahead as it is, and waits for
            ``min_finished`` finished trials. Above 0, it prunes only where a trial standing exactly
            at the cut would see so many trials ahead with probability at most ``1 - rank_confidence``
            (a one-sided binomial test, :func:`automl.signals.curve.rank_tail`): sure with many
            trials to compare, cautious with few, so it waits for no finished trial.
    """

    model_config = _CONFIG
    rank_cut: float = Field(0.4, ge=0.0, lt=1.0)
    rank_cut_from: int = Field(2, ge=1)
    rank_confidence: float = Field(0.0, ge=0.0, lt=1.0)


class ForecastPolicy(BaseModel):
    """The curve forecast from the finished trials closest at this epoch.

    Attributes:
        min_finished: finished peers with a value at this epoch needed before the curve
            forecast decides; below it the evidence is thin and the fallback rule applies.
        min_epochs: no curve-forecast pruning before this epoch.
        n_neighbors: peers used by the forecast (at least; more with many finished trials).
        band: central mass of the forecast's uncertainty band; the optimistic end is its
            lower ``(1 - band) / 2`` quantile.
        margin: prune only if the optimistic forecast is worse than the best finished value
            by more than this (metric units).
        noise_margin: prune only if the optimistic forecast is worse than the best finished
            value by more than this many times the outcome's noise: the median over the 16 latest
            finished trials of the epoch-to-epoch spread of their last 6 values (a last value
            measured on a small validation set can end best by luck). 0 = off.
        optimism: the optimistic end of the forecast: the band's lower quantile over the
            nearest finished trials (``"neighbors"``), or also no later than the largest
            improvement any finished trial made from this epoch (``"all"``: fewer lost late
            bloomers, more epochs spent).
        min_rank_corr: the curve decides at an epoch only if, among finished trials, the value
            at that epoch ranks their final values at least this well (Spearman); below it the
            epoch says too little about the end and the evidence counts as thin. 0 = off.
    """

    model_config = _CONFIG
    min_finished: int = Field(5, ge=1)
    min_epochs: int = Field(5, ge=1)
    n_neighbors: int = Field(15, ge=1)
    band: float = Field(0.8, gt=0.0, lt=1.0)
    margin: float = Field(0.0, ge=0.0)
    noise_margin: float = Field(4.0, ge=0.0)
    optimism: Literal["neighbors", "all"] = "neighbors"
    min_rank_corr: float = Field(0.0, ge=-1.0, le=1.0)


class FallbackPolicy(BaseModel):
    """The rule while the evidence is thin.

    Attributes:
        fallback: ``"median"`` (Optuna's MedianPruner rule) or ``"none"`` (continue; an adapter
            may then ask a classic pruner it wraps).
        fallback_startup_trials: finished trials needed before the median rule prunes.
        fallback_warmup_epochs: the median rule does not prune before this epoch.
    """

    model_config = _CONFIG
    fallback: Literal["median", "none"] = "median"
    fallback_startup_trials: int = Field(5, ge=0)
    fallback_warmup_epochs: int = Field(5, ge=0)


class CapacitancePolicy(BaseModel):
    """βeff (neural capacitance) through a population model, where it helps.

    Attributes:
        capacitance: ``"off"``, or ``"auto"``: use βeff from the records (``EpochRecord.beta_eff``)
            through a population model, where it beats the curve-only model on the finished
            trials (leave-one-out error). Needs records of the finished trials.
        capacitance_min_finished: finished trials with βeff at this epoch needed to fit it.
        capacitance_min_epochs: no capacitance pruning before this epoch.
        capacitance_min_gain: βeff counts only if it lowers the leave-one-out error of the
            curve-only model by at least this fraction.
    """

    model_config = _CONFIG
    capacitance: Literal["off", "auto"] = "off"
    capacitance_min_finished: int = Field(10, ge=4)
    capacitance_min_epochs: int = Field(2, ge=1)
    capacitance_min_gain: float = Field(0.1, ge=0.0, lt=1.0)


class FailurePolicy(BaseModel):
    """The failure meta-classifier on the trial's own records.

    Attributes:
        failure: ``"off"``, or ``"model"``: prune a trial (never the incumbent) that the shipped
            failure meta-classifier (:func:`automl.diagnosis.diagnose`, on the trial's records)
            gives one of ``failure_labels`` with probability >= ``failure_threshold``.
        failure_labels: the labels that prune. "Will never be good" labels by default; ``shift``
            says the test data differ (every trial shares it), ``overfit`` and ``oscillation`` may
            still end best by the validation metric, ``plateau`` at a high level is convergence.
        failure_min_epochs: epochs read before the classifier may prune (it was validated at 3, 5, 8).
        failure_relative: labels that depend on the task's pace (``underfit``, ``plateau``,
            ``oscillation``, ``overfit``) prune only a trial also behind the median of at least 3
            finished peers at that epoch. ``False``: the classifier alone.
    """

    model_config = _CONFIG
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


class ForecasterPolicy(BaseModel):
    """The rule ``decide`` follows after the guards, and its one knob.

    Attributes:
        rule: ``"checks"`` (the rank cut, the failure classifier, βeff, the neighbour forecast and
            the median rule, as tuned on our banks) or ``"forecast"``: prune when the shipped
            forecaster's probability that the trial's final value beats the best finished trial's
            is below ``risk`` (:mod:`automl.forecast`). Budget-aware: progress is read in epochs and
            as a fraction of each trial's own budget (``TrialHistory.budget``).
        risk: the ``"forecast"`` rule's knob: prune below this probability of beating the best.
        forecast_min_finished: finished trials (with a finite final value) the forecaster needs;
            before them the trial goes on.
        forecast_tie: a final value within this many times the outcome's noise of the best
            finished trial's counts as beating it (the noise: the epoch-to-epoch spread of the
            finished trials' last values, as ``noise_margin`` reads it): a difference the
            validation set cannot resolve is not a lost best run. 0 = strictly better.
        rung_eta: before ``forecast_min_finished`` trials finished, rungs as in ASHA at
            ``1/rung_eta``, ``1/rung_eta**2``, ... of each trial's own budget: a trial outside the
            top ``1/rung_eta`` of the trials at its rung is pruned (:mod:`automl.decision.rungs`).
            0 = off (trials go on until the forecaster can judge them): the default, since on the
            tuning half of the tasks, in sequential studies, rungs at eta 3 lost the best run more
            often (benchmarks/results/forecast_rungs_tune.md); they are for studies where many
            trials run before any finishes. Rungs need each trial's budget (``max_epochs``, or
            ``budget=`` on the adapter); without one there are none.
        rung_veto: the forecaster vetoes a rung's cut where it gives P(beat the best finished
            trial) at least this (once 2 trials finished). 1 = no veto.
        forecast_calibration: recalibrate P on the study's own latest this-many finished trials
            (at least 3 needed; 0 = off, the default): among them exactly one beats the others, so
            the probabilities the model gives them, each at the same share of its budget against the
            others, should sum to about 1; P moves by the log-odds offset that fits them
            (:func:`automl.forecast.model.study_offset`; 15 and the prior's scale chosen on the
            tuning half by log loss, benchmarks/results/study_calibration_tune.md). It makes P a
            better probability (Brier 0.031 -> 0.022 there) but not a better pruner: at risk 0.002
            it kept the best run in 82% of the tuning task-seeds instead of 92%, at a higher cost
            (benchmarks/results/forecast_calibration_tune.md), so it is off unless asked for.
    """

    model_config = _CONFIG
    rule: Literal["checks", "forecast"] = "checks"
    # risk, forecast_tie and rung_eta chosen by replay on half the tasks, reported on the other half
    # (benchmarks/results/forecast_tune.md, forecast_rungs_tune.md, forecast_replay.md).
    risk: float = Field(DEFAULT_RISK, gt=0.0, lt=1.0)
    forecast_min_finished: int = Field(3, ge=1)
    forecast_tie: float = Field(2.0, ge=0.0)
    rung_eta: int = Field(0, ge=0)
    rung_veto: float = Field(0.5, gt=0.0, le=1.0)
    forecast_calibration: int = Field(0, ge=0)

    @field_validator("rung_eta")
    @classmethod
    def _eta(cls, v: int) -> int:
        if v == 1:
            raise ValueError("rung_eta must be 0 (off) or at least 2 (keep the top 1/rung_eta at each rung), but got 1.")
        return v


class ConvergencePolicy(BaseModel):
    """"Will not gain": stop a settled trial as converged (it finishes with the value it reached).

    Attributes:
        convergence: ``"off"``, or ``"dynamics"``: stop a trial as converged when the probe's
            convergence rule over layer activations has fired (``EpochRecord.dynamics``, see
            :func:`automl.signals.dynamics.convergence`) and the metric confirms it. Chosen on
            development banks, measured on held-out ones (benchmarks/results/dynamics.md).
        convergence_patience: the confirmation: the best value of the last this many epochs is
            no better than the best before them (by more than ``convergence_tol``).
        convergence_tol: improvement still counted as none, as a fraction of the improvement
            since epoch 1.
    """

    model_config = _CONFIG
    convergence: Literal["off", "dynamics"] = "off"
    convergence_patience: int = Field(3, ge=1)
    convergence_tol: float = Field(0.0, ge=0.0, lt=1.0)


# Bases in reverse: pydantic lists the fields of the last base first, so a dump reads in check order.
class Policy(ConvergencePolicy, ForecasterPolicy, FailurePolicy, CapacitancePolicy, FallbackPolicy, ForecastPolicy, RankPolicy, GuardPolicy):
    """How ``decide`` weighs the evidence: every group's settings in one flat, frozen model that
    validates on construction. See each group for what its settings do: :class:`GuardPolicy`
    (``protect_top``), :class:`RankPolicy` (``rank_*``), :class:`ForecastPolicy` (``min_finished``,
    ``min_epochs``, ``n_neighbors``, ``band``, ``margin``, ``noise_margin``, ``optimism``,
    ``min_rank_corr``), :class:`FallbackPolicy` (``fallback*``), :class:`CapacitancePolicy`
    (``capacitance*``), :class:`FailurePolicy` (``failure*``), :class:`ForecasterPolicy` (``rule``,
    ``risk``) and :class:`ConvergencePolicy` (``convergence*``).

    Example:
        >>> Policy(rank_cut=0.3).rank_cut, Policy().band
        (0.3, 0.8)
    """

    model_config = _CONFIG
