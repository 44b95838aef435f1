"""Contract tests over every pruner and scheduler, and the Optuna pruner in real studies."""

from __future__ import annotations

import math
import pickle
import threading

import optuna
import pytest
from optuna.trial import TrialState
from ray.tune.experiment import Trial
from ray.tune.schedulers import TrialScheduler

from automl import Policy
from pruners import PRUNE_ATTRS, SignalPruner, SignalScheduler

optuna.logging.set_verbosity(optuna.logging.ERROR)

# Finished loss curves (minimize): offsets 0..0.9 on 1/epoch.
FINISHED = [[o / 10 + 1.0 / e for e in range(1, 9)] for o in range(10)]
LOSER = [5.0 + 1.0 / e for e in range(1, 9)]


def tell_finished(study: optuna.Study, curves) -> None:
    """Add finished trials with these curves to ``study`` through ask/tell."""
    for c in curves:
        t = study.ask()
        for i, v in enumerate(c):
            t.report(v, i + 1)
        study.tell(t, c[-1])


def flip(curve, direction):
    return curve if direction == "minimize" else [-v for v in curve]


# -- one driver per kind of adapter: feed finished trials, then a new trial epoch by epoch -------
class OptunaDriver:
    name = "optuna"

    def __init__(self, pruner, direction):
        self.study = optuna.create_study(direction=direction, pruner=pruner)

    def finish(self, curve):
        tell_finished(self.study, [curve])

    def start(self):
        self.trial = self.study.ask()

    def step(self, epoch, value) -> bool:
        self.trial.report(value, epoch)
        return self.trial.should_prune()


class RayDriver:
    name = "ray"

    def __init__(self, scheduler, direction):
        self.s = scheduler
        self.s.set_search_properties("loss", "min" if direction == "minimize" else "max")
        self.n = 0

    def _new(self):
        self.n += 1
        t = Trial("__fake", trial_id=f"t{self.n:03d}", stub=True)
        self.s.on_trial_add(None, t)
        return t

    def finish(self, curve):
        t = self._new()
        for i, v in enumerate(curve):
            assert self.s.on_trial_result(None, t, {"loss": v, "training_iteration": i + 1}) in (
                TrialScheduler.CONTINUE,
                TrialScheduler.STOP,
            )
        self.s.on_trial_complete(None, t, {"loss": curve[-1], "training_iteration": len(curve)})

    def start(self):
        self.trial = self._new()

    def step(self, epoch, value) -> bool:
        decision = self.s.on_trial_result(None, self.trial, {"loss": value, "training_iteration": epoch})
        assert decision in (TrialScheduler.CONTINUE, TrialScheduler.STOP)
        return decision == TrialScheduler.STOP


ADAPTERS = {
    "SignalPruner": lambda d: OptunaDriver(SignalPruner(), d),
    "SignalPruner(fallback=SuccessiveHalving)": lambda d: OptunaDriver(
        SignalPruner(fallback=optuna.pruners.SuccessiveHalvingPruner()), d
    ),
    "SignalPruner(policy)": lambda d: OptunaDriver(SignalPruner(Policy(min_finished=3, band=0.9)), d),
    "SignalScheduler": lambda d: RayDriver(SignalScheduler(), d),
}
DIRECTIONS = ["minimize", "maximize"]


@pytest.fixture(params=list(ADAPTERS), ids=list(ADAPTERS))
def make(request):
    return ADAPTERS[request.param]


@pytest.mark.parametrize("direction", DIRECTIONS)
def test_zero_finished_trials_never_stops(make, direction):
    d = make(direction)
    d.start()
    assert [d.step(e, v) for e, v in enumerate(flip(LOSER, direction), 1)] == [False] * len(LOSER)


@pytest.mark.parametrize("direction", DIRECTIONS)
@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_value_stops_at_once(make, direction, bad):
    d = make(direction)
    d.start()
    assert d.step(1, flip([1.0], direction)[0]) is False
    assert d.step(2, bad) is True


@pytest.mark.parametrize("direction", DIRECTIONS)
def test_loser_stopped_and_winner_kept(make, direction):
    d = make(direction)
    for c in FINISHED:
        d.finish(flip(c, direction))
    d.start()
    stops = []
    for e, v in enumerate(flip(LOSER, direction), 1):
        stops.append(d.step(e, v))
        if stops[-1]:
            break
    assert stops == [False, True], "a clear loser among 10 finished trials is stopped at epoch 2, not before"
    d.start()
    winner = [v - 0.5 for v in FINISHED[0]]
    assert not any(d.step(e, v) for e, v in enumerate(flip(winner, direction), 1))


