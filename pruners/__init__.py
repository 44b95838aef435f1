"""Adapters from the one decision core (``automl.decide``) to Optuna and Ray Tune.

- ``SignalPruner``: an ``optuna.pruners.BasePruner``.
- ``SignalScheduler``: a Ray Tune ``FIFOScheduler`` (imported lazily: Ray is heavy).
- ``optuna_pruner(name, ...)`` and ``ray_scheduler(name, ...)``: every pruner and scheduler the
  search and the benchmarks run, ours and the built-ins, built in one place.
"""

from __future__ import annotations

from typing import Any

from pruners._registry import OPTUNA_PRUNERS, RAY_SCHEDULERS, optuna_pruner, ray_scheduler
from pruners._signal import PRUNE_ATTRS, SignalPruner

__all__ = ["SignalPruner", "SignalScheduler", "PRUNE_ATTRS", "optuna_pruner", "ray_scheduler", "OPTUNA_PRUNERS",
           "RAY_SCHEDULERS"]


def __getattr__(name: str) -> Any:
    if name == "SignalScheduler":
        from pruners._ray import SignalScheduler

        return SignalScheduler
    raise AttributeError(f"module 'pruners' has no attribute {name!r}")
