"""Tests of the training probe on real models and real optimizer steps."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from automl.records import EpochRecord
from automl.training.probe import Probe, auto_every_k_steps, find_layers


def _mlp(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 8), nn.Tanh(), nn.Linear(8, 3))


def _batch(seed: int = 1, n: int = 16):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 4, generator=g), torch.randint(0, 3, (n,), generator=g)


def _train_steps(model, opt, steps, probe=None, seed=1):
    x, y = _batch(seed, n=8 * steps)
    losses = []
    for i in range(steps):
        xb, yb = x[8 * i : 8 * (i + 1)], y[8 * i : 8 * (i + 1)]
        opt.zero_grad(set_to_none=True)
        loss = nn.functional.cross_entropy(model(xb), yb)
        loss.backward()
        opt.step()
        if probe is not None:
            probe.step()
        losses.append(loss.item())
    return losses


# -- layers and records ----------------------------------------------------------------------


def test_find_layers_lists_weighted_layers_in_order():
    model = nn.Sequential(nn.Conv1d(1, 2, 3), nn.BatchNorm1d(2), nn.ReLU(), nn.Flatten(), nn.Linear(4, 3))
    names = [n for n, _ in find_layers(model)]
    assert names == ["0", "4"]  # BatchNorm's weight is rank 1: not watched
    assert find_layers(model)[1][1] is model[4]


def test_one_record_per_epoch_with_numbering_steps_and_layers():
    model = _mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    probe = Probe(model, probe_batch=_batch(7)[0], optimizer=opt)
    _train_steps(model, opt, 3, probe)
    r1 = probe.end_epoch(train_loss=1.0, val_loss=0.9, val_acc=0.4)
    _train_steps(model, opt, 4, probe, seed=2)
    r2 = probe.end_epoch(train_loss=0.8, val_loss=0.7, val_acc=0.5)
    probe.close()

    assert isinstance(r1, EpochRecord) and isinstance(r2, EpochRecord)
    assert (r1.epoch, r1.step) == (1, 3)
    assert (r2.epoch, r2.step) == (2, 7)
    assert probe.records == [r1, r2]
    expected = [n for n, _ in find_layers(model)]
    assert expected == ["0", "2", "4"]
    for rec in (r1, r2):
        assert [l.name for l in rec.layers] == expected
        assert rec.lr == pytest.approx(0.05)
        assert rec.wall_time is not None and rec.wall_time >= 0
        assert rec.activations is None  # no every_k_steps
        for layer in rec.layers:
            assert layer.grad_norm is not None and layer.grad_norm > 0
            assert 0.0 <= layer.zero_grad_frac < 0.5
            assert math.isfinite(layer.act_rms) and layer.act_rms > 0
            assert layer.weight_norm > 0 and layer.weight_abs_max > 0 and layer.weight_std > 0
    assert (r2.val_loss, r2.val_acc, r2.train_loss) == (0.7, 0.5, 0.8)


def test_weight_stats_match_the_weights():
    model = _mlp()
    probe = Probe(model)
    rec = probe.end_epoch()
    probe.close()
    w = model[2].weight.detach()
    stats = rec.layers[1]
    assert stats.weight_mean == pytest.approx(float(w.mean()), rel=1e-5)
    assert stats.weight_std == pytest.approx(float(w.std()), rel=1e-5)
    assert stats.weight_norm == pytest.approx(float(w.norm()), rel=1e-5)
    assert stats.weight_abs_max == pytest.approx(float(w.abs().max()), rel=1e-5)
    # no step taken, no probe batch: gradient and activation statistics are missing, not zero
    assert stats.grad_norm is None and stats.zero_grad_frac is None and stats.act_rms is None
    assert rec.step == 0 and rec.lr is None


def test_grad_norm_is_mean_of_step_norms():
    model = _mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.0)  # weights stay put, gradients are real
    probe = Probe(model, optimizer=opt)
    x, y = _batch(3)
    norms = []
    for i in range(2):
        opt.zero_grad()
        nn.functional.cross_entropy(model(x[8 * i : 8 * i + 8]), y[8 * i : 8 * i + 8]).backward()
        norms.append(float(model[0].weight.grad.norm()))
        opt.step()
        probe.step()
    rec = probe.end_epoch()
    probe.close()
    assert rec.layers[0].grad_norm == pytest.approx(sum(norms) / 2, rel=1e-5)


def test_grad_every_samples_fewer_steps():
    model = _mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.0)
    probe = Probe(model, optimizer=opt, grad_every=3)
    x, y = _batch(3)
    norms = []
    for i in range(6):
        opt.zero_grad()
        nn.functional.cross_entropy(model(x[i : i + 4]), y[i : i + 4]).backward()
        norms.append(float(model[4].weight.grad.norm()))
        opt.step()
        probe.step()
    rec = probe.end_epoch()
    probe.close()
    assert rec.step == 6
    assert rec.layers[2].grad_norm == pytest.approx((norms[2] + norms[5]) / 2, rel=1e-5)


class _TwoBranch(nn.Module):
    """A healthy branch and a dead one: ``dead`` feeds a ReLU that never fires."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Linear(4, 8)
        self.head = nn.Linear(8, 3)
        self.dead = nn.Linear(4, 3)
        with torch.no_grad():
            self.dead.bias.fill_(-100.0)

    def forward(self, x):
        return self.head(torch.tanh(self.a(x))) + torch.relu(self.dead(x))


