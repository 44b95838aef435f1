"""``pruners``' registry: the one place that builds every pruner, so the replay benchmark measures
the very rule ``automl search`` runs."""

from __future__ import annotations

import math

import pytest

from automl.bench.replay import OPTUNA_PRUNERS as REPLAY_OPTUNA
from automl.bench.replay import RAY_NAMES, make_pruner
from automl.decision import Policy
from automl.search import PRUNERS, SearchSettings
from pruners import OPTUNA_PRUNERS, RAY_SCHEDULERS, SignalPruner, optuna_pruner, ray_scheduler

EPOCHS = 12
_SKIP = {"_time_attr"}  # the time unit: epochs in a search, one training_iteration per replayed epoch


def _settings(obj, depth: int = 0):
    """An object's settings as plain data: its attributes, recursively, without callables and
    without what differs by design (the time unit, and the metric that TuneConfig sets)."""
    if isinstance(obj, (int, float, str, bool, type(None))):
        return "nan" if isinstance(obj, float) and math.isnan(obj) else obj
    if isinstance(obj, (list, tuple, set, frozenset)):
        items = [_settings(x, depth + 1) for x in obj]
        return items if isinstance(obj, (list, tuple)) else sorted(map(repr, items))
    if isinstance(obj, dict):
        return {str(k): _settings(v, depth + 1) for k, v in obj.items()}
    if hasattr(obj, "model_dump"):
        return obj.model_dump()
    if depth > 3 or not hasattr(obj, "__dict__"):
        return type(obj).__name__
    return {"type": type(obj).__name__,
            **{k: _settings(v, depth + 1) for k, v in sorted(vars(obj).items()) if k not in _SKIP and not callable(v)}}


@pytest.mark.parametrize("name", PRUNERS)
def test_replay_builds_the_optuna_pruner_the_search_runs(name):
    searched = SearchSettings(space="mlp", dataset="digits", epochs=EPOCHS, pruner=name).make_pruner()
    replayed = make_pruner(name, EPOCHS, SearchSettings(space="mlp", dataset="digits", pruner=name).policy())
    assert name in REPLAY_OPTUNA
    assert _settings(replayed) == _settings(searched)


@pytest.mark.parametrize("replay_name", sorted(RAY_NAMES))
def test_replay_builds_the_ray_scheduler_the_search_runs(replay_name):
    name = RAY_NAMES[replay_name]
    searched = SearchSettings(space="mlp", dataset="digits", epochs=EPOCHS, pruner=name, backend="ray").make_pruner()
    searched.set_search_properties("val_acc", "max")  # what Tune does with TuneConfig(metric=..., mode=...)
    replayed = make_pruner(replay_name, EPOCHS, Policy(), metric="val_acc", mode="max")
    assert type(replayed) is type(searched)
    assert _settings(replayed) == _settings(searched)
    assert (searched._time_attr, replayed._time_attr) == ("epoch", "training_iteration")


def test_the_median_rules_are_the_library_defaults_the_figures_were_measured_with():
    from ray.tune.schedulers import MedianStoppingRule

    rule = ray_scheduler("median", max_t=EPOCHS)
    assert isinstance(rule, MedianStoppingRule) and rule._min_samples_required == 3 and rule._grace_period == 1
    default = MedianStoppingRule()
    assert rule._min_samples_required == default._min_samples_required


def test_every_name_builds_and_the_signal_pruner_gets_the_policy():
    for name in OPTUNA_PRUNERS:
        assert optuna_pruner(name, max_epochs=EPOCHS) is not None
    for name in RAY_SCHEDULERS:
        assert ray_scheduler(name, max_t=EPOCHS, metric="val_loss", mode="min") is not None
    pruner = optuna_pruner("signal", max_epochs=EPOCHS, policy=Policy(rank_cut=0.25))
    assert isinstance(pruner, SignalPruner) and pruner.policy.rank_cut == 0.25


@pytest.mark.parametrize("call, match", [
    (lambda: optuna_pruner("medain", max_epochs=5), "unknown pruner 'medain'; choose one of signal, forecast, none, median"),
    (lambda: ray_scheduler("patient", max_t=5), "unknown pruner 'patient'"),
    (lambda: optuna_pruner("hyperband", max_epochs=0), "max_epochs must be an integer >= 1, but got max_epochs=0"),
    (lambda: ray_scheduler("asha", max_t=True), "max_t must be an integer >= 1"),
    (lambda: make_pruner("ray-hyperband", 5), "unknown pruner 'ray-hyperband'"),
])
def test_bad_names_and_budgets_are_refused_by_name(call, match):
    with pytest.raises(ValueError, match=match):
        call()
