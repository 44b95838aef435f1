"""Pure math over recorded training state: no torch, no optuna.

Every function here takes plain numbers or NumPy arrays and is testable without a study.
"""

from typing import TYPE_CHECKING

from automl import _lazy

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

_LAZY = _lazy.table({
    "automl.signals.capacitance": ("beta_eff", "WEIGHTINGS"),
    "automl.signals.dynamics": ("dfa_alpha", "order_parameter", "metastability", "stability_series", "convergence"),
    "automl.signals.failure": ("rule_labels",),
    "automl.signals.curve": ("CurveForecast", "forecast_final", "median_at_step", "rank_correlation", "rank_tail"),
})
_RENAMED = {"FAILURE_LABELS": "LABELS", "failure_features": "features"}  # names kept from automl.signals.failure
_get, __dir__ = _lazy.attributes(__name__, _LAZY, __all__)


def __getattr__(name: str):
    if name in _RENAMED:
        from automl.signals import failure

        return getattr(failure, _RENAMED[name])
    return _get(name)


if TYPE_CHECKING:  # scipy (dynamics) loads only when a dynamics measure is first used
    from automl.signals.capacitance import WEIGHTINGS, beta_eff
    from automl.signals.curve import CurveForecast, forecast_final, median_at_step, rank_correlation, rank_tail
    from automl.signals.dynamics import convergence, dfa_alpha, metastability, order_parameter, stability_series
    from automl.signals.failure import LABELS as FAILURE_LABELS
    from automl.signals.failure import features as failure_features
    from automl.signals.failure import rule_labels
