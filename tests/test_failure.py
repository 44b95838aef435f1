"""Failure labels: rules, features, the shipped classifier, `automl diagnose`, and pruning on them."""

from __future__ import annotations

import gzip
import json
import math
import re
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from automl.cli import cli
from automl.decision import Policy, Population, TrialHistory, decide
from automl.diagnosis import (MODEL_PATH, VIEWS, DiagnosisModel, diagnose, load_model, restrict, validate_curves, view_labels,
                              view_of)
from automl.signals.failure import FEATURES, LABELS, features, rule_labels

ROOT = Path(__file__).resolve().parents[1]

FLAT = {"train_loss": [2.30] * 6, "val_loss": [2.30] * 6, "train_acc": [0.10, 0.11, 0.10, 0.10, 0.11, 0.10],
        "val_acc": [0.10] * 6}
GOOD = {"train_loss": [1.2, 0.5, 0.3, 0.2, 0.15, 0.12], "val_loss": [1.0, 0.5, 0.35, 0.3, 0.28, 0.27],
        "train_acc": [0.70, 0.86, 0.91, 0.94, 0.95, 0.96], "val_acc": [0.75, 0.87, 0.91, 0.92, 0.93, 0.93],
        "test_acc": [0.74, 0.86, 0.90, 0.92, 0.93, 0.93]}


def test_rules_known_answers():
    assert rule_labels(GOOD) == set()
    assert {"plateau", "underfit"} <= rule_labels(FLAT)
    assert "nonfinite" in rule_labels({**GOOD, "train_loss": [1.2, 0.5, None, None, None, None]})
    assert "nonfinite" in rule_labels({**GOOD, "train_loss": [40.0, 35.0, 30.0, 30.0, 30.0, 30.0]})  # > 10 ln(10)
    assert "shift" in rule_labels({**GOOD, "test_acc": [0.3] * 6})
    assert "overfit" in rule_labels({**GOOD, "val_acc": [0.6, 0.65, 0.66, 0.66, 0.66, 0.66]})
    assert "dying_relu" in rule_labels({**GOOD, "zero_grad_frac": [0.9] * 6})
    assert "exploding_gradient" in rule_labels({**GOOD, "grad_norm_first": [100.0] * 6, "grad_norm_last": [0.5] * 6})
    assert "vanishing_gradient" in rule_labels({**GOOD, "grad_norm_first": [1e-9] * 6, "grad_norm_last": [0.5] * 6})
    assert "oscillation" in rule_labels({**GOOD, "val_acc": [0.5, 0.8, 0.6, 0.85, 0.6, 0.8]})


def test_features_read_only_the_prefix_and_tolerate_nonfinite():
    long = {key: v + [v[-1]] * 4 for key, v in GOOD.items()}
    long["val_loss"][-1] = float("nan")
    np.testing.assert_array_equal(features(long, 5), features({k: v[:5] for k, v in long.items()}))
    x = features({**FLAT, "train_loss": [2.3, None, None, None, None, None]})
    assert x.shape == (len(FEATURES),)
    assert x[FEATURES.index("nonfinite_share")] == pytest.approx(5 / 6)
    assert math.isnan(x[FEATURES.index("val_test_gap_end")])  # no test_acc given


@pytest.mark.parametrize("bad, field", [
    ({k: v for k, v in GOOD.items() if k != "val_acc"}, "val_acc"),
    ({**GOOD, "val_loss": [1.0, 0.5]}, "val_loss"),
    ({**GOOD, "train_acc": [0.1, "x", 0.3, 0.4, 0.5, 0.6]}, "train_acc"),
    ({**GOOD, "train_acc": "0.5"}, "train_acc"),
    ({**GOOD, "grad_norm": [1.0] * 6}, "grad_norm"),
    ({**GOOD, "n_classes": 1}, "n_classes"),
])
def test_bad_curves_name_the_field(bad, field):
    with pytest.raises(ValueError, match=field):
        validate_curves(bad)


