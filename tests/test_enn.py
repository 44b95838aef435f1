"""Guidance networks: weight images, the ENNs, guided training, value learning, the zoo and the
recommender (a tiny zoo on digits, and the shipped one)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from automl.cli import cli
from automl.training.data import load_dataset
from automl.guidance.enn import (
    ENN,
    StatsENN,
    build_mlp,
    collect_trajectories,
    guided_fit,
    load_enn,
    parse_arch,
    save_enn,
    train_enn,
    weight_image,
    weight_matrices,
)


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


@pytest.mark.parametrize("spec, part", [
    ("cnn:3-16-10", "family 'cnn'"), ("mlp:784-x-10", "hidden width 1 'x' (part 2)"), ("mlp:0-10", "input size '0'"),
    ("mlp:784-10-1", "number of classes 1"), ("784-10", "must look like"), ("mlp:784", "at least an input size"),
    ("mlp:784-64-ten", "number of classes 'ten'"), ("mlp:²-10", "input size '²' (part 1)"),
    ("mlp:784-" + "9" * 5000 + "-10", "hidden width 1 (part 2, 5000 digits) is over 100000"),
])
def test_a_malformed_arch_names_the_part(spec, part):
    with pytest.raises(ValueError) as err:
        parse_arch(spec)
    assert part in str(err.value)


def test_arch_specs_parse():
    assert parse_arch("mlp:784-128-64-10") == (784, 128, 64, 10)
    assert parse_arch(" MLP : 64-10 ") == (64, 10)


def test_weight_image_is_015_per_side_z_scored_and_differentiable():
    w = torch.randn(128, 784, requires_grad=True)
    img = weight_image(w)
    assert img.shape == (1, 1, 19, 118)
    # z-scored per matrix: invariant to scale and shift of the weights
    assert torch.allclose(weight_image(3.0 * w.detach() + 1.5), img.detach(), atol=1e-5)
    img.pow(2).sum().backward()
    assert w.grad is not None and w.grad.abs().sum() > 0
    assert weight_image(torch.randn(10, 16)).shape == (1, 1, 2, 2)  # at least 2 per side


@pytest.mark.parametrize("net", [ENN(), StatsENN()])
def test_an_enn_scores_any_depth_and_width_and_its_gradient_reaches_the_weights(net):
    for dims in [(64, 10), (64, 32, 10), (784, 256, 128, 64, 10)]:
        model = build_mlp(dims)
        score = net(model)
        assert score.shape == () and 0.0 < float(score.detach()) < 1.0
        grads = torch.autograd.grad(score, weight_matrices(model))
        assert all(g.shape == w.shape for g, w in zip(grads, weight_matrices(model)))
        assert sum(float(g.abs().sum()) for g in grads) > 0


def test_beta_zero_is_plain_backprop_and_beta_changes_the_weights(digits):
    enn = ENN()
    plain = guided_fit(build_mlp((64, 32, 10), seed=1), digits, None, 0.0, epochs=2, seed=1)
    zero = guided_fit(build_mlp((64, 32, 10), seed=1), digits, enn, 0.0, epochs=2, seed=1)
    assert plain.history == [{**h, "enn_score": plain.history[i]["enn_score"]} for i, h in enumerate(zero.history)]
    assert all(h["grad_ratio"] == 0.0 for h in zero.history)
    guided = guided_fit(build_mlp((64, 32, 10), seed=1), digits, enn, 100.0, epochs=2, seed=1)
    assert all(h["grad_ratio"] > 0 for h in guided.history)
    assert guided.history[-1]["train_loss"] != plain.history[-1]["train_loss"]
    l1 = build_mlp((64, 32, 10), seed=1)
    guided_fit(l1, digits, None, 0.0, epochs=2, seed=1, l1=1e-2)
    ref = build_mlp((64, 32, 10), seed=1)
    guided_fit(ref, digits, None, 0.0, epochs=2, seed=1)
    assert weight_matrices(l1)[0].abs().sum() < weight_matrices(ref)[0].abs().sum()


def test_guided_fit_refuses_bad_settings(digits):
    with pytest.raises(ValueError, match="beta"):
        guided_fit(build_mlp((64, 10)), digits, ENN(), -1.0, epochs=1)
    with pytest.raises(ValueError, match="epochs"):
        guided_fit(build_mlp((64, 10)), digits, None, 0.0, epochs=0)


@pytest.mark.slow
def test_value_learning_fits_the_returns_of_real_runs_and_round_trips(digits, tmp_path):
    trajs = collect_trajectories(digits, [(64, 16, 10), (64, 32, 10)], runs=10, epochs=3, seed=0)
    returns = [t.final_val_acc for t in trajs]
    assert np.ptp(returns) > 0.2  # the runs range from poor to good
    states = [s for t in trajs for s in t.states]
    assert len(states) == sum(len(t.states) for t in trajs) and all(len(s.images) == 2 for s in states)
    enn = ENN()
    fit = train_enn(enn, states, epochs=80, seed=0)
    assert fit["r2_train"] > 0.5, fit
    path = tmp_path / "enn.pt"
    save_enn(enn, str(path), name="t")
    back, meta = load_enn(path)
    model = build_mlp((64, 16, 10))
    assert meta == {"name": "t"} and torch.equal(back(model), enn(model))
    torch.save({"kind": "nope"}, tmp_path / "bad.pt")
    with pytest.raises(ValueError, match="not a saved guidance network"):
        load_enn(tmp_path / "bad.pt")


@pytest.mark.slow
def test_a_tiny_zoo_end_to_end(tmp_path):
    """build_zoo -> measure_gains -> fit_recommender -> recommend, on digits with 2 ENNs."""
    from automl.guidance.recommender import DIGITS_POOL, build_zoo, fit_recommender, measure_gains, recommend

    specs = [{"name": "a", "kind": "image", "channels": [4, 8], "dataset": "digits", "pool": DIGITS_POOL[:2], "seed": 0},
             {"name": "s", "kind": "stats", "channels": None, "dataset": "digits", "pool": DIGITS_POOL[:2], "seed": 1}]
    metas = build_zoo(tmp_path, jobs=1, runs=6, guided_runs=2, epochs=2, specs=specs)
    assert [m["name"] for m in metas] == ["a", "s"] and all(m["beta"] > 0 for m in metas)
    archs = [(64, 32, 10), (64, 64, 10), (64, 16, 10)]
    gains = measure_gains(tmp_path, archs=archs, seeds=range(2), epochs=2, jobs=1)
    assert set(gains["table"]) == {"mlp:64-32-10", "mlp:64-64-10", "mlp:64-16-10"}
    assert all(len(c["gains"]) == 2 for cells in gains["table"].values() for c in cells.values())
    more = measure_gains(tmp_path, archs=archs, seeds=range(3), epochs=2, jobs=1, resume=True)  # runs seed 2 only
    assert more["seeds"] == [0, 1, 2]
    for arch, cells in gains["table"].items():
        for name, cell in cells.items():
            assert more["table"][arch][name]["gains"][:2] == cell["gains"] and len(more["table"][arch][name]["gains"]) == 3
    with pytest.raises(ValueError, match="measured at 2 epochs"):
        measure_gains(tmp_path, archs=archs, seeds=range(3), epochs=3, jobs=1, resume=True)
    ev = fit_recommender(tmp_path, n_models=3)
    assert len(ev["per_arch"]) == 3 and 0.0 <= ev["top1_within_0.3"] <= 1.0
    rec = recommend("mlp:64-48-10", top=2, zoo_path=tmp_path)
    assert [r["enn"] for r in rec["recommendations"]] and len(rec["recommendations"]) == 2
    gains_sorted = [r["predicted_gain"] for r in rec["recommendations"]]
    assert gains_sorted == sorted(gains_sorted, reverse=True)
    far = recommend("mlp:784-48-10", zoo_path=tmp_path)
    assert far["confidence"] == "low" and "inputs of size 784" in far["notes"][0]


def test_the_shipped_recommender_ranks_with_evidence_and_flags_what_it_has_not_seen():
    from automl import recommend

    rec = recommend("mlp:784-128-64-10", top=3)
    assert rec["arch"] == "mlp:784-128-64-10" and rec["dataset"] == "mnist5k" and len(rec["recommendations"]) == 3
    preds = [r["predicted_gain"] for r in rec["recommendations"]]
    assert preds == sorted(preds, reverse=True)
    for r in rec["recommendations"]:
        assert r["uncertainty"] >= 0 and r["beta"] > 0
        assert r["evidence"]["trained_on"]["dataset"] in ("mnist5k", "digits")
    far = recommend("mlp:3072-512-10")
    assert far["confidence"] == "low" and "3072" in far["notes"][0]
    with pytest.raises(ValueError, match="hidden width 1"):
        recommend("mlp:784-abc-10")
    with pytest.raises(ValueError, match="top"):
        recommend("mlp:784-64-10", top=0)


def test_cli_recommend():
    res = CliRunner().invoke(cli, ["recommend", "--arch", "mlp:784-256-10", "--top", "2", "--json"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.output)
    assert len(doc["recommendations"]) == 2 and doc["confidence"] in ("normal", "low")
    res = CliRunner().invoke(cli, ["recommend", "--arch", "mlp:784--10"])
    assert res.exit_code == 2 and "part 2" in res.output



def test_the_shown_spread_includes_the_regressors_error_on_architectures_it_did_not_see():
    """The ± of a recommendation is at least the leave-one-architecture-out error, not only the
    bootstrap spread (which is small where the regressor is confidently wrong)."""
    from automl import recommend

    rec = recommend("mlp:784-128-64-10", top=6)
    assert rec["loao_rmse"] > 0.1
    for r in rec["recommendations"]:
        assert r["uncertainty"] >= rec["loao_rmse"] - 1e-3 and r["uncertainty"] >= r["bootstrap_spread"]
    assert any("left out of its fit" in n for n in rec["notes"])


def test_the_output_says_when_no_measured_gain_is_significant():
    from automl.guidance.recommender import holm, measured_gain, recommend

    g = measured_gain([0.5, 0.1, 0.4, 0.2, 0.3])
    assert g["mean"] == 0.3 and g["ci95"][0] < 0.3 < g["ci95"][1] and 0.005 < g["p"] < 0.02
    assert measured_gain([0.1, 0.1])["p"] is None  # no spread: no test
    assert holm({"a": 0.001, "b": 0.03, "c": 0.04}) == {"a"} and holm({"a": 0.03, "b": 0.04}) == set()
    assert holm({"a": 0.02, "b": 0.03}) == {"a", "b"}  # 0.02 <= 0.05/2, then 0.03 <= 0.05/1
    # on mlp:784-64-64-10 the best measured gain has p = 0.07: nothing is significant, and the output says so
    rec = recommend("mlp:784-64-64-10", top=6)
    assert rec["significant"] == [] and any("no measured gain on this architecture is significant" in n for n in rec["notes"])
    assert all(not r["evidence"]["measured_here"]["significant"] for r in rec["recommendations"])
    # on mlp:784-128-64-10 one ENN's gain survives Holm's correction, and only that one is marked
    rec = recommend("mlp:784-128-64-10", top=6)
    marked = [r["enn"] for r in rec["recommendations"] if r["evidence"]["measured_here"]["significant"]]
    assert marked == rec["significant"] == ["img-m5k-narrow"]
    # an architecture nobody measured says that too
    rec = recommend("mlp:784-300-10")
    assert rec["significant"] is None and any("no gain was measured on this architecture" in n for n in rec["notes"])
    res = CliRunner().invoke(cli, ["recommend", "--arch", "mlp:784-64-64-10"], env={"COLUMNS": "160"})
    assert res.exit_code == 0 and "(n.s.)" in res.output and "no measured gain on this architecture is significant" in res.output


def test_enn_train_does_not_write_over_the_shipped_zoo(tmp_path):
    from automl.guidance.recommender import build_zoo, fit_recommender, measure_gains, zoo_dir

    for call in (lambda: build_zoo(jobs=1), lambda: build_zoo(zoo_dir(), jobs=1), lambda: measure_gains(jobs=1),
                 lambda: fit_recommender()):
        with pytest.raises(ValueError, match="write over the shipped zoo"):
            call()
    res = CliRunner().invoke(cli, ["enn", "train", "--out", str(zoo_dir())])
    assert res.exit_code == 2 and "write over the shipped zoo" in res.output


def test_gradcam_maps_back_to_the_weight_matrix():
    from automl.guidance.enn import gradcam

    model = build_mlp((784, 128, 10), seed=0)
    cam = gradcam(ENN(), model, layer=0)
    assert cam.shape == (128, 784) and torch.isfinite(cam).all() and (cam >= 0).all()
    assert gradcam(ENN(), model, layer=1).shape == (10, 128)
    with pytest.raises(ValueError, match="layer must be in 0..1"):
        gradcam(ENN(), model, layer=2)
    with pytest.raises(TypeError, match="image ENN"):
        gradcam(StatsENN(), model)
