"""Tests of the reference trainer on the bundled digits data."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

import automl
from automl.records import EpochRecord
from automl.training.data import load_dataset
from automl.training.trainer import TrainResult, evaluate, fit, make_optimizer, train
from search_spaces import get_space

CFG = {
    "lr": 1e-2,
    "weight_decay": 1e-5,
    "dropout": 0.0,
    "batch_size": 64,
    "optimizer": "adam",
    "width": 32,
    "depth": 1,
    "activation": "relu",
}
FAST = dict(CFG, batch_size=256, width=16)  # 5 steps an epoch, for tests that do not need accuracy


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


@pytest.fixture(scope="module")
def mlp():
    return get_space("mlp")


@pytest.fixture(scope="module")
def three_epochs(mlp, digits):
    return train(mlp, CFG, digits, epochs=3, seed=0)


def test_train_learns_digits(three_epochs):
    res = three_epochs
    assert isinstance(res, TrainResult)
    assert res.epochs == 3 and not res.stopped_early
    assert [r.epoch for r in res.records] == [1, 2, 3]
    steps = [r.step for r in res.records]
    assert steps == [17, 34, 51]  # ceil(1077 / 64) = 17 steps per epoch
    assert res.final("val_acc") > 0.5
    assert res.final("val_acc") == res.records[-1].val_acc
    assert res.records[-1].val_loss < res.records[0].train_loss


def test_train_records_are_complete(three_epochs):
    for rec in three_epochs.records:
        assert isinstance(rec, EpochRecord)
        for name in ("train_loss", "train_acc", "val_loss", "val_acc", "test_loss", "test_acc"):
            v = rec.metric(name)
            assert math.isfinite(v), name
            if name.endswith("acc"):
                assert 0.0 <= v <= 1.0
        assert rec.lr == pytest.approx(CFG["lr"])
        assert [l.name for l in rec.layers] == ["features.1", "head"]
        assert all(l.grad_norm > 0 and math.isfinite(l.act_rms) for l in rec.layers)


def test_train_val_metrics_match_evaluate(mlp, digits):
    # rebuild the model train() builds, fit it the same way, and check against evaluate()
    torch.manual_seed(0)
    model = mlp.build_model(CFG, digits.input_shape, digits.n_classes)
    res = fit(model, digits, epochs=1, lr=CFG["lr"], batch_size=64, seed=0, weight_decay=CFG["weight_decay"])
    val_loss, val_acc = evaluate(model, digits.x_val, digits.y_val)
    test_loss, test_acc = evaluate(model, digits.x_test, digits.y_test)
    rec = res.records[0]
    assert rec.val_loss == pytest.approx(val_loss) and rec.val_acc == val_acc
    assert rec.test_loss == pytest.approx(test_loss) and rec.test_acc == test_acc
    # and train() with the same seed gives that same model
    again = train(mlp, CFG, digits, epochs=1, seed=0)
    assert again.records[0].val_loss == rec.val_loss


def test_every_k_steps_trace(mlp, digits):
    res = train(mlp, FAST, digits, epochs=1, seed=0, every_k_steps=2)
    trace = res.records[0].activations
    assert trace.steps == [2, 4]
    assert all(len(row) == 2 for row in trace.rms)


def test_on_epoch_true_stops_early(mlp, digits):
    seen = []

    def on_epoch(rec):
        seen.append(rec.epoch)
        return rec.epoch >= 2

    res = train(mlp, FAST, digits, epochs=5, seed=0, on_epoch=on_epoch)
    assert res.stopped_early
    assert res.epochs == 2 < 5
    assert seen == [1, 2]


def test_on_epoch_true_at_last_epoch_is_not_early(mlp, digits):
    res = train(mlp, FAST, digits, epochs=1, seed=0, on_epoch=lambda rec: True)
    assert res.epochs == 1 and not res.stopped_early


def test_on_epoch_truthy_non_true_does_not_stop(mlp, digits):
    res = train(mlp, FAST, digits, epochs=2, seed=0, on_epoch=lambda rec: 1)
    assert res.epochs == 2 and not res.stopped_early


class _Stop(Exception):
    pass


def test_exception_in_on_epoch_propagates_and_hooks_are_removed(mlp, digits):
    torch.manual_seed(0)
    model = mlp.build_model(CFG, digits.input_shape, digits.n_classes)
    seen = []

    def on_epoch(rec):
        seen.append(rec.epoch)
        raise _Stop(f"stop at {rec.epoch}")

    with pytest.raises(_Stop, match="stop at 1"):
        fit(model, digits, epochs=3, lr=1e-2, batch_size=256, on_epoch=on_epoch)
    assert seen == [1]
    assert all(len(m._forward_hooks) == 0 for m in model.modules())

    with pytest.raises(_Stop):
        train(mlp, FAST, digits, epochs=3, seed=0, on_epoch=on_epoch)


def test_divergence_is_recorded_not_raised(mlp, digits):
    torch.manual_seed(1)
    model = mlp.build_model(dict(FAST, depth=2), digits.input_shape, digits.n_classes)
    res = fit(model, digits, epochs=2, lr=1e8, optimizer="sgd", batch_size=256, seed=1)
    assert res.epochs == 2
    for rec in res.records:
        assert math.isnan(rec.metric("train_loss"))
        assert math.isnan(rec.metric("val_loss"))
        assert not all(math.isfinite(l.grad_norm) and math.isfinite(l.weight_norm) for l in rec.layers)
    assert math.isnan(res.final("val_loss"))
    back = EpochRecord.model_validate_json(res.records[-1].model_dump_json())
    assert back.val_loss is None and back.train_loss is None


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"epochs": 0}, "epochs"),
        ({"epochs": -1}, "epochs"),
        ({"epochs": True}, "epochs"),
        ({"batch_size": 0}, "batch_size"),
        ({"batch_size": False}, "batch_size"),
        ({"lr": 0.0}, "lr"),
        ({"lr": -1e-3}, "lr"),
        ({"lr": float("nan")}, "lr"),
        ({"lr": float("inf")}, "lr"),
        ({"lr": "0.1"}, "lr"),
    ],
)
def test_fit_invalid_arguments_name_the_argument(mlp, digits, kwargs, name):
    model = mlp.build_model(CFG, digits.input_shape, digits.n_classes)
    args = {"epochs": 1, "lr": 1e-2, "batch_size": 64, **kwargs}
    with pytest.raises(ValueError) as info:
        fit(model, digits, **args)
    assert f"{name}=" in str(info.value)


def test_fit_refuses_bool_lr(mlp, digits):
    """``epochs=True`` and ``batch_size=True`` are refused; ``lr=True`` should be too."""
    model = mlp.build_model(CFG, digits.input_shape, digits.n_classes)
    with pytest.raises(ValueError, match="lr="):
        fit(model, digits, epochs=1, lr=True, batch_size=256)


def test_train_invalid_epochs_and_config(mlp, digits):
    with pytest.raises(ValueError, match="epochs="):
        train(mlp, CFG, digits, epochs=0)
    with pytest.raises(ValueError, match="lr="):
        train(mlp, dict(CFG, lr=10.0), digits, epochs=1)  # outside the declared space
    with pytest.raises(ValueError, match="batch_size="):
        train(mlp, dict(CFG, batch_size=0), digits, epochs=1)


def test_unknown_optimizer(mlp, digits):
    model = mlp.build_model(CFG, digits.input_shape, digits.n_classes)
    with pytest.raises(ValueError, match="'lbfgs'"):
        fit(model, digits, epochs=1, lr=1e-2, optimizer="lbfgs")
    with pytest.raises(ValueError, match="adam"):
        make_optimizer("nope", model.parameters(), lr=0.1)


@pytest.mark.parametrize("name", ["adam", "adamw", "sgd"])
def test_make_optimizer(name):
    params = [nn.Parameter(torch.zeros(2))]
    opt = make_optimizer(name, params, lr=0.3, weight_decay=0.01)
    assert opt.param_groups[0]["lr"] == 0.3
    assert opt.param_groups[0]["weight_decay"] == 0.01


def test_same_seed_same_result(mlp, digits):
    a = train(mlp, FAST, digits, epochs=1, seed=3)
    b = train(mlp, FAST, digits, epochs=1, seed=3)
    c = train(mlp, FAST, digits, epochs=1, seed=4)
    assert a.final("val_loss") == b.final("val_loss")
    assert [l.weight_norm for l in a.records[0].layers] == [l.weight_norm for l in b.records[0].layers]
    assert a.final("val_loss") != c.final("val_loss")


def test_same_seed_same_result_with_dropout(mlp, digits):
    """The search space declares dropout in [0, 0.5]; a seeded run must still repeat."""
    cfg = dict(FAST, dropout=0.3)
    a = train(mlp, cfg, digits, epochs=1, seed=3)
    b = train(mlp, cfg, digits, epochs=1, seed=3)
    assert a.final("train_loss") == b.final("train_loss")
    assert a.final("val_loss") == b.final("val_loss")


def test_train_does_not_touch_global_rng(mlp, digits):
    torch.manual_seed(42)
    expected = torch.rand(3)
    torch.manual_seed(42)
    train(mlp, FAST, digits, epochs=1, seed=0)  # no dropout: nothing global is drawn
    assert torch.equal(torch.rand(3), expected)


def test_cnn_trains_on_digits(digits):
    cfg = {"lr": 1e-2, "weight_decay": 1e-5, "dropout": 0.0, "batch_size": 128, "optimizer": "adam",
           "channels": 8, "depth": 2, "activation": "relu"}
    res = automl.train(get_space("cnn"), cfg, digits, epochs=1, seed=0)
    assert res.epochs == 1
    assert math.isfinite(res.final("val_loss"))
    assert [l.name for l in res.records[0].layers] == ["features.0", "features.4", "head"]


def test_a_schedule_runs_to_the_budget(mlp, digits):
    """Cosine anneals to 0 at the run's last step; step divides by 10 at half and three quarters."""
    from automl.training.trainer import make_schedule

    for name, mid, end in (("cosine", 0.5, 0.0), ("step", 0.1, 0.01)):
        opt = make_optimizer("sgd", [nn.Parameter(torch.zeros(1))], lr=1.0)
        sched = make_schedule(name, opt, total_steps=100)
        lrs = []
        for _ in range(100):
            lrs.append(opt.param_groups[0]["lr"])
            opt.step()
            sched.step()
        assert lrs[0] == 1.0 and lrs[50] == pytest.approx(mid, abs=1e-9) and opt.param_groups[0]["lr"] == pytest.approx(end, abs=1e-9)
    assert make_schedule("constant", make_optimizer("sgd", [nn.Parameter(torch.zeros(1))], lr=1.0), total_steps=5) is None
    with pytest.raises(ValueError, match="unknown schedule 'linear'; choose one of constant, cosine, step"):
        train(mlp, dict(FAST, schedule="linear"), digits, epochs=1, seed=0)
    # the schedule comes from the config: a cosine run differs from a constant one of the same seed
    plain = train(mlp, FAST, digits, epochs=2, seed=0).final("val_loss")
    assert train(mlp, dict(FAST, schedule="cosine"), digits, epochs=2, seed=0).final("val_loss") != plain