def test_one_epoch_is_refused():
    with pytest.raises(ValueError, match="at least 2 epochs"):
        validate_curves({k: v[:1] for k, v in GOOD.items()})


def test_shipped_model_loads_with_its_schema():
    doc = json.loads(gzip.decompress(MODEL_PATH.read_bytes()))
    assert doc["format"] == "automl-diagnosis" and doc["version"] == 2
    assert doc["features"] == list(FEATURES) and doc["labels"] == list(LABELS)
    assert set(doc["views"]) == set(VIEWS)
    for view, heads in doc["views"].items():
        assert set(heads) == set(view_labels(view)) | {"any"}, view
    with pytest.raises(ValueError, match="feature schema"):
        DiagnosisModel({**doc, "features": doc["features"][:-1]})
    with pytest.raises(ValueError, match="version-2"):
        DiagnosisModel({**doc, "version": 1})


def test_views_follow_the_inputs_given():
    grads = {"grad_norm_first": [1.0] * 6, "grad_norm_last": [1.0] * 6, "zero_grad_frac": [0.1] * 6}
    weights = {"weight_norm": [3.0] * 6, "n_layers": 3}
    assert view_of(FLAT) == "curves" and view_of(GOOD) == "test"
    assert view_of({**FLAT, **grads}) == "grad" and view_of({**GOOD, **grads, **weights}) == "full"
    assert view_of({**FLAT, **weights}) == "curves"  # weights are read only with gradients
    assert view_of({**FLAT, "grad_norm_first": [1.0] * 6}) == "curves"  # a partial group is not read
    assert set(restrict({**GOOD, **grads}, "test")) == set(GOOD)
    assert "shift" not in view_labels("grad_weights") and "shift" in view_labels("grad_test")


def test_diagnose_separates_a_stuck_run_from_a_healthy_one():
    stuck, good = diagnose(FLAT), diagnose(GOOD)
    assert set(stuck.labels) == set(LABELS) - {"shift"} and stuck.unassessed == ["shift"]  # no test_acc given
    assert set(good.labels) == set(LABELS) and good.view == "test"
    assert all(0.0 <= p <= 1.0 for p in stuck.labels.values())
    assert stuck.healthy < 0.5 and good.healthy > stuck.healthy + 0.3
    for d in (stuck, good):
        assert d.healthy <= 1.0 - max(d.labels.values()) + 1e-4  # never "healthy" beside a sure label
    assert {"underfit", "plateau"} & set(stuck.present)
    assert any(r.startswith(stuck.present[0]) for r in stuck.reasons)
    assert any(r.startswith("shift not assessed: it needs test_acc") for r in stuck.reasons)
    assert not good.present and "no failure label" in good.reasons[0]


#: 30 epochs that learn well for 8, then overfit: validation loss rises from epoch 10 while the training
#: loss keeps falling, and the train-val accuracy gap grows past the rule's 0.15
LATE_OVERFIT = {
    "train_loss": [1.0, 0.6, 0.4, 0.3, 0.2, 0.15, 0.1, 0.08, 0.06, 0.05] + [0.04 - 0.001 * i for i in range(20)],
    "val_loss": [1.0, 0.7, 0.6, 0.55, 0.52, 0.5, 0.5, 0.51, 0.52, 0.53] + [0.55 + 0.05 * i for i in range(20)],
    "train_acc": [0.6, 0.7, 0.75, 0.8, 0.83, 0.85, 0.87, 0.88, 0.89, 0.9] + [min(1.0, 0.91 + 0.01 * i) for i in range(20)],
    "val_acc": [0.6, 0.7, 0.72, 0.73, 0.74, 0.745, 0.75, 0.75, 0.748, 0.746] + [0.74 - 0.004 * i for i in range(20)],
}


