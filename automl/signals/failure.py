"""Failure labels of a training run: threshold rules and the meta-classifier's features.

Pure numpy over per-epoch curves (no torch, no model). Two things live here:

- :func:`rule_labels`: the threshold rules (weak labels; the study compares them with the learned
  model, they are not the ground truth);
- :func:`features`: the fixed-length feature vector of the first ``k`` epochs that the shipped
  early classifier reads (:data:`FEATURES` names its columns, in order);
- :func:`whole_features`: the vector the whole-run classifier reads, of a run of any length
  (:data:`WHOLE_FEATURES`).

A run is a mapping of per-epoch lists: ``train_loss``, ``val_loss``, ``train_acc``, ``val_acc``
(required), and optionally ``test_acc``, ``grad_norm_first``/``grad_norm_last`` (weight-gradient
norm of the first and last watched layer), ``zero_grad_frac`` (share of exactly-zero gradient
entries), ``weight_norm`` (total weight norm) and the scalars ``n_layers`` and ``n_classes``.
Non-finite values (``nan``/``inf``, ``None``) are a diverged run, never an error.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, Optional

import numpy as np

from automl.validation import is_finite

__all__ = ["LABELS", "CURVE_KEYS", "OPTIONAL_KEYS", "FEATURES", "features", "rule_labels", "RULES",
           "WHOLE_FEATURES", "whole_features", "as_arrays"]

#: The failure labels, in a fixed order (multi-label; a healthy run has none).
LABELS = ("nonfinite", "exploding_gradient", "vanishing_gradient", "dying_relu", "oscillation", "plateau",
          "underfit", "overfit", "shift")
CURVE_KEYS = ("train_loss", "val_loss", "train_acc", "val_acc")
OPTIONAL_KEYS = ("test_acc", "grad_norm_first", "grad_norm_last", "zero_grad_frac", "weight_norm")

#: Thresholds of the rules: common starting values from practice, not fitted to our corpus.
RULES = {
    "diverge_factor": 10.0,  # nonfinite: a loss grows past 10x its first value, or past 10x ln(C)
    "exploding_ratio": 70.0,  # ||g_first|| / ||g_last|| >= 70
    "vanishing_ratio": 1e-3,  # that ratio <= 1e-3 ...
    "vanishing_norm": 1e-4,  # ... and ||g_first|| <= 1e-4
    "dying_zero_frac": 0.7,  # >= 70% exactly-zero gradients
    "swing": 0.03,  # oscillation: accuracy drops >= 0.03 ...
    "swing_share": 0.2,  # ... on >= 20% of epochs
    "plateau_delta": 0.01,  # plateau: every epoch-to-epoch |delta acc| <= 0.01 ...
    "plateau_after": 0.3,  # ... after 30% of the epochs
    "underfit_acc": 0.6,  # chance-normalised train accuracy below this
    "overfit_gap": 0.15,  # train - val accuracy above this
    "overfit_rising": 3,  # or val loss rising while train loss falls this many epochs in a row
    "shift_gap": 0.15,  # val - test accuracy above this
}


def _arr(run: Mapping[str, Any], key: str, k: Optional[int] = None) -> Optional[np.ndarray]:
    v = run.get(key)
    if v is None:
        return None
    if isinstance(v, np.ndarray):  # already floats (see as_arrays): read the prefix without a loop
        a = np.array(v[:k] if k is not None else v, dtype=float)
    else:
        a = np.array([np.nan if x is None else float(x) for x in v], dtype=float)
    a[~np.isfinite(a)] = np.nan
    return a if k is None else a[:k]


def as_arrays(run: Mapping[str, Any]) -> dict[str, Any]:
    """``run`` with its per-epoch lists as float arrays (``None`` as ``nan``): the same labels and
    features, read faster by code that reads many prefixes of one run."""
    return {key: (np.array([np.nan if x is None else float(x) for x in v], dtype=float) if isinstance(v, (list, tuple)) else v)
            for key, v in run.items()}


def _raw_nonfinite(run: Mapping[str, Any], keys: Sequence[str], k: Optional[int]) -> np.ndarray:
    """Per epoch: did any of ``keys`` hold a non-finite value (``None`` counts)?"""
    n = len(run["train_loss"]) if k is None else min(k, len(run["train_loss"]))
    bad = np.zeros(n, dtype=bool)
    for key in keys:
        v = run.get(key)
        if v is None:
            continue
        if isinstance(v, np.ndarray):
            bad[: min(n, len(v))] |= ~np.isfinite(np.asarray(v[:n], dtype=float))
            continue
        for i, x in enumerate(list(v)[:n]):
            if not is_finite(x):
                bad[i] = True
    return bad


def _chance(run: Mapping[str, Any]) -> float:
    c = run.get("n_classes")
    return 1.0 / float(c) if c else 0.1


def rule_labels(run: Mapping[str, Any], k: Optional[int] = None) -> set[str]:
    """The labels the threshold rules give the first ``k`` epochs (all epochs when ``None``).

    Example:
        >>> run = {"train_loss": [2.3, 2.3, 2.3, 2.3], "val_loss": [2.3, 2.3, 2.3, 2.3],
        ...        "train_acc": [0.11, 0.11, 0.12, 0.11], "val_acc": [0.1, 0.1, 0.1, 0.1]}
        >>> sorted(rule_labels(run))
        ['plateau', 'underfit']
        >>> sorted(rule_labels({**run, "val_loss": [2.3, 40.0, None, None]}))
        ['nonfinite', 'plateau', 'underfit']
    """
    r = RULES
    out: set[str] = set()
    tl, vl, ta, va = (_arr(run, key, k) for key in CURVE_KEYS)
    n = len(tl)
    if _raw_nonfinite(run, ("train_loss", "val_loss", "grad_norm_first", "grad_norm_last", "weight_norm"), k).any():
        out.add("nonfinite")
    # ln(C) is the loss of a uniform guess: a mean loss 10x past it diverged within an epoch.
    uniform = math.log(1.0 / _chance(run))
    for loss in (tl, vl):
        first = loss[0] if np.isfinite(loss[0]) and loss[0] > 0 else np.inf
        if np.nanmax(np.r_[loss, -np.inf]) > r["diverge_factor"] * min(first, uniform):
            out.add("nonfinite")
    gf, gl = _arr(run, "grad_norm_first", k), _arr(run, "grad_norm_last", k)
    if gf is not None and gl is not None:
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.nanmedian(gf / gl) if np.isfinite(gf / gl).any() else np.nan
        g_first = np.nanmedian(gf) if np.isfinite(gf).any() else np.nan
        if ratio >= r["exploding_ratio"]:
            out.add("exploding_gradient")
        if ratio <= r["vanishing_ratio"] and g_first <= r["vanishing_norm"]:
            out.add("vanishing_gradient")
    zg = _arr(run, "zero_grad_frac", k)
    if zg is not None and np.isfinite(zg).any() and np.nanmedian(zg) >= r["dying_zero_frac"]:
        out.add("dying_relu")
    acc = va if np.isfinite(va).any() else ta
    d = np.diff(acc)
    if n >= 3 and np.mean(d < -r["swing"]) >= r["swing_share"]:
        out.add("oscillation")
    start = int(math.ceil(r["plateau_after"] * n))
    tail = np.diff(acc[max(start - 1, 0):])
    if n >= 3 and len(tail) and np.all(np.abs(np.nan_to_num(tail)) <= r["plateau_delta"]):
        out.add("plateau")
    chance = _chance(run)
    last_ta = ta[np.isfinite(ta)][-1] if np.isfinite(ta).any() else np.nan
    if not (last_ta - chance) / (1 - chance) >= r["underfit_acc"]:
        out.add("underfit")
    gap = ta - va
    if np.isfinite(gap[-1]) and gap[-1] > r["overfit_gap"]:
        out.add("overfit")
    rising = (np.diff(vl) > 0) & (np.diff(tl) < 0)
    run_len = 0
    for x in rising:
        run_len = run_len + 1 if x else 0
        if run_len >= r["overfit_rising"]:
            out.add("overfit")
            break
    te = _arr(run, "test_acc", k)
    if te is not None and np.isfinite(te[-1]) and np.isfinite(va[-1]) and va[-1] - te[-1] > r["shift_gap"]:
        out.add("shift")
    return out


# ------------------------------------------------------------------------------------ features
_SHAPE = ("start", "mid", "end", "slope", "curv", "dstd", "sign_changes", "drawdown", "finite")


def _line(t: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Least-squares slope and intercept of y on t (at least two distinct t): ``np.polyfit(t, y, 1)``
    in closed form, a tenth of its time (the diagnosis computes it for every prefix it reads)."""
    d = t - t.mean()
    slope = float(np.dot(d, y - y.mean()) / np.dot(d, d))
    return slope, float(y.mean() - slope * t.mean())


