"""Tests of ``EpochRecord`` and of reporting records to a real Optuna trial."""

from __future__ import annotations

import json
import math

import optuna
import pytest
import torch
from torch import nn

from automl.records import METRICS, ActivationTrace, EpochRecord, LayerStats, is_finite
from automl.reporting import record_key, records_from_user_attrs, records_of, report, tune_metrics
from automl.training.probe import Probe

optuna.logging.set_verbosity(optuna.logging.WARNING)

NAN = float("nan")


def _record(epoch: int = 1, **kw) -> EpochRecord:
    base = dict(
        epoch=epoch,
        step=10 * epoch,
        train_loss=1.0 / epoch,
        val_loss=1.5 / epoch,
        val_acc=0.1 * epoch,
        layers=[
            LayerStats(name="features.1", grad_norm=0.5, zero_grad_frac=0.25, weight_norm=3.0, act_rms=NAN),
            LayerStats(name="head", grad_norm=float("inf"), zero_grad_frac=0.75, weight_norm=2.0, act_rms=1.0),
        ],
        activations=ActivationTrace(steps=[5, 10], rms=[[1.0, NAN], [2.0, 3.0]]),
    )
    base.update(kw)
    return EpochRecord(**base)


# -- EpochRecord -----------------------------------------------------------------------------


def test_metric_values_and_missing_as_nan():
    rec = _record(val_loss=NAN)
    assert rec.metric("train_loss") == 1.0
    assert rec.metric("val_acc") == pytest.approx(0.1)
    assert math.isnan(rec.metric("val_loss"))  # non-finite
    assert math.isnan(rec.metric("test_acc"))  # missing
    assert rec.metric("lr") != rec.metric("lr")  # a record field, missing: nan
    assert set(METRICS) == {"val_loss", "val_acc", "train_loss", "train_acc", "test_loss", "test_acc"}


@pytest.mark.parametrize("name", ["accuracy", "val-acc", "", "VAL_ACC"])
def test_metric_unknown_name_raises(name):
    with pytest.raises(ValueError) as info:
        _record().metric(name)
    assert repr(name) in str(info.value)


@pytest.mark.parametrize("name", ["layers", "activations"])
def test_metric_on_non_numeric_field_raises_value_error(name):
    """``metric`` admits any record field name, but ``layers`` / ``activations`` are not metrics:
    asking for them should be refused like an unknown name, not crash with a ``TypeError`` in
    ``float()``."""
    with pytest.raises(ValueError) as info:
        _record().metric(name)
    assert repr(name) in str(info.value)


def test_record_refuses_bad_fields():
    from pydantic import ValidationError

    with pytest.raises(ValidationError):
        EpochRecord(epoch=0)  # epochs are 1-based
    with pytest.raises(ValidationError):
        EpochRecord(epoch=1, step=-1)
    with pytest.raises(ValidationError):
        EpochRecord(epoch=1, val_los=0.3)  # typo: extra fields forbidden


def test_layer_summaries():
    rec = _record()
    assert rec.grad_norm_first == 0.5
    assert rec.grad_norm_last == float("inf")
    assert rec.zero_grad_frac == pytest.approx(0.5)
    empty = EpochRecord(epoch=1)
    assert math.isnan(empty.grad_norm_first) and math.isnan(empty.zero_grad_frac)


def test_compact_drops_trace_and_is_strict_json():
    rec = _record(val_loss=NAN, test_loss=float("-inf"))
    c = rec.compact()
    assert "activations" not in c
    assert c["val_loss"] is None and c["test_loss"] is None
    assert c["layers"][0]["act_rms"] is None
    assert c["layers"][1]["grad_norm"] is None
    assert c["layers"][0]["grad_norm"] == 0.5
    assert c["epoch"] == 1 and c["step"] == 10 and c["train_loss"] == 1.0
    assert "test_acc" not in c  # missing fields are left out
    text = json.dumps(c, allow_nan=False)  # strict JSON: no NaN / Infinity
    # and the compact form is itself a valid record
    back = EpochRecord.model_validate(json.loads(text))
    assert back.layers[0].name == "features.1" and back.activations is None


def test_compact_of_real_probe_record():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    with Probe(model, probe_batch=torch.randn(5, 3), every_k_steps=1) as probe:
        model(torch.randn(5, 3)).sum().backward()
        probe.step()
        rec = probe.end_epoch(val_loss=NAN)
    assert rec.activations is not None
    c = rec.compact()
    assert "activations" not in c and c.get("val_loss") is None
    json.dumps(c, allow_nan=False)


