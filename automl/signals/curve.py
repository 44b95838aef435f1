"""The learning curve as a signal: forecast a trial's final value from finished peers.

All functions work in *lower-is-better* units: callers multiply a maximised metric by -1.

The forecast transfers what happened to similar finished trials: take the ``k`` finished
trials whose value at this epoch is closest to the trial's, and add each one's change from
this epoch to its end ("delta") to the trial's current value. The spread of those deltas is
the uncertainty band. It needs no curve shape assumption, costs one partial sort over the
finished trials, and is calibrated by the study itself (the better choice among forecasts is
settled by the replay benchmark, ``benchmarks/results/``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.special import bdtrc

__all__ = ["CurveForecast", "forecast_final", "median_at_step", "rank_correlation", "rank_tail"]


@dataclass(frozen=True)
class CurveForecast:
    """A forecast of the final value, lower is better: ``low`` is the optimistic end."""

    mean: float
    low: float
    high: float
    n_neighbors: int


def forecast_final(
    current: float,
    peers_now: np.ndarray,
    peers_final: np.ndarray,
    *,
    n_neighbors: int = 7,
    band: float = 0.8,
) -> CurveForecast:
    """Forecast a trial's final value from finished peers observed at the same epoch.

    Args:
        current: the trial's value now (finite, lower is better).
        peers_now: finished peers' values at this epoch (finite, lower is better).
        peers_final: the same peers' final values (finite, lower is better).
        n_neighbors: at least this many nearest peers are used (more when many finished:
            ``max(n_neighbors, sqrt(n))``).
        band: central probability mass of the band, e.g. 0.8 gives the 10%..90% quantiles.

    Returns:
        A ``CurveForecast``; ``low`` is the optimistic (best plausible) final value.

    Non-finite inputs are the caller's to filter; a ValueError names them if they slip through.

    Example:
        >>> f = forecast_final(0.5, np.array([0.4, 0.5, 0.6, 0.9]), np.array([0.3, 0.45, 0.5, 0.85]),
        ...                    n_neighbors=3)
        >>> round(f.mean, 3), f.n_neighbors
        (0.4, 3)
    """
    now = np.asarray(peers_now, dtype=float)
    final = np.asarray(peers_final, dtype=float)
    if now.shape != final.shape or now.ndim != 1 or now.size == 0:
        raise ValueError(
            f"peers_now and peers_final must be equal-length non-empty 1-D arrays, "
            f"but got shapes {now.shape} and {final.shape}."
        )
    if not (math.isfinite(current) and np.isfinite(now).all() and np.isfinite(final).all()):
        raise ValueError("forecast_final needs finite values; filter non-finite peers first.")
    if not 0.0 < band < 1.0:
        raise ValueError(f"band must be in (0, 1), but got {band=}.")
    n = now.size
    k = min(n, max(int(n_neighbors), int(math.isqrt(n))))
    if k < n:
        idx = np.argpartition(np.abs(now - current), k - 1)[:k]
        deltas = final[idx] - now[idx]
    else:
        deltas = final - now
    d = np.sort(deltas).tolist()
    q_lo, q_mid, q_hi = (_quantile_sorted(d, q) for q in ((1.0 - band) / 2.0, 0.5, (1.0 + band) / 2.0))
    return CurveForecast(mean=current + q_mid, low=current + q_lo, high=current + q_hi, n_neighbors=k)


def _quantile_sorted(d: list[float], q: float) -> float:
    """numpy's default ("linear") quantile of an ascending list; for the few values of a
    forecast this is ~50x faster than ``np.quantile``."""
    pos = q * (len(d) - 1)
    lo = int(math.floor(pos))
    hi = min(lo + 1, len(d) - 1)
    return d[lo] + (d[hi] - d[lo]) * (pos - lo)


def median_at_step(peers_now: np.ndarray) -> float:
    """Median of finished peers' values at one epoch (``nan`` when there are none)."""
    arr = np.asarray(peers_now, dtype=float)
    return float(np.median(arr)) if arr.size else float("nan")


def rank_tail(n_ahead: int, n_others: int, cut: float) -> float:
    """How surprising ``n_ahead`` trials ahead out of ``n_others`` would be for a trial standing
    exactly at the quantile ``cut`` of its population: ``P(X >= n_ahead)`` for ``X ~
    Binomial(n_others, cut)`` (a one-sided binomial test; the trials compared are earlier draws
    from the same search space). Small means the trial is very likely behind the top ``cut``.

    Example:
        >>> round(rank_tail(3, 6, 0.4), 3)  # 3 of 6 ahead: no evidence against the top 40%
        0.456
        >>> rank_tail(110, 130, 0.4) < 1e-12
        True
    """
    if not 0.0 < cut < 1.0:
        raise ValueError(f"cut must be a fraction in (0, 1), but got {cut!r}.")
    if n_others < 0 or not 0 <= n_ahead <= n_others:
        raise ValueError(f"need 0 <= n_ahead <= n_others, but got n_ahead={n_ahead!r}, n_others={n_others!r}.")
    if n_ahead == 0:
        return 1.0
    return float(bdtrc(n_ahead - 1, n_others, cut))


def rank_correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman's rank correlation of two equal-length samples (ties get the mean rank);
    ``nan`` when fewer than 3 values or either sample is constant.

    Example:
        >>> rank_correlation(np.array([1.0, 2.0, 3.0, 4.0]), np.array([10.0, 20.0, 30.0, 35.0]))
        1.0
    """
    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(f"a and b must be equal-length 1-D arrays, but got shapes {x.shape} and {y.shape}.")
    if x.size < 3:
        return float("nan")
    rx, ry = _ranks(x), _ranks(y)
    rx -= rx.mean()
    ry -= ry.mean()
    denom = float(np.sqrt((rx * rx).sum() * (ry * ry).sum()))
    return float((rx * ry).sum() / denom) if denom > 0 else float("nan")


def _ranks(x: np.ndarray) -> np.ndarray:
    order = np.argsort(x, kind="mergesort")
    xs = x[order]
    ranks = np.empty(x.size, dtype=float)
    new = np.empty(x.size, dtype=bool)
    new[0] = True
    np.not_equal(xs[1:], xs[:-1], out=new[1:])
    if new.all():  # no ties
        ranks[order] = np.arange(x.size, dtype=float)
        return ranks
    # Mean rank for ties: each run of equal sorted values shares the mean of its positions.
    group = np.cumsum(new) - 1
    mean = np.bincount(group, weights=np.arange(x.size, dtype=float)) / np.bincount(group)
    ranks[order] = mean[group]
    return ranks
