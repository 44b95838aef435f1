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

from automl.forecast.features import NAMES, Z_CLIP, StudyFrame, features

__all__ = ["QUANTILES", "MONOTONE", "Forecast", "Forecaster", "load_forecaster", "p_below", "frame_from_curves",
           "training_rows", "MODEL_PATH"]

MODEL_PATH = Path(__file__).resolve().parents[1] / "models" / "forecaster.json.gz"
#: Quantile levels of the final z value the model predicts.
QUANTILES = (0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 0.75, 0.9)
#: +1 for the features that grow with the trial's current value (so the forecast may only grow with it).
MONOTONE = tuple(1 if n in {"z_now", "z_best_so_far", "slope_last", "slope_3", "rank_epoch_finished", "rank_epoch_all",
                            "rank_progress_finished"} else 0 for n in NAMES)


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


class _Trees:
    """The boosters' trees (one booster per quantile level) as flat arrays, walked for all trees at once with numpy: a decision
    asks for one row, where XGBoost's own predict spends ~0.5 ms per call in setup alone. Reads
    XGBoost's JSON model (numeric splits; a missing value takes the default branch; leaves hold
    their value in ``split_conditions``) and gives the same numbers to float32 rounding
    (``tests/test_forecast.py`` checks it against ``inplace_predict``)."""

    def __init__(self, models: Sequence[dict]) -> None:
        trees, base = [], []
        for model in models:  # one booster per quantile level, one output each
            learner = model["learner"]
            if int(learner["learner_model_param"].get("num_target", "1")) != 1:
                raise ValueError("each of the forecaster's boosters must predict one quantile level.")
            base.append(_base_score(learner))
            trees.append(learner["gradient_booster"]["model"]["trees"])
        rounds = {len(t) for t in trees}
        if len(rounds) != 1:
            raise ValueError(f"the forecaster's boosters must have as many trees each, but have {sorted(rounds)}.")
        k, per = len(trees), rounds.pop()
        flat = [tree for r in range(per) for tree in (trees[q][r] for q in range(k))]  # round-major: quantile cycles
        if any(int(t["tree_param"].get("size_leaf_vector", "1")) > 1 or any(t["split_type"]) for t in flat):
            raise ValueError("the forecaster's trees must have scalar leaves and numeric splits only.")
        sizes = [len(t["left_children"]) for t in flat]
        offset = np.cumsum([0, *sizes[:-1]])
        cat = lambda key, dt: np.concatenate([np.asarray(t[key], dtype=dt) for t in flat])  # noqa: E731
        left, right = cat("left_children", np.int64), cat("right_children", np.int64)
        tree_of = np.repeat(np.arange(len(flat)), sizes)
        leaf = left < 0
        here = np.arange(len(left))
        # child[node, 0] the left child, child[node, 1] the right; a leaf points to itself twice
        self.child = np.stack([np.where(leaf, here, left + offset[tree_of]), np.where(leaf, here, right + offset[tree_of])], 1)
        self.feature = cat("split_indices", np.int64)
        self.threshold = cat("split_conditions", np.float32)
        self.default_right = ~cat("default_left", bool)
        self.roots = offset.astype(np.int64)
        self.base = np.asarray(base, dtype=np.float64)
        self.depth = _depth(flat)

    def predict(self, rows: np.ndarray) -> np.ndarray:
        x = np.asarray(rows, dtype=np.float32)
        n, t = len(x), len(self.roots)
        node = np.tile(self.roots, n)  # row-major: row i's trees at [i * t, (i + 1) * t)
        base = np.repeat(np.arange(n) * x.shape[1], t)
        flat = x.ravel()
        missing = bool(np.isnan(flat).any())
        for _ in range(self.depth):
            v = flat[base + self.feature[node]]
            right = v >= self.threshold[node]  # False for nan: XGBoost goes left iff v < threshold
            if missing:
                right = np.where(np.isnan(v), self.default_right[node], right)
            node = self.child[node, right.view(np.int8)]
        leaves = self.threshold[node].astype(np.float64).reshape(n, -1, len(self.base))
        return leaves.sum(axis=1) + self.base


def _base_score(learner: dict) -> float:
    """The booster's base score (XGBoost writes it as a number, or as a one-element list)."""
    raw = learner["learner_model_param"]["base_score"]
    value = json.loads(raw) if raw.strip().startswith("[") else float(raw)
    return float(value[0] if isinstance(value, list) else value)


