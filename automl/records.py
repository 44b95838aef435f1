"""Per-epoch training records: plain, JSON-serialisable data every other part reads.

Non-finite numbers (a diverged run) are kept as ``nan``/``inf`` in memory and written as
``null`` in JSON, as the curve-bank format asks; reading ``null`` back gives ``None``.

One record travels in three shapes, and this module owns every change between them:

- ``EpochRecord``, in memory, as the probe writes it;
- the **compact** dict (``EpochRecord.compact()``): nested, without the step-level trace, non-finite
  as ``None``; what Optuna user attributes hold and what ``decide`` and ``diagnose`` read;
- the **flat** dict (:func:`tune_metrics`): scalars only, as reported to Ray Tune, with the layer
  statistics summed up (:data:`FLAT_LAYER_KEYS`) and the convergence state as ``dynamics_*`` keys.
  :func:`compact_from_flat` turns one Ray result back into the compact dict ``decide`` reads.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any, Optional

from pydantic import BaseModel, ConfigDict, Field

from automl.validation import finite_or_none, is_finite

__all__ = ["EpochRecord", "LayerStats", "ActivationTrace", "METRICS", "FLAT_LAYER_KEYS", "tune_metrics",
           "compact_from_flat", "is_finite"]

#: Metric names a record carries, and the direction in which each improves.
METRICS: dict[str, str] = {
    "val_loss": "minimize",
    "val_acc": "maximize",
    "train_loss": "minimize",
    "train_acc": "maximize",
    "test_loss": "minimize",
    "test_acc": "maximize",
}

Num = Optional[float]
_SCALARS = ("lr", "wall_time", "beta_eff")  # other numeric fields metric() may read


class LayerStats(BaseModel):
    """Statistics of one layer (a module with a weight of rank >= 2) over one epoch."""

    model_config = ConfigDict(extra="forbid", ser_json_inf_nan="null")

    name: str
    grad_norm: Num = Field(None, description="mean L2 norm of the weight gradient over sampled steps")
    zero_grad_frac: Num = Field(None, description="mean fraction of exactly-zero weight-gradient entries")
    weight_mean: Num = None
    weight_std: Num = None
    weight_norm: Num = None
    weight_abs_max: Num = None
    act_rms: Num = Field(None, description="RMS of the layer's output on the fixed probe batch (eval mode)")


class ActivationTrace(BaseModel):
    """Per-layer RMS activation of the probe batch, logged every k optimizer steps."""

    model_config = ConfigDict(extra="forbid", ser_json_inf_nan="null")

    steps: list[int] = Field(default_factory=list)
    rms: list[list[Num]] = Field(default_factory=list, description="one row per logged step, one value per layer")
    beta_eff: list[Num] = Field(default_factory=list, description="βeff of the NCP at each logged step (with an NCP)")


class EpochRecord(BaseModel):
    """What the probe saw in one epoch of one trial.

    Example:
        >>> rec = EpochRecord(epoch=1, step=10, val_loss=float("nan"), val_acc=0.5)
        >>> rec.metric("val_loss")
        nan
        >>> EpochRecord.model_validate_json(rec.model_dump_json()).val_loss is None
        True
    """

    model_config = ConfigDict(extra="forbid", ser_json_inf_nan="null")

    epoch: int = Field(..., ge=1, description="1-based epoch number")
    step: int = Field(0, ge=0, description="optimizer steps taken so far")
    train_loss: Num = None
    train_acc: Num = None
    val_loss: Num = None
    val_acc: Num = None
    test_loss: Num = None
    test_acc: Num = None
    lr: Num = None
    wall_time: Num = Field(None, description="seconds spent in this epoch (training and probing)")
    layers: list[LayerStats] = Field(default_factory=list)
    activations: Optional[ActivationTrace] = None
    # Reserved for later signals (capacitance, dynamics, failure labels).
    beta_eff: Num = Field(None, description="βeff of the neural capacitance probe (the probe's chosen weighting)")
    capacitance: Optional[dict[str, Num]] = Field(
        None, description="βeff under each link weighting ('product', 'downstream') and a shadow NCP's ncp_train_loss/ncp_train_acc"
    )
    dynamics: Optional[dict[str, Num]] = None
    failure_labels: Optional[dict[str, float]] = None

    def metric(self, name: str) -> float:
        """The value of ``name`` as a float; ``nan`` when missing or non-finite (``None`` in JSON)."""
        if name not in METRICS and name not in _SCALARS:
            raise ValueError(f"unknown metric {name!r}; expected one of {sorted(METRICS) + sorted(_SCALARS)}.")
        value = getattr(self, name, None)
        return float("nan") if value is None else float(value)

    @property
    def grad_norm_first(self) -> float:
        return _nan_if_none(self.layers[0].grad_norm) if self.layers else float("nan")

    @property
    def grad_norm_last(self) -> float:
        return _nan_if_none(self.layers[-1].grad_norm) if self.layers else float("nan")

    @property
    def zero_grad_frac(self) -> float:
        """Mean zero-gradient fraction over layers (each layer weighs the same)."""
        vals = [l.zero_grad_frac for l in self.layers if l.zero_grad_frac is not None]
        return float(sum(vals) / len(vals)) if vals else float("nan")

    @property
    def weight_norm(self) -> float:
        """Total weight norm over layers (root of the sum of squares; nan if a layer lacks it)."""
        vals = [_nan_if_none(l.weight_norm) for l in self.layers]
        return math.sqrt(sum(v * v for v in vals)) if vals else float("nan")

    def compact(self) -> dict[str, Any]:
        """JSON-ready dict without the step-level activation trace (for Optuna user attrs)."""
        # Through JSON text so non-finite numbers become null (strict JSON), as in curve banks.
        return json.loads(self.model_dump_json(exclude={"activations"}, exclude_none=True))


#: The layer statistics of a flat record (per-layer lists summed up), as the failure classifier reads them.
FLAT_LAYER_KEYS = ("grad_norm_first", "grad_norm_last", "zero_grad_frac", "weight_norm", "n_layers")
_DYNAMICS_PREFIX = "dynamics_"


def tune_metrics(record: EpochRecord) -> dict[str, Any]:
    """The flat shape of a record: its scalars, as reported to Ray Tune.

    A field that was not measured (``None``) is left out, as ``EpochRecord.compact`` does for
    Optuna, so it is never read as a diverged value; a measured ``nan``/``inf`` stays as it is.
    """
    out: dict[str, Any] = {"epoch": record.epoch, "step": record.step}
    for name in (*METRICS, *_SCALARS):
        value = getattr(record, name)
        if value is not None:
            out[name] = float(value)
    for name, value in (record.dynamics or {}).items():  # the convergence rule's state, for SignalScheduler
        if value is not None:
            out[f"{_DYNAMICS_PREFIX}{name}"] = value
    if record.layers:
        out["grad_norm_first"] = record.grad_norm_first
        out["grad_norm_last"] = record.grad_norm_last
        out["zero_grad_frac"] = record.zero_grad_frac
        out["weight_norm"] = record.weight_norm
        out["n_layers"] = len(record.layers)
    return out


def compact_from_flat(result: Mapping[str, Any], epoch: int) -> dict[str, Any]:
    """The compact dict ``decide`` reads from one flat result (a Ray Tune result): ``epoch``, the
    metrics, ``beta_eff``, the flat layer statistics (which ``diagnose`` reads as they are) and the
    ``dynamics_*`` keys nested back under ``dynamics``. Non-finite values become ``None``.

    Example:
        >>> compact_from_flat({"val_loss": float("nan"), "dynamics_converged_step": 40, "x": 1}, epoch=3)
        {'epoch': 3, 'val_loss': None, 'dynamics': {'converged_step': 40}}
    """
    out: dict[str, Any] = {"epoch": int(epoch)}
    for key in (*METRICS, "beta_eff", *FLAT_LAYER_KEYS):
        if key in result:
            out[key] = result[key] if key == "n_layers" else finite_or_none(result[key])
    dynamics = {k[len(_DYNAMICS_PREFIX):]: v for k, v in result.items() if k.startswith(_DYNAMICS_PREFIX)}
    if dynamics:
        out["dynamics"] = dynamics
    return out


def _nan_if_none(x: Optional[float]) -> float:
    return float("nan") if x is None else float(x)
