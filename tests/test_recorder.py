"""`automl bench record`: real training into a bank, resumable, repaired after an interruption."""

from __future__ import annotations

import pytest

from automl.bench.bank import read_bank
from automl.bench.recorder import record_bank


@pytest.mark.slow
def test_record_then_resume_without_redoing_runs(tmp_path):
    out = tmp_path / "b.jsonl.gz"
    assert record_bank("mlp", "digits", runs=2, epochs=2, seed=0, out=out) == 2
    first = read_bank(out)
    assert [r.run_id for r in first] == ["0", "1"]
    run = first[0]
    assert run.task == "digits_mlp" and run.metric == "val_acc" and run.direction == "maximize"
    assert set(run.curves) == {"train_loss", "val_loss", "test_loss", "train_acc", "val_acc", "test_acc"}
    assert all(len(c) == 2 for c in run.curves.values())
    sig = run.signals
    n_layers = len(sig["layers"])
    assert n_layers >= 2 and len(sig["layer_rms"]) == 2 and len(sig["layer_rms"][0]) == n_layers
    assert len(sig["act_steps"]) == len(sig["act_rms"]) > 0 and len(sig["act_rms"][0]) == n_layers
    # Resume with a larger budget of runs: the first two are kept, not retrained.
    assert record_bank("mlp", "digits", runs=3, epochs=2, seed=0, out=out) == 1
    again = read_bank(out)
    assert [r.run_id for r in again] == ["0", "1", "2"] and again[:2] == first


@pytest.mark.slow
def test_truncated_tail_is_repaired_on_resume(tmp_path):
    out = tmp_path / "b.jsonl.gz"
    record_bank("mlp", "digits", runs=2, epochs=1, seed=0, out=out)
    data = out.read_bytes()
    second_member = data.find(b"\x1f\x8b", 10)  # each appended run is its own gzip member
    out.write_bytes(data[: second_member + 20])  # the second run's write was cut off
    assert record_bank("mlp", "digits", runs=2, epochs=1, seed=0, out=out) == 1
    assert [r.run_id for r in read_bank(out)] == ["0", "1"]


def test_bad_arguments_are_named(tmp_path):
    with pytest.raises(ValueError, match="runs must be an integer >= 1, but got runs=0"):
        record_bank("mlp", "digits", runs=0, epochs=1, seed=0, out=tmp_path / "b.jsonl.gz")
    with pytest.raises(ValueError, match="metric"):
        record_bank("mlp", "digits", runs=1, epochs=1, seed=0, out=tmp_path / "b.jsonl.gz", metric="f1")
    with pytest.raises(ValueError, match="input_shape"):
        record_bank("resnet", "mnist1d", runs=1, epochs=1, seed=0, out=tmp_path / "b.jsonl.gz")
    with pytest.raises(ValueError, match="does not exist"):
        record_bank("mlp", "digits", runs=1, epochs=1, seed=0, out=tmp_path / "no" / "b.jsonl.gz")
    with pytest.raises(ValueError, match=r"min_epochs must lie in \[1, epochs=3\], but got 5"):
        record_bank("mlp", "digits", runs=1, epochs=3, min_epochs=5, seed=0, out=tmp_path / "b.jsonl.gz")
    with pytest.raises(ValueError, match="unknown schedule 'linear'"):
        record_bank("mlp", "digits", runs=1, epochs=3, schedule="linear", seed=0, out=tmp_path / "b.jsonl.gz")


@pytest.mark.slow
def test_a_budget_search_bank_draws_each_runs_budget(tmp_path):
    """With min_epochs each run trains to its own budget (in its config), its schedule to that end."""
    out = tmp_path / "b.jsonl.gz"
    record_bank("mlp", "digits", runs=4, epochs=4, min_epochs=1, schedule="cosine", seed=3, out=out)
    runs = read_bank(out)
    assert {r.task for r in runs} == {"digits_mlp_budget"}
    assert all(r.budget == r.config["epochs"] == len(r.curves["val_acc"]) and r.config["schedule"] == "cosine" for r in runs)
    assert len({r.budget for r in runs}) > 1


@pytest.mark.slow
def test_record_with_an_ncp_keeps_beta_per_epoch_and_every_k_steps(tmp_path):
    shadow, head = tmp_path / "s.jsonl.gz", tmp_path / "h.jsonl.gz"
    record_bank("mlp", "digits", runs=1, epochs=2, seed=0, out=shadow, ncp="shadow", every_k_steps=4)
    record_bank("mlp", "digits", runs=1, epochs=2, seed=0, out=head, ncp="head", every_k_steps=4)
    (s,), (h,) = read_bank(shadow), read_bank(head)
    assert s.task == "digits_mlp" and h.task == "digits_mlp_ncphead"
    assert s.signals["ncp"] == "shadow" and h.signals["ncp"] == "head"
    for run in (s, h):
        assert len(run.signals["beta_eff"]) == len(run.signals["beta_eff_downstream"]) == 2
        assert all(b > 0 for b in run.signals["beta_eff"])
        assert len(run.signals["act_beta_eff"]) == len(run.signals["act_steps"]) > 0
    assert len(s.signals["ncp_train_acc"]) == 2 and "ncp_train_acc" not in h.signals
    # the shadow NCP leaves the candidate as it is; the head-mode run trains another model
    plain = tmp_path / "p.jsonl.gz"
    record_bank("mlp", "digits", runs=1, epochs=2, seed=0, out=plain, every_k_steps=4)
    assert read_bank(plain)[0].curves == s.curves != h.curves
    with pytest.raises(ValueError, match="ncp must be"):
        record_bank("mlp", "digits", runs=1, epochs=1, seed=0, out=tmp_path / "x.jsonl.gz", ncp="tail")
