"""``decide``: the checks asked in order; the first that has something to say decides."""

from __future__ import annotations

from collections.abc import Callable
from typing import Optional

from automl.decision import checks
from automl.decision.capacitance import capacitance
from automl.decision.context import Context
from automl.decision.convergence import converged_verdict
from automl.decision.failure import failure
from automl.decision.forecast import forecast, waiting
from automl.decision.policy import Policy
from automl.decision.rungs import rungs
from automl.decision.verdict import Population, TrialHistory, Verdict

__all__ = ["decide", "diverged", "CHECKS", "FORECAST_CHECKS", "Check"]

#: A check reads one decision's :class:`~automl.decision.context.Context` and returns a verdict,
#: or ``None`` to let the next one decide.
Check = Callable[[Context], Optional[Verdict]]

#: The checks in the order ``decide`` asks them: cheapest and most certain first. The last one
#: (the fallback) always decides.
CHECKS: tuple[Check, ...] = (
    checks.no_data,  # nothing reported: continue
    checks.divergence,  # a non-finite value or loss: prune
    checks.budget,  # at the budget: continue (stopping saves nothing)
    checks.incumbent,  # the leader, or better than every finished trial: continue
    checks.contender,  # in the top `protect_top`: continue
    failure,  # a sure failure label (Policy(failure="model")): prune
    checks.rank,  # more than `rank_cut` of the trials ahead: prune
    capacitance,  # βeff says it cannot win, where βeff is informative (Policy(capacitance="auto")): prune
    checks.curve,  # the curve forecast, with enough finished peers: prune or continue
    checks.fallback,  # thin evidence: the median rule, or "thin" for a wrapped pruner
)

#: The checks of ``Policy(rule="forecast")``: the guards, then one probability (the forecaster).
FORECAST_CHECKS: tuple[Check, ...] = (
    checks.no_data,
    checks.divergence,
    checks.budget,
    checks.incumbent,
    checks.contender,  # the top `protect_top` at this epoch (Policy(protect_top=0) turns it off)
    rungs,  # too few finished trials yet: ASHA's rungs, which the forecaster may veto
    forecast,  # P(beat the best finished trial) < risk: prune; else continue
    waiting,  # too few finished trials for the forecaster: continue
)

_DEFAULT_POLICY = Policy()
_NO_CONVERGENCE = ("budget", "no_data")


def decide(trial_history: TrialHistory, population: Population, policy: Optional[Policy] = None) -> Verdict:
    """Decide whether a running trial should continue, be pruned, or stop as converged.

    Args:
        trial_history: the trial asking, with its metric values so far.
        population: the study's other trials (any state); the trial itself may be among
            them, it is skipped by number.
        policy: thresholds; ``Policy()`` when omitted.

    Returns:
        A ``Verdict`` from the first of :data:`CHECKS` that decides. ``nan``/``inf`` in the trial's
        own values prune it ("diverged"); in other trials' values they are ignored at that epoch,
        and a finished trial with a non-finite final value counts as finished but never as the
        incumbent. With ``Policy(convergence="dynamics")``, a trial the checks let go on is stopped
        as ``converged`` where :func:`converged_verdict` says so.

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
    ctx = Context(trial_history, population, policy)
    for check in CHECKS if policy.rule == "checks" else FORECAST_CHECKS:
        verdict = check(ctx)
        if verdict is not None:
            break
    if verdict.action == "continue" and verdict.source not in _NO_CONVERGENCE and policy.convergence != "off":
        stop = converged_verdict(trial_history, population.direction, policy, metric=population.metric)
        if stop is not None:
            return stop
    return verdict


def diverged(trial_history: TrialHistory, metric: str = "value") -> Optional[Verdict]:
    """The divergence check alone (cheap): the ``prune`` verdict of a trial with a non-finite
    value or loss, else ``None``. An adapter deciding only every few epochs still asks it at
    every epoch."""
    if not trial_history.values:
        return None
    return checks.divergence(Context(trial_history, Population((), metric=metric), _DEFAULT_POLICY))
