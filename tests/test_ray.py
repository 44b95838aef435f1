"""SignalScheduler inside a real Ray Tune run (local Ray, two CPUs, a few seconds)."""

from __future__ import annotations

import math
import re

import pytest

import ray  # noqa: E402
from ray import tune  # noqa: E402

from pruners import SignalScheduler  # noqa: E402


@pytest.fixture(scope="module")
def local_ray():
    # Ray workers cannot import this test module by name: ship its functions by value.
    import sys

    from ray import cloudpickle

    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield
    ray.shutdown()


def curve_trainable(config):
    for epoch in range(1, 9):
        loss = float("nan") if config["x"] > 0.9 and epoch >= 2 else config["x"] + 1.0 / epoch
        tune.report({"loss": loss, "epoch": epoch})


@pytest.mark.slow
def test_real_tuner_stops_losers_with_reasons(local_ray, tmp_path):
    # 0.95 diverges at epoch 2; it runs among the first, before any trial has finished.
    xs = [0.0, 0.95, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.85, 0.75]
    scheduler = SignalScheduler(time_attr="epoch", max_t=8)
    tuner = tune.Tuner(
        curve_trainable,
        param_space={"x": tune.grid_search(xs)},
        tune_config=tune.TuneConfig(metric="loss", mode="min", scheduler=scheduler, reuse_actors=True,
                                    max_concurrent_trials=2),
        run_config=tune.RunConfig(storage_path=str(tmp_path), verbose=0),
    )
    grid = tuner.fit()
    assert scheduler._metric == "loss" and scheduler._mode == "min"  # taken from TuneConfig
    results = {r.config["x"]: r.metrics for r in grid}
    stopped = {x: m for x, m in results.items() if m.get("prune_reason")}
    assert results[0.95]["prune_reason"].startswith("diverged at epoch 2")
    assert len(stopped) >= 4, {x: m.get("epoch") for x, m in results.items()}
    for x, m in stopped.items():
        assert m["epoch"] < 8 and m["prune_source"] in ("rank", "curve", "fallback", "divergence")
    assert results[0.0]["epoch"] == 8 and "prune_reason" not in results[0.0]
    best = min(m["loss"] for m in results.values() if not math.isnan(m["loss"]))
    assert best == pytest.approx(0.0 + 1.0 / 8)
    assert set(scheduler.verdicts) and all(v.action == "prune" for v in scheduler.verdicts.values())


def test_scheduler_needs_metric_and_mode():
    from ray.tune.experiment import Trial

    s = SignalScheduler()
    with pytest.raises(ValueError, match="metric and a mode"):
        s.on_trial_add(None, Trial("__fake", trial_id="a", stub=True))
    with pytest.raises(ValueError, match="mode"):
        SignalScheduler(mode="up")
    with pytest.raises(ValueError, match="max_t"):
        SignalScheduler(max_t=0)
    s = SignalScheduler(metric="loss", mode="min")
    assert s.set_search_properties("acc", "max") is False  # set on construction: kept, as Ray's schedulers do


def raising_trainable(config):
    for epoch in range(1, 4):
        if config["x"] == 0.5 and epoch == 2:
            raise ValueError(f"bad batch at epoch {epoch} (x={config['x']})")
        tune.report({"loss": config["x"] + 1.0 / epoch, "epoch": epoch})


class _OneFloat:
    """A search space of one float ``x``, as ``OptunaRecorder`` reads spaces."""

    names = ("x",)

    def distributions(self):
        import optuna

        return {"x": optuna.distributions.FloatDistribution(0.0, 1.0)}