def test_pickle_round_trip(make):
    d = make("minimize")
    adapter = d.study.pruner if isinstance(d, OptunaDriver) else d.s
    for c in FINISHED[:3]:
        d.finish(c)
    clone = pickle.loads(pickle.dumps(adapter))
    assert type(clone) is type(adapter)
    # The clone decides as the original on the same data.
    d2 = OptunaDriver(clone, "minimize") if isinstance(d, OptunaDriver) else RayDriver(clone, "minimize")
    for c in FINISHED:
        d2.finish(c)
    d2.start()
    assert [d2.step(e, LOSER[e - 1]) for e in (1, 2)] == [False, True]


# -- Optuna specifics --------------------------------------------------------------------------
def test_pruned_trial_carries_reason_and_evidence():
    study = optuna.create_study(pruner=SignalPruner())
    study.set_metric_names(["val_loss"])
    tell_finished(study, FINISHED)
    t = study.ask()
    t.report(float("nan"), 1)
    assert t.should_prune()
    study.tell(t, state=TrialState.PRUNED)
    attrs = study.trials[-1].user_attrs
    assert set(PRUNE_ATTRS) <= set(attrs)
    assert attrs["prune_reason"] == "diverged at epoch 1: val_loss=nan"
    t = study.ask()
    t.report(9.0, 1)
    assert not t.should_prune()
    t.report(9.0, 2)
    assert t.should_prune()
    study.tell(t, state=TrialState.PRUNED)
    attrs = study.trials[-1].user_attrs
    assert attrs["prune_source"] == "rank" and attrs["prune_epoch"] == 2
    # Behind the 10 finished trials, ahead of the one that diverged at epoch 1.
    assert attrs["prune_reason"] == "rank 11 of 12 trials at epoch 2: more than 40% of the trials are ahead (val_loss 9)"
    assert attrs["prune_evidence"]["rank"] == 11
    # Without the rank cut, the curve forecast decides from epoch 5, with its numbers.
    study = optuna.create_study(pruner=SignalPruner(Policy(rank_cut=0.0)))
    study.set_metric_names(["val_loss"])
    tell_finished(study, FINISHED)
    t = study.ask()
    for epoch in range(1, 6):
        t.report(9.0, epoch)
    assert t.should_prune()
    study.tell(t, state=TrialState.PRUNED)
    attrs = study.trials[-1].user_attrs
    assert attrs["prune_source"] == "curve" and attrs["prune_epoch"] == 5
    assert attrs["prune_evidence"]["best_finished"] == pytest.approx(FINISHED[0][-1])
    assert "cannot beat the best finished trial #0" in attrs["prune_reason"]


def test_wrapped_fallback_is_asked_only_while_evidence_is_thin():
    calls = []

    class Recording(optuna.pruners.BasePruner):
        def prune(self, study, trial):
            calls.append(trial.number)
            return trial.number == 0

    study = optuna.create_study(pruner=SignalPruner(fallback=Recording()))
    t = study.ask()
    t.report(1.0, 1)
    assert t.should_prune() is True and calls == [0]  # alone, with nothing finished: thin evidence
    reason = study.get_trials(deepcopy=False)[t.number].user_attrs["prune_reason"]
    assert reason.startswith("Recording (fallback while evidence is thin) pruned at epoch 1")
    study.tell(t, state=TrialState.PRUNED)
    tell_finished(study, FINISHED)  # trials 1..10, through ask/tell (no pruning asked)
    calls.clear()
    t = study.ask()
    for epoch in (1, 2, 3):
        t.report(9.0, epoch)
    assert t.should_prune() is True and calls == []  # ten finished peers: the core decides (rank cut)
    assert study.get_trials(deepcopy=False)[t.number].user_attrs["prune_source"] == "rank"


def test_max_epochs_never_prunes_the_last_epoch():
    study = optuna.create_study(pruner=SignalPruner(max_epochs=8))
    tell_finished(study, FINISHED)
    t = study.ask()
    t.report(9.0, 8)
    assert t.should_prune() is False


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"interval_epochs": 0}, "interval_epochs"),
        ({"max_epochs": 0}, "max_epochs"),
        ({"fallback": "mean"}, "fallback"),
    ],
)
def test_bad_arguments_are_named(kwargs, match):
    with pytest.raises(ValueError, match=match):
        SignalPruner(**kwargs)
    with pytest.raises(TypeError, match="policy"):
        SignalPruner({"band": 0.5})


