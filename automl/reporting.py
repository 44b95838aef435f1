"""Send an ``EpochRecord`` to where the search lives: an Optuna trial or Ray Tune.

``report(record, trial, metric="val_loss")`` calls ``trial.report(value, step=epoch)`` and keeps the
compact record on the trial as a system attribute (``record_0001``, ``record_0002``, ...;
:func:`records_of` reads them back), so the pruner and ``automl show`` read it while
optuna-dashboard's list of user attributes keeps to the reason and the settings. ``report(record, metric=...)`` with no
trial calls ``ray.tune.report`` from inside a Tune trainable.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Optional

from automl.records import METRICS, EpochRecord, tune_metrics
from automl.validation import check_metric

__all__ = ["report", "record_key", "store_record", "records_of", "records_from_user_attrs", "tune_metrics", "verdict_attrs", "RECORD_PREFIX",
           "PRUNE_ATTRS", "STOP_ATTRS"]

#: Keys of an Optuna trial's epoch records (``record_0001``, ...). They are *system* attributes:
#: optuna-dashboard shows a trial's user attributes (one column each in its trial table), where a
#: hundred records would bury ``prune_reason``. Studies written before kept them as user attributes;
#: :func:`records_of` reads both.
RECORD_PREFIX = "record_"
#: Attributes of a trial a pruner stopped ("will lose"): Optuna user attributes, Ray result keys.
PRUNE_ATTRS = ("prune_reason", "prune_epoch", "prune_source", "prune_evidence", "predicted_final")
#: Attributes of a trial stopped as converged ("will not gain"): it finishes with the value it reached.
STOP_ATTRS = ("stop_reason", "stop_epoch", "stop_source", "stop_evidence")


def record_key(epoch: int) -> str:
    """User-attribute key of an epoch's record (zero-padded so keys sort by epoch)."""
    return f"{RECORD_PREFIX}{epoch:04d}"


def report(record: EpochRecord, trial: Optional[Any] = None, *, metric: str = "val_loss") -> float:
    """Report one epoch: to ``trial`` (an ``optuna.Trial``) if given, else to Ray Tune.

    Args:
        record: the epoch's record (from ``Probe.end_epoch``).
        trial: an ``optuna.trial.Trial``; ``None`` reports with ``ray.tune.report``.
        metric: the record field that is the search's objective, e.g. ``"val_acc"``.

    Returns:
        The reported metric value (``nan`` if the run diverged; that is reported as is).
    """
    check_metric(metric, METRICS)
    value = record.metric(metric)
    if trial is not None:
        trial.report(value, step=record.epoch)
        store_record(trial, record.epoch, record.compact())
    else:
        from ray import tune

        tune.report(tune_metrics(record))
    return value


def verdict_attrs(verdict: Any, epoch: Optional[int], *, evidence: bool = True) -> dict[str, Any]:
    """The attributes that store a stopping ``Verdict`` on its trial: :data:`PRUNE_ATTRS` for a
    ``prune``, :data:`STOP_ATTRS` for a ``converged`` one (JSON-ready: non-finite numbers become
    ``None``). ``evidence=False`` leaves out the nested evidence (flat stores such as Ray results).

    Example:
        >>> from automl.decision import Verdict
        >>> verdict_attrs(Verdict(action="converged", reason="settled", source="dynamics", evidence={"x": float("nan")}), 7)
        {'stop_reason': 'settled', 'stop_epoch': 7, 'stop_source': 'dynamics', 'stop_evidence': {'x': None}}
    """
    import json

    data = json.loads(verdict.model_dump_json())
    names = PRUNE_ATTRS if verdict.action == "prune" else STOP_ATTRS
    values = (verdict.reason, epoch, verdict.source, data["evidence"], data["predicted_final"])
    return {k: v for k, v in zip(names, values) if evidence or not k.endswith("_evidence")}


def store_record(trial: Any, epoch: int, compact: Mapping[str, Any]) -> None:
    """Keep an epoch's compact record on a live ``optuna.Trial`` (a system attribute; see
    :data:`RECORD_PREFIX`), through the trial's storage: thread- and process-safe as it is."""
    from automl.storage import set_trial_attrs

    if not hasattr(trial, "study") or not hasattr(trial, "_trial_id"):  # FixedTrial and other stand-ins
        trial.set_user_attr(record_key(epoch), dict(compact))
        return
    set_trial_attrs(trial.study, trial, {record_key(epoch): dict(compact)}, kind="system")


def records_of(trial: Any) -> list[Mapping[str, Any]]:
    """A ``FrozenTrial``'s records, in epoch order: where :func:`report` keeps them, or where
    studies written by earlier versions kept them (user attributes)."""
    return records_from_user_attrs(trial.system_attrs) or records_from_user_attrs(trial.user_attrs)


def records_from_user_attrs(user_attrs: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The compact records among ``user_attrs`` (or any attribute mapping), in epoch order."""
    epochs = sorted(
        (int(k[len(RECORD_PREFIX):]), k) for k in user_attrs if k.startswith(RECORD_PREFIX) and k[len(RECORD_PREFIX):].isdigit()
    )
    return [user_attrs[k] for _, k in epochs]
