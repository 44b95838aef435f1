"""The capacitance check: βeff through a population model fitted on the finished trials, used
only where it predicts their ends better than the same model without βeff (leave-one-out error):
the learned weights decide how much βeff counts, and the data decide whether it counts at all."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, Optional

import numpy as np

from automl.decision.context import Context
from automl.decision.text import fmt
from automl.decision.verdict import FINISHED, Verdict
from automl.validation import is_finite

__all__ = ["capacitance"]

_WEIGHTS = ("beta_eff", "d_beta_eff", "beta_eff_growth", "value", "d_value")


def _beta_by_epoch(records: Sequence[Mapping[str, Any]]) -> dict[int, float]:
    out = {}
    for r in records:
        b, e = r.get("beta_eff"), r.get("epoch")
        if e is not None:
            out[int(e)] = math.nan if b is None else float(b)
    return out


def _features(records: Sequence[Mapping[str, Any]], values: Mapping[int, float], step: int,
              sign: float) -> Optional[np.ndarray]:
    """``prefix_features`` without its TSE column, at ``step`` (values signed so that lower is
    better): the same features the ranking study measured; None if one is missing or not finite."""
    from automl.signals.predictors import prefix_features

    if step < 1:
        return None
    beta, epochs = _beta_by_epoch(records), range(1, step + 1)
    row = prefix_features([beta.get(e, math.nan) for e in epochs],
                          [sign * values[e] if e in values else math.nan for e in epochs], step)[:5]
    return row if np.isfinite(row).all() else None


def _finished_rows(ctx: Context) -> tuple[np.ndarray, np.ndarray]:
    """Features at this epoch and signed final values of the finished trials that have both."""
    rows, targets = [], []
    for t in ctx.population.trials:
        if t.number == ctx.trial.number or t.state != FINISHED or not is_finite(t.final) or not t.records:
            continue
        row = _features(t.records, t.values, ctx.step, ctx.sign)
        if row is not None:
            rows.append(row)
            targets.append(ctx.sign * t.final)
    return np.asarray(rows), np.asarray(targets)


def capacitance(ctx: Context) -> Optional[Verdict]:
    """With ``Policy(capacitance="auto")``: prune when the model's optimistic end cannot beat the
    best finished trial; ``None`` (the curve forecast decides) when βeff is missing, uninformative
    in this study at this epoch, or says the trial may still win."""
    from automl.signals.predictors import PopulationPredictor, loo_ridge_mse

    pol, step, best = ctx.policy, ctx.step, ctx.peers.best_final
    if pol.capacitance != "auto" or step < pol.capacitance_min_epochs or not math.isfinite(best):
        return None
    mine = _features(ctx.trial.records, ctx.trial.values, step, ctx.sign)
    X, y = _finished_rows(ctx) if mine is not None else (np.empty(0), np.empty(0))
    if len(X) < pol.capacitance_min_finished:
        return None
    err_curve, err_both = loo_ridge_mse(X[:, 3:], y), loo_ridge_mse(X, y)
    if not (err_curve > 0 and err_both <= (1.0 - pol.capacitance_min_gain) * err_curve):
        return None  # βeff does not help predict this study's ends at this epoch
    from scipy.stats import norm

    model = PopulationPredictor("both").fit(X, y)
    mean, std = (float(a[0]) for a in model.predict(np.asarray([mine]), return_std=True))
    optimistic = mean - float(norm.ppf(0.5 + pol.band / 2)) * std
    if not optimistic > best + pol.margin:
        return None
    return _verdict(ctx, mine, mean, optimistic, err_both, err_curve, model.coef_, len(X))


def _verdict(ctx: Context, mine: np.ndarray, mean: float, optimistic: float, err_both: float, err_curve: float,
             coef: Sequence[float], n: int) -> Verdict:
    sign, step, p = ctx.sign, ctx.step, ctx.peers
    evidence = {
        "epoch": step, "beta_eff": mine[0], "value": ctx.value, "predicted_final": sign * mean,
        "optimistic_final": sign * optimistic, "band": ctx.policy.band, "loo_mse_with_beta": err_both,
        "loo_mse_curve_only": err_curve, "weights": dict(zip(_WEIGHTS, map(float, coef))),
        "n_finished_at_epoch": n, "best_finished": sign * p.best_final, "best_finished_trial": p.best_final_number,
    }
    reason = (
        f"capacitance: βeff {fmt(mine[0])} with {ctx.metric} {fmt(ctx.value)} at epoch {step} predicts final "
        f"{ctx.metric} {fmt(sign * mean)} (optimistic {fmt(sign * optimistic)}, model of {n} finished trials whose "
        f"leave-one-out error βeff cuts by {1 - err_both / err_curve:.0%}): cannot beat the best finished trial "
        f"#{p.best_final_number} ({fmt(sign * p.best_final)})"
    )
    return Verdict(action="prune", reason=reason, evidence=evidence, predicted_final=sign * mean, source="capacitance")
