"""Neural capacitance βeff of an MLP probe head, in closed form.

Jiang, Pedapati, Chen, Sun, Gao, "Neural capacitance: a new perspective of neural network selection
via edge dynamics", arXiv 2201.04194 (2022); Nat. Commun. 2024. The method is covered by a US
patent (US 12,450,495 B2, IBM); see the README.

Training is read as dynamics on the *line graph* of the probe: its nodes are the weights, and
weight e = (j→i) of layer l links to weight e' = (i→k) of layer l+1 (they share neuron i). With
the weighted adjacency P of those links, the Gao–Barzel–Barabási mean-field reduction gives

    βeff = 1ᵀ P (P 1) / 1ᵀ P 1 = Σ_e in(e) · out(e) / Σ_e out(e),

the in-strength/out-strength correlation of the line graph (so βeff(P) = βeff(Pᵀ)). The line graph
has Σ n_{l-1} n_l n_{l+1} links and is never built here: for the two link weightings below, every
sum factorises into a few matrix–vector products per layer. With A_l = |W_l| (shape n_l × n_{l-1}),
row sums r_l = A_l 1 and column sums c_l = 1ᵀ A_l, for L weight matrices:

- ``"product"``, P[e, e'] = |W_l[i, j]| · |W_{l+1}[k, i]|:
  βeff = Σ_{l=2}^{L-1} c_{l+1}ᵀ (A_l ∘ A_l) r_{l-1}  /  Σ_{l=1}^{L-1} r_lᵀ c_{l+1};
- ``"downstream"``, P[e, e'] = |W_{l+1}[k, i]| (the weight the link leads to):
  βeff = Σ_{l=2}^{L-1} n_{l-2} · c_{l+1}ᵀ r_l  /  Σ_{l=1}^{L-1} n_{l-1} · 1ᵀ A_{l+1} 1,
  where n_{l-1} is the number of inputs of layer l (the in-strength of a weight of layer l is its
  own value times the n_{l-2} weights that lead into it).

An unweighted P is useless as a signal: βeff then depends on the layer widths only.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from automl.validation import check_metric

__all__ = ["beta_eff", "WEIGHTINGS"]

WEIGHTINGS = ("product", "downstream")


def _as_abs_matrices(weights: Sequence[Any]) -> list[np.ndarray]:
    if isinstance(weights, np.ndarray) or not isinstance(weights, Sequence):
        raise TypeError(
            f"weights must be a list of weight matrices in forward order, but got {type(weights).__name__}."
        )
    if len(weights) < 3:
        raise ValueError(
            f"βeff needs at least 3 weight matrices, but got {len(weights)}: with fewer, no weight has both an "
            "incoming and an outgoing link and βeff is 0 whatever the weights."
        )
    mats = []
    for i, w in enumerate(weights):
        if hasattr(w, "detach"):  # a torch tensor: no torch import needed to read it
            w = w.detach().cpu().double().numpy()  # bfloat16/half have no numpy dtype
        a = np.asarray(w, dtype=np.float64)
        if a.ndim != 2:
            raise ValueError(f"weights[{i}] must be a 2-D (n_out, n_in) matrix, but has shape {a.shape}.")
        mats.append(np.abs(a))
    for i in range(1, len(mats)):
        if mats[i].shape[1] != mats[i - 1].shape[0]:
            raise ValueError(
                f"weights[{i}] has {mats[i].shape[1]} inputs but weights[{i - 1}] has {mats[i - 1].shape[0]} outputs; "
                "pass the matrices in forward order, each shaped (n_out, n_in) like nn.Linear.weight."
            )
    return mats


def beta_eff(weights: Sequence[Any], weighting: str = "product") -> float:
    """βeff of the MLP whose layer weights are ``weights`` (forward order, each ``(n_out, n_in)``).

    Args:
        weights: the ``nn.Linear.weight`` arrays of the probe, numpy or torch; absolute values are
            taken here.
        weighting: ``"product"`` or ``"downstream"`` (see the module docstring).

    Returns:
        βeff as a float; ``nan`` if any weight is non-finite (a diverged run) or all links weigh 0.

    Example:
        >>> import numpy as np
        >>> rng = np.random.default_rng(0)
        >>> ws = [rng.normal(size=(5, 7)), rng.normal(size=(6, 5)), rng.normal(size=(3, 6))]
        >>> round(beta_eff(ws), 6), round(beta_eff(ws, "downstream"), 6)
        (2.194678, 1.961812)
    """
    check_metric(weighting, WEIGHTINGS, name="weighting")
    a = _as_abs_matrices(weights)
    if not all(np.isfinite(m).all() for m in a):
        return math.nan
    rows = [m.sum(axis=1) for m in a]  # r_l, indexed by the layer's outputs
    cols = [m.sum(axis=0) for m in a]  # c_l, indexed by the layer's inputs
    n_in = [m.shape[1] for m in a]
    num = den = 0.0
    if weighting == "product":
        for l in range(1, len(a) - 1):
            num += float(cols[l + 1] @ ((a[l] * a[l]) @ rows[l - 1]))
        for l in range(len(a) - 1):
            den += float(rows[l] @ cols[l + 1])
    else:
        for l in range(1, len(a) - 1):
            num += n_in[l - 1] * float(cols[l + 1] @ rows[l])
        for l in range(len(a) - 1):
            den += n_in[l] * float(cols[l + 1].sum())
    return num / den if den > 0 else math.nan
