"""The forecaster: quantiles of a running trial's final value, and P(it beats the best finished trial).

Gradient-boosted quantile regression (XGBoost, ``reg:quantileerror``, one booster per quantile
level) over :mod:`automl.forecast.features`, trained offline on the synthetic prior of studies
(:mod:`automl.forecast.prior`) by ``benchmarks/train_forecaster.py`` and shipped as XGBoost's JSON
model format (gzipped, with the feature names and quantile levels; no pickle) in
``automl/models/forecaster.json.gz``. The features that grow with the trial's current
value carry monotone constraints, so a worse current value never forecasts a better end.
"""

from __future__ import annotations

import gzip
import json
import math
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Optional

import numpy as np

from automl.forecast.features import NAMES, Z_CLIP, StudyFrame, features, to_z
from automl.trees import Trees

__all__ = ["QUANTILES", "MONOTONE", "Forecast", "Forecaster", "load_forecaster", "p_below", "frame_from_curves",
           "training_rows", "MODEL_PATH", "study_offset", "shift", "STUDY_PRIOR"]

MODEL_PATH = Path(__file__).resolve().parents[1] / "models" / "forecaster.json.gz"
#: Quantile levels of the final z value the model predicts.
QUANTILES = (0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 0.75, 0.9)
#: +1 for the features that grow with the trial's current value (so the forecast may only grow with it);
#: ``z_first`` among them, since at the first epoch the current value is the first one.
MONOTONE = tuple(1 if n in {"z_now", "z_best_so_far", "z_first", "slope_last", "slope_3", "rank_epoch_finished",
                            "rank_epoch_all", "rank_progress_finished"} else 0 for n in NAMES)


#: Scale (z units) of the exponential tails past the outermost quantiles.
TAIL = 0.05


def p_below(quantiles: Sequence[float], levels: Sequence[float] = QUANTILES, x: float = 0.0) -> float:
    """P(value < x) from sorted quantiles: linear between levels; past the outermost ones an
    exponential tail of fixed scale :data:`TAIL`, so P only falls as every quantile rises (a
    worse trial never reads as more likely to win).

    Example:
        >>> round(p_below([-1.0, 1.0], [0.25, 0.75]), 3), round(p_below([0.05, 2.0], [0.1, 0.9]), 4)
        (0.5, 0.0368)
    """
    q, a = np.asarray(quantiles, dtype=float), np.asarray(levels, dtype=float)
    if x < q[0]:
        return float(a[0] * math.exp(-(q[0] - x) / TAIL))
    if x > q[-1]:
        return float(1.0 - (1.0 - a[-1]) * math.exp(-(x - q[-1]) / TAIL))
    return float(np.interp(x, q, a))


#: Prior scale (log-odds) of a study's calibration offset (:func:`study_offset`): chosen on the
#: tuning half of the tasks among 0.5, 1, 2, 4 and 8 by the log loss of P(beat the best finished trial).
STUDY_PRIOR = 2.0


def shift(p: float, offset: float) -> float:
    """``p`` moved by ``offset`` in log-odds (monotone in ``p``; 0 and 1 stay where they are).

    Example:
        >>> round(shift(0.5, math.log(3)), 3), shift(0.2, 0.0), shift(0.0, 1.0)
        (0.75, 0.2, 0.0)
    """
    if offset == 0.0 or not 0.0 < p < 1.0:
        return p
    x = math.log(p) - math.log1p(-p) + offset
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    e = math.exp(x)  # the same, without overflow far below 0
    return e / (1.0 + e)


