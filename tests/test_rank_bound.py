"""The hindsight rank-schedule bound (benchmarks/rank_bound.py): costs by hand, kept best, the search."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from automl.bench.bank import Run, write_bank
from automl.bench.replay import draw_order
from benchmarks.rank_bound import schedule, score, search, sequential, study

ROOT = Path(__file__).resolve().parents[1]


def _runs(curves, direction="maximize", task="t"):
    return [Run(task=task, run_id=str(i), config={}, metric="acc", direction=direction, curves={"acc": c})
            for i, c in enumerate(curves)]


def test_the_schedule_starts_at_its_cuts_and_falls_in_log_epoch_to_its_floor():
    q = schedule(1.0, 0.4, 0.05, 8, 10)
    assert q[0] == 1.0 and q[1] == 0.4 and np.all(q[7:] == 0.05)
    assert q[3] == pytest.approx(0.4 + (math.log(2) / math.log(4)) * (0.05 - 0.4))  # epoch 4: halfway in log
    assert np.all(np.diff(q[1:]) <= 0)


def test_a_run_stops_at_the_first_epoch_too_many_runs_are_ahead_and_the_cost_counts_its_epochs():
    # A leads throughout; B trails from epoch 1 (both others ahead); C is second at epoch 1, last at 2.
    s = study(_runs([[0.9, 0.9, 0.9], [0.5, 0.5, 0.5], [0.8, 0.1, 0.1]]), seed=0, trials=3)
    costs, kept = score([s], {3: np.array([0.6, 0.6, 0.6])})
    assert costs[0] == pytest.approx((3 + 1 + 2) / 9) and kept[0]
    costs, kept = score([s], {3: np.ones(3)})  # no cut: exactly no pruning
    assert costs[0] == 1.0 and kept[0]


def test_a_diverged_value_stands_behind_every_finite_one():
    s = study(_runs([[1.0, 0.9, 0.8], [2.0, math.nan, math.nan], [3.0, 2.5, 2.0]], direction="minimize"),
              seed=0, trials=3)
    # No cut at epoch 1; at epoch 2 the diverged run is behind both others (1.0 > 0.75), the third
    # behind one (0.5); at epoch 3 the cut is 0, but stopping at the last epoch saves nothing.
    costs, kept = score([s], {3: np.array([1.0, 0.75, 0.0])})
    assert costs[0] == pytest.approx((3 + 2 + 3) / 9) and kept[0]


def test_losing_the_best_run_is_counted():
    # The best run (C) trails at epoch 1 and is cut there.
    s = study(_runs([[0.5, 0.6], [0.4, 0.5], [0.1, 0.9]]), seed=0, trials=3)
    _, kept = score([s], {2: np.array([0.5, 1.0])})
    assert not kept[0]


def test_one_trial_at_a_time_a_run_is_ranked_only_among_the_runs_before_it():
    runs = _runs([[0.5, 0.6, 0.7], [0.4, 0.5, 0.9], [0.3, 0.2, 0.1]])
    seed = next(k for k in range(100) if list(draw_order("t", 3, k, 3)) == [0, 1, 2])  # drawn as listed
    s = study(runs, seed=seed, trials=3)
    q = np.full(3, 0.4)
    # In hindsight the late bloomer (0.9) has one run of three ahead at epochs 1-2: kept.
    costs, kept = score([s], {3: q})
    assert costs[0] == pytest.approx(7 / 9) and kept[0]
    # One at a time it sees only the first run, ahead of it at epoch 1 (1 > 0.4 x 2): cut.
    assert sequential(s, q, min_finished=1) == (pytest.approx(5 / 9), False)
    # Waiting for two finished trials, it runs to its end, and the third run is cut at epoch 1.
    assert sequential(s, q, min_finished=2) == (pytest.approx(7 / 9), True)


def test_the_search_keeps_the_best_run_as_asked_and_never_costs_more_than_no_pruning():
    rng = np.random.default_rng(0)
    curves = [list(np.cumsum(rng.uniform(0, s, 8))) for s in rng.uniform(0.01, 0.2, 30)]
    studies = [study(_runs(curves), seed=k, trials=30) for k in range(3)]
    found = search(studies, np.zeros(3, dtype=int), keep=1.0)
    assert found["chosen"]["kept_best_rate"] == 1.0
    assert found["chosen"]["median_cost_ratio_vs_none"] < 1.0  # the run's rank is stable: cuts pay
    assert found["per_task"]["median_cost_ratio_vs_none"] == found["chosen"]["median_cost_ratio_vs_none"]  # one task
    rates = [f["kept_best_rate"] for f in found["frontier"]]
    assert all(r >= f["kept_at_least"] for r, f in zip(rates, found["frontier"]))


def test_the_script_writes_its_report_and_refuses_a_bad_keep(tmp_path):
    rng = np.random.default_rng(1)
    bank = tmp_path / "b.jsonl.gz"
    write_bank(bank, _runs([list(rng.uniform(0, 1, 5)) for _ in range(12)]))
    out = tmp_path / "rb"
    cmd = [sys.executable, str(ROOT / "benchmarks" / "rank_bound.py"), "--bank", str(bank), "--seeds", "2",
           "--trials", "10", "--out", str(out)]
    subprocess.run(cmd + ["--name", "toy"], check=True, capture_output=True, cwd=ROOT)
    store = json.loads(out.with_suffix(".json").read_text())
    assert store["toy"]["task_seeds"] == 2 and "## toy" in out.with_suffix(".md").read_text()
    bad = subprocess.run(cmd + ["--keep", "1.5"], capture_output=True, text=True, cwd=ROOT)
    assert bad.returncode == 2 and "--keep must lie in (0, 1], got 1.5" in bad.stderr
    # Another section's schedule scored here: the same banks give back the same figures.
    subprocess.run(cmd + ["--name", "again", "--apply-from", "toy"], check=True, capture_output=True, cwd=ROOT)
    store = json.loads(out.with_suffix(".json").read_text())
    applied = store["again"]["applied"]
    assert applied["median_cost_ratio_vs_none"] == store["toy"]["chosen"]["median_cost_ratio_vs_none"]
    assert applied["sequential"] == store["toy"]["sequential"]
    bad = subprocess.run(cmd + ["--apply-from", "nope"], capture_output=True, text=True, cwd=ROOT)
    assert bad.returncode == 2 and "--apply-from 'nope': no such section" in bad.stderr
