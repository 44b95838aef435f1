"""The service's Ray searches share one Ray (its own module: it must not share a Ray with the
tests of test_ray.py and test_ray_cluster.py)."""

from __future__ import annotations

import time

import optuna
import pytest
from fastapi.testclient import TestClient

from automl.service import ServiceSettings, create_app
from automl.storage import open_storage

TOKEN = "s3cret-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
RAY_SEARCH = {"space": "mlp", "dataset": "digits", "trials": 1, "epochs": 1, "pruner": "median", "seed": 0,
              "backend": "ray"}


@pytest.mark.slow
def test_ray_searches_join_one_ray_that_stops_with_the_service(tmp_path, monkeypatch):
    """Two Ray searches at once run on the one local Ray the service started for the first (not a
    Ray each), and that Ray's process ends when the service does."""
    monkeypatch.setenv("RAY_USAGE_STATS_ENABLED", "0")
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    url = f"sqlite:///{tmp_path / 'svc.db'}"
    settings = ServiceSettings(storage=url, api_token=TOKEN, ray_cpus=2, max_running_searches=2)
    with TestClient(create_app(settings), base_url="http://127.0.0.1") as c:
        sids = [c.post("/v1/searches", json={**RAY_SEARCH, "seed": i}, headers=AUTH).json()["id"] for i in range(2)]
        deadline = time.time() + 400
        docs = {}
        while time.time() < deadline:
            docs = {sid: c.get(f"/v1/searches/{sid}").json() for sid in sids}
            if all(d["state"] not in ("queued", "running") for d in docs.values()):
                break
            time.sleep(1.0)
        assert all(d["state"] == "done" for d in docs.values()), docs
        head, _, address = c.app.state.searches._ray  # the one Ray it started
        assert head.is_alive()
        joined = {optuna.load_study(study_name=f"search-{sid}", storage=open_storage(url)).user_attrs.get("service_ray")
                  for sid in sids}
        assert joined == {address}, (joined, address)
    head.join(60)
    assert not head.is_alive(), "the service's Ray outlived the service"


def test_a_given_ray_address_is_used_as_it_is_and_starts_nothing(tmp_path):
    from automl.service import SearchManager

    mgr = SearchManager(f"sqlite:///{tmp_path / 'svc.db'}", ray_address="10.0.0.5:6379")
    try:
        assert mgr.ray_address() == "10.0.0.5:6379" and mgr._ray is None
    finally:
        mgr.shutdown()
