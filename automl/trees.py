"""XGBoost's JSON tree models, walked in numpy: predictions without importing XGBoost.

The shipped models (the forecaster's quantile boosters, the diagnosis heads) are XGBoost boosters
saved in XGBoost's own JSON format. Importing XGBoost costs about a second (it loads scikit-learn
and scipy), and its ``predict`` spends ~0.5 ms per call before it reads a row, while a decision or
a diagnosis asks for one row. :class:`Trees` reads the JSON (numeric splits; a missing value takes
the node's default branch; a leaf holds its value in ``split_conditions``) and walks every tree of
every booster at once. It gives XGBoost's margins to float32 rounding (the tests compare them with
``Booster.predict(output_margin=True)``).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

__all__ = ["Trees"]

#: Objectives whose base score is stored as the margin itself, and those that store a probability.
_IDENTITY = {"reg:squarederror", "reg:absoluteerror", "reg:quantileerror", "reg:pseudohubererror"}
_LOGIT = {"binary:logistic", "reg:logistic"}


class Trees:
    """Boosters with one output each (``models``: XGBoost JSON documents), as flat arrays.

    ``predict(rows)`` returns the margin of each booster for each row, shape (rows, boosters): for
    a regression that is the prediction, for ``binary:logistic`` the log-odds.
    """

    def __init__(self, models: Sequence[Mapping[str, Any]]) -> None:
        if not models:
            raise ValueError("Trees needs at least one booster.")
        flat: list[Mapping[str, Any]] = []
        owner: list[int] = []
        base = []
        for k, model in enumerate(models):
            learner = model["learner"]
            if int(learner["learner_model_param"].get("num_target", "1")) != 1 or \
                    int(learner["learner_model_param"].get("num_class", "0")) > 1:
                raise ValueError(f"booster {k} has more than one output; Trees reads boosters with one output each.")
            base.append(_base_margin(learner, k))
            trees = learner["gradient_booster"]["model"]["trees"]
            flat.extend(trees)
            owner.extend([k] * len(trees))
        if any(int(t["tree_param"].get("size_leaf_vector", "1")) > 1 or any(t["split_type"]) for t in flat):
            raise ValueError("Trees reads scalar leaves and numeric splits only.")
        sizes = [len(t["left_children"]) for t in flat]
        offset = np.cumsum([0, *sizes[:-1]]).astype(np.int64)
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
        # XGBoost numbers a node's right child next to its left one; where it does (always, in the
        # models we ship) a step is one gather: left child + (goes right). A leaf's "left child" is
        # itself and nothing goes right of it (threshold +inf).
        self._adjacent = bool(np.all(self.child[~leaf, 1] == self.child[~leaf, 0] + 1))
        self._left = self.child[:, 0]
        self._split = np.where(leaf, np.inf, self.threshold).astype(np.float32)
        self._feature = np.where(leaf, 0, self.feature)
        self.roots = offset
        self.base = np.asarray(base, dtype=np.float64)
        self.depth = _depth(flat)
        # sums each tree's leaf into its booster's output
        self._owner = np.zeros((len(flat), len(models)))
        self._owner[np.arange(len(flat)), owner] = 1.0

    def predict(self, rows: np.ndarray) -> np.ndarray:
        x = np.atleast_2d(np.asarray(rows, dtype=np.float32))
        n, t = len(x), len(self.roots)
        node = np.tile(self.roots, n)  # row-major: row i's trees at [i * t, (i + 1) * t)
        base = np.repeat(np.arange(n) * x.shape[1], t)
        flat = x.ravel()
        missing = bool(np.isnan(flat).any())
        if self._adjacent and not missing:
            left, split, feature = self._left, self._split, self._feature
            for _ in range(self.depth):
                node = left[node] + (flat[base + feature[node]] >= split[node])
            return self.threshold[node].astype(np.float64).reshape(n, t) @ self._owner + self.base
        for _ in range(self.depth):
            v = flat[base + self.feature[node]]
            right = v >= self.threshold[node]  # False for nan: XGBoost goes left iff v < threshold
            if missing:
                right = np.where(np.isnan(v), self.default_right[node], right)
            node = self.child[node, right.view(np.int8)]
        leaves = self.threshold[node].astype(np.float64).reshape(n, t)
        return leaves @ self._owner + self.base


def _base_margin(learner: Mapping[str, Any], k: int) -> float:
    """The booster's base score as a margin (XGBoost writes a number, or a one-element list, in
    the objective's output space)."""
    raw = learner["learner_model_param"]["base_score"]
    value = json.loads(raw) if raw.strip().startswith("[") else float(raw)
    score = float(value[0] if isinstance(value, list) else value)
    objective = learner.get("objective", {}).get("name", "reg:squarederror")
    if objective in _IDENTITY:
        return score
    if objective in _LOGIT:
        return math.log(score / (1.0 - score))
    raise ValueError(f"booster {k} has objective {objective!r}; Trees reads {sorted(_IDENTITY | _LOGIT)}.")


def _depth(trees: Sequence[Mapping[str, Any]]) -> int:
    """The deepest root-to-leaf path over the trees (edges)."""
    deepest = 0
    for t in trees:
        depth = {0: 0}
        for i, (a, b) in enumerate(zip(t["left_children"], t["right_children"])):
            if a >= 0:
                depth[a] = depth[b] = depth[i] + 1
        deepest = max(deepest, max(depth.values()))
    return deepest
