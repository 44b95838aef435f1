"""Dynamical measures over layer activations: integration (DFA), metastability (Kuramoto), DSI.

Layers play the channels of a recording and training time plays time (La Quang et al., arXiv
2604.09716, 2026). The input is X[L, T]: per-layer RMS activation of a fixed probe batch, logged
every k optimizer steps (``EpochRecord.activations``). Procedure:

- work on first differences z-scored per layer (:func:`diff_zscore`): the raw series share a
  trend that would make every layer look synchronous;
- integration: the DFA-1 exponent of each layer (:func:`dfa_alpha`), I = their mean; white noise
  gives 0.5, a random walk 1.5; no exponent below 16 points (nan), low confidence below 32;
- metastability: Kuramoto order parameter R(t) of the layers' Hilbert phases
  (:func:`order_parameter`); after trimming 10% at each edge, M = std R, synchrony S = mean R
  (:func:`metastability`); independent layers give E[R] ≈ sqrt(π/(4L)), so M and S are also
  reported as z-scores against circularly shifted layers (:func:`metastability_null`);
- stability index DSI = clip(I/1.5, 0, 1) · (1 − clip(M/0.5, 0, 1)) on a trailing window, its
  rolling volatility, and the "converged" rule (:func:`converged_at`); :func:`stability_series`
  computes DSI on every trailing window at once and :func:`convergence` applies the rule, checked
  against the same rule on circularly shifted layers.

All functions are numpy/scipy only and vectorised over layers.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
from scipy.signal import hilbert

from automl.validation import check_positive_int

__all__ = [
    "MIN_DFA_POINTS",
    "CONFIDENT_DFA_POINTS",
    "diff_zscore",
    "dfa_alpha",
    "integration",
    "order_parameter",
    "metastability",
    "metastability_null",
    "MetastabilityNull",
    "stability_index",
    "rolling_std",
    "converged_at",
    "StabilitySeries",
    "stability_series",
    "Convergence",
    "convergence",
    "converged_epoch",
    "shifted_surrogate",
]

MIN_DFA_POINTS = 16  # below: no exponent
CONFIDENT_DFA_POINTS = 32  # below: an exponent, flagged low-confidence


def _rows(x) -> tuple[np.ndarray, bool]:
    a = np.asarray(x, dtype=float)
    if a.ndim not in (1, 2):
        raise ValueError(f"expected a series (N,) or layers x time (L, N), but got shape {a.shape}.")
    return (a[None, :], True) if a.ndim == 1 else (a, False)


def diff_zscore(x) -> np.ndarray:
    """First differences of each row, z-scored per row (a constant row becomes zeros)."""
    X, one = _rows(x)
    d = np.diff(X, axis=1)
    sd = d.std(axis=1, keepdims=True)
    z = (d - d.mean(axis=1, keepdims=True)) / np.where(sd > 0, sd, 1.0)
    return z[0] if one else z


def _dfa_scales(n: int, count: int = 8) -> np.ndarray:
    # 4..N/4; short series (16 <= N < 32, flagged low-confidence) stretch to 8 = N/2 at most so
    # that two scales remain to fit a slope.
    top = n // 4 if n // 4 >= 8 else min(8, n // 2)
    if top < 5:
        return np.array([], dtype=int)
    return np.unique(np.round(np.logspace(math.log10(4), math.log10(top), count)).astype(int))


def dfa_alpha(x) -> np.ndarray:
    """DFA-1 exponent of each row of ``x`` ((L, N) -> (L,); a 1-D series gives a 0-d array).

    Profile = cumsum(x − mean); about 8 log-spaced window sizes from 4 to N/4 (to 8 for N < 32),
    windows overlapping
    by half, a straight line removed from each window; F(n) = the RMS residual pooled over windows;
    α = the least-squares slope of log F on log n. ``nan`` for rows shorter than 16 points, with a
    non-finite value, or constant.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> float(np.round(dfa_alpha(rng.normal(size=2048)), 1))
        0.5
    """
    X, one = _rows(x)
    L, n = X.shape
    alpha = np.full(L, np.nan)
    scales = _dfa_scales(n)
    ok = np.isfinite(X).all(axis=1)
    if n < MIN_DFA_POINTS or len(scales) < 2 or not ok.any():
        return alpha[0] if one else alpha
    Y = X[ok]
    profile = np.cumsum(Y - Y.mean(axis=1, keepdims=True), axis=1)
    log_f = np.empty((len(Y), len(scales)))
    for j, s in enumerate(scales):
        starts = np.arange(0, n - s + 1, max(1, s // 2))
        seg = profile[:, starts[:, None] + np.arange(s)]  # (L, windows, s)
        t = np.arange(s) - (s - 1) / 2.0
        centred = seg - seg.mean(axis=2, keepdims=True)
        slope = (centred @ t) / (t @ t)
        resid = centred - slope[..., None] * t
        with np.errstate(divide="ignore"):
            log_f[:, j] = 0.5 * np.log(np.mean(resid**2, axis=(1, 2)))
    log_n = np.log(scales.astype(float))
    log_n -= log_n.mean()
    finite = np.isfinite(log_f).all(axis=1)  # a constant row has F = 0: no exponent
    slopes = np.full(len(Y), np.nan)
    slopes[finite] = (log_f[finite] - log_f[finite].mean(axis=1, keepdims=True)) @ log_n / (log_n @ log_n)
    alpha[ok] = slopes
    return np.asarray(alpha[0]) if one else alpha


def integration(x) -> tuple[float, bool]:
    """I = mean DFA exponent over layers, and whether it is low-confidence (fewer than 32 points)."""
    X, _ = _rows(x)
    alphas = dfa_alpha(X)
    finite = alphas[np.isfinite(alphas)]
    return (float(finite.mean()) if finite.size else math.nan), X.shape[1] < CONFIDENT_DFA_POINTS


def order_parameter(x) -> np.ndarray:
    """Kuramoto R(t) = |mean_j exp(i φ_j(t))| of the rows of ``x`` (L, T), with φ_j the phase of
    the analytic signal (Hilbert transform) of row j as given. A single row gives R = 1.

    Example:
        >>> t = np.linspace(0, 20, 400)
        >>> bool(np.allclose(order_parameter(np.vstack([np.sin(t)] * 3)), 1.0))
        True
    """
    X, _ = _rows(x)
    if X.shape[1] < 2:
        raise ValueError(f"an order parameter needs at least 2 time points, but got {X.shape[1]}.")
    phases = np.angle(hilbert(X, axis=1))
    return np.abs(np.exp(1j * phases).mean(axis=0))


def _trim(r: np.ndarray, trim: float) -> np.ndarray:
    k = int(round(trim * len(r)))
    return r[k : len(r) - k] if len(r) - 2 * k >= 2 else r


def metastability(x, trim: float = 0.1) -> tuple[float, float]:
    """(M, S): the std and mean of R(t) after dropping ``trim`` of the points at each edge (the
    Hilbert transform is unreliable there)."""
    if not 0.0 <= trim < 0.5:
        raise ValueError(f"trim must be in [0, 0.5), but got {trim=}.")
    r = _trim(order_parameter(x), trim)
    return float(r.std()), float(r.mean())


class MetastabilityNull(NamedTuple):
    """M and S, the same under the null (each layer circularly shifted at random), and z-scores."""

    m: float
    s: float
    m_null_mean: float
    m_null_std: float
    s_null_mean: float
    s_null_std: float
    m_z: float
    s_z: float


def metastability_null(x, *, n_null: int = 100, seed: int = 0, trim: float = 0.1) -> MetastabilityNull:
    """M and S of ``x`` against ``n_null`` surrogates in which every layer is shifted circularly by
    its own random offset: the shifts keep each layer's own dynamics and break the alignment."""
    X, _ = _rows(x)
    m, s = metastability(X, trim)
    rng = np.random.default_rng(seed)
    L, T = X.shape
    ms, ss = np.empty(n_null), np.empty(n_null)
    rows = np.arange(L)[:, None]
    for i in range(n_null):
        shifts = rng.integers(0, T, size=L)
        shifted = X[rows, (np.arange(T)[None, :] + shifts[:, None]) % T]
        ms[i], ss[i] = metastability(shifted, trim)

    def z(v: float, null: np.ndarray) -> float:
        sd = float(null.std())
        return (v - float(null.mean())) / sd if sd > 0 else math.nan

    return MetastabilityNull(m, s, float(ms.mean()), float(ms.std()), float(ss.mean()), float(ss.std()), z(m, ms), z(s, ss))


