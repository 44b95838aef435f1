"""The forecaster's check (``Policy(rule="forecast")``): one calibrated probability per trial.

Prune when P(this trial's final value beats the best finished trial's) < ``risk``, the rule of
LC-PFN (Adriaensen et al., NeurIPS 2023), with the probability from :mod:`automl.forecast`,
recalibrated on the study's own finished trials (:func:`study_calibration`).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence
from typing import Optional

import numpy as np

from automl.decision.checks import final_noise
from automl.decision.context import Context
from automl.decision.text import fmt
from automl.decision.verdict import FINISHED, TrialHistory, Verdict
from automl.forecast.model import shift

__all__ = ["forecast", "waiting", "own_budget", "predict", "counted_from_one", "study_calibration", "calibrate_on", "finished_chances"]


def own_budget(ctx: Context, finished_budgets) -> int:
    """The trial's budget: its own, else the study's ``max_epochs``, else the longest finished
    trial's (and never less than the epochs it already ran)."""
    b = ctx.trial.budget or ctx.population.max_epochs
    if b is None:
        b = int(max(finished_budgets)) if len(finished_budgets) else ctx.step
    return max(int(b), ctx.step)


def _frame(ctx: Context, need: int):
    """The finished trials as a ``StudyFrame`` (signed) and the trial's budget, or ``None`` when
    fewer than ``need`` finished with a finite value. One pass; a trial's first and last epochs are read as
    its first and last keys (report order), not searched for."""
    from automl.forecast.features import StudyFrame

    sign, e, me = ctx.sign, ctx.step, ctx.trial.number
    done, others, budgets, at_e = [], [], [], []
    for t in ctx.population.trials:
        values = t.values
        if t.number == me or not values:
            continue
        v = values.get(e)
        v = math.nan if v is None else sign * v
        others.append(v)
        f = t.final
        if t.state == FINISHED and f is not None and f - f == 0:
            done.append(t)
            at_e.append(v)
            budgets.append(t.budget or next(reversed(values)))
    if len(done) < need:
        return None
    budget = own_budget(ctx, budgets)
    at_epoch = np.asarray(at_e)
    if all(b == budget for b in budgets):  # one budget: the same share of it is the same epoch
        at_progress = at_epoch
    else:
        progress = e / budget
        at_progress = np.asarray([sign * _get(t.values, max(1, round(progress * b))) for t, b in zip(done, budgets)])
    frame = StudyFrame(
        at_epoch=at_epoch,
        at_progress=at_progress,
        final=np.asarray([sign * t.final for t in done]),
        budget=np.asarray(budgets, dtype=float),
        first=np.asarray([sign * t.values[next(iter(t.values))] for t in done]),
        others_at_epoch=np.asarray(others),
    )
    return frame, budget, done


def _get(values, step: int) -> float:
    v = values.get(step)
    return math.nan if v is None else v


def _at(values, step: int, sign: float) -> float:
    return sign * _get(values, step)  # nan stays nan


def study_calibration(ctx: Context, budget: int, done: Sequence[TrialHistory]) -> tuple[float, int]:
    """``(offset, n)``: the log-odds offset of P(beat the best finished trial) that this study's
    latest ``Policy.forecast_calibration`` finished trials (of ``done``, those with a finite final
    value) call for at the asking trial's share of its budget, and how many it read
    (:func:`calibrate_on`)."""
    return calibrate_on(done, sign=ctx.sign, step=ctx.step, budget=budget, k=ctx.policy.forecast_calibration)


def calibrate_on(finished: Sequence[TrialHistory], *, sign: float, step: int, budget: int, k: int = 15) -> tuple[float, int]:
    """``(offset, n)``: the study's own log-odds offset of P(beat the best finished trial) for a
    trial at ``step`` of ``budget``, from the latest ``k`` of ``finished`` (each with a finite final
    value; ``sign`` +1 where lower is better, -1 where higher is), and how many of them it read (0,
    with offset 0, where fewer than 3 could be read).

    Each of them is forecast as it stood at the same share of its own budget, against the others of
    them, as if it were running; exactly one of them beat the others
    (:func:`automl.forecast.model.study_offset`). Where the model gives these trials more chances
    than that one winner leaves (the study's curves order early), P falls; where the winner got
    less than its share, P rises."""
    from automl.forecast.model import study_offset

    got = _retro(finished, sign=sign, step=step, budget=budget, k=k)
    if got is None:
        return 0.0, 0
    p, won = got
    return study_offset(p, won), len(p)


