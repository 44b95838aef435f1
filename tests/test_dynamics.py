"""Dynamical measures: known answers."""

import math

import numpy as np
import pytest

from automl.signals.dynamics import (
    converged_at,
    dfa_alpha,
    diff_zscore,
    integration,
    metastability,
    metastability_null,
    order_parameter,
    rolling_std,
    stability_index,
)


def test_dfa_of_white_noise_and_random_walk():
    rng = np.random.default_rng(0)
    noise = rng.normal(size=(20, 512))
    walk = np.cumsum(rng.normal(size=(20, 512)), axis=1)
    assert np.median(dfa_alpha(noise)) == pytest.approx(0.5, abs=0.1)
    assert np.median(dfa_alpha(walk)) == pytest.approx(1.5, abs=0.1)
    # every single series, not only the median
    assert np.all(np.abs(dfa_alpha(noise) - 0.5) < 0.15) and np.all(np.abs(dfa_alpha(walk) - 1.5) < 0.2)


def test_dfa_shapes_and_short_or_bad_series():
    rng = np.random.default_rng(1)
    one = dfa_alpha(rng.normal(size=64))
    assert isinstance(one, np.ndarray) and one.shape == ()
    assert np.isnan(dfa_alpha(rng.normal(size=15)))
    assert not np.isnan(dfa_alpha(rng.normal(size=16)))
    rows = rng.normal(size=(3, 64))
    rows[1, 5] = np.nan
    rows[2] = 1.0
    out = dfa_alpha(rows)
    assert out.shape == (3,) and np.isfinite(out[0]) and np.isnan(out[1]) and np.isnan(out[2])
    assert integration(rng.normal(size=(4, 24)))[1] is True and integration(rng.normal(size=(4, 64)))[1] is False
    with pytest.raises(ValueError, match="shape"):
        dfa_alpha(np.zeros((2, 2, 2)))


def test_order_parameter_identical_and_independent_phases():
    t = np.linspace(0, 40 * np.pi, 2000)
    same = np.vstack([np.sin(t)] * 8)
    assert np.allclose(order_parameter(same)[100:-100], 1.0)
    rng = np.random.default_rng(2)
    for n_layers in (4, 16, 64):
        r = order_parameter(rng.normal(size=(n_layers, 4000)))[200:-200]
        assert r.mean() == pytest.approx(math.sqrt(math.pi / (4 * n_layers)), rel=0.1)


def test_metastability_and_its_null():
    rng = np.random.default_rng(3)
    t = np.arange(600)
    # layers that drift in and out of phase: a shared slow oscillation plus noise
    common = np.sin(2 * np.pi * t / 60)
    coupled = common + 0.6 * rng.normal(size=(8, 600))
    independent = rng.normal(size=(8, 600))
    m, s = metastability(coupled)
    assert 0 < m < 1 and 0 < s <= 1
    null = metastability_null(coupled, n_null=50, seed=0)
    assert null.s_z > 3  # far more synchronous than shifted copies of itself
    assert abs(metastability_null(independent, n_null=50, seed=0).s_z) < 3
    with pytest.raises(ValueError, match="trim"):
        metastability(coupled, trim=0.6)


def test_diff_zscore_stability_index_and_convergence_rule():
    z = diff_zscore(np.vstack([np.arange(10.0) ** 2, np.ones(10)]))
    assert z.shape == (2, 9) and np.allclose(z[0].mean(), 0) and np.allclose(z[0].std(), 1) and np.all(z[1] == 0)
    assert stability_index(1.5, 0.0) == 1.0 and stability_index(0.75, 0.25) == pytest.approx(0.25)
    assert stability_index(3.0, 1.0) == 0.0 and math.isnan(stability_index(math.nan, 0.1))
    v = rolling_std([0, 1, 0, 1, 0, 0.5, 0.5, 0.5, 0.5], 2)
    assert np.isnan(v[0]) and v[1] == 0.5
    assert converged_at([1.0, 0.9, 0.5, 0.2, 0.25, 0.1, 0.3]) == 5
    assert converged_at([1.0, 0.2, 0.9, 0.2, 0.2]) is None  # interrupted runs do not count
    assert converged_at([np.nan, 0.0, 0.0, 0.0]) is None  # a flat zero never had anything to fall from