def study_offset(p_loo: Sequence[float], won: Sequence[float], prior: float = STUDY_PRIOR) -> float:
    """The study's own calibration of P(beat the best): a log-odds offset fitted to its finished
    trials.

    Among a study's finished trials exactly one beats all the others, so the probabilities a
    calibrated forecaster gives each of them, read at the same point of their budgets against the
    others (``p_loo``), sum to 1 in expectation whatever the study. The offset is the maximum a
    posteriori intercept of a logistic recalibration (Platt scaling) of ``p_loo`` against who won
    (``won``: 1 for the one that beat the others), under a normal prior of scale ``prior``: with
    few finished trials it stays near 0; where the forecaster gives the study's trials far more
    (or less) chance than one winner leaves, it moves P by that much in log-odds. Newton's method
    on a concave objective, so it is deterministic and needs no step size.

    Example:
        >>> round(study_offset([0.5, 0.5, 0.5, 0.5], [1, 0, 0, 0]), 2)  # 2 winners expected, 1 seen
        -0.84
        >>> study_offset([0.25] * 4, [1, 0, 0, 0])  # calibrated: sums to 1
        0.0
    """
    q0 = np.clip(np.asarray(p_loo, dtype=float), 1e-6, 1 - 1e-6)
    y = np.asarray(won, dtype=float)
    if len(q0) == 0:
        return 0.0
    logit = np.log(q0 / (1.0 - q0))
    a = 0.0
    for _ in range(50):
        x = logit + a
        e = np.exp(-np.abs(x))  # a logistic that does not overflow on either side
        q = np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e))
        grad = float(np.sum(y - q)) - a / prior**2
        hess = -float(np.sum(q * (1.0 - q))) - 1.0 / prior**2
        step = grad / hess
        a -= step
        if abs(step) < 1e-10:
            break
    return 0.0 if abs(a) < 1e-12 else float(a)


class Forecast:
    """A predictive distribution of a trial's final value: quantiles at :data:`QUANTILES`, in the
    metric's own (signed lower-is-better) units, and P(final < the best finished trial's)."""

    __slots__ = ("quantiles", "z_quantiles", "p_beat", "best", "span")

    def __init__(self, z_quantiles: np.ndarray, best: float, span: float) -> None:
        self.z_quantiles = np.asarray(z_quantiles, dtype=float)
        self.quantiles = best + span * self.z_quantiles
        self.p_beat = p_below(z_quantiles)
        self.best, self.span = best, span

    def p_below(self, value: float) -> float:
        """P(final < ``value``), ``value`` in the same signed units."""
        return p_below(self.z_quantiles, x=(value - self.best) / self.span)

    def quantile(self, level: float) -> float:
        return float(np.interp(level, QUANTILES, self.quantiles))


class Forecaster:
    """Trained quantile models, one ``xgboost.Booster`` per level of :data:`QUANTILES` (each with
    the monotone constraints: XGBoost ignores them in one booster fitting several quantile levels
    at once), and the feature order they were trained on."""

    #: Up to this many rows are predicted by walking the trees in numpy (fast per call), more by XGBoost.
    SMALL = 16

    def __init__(self, models: Sequence[dict], names: Sequence[str] = NAMES) -> None:
        """``models``: one XGBoost JSON model document per quantile level (as ``Booster.save_raw("json")``)."""
        if tuple(names) != NAMES:
            raise ValueError(f"the model was trained on features {list(names)}, but this version computes {list(NAMES)}.")
        if len(models) != len(QUANTILES):
            raise ValueError(f"the forecaster needs one booster per quantile level ({len(QUANTILES)}), got {len(models)}.")
        self._models = [dict(m) for m in models]
        self._trees = Trees(self._models)
        self._boosters: Optional[list] = None  # XGBoost's, built for the first large batch

    @classmethod
    def from_boosters(cls, boosters: Sequence[object], names: Sequence[str] = NAMES) -> "Forecaster":
        """From trained ``xgboost.Booster`` objects (one per quantile level)."""
        forecaster = cls([json.loads(bytes(b.save_raw(raw_format="json"))) for b in boosters], names)  # type: ignore[attr-defined]
        forecaster._boosters = list(boosters)
        return forecaster

    def boosters(self) -> list:
        """The models as ``xgboost.Booster`` objects (one thread each; imports XGBoost)."""
        if self._boosters is None:
            import xgboost as xgb

            boosters = []
            for model in self._models:
                booster = xgb.Booster()
                booster.load_model(bytearray(json.dumps(model).encode()))
                booster.set_param({"nthread": 1})
                boosters.append(booster)
            self._boosters = boosters
        return self._boosters

    def predict_z(self, rows: np.ndarray) -> np.ndarray:
        """Sorted z quantiles, one row per feature row."""
        rows = np.asarray(rows, dtype=np.float32)
        if len(rows) <= self.SMALL:
            out = self._trees.predict(rows)
        else:
            out = np.stack([np.asarray(b.inplace_predict(rows), dtype=float).reshape(len(rows))
                            for b in self.boosters()], axis=1)
        return np.sort(out, axis=1)

    def forecast(self, own: np.ndarray, budget: int, frame: StudyFrame, epoch: Optional[int] = None) -> Forecast:
        row, best, span = features(own, budget, frame, epoch)
        return Forecast(self.predict_z(row[None, :])[0], best, span)

    def save(self, path: Path | str) -> None:
        """Write the boosters as one gzipped JSON document (XGBoost's own JSON model format; no
        pickle), with the feature names and quantile levels."""
        doc = {"features": list(NAMES), "quantiles": list(QUANTILES), "models": self._models}
        Path(path).write_bytes(gzip.compress(json.dumps(doc, separators=(",", ":")).encode(), mtime=0))


