"""Checks of user input shared by every module: one wording for every refusal.

Each check returns the value it accepted (as the type it asks for), or raises ``ValueError`` whose
message names the argument, the value it got and what was expected, e.g.
``"epochs must be an integer >= 1, but got epochs=0."``. Pure Python: no numpy, torch or optuna.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any, Optional

__all__ = ["is_finite", "finite_or_none", "check_positive_int", "check_optional_positive_int", "check_metric"]


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
