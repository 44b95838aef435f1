"""SignalPruner across processes on one JournalStorage, and the storage opener's errors."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import optuna
import pytest
from optuna.trial import TrialState

from automl.storage import StorageError, open_storage

WORKER = textwrap.dedent(
    """
    import math, os, sys, time
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend
    from pruners import SignalPruner

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    storage = JournalStorage(JournalFileBackend(sys.argv[1]))
    study = optuna.load_study(study_name="shared", storage=storage, pruner=SignalPruner(),
                              sampler=optuna.samplers.RandomSampler(seed=int(sys.argv[2])))

    def objective(trial):
        trial.set_user_attr("pid", os.getpid())
        x = trial.suggest_float("x", 0.0, 1.0)
        for epoch in range(1, 9):
            trial.report(x + 1.0 / epoch, epoch)
            time.sleep(0.002)
            if trial.should_prune():
                raise optuna.TrialPruned()
        return x + 1.0 / 8

    study.optimize(objective, n_trials=int(sys.argv[3]))
    """
)


def test_two_processes_on_one_journal_storage_still_prune(tmp_path):
    path = str(tmp_path / "journal.log")
    optuna.create_study(study_name="shared", storage=open_storage(f"journal://{path}"))
    procs = [
        subprocess.Popen([sys.executable, "-c", WORKER, path, str(seed), "20"], stderr=subprocess.PIPE, text=True)
        for seed in (1, 2)
    ]
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
    study = optuna.load_study(study_name="shared", storage=open_storage(f"journal://{path}"))
    trials = study.trials
    assert len(trials) == 40
    assert len({t.user_attrs["pid"] for t in trials}) == 2
    pruned = [t for t in trials if t.state == TrialState.PRUNED]
    assert len(pruned) >= 10
    assert all(t.user_attrs.get("prune_reason") for t in pruned)
    assert not any(t.state == TrialState.RUNNING for t in trials)
    best = study.best_value
    assert all(t.params["x"] + 1.0 / 8 > best for t in pruned), "a pruned trial would have won"


@pytest.mark.parametrize(
    "url, match",
    [
        ("", "must be a URL"),
        ("nonsense", "expected sqlite:///FILE"),
        ("sqlite:////no/such/folder/x.db", "does not exist"),
        ("journal:///no/such/folder/x.log", "does not exist"),
        ("postgresql+nodriver://u@127.0.0.1:1/db", "cannot open storage"),
    ],
)
def test_bad_storage_urls_are_named(url, match):
    with pytest.raises(StorageError, match=match):
        open_storage(url)


def test_must_exist_does_not_create_files(tmp_path):
    db = tmp_path / "absent.db"
    with pytest.raises(StorageError, match="does not exist"):
        open_storage(f"sqlite:///{db}", must_exist=True)
    assert not db.exists()


def test_kinds(tmp_path):
    assert type(open_storage("memory")).__name__ == "InMemoryStorage"
    assert type(open_storage(f"sqlite:///{tmp_path / 'a.db'}")).__name__ == "RDBStorage"
    assert type(open_storage(str(tmp_path / "a.log"))).__name__ == "JournalStorage"


# -- the one module that calls Optuna's private storage API -------------------------------------
def test_the_private_storage_calls_were_checked_on_the_installed_optuna():
    """``automl.storage`` reaches into ``study._storage`` and ``FrozenTrial._trial_id``: a new Optuna
    release must be checked (these tests) and added to ``OPTUNA_CHECKED`` before it is admitted."""
    from automl.storage import OPTUNA_CHECKED

    installed = tuple(int(x) for x in optuna.__version__.split(".")[:2])
    oldest, newest = (tuple(int(x) for x in v.split(".")) for v in OPTUNA_CHECKED)
    assert oldest <= installed <= newest, f"optuna {optuna.__version__} is outside the checked {OPTUNA_CHECKED}"


@pytest.mark.parametrize("kind", ["sqlite", "journal"])
def test_set_trial_attrs_and_fail_trial_through_a_frozen_trial(tmp_path, kind):
    from automl.storage import fail_trial, set_trial_attrs, study_storage

    url = f"sqlite:///{tmp_path / 'db.sqlite'}" if kind == "sqlite" else f"journal://{tmp_path / 'j.log'}"
    study = optuna.create_study(study_name="s", storage=open_storage(url))
    running, done = study.ask(), study.ask()
    study.tell(done, 1.0)
    frozen = {t.number: t for t in study.get_trials(deepcopy=False)}
    set_trial_attrs(study, frozen[running.number], {"prune_reason": "why", "prune_epoch": 3})
    assert fail_trial(study, frozen[running.number], "its worker died", kind="system")
    assert not fail_trial(study, frozen[done.number], "too late")  # finished: never changed
    again = optuna.load_study(study_name="s", storage=open_storage(url))
    by_number = {t.number: t for t in again.get_trials()}
    assert study_storage(again) is not None
    r, d = by_number[running.number], by_number[done.number]
    assert (r.state, r.user_attrs["prune_reason"], r.user_attrs["prune_epoch"], r.system_attrs["fail_reason"]) == (
        TrialState.FAIL, "why", 3, "its worker died")
    assert (d.state, d.value, "fail_reason" in d.user_attrs) == (TrialState.COMPLETE, 1.0, False)
