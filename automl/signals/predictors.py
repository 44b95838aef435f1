"""Predict a run's final accuracy from its first k epochs: βeff predictors and the baselines.

All functions take plain per-epoch sequences (epoch i at position i-1; ``nan`` for a diverged
epoch) and return a predicted final value, higher = better for accuracies. They are what
``benchmarks/capacitance_study.py`` ranks models by and what ``decide`` can use.

- :func:`vacces`: validation accuracy at epoch k (VAccES, "validation accuracy early stopping").
- :func:`tse_ema`: the negated exponentially weighted sum of training losses up to k (TSE-EMA,
  Ru, Lyle, Schut, Fil, van der Wilk, Gal, "Speedy performance estimation for neural architecture
  search", NeurIPS 2021; a lower sum ranks higher, so the score is its negative).
- :func:`power_law_final`: the curve extrapolated to the budget by ``a - b t^(-c)``.
- :class:`BetaRidge` / :func:`beta_ridge_final`: the per-trial model of Jiang et al. (arXiv 2201.04194): a Bayesian
  ridge regression of accuracy on βeff over the observed epochs, read at the βeff the run's own
  βeff trend reaches at the budget (βeff extrapolated linearly in log t).
- :class:`PopulationPredictor`: a Bayesian ridge regression fitted on the finished runs of the
  same study, from features at epoch k (βeff, its change, its growth since epoch 1, accuracy, its
  change, optionally TSE-EMA) to the final accuracy; its weights (and so how much βeff counts) are learned, with a predictive std.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence

import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.linear_model import BayesianRidge
from sklearn.preprocessing import StandardScaler

from automl.validation import check_positive_int

__all__ = [
    "vacces",
    "tse_ema",
    "power_law_final",
    "BetaRidge",
    "beta_ridge_final",
    "prefix_features",
    "FEATURE_SETS",
    "PopulationPredictor",
    "loo_ridge_mse",
]

#: Named feature subsets of :func:`prefix_features` (columns: βeff_k, Δβeff_k, log βeff_k/βeff_1,
#: acc_k, Δacc_k, TSE-EMA_k).
FEATURE_SETS: dict[str, tuple[int, ...]] = {
    "beta": (0, 1, 2), "curve": (3, 4), "both": (0, 1, 2, 3, 4), "curve+tse": (3, 4, 5), "both+tse": (0, 1, 2, 3, 4, 5),
}


def _prefix(values: Sequence[float], k: int, name: str) -> np.ndarray:
    k = check_positive_int("k", k)  # observed epochs
    arr = np.asarray(values, dtype=float)
    if arr.ndim != 1 or len(arr) < k:
        raise ValueError(f"{name} must be a 1-D sequence of at least k={k} epochs, but has shape {arr.shape}.")
    return arr[:k]


def vacces(val_acc: Sequence[float], k: int) -> float:
    """Validation accuracy at epoch k (``nan`` if that epoch diverged)."""
    return float(_prefix(val_acc, k, "val_acc")[-1])


def tse_ema(train_loss: Sequence[float], k: int, gamma: float = 0.9) -> float:
    """``-Σ_{t≤k} γ^(k-t) L_train(t)``: higher is better; ``-inf`` if a loss is non-finite."""
    if not 0.0 < gamma <= 1.0:
        raise ValueError(f"gamma must be in (0, 1], but got {gamma=}.")
    loss = _prefix(train_loss, k, "train_loss")
    if not np.isfinite(loss).all():
        return -math.inf
    weights = gamma ** np.arange(len(loss) - 1, -1, -1, dtype=float)
    return -float(weights @ loss)


def power_law_final(curve: Sequence[float], k: int, budget: int) -> float:
    """The curve extrapolated to epoch ``budget`` by ``a - b t^(-c)`` fitted to its first k epochs
    (c fixed at 1 for k = 2; the value at k for k = 1). Clipped to [0, 1] (accuracies)."""
    from scipy.optimize import curve_fit

    y = _prefix(curve, k, "curve")
    if not np.isfinite(y).all():
        return math.nan
    if k == 1:
        return float(y[-1])
    t = np.arange(1, k + 1, dtype=float)
    if k == 2:
        b = (y[1] - y[0]) / (1 - 1 / 2)
        a = y[1] + b / 2
        return float(np.clip(a - b / budget, 0.0, 1.0))

    def model(tt, a, b, c):
        return a - b * tt ** (-c)

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            p, _ = curve_fit(model, t, y, p0=(y[-1], y[-1] - y[0] + 1e-3, 1.0),
                             bounds=((0.0, -2.0, 0.05), (1.0, 2.0, 3.0)), maxfev=2000)
        return float(np.clip(model(float(budget), *p), 0.0, 1.0))
    except (RuntimeError, ValueError):
        return float(y[-1])


class BetaRidge(RegressorMixin, BaseEstimator):
    """The per-trial model of Jiang et al.: a Bayesian ridge regression of one run's accuracy on
    its βeff over the observed epochs.

    ``fit(beta, acc)`` takes the run's βeff per epoch (``(k,)`` or ``(k, 1)``) and accuracy per
    epoch; ``predict(beta, return_std=True)`` reads the fit at other βeff values;
    ``predict_final(budget)`` reads it where the run's own βeff trend (linear in log epoch) is at
    epoch ``budget``, returning ``(mean, std)`` clipped to [0, 1].

    Example:
        >>> import numpy as np
        >>> beta = 0.05 + 0.01 * np.log(np.arange(1, 6)); acc = 0.3 + 8 * (beta - 0.05)
        >>> mean, std = BetaRidge().fit(beta, acc).predict_final(30)
        >>> round(mean, 2)
        0.57
    """

    def fit(self, X, y) -> "BetaRidge":
        b = np.asarray(X, dtype=float).reshape(-1)
        y = np.asarray(y, dtype=float).reshape(-1)
        if b.shape != y.shape or b.size < 1:
            raise ValueError(f"need one βeff per accuracy, but got {b.size} βeff and {y.size} accuracies.")
        if not (np.isfinite(b).all() and np.isfinite(y).all()):
            raise ValueError("βeff and accuracy must be finite to fit a per-trial model (a diverged run has no trend).")
        self.beta_, self.acc_ = b, y
        self.center_, self.scale_ = float(b.mean()), float(np.std(b)) or 1.0
        self.flat_ = b.size == 1 or np.ptp(b) <= 1e-12 * max(1.0, float(np.abs(b).max()))
        if not self.flat_:
            self.model_ = BayesianRidge().fit(((b - self.center_) / self.scale_).reshape(-1, 1), y)
        return self

    def predict(self, X, return_std: bool = False):
        b = np.asarray(X, dtype=float).reshape(-1)
        if self.flat_:  # βeff did not move: the last accuracy, with no stated spread
            mean, std = np.full(b.shape, self.acc_[-1]), np.full(b.shape, np.nan)
        else:
            mean, std = self.model_.predict(((b - self.center_) / self.scale_).reshape(-1, 1), return_std=True)
        return (mean, std) if return_std else mean

    def predict_final(self, budget: int) -> tuple[float, float]:
        k = self.beta_.size
        if self.flat_:
            return float(self.acc_[-1]), math.nan
        slope, intercept = np.polyfit(np.log(np.arange(1, k + 1, dtype=float)), self.beta_, 1)
        mean, std = self.predict([intercept + slope * math.log(budget)], return_std=True)
        return float(np.clip(mean[0], 0.0, 1.0)), float(std[0])


def beta_ridge_final(beta: Sequence[float], acc: Sequence[float], k: int, budget: int) -> tuple[float, float]:
    """:class:`BetaRidge` on epochs 1..k of one run, read at the budget: ``(mean, std)``;
    ``(acc_k, nan)`` when k = 1 or βeff did not move, ``(nan, nan)`` for a diverged prefix."""
    b = _prefix(beta, k, "beta")
    y = _prefix(acc, k, "acc")
    if not (np.isfinite(b).all() and np.isfinite(y).all()):
        return math.nan, math.nan
    return BetaRidge().fit(b, y).predict_final(budget)


def prefix_features(beta: Sequence[float], acc: Sequence[float], k: int,
                    train_loss: Sequence[float] | None = None) -> np.ndarray:
    """One feature row at epoch k: ``[βeff_k, βeff_k - βeff_{k-1}, log(βeff_k / βeff_1), acc_k,
    acc_k - acc_{k-1}, tse_ema(train_loss, k)]`` (changes are 0 at k = 1; the last is ``nan``
    without train losses). The growth ratio is free of βeff's scale, which depends on the NCP's
    input width and so differs between architectures. ``nan`` entries mark a diverged run."""
    b = _prefix(beta, k, "beta")
    y = _prefix(acc, k, "acc")
    db = b[-1] - b[-2] if k > 1 else 0.0
    dy = y[-1] - y[-2] if k > 1 else 0.0
    with np.errstate(divide="ignore", invalid="ignore"):
        growth = float(np.log(b[-1] / b[0])) if b[0] > 0 and b[-1] > 0 else math.nan
    tse = tse_ema(train_loss, k) if train_loss is not None else math.nan
    return np.array([b[-1], db, growth, y[-1], dy, tse if math.isfinite(tse) else math.nan], dtype=float)


class PopulationPredictor(RegressorMixin, BaseEstimator):
    """Bayesian ridge regression from prefix features to the final value, fitted on finished runs.

    Args:
        features: ``"beta"``, ``"curve"`` or ``"both"`` (columns of :func:`prefix_features`), or a
            tuple of column indices.

    Rows with a non-finite feature or target are left out of the fit; ``predict`` gives ``nan``
    for them (a diverged run). The fitted weights are in ``coef_`` (in standardised units), so a
    reader sees how much βeff counted next to the curve.

    Example:
        >>> import numpy as np
        >>> rng = np.random.default_rng(0)
        >>> X = rng.normal(size=(40, 6)); y = 0.5 + 0.1 * X[:, 0] + 0.01 * rng.normal(size=40)
        >>> model = PopulationPredictor("both").fit(X, y)
        >>> mean, std = model.predict(X[:2], return_std=True)
        >>> bool(np.all(np.abs(mean - y[:2]) < 0.05)), bool(np.all(std > 0))
        (True, True)
    """

    def __init__(self, features: str | tuple[int, ...] = "both") -> None:
        self.features = features

    def _columns(self) -> tuple[int, ...]:
        if isinstance(self.features, str):
            if self.features not in FEATURE_SETS:
                raise ValueError(f"features must be one of {sorted(FEATURE_SETS)} or column indices, but got {self.features!r}.")
            return FEATURE_SETS[self.features]
        return tuple(int(c) for c in self.features)

    def _select(self, X) -> np.ndarray:
        X = np.asarray(X, dtype=float)
        cols = self._columns()
        if X.ndim != 2 or X.shape[1] <= max(cols):
            raise ValueError(f"features={self.features!r} reads columns {cols} of prefix_features rows, but X has shape "
                             f"{X.shape}.")
        return X[:, cols]

    def fit(self, X, y) -> "PopulationPredictor":
        X = self._select(X)
        y = np.asarray(y, dtype=float)
        if X.shape[0] != y.shape[0]:
            raise ValueError(f"X has {X.shape[0]} rows but y has {y.shape[0]} values.")
        ok = np.isfinite(X).all(axis=1) & np.isfinite(y)
        if ok.sum() < 3:
            raise ValueError(f"a population model needs at least 3 finished runs with finite features, but got {int(ok.sum())}.")
        self.scaler_ = StandardScaler().fit(X[ok])
        self.model_ = BayesianRidge().fit(self.scaler_.transform(X[ok]), y[ok])
        self.coef_ = self.model_.coef_
        self.n_fit_ = int(ok.sum())
        return self

    def predict(self, X, return_std: bool = False):
        X = self._select(X)
        ok = np.isfinite(X).all(axis=1)
        mean = np.full(len(X), np.nan)
        std = np.full(len(X), np.nan)
        if ok.any():
            m, s = self.model_.predict(self.scaler_.transform(X[ok]), return_std=True)
            mean[ok], std[ok] = m, s
        return (mean, std) if return_std else mean


def loo_ridge_mse(X, y, alpha: float = 1e-2) -> float:
    """Leave-one-out mean squared error of a ridge regression (standardised X, intercept), in
    closed form: the residual of run i without run i is ``e_i / (1 - h_ii)`` (the PRESS statistic),
    so comparing feature sets costs one solve, not n fits. (X is standardised once on all rows;
    refitting the scaling per left-out row would differ only by the tiny ridge penalty.)

    Example:
        >>> import numpy as np
        >>> rng = np.random.default_rng(0)
        >>> X = rng.normal(size=(30, 2)); y = X[:, 0] + 0.1 * rng.normal(size=30)
        >>> loo_ridge_mse(X[:, :1], y) < loo_ridge_mse(X[:, 1:], y)
        True
    """
    X = np.asarray(X, dtype=float)
    y = np.asarray(y, dtype=float)
    if X.ndim != 2 or y.ndim != 1 or X.shape[0] != y.shape[0] or X.shape[0] < 3:
        raise ValueError(f"need X (n, p) and y (n,) with n >= 3, but got X {X.shape} and y {y.shape}.")
    sd = X.std(axis=0)
    Z = np.column_stack([np.ones(len(X)), (X - X.mean(axis=0)) / np.where(sd > 0, sd, 1.0)])
    penalty = alpha * np.eye(Z.shape[1])
    penalty[0, 0] = 0.0  # the intercept is not shrunk
    inv = np.linalg.pinv(Z.T @ Z + penalty)
    h = np.einsum("ij,jk,ik->i", Z, inv, Z)
    resid = y - Z @ (inv @ (Z.T @ y))
    return float(np.mean((resid / np.clip(1.0 - h, 1e-6, None)) ** 2))