def stability_index(i: float, m: float) -> float:
    """DSI = clip(I/1.5, 0, 1) · (1 − clip(M/0.5, 0, 1)); ``nan`` if either is ``nan``."""
    if not (math.isfinite(i) and math.isfinite(m)):
        return math.nan
    return min(max(i / 1.5, 0.0), 1.0) * (1.0 - min(max(m / 0.5, 0.0), 1.0))


def rolling_std(x, window: int) -> np.ndarray:
    """Std of the trailing ``window`` points at each position (``nan`` until the window is full)."""
    v = np.asarray(x, dtype=float)
    window = check_positive_int("window", window, minimum=2)
    out = np.full(len(v), np.nan)
    if len(v) >= window:
        out[window - 1 :] = np.lib.stride_tricks.sliding_window_view(v, window).std(axis=1)
    return out


def converged_at(volatility, *, fraction: float = 0.3, hold: int = 3) -> int | None:
    """First index at which the volatility has stayed at or below ``fraction`` of its running
    maximum for ``hold`` consecutive points (the index of the last of them), or ``None``."""
    v = np.asarray(volatility, dtype=float)
    run, peak = 0, -math.inf
    for i, x in enumerate(v):
        if not math.isfinite(x):
            run = 0
            continue
        peak = max(peak, x)
        run = run + 1 if peak > 0 and x <= fraction * peak else 0
        if run >= hold:
            return i
    return None


