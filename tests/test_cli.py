"""The `automl` command as a user runs it (a real process, real training on digits)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from search_spaces import SPACES

EXE = Path(sys.executable).parent / "automl"


def automl(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    cmd = [str(EXE)] if EXE.exists() else [sys.executable, "-m", "automl.cli"]
    env = {**os.environ, "COLUMNS": "200"}
    return subprocess.run([*cmd, *args], cwd=cwd, capture_output=True, text=True, timeout=600, env=env)


@pytest.mark.slow
@pytest.mark.parametrize("pruner, n_jobs", [("signal", "1"), ("median", "2")])
def test_search_then_show(tmp_path, pruner, n_jobs):
    db = f"sqlite:///{tmp_path / 'cli.db'}"
    out = automl("search", "--space", "mlp", "--dataset", "digits", "--trials", "8", "--epochs", "3",
                 "--pruner", pruner, "--n-jobs", n_jobs, "--storage", db, "--seed", "0", "--json", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    summary, rows = result["summary"], result["leaderboard"]
    assert summary["trials"] == 8 and len(rows) == 8
    assert sum(summary["states"].values()) == 8
    assert summary["epochs_used"] == sum(r["epochs"] for r in rows) <= 8 * 3
    assert summary["best_value"] is not None and 0.0 < summary["best_value"] <= 1.0
    assert {"number", "state", "params", "value", "epochs", "reason"} <= set(rows[0])
    assert rows[0]["state"] == "COMPLETE" and rows[0]["value"] == summary["best_value"]
    for r in rows:
        if r["state"] == "PRUNED":
            assert r["reason"] and r["epochs"] < 3
    name = summary["study"]
    shown = automl("show", name, "--storage", db, "--json", cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["leaderboard"] == rows
    table = automl("show", name, "--storage", db, cwd=tmp_path)
    assert "val_acc" in table.stdout and "8 trials" in table.stdout


@pytest.mark.slow
def test_search_on_ray_backend_lands_in_optuna_storage(tmp_path):
    db = f"sqlite:///{tmp_path / 'ray.db'}"
    # With the failure classifier and the convergence stop on: the trainable traces activations.
    out = automl("search", "--space", "mlp", "--dataset", "digits", "--trials", "4", "--epochs", "2",
                 "--backend", "ray", "--pruner", "signal", "--n-jobs", "2", "--storage", db, "--json",
                 "--failure", "--converge", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["summary"]["trials"] == 4
    assert all(r["epochs"] >= 1 for r in result["leaderboard"])
    assert result["summary"]["best_value"] is not None


@pytest.mark.parametrize(
    "args, needle",
    [
        (["search", "--space", "transformer", "--dataset", "digits"], "'transformer' is not one of 'mlp', 'cnn', 'resnet'"),
        (["search", "--space", "mlp", "--dataset", "cifar"], "'cifar' is not one of 'digits', 'mnist5k', 'mnist1d'"),
        (["search", "--space", "mlp", "--dataset", "digits", "--trials", "many"], "'many' is not a valid integer"),
        (["search", "--space", "mlp", "--dataset", "digits", "--epochs", "0"], "--epochs"),
        (["search", "--space", "mlp", "--dataset", "digits", "--pruner", "magic"], "'magic' is not one of 'signal'"),
        (["search", "--space", "mlp", "--dataset", "digits", "--storage", "postgresql+nodriver://u@127.0.0.1:9/db"],
         "cannot open storage"),
        (["search", "--space", "resnet", "--dataset", "mnist1d", "--storage", "memory"], "input_shape=(1, 40)"),
        (["show", "absent", "--storage", "sqlite:///nowhere.db"], "does not exist"),
        (["search", "--space", "mlp", "--dataset", "digits", "--pruner", "median", "--converge", "--failure"],
         "--failure and --converge: options of the signal pruner, but --pruner is 'median'"),
    ],
)
def test_usage_errors_are_one_line_with_exit_code_2(tmp_path, args, needle):
    out = automl(*args, cwd=tmp_path)
    assert out.returncode == 2, (out.stdout, out.stderr)
    lines = [l for l in out.stderr.splitlines() if l.strip() and not l.lstrip().startswith(("resnet-", "mlp-"))]
    assert len(lines) == 1, out.stderr
    assert lines[0].startswith("error: ") and needle in lines[0]


def test_cli_space_choices_match_declared_spaces():
    from automl.cli import SPACES as CLI_SPACES
    from automl.service import SPACES as SERVICE_SPACES

    assert tuple(SPACES) == CLI_SPACES == SERVICE_SPACES  # the shells list them without importing torch


def test_show_refuses_a_multi_objective_study(tmp_path):
    import optuna

    db = f"sqlite:///{tmp_path / 'mo.db'}"
    optuna.create_study(study_name="two", storage=db, directions=["minimize", "maximize"])
    out = automl("show", "two", "--storage", db, cwd=tmp_path)
    assert out.returncode == 2 and "2 objectives" in out.stderr


@pytest.mark.slow
def test_resuming_a_study_draws_new_configurations(tmp_path):
    from automl.search import SearchSettings, run_search

    settings = SearchSettings(space="mlp", dataset="digits", trials=2, epochs=1, storage=f"sqlite:///{tmp_path / 'r.db'}")
    run_search(settings)
    study = run_search(settings)
    params = [tuple(sorted(t.params.items())) for t in study.trials]
    assert len(params) == 4 and len(set(params)) == 4


def test_signal_options_need_the_signal_pruner():
    from automl.search import SearchSettings

    with pytest.raises(ValueError, match="failure is an option of the signal pruner, but pruner is 'asha'"):
        SearchSettings(space="mlp", dataset="digits", pruner="asha", failure=True)
    p = SearchSettings(space="mlp", dataset="digits", failure=True, converge=True).policy()
    assert (p.failure, p.convergence) == ("model", "dynamics")
    assert SearchSettings(space="mlp", dataset="digits").policy() == __import__("automl").Policy()


@pytest.mark.slow
@pytest.mark.parametrize("converge", [True, False])
def test_converge_traces_activations_and_a_settled_trial_finishes_complete(monkeypatch, converge):
    import automl.training.probe
    from automl import Verdict
    from automl.search import SearchSettings, leaderboard, run_search

    calls = []

    def settles_at_epoch_2(records, trial=None, *, metric, policy):
        calls.append((len(records), "dynamics" in records[-1].compact(), policy.convergence, metric))
        if len(records) == 2 and trial.number == 0:
            trial.set_user_attr("stop_reason", "layer dynamics settled (test)")
            return Verdict(action="converged", reason="layer dynamics settled (test)", source="dynamics")
        return None

    monkeypatch.setattr(automl.training.probe, "converged_stop", settles_at_epoch_2)
    s = SearchSettings(space="mlp", dataset="digits", trials=2, epochs=4, storage="memory", heartbeat=0,
                       failure=True, converge=converge)
    study = run_search(s)
    assert study.pruner.policy.failure == "model"
    rows = {r["number"]: r for r in leaderboard(study)}
    if not converge:
        assert calls == [] and rows[0]["epochs"] == 4
        return
    # Asked after every epoch but the last, with the activation trace in the record.
    assert calls and all(has_dyn and conv == "dynamics" and m == "val_acc" for _, has_dyn, conv, m in calls)
    assert max(n for n, *_ in calls) < 4
    assert rows[0]["state"] == "COMPLETE" and rows[0]["epochs"] == 2
    assert rows[0]["reason"] == "layer dynamics settled (test)"
    assert rows[0]["value"] == study.trials[0].intermediate_values[2]  # the value it reached


LIGHT = textwrap.dedent(
    """
    import json, sys
    from click.testing import CliRunner
    from automl.cli import cli
    args = json.loads(sys.argv[1])
    res = CliRunner().invoke(cli, args)
    assert res.exit_code in (0, 2), res.output
    heavy = ("torch", "xgboost", "sklearn", "scipy.stats", "scipy.signal", "ray")
    print(json.dumps(sorted(m for m in heavy if m in sys.modules)))
    """
)


@pytest.mark.parametrize("args", [["--help"], ["search", "--help"], ["show", "s", "--storage", "sqlite:///{db}"],
                                  ["diagnose", "{curves}"], ["recommend", "--arch", "mlp:784-128-64-10"]])
def test_the_quick_commands_load_no_torch_scipy_stats_or_xgboost(tmp_path, args):
    """What keeps `automl --help`, `show`, `diagnose` and `recommend` quick (timed by
    benchmarks/cli_startup.py, not here): none of them imports torch, XGBoost, scikit-learn,
    scipy.stats/scipy.signal or Ray."""
    import optuna

    optuna.create_study(study_name="s", storage=f"sqlite:///{tmp_path / 'a.db'}")
    curves = tmp_path / "c.json"
    curves.write_text(json.dumps({"train_loss": [1.0, 0.5, 0.4], "val_loss": [1.0, 0.6, 0.5],
                                  "train_acc": [0.5, 0.7, 0.8], "val_acc": [0.5, 0.6, 0.7]}))
    args = [a.format(db=tmp_path / "a.db", curves=curves) for a in args]
    out = subprocess.run([sys.executable, "-c", LIGHT, json.dumps(args)], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []


def test_show_never_writes_to_a_file_that_is_not_a_study(tmp_path):
    (tmp_path / "zero.db").touch()
    out = automl("show", "x", "--storage", f"sqlite:///{tmp_path / 'zero.db'}", cwd=tmp_path)
    assert out.returncode == 2 and "is an empty file, not an Optuna storage" in out.stderr
    assert (tmp_path / "zero.db").stat().st_size == 0
    (tmp_path / "bad.log").write_bytes(b"\xff\xfe not a journal\n")
    out = automl("show", "x", "--storage", f"journal://{tmp_path / 'bad.log'}", cwd=tmp_path)
    assert out.returncode == 2 and "is not an Optuna journal file" in out.stderr and "Traceback" not in out.stderr


def test_a_memory_search_does_not_offer_a_show_command_that_cannot_work(tmp_path):
    out = automl("search", "--space", "mlp", "--dataset", "digits", "--trials", "1", "--epochs", "1",
                 "--storage", "memory", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "kept in memory only" in out.stdout and "automl show" not in out.stdout


@pytest.mark.slow
@pytest.mark.parametrize("sig, how", [("SIGINT", "interrupted by the user (Ctrl-C)"), ("SIGTERM", "stopped by SIGTERM")])
def test_an_interrupted_search_ends_its_trial_with_the_reason_and_says_how_to_resume(tmp_path, sig, how):
    import signal
    import time

    import optuna

    from automl.storage import open_storage

    db = f"sqlite:///{tmp_path / 'i.db'}"
    cmd = [str(EXE)] if EXE.exists() else [sys.executable, "-m", "automl.cli"]
    proc = subprocess.Popen([*cmd, "search", "--space", "mlp", "--dataset", "digits", "--trials", "50", "--epochs", "400",
                             "--storage", db, "--study", "i", "--seed", "0"], cwd=tmp_path, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, "COLUMNS": "200"})
    deadline = time.time() + 240
    while time.time() < deadline:  # wait until a trial has reported an epoch
        time.sleep(1)
        try:  # read-only: opening the file for writing while the search creates it raced it for the schema
            trials = optuna.load_study(study_name="i", storage=open_storage(db, read_only=True)).get_trials(deepcopy=False)
        except (KeyError, Exception):  # noqa: BLE001 - the study may not exist yet
            continue
        if trials and trials[-1].last_step:
            break
    proc.send_signal(getattr(signal, sig))
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err[-3000:]
    assert "Traceback" not in err and f"{how}:" in err and "Resume with:" in err
    resume = err.split("Resume with:")[1].strip().splitlines()[0]
    assert resume.startswith("automl search ") and "--study i" in resume and db in resume and "--overwrite" not in resume
    assert "trial" in out and how in out  # the leaderboard so far, with the reason
    failed = [t for t in optuna.load_study(study_name="i", storage=db).trials if t.state.name == "FAIL"]
    assert len(failed) == 1 and failed[0].user_attrs["fail_reason"].startswith(f"{how} during epoch ")
    assert not [t for t in optuna.load_study(study_name="i", storage=db).trials if t.state.name == "RUNNING"]


def test_the_leaderboard_fits_the_terminal_and_never_splits_a_number(tmp_path):
    db = f"sqlite:///{tmp_path / 'w.db'}"
    assert automl("search", "--space", "mlp", "--dataset", "digits", "--trials", "3", "--epochs", "2", "--storage", db,
                  "--study", "w", cwd=tmp_path).returncode == 0
    cmd = [str(EXE)] if EXE.exists() else [sys.executable, "-m", "automl.cli"]
    for columns in ("80", "100"):
        out = subprocess.run([*cmd, "show", "w", "--storage", db], cwd=tmp_path, capture_output=True, text=True,
                             env={**os.environ, "COLUMNS": columns}, timeout=120)
        assert out.returncode == 0, out.stderr
        table = out.stdout.split("\n3 trials")[0].splitlines()
        assert max(len(line) for line in table) <= int(columns)
        rows = [line.split() for line in table if line.strip()[:1].isdigit()]
        assert len(rows) == 3  # one line per trial starts with its number, state, value and epochs, whole
        for number, state, value, epochs, *_ in rows:
            assert state in ("COMPLETE", "PRUNED") and 0.0 < float(value) <= 1.0 and int(epochs) in (1, 2)
    piped = subprocess.run([*cmd, "show", "w", "--storage", db], cwd=tmp_path, capture_output=True, text=True,
                           env={k: v for k, v in os.environ.items() if k != "COLUMNS"}, timeout=120)
    assert max(len(line) for line in piped.stdout.splitlines()) > 80  # a pipe without COLUMNS gets wide lines


def test_run_search_reports_each_epoch_of_each_trial():
    """What the progress bar's "trial n epoch e/E" line is fed from."""
    from automl.search import SearchSettings, run_search

    seen = []
    run_search(SearchSettings(space="mlp", dataset="digits", trials=2, epochs=2, pruner="none", storage="memory", seed=0),
               on_epoch=lambda number, epoch: seen.append((number, epoch)))
    assert seen == [(0, 1), (0, 2), (1, 1), (1, 2)]
