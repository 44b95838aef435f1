"""Send an ``EpochRecord`` to where the search lives: an Optuna trial or Ray Tune.

``report(record, trial, metric="val_loss")`` calls ``trial.report(value, step=epoch)`` and keeps the
compact record in the trial's user attributes (``record_0001``, ``record_0002``, ...), so the
pruner, ``automl show`` and optuna-dashboard can read it. ``report(record, metric=...)`` with no
trial calls ``ray.tune.report`` from inside a Tune trainable.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Optional

from automl.records import METRICS, EpochRecord

__all__ = ["report", "record_key", "records_from_user_attrs", "tune_metrics", "RECORD_PREFIX"]

RECORD_PREFIX = "record_"


def record_key(epoch: int) -> str:
    """User-attribute key of an epoch's record (zero-padded so keys sort by epoch)."""
    return f"{RECORD_PREFIX}{epoch:04d}"


def _check_metric(metric: str) -> None:
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {sorted(METRICS)}, but got {metric!r}.")


def tune_metrics(record: EpochRecord) -> dict[str, Any]:
    """The flat scalars of a record, as reported to Ray Tune.

    A field that was not measured (``None``) is left out, as ``EpochRecord.compact`` does for
    Optuna, so it is never read as a diverged value; a measured ``nan``/``inf`` stays as it is.
    """
    out: dict[str, Any] = {"epoch": record.epoch, "step": record.step}
    for name in (*METRICS, "lr", "wall_time", "beta_eff"):
        value = getattr(record, name)
        if value is not None:
            out[name] = float(value)
    for name, value in (record.dynamics or {}).items():  # the convergence rule's state, for SignalScheduler
        if value is not None:
            out[f"dynamics_{name}"] = value
    if record.layers:
        out["grad_norm_first"] = record.grad_norm_first
        out["grad_norm_last"] = record.grad_norm_last
        out["zero_grad_frac"] = record.zero_grad_frac
        out["weight_norm"] = record.weight_norm
        out["n_layers"] = len(record.layers)
    return out


def report(record: EpochRecord, trial: Optional[Any] = None, *, metric: str = "val_loss") -> float:
    """Report one epoch: to ``trial`` (an ``optuna.Trial``) if given, else to Ray Tune.

    Args:
        record: the epoch's record (from ``Probe.end_epoch``).
        trial: an ``optuna.trial.Trial``; ``None`` reports with ``ray.tune.report``.
        metric: the record field that is the search's objective, e.g. ``"val_acc"``.

    Returns:
        The reported metric value (``nan`` if the run diverged; that is reported as is).
    """
    _check_metric(metric)
    value = record.metric(metric)
    if trial is not None:
        trial.report(value, step=record.epoch)
        trial.set_user_attr(record_key(record.epoch), record.compact())
    else:
        from ray import tune

        tune.report(tune_metrics(record))
    return value


def records_from_user_attrs(user_attrs: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The compact records stored by :func:`report`, in epoch order."""
    epochs = sorted(
        (int(k[len(RECORD_PREFIX):]), k) for k in user_attrs if k.startswith(RECORD_PREFIX) and k[len(RECORD_PREFIX):].isdigit()
    )
    return [user_attrs[k] for _, k in epochs]
