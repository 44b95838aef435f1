"""Adapters from the one decision core (``automl.decide``) to Optuna and Ray Tune.

- ``SignalPruner``: an ``optuna.pruners.BasePruner``.
- ``SignalScheduler``: a Ray Tune ``FIFOScheduler`` (imported lazily: Ray is heavy).
"""

from __future__ import annotations

from typing import Any

from pruners._signal import PRUNE_ATTRS, SignalPruner

__all__ = ["SignalPruner", "SignalScheduler", "PRUNE_ATTRS"]


def __getattr__(name: str) -> Any:
    if name == "SignalScheduler":
        from pruners._ray import SignalScheduler

        return SignalScheduler
    raise AttributeError(f"module 'pruners' has no attribute {name!r}")
