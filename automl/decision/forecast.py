"""The forecaster's check (``Policy(rule="forecast")``): one calibrated probability per trial.

Prune when P(this trial's final value beats the best finished trial's) < ``risk``, the rule of
LC-PFN (Adriaensen et al., NeurIPS 2023), with the probability from :mod:`automl.forecast`.
"""

from __future__ import annotations

import math
from typing import Optional

import numpy as np

from automl.decision.checks import final_noise
from automl.decision.context import Context
from automl.decision.text import fmt
from automl.decision.verdict import FINISHED, Verdict

__all__ = ["forecast", "waiting", "own_budget", "predict"]


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
    return frame, budget


def _get(values, step: int) -> float:
    v = values.get(step)
    return math.nan if v is None else v


def predict(ctx: Context, need: int):
    """``(forecast, frame, budget)`` of the trial's final value, or ``None`` with fewer than
    ``need`` finished trials."""
    got = _frame(ctx, need)
    if got is None:
        return None
    from automl.forecast.model import load_forecaster

    frame, budget = got
    own = np.asarray([ctx.sign * ctx.trial.values[s] for s in sorted(ctx.trial.values)])
    return load_forecaster().forecast(own, budget, frame, epoch=ctx.step), frame, budget


def forecast(ctx: Context) -> Optional[Verdict]:
    """Prune when the forecast P(beat the best finished trial) is below ``risk``; else go on."""
    if ctx.policy.rule != "forecast":
        return None
    got = predict(ctx, ctx.policy.forecast_min_finished)
    if got is None:
        return None
    fc, frame, budget = got
    pol, sign, peers = ctx.policy, ctx.sign, ctx.peers
    # A tie only raises P: the noise (it reads many trials) is needed only where P itself is below risk.
    noise = final_noise(ctx.population.trials, ctx.trial.number) if pol.forecast_tie > 0 and fc.p_beat < pol.risk else 0.0
    p = fc.p_below(peers.best_final + pol.forecast_tie * noise) if noise > 0 else fc.p_beat
    # The band's pessimistic end shows no worse than the study's typical first value or the trial's
    # own value now: beyond them the model's upper quantiles only say "may diverge".
    cap = max(fc.best + fc.span, ctx.current)
    mid = sign * fc.quantile(0.5)
    lo, hi = sorted((sign * fc.quantile(0.1), sign * min(fc.quantile(0.9), cap)))
    tie = f" within {pol.forecast_tie:g}x its noise {fmt(noise)}" if noise > 0 else ""
    best = f"the best finished trial #{peers.best_final_number}, {fmt(sign * peers.best_final)}{tie}"
    shown = f"forecast {ctx.metric} {fmt(mid)} [{fmt(lo)}, {fmt(hi)}] at epoch {ctx.step} of {budget}"
    evidence = {"epoch": ctx.step, "budget": budget, "value": ctx.value, "p_beat_best": p, "risk": pol.risk,
                "predicted_final": mid, "final_q10": lo, "final_q90": hi, "best_finished": sign * peers.best_final,
                "best_finished_trial": peers.best_final_number, "n_finished": len(frame.final), "noise": noise}
    if p < pol.risk:
        return Verdict(action="prune", reason=f"P(beat {best}) = {p:.2g} < risk {pol.risk:g}; {shown}",
                       evidence=evidence, predicted_final=mid, source="forecast")
    return Verdict(action="continue", reason=f"P(beat {best}) = {p:.2g} >= risk {pol.risk:g}; {shown}",
                   evidence=evidence, predicted_final=mid, source="forecast")


def waiting(ctx: Context) -> Verdict:
    """Before the forecaster has its finished trials: the trial goes on."""
    need = ctx.policy.forecast_min_finished
    return Verdict(action="continue", source="thin", evidence={"epoch": ctx.step, "n_finished": ctx.peers.n_finished},
                   reason=f"thin evidence: {ctx.peers.n_finished} finished trials (the forecaster needs {need})")
