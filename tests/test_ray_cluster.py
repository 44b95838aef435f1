"""A search on a real Ray cluster: `ray start --head` on loopback, then `automl search --backend
ray --ray-address auto` (its own module: it must not share a Ray with the tests of test_ray.py)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import optuna
import pytest

from automl.storage import open_storage


@pytest.mark.slow
def test_search_on_a_ray_cluster_started_with_ray_start(tmp_path):
    """`ray start --head` on loopback, then `automl search --backend ray --ray-address auto`: the
    search joins that cluster (with no cluster, address 'auto' is an error, not a local Ray) and
    every trial lands in the Optuna storage."""
    ray_bin = str(Path(sys.executable).parent / "ray")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
    env.pop("RAY_ADDRESS", None)
    start = subprocess.run([ray_bin, "start", "--head", "--node-ip-address", "127.0.0.1", "--port", str(port),
                            "--num-cpus", "2", "--include-dashboard", "false", "--disable-usage-stats"],
                           capture_output=True, text=True, env=env, timeout=180)
    assert start.returncode == 0, start.stderr[-2000:]
    try:
        url = f"sqlite:///{tmp_path / 'ray.db'}"
        res = subprocess.run([sys.executable, "-c", "from automl.cli import cli; cli()", "search", "--space", "mlp",
                              "--dataset", "digits", "--trials", "3", "--epochs", "2", "--backend", "ray",
                              "--ray-address", "auto", "--n-jobs", "2", "--pruner", "median", "--storage", url,
                              "--study", "on-cluster", "--json"],
                             capture_output=True, text=True, env=env, timeout=400, cwd=tmp_path)
        assert res.returncode == 0, res.stderr[-3000:]
        summary = json.loads(res.stdout)["summary"]
        assert summary["trials"] == 3
        study = optuna.load_study(study_name="on-cluster", storage=open_storage(url))
        assert all(t.state.name in ("COMPLETE", "PRUNED") for t in study.trials) and len(study.trials) == 3
    finally:
        subprocess.run([ray_bin, "stop", "--force"], capture_output=True, env=env, timeout=120)
    # with the cluster gone, the same command is refused: the run above was on the cluster
    res = subprocess.run([sys.executable, "-c", "from automl.cli import cli; cli()", "search", "--space", "mlp",
                          "--dataset", "digits", "--trials", "1", "--epochs", "1", "--backend", "ray",
                          "--ray-address", "auto", "--storage", url, "--study", "no-cluster"],
                         capture_output=True, text=True, env=env, timeout=300, cwd=tmp_path)
    assert res.returncode == 2 and "cannot reach the Ray cluster at 'auto'" in res.stderr, res.stderr[-2000:]
