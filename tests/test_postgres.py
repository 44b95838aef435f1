"""Searches on a real PostgreSQL server: one process, several worker processes, and the service."""

from __future__ import annotations

import multiprocessing
import time

import pytest
from click.testing import CliRunner

from automl.cli import cli
from automl.search import SearchSettings, run_search

pytestmark = pytest.mark.slow


def _search(settings: dict) -> int:
    return len(run_search(SearchSettings(**settings)).trials)


def test_search_and_show_on_postgres(postgres_url):
    s = SearchSettings(space="mlp", dataset="digits", trials=3, epochs=2, pruner="median", storage=postgres_url, study="pg-one")
    study = run_search(s)
    assert len(study.trials) == 3
    res = CliRunner().invoke(cli, ["show", "pg-one", "--storage", postgres_url, "--json"])
    assert res.exit_code == 0, res.output
    assert '"trials": 3' in res.output


def test_worker_processes_share_one_study(postgres_url):
    """Two processes on one study (as on two machines): every trial of both lands in it, numbered once."""
    s = SearchSettings(space="mlp", dataset="digits", trials=2, epochs=2, pruner="signal", storage=postgres_url, study="pg-two").model_dump()
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(2) as pool:
        pool.map(_search, [{**s, "seed": 0}, {**s, "seed": 0}])
    import optuna

    from automl.storage import open_storage

    study = optuna.load_study(study_name="pg-two", storage=open_storage(postgres_url))
    assert len(study.trials) == 4
    assert sorted(t.number for t in study.trials) == [0, 1, 2, 3]
    assert all(t.state.name in ("COMPLETE", "PRUNED") for t in study.trials)


def test_service_on_postgres(postgres_url):
    from automl.service import SearchManager, SearchRequest

    mgr = SearchManager(postgres_url)
    sid = mgr.start(SearchRequest(space="mlp", dataset="digits", trials=2, epochs=2, pruner="median"))
    deadline = time.time() + 240
    while mgr.status(sid)["state"] in ("queued", "running") and time.time() < deadline:
        time.sleep(0.5)
    doc = SearchManager(postgres_url).status(sid)  # a second service on the same database reads it
    assert doc["state"] == "done" and doc["progress"]["finished"] == 2, doc