@pytest.mark.slow
def test_a_trainable_that_raises_is_recorded_fail_with_its_error(local_ray, tmp_path):
    import optuna

    from automl.search import leaderboard
    from automl.search.ray_backend import OptunaRecorder

    study = optuna.create_study(direction="minimize")
    study.set_user_attr("epochs", 3)
    tuner = tune.Tuner(
        raising_trainable,
        param_space={"x": tune.grid_search([0.1, 0.5, 0.9])},
        tune_config=tune.TuneConfig(metric="loss", mode="min", max_concurrent_trials=2),
        run_config=tune.RunConfig(storage_path=str(tmp_path), verbose=0,
                                  callbacks=[OptunaRecorder(study, _OneFloat(), "loss", "FIFOScheduler")]),
    )
    tuner.fit()
    states = sorted((t.params["x"], t.state.name) for t in study.trials)
    assert states == [(0.1, "COMPLETE"), (0.5, "FAIL"), (0.9, "COMPLETE")]  # the others went on
    row = next(r for r in leaderboard(study) if r["state"] == "FAIL")
    assert row["reason"] == "ValueError: bad batch at epoch 2 (x=0.5)"



def test_a_trial_stopped_as_converged_is_recorded_complete_with_its_reason():
    from types import SimpleNamespace

    import optuna

    from automl.search import leaderboard
    from automl.search.ray_backend import OptunaRecorder

    study = optuna.create_study(direction="minimize")
    study.set_user_attr("epochs", 5)
    rec = OptunaRecorder(study, _OneFloat(), "loss", "SignalScheduler")
    last = {"loss": 0.4, "epoch": 2, "stop_reason": "converged: layer dynamics settled at step 120",
            "stop_epoch": 2, "stop_source": "dynamics"}  # as SignalScheduler writes a converged trial
    trial = SimpleNamespace(trial_id="t0", config={"x": 0.3}, last_result=last)
    rec.on_trial_result(0, [], trial, {"loss": 0.5, "epoch": 1})
    rec.on_trial_result(1, [], trial, last)
    rec.on_trial_complete(2, [], trial)
    (t,) = study.trials
    assert (t.state.name, t.value, t.user_attrs["stop_epoch"], t.user_attrs["stop_source"]) == ("COMPLETE", 0.4, 2, "dynamics")
    assert leaderboard(study)[0]["reason"] == "converged: layer dynamics settled at step 120"


def flaky_trainable(config):
    import os

    for epoch in range(1, 5):
        if config["x"] == 0.9 and epoch == 2 and os.path.exists(config["flag"]):
            raise MemoryError("out of memory (for the test)")
        tune.report({"loss": config["x"] + 1.0 / epoch, "epoch": epoch})


@pytest.mark.slow
def test_a_restored_run_prunes_on_the_trials_finished_before_it(local_ray, tmp_path):
    from automl import Policy

    flag = tmp_path / "fail"
    flag.touch()
    # Three trials finish; 0.9 errors (out of memory, say). The user restores the run to retry it.
    tuner = tune.Tuner(
        flaky_trainable,
        param_space={"x": tune.grid_search([0.1, 0.2, 0.3, 0.9]), "flag": str(flag)},
        tune_config=tune.TuneConfig(metric="loss", mode="min", max_concurrent_trials=1,
                                    scheduler=SignalScheduler(Policy(min_finished=1, rank_cut=0.5), time_attr="epoch", max_t=4)),
        run_config=tune.RunConfig(name="exp", storage_path=str(tmp_path), verbose=0),
    )
    first = {r.config["x"]: r for r in tuner.fit()}
    assert first[0.9].error is not None and first[0.1].metrics["epoch"] == 4
    flag.unlink()
    # The scheduler comes back as it was pickled when the run started: it must read the finished
    # trials back. Forgetting them, it would let the retried 0.9 run to the end.
    restored = tune.Tuner.restore(str(tmp_path / "exp"), flaky_trainable, restart_errored=True)
    again = {r.config["x"]: r.metrics for r in restored.fit()}
    assert again[0.9]["epoch"] == 2 and again[0.9]["prune_source"] == "rank", again[0.9]
    assert again[0.9]["prune_reason"].startswith("rank 4 of 4 trials at epoch 2"), again[0.9]


