"""The whole-run question ("what went wrong in this run?"): known answers, onsets, the model file."""

from __future__ import annotations

import gzip
import json
import re

import numpy as np
import pytest
from click.testing import CliRunner

from automl.cli import cli
from automl.diagnosis import (WHOLE_MODEL_PATH, WHOLE_VIEWS, DiagnosisModel, diagnose, load_model, load_whole_model,
                              onsets, view_labels)
from automl.signals.failure import LABELS, WHOLE_FEATURES, whole_features

N = 40
T = np.arange(N, dtype=float)


def _healthy(n: int = N) -> dict[str, list[float]]:
    t = np.arange(n, dtype=float)
    return {"train_loss": list(0.15 + 1.9 * np.exp(-t / 6)), "val_loss": list(0.3 + 1.8 * np.exp(-t / 6)),
            "train_acc": list(0.95 - 0.75 * np.exp(-t / 5)), "val_acc": list(0.9 - 0.7 * np.exp(-t / 5))}


def _stuck(n: int = N, acc: float = 0.11) -> dict[str, list[float]]:
    rng = np.random.default_rng(0)
    return {"train_loss": list(2.30 + rng.normal(0, 0.002, n)), "val_loss": list(2.30 + rng.normal(0, 0.002, n)),
            "train_acc": list(acc + rng.normal(0, 0.003, n)), "val_acc": list(acc + rng.normal(0, 0.003, n))}


#: The issue's textbook overfit: validation loss 0.8 -> 2.0 from epoch 3 while the training loss
#: falls, validation accuracy 0.68 -> 0.60, training accuracy -> 1.0.
OVERFIT = {
    "train_loss": list(0.01 + 0.99 * np.exp(-T / 5)),
    "val_loss": [1.2, 0.9, 0.8] + list(np.linspace(0.8, 2.0, N - 3)),
    "train_acc": list(1.0 - 0.5 * np.exp(-T / 5)),
    "val_acc": [0.55, 0.64, 0.68] + list(np.linspace(0.68, 0.60, N - 3)),
}


def _late_divergence(at: int = 25) -> dict[str, list[float]]:
    run = _healthy()
    for key in ("train_loss", "val_loss"):
        run[key] = run[key][:at] + [40.0, 1e4] + [None] * (N - at - 2)
    for key in ("train_acc", "val_acc"):
        run[key] = run[key][:at] + [0.1] * (N - at)
    return run


def _oscillating(seed: int = 3) -> dict[str, list[float]]:
    """A learning rate too high for Adam: the accuracy jumps up and down by 0.1-0.25 and never settles."""
    rng = np.random.default_rng(seed)
    level = 0.55 + 0.12 * rng.standard_normal(N)
    return {"train_loss": list(1.2 + 0.5 * np.abs(rng.standard_normal(N))), "val_loss": list(1.3 + 0.6 * np.abs(rng.standard_normal(N))),
            "train_acc": list(np.clip(level + 0.03, 0, 1)), "val_acc": list(np.clip(level, 0, 1))}


def _grads(first: float, last: float, zero: float = 0.02) -> dict[str, list[float]]:
    return {"grad_norm_first": [first] * N, "grad_norm_last": [last] * N, "zero_grad_frac": [zero] * N}


#: label -> a run that has it beyond doubt (a test per label: each fails if the label is missed)
KNOWN = {
    "nonfinite": _late_divergence(),
    "exploding_gradient": {**_stuck(acc=0.2), **_grads(500.0, 0.3)},
    "vanishing_gradient": {**_stuck(), **_grads(1e-9, 0.5)},
    "dying_relu": {**_stuck(), **_grads(1e-3, 1e-2, zero=0.95)},
    "oscillation": _oscillating(),
    "plateau": _stuck(acc=0.3),
    "underfit": _stuck(),
    "overfit": OVERFIT,
    "shift": {**_healthy(), "test_acc": [0.2] * N},
}