def _curvature(t: np.ndarray, y: np.ndarray) -> float:
    """The leading coefficient of the least-squares parabola through (t, y) (three or more distinct
    t): ``np.polyfit(t, y, 2)[0]`` by its normal equations on centred t."""
    d = t - t.mean()
    A = np.stack([d * d, d, np.ones_like(d)], axis=1)
    return float(np.linalg.solve(A.T @ A, A.T @ y)[0])


def _shape(y: np.ndarray, higher_is_better: bool) -> list[float]:
    """Start, middle, end, slope and curvature (quadratic fit), std of differences, sign changes
    of the differences (share), worst drawdown from the running best, share of finite epochs."""
    n = len(y)
    ok = np.isfinite(y)
    out = [np.nan] * len(_SHAPE)
    out[-1] = float(ok.mean())
    if not ok.any():
        return out
    yf = y[ok]
    out[0], out[1], out[2] = float(yf[0]), float(yf[len(yf) // 2]), float(yf[-1])
    t = np.arange(n, dtype=float)[ok]
    if len(yf) >= 2:
        out[3] = _line(t, yf)[0]
        d = np.diff(yf)
        out[5] = float(d.std())
        s = np.sign(d[d != 0])
        out[6] = float(np.mean(s[1:] != s[:-1])) if len(s) >= 2 else 0.0
        best = np.maximum.accumulate(yf) if higher_is_better else np.minimum.accumulate(yf)
        out[7] = float(np.max(best - yf) if higher_is_better else np.max(yf - best))
    if len(yf) >= 3:
        out[4] = _curvature(t, yf)
    return out


def _powerlaw_error(acc: np.ndarray, horizon: float) -> float:
    """Error 1 - acc extrapolated to epoch ``horizon`` with a power law a*t^-b fitted in log-log."""
    t = np.arange(1, len(acc) + 1, dtype=float)
    err = 1.0 - acc
    ok = np.isfinite(err) & (err > 1e-4)
    if ok.sum() < 2:
        return float(np.nan if not np.isfinite(acc).any() else max(0.0, 1.0 - np.nanmax(acc)))
    slope, icpt = _line(np.log(t[ok]), np.log(err[ok]))
    return float(np.clip(np.exp(icpt + slope * np.log(horizon)), 0.0, 1.0))


#: A loss of exactly 0 (a perfect fit, or float32 underflow) reads as this in log units, not as non-finite.
LOSS_FLOOR = 1e-12


def _log10_loss(x: np.ndarray) -> np.ndarray:
    return _log10(np.where(x == 0, LOSS_FLOOR, x))


def _log10(x: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.log10(x)
    out[~np.isfinite(out)] = np.nan
    return out


def _nanstat(fn, a: Optional[np.ndarray]) -> float:
    if a is None or not np.isfinite(a).any():
        return float("nan")
    return float(fn(a[np.isfinite(a)]))


def _names() -> tuple[str, ...]:
    names = ["k"]
    for key in CURVE_KEYS:
        names += [f"{key}_{s}" for s in _SHAPE]
    names += ["train_loss_log_ratio", "val_loss_log_ratio", "loss_max_over_first", "nonfinite_share",
              "first_nonfinite", "acc_gap_end", "acc_gap_slope", "loss_gap_end", "loss_gap_slope",
              "since_val_loss_min", "val_loss_rising_run", "val_err_powerlaw_2k", "val_err_powerlaw_50",
              "acc_drop_share", "acc_delta_max_tail",
              "val_test_gap_end", "val_test_gap_mean",
              "log_grad_first", "log_grad_last", "log_grad_ratio", "log_grad_ratio_min", "log_grad_ratio_max",
              "log_grad_first_growth", "log_grad_last_growth", "zero_grad_median", "zero_grad_end",
              "log_weight_norm_growth", "n_layers"]
    return tuple(names)


#: Column names of :func:`features`, in order.
FEATURES = _names()


def features(run: Mapping[str, Any], k: Optional[int] = None) -> np.ndarray:
    """The feature vector of the first ``k`` epochs of ``run`` (all its epochs when ``None``).

    Missing optional inputs give ``nan`` columns (the shipped model handles missing values).

    Example:
        >>> run = {"train_loss": [2.0, 1.0, 0.5], "val_loss": [2.1, 1.2, 0.7],
        ...        "train_acc": [0.3, 0.6, 0.8], "val_acc": [0.3, 0.55, 0.75]}
        >>> x = features(run)
        >>> x.shape == (len(FEATURES),), float(x[FEATURES.index("acc_gap_end")])
        (True, 0.05...)
    """
    n_all = len(run["train_loss"])
    k = n_all if k is None else min(int(k), n_all)
    tl, vl, ta, va = (_arr(run, key, k) for key in CURVE_KEYS)
    f: list[float] = [float(k)]
    f += _shape(_log10_loss(tl), False) + _shape(_log10_loss(vl), False) + _shape(ta, True) + _shape(va, True)
    ratios = []
    for loss in (tl, vl):
        ok = loss[np.isfinite(loss) & (loss > 0)]
        ratios.append(float(np.log10(ok[-1] / ok[0])) if len(ok) >= 2 else np.nan)
    f += ratios
    first = tl[0] if np.isfinite(tl[0]) and tl[0] > 0 else np.nan
    f.append(_nanstat(np.max, np.r_[tl, vl]) / first if np.isfinite(first) else np.nan)
    bad = _raw_nonfinite(run, ("train_loss", "val_loss", "grad_norm_first", "grad_norm_last", "weight_norm"), k)
    f += [float(bad.mean()), float(np.argmax(bad) + 1) / k if bad.any() else 2.0]
    gap = ta - va
    t = np.arange(k, dtype=float)
    ok = np.isfinite(gap)
    f += [float(gap[ok][-1]) if ok.any() else np.nan, _line(t[ok], gap[ok])[0] if ok.sum() >= 2 else np.nan]
    lgap = vl - tl
    ok = np.isfinite(lgap)
    f += [float(lgap[ok][-1]) if ok.any() else np.nan, _line(t[ok], lgap[ok])[0] if ok.sum() >= 2 else np.nan]
    f.append(float(k - 1 - np.nanargmin(vl)) / k if np.isfinite(vl).any() else np.nan)
    rising, best_run = 0, 0
    for up in (np.diff(vl) > 0):
        rising = rising + 1 if up else 0
        best_run = max(best_run, rising)
    f.append(float(best_run))
    f += [_powerlaw_error(va, 2.0 * k), _powerlaw_error(va, 50.0)]
    d = np.diff(va)
    f.append(float(np.mean(d < -RULES["swing"])) if len(d) else np.nan)
    tail = d[int(len(d) * 0.3):]
    f.append(_nanstat(lambda a: np.max(np.abs(a)), tail))
    te = _arr(run, "test_acc", k)
    if te is not None:
        vt = va - te
        f += [_nanstat(lambda a: a[-1], vt), _nanstat(np.mean, vt)]
    else:
        f += [np.nan, np.nan]
    gf, gl = _arr(run, "grad_norm_first", k), _arr(run, "grad_norm_last", k)
    lgf = _log10(gf) if gf is not None else None
    lgl = _log10(gl) if gl is not None else None
    lr_ = lgf - lgl if lgf is not None and lgl is not None else None
    f += [_nanstat(np.median, lgf), _nanstat(np.median, lgl), _nanstat(np.median, lr_), _nanstat(np.min, lr_),
          _nanstat(np.max, lr_)]
    for lg in (lgf, lgl):
        f.append(_nanstat(lambda a: a[-1] - a[0], lg) if lg is not None and np.isfinite(lg).sum() >= 2 else np.nan)
    zg = _arr(run, "zero_grad_frac", k)
    f += [_nanstat(np.median, zg), _nanstat(lambda a: a[-1], zg)]
    wn = _arr(run, "weight_norm", k)
    lw = _log10(wn) if wn is not None else None
    f.append(_nanstat(lambda a: a[-1] - a[0], lw) if lw is not None and np.isfinite(lw).sum() >= 2 else np.nan)
    nl = run.get("n_layers")
    f.append(float(nl) if nl is not None else np.nan)
    out = np.asarray(f, dtype=float)
    if out.shape != (len(FEATURES),):  # a column added to one list and not the other
        raise ValueError(f"features() built {out.shape[0]} columns but FEATURES names {len(FEATURES)}.")
    out[~np.isfinite(out)] = np.nan
    return out


# ------------------------------------------------------------------------------ whole-run features
_WHOLE_EXTRA = ("val_loss_rise_end", "train_loss_fall_after_val_min", "val_acc_drop_end", "best_val_acc_at",
                "loss_jump_max", "loss_jump_at", "val_loss_rising_share_late", "acc_gap_max", "acc_gap_rise")
#: Column names of :func:`whole_features`, in order: :data:`FEATURES` (with ``k`` blank) and the
#: whole-run columns.
WHOLE_FEATURES = FEATURES + _WHOLE_EXTRA


def whole_features(run: Mapping[str, Any]) -> np.ndarray:
    """The feature vector of a whole run, of any length: :func:`features` of all its epochs with
    the run length left blank (a run's length says nothing about what went wrong in it, and a
    model that read it would learn our corpus's budgets), plus columns that place a change inside
    the run -- how far validation loss rose from its lowest and where that lowest was, how far
    the loss jumped above its running best and when, how the accuracy gap grew:

    Example:
        >>> n = 30
        >>> run = {"train_loss": [1.0 / (1 + t) for t in range(n)],
        ...        "val_loss": [1.0 - 0.05 * t if t < 10 else 0.5 + 0.05 * (t - 10) for t in range(n)],
        ...        "train_acc": [min(1.0, 0.5 + 0.03 * t) for t in range(n)],
        ...        "val_acc": [0.5 + 0.02 * min(t, 10) - 0.005 * max(0, t - 10) for t in range(n)]}
        >>> x = dict(zip(WHOLE_FEATURES, whole_features(run)))
        >>> round(float(x["val_loss_rise_end"]), 3), round(float(x["best_val_acc_at"]), 2)  # log10(1.45 / 0.5); epoch 11 of 30
        (0.462, 0.37)
    """
    base = features(run)
    base[0] = np.nan
    tl, vl, ta, va = (_arr(run, key) for key in CURVE_KEYS)
    n = len(tl)
    f: list[float] = []
    if np.isfinite(vl).any():
        m = int(np.nanargmin(vl))
        end = vl[np.isfinite(vl)][-1]
        f.append(float(np.log10(end / vl[m])) if vl[m] > 0 else np.nan)
        tl_end = tl[np.isfinite(tl)][-1] if np.isfinite(tl).any() else np.nan
        f.append(float(np.log10(tl[m] / tl_end)) if np.isfinite(tl[m]) and tl[m] > 0 and tl_end > 0 else np.nan)
    else:
        f += [np.nan, np.nan]
    if np.isfinite(va).any():
        f += [float(np.nanmax(va) - va[np.isfinite(va)][-1]), float(np.nanargmax(va) + 1) / n]
    else:
        f += [np.nan, np.nan]
    # the largest jump of the training loss above its best so far (log10), and when (share of the run)
    lt = _log10_loss(tl)
    jump, at = np.nan, np.nan
    if np.isfinite(lt).any():
        best = np.fmin.accumulate(np.where(np.isfinite(lt), lt, np.inf))
        bad = ~np.isfinite(tl)
        rise = np.where(np.isfinite(lt), lt - best, np.where(bad & np.isfinite(best), 3.0, np.nan))  # non-finite: a jump of 1000x
        if np.isfinite(rise).any():
            i = int(np.nanargmax(rise))
            jump, at = float(rise[i]), float(i + 1) / n
    f += [jump, at]
    late = np.diff(vl[n // 2:])
    f.append(float(np.mean(late[np.isfinite(late)] > 0)) if np.isfinite(late).any() else np.nan)
    gap = ta - va
    if np.isfinite(gap).any():
        g = gap[np.isfinite(gap)]
        f += [float(g.max()), float(g[-1] - g[: max(1, len(g) // 5)].mean())]
    else:
        f += [np.nan, np.nan]
    out = np.r_[base, np.asarray(f, dtype=float)]
    out[~np.isfinite(out)] = np.nan
    return out
