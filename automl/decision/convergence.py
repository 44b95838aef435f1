""""Will not gain": the ``converged`` verdict, asked by ``decide`` and by ``Probe.should_stop``."""

from __future__ import annotations

from typing import Optional

from automl.decision.policy import Policy
from automl.decision.text import fmt
from automl.decision.verdict import Direction, TrialHistory, Verdict
from automl.validation import is_finite

__all__ = ["converged_verdict"]

_DYNAMICS_KEYS = ("converged_step", "volatility", "volatility_peak", "dsi", "integration", "metastability",
                  "null_fired_share", "null_median_step")


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
    policy = policy or Policy()
    values, m = trial_history.values, policy.convergence_patience
    dyn = (trial_history.records[-1].get("dynamics") or {}) if trial_history.records else {}
    if not values or dyn.get("converged_step") is None or len(values) <= m:
        return None
    step, sign = max(values), 1.0 if direction == "minimize" else -1.0
    ordered = [sign * values[s] for s in sorted(values)]
    if not all(is_finite(v) for v in ordered):
        return None  # a diverged trial is pruned, not converged
    before, recent, best = min(ordered[:-m]), min(ordered[-m:]), min(ordered)
    if before - recent > policy.convergence_tol * max(ordered[0] - best, 0.0):
        return None  # the metric still improves: the dynamics alone do not stop a trial
    evidence = {"epoch": step, "value": values[step], "best_value": sign * best,
                **{k: dyn.get(k) for k in _DYNAMICS_KEYS}, "patience": m}
    peak, share = dyn.get("volatility_peak"), dyn.get("null_fired_share")
    calm = (f"stability-index volatility {fmt(dyn['volatility'])} <= 0.3 of its peak {fmt(peak)}"
            if is_finite(dyn.get("volatility")) and is_finite(peak) else "stability-index volatility at its floor")
    null = f", earlier than on {1 - share:.0%} of shifted-layer nulls" if is_finite(share) else ""
    reason = (f"converged at epoch {step}: the layer dynamics settled at step {dyn['converged_step']} ({calm}{null}) "
              f"and {metric} has not improved for {m} epochs (best {fmt(sign * best)})")
    return Verdict(action="converged", reason=reason, evidence=evidence, predicted_final=values[step], source="dynamics")