class StabilitySeries(NamedTuple):
    """The stability index on every trailing window of a trace X[L, T].

    ``end[i]`` is the index (into the T points) of the last point of window i; ``integration``,
    ``metastability`` and ``dsi`` are the window's I, M and DSI; ``volatility`` is the rolling std
    of ``dsi`` over ``vol_window`` windows (``nan`` until it is full).
    """

    end: np.ndarray
    integration: np.ndarray
    metastability: np.ndarray
    dsi: np.ndarray
    volatility: np.ndarray


def _window_stats(d: np.ndarray, window: int, trim: float) -> tuple[np.ndarray, np.ndarray]:
    """I and M of every trailing window of the differenced trace ``d`` (L, N): (W,) each."""
    L, n = d.shape
    win = np.lib.stride_tricks.sliding_window_view(d, window, axis=1).transpose(1, 0, 2)  # (W, L, window)
    W = win.shape[0]
    sd = win.std(axis=2, keepdims=True)
    z = (win - win.mean(axis=2, keepdims=True)) / np.where(sd > 0, sd, 1.0)
    alphas = dfa_alpha(z.reshape(W * L, window)).reshape(W, L)
    alphas[(sd[..., 0] == 0)] = np.nan  # a flat layer in this window has no exponent
    with np.errstate(all="ignore"):
        count = np.isfinite(alphas).sum(axis=1)
        i = np.where(count > 0, np.nansum(alphas, axis=1) / np.maximum(count, 1), np.nan)
    r = np.abs(np.exp(1j * np.angle(hilbert(z, axis=2))).mean(axis=1))  # (W, window)
    k = int(round(trim * window))
    r = r[:, k : window - k] if window - 2 * k >= 2 else r
    return i, r.std(axis=1)


