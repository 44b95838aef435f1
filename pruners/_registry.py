"""The one place that builds every pruner and scheduler by name: Optuna's and Ray Tune's built-ins
with the settings ``automl search`` runs them with, and ours. The search (CLI and service), the
replay benchmark and the other benchmarks all build through here, so a benchmark measures the very
rule a search runs. Built-ins keep their library's defaults, except where a setting has to follow
the search's budget (``max_resource``, ``max_t``) or its time unit (``grace_period=1`` epoch:
Ray's default of 60 is meant for seconds).
"""

from __future__ import annotations

import warnings
from typing import Any, Optional

from automl.decision import Policy
from automl.validation import check_positive_int

__all__ = ["OPTUNA_PRUNERS", "RAY_SCHEDULERS", "optuna_pruner", "ray_scheduler"]

#: Names :func:`optuna_pruner` builds.
OPTUNA_PRUNERS = ("signal", "forecast", "none", "median", "percentile25", "asha", "hyperband", "patient")
#: Names :func:`ray_scheduler` builds.
RAY_SCHEDULERS = ("signal", "forecast", "none", "median", "asha", "hyperband")


def _signal_policy(name: str, policy: Optional[Policy]) -> Policy:
    """``signal`` runs ``policy`` as given; ``forecast`` is the signal pruner with the forecaster's
    rule (``Policy(rule="forecast")``, the policy's ``risk``)."""
    policy = policy or Policy()
    return policy.model_copy(update={"rule": "forecast"}) if name == "forecast" else policy


def _unknown(name: Any, known: tuple[str, ...]) -> ValueError:
    return ValueError(f"unknown pruner {name!r}; choose one of {', '.join(known)}.")


def optuna_pruner(name: str, *, max_epochs: int, policy: Optional[Policy] = None, budget: Any = None) -> Any:
    """The Optuna pruner ``name`` stands for, for trials of up to ``max_epochs`` epochs (``policy``
    and a per-trial ``budget`` are the signal pruner's, ``SignalPruner(budget=...)``; the built-ins
    have no such setting).

    Example:
        >>> type(optuna_pruner("hyperband", max_epochs=20)).__name__
        'HyperbandPruner'
    """
    if name not in OPTUNA_PRUNERS:
        raise _unknown(name, OPTUNA_PRUNERS)
    max_epochs = check_positive_int("max_epochs", max_epochs)
    import optuna

    if name in ("signal", "forecast"):
        from pruners._signal import SignalPruner

        return SignalPruner(_signal_policy(name, policy), max_epochs=max_epochs, budget=budget)
    if name == "patient":  # PatientPruner is experimental in Optuna: say so once, not per study
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.pruners.PatientPruner(optuna.pruners.MedianPruner(), patience=3)
    return {
        "none": optuna.pruners.NopPruner,
        "median": optuna.pruners.MedianPruner,
        "percentile25": lambda: optuna.pruners.PercentilePruner(25.0),
        "asha": optuna.pruners.SuccessiveHalvingPruner,
        "hyperband": lambda: optuna.pruners.HyperbandPruner(min_resource=1, max_resource=max_epochs),
    }[name]()


def ray_scheduler(name: str, *, max_t: int, time_attr: str = "epoch", policy: Optional[Policy] = None,
                  metric: Optional[str] = None, mode: Optional[str] = None, budget: Any = None) -> Any:
    """The Ray Tune scheduler ``name`` stands for, for trials of up to ``max_t`` steps of
    ``time_attr``; ``metric`` and ``mode`` usually come from ``tune.TuneConfig``.

    ``median`` is Ray's ``MedianStoppingRule`` with its default ``min_samples_required=3``: the
    replay benchmark's figures were measured with it, and ``automl search`` runs the same rule.
    """
    if name not in RAY_SCHEDULERS:
        raise _unknown(name, RAY_SCHEDULERS)
    max_t = check_positive_int("max_t", max_t)
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler, HyperBandScheduler, MedianStoppingRule

    if name in ("signal", "forecast"):
        from pruners._ray import SignalScheduler

        scheduler = SignalScheduler(_signal_policy(name, policy), time_attr=time_attr, max_t=max_t, budget=budget)
    elif name == "median":
        scheduler = MedianStoppingRule(time_attr=time_attr, grace_period=1, min_samples_required=3)
    elif name == "asha":
        scheduler = ASHAScheduler(time_attr=time_attr, max_t=max_t, grace_period=1)
    elif name == "hyperband":
        scheduler = HyperBandScheduler(time_attr=time_attr, max_t=max_t)
    else:
        scheduler = FIFOScheduler()
    if metric is not None or mode is not None:
        scheduler.set_search_properties(metric, mode)
    return scheduler
