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


# -- read-only opening (automl show): nothing is ever written -----------------------------------
def _digest(path):
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_read_only_refuses_empty_and_foreign_files_and_leaves_them_unchanged(tmp_path):
    import sqlite3

    empty, foreign, garbage = tmp_path / "zero.db", tmp_path / "foreign.db", tmp_path / "garbage.log"
    empty.touch()
    with sqlite3.connect(foreign) as con:
        con.execute("CREATE TABLE invoices (id INTEGER)")
    con.close()
    garbage.write_bytes(b"garbage\x00\xff\n{\"op_code\": 99}\n")
    before = {p: _digest(p) for p in (empty, foreign, garbage)}
    with pytest.raises(StorageError, match="is an empty file, not an Optuna storage"):
        open_storage(f"sqlite:///{empty}", read_only=True)
    with pytest.raises(StorageError, match=r"without Optuna's tables \(alembic_version, studies, trials, version_info missing\)"):
        open_storage(f"sqlite:///{foreign}", read_only=True)
    with pytest.raises(StorageError, match="is not an Optuna journal file"):
        open_storage(f"journal://{garbage}", read_only=True)
    text = tmp_path / "notes.db"
    text.write_text("not a database at all, just text that is long enough to have a header" * 3)
    with pytest.raises(StorageError, match="is not a SQLite database"):
        open_storage(f"sqlite:///{text}", read_only=True)
    assert {p: _digest(p) for p in (empty, foreign, garbage)} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["foreign.db", "garbage.log", "notes.db", "zero.db"]


def test_the_read_only_reader_reads_what_the_storage_holds_and_cannot_write(tmp_path):
    db = tmp_path / "s.db"
    study = optuna.create_study(study_name="s", storage=f"sqlite:///{db}", direction="maximize")
    for i in range(3):
        study.enqueue_trial({"x": i})
        study.optimize(lambda t: t.suggest_float("x", 0, 5) ** 2, n_trials=1)
    before = _digest(db)
    reader = open_storage(f"sqlite:///{db}", read_only=True)
    again = optuna.load_study(study_name="s", storage=reader)
    assert [t.value for t in again.trials] == [t.value for t in study.trials] and again.best_trial.number == 2
    with pytest.raises(optuna.exceptions.StorageInternalError):  # SQLite: attempt to write a readonly database
        again.enqueue_trial({"x": 1.0})
    assert _digest(db) == before


def test_the_reader_sets_what_rdbstorage_sets():
    """The read-only reader builds an RDBStorage without its schema-version manager; it must set the
    same attributes the installed Optuna's RDBStorage.__init__ sets, or a new Optuna is not checked."""
    from optuna.storages import RDBStorage

    reader = open_storage.__globals__["_reader"]("sqlite:///file::memory:?uri=true")
    assert set(vars(reader)) == set(vars(RDBStorage("sqlite:///:memory:")))


def test_a_missing_postgres_driver_names_the_extra(monkeypatch):
    import builtins

    real = builtins.__import__

    def no_psycopg(name, globals=None, locals=None, fromlist=(), level=0):
        if level == 0 and name.split(".")[0] == "psycopg":
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return real(name, globals, locals, fromlist, level)

    monkeypatch.setattr(builtins, "__import__", no_psycopg)
    with pytest.raises(StorageError, match=r"driver 'psycopg' is not installed \(pip install \"automl-signals\[postgres\]\""):
        open_storage("postgresql+psycopg://user@127.0.0.1:1/db")


def test_a_new_database_another_process_is_creating_at_the_same_moment_opens(tmp_path, monkeypatch):
    """Two processes opening a new SQLite file at once both write its schema version; the second
    failed on the duplicate row (seen in a test that watched a starting search). It tries again and
    finds the schema; any other error is not retried."""
    import optuna.storages
    import sqlalchemy.exc

    real = optuna.storages.RDBStorage
    calls = []

    class Racing(real):  # a subclass, so Optuna's isinstance checks still hold
        def __init__(self, url, **kw):
            calls.append(url)
            if len(calls) == 1:
                raise sqlalchemy.exc.IntegrityError("INSERT INTO alembic_version (version_num) VALUES (?)", {},
                                                    Exception("UNIQUE constraint failed: alembic_version.version_num"))
            super().__init__(url, **kw)

    monkeypatch.setattr(optuna.storages, "RDBStorage", Racing)
    url = f"sqlite:///{tmp_path / 'new.db'}"
    storage = open_storage(url)
    assert len(calls) == 2 and optuna.create_study(storage=storage, study_name="s").study_name == "s"

    class Broken(real):
        def __init__(self, url, **kw):
            calls.append(url)
            raise sqlalchemy.exc.OperationalError("SELECT 1", {}, Exception("disk I/O error"))

    monkeypatch.setattr(optuna.storages, "RDBStorage", Broken)
    calls.clear()
    with pytest.raises(StorageError, match="disk I/O error"):
        open_storage(url)
    assert len(calls) == 1