def stability_series(x, *, window: int = 64, vol_window: int = 16, trim: float = 0.1,
                     previous: StabilitySeries | None = None) -> StabilitySeries:
    """DSI on every trailing window of ``window`` first differences of the trace ``x`` (L, T).

    Each window is z-scored per layer on its own (the index reads the shape of the fluctuations,
    not their size), then I = mean DFA exponent over layers and M = std of the Kuramoto R(t) after
    trimming ``trim`` at each edge; DSI = clip(I/1.5, 0, 1) · (1 − clip(M/0.5, 0, 1)). Every window
    uses only its past: the series of a prefix is the prefix of the series, so ``previous`` (the
    series of a prefix of ``x``, with the same settings) is reused and only the new windows are
    computed, as a probe does once per epoch.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> s = stability_series(rng.normal(size=(4, 200)).cumsum(axis=1))
        >>> len(s.dsi), int(s.end[0]), bool(np.isnan(s.volatility[:15]).all() and np.isfinite(s.volatility[15:]).all())
        (136, 64, True)
    """
    X, _ = _rows(x)
    window = check_positive_int("window", window, minimum=MIN_DFA_POINTS)  # DFA needs that many points
    vol_window = check_positive_int("vol_window", vol_window, minimum=2)
    done = 0 if previous is None else len(previous.dsi)
    if done and X.shape[1] - 1 - window + 1 >= done:
        tail = stability_series(X[:, done:], window=window, vol_window=vol_window, trim=trim)
        i = np.concatenate([previous.integration, tail.integration])
        m = np.concatenate([previous.metastability, tail.metastability])
        dsi = np.concatenate([previous.dsi, tail.dsi])
        return StabilitySeries(np.arange(len(dsi)) + window, i, m, dsi, rolling_std(dsi, vol_window))
    d = np.diff(X, axis=1)
    if d.shape[1] < window:
        empty = np.array([])
        return StabilitySeries(np.array([], dtype=int), empty, empty, empty, empty)
    bad = ~np.isfinite(d)
    i, m = _window_stats(np.where(bad, 0.0, d), window, trim)
    if bad.any():  # a window touching a non-finite value has no index
        touched = np.lib.stride_tricks.sliding_window_view(bad.any(axis=0), window).any(axis=1)
        i[touched], m[touched] = np.nan, np.nan
    dsi = np.clip(i / 1.5, 0.0, 1.0) * (1.0 - np.clip(m / 0.5, 0.0, 1.0))
    end = np.arange(len(dsi)) + window  # window j covers differences j..j+window-1 = points j..j+window
    return StabilitySeries(end, i, m, dsi, rolling_std(dsi, vol_window) if len(dsi) >= 1 else dsi)


class Convergence(NamedTuple):
    """The convergence rule applied to a trace, and the null it is checked against.

    Attributes:
        index: the trace point at which the trace counts as converged (the rule fired and fired
            earlier than on most null surrogates), or ``None``.
        fired: the trace point at which the rule fired on the real trace (``None``: not yet).
        null_median: the median point at which it fires on the surrogates (``inf``: most never do).
        null_fired_share: the share of surrogates on which it fired no later than ``fired``.
        series: the real trace's :class:`StabilitySeries`.
    """

    index: int | None
    fired: int | None
    null_median: float
    null_fired_share: float
    series: StabilitySeries

    @property
    def converged(self) -> bool:
        return self.index is not None


def shifted_surrogate(x, rng: np.random.Generator) -> np.ndarray:
    """The null of :func:`convergence`: each layer's first differences shifted circularly by its
    own random offset, integrated back from the same first value (same length, same increments)."""
    X, _ = _rows(x)
    d = np.diff(X, axis=1)
    L, n = d.shape
    shifted = d[np.arange(L)[:, None], (np.arange(n)[None, :] + rng.integers(0, max(n, 1), size=L)[:, None]) % max(n, 1)]
    return np.concatenate([X[:, :1], X[:, :1] + np.cumsum(shifted, axis=1)], axis=1)


def _fired(series: StabilitySeries, fraction: float, hold: int) -> int | None:
    q = converged_at(series.volatility, fraction=fraction, hold=hold)
    return None if q is None else int(series.end[q])


