"""Tests of the declared search spaces: parameter checks, Optuna / Ray export, model builders."""

from __future__ import annotations

import math

import numpy as np
import optuna
import pytest
import torch
from torch import nn

from search_spaces import SPACES, Categorical, Float, Int, SearchSpace, get_space

optuna.logging.set_verbosity(optuna.logging.WARNING)

FAMILIES = ["mlp", "cnn", "resnet", "resnet_small"]


def _config(family: str, **overrides):
    """A small, valid configuration of ``family``."""
    base = {"lr": 1e-2, "weight_decay": 1e-5, "dropout": 0.1, "batch_size": 64, "optimizer": "adam"}
    extra = {
        "mlp": {"width": 16, "depth": 2, "activation": "relu"},
        "cnn": {"channels": 8, "depth": 3, "activation": "relu"},
        "resnet": {"blocks": 1, "activation": "relu"},
        "resnet_small": {"width": 8, "blocks": 2, "activation": "relu"},
    }[family]
    return {**base, **extra, **overrides}


# -- parameter declarations ------------------------------------------------------------------


@pytest.mark.parametrize(
    "make, fragment",
    [
        (lambda: Float("alpha", 1.0, 0.5), "low must be <= high"),
        (lambda: Float("alpha", 0.0, 1.0, log=True), "log scale"),
        (lambda: Float("alpha", -1.0, 1.0, log=True), "log scale"),
        (lambda: Float("alpha", float("nan"), 1.0), "finite"),
        (lambda: Float("alpha", 0.0, float("inf")), "finite"),
        (lambda: Float("alpha", "0", 1.0), "finite"),
        (lambda: Float("alpha", True, 1.0), "finite"),
        (lambda: Int("alpha", 1.5, 4), "integer"),
        (lambda: Int("alpha", 1, 4.0), "integer"),
        (lambda: Int("alpha", 5, 4), "low must be <= high"),
        (lambda: Int("alpha", 0, 4, log=True), "log scale"),
        (lambda: Int("alpha", False, 4), "integer"),
        (lambda: Categorical("alpha", ()), "must not be empty"),
        (lambda: Categorical("alpha", ("a", "b", "a")), "distinct"),
        (lambda: Categorical("alpha", (1, 2, 2)), "distinct"),
        (lambda: Categorical("alpha", ("a", None)), "str, int, float or bool"),
    ],
)
def test_bad_declaration_is_refused_naming_the_parameter(make, fragment):
    with pytest.raises(ValueError) as info:
        make()
    message = str(info.value)
    assert "alpha" in message
    assert fragment in message


@pytest.mark.parametrize("name", ["", "1st", "has space", "a-b", 3])
def test_parameter_name_must_be_an_identifier(name):
    with pytest.raises(ValueError, match="identifier"):
        Float(name, 0.0, 1.0)


def test_good_declarations_are_accepted():
    assert Float("x", 0.5, 0.5).low == 0.5
    assert Float("x", 1e-5, 1.0, log=True).log
    assert Int("k", 1, 1).high == 1
    assert Categorical("c", ["a", "b"]).choices == ("a", "b")  # list turned into tuple


def test_space_refuses_repeated_parameter_names():
    with pytest.raises(ValueError, match="x"):
        SearchSpace(name="dup", params=(Float("x", 0, 1), Int("x", 0, 3)), builder=None)


def test_get_space_returns_declared_families():
    assert set(SPACES) == set(FAMILIES)
    for name in FAMILIES:
        space = get_space(name)
        assert isinstance(space, SearchSpace)
        assert space.name == name


@pytest.mark.parametrize("bad", ["nope", "MLP", None, 3])
def test_get_space_unknown_lists_valid_names(bad):
    with pytest.raises(ValueError) as info:
        get_space(bad)
    message = str(info.value)
    assert repr(bad) in message
    for name in FAMILIES:
        assert name in message


# -- Optuna export ---------------------------------------------------------------------------


@pytest.mark.parametrize("family", FAMILIES)
def test_suggest_with_a_real_optuna_trial_stays_in_bounds(family):
    space = get_space(family)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(25):
        trial = study.ask()
        config = space.suggest(trial)
        assert sorted(config) == sorted(space.names)
        for p in space.params:
            value = config[p.name]
            assert p.contains(value), (p, value)
            if isinstance(p, (Float, Int)):
                assert p.low <= value <= p.high
            if isinstance(p, Int):
                assert isinstance(value, int)
        assert space.validate(config) == config
        assert trial.params == config
        study.tell(trial, 0.0)