@lru_cache(maxsize=4)
def load_forecaster(path: Optional[str] = None) -> Forecaster:
    """The shipped forecaster (parsed once per process), or the one at ``path``. Reading it does
    not import XGBoost: a decision walks the trees in numpy (:class:`automl.trees.Trees`)."""
    p = Path(path) if path else MODEL_PATH
    if not p.is_file():
        raise FileNotFoundError(f"no forecaster model at {str(p)!r}; train one with benchmarks/train_forecaster.py.")
    doc = json.loads(gzip.decompress(p.read_bytes()))
    if tuple(doc["quantiles"]) != QUANTILES:
        raise ValueError(f"the model at {str(p)!r} predicts quantiles {doc['quantiles']}, expected {list(QUANTILES)}.")
    return Forecaster(doc["models"], doc["features"])


def frame_from_curves(curves: Sequence[np.ndarray], budgets: Sequence[int], epoch: int, budget: int,
                      others: Sequence[np.ndarray] = ()) -> StudyFrame:
    """A :class:`StudyFrame` of finished trials given as full curves (epoch 1 first)."""
    def at(c: np.ndarray, e: int) -> float:
        return float(c[e - 1]) if 1 <= e <= len(c) else math.nan

    progress = epoch / budget
    return StudyFrame(
        at_epoch=np.array([at(c, epoch) for c in curves]),
        at_progress=np.array([at(c, max(1, round(progress * b))) for c, b in zip(curves, budgets)]),
        final=np.array([float(c[-1]) for c in curves]),
        budget=np.asarray(budgets, dtype=float),
        first=np.array([float(c[0]) for c in curves]),
        others_at_epoch=np.array([at(c, epoch) for c in (*curves, *others)]),
    )


def training_rows(curves: Sequence[np.ndarray], budgets: Sequence[int], rng: np.random.Generator, *,
                  min_finished: int = 2, epochs_per_trial: int = 4,
                  prefixes: Optional[list] = None) -> tuple[np.ndarray, np.ndarray]:
    """(features, target z) rows from one study, read as a pruner would meet it: trial i is judged
    at a few of its epochs against the trials before it that finished (ran to their budget with a
    finite value); the target is its own final value in the same z units. Where ``prefixes`` (a
    list) is given, each row's ``(prefix in z units, budget)`` is appended to it, for models that
    read the prefix as a sequence."""
    X, y = [], []
    for i in range(min_finished, len(curves)):
        done = [j for j in range(i) if np.isfinite(curves[j][-1])]
        if len(done) < min_finished:
            continue
        c, b = curves[i], int(budgets[i])
        finite = np.isfinite(c)
        last_ok = int(np.argmin(finite)) if not finite.all() else len(c)  # epochs before it diverged
        if last_ok < 1 or b < 2:
            continue
        for e in sorted(set(rng.integers(1, min(last_ok, b - 1) + 1, size=epochs_per_trial).tolist())):
            frame = frame_from_curves([curves[j] for j in done], [budgets[j] for j in done], e, b,
                                      others=[curves[j] for j in range(i) if j not in done])
            row, best, span = features(c[:e], b, frame)
            X.append(row)
            if prefixes is not None:
                prefixes.append((to_z(c[:e], best, span), b))
            final = c[-1]
            y.append(float(np.clip((final - best) / span, -Z_CLIP, Z_CLIP)) if np.isfinite(final) else Z_CLIP)
    return np.asarray(X, dtype=float).reshape(-1, len(NAMES)), np.asarray(y, dtype=float)
