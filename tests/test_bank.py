"""Curve banks: the bank format read and written exactly, malformed rows named precisely."""

from __future__ import annotations

import gzip
import json
import math
from pathlib import Path

import pytest

from automl.bench.bank import BankError, Run, read_bank, runs_by_task, write_bank

TASKSET = Path(__file__).resolve().parents[1] / "benchmarks" / "banks" / "taskset_imdb_rnn.jsonl.gz"


def run(i: int, curve: list[float], **kw) -> Run:
    return Run(task=kw.get("task", "t"), run_id=str(i), config={"lr": 0.1 * i}, metric="val_loss",
               direction="minimize", curves={"val_loss": curve, "train_loss": curve}, signals=kw.get("signals", {}))


def test_round_trip_keeps_nan_as_null_and_lengths(tmp_path):
    runs = [run(0, [1.0, 0.5]), run(1, [1.0, float("nan"), float("inf")]), run(2, [2.0] * 5, signals={"beta_eff": [0.1, float("nan")]})]
    path = tmp_path / "b.jsonl.gz"
    assert write_bank(path, runs) == 3
    with gzip.open(path, "rt") as f:
        rows = [json.loads(line) for line in f]
    assert rows[1]["curves"]["val_loss"] == [1.0, None, None]
    assert rows[2]["signals"]["beta_eff"] == [0.1, None]
    back = read_bank(path)
    assert [r.budget for r in back] == [2, 3, 5]
    assert math.isnan(back[1].outcome) and back[0].outcome == 0.5
    assert back[0] == runs[0]
    assert not list(tmp_path.glob("*.tmp"))


def test_append_adds_rows(tmp_path):
    path = tmp_path / "b.jsonl.gz"
    write_bank(path, [run(0, [1.0])])
    write_bank(path, [run(1, [2.0])], append=True)
    assert [r.run_id for r in read_bank(path)] == ["0", "1"]


def test_plain_jsonl_is_read_too(tmp_path):
    path = tmp_path / "b.jsonl"
    write_bank(path, [run(0, [1.0])])
    assert json.loads(path.read_text().splitlines()[0])["run_id"] == "0"
    assert read_bank(path)[0].run_id == "0"


GOOD = {"task": "t", "run_id": "1", "config": {}, "metric": "val_loss", "direction": "minimize", "curves": {"val_loss": [1.0]}}


@pytest.mark.parametrize(
    "change, field",
    [
        ({"task": ""}, "'task'"),
        ({"run_id": None}, "'run_id'"),
        ({"config": [1]}, "'config'"),
        ({"direction": "down"}, "'direction'"),
        ({"metric": "acc"}, "'metric'"),
        ({"curves": {}}, "'curves'"),
        ({"curves": {"val_loss": []}}, "'curves.val_loss'"),
        ({"curves": {"val_loss": [1.0, "x"]}}, "'curves.val_loss[1]'"),
        ({"signals": [1]}, "'signals'"),
        ({"extra": 1}, "unknown field"),
    ],
)
def test_malformed_row_names_file_line_and_field(tmp_path, change, field):
    path = tmp_path / "bad.jsonl"
    rows = [GOOD, {**GOOD, **change}]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    with pytest.raises(BankError) as err:
        read_bank(path)
    assert f"{path}:2:" in str(err.value) and field in str(err.value)


def test_missing_field_and_bad_json(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps({k: v for k, v in GOOD.items() if k != "curves"}) + "\n")
    with pytest.raises(BankError, match=r"bad.jsonl:1: field 'curves' is missing"):
        read_bank(path)
    path.write_text(json.dumps(GOOD) + "\n{not json\n")
    with pytest.raises(BankError, match=r"bad.jsonl:2: not valid JSON"):
        read_bank(path)
    with pytest.raises(BankError, match="no such curve bank"):
        read_bank(tmp_path / "absent.jsonl.gz")


def test_taskset_bank_reads_as_documented():
    runs = read_bank(TASKSET)
    tasks = runs_by_task(runs)
    assert len(tasks) == 12 and all(len(v) == 1000 for v in tasks.values())
    assert {r.budget for r in runs} == {51}
    assert all(r.metric == "val_loss" and r.direction == "minimize" for r in runs)
    diverged = sum(1 for r in runs if any(math.isnan(v) for v in r.values))
    assert 0 < diverged < len(runs)


@pytest.mark.parametrize("name", ["digits_mlp", "mnist5k_mlp", "mnist1d_cnn"])
def test_recorded_banks_are_complete(name):
    runs = read_bank(Path(__file__).resolve().parents[1] / "benchmarks" / "banks" / f"{name}.jsonl.gz")
    assert len(runs) >= 150 and {r.budget for r in runs} == {30}
    assert sorted(int(r.run_id) for r in runs) == list(range(len(runs)))
    assert all(len(r.signals["layer_rms"]) == 30 and r.signals["act_rms"] for r in runs)


CAPACITANCE_BANKS = Path(__file__).resolve().parents[1] / "benchmarks" / "banks" / "capacitance"


@pytest.mark.parametrize("dataset", ["digits", "mnist1d"])
@pytest.mark.parametrize("mode", ["shadow", "head"])
def test_capacitance_banks_are_complete(dataset, mode):
    """The ranking study's banks: 60 models a dataset and mode, 30 epochs, βeff every epoch."""
    runs = []
    for family, n in (("mlp", 25), ("cnn", 25), ("resnet_small", 10)):
        part = read_bank(CAPACITANCE_BANKS / f"{dataset}_{family}_{mode}.jsonl.gz")
        assert sorted(int(r.run_id) for r in part) == list(range(n))
        runs += part
    assert {r.budget for r in runs} == {30}
    assert all(r.signals["ncp"] == mode and len(r.signals["beta_eff"]) == 30 for r in runs)
    # the shadow NCP does not touch the candidate: same configurations, other curves in head mode
    assert all(r.task.endswith("_ncphead") == (mode == "head") for r in runs)
