"""``SignalScheduler``: a Ray Tune scheduler that asks ``automl.decide``, like ``SignalPruner``."""

from __future__ import annotations

import json
import logging
import math
import pickle
from collections.abc import Callable
from typing import Any, Optional, Union

from ray.tune.schedulers import FIFOScheduler, TrialScheduler

from automl.decision import Policy, Population, TrialHistory, Verdict, decide
from automl.records import compact_from_flat
from automl.reporting import verdict_attrs
from automl.validation import BudgetReader, check_optional_positive_int, real_or_none

__all__ = ["SignalScheduler"]

logger = logging.getLogger(__name__)

_MODES = {"min": "minimize", "max": "maximize"}


class SignalScheduler(FIFOScheduler):
    """Stop Ray Tune trials on the same evidence, and with the same decision, as ``SignalPruner``.

    Trials run in submission order (FIFO). After each result the scheduler calls
    :func:`automl.decide` with the trial's metric per ``time_attr`` step and the population of
    all trials it has seen; a ``prune`` (or ``converged``) verdict returns ``STOP``. The reason is
    logged and written into the trial's last result (so it is in ``ResultGrid`` metrics): as
    ``prune_reason``, ``prune_epoch``, ``prune_source`` and ``predicted_final`` for a pruned trial,
    as ``stop_reason``, ``stop_epoch`` and ``stop_source`` for a converged one, the names an
    Optuna trial gets (``automl.reporting.PRUNE_ATTRS``, ``STOP_ATTRS``). A ``converged`` trial (``Policy(convergence="dynamics")``, results reported by
    ``automl.report`` from a probe with ``every_k_steps``) counts as finished with the value it
    reached: it is a peer for later decisions, as a trial that ran to the budget is.

    Args:
        policy: thresholds of the decision (``automl.Policy``).
        metric, mode: usually left to ``tune.TuneConfig(metric=..., mode=...)``.
        time_attr: the step key of results; ``training_iteration`` (one per ``tune.report``)
            or ``epoch`` as reported by ``automl.report``.
        max_t: the budget in ``time_attr`` units, if known (as in Ray's ``ASHAScheduler``): a
            trial at it is never stopped, which would save nothing and lose its result.
        budget: where each trial has its own budget (a config key such as ``epochs``, with a
            schedule that runs to it): that key, or a callable ``f(config) -> int``, as
            ``SignalPruner(budget=...)`` takes a parameter name.

    A result whose metric is ``nan``/``inf`` (a diverged trial) is stopped with the reason
    "diverged at epoch N"; a result missing the metric is skipped. After ``Tuner.restore`` (which
    brings the scheduler back as it was when the run started), the finished trials Tune re-adds
    are read back from their ``result.json`` (else their last result), so they are evidence again.

    Example:
        >>> from ray import tune
        >>> scheduler = SignalScheduler(time_attr="epoch", max_t=20)
        >>> config = tune.TuneConfig(metric="val_loss", mode="min", scheduler=scheduler)
        >>> scheduler.set_search_properties("val_loss", "min")  # what Tune does with TuneConfig's
        True
        >>> scheduler.set_search_properties("val_acc", "max")  # already set: kept, as Ray's own do
        False
    """

    def __init__(
        self,
        policy: Optional[Policy] = None,
        *,
        metric: Optional[str] = None,
        mode: Optional[str] = None,
        time_attr: str = "training_iteration",
        max_t: Optional[int] = None,
        budget: Union[str, Callable[[dict], int], None] = None,
    ) -> None:
        super().__init__()
        if policy is not None and not isinstance(policy, Policy):
            raise TypeError(f"policy must be an automl.Policy, but got {type(policy).__name__}.")
        if mode is not None and mode not in _MODES:
            raise ValueError(f"mode must be 'min' or 'max', but got {mode!r}.")
        if not isinstance(time_attr, str) or not time_attr:
            raise ValueError(f"time_attr must be a non-empty string, but got {time_attr!r}.")
        self._max_t = check_optional_positive_int("max_t", max_t)
        self._budget_of = BudgetReader(budget, what="trial config")
        self._policy = policy or Policy()
        self._metric = metric
        self._mode = mode
        self._time_attr = time_attr
        self._trials: dict[str, TrialHistory] = {}
        self._verdicts: dict[str, Verdict] = {}

    # -- search properties -------------------------------------------------------------------
    def set_search_properties(self, metric: Optional[str], mode: Optional[str], **spec: Any) -> bool:
        if (self._metric and metric) or (self._mode and mode):
            return False
        if mode is not None and mode not in _MODES:
            raise ValueError(f"mode must be 'min' or 'max', but got {mode!r}.")
        self._metric = metric or self._metric
        self._mode = mode or self._mode
        return True

    def _require_properties(self) -> None:
        if not self._metric or not self._mode:
            raise ValueError(
                f"SignalScheduler needs a metric and a mode (got metric={self._metric!r}, mode={self._mode!r}); "
                "pass them to tune.TuneConfig(metric=..., mode=...) or to the scheduler."
            )

    @property
    def verdicts(self) -> dict[str, Verdict]:
        """Verdicts of the trials this scheduler stopped, by trial id."""
        return dict(self._verdicts)

    # -- callbacks -----------------------------------------------------------------------------
    def _entry(self, trial: Any) -> TrialHistory:
        tid = trial.trial_id
        hist = self._trials.get(tid)
        if hist is None:
            hist = TrialHistory(len(self._trials), {}, "RUNNING", records=[], budget=self._budget_of(_config(trial)))
            self._trials[tid] = hist
        elif not isinstance(hist.records, list):  # restored from an older checkpoint
            hist = hist._replace(records=list(hist.records))
            self._trials[tid] = hist
        return hist

    def on_trial_add(self, tune_controller: Any, trial: Any) -> None:
        self._require_properties()
        if trial.trial_id not in self._trials and getattr(trial, "status", None) in ("TERMINATED", "ERROR"):
            # Tuner.restore re-adds the finished trials to a scheduler that has not seen them (it
            # is unpickled as it was when the run started): read their curves back as evidence.
            restored = self._restored(trial)
            if restored is not None:
                self._trials[trial.trial_id] = restored
                return
        hist = self._entry(trial)
        if hist.state == "FAIL":  # Ray retries a failed trial (max_failures > 0): it runs again
            self._trials[trial.trial_id] = hist._replace(state="RUNNING")

    def _restored(self, trial: Any) -> Optional[TrialHistory]:
        """A finished trial's history from its stored results (``result.json`` in the trial's
        directory, else its last result), or ``None`` if no result holds the metric."""
        results = _stored_results(trial)
        last = getattr(trial, "last_result", None)
        last = last if isinstance(last, dict) else {}
        if not results and last:
            results = [last]
        values: dict[int, float] = {}
        for r in results:
            if self._metric in r and self._time_attr in r:
                try:
                    value, epoch = self._read(r, trial)
                except ValueError as exc:  # a stored result the live run would have refused: not read
                    logger.warning("SignalScheduler skips a stored result of trial %s: %s", getattr(trial, "trial_id", trial), exc)
                    continue
                values[epoch] = value
        if not values:
            return None
        number = len(self._trials)
        if trial.status == "ERROR":
            return TrialHistory(number, values, "FAIL", None, records=[], budget=self._budget_of(_config(trial)))
        # A converged trial carries stop_reason (results written before it did: prune_action="converged").
        if last.get("prune_reason") is not None and last.get("prune_action", "prune") == "prune":
            return TrialHistory(number, values, "PRUNED", None, records=[], budget=self._budget_of(_config(trial)))
        final = values[max(values)]
        return TrialHistory(number, values, "COMPLETE", final if math.isfinite(final) else None, records=[],
                            budget=self._budget_of(_config(trial)))

    def _read(self, result: dict, trial: Any) -> tuple[float, int]:
        """The result's metric (``None``, NaN or inf: a diverged trial; an integer past float's range
        reads as inf) and epoch, or a ``ValueError`` naming the key, the trial and the value."""
        raw, step = result[self._metric], result[self._time_attr]
        where = f"trial {getattr(trial, 'trial_id', trial)}: result[{{!r}}] = {{!r:.40}}"
        value = math.nan if raw is None else real_or_none(raw)
        if value is None:
            raise ValueError(where.format(self._metric, raw) + " is not a number; report the metric as a float "
                             "(NaN or None for a diverged trial).")
        e = real_or_none(step)
        if e is None or not math.isfinite(e) or not e.is_integer():
            raise ValueError(where.format(self._time_attr, step) + " is not a whole epoch number; report "
                             f"{self._time_attr!r} as an integer.")
        return value, int(e)

    def on_trial_result(self, tune_controller: Any, trial: Any, result: dict) -> str:
        self._require_properties()
        if self._metric not in result or self._time_attr not in result:
            return TrialScheduler.CONTINUE
        value, epoch = self._read(result, trial)
        hist = self._entry(trial)
        hist.values[epoch] = value  # type: ignore[index]
        others = [h for tid, h in self._trials.items() if tid != trial.trial_id]
        population = Population(others, direction=_MODES[self._mode], metric=self._metric, max_epochs=self._max_t)
        record = compact_from_flat(result, epoch)
        if self._policy.capacitance != "off" or self._policy.failure != "off":
            # βeff per epoch of every trial feeds the population model; the failure classifier
            # reads the trial's whole prefix of curves and gradient statistics.
            hist.records.append(record)  # type: ignore[attr-defined]
            current = TrialHistory(hist.number, hist.values, records=hist.records, budget=hist.budget)
        else:
            current = TrialHistory(hist.number, hist.values, records=(record,), budget=hist.budget)
        verdict = decide(current, population, self._policy)
        if verdict.action == "continue":
            return TrialScheduler.CONTINUE
        self._verdicts[trial.trial_id] = verdict
        state = "PRUNED" if verdict.action == "prune" else "COMPLETE"
        final = value if state == "COMPLETE" and math.isfinite(value) else None
        self._trials[trial.trial_id] = hist._replace(state=state, final=final)
        logger.info("SignalScheduler stops trial %s: %s", trial.trial_id, verdict.reason)
        return TrialScheduler.STOP

    def on_trial_complete(self, tune_controller: Any, trial: Any, result: dict) -> None:
        hist = self._entry(trial)
        verdict = self._verdicts.get(trial.trial_id)
        if verdict is not None:
            last = getattr(trial, "last_result", None)
            if isinstance(last, dict):
                last.update(verdict_attrs(verdict, verdict.evidence.get("epoch"), evidence=False))
            return
        value = self._read(result, trial)[0] if result and self._metric in result and self._time_attr in result else math.nan
        final = value if math.isfinite(value) else None
        self._trials[trial.trial_id] = hist._replace(state="COMPLETE", final=final)

    def on_trial_error(self, tune_controller: Any, trial: Any) -> None:
        hist = self._entry(trial)
        self._trials[trial.trial_id] = hist._replace(state="FAIL", final=None)

    def on_trial_remove(self, tune_controller: Any, trial: Any) -> None:
        hist = self._entry(trial)
        if hist.state == "RUNNING":
            self._trials[trial.trial_id] = hist._replace(state="FAIL", final=None)

    def debug_string(self) -> str:
        pruned = sum(1 for v in self._verdicts.values() if v.action == "prune")
        converged = sum(1 for v in self._verdicts.values() if v.action == "converged")
        return f"SignalScheduler: {len(self._trials)} trials seen, {pruned} pruned and {converged} stopped as converged."

    def save(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "wb") as f:
            pickle.dump(self.__dict__, f)

    def restore(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "rb") as f:
            self.__dict__.update(pickle.load(f))


def _config(trial: Any) -> dict:
    config = getattr(trial, "config", None)
    return config if isinstance(config, dict) else {}


def _stored_results(trial: Any) -> list[dict]:
    """Every result a trial reported, from the ``result.json`` Tune's logger wrote into its
    directory on the run's storage (local or cloud); ``[]`` if there is none to read."""
    from ray.air.constants import EXPR_RESULT_FILE

    storage = getattr(trial, "storage", None)
    try:
        with storage.storage_filesystem.open_input_stream(f"{storage.trial_fs_path}/{EXPR_RESULT_FILE}") as f:
            text = f.readall().decode("utf-8")
    except (AttributeError, RuntimeError, OSError):  # no storage, no trial dir yet, no file
        return []
    out = []
    for line in text.splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:  # a line cut short when the run was interrupted
            continue
        if isinstance(row, dict):
            out.append(row)
    return out