@pytest.mark.parametrize("family", FAMILIES)
def test_distributions_match_names_and_store_a_trial(family):
    space = get_space(family)
    dists = space.distributions()
    assert list(dists) == space.names
    for p in space.params:
        d = dists[p.name]
        if isinstance(p, Float):
            assert isinstance(d, optuna.distributions.FloatDistribution)
            assert (d.low, d.high, d.log) == (p.low, p.high, p.log)
        elif isinstance(p, Int):
            assert isinstance(d, optuna.distributions.IntDistribution)
            assert (d.low, d.high, d.log) == (p.low, p.high, p.log)
        else:
            assert isinstance(d, optuna.distributions.CategoricalDistribution)
            assert tuple(d.choices) == p.choices
    # a configuration sampled from the space can be stored in a study with these distributions
    config = space.sample(np.random.default_rng(1))
    study = optuna.create_study()
    study.add_trial(optuna.trial.create_trial(params=config, distributions=dists, value=1.0))
    assert study.trials[0].params == config


# -- Ray Tune export -------------------------------------------------------------------------


@pytest.mark.parametrize("family", FAMILIES)
def test_param_space_gives_ray_domains_that_sample_inside_bounds(family):
    from ray.tune.search.sample import Domain

    space = get_space(family)
    ps = space.param_space()
    assert list(ps) == space.names
    rng = np.random.default_rng(0)
    for p in space.params:
        domain = ps[p.name]
        assert isinstance(domain, Domain), (p.name, type(domain))
        samples = domain.sample(size=2000, random_state=rng)
        if isinstance(p, Categorical):
            assert set(samples) <= set(p.choices)
            assert set(samples) == set(p.choices)  # every choice reachable
        else:
            values = np.asarray(samples, dtype=float)
            assert values.min() >= p.low, p
            assert values.max() <= p.high, p


def test_ray_int_upper_bound_is_inclusive():
    rng = np.random.default_rng(0)
    for p in (Int("k", 1, 3), Int("k", 1, 3, log=True), get_space("mlp").params[-2]):  # last: depth 1..4
        domain = p.to_ray()
        assert domain.lower == p.low
        samples = np.asarray(domain.sample(size=3000, random_state=rng))
        assert samples.min() >= p.low and samples.max() <= p.high, p
        assert set(samples.tolist()) == set(range(p.low, p.high + 1)), p


def test_ray_float_bounds_and_scale():
    from ray.tune.search.sample import Float as RayFloat, LogUniform

    p = Float("lr", 1e-4, 1e-1, log=True)
    domain = p.to_ray()
    assert isinstance(domain, RayFloat)
    assert (domain.lower, domain.upper) == (1e-4, 1e-1)
    assert isinstance(domain.get_sampler(), LogUniform)
    values = np.asarray(domain.sample(size=4000, random_state=np.random.default_rng(0)))
    # log-uniform: about half the mass below the geometric mean
    frac = float(np.mean(values < math.sqrt(1e-4 * 1e-1)))
    assert 0.45 < frac < 0.55


# -- NumPy sampling and validation -----------------------------------------------------------


@pytest.mark.parametrize("family", FAMILIES)
def test_numpy_sample_validates(family):
    space = get_space(family)
    rng = np.random.default_rng(0)
    for _ in range(200):
        config = space.sample(rng)
        assert space.validate(config) == config


def test_int_log_sample_reaches_both_ends():
    p = Int("k", 1, 3, log=True)
    rng = np.random.default_rng(0)
    values = {p.sample(rng) for _ in range(2000)}
    assert values == {1, 2, 3}


def test_validate_names_missing_key():
    space = get_space("mlp")
    config = _config("mlp")
    del config["width"]
    with pytest.raises(ValueError, match="width"):
        space.validate(config)


@pytest.mark.parametrize(
    "key, value",
    [("lr", 0.5), ("lr", float("nan")), ("depth", 9), ("depth", 2.0), ("activation", "swish"), ("batch_size", 100)],
)
def test_validate_names_out_of_range_value(key, value):
    space = get_space("mlp")
    with pytest.raises(ValueError) as info:
        space.validate(_config("mlp", **{key: value}))
    assert f"{key}=" in str(info.value)


def test_validate_drops_unknown_keys():
    space = get_space("cnn")
    config = _config("cnn", extra="ignored")
    assert "extra" not in space.validate(config)


