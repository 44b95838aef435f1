"""Pure math over recorded training state: no torch, no optuna.

Every function here takes plain numbers or NumPy arrays and is testable without a study.
"""

from automl.signals.capacitance import WEIGHTINGS, beta_eff
from automl.signals.curve import (
    CurveForecast,
    forecast_final,
    median_at_step,
    rank_correlation,
    rank_tail,
)
from automl.signals.failure import LABELS as FAILURE_LABELS
from automl.signals.failure import features as failure_features
from automl.signals.failure import rule_labels
from automl.signals.dynamics import convergence, dfa_alpha, metastability, order_parameter, stability_series

__all__ = [
    "beta_eff",
    "WEIGHTINGS",
    "dfa_alpha",
    "order_parameter",
    "metastability",
    "stability_series",
    "convergence",
    "FAILURE_LABELS",
    "failure_features",
    "rule_labels",
    "CurveForecast",
    "forecast_final",
    "median_at_step",
    "rank_correlation",
    "rank_tail",
]
