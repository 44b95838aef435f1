"""How the checks write numbers and ranks into reasons: one wording everywhere."""

from __future__ import annotations

import math
from typing import Any, Optional

__all__ = ["fmt", "rank_phrase", "rank_evidence"]


def fmt(x: float) -> str:
    """A number as a reason shows it: 4 significant digits; ``nan``/``inf`` as such."""
    return f"{x:.4g}" if math.isfinite(x) else str(x)


def rank_phrase(n_ahead: int, n_others: int, step: int, budget: Optional[int] = None) -> str:
    """Where the trial stands; with a budget of its own, the others were read at the same share of theirs."""
    if budget:
        return f"rank {n_ahead + 1} of {n_others + 1} trials at {step}/{budget} of their budgets"
    return f"rank {n_ahead + 1} of {n_others + 1} trials at epoch {step}"


def rank_evidence(step: int, value: float, n_ahead: int, n_others: int, **threshold: float) -> dict[str, Any]:
    return {"epoch": step, "value": value, "rank": n_ahead + 1, "n_at_epoch": n_others + 1, **threshold}
