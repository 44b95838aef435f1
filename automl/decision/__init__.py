"""The one decision core: ``decide(trial_history, population, policy) -> Verdict``.

Both adapters (the Optuna pruner and the Ray Tune scheduler) turn their trials into
``TrialHistory`` objects and call :func:`decide`, so a study decides the same whichever backend or
worker asks. ``decide`` is a pure function of its arguments: it reads numbers, never a storage,
and has no randomness, so any verdict can be reproduced from stored records.

``decide`` asks an ordered tuple of small checks (:data:`CHECKS`, in ``checks.py`` and one module
for each check that calls a model); each returns a ``Verdict`` or nothing, and the first verdict
decides. The study's statistics at the trial's epoch are computed once per decision
(``context.Peers``). In order:

1. ``no_data``: no value yet -> continue;
2. ``divergence``: a non-finite metric value, or a non-finite loss in the last record -> prune
   ("diverged at epoch 3: val_loss=nan");
3. ``budget``: at ``max_epochs`` -> continue (stopping would save nothing);
4. ``incumbent``: the best value at this epoch among all trials, or already better than every
   finished trial -> continue, always;
5. ``contender``: in the top ``protect_top`` of every trial that reached this epoch or stopped
   before it (a trial stopped earlier counts as behind) -> continue;
6. ``failure`` (``Policy(failure="model")``): the failure meta-classifier is sure of a failure
   label -> prune;
7. ``rank``: more than the fraction ``rank_cut`` of those trials are ahead -> prune;
8. ``capacitance`` (``Policy(capacitance="auto")``): a population model on βeff, used only where it
   predicts the finished trials' ends better than the model without βeff -> prune when its
   optimistic end cannot beat the best finished trial;
9. ``curve``: with enough finished peers at this epoch, the curve forecast -> prune when even its
   optimistic end cannot beat the best finished trial, else continue;
10. ``fallback``: the evidence is thin -> the median rule (as Optuna's ``MedianPruner``), or
    "thin" for an adapter that wraps a classic pruner of its own.

"Will lose" and "will not gain" are different verdicts. With ``Policy(convergence="dynamics")``,
a trial that none of the checks stops is stopped as ``converged`` (:func:`converged_verdict`)
when the probe found its layer dynamics settled and its metric has not improved for
``convergence_patience`` epochs: it finishes normally with the value it reached.

``Policy`` holds one group of settings per check (``policy.py``), in one flat validated model.
"""

from typing import TYPE_CHECKING

from automl import _lazy

__all__ = [
    "TrialHistory",
    "Population",
    "Policy",
    "Verdict",
    "decide",
    "diverged",
    "converged_verdict",
    "CHECKS",
    "FORECAST_CHECKS",
    "Check",
    "RELATIVE_FAILURES",
    "GuardPolicy",
    "RankPolicy",
    "ForecastPolicy",
    "ForecasterPolicy",
    "FallbackPolicy",
    "CapacitancePolicy",
    "FailurePolicy",
    "ConvergencePolicy",
]

_LAZY = _lazy.table({
    "automl.decision.convergence": ("converged_verdict",),
    "automl.decision.core": ("CHECKS", "FORECAST_CHECKS", "Check", "decide", "diverged"),
    "automl.decision.failure": ("RELATIVE_FAILURES",),
    "automl.decision.policy": ("CapacitancePolicy", "ConvergencePolicy", "FailurePolicy", "FallbackPolicy", "ForecasterPolicy",
                               "ForecastPolicy", "GuardPolicy", "Policy", "RankPolicy"),
    "automl.decision.verdict": ("Population", "TrialHistory", "Verdict"),
})
__getattr__, __dir__ = _lazy.attributes(__name__, _LAZY, __all__)

if TYPE_CHECKING:  # the checks (and scipy under them) load on first use: `automl --help` does not wait for them
    from automl.decision.convergence import converged_verdict
    from automl.decision.core import CHECKS, FORECAST_CHECKS, Check, decide, diverged
    from automl.decision.failure import RELATIVE_FAILURES
    from automl.decision.policy import (
        CapacitancePolicy,
        ConvergencePolicy,
        FailurePolicy,
        FallbackPolicy,
        ForecasterPolicy,
        ForecastPolicy,
        GuardPolicy,
        Policy,
        RankPolicy,
    )
    from automl.decision.verdict import Population, TrialHistory, Verdict