# -- the stability index and the convergence rule -----------------------------------------------
from automl.signals.dynamics import convergence, converged_epoch, stability_series  # noqa: E402


def _settling(T=400, L=4, seed=0, tau=40.0):
    """A trace whose layers move a lot early and then settle (as a run that converges)."""
    rng = np.random.default_rng(seed)
    t = np.arange(T)
    return 1.0 + np.exp(-t / tau) * rng.normal(size=(L, T)).cumsum(axis=1) + 0.01 * rng.normal(size=(L, T)).cumsum(axis=1)


def test_stability_series_is_causal_and_bounded():
    x = _settling()
    full = stability_series(x)
    part = stability_series(x[:, :250])
    n = len(part.dsi)
    assert n == 250 - 1 - 64 + 1 and part.end[-1] == 249
    # a window uses only its past: the series of a prefix is the prefix of the series
    np.testing.assert_allclose(part.dsi, full.dsi[:n])
    np.testing.assert_allclose(part.volatility, full.volatility[:n], equal_nan=True)
    # so a probe extends the series of a prefix instead of recomputing it
    grown = stability_series(x, previous=part)
    for a, b in zip(grown, full):
        np.testing.assert_allclose(a, b, equal_nan=True)
    assert np.all((full.dsi >= 0) & (full.dsi <= 1))
    assert np.isnan(full.volatility[:15]).all() and np.isfinite(full.volatility[15:]).all()
    # too short for one window: empty, not an error
    assert len(stability_series(x[:, :40]).dsi) == 0


def test_stability_series_marks_windows_with_non_finite_values():
    x = _settling()
    x[1, 200] = np.nan
    s = stability_series(x)
    bad = (s.end >= 200) & (s.end - 64 <= 200)
    assert np.isnan(s.dsi[bad]).all() and np.isfinite(s.dsi[~bad]).all()


def test_convergence_rule_and_its_null():
    x = np.abs(np.random.default_rng(3).normal(size=(6, 300)).cumsum(axis=1)) + 1.0
    c = convergence(x, n_null=0)
    assert c.index == c.fired and math.isnan(c.null_median)
    full = convergence(x, n_null=10, seed=1)
    assert full.fired == c.fired
    if full.fired is not None:  # the null decides whether the firing counts
        assert 0.0 <= full.null_fired_share <= 1.0
        assert full.converged == (full.null_fired_share < 0.5)
    # the null check is reproducible
    again = convergence(x, n_null=10, seed=1)
    assert (again.index, again.null_fired_share) == (full.index, full.null_fired_share)
    with pytest.raises(ValueError, match="fraction"):
        convergence(x, fraction=1.5)
    with pytest.raises(ValueError, match="window"):
        stability_series(x, window=8)


def test_converged_epoch_matches_a_probe_checking_every_epoch():
    rng = np.random.default_rng(0)
    found = 0
    for seed in range(6):
        x = np.abs(rng.normal(size=(5, 360)).cumsum(axis=1)) + 1.0
        steps = np.arange(1, 361) * 2  # logged every 2 steps, 24 steps an epoch: 30 epochs
        epoch, c = converged_epoch(x, steps, 24, n_null=8)
        # the same check done by hand, epoch by epoch, on the trace seen so far
        manual = next((e for e in range(1, 31) if convergence(x[:, : 12 * e], n_null=8).converged), None)
        assert epoch == manual
        if epoch is not None:
            found += 1
            assert c.converged and steps[c.index] <= epoch * 24
    assert found >= 1
    with pytest.raises(ValueError, match="steps"):
        converged_epoch(np.ones((2, 10)), [1, 2], 4)
