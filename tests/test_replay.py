"""The replay benchmark: costs by formula, identical results for identical seeds, every pruner runs."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from automl.bench.bank import Run, write_bank
from automl.bench.replay import PRUNERS, draw_order, replay, replay_task

TASKSET = Path(__file__).resolve().parents[1] / "benchmarks" / "banks" / "taskset_imdb_rnn.jsonl.gz"


def synthetic_task(n=40, budget=12, seed=0, direction="minimize", task="syn"):
    """Loss curves a/(epoch) + floor, with different lengths, some diverging."""
    rng = np.random.default_rng(seed)
    runs = []
    for i in range(n):
        floor, a = rng.uniform(0.1, 1.0), rng.uniform(0.5, 2.0)
        length = budget if i % 7 else budget - 3  # curves of different lengths
        curve = [floor + a / e for e in range(1, length + 1)]
        if i % 11 == 5:
            curve[3:] = [math.nan] * (length - 3)  # diverged
        if direction == "maximize":
            curve = [-v for v in curve]
        runs.append(Run(task=task, run_id=str(i), config={}, metric="m", direction=direction, curves={"m": curve}))
    return runs


def test_none_costs_the_sum_of_curve_lengths():
    runs = synthetic_task()
    r = replay_task(runs, "none", seed=3, trials=25)
    drawn = [runs[i] for i in draw_order("syn", len(runs), 3, 25)]
    assert r.cost_epochs == sum(x.budget for x in drawn)
    assert (r.regret, r.norm_regret, r.kept_best, r.n_pruned) == (0.0, 0.0, True, 0)


def test_oracle_costs_one_epoch_per_loser_and_the_winners_budget():
    runs = synthetic_task()
    drawn = [runs[i] for i in draw_order("syn", len(runs), 1, 30)]
    outcomes = [r.outcome if math.isfinite(r.outcome) else math.inf for r in drawn]
    best = int(np.argmin(outcomes))
    r = replay_task(runs, "oracle", seed=1, trials=30)
    assert r.cost_epochs == (len(drawn) - 1) + drawn[best].budget
    assert r.kept_best and r.regret == 0.0 and r.n_pruned == len(drawn) - 1


def test_topk1_keeps_the_best_tenth_after_one_epoch():
    runs = synthetic_task(n=40)
    r = replay_task(runs, "topk1", seed=0, trials=40)
    assert r.n_pruned == 36 and r.cost_epochs >= 40


def test_kept_best_counts_any_run_that_ties_for_best():
    """Two runs end at the same best loss; topk1 keeps the one that starts better and stops the other
    after one epoch. Whichever of the two is drawn first, the best outcome was kept."""
    def run(i, curve):
        return Run(task="tie", run_id=str(i), config={}, metric="m", direction="minimize", curves={"m": curve})
    runs = [run(0, [5.0, 0.5, 0.1]), run(1, [0.2, 0.15, 0.1])] + [run(i, [1.0 + i, 1.0 + i, 1.0 + i]) for i in range(2, 10)]
    orders = set()
    for seed in range(8):
        order = list(draw_order("tie", len(runs), seed, 10))
        orders.add(order.index(0) < order.index(1))
        r = replay_task(runs, "topk1", seed=seed, trials=10)
        assert r.n_pruned == 9 and r.kept_best and r.regret == 0.0
    assert orders == {True, False}  # both tied runs came first in some seed


@pytest.mark.parametrize("pruner", PRUNERS)
@pytest.mark.parametrize("direction", ["minimize", "maximize"])
def test_every_pruner_runs_and_is_reproducible(pruner, direction):
    runs = synthetic_task(direction=direction)
    a = replay_task(runs, pruner, seed=2, trials=30)
    b = replay_task(runs, pruner, seed=2, trials=30)
    assert a == b
    assert 0 < a.cost_epochs <= sum(r.budget for r in runs)
    assert a.regret is None or a.regret >= 0.0
    assert 0 <= a.n_pruned <= 30


def test_signal_agrees_across_optuna_and_ray():
    runs = synthetic_task(n=60)
    for seed in range(3):
        assert replay_task(runs, "signal", seed=seed, trials=60) == replay_task(runs, "signal-ray", seed=seed, trials=60)


def test_document_shape_and_summary():
    tasks = {"a": synthetic_task(task="a"), "b": synthetic_task(seed=1, task="b")}
    doc = replay(tasks, ["none", "median", "oracle"], seeds=2, trials=20)
    assert set(doc["tasks"]) == {"a", "b"}
    rows = doc["tasks"]["a"]["median"]
    assert [r["seed"] for r in rows] == [0, 1]
    assert set(rows[0]) == {"seed", "cost_epochs", "regret", "norm_regret", "kept_best", "n_pruned", "n_converged"}
    assert doc["summary"]["none"]["median_cost_ratio_vs_none"] == 1.0
    assert doc["summary"]["oracle"]["kept_best_rate"] == 1.0
    json.dumps(doc, allow_nan=False)
    with pytest.raises(ValueError, match="unknown pruners"):
        replay(tasks, ["magic"])


def test_bench_replay_cli_on_a_bank(tmp_path):
    bank = tmp_path / "syn.jsonl.gz"
    write_bank(bank, synthetic_task(n=30))
    out_json, out_png = tmp_path / "r.json", tmp_path / "r.png"
    proc = subprocess.run(
        [sys.executable, "-m", "automl.cli", "bench", "replay", str(bank), "--pruners", "median,signal,oracle",
         "--seeds", "2", "--trials", "20", "--json", str(out_json), "--plot", str(out_png)],
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(out_json.read_text())
    assert list(doc["summary"]) == ["none", "median", "signal", "oracle"]
    assert out_png.stat().st_size > 10_000
    bad = subprocess.run([sys.executable, "-m", "automl.cli", "bench", "replay", str(bank), "--pruners", "magic"],
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "unknown pruner(s) magic" in bad.stderr


def test_bench_replay_help_names_every_pruner_and_defaults_to_known_ones():
    """The CLI keeps its own list (its --help imports no replay code): it must not drift from
    PRUNERS, and the new pruner is replayed by default."""
    from click.testing import CliRunner

    from automl.cli import cli

    res = CliRunner().invoke(cli, ["bench", "replay", "--help"], terminal_width=1000)
    assert res.exit_code == 0, res.output
    opt = next(p for p in cli.commands["bench"].commands["replay"].params if p.name == "pruners")
    default = opt.default.split(",")
    assert set(default) <= set(PRUNERS) and "forecast" in default and "signal" in default
    for name in PRUNERS:
        assert name in opt.help, f"--pruners help does not name {name!r}"
