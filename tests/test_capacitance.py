"""βeff: the closed forms against an explicitly built line graph, and the input contract."""

import math

import numpy as np
import pytest
import scipy.sparse as sp

from automl.signals import beta_eff


def line_graph(weights, weighting):
    """Sparse P over the weights of an MLP: weight (l, i, j) -> weight (l+1, k, i)."""
    offsets = np.cumsum([0] + [w.size for w in weights])
    rows, cols, vals = [], [], []
    for l in range(len(weights) - 1):
        a, b = np.abs(weights[l]), np.abs(weights[l + 1])
        n_out, n_in = a.shape
        for i in range(n_out):
            for j in range(n_in):
                e = offsets[l] + i * n_in + j
                for k in range(b.shape[0]):
                    e2 = offsets[l + 1] + k * b.shape[1] + i
                    rows.append(e)
                    cols.append(e2)
                    vals.append(a[i, j] * b[k, i] if weighting == "product" else b[k, i])
    n = offsets[-1]
    return sp.csr_matrix((vals, (rows, cols)), shape=(n, n))


def beta_from_graph(p):
    one = np.ones(p.shape[0])
    return float(one @ (p @ (p @ one)) / (one @ (p @ one)))


def random_mlp(widths, seed):
    rng = np.random.default_rng(seed)
    return [rng.normal(size=(widths[i + 1], widths[i])) for i in range(len(widths) - 1)]


@pytest.mark.parametrize("weighting", ["product", "downstream"])
@pytest.mark.parametrize("widths", [(7, 5, 6, 4, 3), (3, 4, 2, 5), (2, 9, 1, 3), (6, 1, 6, 2), (4, 8, 8, 8, 8, 10)])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_closed_form_equals_explicit_line_graph(weighting, widths, seed):
    ws = random_mlp(widths, seed)
    p = line_graph(ws, weighting)
    want = beta_from_graph(p)
    assert beta_eff(ws, weighting) == pytest.approx(want, rel=1e-9, abs=1e-12)
    # βeff(P) = βeff(Pᵀ): the in/out-strength correlation reads the same both ways
    assert beta_from_graph(p.T.tocsr()) == pytest.approx(want, rel=1e-9, abs=1e-12)


def test_product_weighting_is_symmetric_under_reversing_the_network():
    # Reversing the MLP (transposed matrices, reversed order) transposes the product line graph.
    ws = random_mlp((7, 5, 6, 4, 3), 3)
    assert beta_eff([w.T for w in reversed(ws)]) == pytest.approx(beta_eff(ws), rel=1e-12)


def test_weights_are_read_as_absolute_values_and_scale_like_a_strength():
    ws = random_mlp((7, 5, 6, 4, 3), 4)
    flipped = [-w for w in ws]
    assert beta_eff(flipped) == pytest.approx(beta_eff(ws), rel=1e-12)
    # product links are quadratic in the weights: βeff(2W) = 4 βeff(W); downstream ones linear
    assert beta_eff([2 * w for w in ws]) == pytest.approx(4 * beta_eff(ws), rel=1e-12)
    assert beta_eff([2 * w for w in ws], "downstream") == pytest.approx(2 * beta_eff(ws, "downstream"), rel=1e-12)


def test_unweighted_graph_depends_on_widths_only():
    a = [np.ones((5, 7)), np.ones((6, 5)), np.ones((3, 6))]
    b = [np.full((5, 7), 1.0), np.full((6, 5), 1.0), np.full((3, 6), 1.0)]
    assert beta_eff(a) == beta_eff(b) == pytest.approx(beta_from_graph(line_graph(a, "product")))


def test_torch_tensors_with_grad_and_low_precision_are_accepted():
    torch = pytest.importorskip("torch")
    ws = random_mlp((7, 5, 6, 3), 5)
    ts = [torch.tensor(w, requires_grad=True) for w in ws]
    assert beta_eff(ts) == pytest.approx(beta_eff(ws), rel=1e-12)
    assert beta_eff([t.to(torch.bfloat16) for t in ts]) == pytest.approx(beta_eff(ws), rel=2e-2)


def test_non_finite_weights_give_nan_not_an_error():
    ws = random_mlp((4, 3, 3, 2), 6)
    ws[1][0, 0] = np.nan
    assert math.isnan(beta_eff(ws))
    ws[1][0, 0] = np.inf
    assert math.isnan(beta_eff(ws, "downstream"))
    assert math.isnan(beta_eff([np.zeros((3, 4)), np.zeros((2, 3)), np.zeros((2, 2))]))


@pytest.mark.parametrize(
    "weights, weighting, message",
    [
        ([np.ones((3, 4)), np.ones((2, 3))], "product", "at least 3 weight matrices"),
        ([np.ones((3, 4)), np.ones((2, 5)), np.ones((2, 2))], "product", "weights\\[1\\] has 5 inputs but weights\\[0\\] has 3 outputs"),
        ([np.ones((3, 4)), np.ones(3), np.ones((2, 2))], "product", "weights\\[1\\] must be a 2-D"),
        ([np.ones((3, 4)), np.ones((2, 3)), np.ones((2, 2))], "outdegree", "weighting must be one of"),
        (np.ones((3, 4)), "product", "list of weight matrices"),
    ],
)
def test_bad_input_names_the_bad_value(weights, weighting, message):
    with pytest.raises((ValueError, TypeError), match=message):
        beta_eff(weights, weighting)
