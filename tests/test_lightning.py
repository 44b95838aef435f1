"""The PyTorch Lightning callback (``automl.integrations.lightning``) on a real ``Trainer`` (CPU).

Lightning is an optional extra: without it these tests skip, unless ``AUTOML_REQUIRE_LIGHTNING``
is set (CI installs the extra and sets it), where a missing Lightning fails them instead.
"""

from __future__ import annotations

import importlib
import math
import os
import subprocess
import sys

import optuna
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import automl
from automl.reporting import records_of
from pruners import SignalPruner

pytestmark = [
    pytest.mark.filterwarnings("ignore::UserWarning:lightning.*"),  # few dataloader workers, no logger, ...
    pytest.mark.filterwarnings("ignore::FutureWarning:lightning.*"),
    pytest.mark.filterwarnings("ignore::DeprecationWarning:lightning.*"),
]

EPOCHS = 4


def _missing_lightning() -> str | None:
    try:
        import lightning.pytorch  # noqa: F401
    except ImportError as exc:
        return str(exc)
    return None


@pytest.fixture(scope="module")
def pl():
    """``lightning.pytorch``; where it is missing these tests skip, or fail under AUTOML_REQUIRE_LIGHTNING."""
    missing = _missing_lightning()
    if missing:
        if os.environ.get("AUTOML_REQUIRE_LIGHTNING"):
            pytest.fail(f"AUTOML_REQUIRE_LIGHTNING is set, but Lightning does not import ({missing}): "
                        "pip install -e '.[lightning]'", pytrace=False)
        pytest.skip(f"Lightning is not installed ({missing}): pip install -e '.[lightning]'")
    import lightning.pytorch

    return lightning.pytorch


@pytest.fixture(scope="module")
def Callback(pl):
    from automl.integrations.lightning import SignalPruningCallback

    return SignalPruningCallback


@pytest.fixture(scope="module")
def DigitsMLP(pl):
    class DigitsMLP(pl.LightningModule):
        """A small MLP on 8x8 digits; logs what the callback reads under its default names."""

        def __init__(self, lr: float) -> None:
            super().__init__()
            self.lr = lr
            self.net = nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.net(x)

        def training_step(self, batch, batch_idx):
            x, y = batch
            out = self(x)
            loss = nn.functional.cross_entropy(out, y)
            self.log("train_loss", loss)
            self.log("train_acc", (out.argmax(1) == y).float().mean())
            return loss

        def validation_step(self, batch, batch_idx):
            x, y = batch
            out = self(x)
            self.log("val_loss", nn.functional.cross_entropy(out, y))
            self.log("val_acc", (out.argmax(1) == y).float().mean())

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=self.lr)

    return DigitsMLP


@pytest.fixture(scope="module")
def loaders():
    data = automl.load_dataset("digits")  # bundled with scikit-learn
    train = DataLoader(TensorDataset(data.x_train, data.y_train), batch_size=64, shuffle=True)
    val = DataLoader(TensorDataset(data.x_val, data.y_val), batch_size=512)
    return train, val


def _trainer(callback, **kwargs):
    import lightning.pytorch as pl

    options = dict(max_epochs=EPOCHS, accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                   enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=1)
    return pl.Trainer(callbacks=[callback], **{**options, **kwargs})


@pytest.fixture(autouse=True)
def _quiet():
    level = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    yield
    optuna.logging.set_verbosity(level)


@pytest.mark.slow
def test_a_study_prunes_the_diverging_trials_with_a_reason_and_completes_the_rest(loaders, Callback, DigitsMLP):
    train, val = loaders
    # Five good learning rates finish first (the rank cut waits for five finished trials), then two
    # that blow the loss up to ~20x chance and kill the ReLUs (SGD at lr=50): both are far behind.
    lrs = [0.3, 0.5, 0.2, 0.8, 0.4, 50.0, 50.0]
    messages: dict[int, str] = {}

    def objective(trial: optuna.Trial) -> float:
        torch.manual_seed(trial.number)
        model = DigitsMLP(trial.suggest_float("lr", 1e-3, 100.0, log=True))
        callback = Callback(trial, monitor="val_acc")
        try:
            _trainer(callback).fit(model, train, val)
        except optuna.TrialPruned as exc:  # only to read its message here; the callback raised it
            messages[trial.number] = str(exc)
            assert all(not m._forward_hooks for m in model.modules())  # the probe let go of the model
            raise
        return callback.records[-1].val_acc

    study = optuna.create_study(direction="maximize", pruner=SignalPruner(max_epochs=EPOCHS),
                                sampler=optuna.samplers.RandomSampler(seed=0))
    study.set_metric_names(["val_acc"])
    for lr in lrs:
        study.enqueue_trial({"lr": lr})
    study.optimize(objective, n_trials=len(lrs))

    states = {t.number: t.state for t in study.trials}
    assert set(states.values()) <= {optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED}, states
    diverging = [t for t in study.trials if t.params["lr"] == 50.0]
    assert diverging and all(t.state == optuna.trial.TrialState.PRUNED for t in diverging), states
    for t in study.trials:
        records = records_of(t)
        assert [r["epoch"] for r in records] == list(range(1, len(records) + 1))
        assert t.intermediate_values == {r["epoch"]: pytest.approx(r["val_acc"]) for r in records}
        if t.state == optuna.trial.TrialState.PRUNED:
            reason = t.user_attrs["prune_reason"]
            assert isinstance(reason, str) and reason.strip(), t.user_attrs
            assert t.user_attrs["prune_epoch"] == len(records) < EPOCHS
            assert messages[t.number] == f"pruned at epoch {len(records)}: {reason}"
        else:
            assert len(records) == EPOCHS and t.value == pytest.approx(records[-1]["val_acc"])
            assert t.value > 0.5  # the good learning rates learn
    assert any(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials)


