"""The neural capacitance probe attached to real training: shadow and head modes."""

import pytest
import torch
from torch import nn

from automl.signals import beta_eff
from automl.training.data import load_dataset
from automl.training.ncp import NCP, find_features, find_head, install_ncp_head
from automl.training.probe import Probe
from automl.training.trainer import fit
from search_spaces import get_space

CFG = {"lr": 1e-2, "weight_decay": 1e-5, "dropout": 0.1, "batch_size": 64, "optimizer": "adam",
       "width": 32, "depth": 2, "activation": "relu"}


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


def build(seed=0):
    torch.manual_seed(seed)
    return get_space("mlp").build_model(CFG, (1, 8, 8), 10)


def test_shadow_ncp_leaves_the_candidate_bit_identical(digits):
    plain, shadow = build(), build()
    a = fit(plain, digits, epochs=2, lr=1e-2, seed=3)
    b = fit(shadow, digits, epochs=2, lr=1e-2, seed=3, ncp="shadow", every_k_steps=5)
    assert [r.val_loss for r in a.records] == [r.val_loss for r in b.records]
    for p, q in zip(plain.state_dict().values(), shadow.state_dict().values()):
        assert torch.equal(p, q)
    assert all(r.beta_eff is None for r in a.records)
    rec = b.records[-1]
    assert rec.beta_eff > 0 and set(rec.capacitance) == {"product", "downstream", "ncp_train_loss", "ncp_train_acc"}
    assert 0.0 <= rec.capacitance["ncp_train_acc"] <= 1.0
    assert len(rec.activations.beta_eff) == len(rec.activations.steps) > 0


def test_recorded_beta_is_the_closed_form_of_the_ncp_weights(digits):
    model = build()
    x, y = digits.x_train[:128], digits.y_train[:128]
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with Probe(model, ncp="shadow", beta_weighting="downstream") as probe:
        for _ in range(3):
            opt.zero_grad()
            nn.functional.cross_entropy(model(x), y).backward()
            opt.step()
            probe.step(targets=y)
        rec = probe.end_epoch()
        ws = probe.ncp.linear_weights()
        assert [w.shape[1] for w in ws][0] == model.head.in_features
        assert rec.beta_eff == pytest.approx(beta_eff(ws, "downstream"), rel=1e-12)
        assert rec.capacitance["product"] == pytest.approx(beta_eff(ws, "product"), rel=1e-12)


def test_shadow_needs_the_batch_labels():
    model = build()
    probe = Probe(model, ncp="shadow")
    model(torch.randn(4, 1, 8, 8)).sum().backward()
    with pytest.raises(ValueError, match="targets=yb"):
        probe.step()
    probe.close()


def test_head_mode_trains_the_ncp_as_the_output_layer(digits):
    model = build()
    ncp = fit(model, digits, epochs=1, lr=1e-2, seed=0, ncp="head").records
    assert isinstance(model.head, NCP)
    assert model(digits.x_val[:5]).shape == (5, 10)
    assert ncp[-1].beta_eff == pytest.approx(beta_eff(model.head.linear_weights()), rel=1e-12)
    # the NCP's layers are watched by the probe like any other layer
    assert any(l.name.startswith("head.net") for l in ncp[-1].layers)


def test_head_mode_without_an_installed_ncp_says_what_to_do():
    with pytest.raises(ValueError, match="install_ncp_head"):
        Probe(build(), ncp="head")


def test_install_ncp_head_keeps_shapes_and_the_callers_random_stream():
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 16), nn.ReLU(), nn.Linear(16, 3))
    torch.manual_seed(7)
    want = torch.rand(3)
    torch.manual_seed(7)
    install_ncp_head(model, hidden=(8, 8), seed=1)
    assert torch.equal(torch.rand(3), want)
    assert isinstance(model[3], NCP) and model(torch.randn(2, 64)).shape == (2, 3)
    assert [tuple(w.shape) for w in model[3].linear_weights()] == [(8, 16), (8, 8), (3, 8)]


def test_features_and_head_are_found_or_the_error_says_how_to_name_them():
    seq = nn.Sequential(nn.Flatten(), nn.Linear(64, 10))
    assert find_features(seq)[0] == "0" and find_head(seq)[0] == "1"
    assert find_features(build())[0] == "features" and find_head(build())[0] == "head"

    class Odd(nn.Module):
        def __init__(self):
            super().__init__()
            self.body = nn.Linear(4, 4)
            self.out = nn.Linear(4, 2)

        def forward(self, x):
            return self.out(self.body(x))

    with pytest.raises(ValueError, match="features='...'"):
        find_features(Odd())
    with pytest.raises(ValueError, match="head='...'"):
        find_head(Odd())
    with pytest.raises(ValueError, match="'nope' is not a module"):
        find_features(Odd(), "nope")
    probe = Probe(Odd(), ncp="shadow", features="body")  # named explicitly, it works
    probe.close()


@pytest.mark.parametrize("kwargs, message", [({"ncp": "tail"}, "ncp must be"), ({"beta_weighting": "x"}, "beta_weighting")])
def test_bad_probe_options_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Probe(build(), **kwargs)


def test_the_ncp_never_reseeds_the_callers_cuda_stream(digits, monkeypatch):
    """torch.manual_seed also reseeds CUDA, which fork_rng(devices=[]) does not restore."""

    def forbidden(*args):
        raise AssertionError("the CUDA generator was reseeded")

    model, other = build(), build()
    monkeypatch.setattr(torch.cuda, "manual_seed_all", forbidden)
    monkeypatch.setattr(torch.cuda, "manual_seed", forbidden)
    install_ncp_head(model, seed=2)
    fit(other, digits, epochs=1, lr=1e-2, seed=3, ncp="shadow")


@pytest.mark.parametrize("kwargs, message", [({"ncp_hidden": (16,)}, "two or more"), ({"ncp_lr": -1.0}, "ncp_lr"),
                                             ({"ncp_classes": 1}, "ncp_classes")])
def test_bad_shadow_options_fail_at_construction(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Probe(build(), ncp="shadow", **kwargs)


def test_bad_targets_are_named_and_do_not_lose_the_batch():
    model = build()
    with Probe(model, ncp="shadow") as probe:
        model(torch.randn(4, 1, 8, 8)).sum().backward()
        with pytest.raises(ValueError, match="1-D integer tensor of 4 labels, but got \\(4, 10\\)"):
            probe.step(targets=torch.randn(4, 10))
        probe.step(targets=torch.tensor([0, 1, 2, 3]))  # the same batch, with labels
        assert probe.ncp is not None