def convergence(
    x,
    *,
    window: int = 64,
    vol_window: int = 16,
    fraction: float = 0.3,
    hold: int = 3,
    n_null: int = 20,
    null_share: float = 0.5,
    seed: int = 0,
    previous: StabilitySeries | None = None,
) -> Convergence:
    """Apply the convergence rule (below) to the activation trace ``x`` (L, T).

    The rule fires at the first point where the volatility of the stability index has stayed at or
    below ``fraction`` of its running maximum for ``hold`` consecutive windows. It counts only if,
    on ``n_null`` surrogates (each layer's differences circularly shifted by its own random offset,
    seeded by ``seed``), it fired no later on less than ``null_share`` of them: a rule that fires
    as early on series with the layers' alignment and timing broken is not evidence of convergence.
    ``previous`` is the stability series of a prefix of ``x`` (see :func:`stability_series`).

    The defaults (fraction 0.3, hold 3) are our starting values (the paper publishes no formula),
    with a 64-point DSI window and a 16-window volatility, chosen on development banks that the
    study's figures do not use (``benchmarks/results/dynamics.md``).

    Example:
        >>> x = np.abs(np.random.default_rng(0).normal(size=(5, 360)).cumsum(axis=1)) + 1.0
        >>> c = convergence(x)  # 5 layers, 360 points
        >>> c.converged, c.index, c.null_fired_share  # fired at point 163, earlier than on 75% of nulls
        (True, 163, 0.25)
    """
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"fraction must be in (0, 1), but got {fraction=}.")
    hold = check_positive_int("hold", hold)
    n_null = check_positive_int("n_null", n_null, minimum=0)
    if not 0.0 < null_share <= 1.0:
        raise ValueError(f"null_share must be in (0, 1], but got {null_share=}.")
    X, _ = _rows(x)
    series = stability_series(X, window=window, vol_window=vol_window, previous=previous)
    fired = _fired(series, fraction, hold)
    if fired is None or n_null == 0:
        return Convergence(fired, fired, math.nan, math.nan, series)
    # The null: shift the differences of each layer (the series the index reads), then integrate
    # back, so that a surrogate is a trace of the same length with the same per-layer increments.
    rng = np.random.default_rng(seed)
    null_fired = np.empty(n_null)
    for j in range(n_null):
        f = _fired(stability_series(shifted_surrogate(X, rng), window=window, vol_window=vol_window), fraction, hold)
        null_fired[j] = math.inf if f is None else f
    share = float(np.mean(null_fired <= fired))
    index = fired if share < null_share else None
    return Convergence(index, fired, float(np.median(null_fired)), share, series)


def converged_epoch(x, steps, steps_per_epoch: int, **rule) -> tuple[int | None, Convergence | None]:
    """The first epoch at whose end :func:`convergence` of the trace so far says converged, as a
    probe that checks once per epoch would find it; and that check's result.

    ``x`` is the trace (L, T) logged at the optimizer ``steps`` (T,); epoch e ends at step
    e · ``steps_per_epoch``. ``rule`` takes :func:`convergence`'s keyword arguments. The
    surrogates are redrawn on each epoch's prefix, so the answer does not depend on the future.
    """
    X, _ = _rows(x)
    st = np.asarray(steps, dtype=int)
    if st.shape != (X.shape[1],):
        raise ValueError(f"steps must give one step per trace point ({X.shape[1]}), but has shape {st.shape}.")
    spe = check_positive_int("steps_per_epoch", steps_per_epoch)
    full = convergence(X, **{**rule, "n_null": 0})  # the rule alone is causal: where it first fires
    if full.fired is None:
        return None, None
    first = -(-int(st[full.fired]) // spe)  # the epoch whose end first sees the firing point
    last = -(-int(st[-1]) // spe)
    for epoch in range(first, last + 1):
        n = int(np.searchsorted(st, epoch * spe, side="right"))
        c = convergence(X[:, :n], **rule)
        if c.converged:
            return epoch, c
    return None, None