@pytest.mark.parametrize("label", LABELS)
def test_known_answer_for_every_label(label):
    d = diagnose(KNOWN[label])
    assert d.scope == "whole" and d.epochs == d.run_epochs == N
    assert label in d.present, (label, d.labels)
    assert d.healthy < 0.5
    assert any(r.startswith(f"{label} (p=") for r in d.reasons)


def test_the_known_answers_hold_for_other_draws_of_the_noisy_ones():
    """The oscillating run is random: the label is found whatever the draw, not for one lucky seed."""
    for seed in range(6):
        assert "oscillation" in diagnose(_oscillating(seed)).present, seed


def test_a_healthy_run_of_any_length_raises_no_alarm():
    for n in (10, 40, 100):
        d = diagnose(_healthy(n))
        assert not d.present and d.healthy > 0.5, (n, d.labels)


def test_a_late_failure_is_placed_at_its_onset():
    """Overfitting from epoch 3 and a divergence at epoch 26: each label rests on an epoch near
    where it began, not on the run's first or last epoch."""
    div = diagnose(_late_divergence(at=25))
    assert "nonfinite" in div.onsets and 24 <= div.onsets["nonfinite"] <= 28, div.onsets
    assert any(r.startswith("nonfinite (p=") and f"from epoch {div.onsets['nonfinite']}" in r for r in div.reasons)
    over = diagnose(OVERFIT)
    assert 3 <= over.onsets["overfit"] <= 20, over.onsets
    doc = over.public()
    assert doc["scope"] == "whole" and doc["onsets"] == over.onsets and doc["run_epochs"] == N


def test_onsets_read_prefixes_and_keep_the_first_epoch_of_the_last_stretch(monkeypatch):
    """onsets() reads each prefix as a whole run: with a model that says "overfit" at prefixes of
    12-15 epochs, drops it at 16-19, then keeps it from 20 on, overfit rests on epoch 20 (the
    stretch that lasts to the end), found with a coarse pass and then the epochs between."""
    import automl.diagnosis as diagnosis

    monkeypatch.setattr(diagnosis, "whole_features", lambda run: np.array([float(len(run["train_loss"]))]))
    calls = []

    class Stub:
        threshold = 0.5

        def predict(self, X, view):
            calls.append(len(X))
            n = X[:, 0]
            says = ((n >= 12) & (n <= 15)) | (n >= 20)
            return {lab: says.astype(float) if lab == "overfit" else np.zeros(len(X)) for lab in view_labels(view)}

    assert onsets(_healthy(60), Stub(), "curves") == {"overfit": 20}
    assert calls[0] <= diagnosis.ONSET_GRID and sum(calls) < 30
    assert onsets(_healthy(60), Stub(), "curves", labels=["underfit"]) == {}  # the whole run lacks it: no onset


def test_k_asks_the_early_question_and_a_k_with_the_whole_scope_is_refused():
    d = diagnose(OVERFIT, k=5)
    assert d.scope == "early" and d.epochs == 5 and d.onsets == {}
    with pytest.raises(ValueError, match=r"k=5: k asks the early question"):
        diagnose(OVERFIT, k=5, scope="whole")
    with pytest.raises(ValueError, match="scope='both'"):
        diagnose(OVERFIT, scope="both")
    with pytest.raises(ValueError, match="needs the whole-run model"):
        diagnose(OVERFIT, model=load_model(), scope="whole")
    res = CliRunner().invoke(cli, ["diagnose", "-"], input=json.dumps(OVERFIT))
    text = " ".join(res.output.split())
    assert res.exit_code == 0 and f"whole run: {N} epochs" in text and "from epoch" in text and "overfit (p=" in text
    res = CliRunner().invoke(cli, ["diagnose", "-", "--k", "5", "--json"], input=json.dumps(OVERFIT))
    assert res.exit_code == 0 and json.loads(res.output)["scope"] == "early"


