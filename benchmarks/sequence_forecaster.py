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
        self.w = {k: np.asarray(v, dtype=np.float32) for k, v in weights.items()}
        self.meta = meta
        self.layers = int(meta["layers"])
        self.heads = int(meta["heads"])
        self.levels = tuple(meta["quantiles"])
        self.plain = meta.get("head", "monotone") == "plain"
        self._pos = {} if self.plain else {k: _softplus(self.w[k]) for k in ("m1", "m2")}

    # ------------------------------------------------------------------ inputs
    def inputs(self, X: np.ndarray, prefixes: Sequence[tuple[np.ndarray, int]]) -> tuple[np.ndarray, ...]:
        """``(study, value, tokens, mask)`` for feature rows ``X`` and their ``(prefix z, budget)``
        (the plain head reads every feature as the study token and the whole prefix; ``value`` unused)."""
        toks = [tokens(np.asarray(z) if self.plain else np.asarray(z)[:-1], b) for z, b in prefixes]
        return (*self.scaled(X), np.stack([t for t, _ in toks]), np.stack([k for _, k in toks]))

    def scaled(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(study, value)`` inputs of feature rows ``X``."""
        X = np.atleast_2d(np.asarray(X, dtype=float))
        m = self.meta
        C = X if self.plain else X[:, C_IDX]
        miss = np.isnan(C)
        ctx = (np.concatenate([np.where(miss, 0.0, C), miss], axis=1) - m["ctx_mean"]) / m["ctx_std"]
        val = np.zeros((len(X), 0)) if self.plain else (X[:, V_IDX] - m["val_mean"]) / m["val_std"]
        return np.where(np.isnan(ctx), 0.0, ctx).astype(np.float32), np.where(np.isnan(val), 0.0, val).astype(np.float32)

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
        if self.plain:
            o = c @ w["head.weight"].T + w["head.bias"]
            return np.concatenate([o[:, :1], o[:, :1] + np.cumsum(_softplus(o[:, 1:]), axis=1)], axis=1)
        m = np.tanh(np.tanh(value @ self._pos["m1"] + w["b1"]) @ self._pos["m2"] + w["b2"])
        mix = _softplus(c @ w["w.weight"].T + w["w.bias"]).reshape(len(c), len(self.levels), -1)
        o = c @ w["a.weight"].T + w["a.bias"] + (mix * m[:, None, :]).sum(-1)
        return np.concatenate([o[:, :1], o[:, :1] + np.cumsum(_softplus(o[:, 1:]), axis=1)], axis=1)

    # ------------------------------------------------------------------ the forecaster's calls
    def predict_z(self, X: np.ndarray, prefixes: Sequence[tuple[np.ndarray, int]]) -> np.ndarray:
        """Sorted z quantiles, one row per feature row and its ``(prefix z, budget)``."""
        if len(prefixes) != len(np.atleast_2d(X)):
            raise ValueError(f"{len(np.atleast_2d(X))} feature rows but {len(prefixes)} prefixes.")
        return self.network(*self.inputs(X, prefixes)).astype(float)

    def forecast(self, own: np.ndarray, budget: int, frame: StudyFrame, epoch: Optional[int] = None):
        from automl.forecast.model import Forecast

        row, best, span = features(own, budget, frame, epoch)
        return Forecast(self.predict_z(row[None, :], [(to_z(own, best, span), budget)])[0], best, span)

    def enveloped(self, own: np.ndarray, budget: int, frame: StudyFrame, epoch: Optional[int] = None):
        """The forecast made monotone in the trial's current value after the fact (for a head
        that is not monotone by construction): the network is read with the current value set to
        each point of :data:`GRID` (z units; everything else as it is), and P(final < x) at value v
        is the largest of its linear interpolation between grid points over all values from v on
        (:class:`Envelope`): it never rises as v worsens. At the first epoch (where the value also
        sets the study's scale) the plain forecast."""
        if len(own) < 2:
            return self.forecast(own, budget, frame, epoch)
        row, best, span = features(own, budget, frame, epoch)
        z = to_z(own, best, span)
        z_now = min(max(float(z[-1]), GRID[0]), GRID[-1])
        grid = GRID[int(np.searchsorted(GRID, z_now, side="right")) - 1:]  # the envelope reads no better value
        rows = np.vstack([row[None, :], value_rows(row, z, frame, best, span, grid)])
        tok, mask = tokens(z, budget)  # the prefix's tokens; each grid row's last one reads the grid value
        T = np.repeat(tok[None], len(rows), axis=0)
        T[1:, int(mask.sum()) - 1, 0] = np.clip(grid, -Z_CLIP, Z_CLIP)
        # one batch: the trial as it is, then each grid value
        q = self.network(*self.scaled(rows), T, np.repeat(mask[None], len(rows), axis=0)).astype(float)
        return Envelope(q[1:], grid, z_now, best, span, q[0])

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
            if k in meta:
                meta[k] = np.asarray(meta[k], dtype=float)
        return cls(weights, meta)


#: Current values (z units) at which :meth:`SequenceForecaster.enveloped` reads the network:
#: every 0.1 from -1 to 2 (where a trial's chance of beating the best moves), coarser beyond.
GRID = np.round(np.r_[-4.0, -3.0, -2.0, -1.5, np.linspace(-1.0, 2.0, 31), 2.5, 3.0, 4.0], 6)


def value_rows(row: np.ndarray, z: np.ndarray, frame: StudyFrame, best: float, span: float,
               values: np.ndarray) -> np.ndarray:
    """``row`` (the features of a prefix whose z values are ``z``, at least 2 epochs) with the
    current value set to each of ``values`` (z units): the columns it moves recomputed as
    :func:`automl.forecast.features.features` computes them, the others as they are."""
    e = len(z)
    out = np.repeat(row[None, :], len(values), axis=0)
    col = {n: NAMES.index(n) for n in VALUE}
    v = np.asarray(values, dtype=float)
    out[:, col["z_now"]] = v
    out[:, col["z_best_so_far"]] = np.minimum(z[:-1].min(), v)
    out[:, col["slope_last"]] = v - z[-2]
    out[:, col["slope_3"]] = (v - z[max(0, e - 4)]) / max(1, min(3, e - 1))
    ez, pz = to_z(frame.at_epoch, best, span), to_z(frame.at_progress, best, span)
    others = frame.others_at_epoch[np.isfinite(frame.others_at_epoch)]
    for name, ref in (("rank_epoch_finished", ez[np.isfinite(frame.at_epoch)]), ("rank_epoch_all", to_z(others, best, span)),
                      ("rank_progress_finished", pz[np.isfinite(frame.at_progress)])):
        if len(ref):
            out[:, col[name]] = (ref[None, :] < v[:, None]).mean(axis=1)
    return out


class Envelope:
    """A forecast whose P(final < x) is monotone in the trial's current value: the network's
    quantiles ``q_grid`` at the values ``grid`` (the points of :data:`GRID` from the one at or below
    the trial's value ``z_now`` on), P linear between them, and at ``z_now`` the largest P over all
    values from it on. The shown quantiles are the network's at the trial's own value (``q_own``)."""

    def __init__(self, q_grid: np.ndarray, grid: np.ndarray, z_now: float, best: float, span: float,
                 q_own: np.ndarray) -> None:
        from automl.forecast.model import QUANTILES

        self.q_grid, self.grid, self.z_now, self.best, self.span = q_grid, grid, z_now, best, span
        self.z_quantiles = q_own
        self.quantiles = best + span * q_own
        self._levels = QUANTILES
        self.p_beat = self._p(0.0)

    def _p(self, x: float) -> float:
        from automl.forecast.model import p_below

        p = np.array([p_below(q, x=x) for q in self.q_grid])
        if len(p) == 1:
            return float(p[0])
        t = (self.z_now - self.grid[0]) / (self.grid[1] - self.grid[0])
        return float(max((1 - t) * p[0] + t * p[1], p[1:].max()))

    def p_below(self, value: float) -> float:
        return self._p((value - self.best) / self.span)

    def quantile(self, level: float) -> float:
        return float(np.interp(level, self._levels, self.quantiles))