def _depth(trees: list) -> int:
    """The deepest root-to-leaf path over the trees (edges)."""
    deepest = 0
    for t in trees:
        depth = {0: 0}
        for i, (a, b) in enumerate(zip(t["left_children"], t["right_children"])):
            if a >= 0:
                depth[a] = depth[b] = depth[i] + 1
        deepest = max(deepest, max(depth.values()))
    return deepest


class Forecaster:
    """Trained quantile models, one ``xgboost.Booster`` per level of :data:`QUANTILES` (each with
    the monotone constraints: XGBoost ignores them in one booster fitting several quantile levels
    at once), and the feature order they were trained on."""

    #: Up to this many rows are predicted by walking the trees in numpy (fast per call), more by XGBoost.
    SMALL = 16

    def __init__(self, boosters: Sequence[object], names: Sequence[str] = NAMES) -> None:
        if tuple(names) != NAMES:
            raise ValueError(f"the model was trained on features {list(names)}, but this version computes {list(NAMES)}.")
        if len(boosters) != len(QUANTILES):
            raise ValueError(f"the forecaster needs one booster per quantile level ({len(QUANTILES)}), got {len(boosters)}.")
        self._boosters = list(boosters)
        self._trees = _Trees([json.loads(bytes(b.save_raw(raw_format="json"))) for b in self._boosters])  # type: ignore[attr-defined]

    def predict_z(self, rows: np.ndarray) -> np.ndarray:
        """Sorted z quantiles, one row per feature row."""
        rows = np.asarray(rows, dtype=np.float32)
        if len(rows) <= self.SMALL:
            out = self._trees.predict(rows)
        else:
            out = np.stack([np.asarray(b.inplace_predict(rows), dtype=float).reshape(len(rows))  # type: ignore[attr-defined]
                            for b in self._boosters], axis=1)
        return np.sort(out, axis=1)

    def forecast(self, own: np.ndarray, budget: int, frame: StudyFrame, epoch: Optional[int] = None) -> Forecast:
        row, best, span = features(own, budget, frame, epoch)
        return Forecast(self.predict_z(row[None, :])[0], best, span)

    def save(self, path: Path | str) -> None:
        """Write the boosters as one gzipped JSON document (XGBoost's own JSON model format; no
        pickle), with the feature names and quantile levels."""
        doc = {"features": list(NAMES), "quantiles": list(QUANTILES),
               "models": [json.loads(bytes(b.save_raw(raw_format="json"))) for b in self._boosters]}  # type: ignore[attr-defined]
        Path(path).write_bytes(gzip.compress(json.dumps(doc, separators=(",", ":")).encode(), mtime=0))


@lru_cache(maxsize=4)
def load_forecaster(path: Optional[str] = None) -> Forecaster:
    """The shipped forecaster (parsed once per process), or the one at ``path``."""
    import xgboost as xgb

    p = Path(path) if path else MODEL_PATH
    if not p.is_file():
        raise FileNotFoundError(f"no forecaster model at {str(p)!r}; train one with benchmarks/train_forecaster.py.")
    doc = json.loads(gzip.decompress(p.read_bytes()))
    if tuple(doc["quantiles"]) != QUANTILES:
        raise ValueError(f"the model at {str(p)!r} predicts quantiles {doc['quantiles']}, expected {list(QUANTILES)}.")
    boosters = []
    for model in doc["models"]:
        booster = xgb.Booster()
        booster.load_model(bytearray(json.dumps(model).encode()))
        booster.set_param({"nthread": 1})
        boosters.append(booster)
    return Forecaster(boosters, doc["features"])


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
                  min_finished: int = 2, epochs_per_trial: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """(features, target z) rows from one study, read as a pruner would meet it: trial i is judged
    at a few of its epochs against the trials before it that finished (ran to their budget with a
    finite value); the target is its own final value in the same z units."""
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
            final = c[-1]
            y.append(float(np.clip((final - best) / span, -Z_CLIP, Z_CLIP)) if np.isfinite(final) else Z_CLIP)
    return np.asarray(X, dtype=float).reshape(-1, len(NAMES)), np.asarray(y, dtype=float)