def _objective(trial: optuna.Trial) -> float:
    x = trial.suggest_float("x", 0.0, 1.0)
    value = math.nan
    for epoch in range(1, 9):
        value = float("nan") if x > 0.95 else x + 1.0 / epoch
        trial.report(value, epoch)
        if trial.should_prune():
            raise optuna.TrialPruned()
    return value


@pytest.mark.parametrize("storage", ["memory", "sqlite"])
def test_real_study_with_threads_prunes_and_keeps_best(tmp_path, storage):
    url = None if storage == "memory" else f"sqlite:///{tmp_path / 's.db'}"
    study = optuna.create_study(
        storage=url, pruner=SignalPruner(), sampler=optuna.samplers.RandomSampler(seed=1)
    )
    study.optimize(_objective, n_trials=40, n_jobs=4)
    states = [t.state for t in study.trials]
    assert states.count(TrialState.PRUNED) >= 10
    assert TrialState.FAIL not in states
    for t in study.trials:
        if t.state == TrialState.PRUNED:
            assert t.user_attrs["prune_reason"]
    # Nothing pruned could have beaten the best completed trial (the objective is x + 1/8 at the end).
    best_x = study.best_trial.params["x"]
    missed = [t.params["x"] for t in study.trials if t.state == TrialState.PRUNED and t.params["x"] < best_x]
    assert missed == []


def test_concurrent_decisions_agree():
    """Many threads asking about the same trial get the same answer (no shared mutable state)."""
    study = optuna.create_study(pruner=SignalPruner())
    tell_finished(study, FINISHED)
    t = study.ask()
    t.report(0.75, 1)
    answers = []

    def ask():
        answers.append(t.should_prune())

    threads = [threading.Thread(target=ask) for _ in range(16)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert len(set(answers)) == 1


# -- regressions found in review ----------------------------------------------------------------
def test_reused_pruner_never_sees_another_study_of_the_same_name(tmp_path):
    pruner = SignalPruner()
    first = optuna.create_study(study_name="s", storage=f"sqlite:///{tmp_path / 'a.db'}", pruner=pruner)
    tell_finished(first, [[v - 5.0 for v in c] for c in FINISHED])  # a much better study
    first_pruned = first.ask()
    for epoch in (1, 2, 3):
        first_pruned.report(0.0, epoch)
    assert first_pruned.should_prune() is True
    second = optuna.create_study(study_name="s", storage=f"sqlite:///{tmp_path / 'b.db'}", pruner=pruner)
    tell_finished(second, FINISHED)
    t = second.ask()
    for epoch in (1, 2, 3):
        t.report(FINISHED[0][epoch - 1], epoch)  # this study's leader
    assert t.should_prune() is False


def test_steps_counted_from_zero_still_protect_the_last_epoch():
    study = optuna.create_study(pruner=SignalPruner(max_epochs=8))
    tell_finished(study, FINISHED)
    t = study.ask()
    for step in range(8):  # 0..7: the common `for step in range(n)` loop
        t.report(9.0 if step < 7 else 9.0, step)
    assert t.should_prune() is False  # step 7 is the last of 8 epochs


def test_divergence_in_records_acts_between_intervals():
    study = optuna.create_study(direction="maximize", pruner=SignalPruner(interval_epochs=5))
    t = study.ask()
    t.report(0.1, 1)
    t.set_user_attr("record_0001", {"epoch": 1, "train_loss": None, "val_acc": 0.1})
    assert t.should_prune() is True


def test_ray_result_without_a_measured_loss_is_not_divergence():
    from automl.records import EpochRecord
    from automl.reporting import tune_metrics

    s = SignalScheduler(metric="val_acc", mode="max")
    t = Trial("__fake", trial_id="only", stub=True)
    s.on_trial_add(None, t)
    result = {**tune_metrics(EpochRecord(epoch=1, val_loss=0.7, val_acc=0.8)), "training_iteration": 1}
    assert "train_loss" not in result
    assert s.on_trial_result(None, t, result) == TrialScheduler.CONTINUE


def test_ray_retry_after_error_runs_again():
    s = SignalScheduler(metric="loss", mode="min")
    t = Trial("__fake", trial_id="r", stub=True)
    s.on_trial_add(None, t)
    s.on_trial_result(None, t, {"loss": 1.0, "training_iteration": 1})
    s.on_trial_error(None, t)
    s.on_trial_add(None, t)  # Ray's retry (max_failures > 0)
    assert s._trials["r"].state == "RUNNING"