def test_zero_grad_frac_is_one_for_a_dead_layer():
    torch.manual_seed(0)
    model = _TwoBranch()
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    probe = Probe(model, probe_batch=_batch(5)[0], optimizer=opt)
    _train_steps(model, opt, 4, probe)
    rec = probe.end_epoch()
    probe.close()
    stats = {l.name: l for l in rec.layers}
    assert list(stats) == ["a", "head", "dead"]
    assert stats["dead"].zero_grad_frac == pytest.approx(1.0)
    assert stats["dead"].grad_norm == 0.0
    assert stats["dead"].act_rms > 50  # its output (before the ReLU) is about -100
    for name in ("a", "head"):
        assert stats[name].zero_grad_frac < 0.5
        assert stats[name].grad_norm > 0
    assert rec.zero_grad_frac == pytest.approx((stats["a"].zero_grad_frac + stats["head"].zero_grad_frac + 1.0) / 3)


def test_activation_trace_every_k_steps():
    model = _mlp()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    probe = Probe(model, probe_batch=_batch(9)[0], optimizer=opt, every_k_steps=2)
    _train_steps(model, opt, 10, probe)
    rec = probe.end_epoch()
    trace = rec.activations
    assert trace is not None
    assert trace.steps == [2, 4, 6, 8, 10]
    assert len(trace.rms) == 5
    assert all(len(row) == len(rec.layers) == 3 for row in trace.rms)
    assert all(math.isfinite(v) and v > 0 for row in trace.rms for v in row)
    # weights change between logged steps, so do the activations
    assert trace.rms[0] != trace.rms[-1]
    # the trace restarts with each epoch
    _train_steps(model, opt, 3, probe, seed=4)
    rec2 = probe.end_epoch()
    probe.close()
    assert rec2.activations.steps == [12]


def test_act_rms_matches_a_manual_forward():
    model = _mlp()
    xb = _batch(9)[0]
    probe = Probe(model, probe_batch=xb)
    rec = probe.end_epoch()
    probe.close()
    with torch.no_grad():
        h0 = model[0](xb)
    assert rec.layers[0].act_rms == pytest.approx(float(h0.pow(2).mean().sqrt()), rel=1e-5)


@pytest.mark.parametrize("training", [True, False])
def test_model_mode_restored_after_end_epoch(training):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.Dropout(0.5), nn.BatchNorm1d(8), nn.Linear(8, 3))
    model.train(training)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    probe = Probe(model, probe_batch=_batch(2)[0], optimizer=opt, every_k_steps=1)
    x, y = _batch(3)
    opt.zero_grad()
    nn.functional.cross_entropy(model(x), y).backward()
    opt.step()
    probe.step()
    assert model.training is training
    assert all(m.training is training for m in model.modules())
    probe.end_epoch()
    assert model.training is training
    assert all(m.training is training for m in model.modules())
    probe.close()