def test_a_failure_after_the_epochs_the_early_model_reads_shows_with_its_onset():
    d = diagnose(LATE_OVERFIT, scope="early")
    assert (d.epochs, d.run_epochs) == (8, 30)
    assert "overfit" in d.rule_onsets and d.rule_onsets["overfit"] > 8
    line = next(r for r in d.reasons if r.startswith("the model read the first 8 of the run's 30 epochs"))
    assert f"overfit from epoch {d.rule_onsets['overfit']}" in line and "after the epochs the model read" in line
    doc = d.public()
    assert doc["run_epochs"] == 30 and doc["epochs"] == 8 and doc["rule_onsets"] == d.rule_onsets
    # the first 8 epochs alone show no late failure, and say nothing of a longer run
    early = diagnose({key: v[:8] for key, v in LATE_OVERFIT.items()}, scope="early")
    assert early.run_epochs == 8 and not any(r.startswith("the model read the first") for r in early.reasons)


def test_k_means_what_it_says_or_is_refused_with_the_reason():


    assert diagnose(LATE_OVERFIT, k=5).epochs == 5
    with pytest.raises(ValueError, match=r"k=12: the model reads the first 2 to 8 epochs"):
        diagnose(LATE_OVERFIT, k=12)
    with pytest.raises(ValueError, match=r"k=7: the run has only 6 epochs"):
        diagnose(FLAT, k=7)
    res = CliRunner().invoke(cli, ["diagnose", "-", "--k", "12"], input=json.dumps(LATE_OVERFIT))
    assert res.exit_code == 2 and "k=12: the model reads the first 2 to 8 epochs" in res.output
    res = CliRunner().invoke(cli, ["diagnose", "-", "--k", "8"], input=json.dumps(LATE_OVERFIT))
    text = " ".join(res.output.split())  # the title wraps with the table's width
    assert res.exit_code == 0 and "early view: first 8 of 30 epochs" in text and "overfit from epoch" in text


def test_diagnose_says_what_it_ignored():
    d = diagnose({**FLAT, "grad_norm_first": [1.0] * 6})
    assert d.view == "curves"
    assert any("ignored grad_norm_first" in r and "grad_norm_last, zero_grad_frac" in r for r in d.reasons), d.reasons


def test_diagnose_reads_epoch_records(digits_records):
    d = diagnose(digits_records, scope="early")
    assert d.epochs == min(len(digits_records), load_model().k_range[1])
    assert d.view == "full"  # the trainer records test accuracy, gradients and weights
    assert d.healthy > 0.5, d
    whole = diagnose(digits_records)
    assert whole.scope == "whole" and whole.epochs == len(digits_records) and whole.view == "grad_test"
    assert whole.healthy > 0.5 and any("ignored weight_norm, n_layers: the whole model does not read it" in r
                                       for r in whole.reasons), whole


@pytest.fixture(scope="module")
def digits_records():
    from search_spaces import get_space

    from automl.training.data import load_dataset
    from automl.training.trainer import train

    cfg = {"lr": 3e-3, "weight_decay": 1e-5, "dropout": 0.0, "batch_size": 64, "optimizer": "adam", "width": 64,
           "depth": 1, "activation": "relu"}
    return train(get_space("mlp"), cfg, load_dataset("digits"), epochs=5, seed=0).records


