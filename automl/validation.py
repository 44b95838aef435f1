"""Checks of user input shared by every module: one wording for every refusal.

Each check returns the value it accepted (as the type it asks for), or raises ``ValueError`` whose
message names the argument, the value it got and what was expected, e.g.
``"epochs must be an integer >= 1, but got epochs=0."``. Pure Python: no numpy, torch or optuna.
"""

from __future__ import annotations

import logging
import math
import numbers
from collections.abc import Iterable, Mapping
from typing import Any, Optional

logger = logging.getLogger(__name__)

__all__ = ["is_finite", "finite_or_none", "real_or_none", "check_positive_int", "check_optional_positive_int",
           "check_metric", "BudgetReader"]


def real_or_none(x: Any) -> Optional[float]:
    """``x`` as a float if it is one real number -- a Python or numpy number, or a zero-dimensional
    array or tensor (an integer past float's range reads as ±inf) -- else ``None`` (``None``, a
    bool, text, a list).

    Example:
        >>> import numpy as np
        >>> [real_or_none(v) for v in (2, np.float32(0.5), np.array(1.5), 10**400, True, "3", [1.0], np.array(True))]
        [2.0, 0.5, 1.5, inf, None, None, None, None]
    """
    if isinstance(x, (bool, str, bytes)) or not (isinstance(x, numbers.Real) or getattr(x, "ndim", None) == 0):
        return None
    if getattr(getattr(x, "dtype", None), "kind", "f") in "bc":  # a boolean or complex array
        return None
    try:
        return float(x)
    except OverflowError:
        return math.inf if x > 0 else -math.inf
    except (TypeError, ValueError):
        return None


def is_finite(x: Any) -> bool:
    """True for a real, finite number, or text that reads as one (``None``, ``nan``, ``inf`` and
    non-numbers are not).

    Example:
        >>> [is_finite(v) for v in (1, 2.5, None, float("nan"), "3", "x")]
        [True, True, False, False, True, False]
    """
    if x is None:
        return False
    try:
        return math.isfinite(float(x))
    except (TypeError, ValueError, OverflowError):
        return False


def finite_or_none(x: Any) -> Optional[float]:
    """``float(x)`` if it is a finite number, else ``None`` (how JSON carries a diverged value)."""
    return float(x) if is_finite(x) else None


def check_positive_int(name: str, value: Any, *, minimum: int = 1) -> int:
    """``value`` if it is an integer (not a bool) of at least ``minimum``; else a ``ValueError``
    naming ``name`` and the value.

    Example:
        >>> check_positive_int("epochs", 3)
        3
        >>> check_positive_int("epochs", 0)
        Traceback (most recent call last):
        ...
        ValueError: epochs must be an integer >= 1, but got epochs=0.
    """
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        if hasattr(value, "__index__") and not isinstance(value, bool):  # numpy integers
            try:
                as_int = int(value.__index__())
            except (TypeError, ValueError):
                as_int = None
            if as_int is not None and as_int >= minimum:
                return as_int
        raise ValueError(f"{name} must be an integer >= {minimum}, but got {name}={value!r}.")
    return value


def check_optional_positive_int(name: str, value: Any, *, minimum: int = 1) -> Optional[int]:
    """As :func:`check_positive_int`, with ``None`` accepted (and returned) for "not set"."""
    if value is None:
        return None
    try:
        return check_positive_int(name, value, minimum=minimum)
    except ValueError:
        raise ValueError(f"{name} must be an integer >= {minimum} or None, but got {name}={value!r}.") from None


def check_metric(metric: Any, known: Iterable[str], *, name: str = "metric") -> str:
    """``metric`` if it is one of ``known``; else a ``ValueError`` listing them.

    Example:
        >>> check_metric("val_acc", ["val_acc", "val_loss"])
        'val_acc'
    """
    known = sorted(known)
    if not isinstance(metric, str) or metric not in known:
        raise ValueError(f"{name} must be one of {known}, but got {metric!r}.")
    return metric


class BudgetReader:
    """Reads a trial's own budget (epochs) from ``budget``: the name of one of its hyperparameters
    (looked up in ``getattr(trial, params)`` if ``params`` is given, else in the trial itself, a
    mapping), or a callable of the trial. A missing, non-positive or non-integer budget, or one past
    :data:`MAX_BUDGET`, reads as ``None`` (the adapter then uses the study's ``max_epochs``); so
    does every trial with ``budget=None``.
    Picklable, so a scheduler holding one can be checkpointed.

    Example:
        >>> BudgetReader("epochs")({"epochs": 40, "lr": 0.1}), BudgetReader("epochs")({"lr": 0.1})
        (40, None)
    """

    #: Class defaults, so a reader pickled before these attributes existed (a checkpointed Ray run) still reads.
    what = "trial"
    warned = False

    def __init__(self, budget: Any, *, params: Optional[str] = None, what: str = "trial") -> None:
        if budget is not None and not (isinstance(budget, str) and budget) and not callable(budget):
            raise ValueError(f"budget must be the name of a {what}'s hyperparameter, a callable of the {what}, "
                             f"or None, but got {budget!r}.")
        self.budget, self.params, self.what = budget, params, what
        self.warned = False

    def __call__(self, trial: Any) -> Optional[int]:
        if self.budget is None:
            return None
        if callable(self.budget):
            return _as_budget(self.budget(trial))
        source = getattr(trial, self.params, None) if self.params else trial
        if not hasattr(source, "get"):
            return None
        raw = source.get(self.budget)
        got = _as_budget(raw)
        if got is None and not self.warned and isinstance(source, Mapping) and source:
            self.warned = True  # once: a misspelt name would otherwise go unnoticed on every trial
            said = f"has no {self.budget!r}" if self.budget not in source else f"has {self.budget}={raw!r:.40}, not a budget"
            logger.warning("budget=%r: a %s %s (it has %s); such trials are read with the study's max_epochs. "
                           "Expected a whole number of epochs from 1 to %d.", self.budget, self.what, said,
                           ", ".join(map(str, list(source)[:8])), MAX_BUDGET)
        return got


#: The largest budget (epochs) a trial may state; past it a budget reads as missing.
MAX_BUDGET = 10**6


def _as_budget(value: Any) -> Optional[int]:
    if isinstance(value, bool) or value is None:
        return None
    try:
        b = int(value)
    except (TypeError, ValueError, OverflowError):
        return None
    return b if 1 <= b <= MAX_BUDGET and b == value else None