def _retro(finished: Sequence[TrialHistory], *, sign: float, step: int, budget: int, k: int):
    """``(P, won)`` of the latest ``k`` finished trials read as if running (:func:`_chances`),
    cached; ``None`` where fewer than 3 could be read."""
    if k < 3 or len(finished) < 3:
        return None
    trials = sorted(finished, key=lambda t: t.number)[-k:]
    budgets = [int(t.budget or next(reversed(t.values))) for t in trials]
    steps = _steps(budgets, step, budget)
    # Finished trials do not change, and in a study most trials are pruned: the trials that ask next
    # meet the same finished ones at the same epochs. The key holds their numbers, budgets and finals
    # and a hash of all their values, so two studies in one process do not share an entry.
    key = (sign, steps, tuple((t.number, b, t.final) for t, b in zip(trials, budgets)),
           hash(tuple(tuple(t.values.items()) for t in trials)))
    got = _RETRO.get(key, _MISS)
    if got is _MISS:
        got = _chances(trials, budgets, steps, sign)
        got = got if len(got[0]) >= 3 else None
        with _LOCK:
            while len(_RETRO) >= _CACHE_SIZE:
                del _RETRO[next(iter(_RETRO))]
            _RETRO[key] = got
    return got


#: Recent reads of a study's finished trials (oldest first), keyed by their data, epoch and budget.
_RETRO: dict = {}
_MISS = object()  # not cached yet (a cached None: fewer than 3 trials could be read)
_CACHE_SIZE = 2048
_LOCK = threading.Lock()


def finished_chances(finished: Sequence[TrialHistory], *, sign: float, step: int, budget: int,
                     k: int = 15) -> tuple[list[float], list[float]]:
    """What :func:`calibrate_on` fits, uncached: for each of the latest ``k`` finished trials, the
    model's P that it beats the others (read at the same share of its budget as ``step`` of
    ``budget``), and 1 for the one that did (0 for the rest)."""
    trials = sorted(finished, key=lambda t: t.number)[-k:]
    budgets = [int(t.budget or next(reversed(t.values))) for t in trials]
    return _chances(trials, budgets, _steps(budgets, step, budget), sign)


def _steps(budgets: Sequence[int], step: int, budget: int) -> tuple[int, ...]:
    """Each finished trial's epoch at the share ``step / budget`` of its own budget (before its end)."""
    return tuple(min(b - 1, max(1, round(step / budget * b))) for b in budgets)


def _chances(trials: Sequence[TrialHistory], budgets: Sequence[int], steps: Sequence[int], sign: float) -> tuple[list[float], list[float]]:
    """``(P, won)``: each trial's P(beat the others) read at its step against the others, and 1 for
    the one that did."""
    from automl.forecast.features import StudyFrame, features
    from automl.forecast.model import load_forecaster, p_below

    final = np.asarray([sign * t.final for t in trials])
    first = np.asarray([sign * t.values[next(iter(t.values))] for t in trials])
    fb = np.asarray(budgets, dtype=float)
    # each trial's value at its own share of the budget (the same share for every one of them)
    at_share = np.asarray([_at(t.values, s, sign) for t, s in zip(trials, steps)])
    same = len(set(steps)) == 1
    rows, won, n = [], [], len(trials)
    for j, (t, b, e) in enumerate(zip(trials, budgets, steps)):
        own = [sign * t.values[s] for s in sorted(t.values) if s <= e]
        if b < 2 or not own or not all(v - v == 0 for v in own):
            continue
        rest = np.arange(n) != j
        at_e = at_share[rest] if same else np.asarray([_at(u.values, e, sign) for i, u in enumerate(trials) if i != j])
        frame = StudyFrame(at_epoch=at_e, at_progress=at_share[rest], final=final[rest], budget=fb[rest],
                           first=first[rest], others_at_epoch=at_e)
        rows.append(features(np.asarray(own), b, frame, epoch=e)[0])
        won.append(float(final[j] < final[rest].min()))
    if not rows:
        return [], []
    zq = load_forecaster().predict_z(np.stack(rows))
    return [p_below(q, x=0.0) for q in zq], won


def counted_from_one(ctx: Context) -> Context:
    """``ctx`` with its epochs counted from 1, as the forecaster reads them: a study that reports
    steps from 0 (and whose adapter gave ``max_epochs - 1`` as its last step) is read one epoch on."""
    if 0 not in ctx.trial.values and not any(0 in t.values for t in ctx.population.trials):
        return ctx
    from automl.decision.verdict import Population

    def on(t: TrialHistory) -> TrialHistory:
        return t._replace(values={s + 1: v for s, v in t.values.items()})

    pop = ctx.population
    return Context(on(ctx.trial), Population([on(t) for t in pop.trials], pop.direction, pop.metric,
                                             None if pop.max_epochs is None else pop.max_epochs + 1), ctx.policy)


