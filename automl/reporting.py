"""Send an ``EpochRecord`` to where the search lives: an Optuna trial or Ray Tune.

``report(record, trial, metric="val_loss")`` calls ``trial.report(value, step=epoch)`` and keeps the
compact record in the trial's user attributes (``record_0001``, ``record_0002``, ...), so the
pruner, ``automl show`` and optuna-dashboard can read it. ``report(record, metric=...)`` with no
trial calls ``ray.tune.report`` from inside a Tune trainable.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Optional

from automl.records import METRICS, EpochRecord, tune_metrics
from automl.validation import check_metric

__all__ = ["report", "record_key", "records_from_user_attrs", "tune_metrics", "verdict_attrs", "RECORD_PREFIX",
           "PRUNE_ATTRS", "STOP_ATTRS"]

#: User attributes of an Optuna trial that hold its epoch records (``record_0001``, ...).
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
        trial.set_user_attr(record_key(record.epoch), record.compact())
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


def records_from_user_attrs(user_attrs: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The compact records stored by :func:`report`, in epoch order."""
    epochs = sorted(
        (int(k[len(RECORD_PREFIX):]), k) for k in user_attrs if k.startswith(RECORD_PREFIX) and k[len(RECORD_PREFIX):].isdigit()
    )
    return [user_attrs[k] for _, k in epochs]
