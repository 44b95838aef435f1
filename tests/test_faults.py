"""Faults in a search: a trainable that raises, a worker killed with SIGKILL mid-trial (found by
heartbeats, or by the process that started it), and pruner decisions that do not depend on which
worker asks. Each test counts the trials before and after."""

from __future__ import annotations

import multiprocessing
import os
import signal
import subprocess
import sys
import time

import optuna
import pytest
from optuna.trial import TrialState

from automl.search import SearchSettings, leaderboard, run_search
from pruners import optuna_pruner
from automl.storage import open_storage

CLI = [sys.executable, "-c", "from automl.cli import cli; cli()"]


def _counts(study) -> dict[str, int]:
    out: dict[str, int] = {}
    for t in study.get_trials(deepcopy=False):
        out[t.state.name] = out.get(t.state.name, 0) + 1
    return out


def _wait_mid_trial(url: str, study_name: str, proc: subprocess.Popen, *, finished: int = 1, timeout: float = 180):
    """Wait until ``finished`` trials are done and another is RUNNING with an epoch reported."""
    storage = open_storage(url)
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"the search ended before the kill: {proc.communicate()}")
        try:
            study = optuna.load_study(study_name=study_name, storage=storage)
        except KeyError:
            time.sleep(0.3)
            continue
        trials = study.get_trials(deepcopy=False)
        running = [t for t in trials if t.state == TrialState.RUNNING and t.intermediate_values and "worker" in t.user_attrs]
        if running and sum(t.state.is_finished() for t in trials) >= finished:
            return study, running[0]
        time.sleep(0.2)
    raise AssertionError("no trial was mid-way in time")


def test_trainable_that_raises_is_fail_with_its_error_and_the_search_goes_on(monkeypatch):
    import automl.training.trainer

    real, calls = automl.training.trainer.train, []

    def flaky(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise ValueError("CUDA out of memory (simulated in trial 1)")
        return real(*args, **kwargs)

    monkeypatch.setattr(automl.training.trainer, "train", flaky)
    s = SearchSettings(space="mlp", dataset="digits", trials=4, epochs=2, pruner="none", storage="memory", heartbeat=0)
    study = run_search(s)
    assert _counts(study) == {"COMPLETE": 3, "FAIL": 1}
    failed = next(r for r in leaderboard(study) if r["state"] == "FAIL")
    assert failed["number"] == 1
    assert failed["reason"] == "ValueError: CUDA out of memory (simulated in trial 1)"


@pytest.mark.slow
def test_sigkilled_worker_trial_fails_by_heartbeat_and_the_study_goes_on(tmp_path):
    """Two independent `automl search` processes on one SQLite study, as on two machines: the
    first is SIGKILLed mid-trial; the second, started later, finds its trial's heartbeat stale and
    fails it before its own trials run."""
    url, name = f"sqlite:///{tmp_path / 'hb.db'}", "hb"
    first = subprocess.Popen([*CLI, "search", "--space", "mlp", "--dataset", "digits", "--trials", "20", "--epochs", "60",
                              "--pruner", "none", "--storage", url, "--study", name, "--heartbeat", "1", "--json"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        study, victim = _wait_mid_trial(url, name, first)
        os.kill(first.pid, signal.SIGKILL)
        first.wait(30)
    finally:
        if first.poll() is None:
            first.kill()
    before = _counts(study)
    assert before.get("RUNNING") == 1 and before.get("COMPLETE", 0) >= 1, before
    time.sleep(3.0)  # > the grace period of two heartbeats
    second = run_search(SearchSettings(space="mlp", dataset="digits", trials=2, epochs=2, pruner="none", storage=url,
                                       study=name, seed=1, heartbeat=1))
    after = _counts(second)
    assert after == {"COMPLETE": before["COMPLETE"] + 2, "FAIL": 1}, (before, after)
    row = next(r for r in leaderboard(second) if r["number"] == victim.number)
    assert row["state"] == "FAIL" and victim.user_attrs["worker"] in row["reason"] and "heartbeat" in row["reason"]


@pytest.mark.slow
def test_killed_worker_of_workers_n_has_its_trial_failed_by_the_parent(tmp_path):
    """`automl search --workers 2` on a journal file (no heartbeats there): one worker is
    SIGKILLed mid-trial; the parent fails that trial with the reason, the other worker finishes
    its share, and the command exits 1 after printing the leaderboard."""
    url, name = f"journal:///{tmp_path / 'w.log'}", "w2"
    proc = subprocess.Popen([*CLI, "search", "--space", "mlp", "--dataset", "digits", "--trials", "6", "--epochs", "40",
                             "--pruner", "none", "--storage", url, "--study", name, "--workers", "2", "--json"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _, victim = _wait_mid_trial(url, name, proc, finished=0)
        pid = int(victim.user_attrs["worker"].rsplit(":", 1)[1])
        os.kill(pid, signal.SIGKILL)
        out, err = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 1, (out, err)
    assert "killed by SIGKILL" in err and '"trials":' in out
    study = optuna.load_study(study_name=name, storage=open_storage(url))
    counts = _counts(study)
    assert counts.get("FAIL") == 1 and "RUNNING" not in counts, counts
    # the survivor ran all 3 of its trials; the victim's finished ones (if any) are kept
    assert counts.get("COMPLETE", 0) >= 3, counts
    row = next(r for r in leaderboard(study) if r["number"] == victim.number)
    assert row["reason"] == f"its worker process {victim.user_attrs['worker']} ended mid-trial (killed by SIGKILL)"


def _verdict_in_another_process(url: str, study_name: str, number: int, epochs: int, queue) -> None:
    study = optuna.load_study(study_name=study_name, storage=open_storage(url))
    trial = next(t for t in study.get_trials(deepcopy=False) if t.number == number)
    queue.put(optuna_pruner("signal", max_epochs=epochs).verdict(study, trial).model_dump_json())


@pytest.mark.slow
def test_pruner_decides_the_same_whichever_worker_asks(tmp_path):
    """The signal pruner keeps no state of its own: its verdict on a trial is a function of the
    study in the storage, the same in this process and in two fresh worker processes, and the same
    from a pruner that has already judged other trials."""
    url, name, epochs = f"journal:///{tmp_path / 'p.log'}", "same", 12
    study = run_search(SearchSettings(space="mlp", dataset="digits", trials=6, epochs=epochs, pruner="none", storage=url,
                                      study=name, heartbeat=0))
    done = sorted(study.trials, key=lambda t: t.value)
    # a new trial that follows the worst finished curve for 5 epochs, then asks
    running = study.ask()
    for step, value in sorted(done[0].intermediate_values.items())[:5]:
        running.report(value, step)
    frozen = next(t for t in study.get_trials(deepcopy=False) if t.number == running.number)
    used = optuna_pruner("signal", max_epochs=epochs)
    for t in done:  # a pruner that has judged other trials first
        used.verdict(study, t)
    here = used.verdict(study, frozen).model_dump_json()
    assert optuna_pruner("signal", max_epochs=epochs).verdict(study, frozen).model_dump_json() == here
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    procs = [ctx.Process(target=_verdict_in_another_process, args=(url, name, running.number, epochs, queue)) for _ in range(2)]
    for p in procs:
        p.start()
    answers = [queue.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(30)
    assert answers == [here, here]
    assert '"action":"prune"' in here  # the worst curve is stopped, so the comparison is not trivially "continue"
