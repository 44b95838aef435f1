"""Searches on a real PostgreSQL server: one process, several worker processes, and the service."""

from __future__ import annotations

import time

import pytest
from click.testing import CliRunner

from automl.cli import cli
from automl.search import SearchSettings, run_search

pytestmark = pytest.mark.slow


def test_search_and_show_on_postgres(postgres_url):
    s = SearchSettings(space="mlp", dataset="digits", trials=3, epochs=2, pruner="median", storage=postgres_url, study="pg-one")
    study = run_search(s)
    assert len(study.trials) == 3
    res = CliRunner().invoke(cli, ["show", "pg-one", "--storage", postgres_url, "--json"])
    assert res.exit_code == 0, res.output
    assert '"trials": 3' in res.output


def test_worker_processes_share_one_study(postgres_url):
    """`automl search --workers 2` on PostgreSQL (as on two machines): every trial of both lands in
    the study, numbered once, and the workers draw different configurations."""
    import optuna

    from automl.storage import open_storage

    res = CliRunner().invoke(cli, ["search", "--space", "mlp", "--dataset", "digits", "--trials", "4", "--epochs", "2",
                                   "--workers", "2", "--storage", postgres_url, "--study", "pg-two", "--json"])
    assert res.exit_code == 0, res.output
    study = optuna.load_study(study_name="pg-two", storage=open_storage(postgres_url))
    assert sorted(t.number for t in study.trials) == [0, 1, 2, 3]
    assert all(t.state.name in ("COMPLETE", "PRUNED") for t in study.trials)
    assert len({t.params["lr"] for t in study.trials}) == 4


def test_service_on_postgres(postgres_url):
    from automl.service import SearchManager, SearchRequest

    mgr = SearchManager(postgres_url)
    sid = mgr.start(SearchRequest(space="mlp", dataset="digits", trials=2, epochs=2, pruner="median"))
    deadline = time.time() + 240
    while mgr.status(sid)["state"] in ("queued", "running") and time.time() < deadline:
        time.sleep(0.5)
    doc = SearchManager(postgres_url).status(sid)  # a second service on the same database reads it
    assert doc["state"] == "done" and doc["progress"]["finished"] == 2, doc