def test_whole_model_file_round_trip(tmp_path):
    raw = WHOLE_MODEL_PATH.read_bytes()
    doc = json.loads(gzip.decompress(raw))
    assert doc["format"] == "automl-diagnosis" and doc["scope"] == "whole"
    assert doc["features"] == list(WHOLE_FEATURES) and set(doc["views"]) == set(WHOLE_VIEWS)
    for view, heads in doc["views"].items():
        assert set(heads) == set(view_labels(view)) | {"any"}, view
    copy = tmp_path / "whole.json"
    copy.write_text(json.dumps(doc))  # plain JSON reads as well as gzipped
    model = load_whole_model(copy)
    shipped = load_whole_model()
    x = whole_features(OVERFIT)[None, :]
    for view in WHOLE_VIEWS:
        a, b = model.predict(x, view), shipped.predict(x, view)
        assert all(np.allclose(a[t], b[t]) for t in a)
    assert diagnose(OVERFIT, model=model).labels == diagnose(OVERFIT).labels
    with pytest.raises(ValueError, match="feature schema"):
        DiagnosisModel({**doc, "features": doc["features"][:-1]})
    with pytest.raises(ValueError, match="unknown model scope"):
        DiagnosisModel({**doc, "scope": "late"})


def test_the_long_corpus_injects_a_late_divergence_that_takes():
    """failure_corpus_long: the learning rate jumps at its epoch, and the recorded run diverges
    there (truth is the injected cause, kept only where the full run shows it)."""
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    sys.path[:0] = [str(root), str(root / "benchmarks")]
    import failure_corpus_long as long
    from automl.diagnosis import rule_onsets, run_from_bank

    cfg = {"epochs": 40, "schedule": "cosine", "jump_at": 30, "jump": 1000.0}
    assert long.lr_factor(cfg, 29) < 0.2 and long.lr_factor(cfg, 30) > 100
    row = long.record_run(("late_diverge", "mlp", "blobs", 0))
    assert row.signals["took"] and "nonfinite" in row.signals["labels"]
    jump = row.config["jump_at"]
    assert jump + 1 <= rule_onsets(run_from_bank(row))["nonfinite"] <= jump + 3
    assert not long.clear_overfit(_healthy()) and long.clear_overfit(OVERFIT)


# ----------------------------------------------------------------------------- odd but valid runs
def test_a_loss_that_turns_nan_after_healthy_epochs_is_nonfinite_from_that_epoch():
    run = _healthy(12)
    for key in ("train_loss", "val_loss"):
        run[key] = run[key][:4] + [None] * 8
    d = diagnose(run)
    assert d.labels["nonfinite"] >= 0.99 and d.healthy <= 0.01
    assert d.onsets["nonfinite"] == 5 and "non-finite from epoch 5" in d.reasons[0]
    early = diagnose(run, k=6)
    assert early.labels["nonfinite"] >= 0.99


def test_a_list_with_no_value_was_not_measured():
    """All-null test_acc is no test accuracy (not a shift); all-null val_loss is no validation
    loss (not a divergence, and no crash in the overfit sentence)."""
    d = diagnose({**_healthy(12), "test_acc": [None] * 12})
    assert "shift" in d.unassessed and "shift" not in d.labels
    d = diagnose({**_healthy(12), "val_loss": [None] * 12})
    assert d.labels["nonfinite"] < 0.5 and d.reasons


def test_a_loss_of_exactly_zero_is_not_read_as_non_finite():
    run = {"train_loss": [0.5, 0.0, 0.0, 0.0, 0.0, 0.0], "val_loss": [0.6, 0.1, 0.05, 0.04, 0.04, 0.04],
           "train_acc": [0.8, 1.0, 1.0, 1.0, 1.0, 1.0], "val_acc": [0.8, 0.97, 0.98, 0.98, 0.98, 0.98]}
    d = diagnose(run)
    assert d.labels["nonfinite"] < 0.5 and "nan" not in " ".join(d.reasons)