def _dropout_bn_model():
    return nn.Sequential(
        nn.Linear(4, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Dropout(0.3), nn.Linear(16, 16), nn.ReLU(),
        nn.Dropout(0.3), nn.Linear(16, 3),
    )


def _run(with_probe: bool):
    torch.manual_seed(123)
    model = _dropout_bn_model()
    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    probe = Probe(model, probe_batch=_batch(11)[0], optimizer=opt, every_k_steps=1) if with_probe else None
    losses = _train_steps(model, opt, 6, probe)
    if probe is not None:
        probe.end_epoch()
    losses += _train_steps(model, opt, 4, probe, seed=5)
    if probe is not None:
        probe.end_epoch()
        probe.close()
    return model, losses


def test_probe_does_not_change_training():
    plain, plain_losses = _run(with_probe=False)
    probed, probed_losses = _run(with_probe=True)
    assert plain_losses == probed_losses
    for (name, a), (_, b) in zip(plain.state_dict().items(), probed.state_dict().items()):
        assert torch.equal(a, b), name  # parameters and BatchNorm running statistics alike
    # ... and training did happen
    torch.manual_seed(123)
    assert not torch.equal(_dropout_bn_model()[0].weight, plain[0].weight)


def test_close_removes_hooks():
    model = _mlp()
    before = {n: len(m._forward_hooks) for n, m in model.named_modules()}
    probe = Probe(model, probe_batch=_batch(1)[0])
    watched = [m for _, m in find_layers(model)]
    assert all(len(m._forward_hooks) == 1 for m in watched)
    probe.close()
    assert all(len(m._forward_hooks) == 0 for m in watched)
    assert {n: len(m._forward_hooks) for n, m in model.named_modules()} == before
    probe.close()  # twice is harmless


def test_context_manager_closes():
    model = _mlp()
    with Probe(model, probe_batch=_batch(1)[0]) as probe:
        assert len(model[0]._forward_hooks) == 1
        probe.end_epoch()
    assert len(model[0]._forward_hooks) == 0


def test_custom_layers_argument():
    model = _mlp()
    probe = Probe(model, probe_batch=_batch(1)[0], layers=["4", "0"])
    rec = probe.end_epoch()
    probe.close()
    assert [l.name for l in rec.layers] == ["4", "0"]
    assert probe.layer_names == ["4", "0"]


def test_nan_gradients_are_recorded_not_raised():
    model = _mlp()
    with torch.no_grad():
        model[0].weight[0, 0] = float("nan")
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    probe = Probe(model, probe_batch=_batch(2)[0], optimizer=opt, every_k_steps=1)
    losses = _train_steps(model, opt, 2, probe)
    rec = probe.end_epoch(train_loss=losses[-1])
    probe.close()
    assert math.isnan(rec.train_loss)
    assert all(math.isnan(l.grad_norm) for l in rec.layers)
    assert all(math.isnan(l.act_rms) for l in rec.layers)
    assert math.isnan(rec.layers[0].weight_norm)
    assert math.isnan(rec.metric("train_loss"))
    assert all(math.isnan(v) for row in rec.activations.rms for v in row)
    # serialised as null, read back as None
    back = EpochRecord.model_validate_json(rec.model_dump_json())
    assert back.train_loss is None
    assert back.layers[0].grad_norm is None and back.layers[0].act_rms is None
    assert back.activations.rms[0][0] is None
    assert back.layers[0].name == "0"
    assert math.isnan(back.metric("train_loss"))


def test_huge_lr_divergence_recorded():
    model = _mlp()
    opt = torch.optim.SGD(model.parameters(), lr=1e30)
    probe = Probe(model, probe_batch=_batch(2)[0], optimizer=opt)
    losses = _train_steps(model, opt, 4, probe)
    rec = probe.end_epoch(train_loss=losses[-1])
    probe.close()
    assert not math.isfinite(losses[-1])
    assert any(not math.isfinite(l.weight_norm) or not math.isfinite(l.grad_norm) for l in rec.layers)
    assert isinstance(rec.model_dump_json(), str)


def test_missing_gradient_is_nan():
    model = _mlp()
    model[0].weight.requires_grad_(False)
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    probe = Probe(model, optimizer=opt)
    _train_steps(model, opt, 2, probe)
    rec = probe.end_epoch()
    probe.close()
    assert math.isnan(rec.layers[0].grad_norm) and math.isnan(rec.layers[0].zero_grad_frac)
    assert rec.layers[1].grad_norm > 0


@pytest.mark.parametrize(
    "kwargs, fragment",
    [
        ({"every_k_steps": 0}, "every_k_steps=0"),
        ({"every_k_steps": -3}, "every_k_steps=-3"),
        ({"every_k_steps": True}, "every_k_steps=True"),
        ({"grad_every": 0}, "grad_every=0"),
        ({"grad_every": False}, "grad_every=False"),
        ({"layers": ["nope"]}, "nope"),
        ({"layers": ["0", "head"]}, "head"),
    ],
)
def test_bad_arguments_raise_naming_the_value(kwargs, fragment):
    with pytest.raises(ValueError) as info:
        Probe(_mlp(), **kwargs)
    assert fragment in str(info.value)


def test_non_module_refused():
    with pytest.raises(TypeError, match="list"):
        Probe([nn.Linear(2, 2)])


def test_model_without_weighted_layers_refused():
    with pytest.raises(ValueError, match="layers="):
        Probe(nn.Sequential(nn.ReLU(), nn.BatchNorm1d(3)))


@pytest.mark.parametrize("batch", [torch.zeros(0, 4), [1.0, 2.0], torch.tensor(1.0)])
def test_bad_probe_batch_refused(batch):
    with pytest.raises(ValueError, match="probe_batch"):
        Probe(_mlp(), probe_batch=batch)


def test_record_round_trips_through_json():
    model = _mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    probe = Probe(model, probe_batch=_batch(2)[0], optimizer=opt, every_k_steps=2)
    _train_steps(model, opt, 4, probe)
    rec = probe.end_epoch(train_loss=0.5, val_loss=float("nan"), val_acc=0.25, test_loss=float("inf"))
    probe.close()
    text = rec.model_dump_json()
    assert "NaN" not in text and "Infinity" not in text
    back = EpochRecord.model_validate_json(text)
    assert back.val_loss is None and back.test_loss is None
    assert back.val_acc == 0.25 and back.train_loss == 0.5
    assert back.model_dump(exclude={"val_loss", "test_loss"}) == rec.model_dump(exclude={"val_loss", "test_loss"})


def test_auto_k_gives_about_200_points():
    k = auto_every_k_steps(3000, 32, 30)
    steps = math.ceil(3000 / 32) * 30
    assert 190 <= steps // k <= 400
    assert auto_every_k_steps(10, 64, 1) == 1