def test_a_restored_trial_without_result_files_counts_by_its_last_result():
    from types import SimpleNamespace

    sch = SignalScheduler(metric="loss", mode="min", time_attr="epoch")
    done = SimpleNamespace(trial_id="a", status="TERMINATED", storage=None, last_result={"loss": 0.2, "epoch": 4})
    pruned = SimpleNamespace(trial_id="b", status="TERMINATED", storage=None,
                             last_result={"loss": 1.5, "epoch": 2, "prune_reason": "rank 9 of 9", "prune_action": "prune"})
    failed = SimpleNamespace(trial_id="c", status="ERROR", storage=None, last_result={"loss": 0.9, "epoch": 1})
    never = SimpleNamespace(trial_id="d", status="TERMINATED", storage=None, last_result={})
    for t in (done, pruned, failed, never):
        sch.on_trial_add(None, t)
    h = sch._trials
    assert (h["a"].state, h["a"].final, dict(h["a"].values)) == ("COMPLETE", 0.2, {4: 0.2})
    assert (h["b"].state, h["b"].final) == ("PRUNED", None)
    assert (h["c"].state, h["c"].final) == ("FAIL", None)
    assert (h["d"].state, dict(h["d"].values)) == ("RUNNING", {})  # nothing to read: as a new trial


def test_bad_results_are_named_and_an_overflowing_metric_reads_as_diverged():
    """Ray passes results through as reported: a metric that is not a number, or an epoch that is
    not a whole number, is refused naming the key, the trial and the value; an integer past float's
    range is a diverged trial. Steps counted from 0 are read as one epoch on (no crash)."""
    from ray.tune.experiment import Trial

    from automl.decision import Policy

    s = SignalScheduler(Policy(rule="forecast"), metric="val_loss", mode="min", time_attr="epoch", max_t=10)
    for i in range(3):
        tr = Trial("x", trial_id=f"t{i}", stub=True)
        s.on_trial_add(None, tr)
        for e in range(10):
            s.on_trial_result(None, tr, {"val_loss": 1.0 + i + 1 / (e + 1), "epoch": e})
        s.on_trial_complete(None, tr, {"val_loss": 1.1 + i, "epoch": 9})
    tr = Trial("x", trial_id="t9", stub=True)
    s.on_trial_add(None, tr)
    assert s.on_trial_result(None, tr, {"val_loss": 1.5, "epoch": 0}) in ("CONTINUE", "STOP")
    for bad, says in (({"val_loss": "abc", "epoch": 1}, "trial t9: result['val_loss'] = 'abc' is not a number"),
                      ({"val_loss": [1.0], "epoch": 1}, "result['val_loss'] = [1.0] is not a number"),
                      ({"val_loss": 1.0, "epoch": None}, "result['epoch'] = None is not a whole epoch number"),
                      ({"val_loss": 1.0, "epoch": 2.5}, "result['epoch'] = 2.5 is not a whole epoch number")):
        with pytest.raises(ValueError, match=re.escape(says)):
            s.on_trial_result(None, tr, bad)
    assert s.on_trial_result(None, tr, {"val_loss": 10**400, "epoch": 1}) == "STOP"


def test_zero_dimensional_arrays_and_tensors_are_numbers():
    import numpy as np
    import torch
    from ray.tune.experiment import Trial

    s = SignalScheduler(metric="val_loss", mode="min", time_attr="epoch", max_t=10)
    tr = Trial("x", trial_id="a0", stub=True)
    s.on_trial_add(None, tr)
    assert s.on_trial_result(None, tr, {"val_loss": np.array(1.5), "epoch": np.int64(1)}) == "CONTINUE"
    assert s.on_trial_result(None, tr, {"val_loss": torch.tensor(1.4), "epoch": torch.tensor(2)}) == "CONTINUE"