@pytest.mark.parametrize("value, says", [
    ([0.5], "record 1 (epoch 2), key 'val_loss': [0.5] is not a number"),
    ("abc", "record 1 (epoch 2), key 'val_loss': 'abc' is not a number"),
    (True, "record 1 (epoch 2), key 'val_loss': True is not a number"),
    (10**400, "record 1 (epoch 2), key 'val_loss': an integer of 401 digits is beyond float32's range"),
])
def test_bad_values_in_epoch_records_are_named(value, says):
    recs = [{"train_loss": 1.0, "val_loss": 1.0, "train_acc": 0.5, "val_acc": 0.5},
            {"train_loss": 0.8, "val_loss": value, "train_acc": 0.6, "val_acc": 0.55}]
    with pytest.raises(ValueError, match=re.escape(says)):
        diagnose(recs)


def test_bad_layers_and_class_counts_are_named():
    recs = [{"train_loss": 1.0, "val_loss": 1.0, "train_acc": 0.5, "val_acc": 0.5, "layers": [1]}] * 2
    with pytest.raises(ValueError, match=re.escape("record 0 (epoch 1), layers[0]: expected an object")):
        diagnose(recs)
    with pytest.raises(ValueError, match="n_classes: an integer of 401 digits; expected at most"):
        diagnose({**_healthy(5), "n_classes": 10**400})
    with pytest.raises(ValueError, match="n_classes: 10000000; expected at most"):
        diagnose(_healthy(5), n_classes=10**7)


def test_numpy_numbers_and_arrays_are_read_as_numbers():
    run = {key: np.asarray(v, dtype=np.float32) for key, v in _healthy(10).items()}
    as_list = {key: [np.float32(x) for x in v] for key, v in run.items()}
    assert diagnose(run).labels == diagnose(as_list).labels


def test_an_accuracy_in_percent_is_refused_naming_field_and_epoch():
    run = {**_healthy(5), "val_acc": [50.0, 60.0, 70.0, 75.0, 80.0]}
    with pytest.raises(ValueError, match=re.escape("field 'val_acc', epoch 1: 50 is not a fraction in [0, 1]")):
        diagnose(run)
    recs = [{"train_loss": 1.0, "val_loss": 1.0, "train_acc": 0.5, "val_acc": 0.5, "zero_grad_frac": 2.0}] * 2
    with pytest.raises(ValueError, match=re.escape("record 0 (epoch 1), key 'zero_grad_frac': 2 is not a fraction")):
        diagnose(recs)


def test_a_loss_measured_every_other_epoch_is_not_a_divergence():
    run = _healthy(12)
    run["val_loss"] = [v if i % 2 == 0 else None for i, v in enumerate(run["val_loss"])]
    d = diagnose(run)
    assert d.labels["nonfinite"] < 0.5 and "nonfinite" not in d.onsets
    recs = [{"train_loss": run["train_loss"][i], "train_acc": run["train_acc"][i],
             **({"val_loss": _healthy(12)["val_loss"][i], "val_acc": run["val_acc"][i]} if i % 2 == 0 else {})}
            for i in range(12)]
    assert diagnose(recs).labels["nonfinite"] < 0.5
    late = {**run, "val_loss": [None, None, None] + _healthy(12)["val_loss"][3:]}
    assert diagnose(late, k=3).labels["nonfinite"] < 0.99  # what comes after epoch k does not decide the early answer


def test_a_loss_infinite_from_the_first_epoch_is_a_divergence_from_it():
    run = {**_healthy(8), "train_loss": [float("inf")] * 8}
    d = diagnose(run)
    assert d.labels["nonfinite"] >= 0.99 and d.onsets["nonfinite"] == 1


def test_an_accuracy_a_float16_step_past_1_is_read():
    run = {**_healthy(6), "train_acc": [0.5, 0.8, 0.95, 1.000977, 1.0, 1.0]}
    assert diagnose(run).labels