def predict(ctx: Context, need: int):
    """``(forecast, frame, budget, finished trials)`` of the trial's final value, or ``None`` with
    fewer than ``need`` finished trials. ``ctx`` counts its epochs from 1 (:func:`counted_from_one`)."""
    got = _frame(ctx, need)
    if got is None:
        return None
    from automl.forecast.model import load_forecaster

    frame, budget, done = got
    own = np.asarray([ctx.sign * ctx.trial.values[s] for s in sorted(ctx.trial.values)])
    return load_forecaster().forecast(own, budget, frame, epoch=ctx.step), frame, budget, done


def forecast(ctx: Context) -> Optional[Verdict]:
    """Prune when the forecast P(beat the best finished trial) is below ``risk``; else go on."""
    if ctx.policy.rule != "forecast":
        return None
    ctx = counted_from_one(ctx)
    got = predict(ctx, ctx.policy.forecast_min_finished)
    if got is None:
        return None
    fc, frame, budget, done = got
    if ctx.step >= budget:  # at its budget (when none was given, the longest finished trial's): nothing to save
        given = ctx.trial.budget or ctx.population.max_epochs
        what = "its budget" if given else "the longest finished trial's length (no budget was given)"
        return Verdict(action="continue", source="budget", evidence={"epoch": ctx.step, "budget": budget},
                       reason=f"budget reached at epoch {ctx.step}, {what}: stopping now would save nothing")
    pol, sign, peers = ctx.policy, ctx.sign, ctx.peers
    offset, n_cal = study_calibration(ctx, budget, done)
    # A tie only raises P: the noise (it reads many trials) is needed only where P itself is below risk.
    noise = final_noise(ctx.population.trials, ctx.trial.number) \
        if pol.forecast_tie > 0 and shift(fc.p_beat, offset) < pol.risk else 0.0
    raw = fc.p_below(peers.best_final + pol.forecast_tie * noise) if noise > 0 else fc.p_beat
    p = shift(raw, offset)
    # The band's pessimistic end shows no worse than the study's typical first value or the trial's
    # own value now: beyond them the model's upper quantiles only say "may diverge".
    cap = max(fc.best + fc.span, ctx.current)
    mid = sign * min(fc.quantile(0.5), cap)
    lo, hi = sorted((sign * min(fc.quantile(0.1), cap), sign * min(fc.quantile(0.9), cap)))
    tie = f" within {pol.forecast_tie:g}x its noise {fmt(noise)}" if noise > 0 else ""
    best = f"the best finished trial #{peers.best_final_number}, {fmt(sign * peers.best_final)}{tie}"
    shown = f"forecast {ctx.metric} {fmt(mid)} [{fmt(lo)}, {fmt(hi)}] at epoch {ctx.step} of {budget}"
    evidence = {"epoch": ctx.step, "budget": budget, "value": ctx.value, "p_beat_best": p, "risk": pol.risk,
                "p_beat_model": raw, "study_offset": offset, "n_calibration": n_cal,
                "predicted_final": mid, "final_q10": lo, "final_q90": hi, "best_finished": sign * peers.best_final,
                "best_finished_trial": peers.best_final_number, "n_finished": len(frame.final), "noise": noise}
    cal = f" (the model's {raw:.2g}, recalibrated on this study's {n_cal} finished trials)" if n_cal else ""
    if p < pol.risk:
        return Verdict(action="prune", reason=f"P(beat {best}) = {p:.2g} < risk {pol.risk:g}{cal}; {shown}",
                       evidence=evidence, predicted_final=mid, source="forecast")
    return Verdict(action="continue", reason=f"P(beat {best}) = {p:.2g} >= risk {pol.risk:g}{cal}; {shown}",
                   evidence=evidence, predicted_final=mid, source="forecast")


def waiting(ctx: Context) -> Verdict:
    """Before the forecaster has its finished trials: the trial goes on."""
    need = ctx.policy.forecast_min_finished
    return Verdict(action="continue", source="thin", evidence={"epoch": ctx.step, "n_finished": ctx.peers.n_finished},
                   reason=f"thin evidence: {ctx.peers.n_finished} finished trials (the forecaster needs {need})")