# -- model builders --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "family, shape",
    [("mlp", (1, 8, 8)), ("mlp", (1, 40)), ("cnn", (1, 8, 8)), ("cnn", (1, 40)), ("resnet", (1, 8, 8)),
     ("resnet_small", (1, 8, 8)), ("resnet_small", (1, 40)), ("resnet_small", (3, 28, 28))],
)
def test_build_model_forward_shape(family, shape):
    torch.manual_seed(0)
    space = get_space(family)
    model = space.build_model(_config(family), shape, 10)
    assert isinstance(model, nn.Module)
    assert isinstance(model.features, nn.Module)
    assert isinstance(model.head, nn.Linear)
    assert model.head.out_features == 10
    x = torch.randn(5, *shape)
    out = model(x)
    assert out.shape == (5, 10)
    assert torch.isfinite(out).all()
    # features end in a flat vector that the head takes
    feats = model.features(x)
    assert feats.shape == (5, model.head.in_features)


def test_cnn_uses_conv1d_for_sequences_and_conv2d_for_images():
    space = get_space("cnn")
    seq = space.build_model(_config("cnn"), (1, 40), 3)
    img = space.build_model(_config("cnn"), (1, 8, 8), 3)
    assert any(isinstance(m, nn.Conv1d) for m in seq.modules())
    assert not any(isinstance(m, nn.Conv2d) for m in seq.modules())
    assert any(isinstance(m, nn.Conv2d) for m in img.modules())


def test_mlp_depth_and_width_honoured():
    model = get_space("mlp").build_model(_config("mlp", depth=3, width=20), (1, 40), 4)
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    assert len(linears) == 4  # 3 hidden + head
    assert linears[0].in_features == 40
    assert all(l.out_features == 20 for l in linears[:3])


def test_resnet_refuses_sequences_naming_the_shape():
    with pytest.raises(ValueError) as info:
        get_space("resnet").build_model(_config("resnet"), (1, 40), 10)
    assert "(1, 40)" in str(info.value)
    assert "resnet" in str(info.value)


def test_cnn_refuses_flat_features():
    with pytest.raises(ValueError, match=r"\(40,\)"):
        get_space("cnn").build_model(_config("cnn"), (40,), 10)


def test_build_model_validates_config():
    with pytest.raises(ValueError, match="channels"):
        get_space("cnn").build_model(_config("cnn", channels=1000), (1, 8, 8), 10)


def test_resnet_activation_is_honoured():
    space = get_space("resnet")
    gelu = space.build_model(_config("resnet", activation="gelu"), (1, 8, 8), 10)
    assert not any(isinstance(m, nn.ReLU) for m in gelu.modules())
    assert any(isinstance(m, nn.GELU) for m in gelu.modules())
    relu = space.build_model(_config("resnet", activation="relu"), (1, 8, 8), 10)
    assert any(isinstance(m, nn.ReLU) for m in relu.modules())
    assert not any(isinstance(m, nn.GELU) for m in relu.modules())
    assert gelu(torch.randn(2, 1, 8, 8)).shape == (2, 10)


@pytest.mark.parametrize("family, activation, cls", [("mlp", "tanh", nn.Tanh), ("cnn", "sigmoid", nn.Sigmoid), ("mlp", "gelu", nn.GELU)])
def test_mlp_cnn_activation_is_honoured(family, activation, cls):
    model = get_space(family).build_model(_config(family, activation=activation), (1, 8, 8), 10)
    assert any(isinstance(m, cls) for m in model.modules())
    assert not any(isinstance(m, nn.ReLU) for m in model.modules())


def test_resnet_blocks_choose_depth():
    space = get_space("resnet")
    n = lambda m: sum(isinstance(x, nn.Conv2d) for x in m.modules())  # noqa: E731
    small = space.build_model(_config("resnet", blocks=1), (3, 8, 8), 10)
    big = space.build_model(_config("resnet", blocks=2), (3, 8, 8), 10)
    assert n(big) > n(small)
    assert small(torch.randn(2, 3, 8, 8)).shape == (2, 10)  # three input channels accepted


def test_resnet_small_is_he_et_al_cifar_resnet():
    """ResNet-20 (He et al. 2016, §4.2): width 16, 3 blocks a stage, 0.27M parameters."""
    space = get_space("resnet_small")
    model = space.build_model(_config("resnet_small", width=16, blocks=3), (3, 32, 32), 10)
    n_params = sum(p.numel() for p in model.parameters())
    assert 0.26e6 < n_params < 0.28e6
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3)]
    assert len(convs) == 1 + 3 * 3 * 2  # stem + 3 stages x 3 blocks x 2 convs: 19 conv + 1 fc = 20 layers
    assert model.head.in_features == 64
