"""Rungs as in ASHA, while too few trials have finished for the forecaster (``Policy(rule="forecast")``).

At a rung a trial is compared with the trials that reached the same rung and goes on only in their
top ``1 / rung_eta`` (Li et al., "A System for Massively Parallel Hyperparameter Tuning", MLSys
2020). Rungs are fractions of each trial's own budget (``b / eta``, ``b / eta**2``, ... epochs,
while at least 1), so a long-budget trial, whose schedule runs to its own end, meets short ones at
the same point of their schedules, not at the same epoch. The forecaster may veto a cut: once two
trials have finished, a trial it gives P(beat the best finished trial) >= ``rung_veto`` goes on.
"""

from __future__ import annotations

from typing import Optional

from automl.decision.context import Context, trial_budget
from automl.decision.forecast import counted_from_one, own_budget, predict
from automl.decision.text import fmt
from automl.decision.verdict import Verdict

__all__ = ["rungs", "rung_epochs", "VETO_MIN_FINISHED"]

#: Finished trials the forecaster needs before it may veto a rung's cut (it was trained from 2 on).
VETO_MIN_FINISHED = 2


def rung_epochs(budget: int, eta: int) -> list[int]:
    """The rung epochs of a trial with ``budget`` epochs, last rung first: ``round(budget / eta**k)``
    for k = 1, 2, ... while ``budget / eta**k >= 1``.

    Example:
        >>> rung_epochs(51, 3), rung_epochs(10, 3), rung_epochs(2, 3)
        ([17, 6, 2], [3, 1], [])
    """
    out, k = [], 1
    while budget / eta**k >= 1:
        r = round(budget / eta**k)
        if r not in out:
            out.append(r)
        k += 1
    return out


def _rung_at(ctx: Context, budget: int) -> Optional[int]:
    """k (1 = the last rung) if the trial's latest report is the first at or past rung k."""
    steps = sorted(ctx.trial.values)
    prev = steps[-2] if len(steps) > 1 else 0
    for k, r in enumerate(rung_epochs(budget, ctx.policy.rung_eta), start=1):
        if prev < r <= ctx.step:
            return k
    return None


def _cohort(ctx: Context, k: int, budget: int) -> list[float]:
    """The other trials' values (signed) at their own rung k."""
    eta, sign, me = ctx.policy.rung_eta, ctx.sign, ctx.trial.number
    out = []
    for t in ctx.population.trials:
        if t.number == me or not t.values:
            continue
        b = trial_budget(t, ctx.population.max_epochs or budget)
        if b / eta**k < 1:
            continue
        v = t.values.get(round(b / eta**k))
        if v is not None and v - v == 0:
            out.append(sign * v)
    return out


def rungs(ctx: Context) -> Optional[Verdict]:
    """At a rung, before the forecaster has its finished trials: outside the top ``1 / rung_eta``
    of the trials at this rung, prune, unless the forecaster vetoes."""
    pol, p = ctx.policy, ctx.peers
    if pol.rule != "forecast" or pol.rung_eta < 2 or p.n_finished >= pol.forecast_min_finished:
        return None
    if not (ctx.trial.budget or ctx.population.max_epochs):  # rungs are shares of a budget no one gave
        return None
    ctx = counted_from_one(ctx)
    budget = own_budget(ctx, ())
    k = _rung_at(ctx, budget)
    if k is None:
        return None
    cohort = _cohort(ctx, k, budget)
    n, eta = len(cohort) + 1, pol.rung_eta
    if n < eta:
        return None
    rank, keep = 1 + sum(v < ctx.current for v in cohort), max(1, n // eta)
    where = f"rung at epoch {ctx.step} (1/{eta ** k} of its budget {budget})"
    evidence = {"epoch": ctx.step, "value": ctx.value, "budget": budget, "rung": k, "rank": rank, "n_at_rung": n,
                "n_go_on": keep, "eta": eta}
    standing = f"rank {rank} of {n} trials there"
    if rank <= keep:
        return Verdict(action="continue", source="rung", evidence=evidence,
                       reason=f"{where}: {standing}, in the top 1/{eta} that go on")
    got = predict(ctx, VETO_MIN_FINISHED) if pol.rung_veto < 1 else None
    cut = f"{where}: {standing}, outside the top {keep} (1/{eta}) that go on"
    if got is None:
        return Verdict(action="prune", source="rung", evidence=evidence,
                       reason=f"{cut}; no forecast to veto it ({p.n_finished} finished trials, it needs {VETO_MIN_FINISHED})")
    fc = got[0]
    evidence.update(p_beat_best=fc.p_beat, rung_veto=pol.rung_veto)
    best = f"the best finished trial #{p.best_final_number}, {fmt(ctx.sign * p.best_final)}"
    if fc.p_beat >= pol.rung_veto:
        return Verdict(action="continue", source="rung", evidence=evidence,
                       reason=f"{cut}, but the forecast vetoes the cut: P(beat {best}) = {fc.p_beat:.2g} >= {pol.rung_veto:g}")
    return Verdict(action="prune", source="rung", evidence=evidence,
                   reason=f"{cut}; P(beat {best}) = {fc.p_beat:.2g} < veto {pol.rung_veto:g}")
