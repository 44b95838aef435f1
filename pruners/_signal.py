"""``SignalPruner``: an Optuna pruner that asks ``automl.decide`` and writes down why."""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal, Optional, Union

import optuna
from optuna.pruners import BasePruner
from optuna.trial import FrozenTrial, TrialState

from automl.decision import Policy, Population, TrialHistory, Verdict, decide, diverged
from automl.reporting import PRUNE_ATTRS, records_of, verdict_attrs
from automl.storage import set_trial_attrs
from automl.validation import BudgetReader, check_optional_positive_int, check_positive_int

__all__ = ["SignalPruner", "PRUNE_ATTRS"]


class SignalPruner(BasePruner):
    """Prune trials on evidence from their training state, with a reason stored on the trial.

    The decision is :func:`automl.decide` (shared with the Ray Tune ``SignalScheduler``):
    a non-finite value prunes at once ("diverged at epoch 3: val_loss=nan"); the current
    incumbent and the contenders near it are never pruned; a trial far behind the trials at its
    epoch is pruned (the rank cut); with enough finished trials, a trial is pruned when even the
    optimistic end of its forecast final value cannot beat the best finished trial; while that
    evidence is thin, the fallback decides.

    A pruned trial gets user attributes ``prune_reason`` (one readable sentence),
    ``prune_epoch``, ``prune_source``, ``prune_evidence`` (the numbers) and ``predicted_final``.

    Only "will lose" prunes. A trial that "will not gain" (``Policy(convergence="dynamics")``) is
    never pruned for it: Optuna would mark it PRUNED, while it should finish COMPLETE with the value
    it reached. Its training loop asks ``probe.should_stop(trial)`` after ``trial.should_prune()``
    and returns normally when it says so (the reason goes into ``stop_reason``).

    Args:
        policy: thresholds of the decision (``automl.Policy``); defaults apply when omitted.
        fallback: rule while evidence is thin: ``"median"`` (the core's median rule, identical
            to what the Ray scheduler uses) or any Optuna pruner to wrap, e.g.
            ``optuna.pruners.SuccessiveHalvingPruner()``.
        interval_epochs: decide only every this many epochs (a non-finite value is acted on
            at once whatever the interval).
        max_epochs: the budget per trial, if known: a trial at its last epoch is never pruned
            (that would save nothing and lose its result). Epochs are the steps given to
            ``trial.report``, counted from 1 as ``automl.report`` does; a trial that reported
            step 0 is read as counting from 0.
        budget: where each trial has its own budget (a hyperparameter such as ``epochs``, with a
            learning-rate schedule that runs to it): the name of that parameter, or a callable
            ``f(FrozenTrial) -> int``. The decision then reads each trial's progress as a
            fraction of its own budget too, and never prunes a trial at its own last epoch.

    Works with ``n_jobs > 1``, several processes on one ``JournalStorage`` and RDB storages: it
    keeps no state between calls, so every worker decides the same from the same storage.

    Example:
        >>> import optuna
        >>> optuna.logging.set_verbosity(optuna.logging.WARNING)
        >>> study = optuna.create_study(pruner=SignalPruner())
        >>> def objective(trial):
        ...     x = trial.suggest_float("x", 0, 1)
        ...     for epoch in range(1, 11):
        ...         trial.report(x + 1 / epoch, step=epoch)
        ...         if trial.should_prune():
        ...             raise optuna.TrialPruned()
        ...     return x
        >>> study.optimize(objective, n_trials=20)
        >>> any(t.state.name == "PRUNED" for t in study.trials)
        True
    """

    def __init__(
        self,
        policy: Optional[Policy] = None,
        *,
        fallback: Union[Literal["median"], BasePruner] = "median",
        interval_epochs: int = 1,
        max_epochs: Optional[int] = None,
        budget: Union[str, Callable[[FrozenTrial], int], None] = None,
    ) -> None:
        if policy is not None and not isinstance(policy, Policy):
            raise TypeError(f"policy must be an automl.Policy, but got {type(policy).__name__}.")
        if not (fallback == "median" or isinstance(fallback, BasePruner)):
            raise ValueError(f"fallback must be 'median' or an optuna pruner, but got {fallback!r}.")
        self._interval = check_positive_int("interval_epochs", interval_epochs)
        self._max_epochs = check_optional_positive_int("max_epochs", max_epochs)
        self._budget_of = BudgetReader(budget, params="params")
        policy = policy or Policy()
        self._wrapped = None if isinstance(fallback, str) else fallback
        self._policy = policy.model_copy(update={"fallback": "none"}) if self._wrapped is not None else policy
        # prune() acts on "will lose" only; "will not gain" is the probe's (Probe.should_stop), so
        # prune() does not compute a converged verdict only to discard it.
        self._prune_policy = self._policy.model_copy(update={"convergence": "off"})

    @property
    def policy(self) -> Policy:
        return self._policy

    def verdict(self, study: optuna.Study, trial: FrozenTrial) -> Verdict:
        """The full verdict for ``trial`` now, ``converged`` included (``prune`` acts on ``prune`` only)."""
        return self._verdict(study, trial, self._policy)

    def _verdict(self, study: optuna.Study, trial: FrozenTrial, policy: Policy) -> Verdict:
        if len(study.directions) > 1:
            raise NotImplementedError("SignalPruner supports single-objective studies only.")
        metric = (study.metric_names or [None])[0] or "value"
        # A TrialHistory only references the trial's own dicts: building one is O(1), so nothing
        # is cached between calls (a cache keyed by study name goes stale when a study of the
        # same name is recreated).
        with_records = policy.capacitance != "off"  # the βeff model reads the finished trials' records
        others = [
            TrialHistory(t.number, t.intermediate_values, t.state.name, t.value if t.state == TrialState.COMPLETE else None,
                         records_of(t) if with_records and t.state == TrialState.COMPLETE else (),
                         self._budget_of(t))
            for t in study.get_trials(deepcopy=False)
            if t.number != trial.number
        ]
        budget = self._max_epochs
        if budget is not None and 0 in trial.intermediate_values:
            budget -= 1  # steps counted from 0: the last epoch is max_epochs - 1
        population = Population(others, direction=study.direction.name.lower(), metric=metric, max_epochs=budget)
        records = records_of(trial)
        own_history = with_records or policy.failure != "off"  # the failure classifier reads the whole prefix
        current = TrialHistory(trial.number, trial.intermediate_values, records=records if own_history else records[-1:],
                               budget=self._budget_of(trial))
        return decide(current, population, policy)

    # -- BasePruner ------------------------------------------------------------------------
    def prune(self, study: optuna.Study, trial: FrozenTrial) -> bool:
        step = trial.last_step
        if step is None:
            return False
        if step % self._interval != 0:  # between decisions, only a diverged trial is stopped
            metric = (study.metric_names or [None])[0] or "value"
            own = TrialHistory(trial.number, trial.intermediate_values, records=records_of(trial)[-1:])
            verdict = diverged(own, metric)
            if verdict is None:
                return False
        else:
            verdict = self._verdict(study, trial, self._prune_policy)
        if verdict.action == "prune":
            _write_reason(study, trial, verdict)
            return True
        if verdict.source == "thin" and self._wrapped is not None and self._wrapped.prune(study, trial):
            wrapped = type(self._wrapped).__name__
            reason = f"{wrapped} (fallback while evidence is thin) pruned at epoch {step}: {verdict.reason}"
            _write_reason(study, trial, verdict.model_copy(update={"action": "prune", "reason": reason, "source": "fallback"}))
            return True
        return False


def _write_reason(study: optuna.Study, trial: FrozenTrial, verdict: Verdict) -> None:
    """Store the verdict on the trial itself. ``prune`` receives a frozen copy, so this goes
    through the study's storage (thread- and process-safe as the storage is)."""
    set_trial_attrs(study, trial, verdict_attrs(verdict, trial.last_step))
