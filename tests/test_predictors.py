"""Final-accuracy predictors: known answers and the estimator contract."""

import math

import numpy as np
import pytest

from automl.signals.predictors import (
    PopulationPredictor,
    beta_ridge_final,
    power_law_final,
    prefix_features,
    tse_ema,
    vacces,
)


def test_vacces_and_tse_ema_known_answers():
    assert vacces([0.1, 0.5, 0.7], 2) == 0.5
    assert tse_ema([1.0, 2.0, 3.0], 3, gamma=0.5) == pytest.approx(-(0.25 * 1 + 0.5 * 2 + 3))
    assert tse_ema([1.0, float("nan")], 2) == -math.inf
    with pytest.raises(ValueError, match="at least k=4"):
        vacces([0.1, 0.2], 4)
    with pytest.raises(ValueError, match="k must be an integer >= 1, but got k=0"):
        tse_ema([1.0], 0)


def test_power_law_recovers_an_exact_power_law():
    t = np.arange(1, 31, dtype=float)
    curve = 0.9 - 0.5 * t**-0.7
    assert power_law_final(curve, 6, 30) == pytest.approx(curve[-1], abs=2e-3)
    assert power_law_final(curve, 1, 30) == curve[0]
    assert math.isnan(power_law_final([0.2, float("nan"), 0.5], 3, 30))


def test_beta_ridge_reads_the_accuracy_where_the_beta_trend_goes():
    t = np.arange(1, 31, dtype=float)
    beta = 0.05 + 0.01 * np.log(t)  # βeff linear in log t
    acc = 0.3 + 8.0 * (beta - 0.05)  # accuracy linear in βeff
    mean, std = beta_ridge_final(beta, acc, 5, 30)
    assert mean == pytest.approx(acc[-1], abs=0.02) and std >= 0
    assert beta_ridge_final(beta, acc, 1, 30)[0] == acc[0]
    assert math.isnan(beta_ridge_final([0.1, np.nan], [0.2, 0.3], 2, 30)[0])


def test_prefix_features():
    np.testing.assert_allclose(prefix_features([1.0, 3.0], [0.2, 0.5], 2), [3.0, 2.0, np.log(3.0), 0.5, 0.3, np.nan])
    np.testing.assert_allclose(prefix_features([1.0, 3.0], [0.2, 0.5], 1), [1.0, 0.0, 0.0, 0.2, 0.0, np.nan])


def test_population_predictor_learns_which_feature_counts():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(80, 6))
    y = 0.6 + 0.1 * X[:, 0] + 0.005 * rng.normal(size=80)
    model = PopulationPredictor("both").fit(X, y)
    assert abs(model.coef_[0]) > 20 * np.abs(model.coef_[1:]).max()
    curve_only = PopulationPredictor("curve").fit(X, y)  # columns 3 and 4 carry no information
    assert np.abs(curve_only.coef_).max() < 0.02
    X_bad = X[:3].copy()
    X_bad[1, 0] = np.nan
    mean, std = model.predict(X_bad, return_std=True)
    assert np.isnan(mean[1]) and np.isfinite(mean[[0, 2]]).all() and (std[[0, 2]] > 0).all()


def test_population_predictor_rejects_bad_input():
    with pytest.raises(ValueError, match="at least 3 finished runs"):
        PopulationPredictor().fit(np.ones((2, 6)), [0.1, 0.2])
    with pytest.raises(ValueError, match="features must be one of"):
        PopulationPredictor("betas").fit(np.ones((5, 6)), np.ones(5))
    with pytest.raises(ValueError, match="X has 5 rows but y has 4"):
        PopulationPredictor().fit(np.ones((5, 6)), np.ones(4))


def test_prefix_features_with_train_loss_adds_tse_ema():
    row = prefix_features([1.0, 3.0], [0.2, 0.5], 2, train_loss=[2.0, 1.0])
    np.testing.assert_allclose(row, [3.0, 2.0, np.log(3.0), 0.5, 0.3, -(0.9 * 2.0 + 1.0)])
    assert np.isnan(prefix_features([1.0], [0.2], 1, train_loss=[float("nan")])[-1])
    model = PopulationPredictor("both+tse").fit(np.random.default_rng(0).normal(size=(10, 6)), np.arange(10.0))
    assert model.coef_.shape == (6,)


def test_loo_and_population_shapes_are_checked():
    from automl.signals.predictors import loo_ridge_mse

    X, y = np.random.default_rng(0).normal(size=(10, 2)), np.arange(10.0)
    with pytest.raises(ValueError, match="y \\(n,\\)"):
        loo_ridge_mse(X, y[:, None])
    with pytest.raises(ValueError, match="reads columns \\(3, 4, 5\\)"):
        PopulationPredictor("curve+tse").fit(np.ones((10, 4)), y)


def test_beta_ridge_estimator_contract():
    from automl.signals.predictors import BetaRidge

    beta = np.array([0.05, 0.06, 0.065, 0.07])
    acc = np.array([0.4, 0.6, 0.7, 0.8])
    model = BetaRidge().fit(beta.reshape(-1, 1), acc)
    mean, std = model.predict([[0.06], [0.09]], return_std=True)
    assert mean[0] == pytest.approx(0.6, abs=0.05) and mean[1] > mean[0] and (std > 0).all()
    flat = BetaRidge().fit([0.05, 0.05], [0.3, 0.4])
    assert flat.predict_final(30)[0] == 0.4
    with pytest.raises(ValueError, match="one βeff per accuracy"):
        BetaRidge().fit([0.1, 0.2], [0.3])
    with pytest.raises(ValueError, match="finite"):
        BetaRidge().fit([0.1, np.nan], [0.3, 0.4])