def test_a_built_in_pruner_gets_a_reason_written_for_it(loaders, Callback, DigitsMLP):
    train, val = loaders
    study = optuna.create_study(direction="maximize", pruner=optuna.pruners.MedianPruner(n_startup_trials=1))

    def objective(trial: optuna.Trial) -> float:
        torch.manual_seed(0)
        callback = Callback(trial)
        _trainer(callback, max_epochs=2).fit(DigitsMLP(trial.suggest_float("lr", 1e-3, 100.0, log=True)), train, val)
        return callback.records[-1].val_acc

    study.enqueue_trial({"lr": 0.5})
    study.enqueue_trial({"lr": 50.0})
    study.optimize(objective, n_trials=2)
    pruned = study.trials[1]
    assert pruned.state == optuna.trial.TrialState.PRUNED
    assert pruned.user_attrs["prune_reason"].startswith("MedianPruner pruned at epoch 1 (val_acc=0.")
    assert pruned.user_attrs["prune_epoch"] == 1


def test_the_record_carries_the_probes_per_layer_statistics(loaders, Callback, DigitsMLP):
    train, val = loaders
    torch.manual_seed(0)
    study = optuna.create_study(direction="maximize")
    trial = study.ask()
    model = DigitsMLP(0.1)
    callback = Callback(trial, every_k_steps=4)
    trainer = _trainer(callback, max_epochs=2, accumulate_grad_batches=2)
    trainer.fit(model, train, val)

    records = callback.records
    assert [r.epoch for r in records] == [1, 2]  # the sanity check is not reported
    last = records[-1]
    assert last.step == trainer.global_step  # one probe step per optimizer step, not per batch
    assert [layer.name for layer in last.layers] == ["net.1", "net.3"]
    for layer in last.layers:
        assert layer.grad_norm is not None and math.isfinite(layer.grad_norm) and layer.grad_norm > 0
        assert 0 <= layer.zero_grad_frac < 1 and layer.weight_norm > 0
        assert layer.act_rms is not None and layer.act_rms > 0  # the probe batch came from the val loader
    assert last.activations is not None and last.activations.steps  # every_k_steps: the step-level trace
    assert last.lr == pytest.approx(0.1)
    assert last.val_acc == pytest.approx(trainer.callback_metrics["val_acc"].item())
    assert last.val_loss is not None and last.train_loss is not None and last.train_acc is not None
    stored = records_of(study.trials[0])[1]  # what automl.report wrote on the trial
    assert [layer["grad_norm"] for layer in stored["layers"]] == pytest.approx([l.grad_norm for l in last.layers])
    assert study.trials[0].intermediate_values == {1: pytest.approx(records[0].val_acc), 2: pytest.approx(last.val_acc)}
    assert all(not m._forward_hooks for m in model.modules())  # the probe's hooks are gone after the fit
    trainer.validate(model, val, verbose=False)  # not part of the fit: nothing more is reported
    assert len(callback.records) == 2 and len(study.trials[0].intermediate_values) == 2


@pytest.mark.parametrize("monitor", ["accuracy", "test_acc", "val_accuracy"])
def test_a_monitor_that_is_not_an_automl_metric_is_refused(monitor, Callback):
    trial = optuna.create_study().ask()
    with pytest.raises(ValueError, match=rf"monitor must be one of \['train_acc', 'train_loss', 'val_acc', 'val_loss'\], but got '{monitor}'"):
        Callback(trial, monitor=monitor)


def test_a_monitor_against_the_studys_direction_is_refused(Callback):
    with pytest.raises(ValueError, match=r"monitor='val_acc' improves by going up, but the trial's study is set to minimize"):
        Callback(optuna.create_study(direction="minimize").ask(), monitor="val_acc")
    Callback(optuna.create_study(direction="minimize").ask(), monitor="val_loss")


def test_a_monitored_metric_that_was_not_logged_stops_the_fit_with_its_name(loaders, Callback, DigitsMLP):
    train, val = loaders
    trial = optuna.create_study().ask()
    callback = Callback(trial, monitor="val_loss", val_loss="loss/val")
    with pytest.raises(ValueError, match=r"callback_metrics\['loss/val'\], which was not logged"):
        _trainer(callback, max_epochs=1, limit_train_batches=2).fit(DigitsMLP(0.1), train, val)


def test_importing_the_package_does_not_import_lightning():
    code = "import sys, automl.integrations; assert not {'lightning', 'torch'} & set(sys.modules), sorted(sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr


def test_without_lightning_the_import_error_says_what_to_install(monkeypatch):
    for name in [m for m in sys.modules if m == "lightning" or m.startswith("lightning.")]:
        monkeypatch.setitem(sys.modules, name, None)  # restored after the test
    monkeypatch.setitem(sys.modules, "lightning", None)
    monkeypatch.delitem(sys.modules, "automl.integrations.lightning", raising=False)
    with pytest.raises(ImportError, match=r'pip install "automl-signals\[lightning\]"'):
        importlib.import_module("automl.integrations.lightning")