def test_cli_json_and_errors(tmp_path):
    path = tmp_path / "curves.json"
    path.write_text(json.dumps(FLAT))
    res = CliRunner().invoke(cli, ["diagnose", str(path), "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    assert set(out) == {"labels", "healthy", "reasons", "scope", "epochs", "run_epochs", "onsets", "rule_onsets"}
    assert set(out["labels"]) == set(LABELS) - {"shift"}
    res = CliRunner().invoke(cli, ["diagnose", str(path)])
    assert res.exit_code == 0 and "healthy p=" in res.output
    path.write_text(json.dumps({**FLAT, "val_acc": [0.1, None, "bad", 0.1, 0.1, 0.1]}))
    res = CliRunner().invoke(cli, ["diagnose", str(path)])
    assert res.exit_code == 2 and "val_acc" in res.output and "epoch 3" in res.output
    path.write_text("{not json")
    res = CliRunner().invoke(cli, ["diagnose", str(path)])
    assert res.exit_code == 2 and "not JSON" in res.output


@pytest.mark.parametrize("doc, needle", [
    ([1, 2, 3], "record 0 is int 1"),
    ([], "the list of epoch records is empty"),
    ([{"a": 1}, {"b": 2}], "record 0 has unknown key(s) ['a']"),
    ([{"epoch": 1, "train_loss": 1.0, "val_loss": 1.0, "val_acc": 0.5}] * 3, "no record has 'train_acc'"),
    ("text", "a run must be an object of per-epoch lists or a list of epoch records, not str"),
    (None, "not NoneType"),
])
def test_a_json_array_or_other_value_is_refused_by_name(tmp_path, doc, needle):
    """A list is read as epoch records: each an object with the curve keys and no unknown key;
    anything else is a one-line error, exit code 2, never a traceback or a made-up label."""
    path = tmp_path / "run.json"
    path.write_text(json.dumps(doc))
    res = CliRunner().invoke(cli, ["diagnose", str(path)])
    assert res.exit_code == 2 and needle in res.output and isinstance(res.exception, (type(None), SystemExit)), res.output
    with pytest.raises(ValueError, match=re.escape(needle)):
        diagnose(doc)


def test_epoch_records_as_json_are_diagnosed_like_the_curves():
    records = _records(FLAT)
    assert diagnose(records).labels == diagnose(FLAT).labels


def _records(curves):
    n = len(curves["val_acc"])
    return [{"epoch": i + 1, **{k: v[i] for k, v in curves.items()}} for i in range(n)]


def test_decide_prunes_on_a_sure_failure_label_and_never_the_incumbent():
    done = [TrialHistory(i, {e + 1: v for e, v in enumerate(GOOD["val_acc"])}, "COMPLETE", 0.93, _records(GOOD))
            for i in range(6)]
    pop = Population(done, direction="maximize", metric="val_acc", max_epochs=20)
    stuck = TrialHistory(9, {e + 1: v for e, v in enumerate(FLAT["val_acc"])}, records=_records(FLAT))
    policy = Policy(failure="model", failure_threshold=0.6, fallback="none")
    v = decide(stuck, pop, policy)
    assert v.action == "prune" and v.source == "failure", v
    assert v.evidence["label"] in policy.failure_labels and f"(p={v.evidence['p']:.2f})" in v.reason
    assert decide(stuck, pop, Policy(fallback="none")).source != "failure"  # off by default
    assert "behind the median" in v.reason  # underfit and plateau are judged against the peers' pace
    alone = Population([], direction="maximize", metric="val_acc", max_epochs=20)
    assert decide(stuck, alone, policy).source != "failure"  # no peers: no pace to be behind
    worse = [TrialHistory(i, {e: 0.05 for e in range(1, 7)}) for i in range(3)]  # running, behind it
    led = Population(worse, direction="maximize", metric="val_acc", max_epochs=20)
    assert decide(stuck, led, policy).source == "incumbent"


def test_corpus_injections_do_what_they_say():
    sys.path.insert(0, str(ROOT))
    import torch

    from benchmarks.failure_corpus import CAUSES, corpus_dataset, inject_data, plan, record_run

    assert len(plan([0, 1, 2, 3, 4, 5])) >= 600
    d = corpus_dataset("digits")
    noisy = inject_data({"label_noise": 0.5}, d, 0)
    assert 0.4 < float((noisy.y_train != d.y_train).float().mean()) < 0.6
    assert torch.equal(noisy.y_test, d.y_test)
    skew = inject_data({"imbalance_keep": 0.04}, d, 0)
    counts = torch.bincount(skew.y_train, minlength=10).sort(descending=True).values
    assert counts[:3].sum() > 0.8 * len(skew.y_train) and len(skew.y_test) == len(d.y_test)
    run = record_run(("test_invert", "linear", "digits", 0))
    assert run.signals["labels"] == list(CAUSES["test_invert"][0]) and run.signals["took"]
    assert run.curves["val_acc"][-1] - run.curves["test_acc"][-1] > 0.5


def _diagnose_into(queue):
    queue.put(diagnose(GOOD).healthy)


def test_a_diagnosis_in_the_parent_does_not_hang_forked_workers():
    """XGBoost's thread pool, once started, hung processes forked afterwards (replay --jobs 2)."""
    import multiprocessing as mp

    expected = diagnose(GOOD).healthy
    ctx = mp.get_context("fork")
    queue = ctx.Queue()
    child = ctx.Process(target=_diagnose_into, args=(queue,))
    child.start()
    child.join(60)
    hung = child.is_alive()
    if hung:
        child.kill()
    assert not hung, "a forked process hung in its first diagnosis"
    assert queue.get(timeout=5) == expected


def test_failure_pruning_agrees_across_optuna_and_ray():
    """The Ray scheduler reads the same prefix (flattened, as tune_metrics reports it) and decides the same."""
    from automl.bench.bank import read_bank
    from automl.bench.replay import replay_task

    runs = read_bank(ROOT / "benchmarks" / "banks" / "dynamics" / "digits_mlp.jsonl.gz")
    policy = Policy(failure="model", failure_relative=False)
    a = replay_task(runs, "signal", seed=0, trials=18, policy=policy)
    assert a == replay_task(runs, "signal-ray", seed=0, trials=18, policy=policy)
    assert a.cost_epochs < replay_task(runs, "signal", seed=0, trials=18).cost_epochs  # the classifier pruned
    relative = Policy(failure="model")
    assert replay_task(runs, "signal", seed=0, trials=18, policy=relative) == replay_task(runs, "signal-ray", seed=0, trials=18,
                                                                                          policy=relative)


@pytest.mark.parametrize("value, needle", [(5e38, "epoch 3: 5e+38 is beyond float32's range"),
                                           (-(10**400), "epoch 3: an integer of 401 digits is beyond float32's range"),
                                           (10**400, "epoch 3: an integer of 401 digits")])
def test_values_beyond_float32_are_refused_by_field_and_epoch(tmp_path, value, needle):
    curves = {**FLAT, "val_loss": [*FLAT["val_loss"][:2], value, *FLAT["val_loss"][3:]]}
    with pytest.raises(ValueError, match=re.escape(f"field 'val_loss', {needle}")):
        diagnose(curves)
    path = tmp_path / "run.json"
    path.write_text(json.dumps(curves))
    res = CliRunner().invoke(cli, ["diagnose", str(path)])
    assert res.exit_code == 2 and "beyond float32's range" in res.output


def test_n_classes_below_two_is_refused_however_it_is_given():
    with pytest.raises(ValueError, match="n_classes must be an integer >= 2"):
        diagnose(FLAT, n_classes=1)
    with pytest.raises(ValueError, match="n_classes must be an integer >= 2"):
        diagnose({**FLAT, "n_classes": 0})


def test_a_file_that_is_not_utf8_or_nests_too_deep_is_one_line(tmp_path):
    bad = tmp_path / "latin.json"
    bad.write_bytes(b"\xff\xfe{}")
    res = CliRunner().invoke(cli, ["diagnose", str(bad)])
    assert res.exit_code == 2 and "is not UTF-8 text" in res.output
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 100_000 + "]" * 100_000)
    res = CliRunner().invoke(cli, ["diagnose", str(deep)])
    assert res.exit_code == 2 and "nests too deeply" in res.output