def test_is_finite():
    assert is_finite(1) and is_finite("2.5")
    assert not is_finite(None) and not is_finite(NAN) and not is_finite(float("inf")) and not is_finite("x")


# -- reporting -------------------------------------------------------------------------------


def test_record_key_sorts_by_epoch():
    assert record_key(1) == "record_0001"
    assert record_key(12) == "record_0012"
    assert sorted([record_key(e) for e in (10, 2, 1)]) == [record_key(1), record_key(2), record_key(10)]


def test_report_to_optuna_trial():
    study = optuna.create_study(direction="maximize")
    trial = study.ask()
    values = [report(_record(e), trial, metric="val_acc") for e in (1, 2, 3)]
    assert values == pytest.approx([0.1, 0.2, 0.3])
    study.tell(trial, values[-1])
    frozen = study.trials[0]
    assert frozen.intermediate_values == pytest.approx({1: 0.1, 2: 0.2, 3: 0.3})
    # system attributes: optuna-dashboard lists a trial's user attributes, where records would bury the reason
    assert {"record_0001", "record_0002", "record_0003"} <= set(frozen.system_attrs)
    assert not [k for k in frozen.user_attrs if k.startswith("record_")]
    stored = frozen.system_attrs["record_0001"]
    assert stored == _record(1).compact()
    assert "activations" not in stored
    json.dumps(stored, allow_nan=False)


def test_report_default_metric_is_val_loss_and_nan_is_reported():
    study = optuna.create_study()
    trial = study.ask()
    assert report(_record(1), trial) == 1.5
    value = report(_record(2, val_loss=NAN), trial)
    assert math.isnan(value)
    study.tell(trial, 1.0)
    iv = study.trials[0].intermediate_values
    assert iv[1] == 1.5 and math.isnan(iv[2])
    assert records_of(study.trials[0])[1]["val_loss"] is None


def test_records_from_user_attrs_in_epoch_order():
    study = optuna.create_study()
    trial = study.ask()
    trial.set_user_attr("note", "not a record")
    for e in (3, 1, 12, 2):  # reported out of order
        report(_record(e), trial, metric="train_loss")
    study.tell(trial, 0.0)
    recs = records_of(study.trials[0])
    assert [r["epoch"] for r in recs] == [1, 2, 3, 12]
    assert [EpochRecord.model_validate(r).step for r in recs] == [10, 20, 30, 120]


def test_report_to_a_fixed_trial_keeps_the_record_as_a_user_attribute():
    """optuna.trial.FixedTrial (for testing an objective) has no storage: report still works."""
    trial = optuna.trial.FixedTrial({})
    assert report(_record(1), trial, metric="val_acc") == pytest.approx(0.1)
    assert trial.user_attrs[record_key(1)] == _record(1).compact()


def test_records_of_a_study_written_before_reads_its_user_attributes():
    """Studies written by earlier versions kept records as user attributes: still read."""
    study = optuna.create_study()
    trial = study.ask()
    for e in (2, 1):
        trial.set_user_attr(record_key(e), _record(e).compact())
    study.tell(trial, 0.0)
    assert [r["epoch"] for r in records_of(study.trials[0])] == [1, 2]


def test_records_from_plain_mapping():
    attrs = {record_key(2): {"epoch": 2}, "x": 1, record_key(1): {"epoch": 1}}
    assert records_from_user_attrs(attrs) == [{"epoch": 1}, {"epoch": 2}]
    assert records_from_user_attrs({}) == []


@pytest.mark.parametrize("metric", ["accuracy", "lr", "VAL_LOSS"])
def test_report_unknown_metric_names_it(metric):
    study = optuna.create_study()
    trial = study.ask()
    with pytest.raises(ValueError) as info:
        report(_record(), trial, metric=metric)
    assert repr(metric) in str(info.value)
    study.tell(trial, 0.0)
    assert study.trials[0].intermediate_values == {}
    assert study.trials[0].user_attrs == {}


def test_tune_metrics_flat_scalars():
    out = tune_metrics(_record(2, val_loss=NAN, beta_eff=0.7))
    assert out["epoch"] == 2 and out["step"] == 20
    assert math.isnan(out["val_loss"])  # measured and diverged: kept as nan
    assert "test_acc" not in out  # never measured: left out, never read as a divergence
    assert out["val_acc"] == pytest.approx(0.2)
    assert out["grad_norm_first"] == 0.5 and out["zero_grad_frac"] == pytest.approx(0.5)
    assert out["beta_eff"] == 0.7
    assert "beta_eff" not in tune_metrics(_record(1))
