"""The sequence forecaster measured by ``forecast_transformer.py --monotone``: a small transformer
over the trial's own prefix and its study's features, monotone in the trial's current value by
construction; inference in numpy (what the package would run: no torch in a decision).

It predicts the same quantiles of the final z value as the boosted forecaster
(:mod:`automl.forecast.model`) from the same rows, and also reads the trial's prefix as a
sequence. Trained with torch by ``forecast_transformer.py``, written (``--save PATH``) as a numpy
``.npz`` archive (arrays and one JSON string; read with ``allow_pickle=False``). Not shipped: as a
pruner it did not beat the boosted model (``results/forecast_transformer_monotone.md``).

Monotone by construction: the transformer reads only what the trial's current value does not move
(the other features of the row as one token, the prefix *before* the current epoch as the others);
the features the current value moves (:data:`VALUE`, each never down as the value worsens) go
through a small network with non-negative weights and increasing activations, whose outputs enter
every quantile with non-negative weights the transformer sets:
``q_1 = a_0 + sum_h w_0h m_h`` and ``q_k = q_(k-1) + softplus(a_k + sum_h w_kh m_h)``. So the
quantiles are increasing in the level and never fall as the current value worsens: a worse trial
never reads likelier to win.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Optional

import numpy as np

from automl.forecast.features import NAMES, Z_CLIP, StudyFrame, features, to_z

__all__ = ["T_MAX", "VALUE", "V_IDX", "C_IDX", "tokens", "SequenceForecaster"]

#: Prefix epochs the transformer reads (evenly spaced over the prefix, its last epoch among them).
T_MAX = 16
#: The features the trial's current value moves, each never down as it worsens (the boosted
#: model's monotone set, with ``z_first``: the current value at epoch 1).
VALUE = ("z_now", "z_best_so_far", "z_first", "slope_last", "slope_3", "rank_epoch_finished", "rank_epoch_all",
         "rank_progress_finished")
V_IDX = [NAMES.index(n) for n in VALUE]
C_IDX = [i for i, n in enumerate(NAMES) if n not in VALUE]


def tokens(prefix_z: np.ndarray, budget: int) -> tuple[np.ndarray, np.ndarray]:
    """``(tokens, mask)``: up to :data:`T_MAX` epochs of a prefix (z units), each as (z, share of
    the budget, log epoch / log 200), padded; ``mask`` marks the real ones (none for an empty prefix).

    Example:
        >>> tok, mask = tokens(np.array([1.0, 0.5, 0.25]), 10)
        >>> tok[:3, 0].tolist(), [round(x, 2) for x in tok[:3, 1].tolist()], int(mask.sum())
        ([1.0, 0.5, 0.25], [0.1, 0.2, 0.3], 3)
    """
    e = len(prefix_z)
    idx = np.unique(np.round(np.linspace(0, e - 1, min(e, T_MAX))).astype(int))
    tok = np.zeros((T_MAX, 3), dtype=np.float32)
    mask = np.zeros(T_MAX, dtype=bool)
    k = len(idx)
    if k:
        tok[:k, 0] = np.clip(np.asarray(prefix_z, dtype=float)[idx], -Z_CLIP, Z_CLIP)
        tok[:k, 1] = (idx + 1) / max(int(budget), e)
        tok[:k, 2] = np.log(idx + 1) / math.log(200)
        mask[:k] = True
    return tok, mask


def _norm(x: np.ndarray, w: np.ndarray, b: np.ndarray) -> np.ndarray:
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + 1e-5) * w + b


def _softplus(x: np.ndarray) -> np.ndarray:
    return np.logaddexp(0.0, x)


class SequenceForecaster:
    """The trained network's weights (``{name: array}``, torch's state-dict names) and its input
    scaling; ``forecast`` and ``predict_z`` as the boosted forecaster's, reading the prefix too."""

    def __init__(self, weights: dict[str, np.ndarray], meta: dict) -> None:
        if tuple(meta["features"]) != NAMES or tuple(meta["value"]) != VALUE or int(meta["t_max"]) != T_MAX:
            raise ValueError(f"the sequence model reads features {meta['features']} (value-moved {meta['value']}, "
                             f"{meta['t_max']} tokens), but this version computes {list(NAMES)} ({list(VALUE)}, {T_MAX}).")
        self.w = {k: np.asarray(v, dtype=np.float64) for k, v in weights.items()}
        self.meta = meta
        self.layers = int(meta["layers"])
        self.heads = int(meta["heads"])
        self.levels = tuple(meta["quantiles"])
        self._pos = {k: _softplus(self.w[k]) for k in ("m1", "m2")}

    # ------------------------------------------------------------------ inputs
    def inputs(self, X: np.ndarray, prefixes: Sequence[tuple[np.ndarray, int]]) -> tuple[np.ndarray, ...]:
        """``(study, value, tokens, mask)`` for feature rows ``X`` and their ``(prefix z, budget)``."""
        X = np.atleast_2d(np.asarray(X, dtype=float))
        m = self.meta
        C = X[:, C_IDX]
        miss = np.isnan(C)
        ctx = (np.concatenate([np.where(miss, 0.0, C), miss], axis=1) - m["ctx_mean"]) / m["ctx_std"]
        val = (X[:, V_IDX] - m["val_mean"]) / m["val_std"]
        toks = [tokens(np.asarray(z)[:-1], b) for z, b in prefixes]
        return (np.where(np.isnan(ctx), 0.0, ctx), np.where(np.isnan(val), 0.0, val),
                np.stack([t for t, _ in toks]).astype(float), np.stack([k for _, k in toks]))

    # ------------------------------------------------------------------ network
    def _attend(self, x: np.ndarray, keep: np.ndarray, i: int, last: bool) -> np.ndarray:
        w, H = self.w, self.heads
        p = f"enc.layers.{i}."
        B, L, d = x.shape
        dh = d // H
        h = _norm(x, w[p + "norm1.weight"], w[p + "norm1.bias"])
        qkv = h @ w[p + "self_attn.in_proj_weight"].T + w[p + "self_attn.in_proj_bias"]
        q, k, v = qkv[..., :d], qkv[..., d:2 * d], qkv[..., 2 * d:]
        if last:  # only the study token's output is read after the last layer
            q, x = q[:, :1], x[:, :1]
        q = q.reshape(B, -1, H, dh).transpose(0, 2, 1, 3)
        k = k.reshape(B, L, H, dh).transpose(0, 2, 1, 3)
        v = v.reshape(B, L, H, dh).transpose(0, 2, 1, 3)
        s = q @ k.transpose(0, 1, 3, 2) / math.sqrt(dh)
        s = np.where(keep[:, None, None, :], s, -np.inf)
        s = np.exp(s - s.max(-1, keepdims=True))
        a = (s / s.sum(-1, keepdims=True)) @ v
        a = a.transpose(0, 2, 1, 3).reshape(B, -1, d)
        x = x + a @ w[p + "self_attn.out_proj.weight"].T + w[p + "self_attn.out_proj.bias"]
        h = _norm(x, w[p + "norm2.weight"], w[p + "norm2.bias"])
        f = np.maximum(h @ w[p + "linear1.weight"].T + w[p + "linear1.bias"], 0.0)
        return x + f @ w[p + "linear2.weight"].T + w[p + "linear2.bias"]

    def network(self, study: np.ndarray, value: np.ndarray, tok: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """Sorted z quantiles from the network's inputs (as :meth:`inputs` gives them)."""
        w = self.w
        head = (study @ w["study.weight"].T + w["study.bias"] + w["kind"][0])[:, None]
        body = tok @ w["tok.weight"].T + w["tok.bias"] + w["kind"][1]
        x = np.concatenate([head, body], axis=1)
        keep = np.concatenate([np.ones((len(x), 1), dtype=bool), mask.astype(bool)], axis=1)
        for i in range(self.layers):
            x = self._attend(x, keep, i, last=i == self.layers - 1)
        c = _norm(x[:, 0], w["norm.weight"], w["norm.bias"])
        m = np.tanh(np.tanh(value @ self._pos["m1"] + w["b1"]) @ self._pos["m2"] + w["b2"])
        mix = _softplus(c @ w["w.weight"].T + w["w.bias"]).reshape(len(c), len(self.levels), -1)
        o = c @ w["a.weight"].T + w["a.bias"] + (mix * m[:, None, :]).sum(-1)
        return np.concatenate([o[:, :1], o[:, :1] + np.cumsum(_softplus(o[:, 1:]), axis=1)], axis=1)

    # ------------------------------------------------------------------ the forecaster's calls
    def predict_z(self, X: np.ndarray, prefixes: Sequence[tuple[np.ndarray, int]]) -> np.ndarray:
        """Sorted z quantiles, one row per feature row and its ``(prefix z, budget)``."""
        if len(prefixes) != len(np.atleast_2d(X)):
            raise ValueError(f"{len(np.atleast_2d(X))} feature rows but {len(prefixes)} prefixes.")
        return self.network(*self.inputs(X, prefixes))

    def forecast(self, own: np.ndarray, budget: int, frame: StudyFrame, epoch: Optional[int] = None):
        from automl.forecast.model import Forecast

        row, best, span = features(own, budget, frame, epoch)
        return Forecast(self.predict_z(row[None, :], [(to_z(own, best, span), budget)])[0], best, span)

    # ------------------------------------------------------------------ file
    def save(self, path: Path | str) -> None:
        """One ``.npz``: the weights, and the metadata as a JSON string (no pickle)."""
        meta = {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in self.meta.items()}
        with open(path, "wb") as f:
            np.savez_compressed(f, __meta__=np.array(json.dumps(meta)), **{k: v.astype(np.float32) for k, v in self.w.items()})

    @classmethod
    def load(cls, path: Path | str) -> "SequenceForecaster":
        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(str(z["__meta__"]))
            weights = {k: z[k] for k in z.files if k != "__meta__"}
        for k in ("ctx_mean", "ctx_std", "val_mean", "val_std"):
            meta[k] = np.asarray(meta[k], dtype=float)
        return cls(weights, meta)
