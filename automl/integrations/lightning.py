"""PyTorch Lightning: the probe and an Optuna pruner, from ``Trainer(callbacks=[...])``.

``SignalPruningCallback(trial)`` attaches an ``automl.Probe`` to the ``LightningModule`` when the
fit starts, lets it read the gradients after every optimizer step, and at the end of each
validation run builds the ``EpochRecord`` from ``trainer.callback_metrics``, reports it with
``automl.report`` (``trial.report`` plus the record kept on the trial) and asks
``trial.should_prune()``. A pruned trial leaves ``trainer.fit`` with ``optuna.TrialPruned``, whose
message is the reason the pruner stored (``prune_reason``)::

    import lightning.pytorch as pl
    import optuna
    from automl.integrations.lightning import SignalPruningCallback
    from pruners import SignalPruner

    def objective(trial):
        model = MyModule(lr=trial.suggest_float("lr", 1e-4, 1.0, log=True))  # logs "val_acc" in validation_step
        trainer = pl.Trainer(max_epochs=10, logger=False, enable_checkpointing=False,
                             callbacks=[SignalPruningCallback(trial, monitor="val_acc")])
        trainer.fit(model, train_loader, val_loader)  # raises optuna.TrialPruned when pruned
        return trainer.callback_metrics["val_acc"].item()

    study = optuna.create_study(direction="maximize", pruner=SignalPruner(max_epochs=10))
    study.optimize(objective, n_trials=30)

Needs ``pip install "automl-signals[lightning]"`` (Lightning 2.x, the ``lightning`` package; the
standalone ``pytorch_lightning`` package has its own ``Callback`` class and is not supported).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping
from typing import Any, Optional

try:
    import lightning.pytorch as pl
    from lightning.pytorch.utilities.model_helpers import is_overridden
except ImportError as exc:  # the optional extra is not installed
    raise ImportError(
        f'automl.integrations.lightning needs PyTorch Lightning: pip install "automl-signals[lightning]" ({exc})'
    ) from exc
import optuna
import torch

from automl.records import METRICS, EpochRecord
from automl.reporting import report
from automl.training.probe import Probe
from automl.validation import check_metric, check_optional_positive_int

__all__ = ["SignalPruningCallback", "PROBE_ROWS"]

#: The most rows of the first validation batch the probe keeps as its fixed probe batch.
PROBE_ROWS = 256


class SignalPruningCallback(pl.Callback):
    """Run the probe on a ``LightningModule`` and prune its Optuna trial on the evidence.

    One record per validation run of the fit (numbered 1, 2, ... as ``automl.report`` expects;
    with the default ``val_check_interval`` that is one per epoch, and ``SignalPruner(max_epochs=...)``
    counts these). Use one callback per trial and fit.

    Args:
        trial: the ``optuna.Trial`` of the objective; its study's pruner decides, e.g.
            ``pruners.SignalPruner(max_epochs=...)``.
        monitor: the record field the pruner ranks on (what ``automl.report(..., metric=...)``
            reports): one of ``"val_acc"``, ``"val_loss"``, ``"train_acc"``, ``"train_loss"`` (the
            names of ``automl.records.METRICS`` a fit can log). The study's direction must match it
            (``"maximize"`` for an accuracy, ``"minimize"`` for a loss), else a ``ValueError``.
        probe_batch: a fixed input batch for the activation statistics; default: the inputs of the
            first validation batch (the first element of a tuple/list batch), at most 256 rows.
        every_k_steps: also log per-layer activations every k optimizer steps (the step-level
            trace the dynamics signals read); ``None`` logs them at each validation end only.
        train_loss, val_loss, train_acc, val_acc: the ``trainer.callback_metrics`` keys (the names
            given to ``self.log``) that hold each record field; a key that was not logged, or
            ``None``, leaves the field empty. The ``monitor`` field's key must be logged.

    Values are read at ``on_validation_end``, so a training metric logged with ``on_epoch=True``
    only is still last epoch's there (or missing at the first); log training metrics per step
    (``self.log("train_loss", loss)``, Lightning's default in ``training_step``) to record the
    latest value. ``nan``/``inf`` are recorded and reported as they are: they are the evidence of
    a diverged run, and ``SignalPruner`` prunes on them.

    Pruning: ``optuna.TrialPruned`` is raised from ``on_validation_end``. Lightning 2.x passes any
    exception raised in a callback hook out of ``trainer.fit`` (after calling ``on_exception``
    and tearing down; checked on 2.6), so Optuna marks the trial PRUNED and the objective needs no code of its
    own; the callback removes its hooks from the module either way. One process only: under a
    distributed strategy (``world_size > 1``) ``on_fit_start`` refuses to run.

    A pruner that stores no reason (Optuna's built-in ones) gets one written for it, as
    ``automl search`` does: ``prune_reason`` = "MedianPruner pruned at epoch 3 (val_acc=0.1)".

    After the fit, ``records`` holds the run's ``EpochRecord`` objects (with the per-layer
    statistics), and ``probe`` the probe that wrote them.

    Example:
        >>> import optuna
        >>> cb = SignalPruningCallback(optuna.trial.FixedTrial({}), monitor="val_loss", train_acc=None)
        >>> cb.monitor, cb.metric_keys
        ('val_loss', {'train_loss': 'train_loss', 'val_loss': 'val_loss', 'val_acc': 'val_acc'})
    """

    def __init__(
        self,
        trial: optuna.Trial,
        monitor: str = "val_acc",
        probe_batch: Optional[torch.Tensor] = None,
        every_k_steps: Optional[int] = None,
        train_loss: Optional[str] = "train_loss",
        val_loss: Optional[str] = "val_loss",
        train_acc: Optional[str] = "train_acc",
        val_acc: Optional[str] = "val_acc",
    ) -> None:
        super().__init__()
        if not all(callable(getattr(trial, name, None)) for name in ("report", "should_prune", "set_user_attr")):
            raise TypeError(f"trial must be an optuna.Trial, but got {type(trial).__name__}.")
        keys = {"train_loss": train_loss, "train_acc": train_acc, "val_loss": val_loss, "val_acc": val_acc}
        check_metric(monitor, [m for m in METRICS if m in keys], name="monitor")
        for field, key in keys.items():
            if key is not None and (not isinstance(key, str) or not key):
                raise TypeError(f"{field} must be the name of a logged metric (a str) or None, but got {field}={key!r}.")
        if keys[monitor] is None:
            raise ValueError(f"monitor={monitor!r} is read from the logged metric named by {monitor}=..., which is None.")
        if probe_batch is not None and (not isinstance(probe_batch, torch.Tensor) or probe_batch.dim() < 1
                                        or probe_batch.shape[0] == 0):
            raise ValueError("probe_batch must be a non-empty tensor with a batch axis first, or None.")
        direction = _direction(trial)
        if direction is not None and direction != METRICS[monitor]:
            raise ValueError(
                f"monitor={monitor!r} improves by going {'down' if METRICS[monitor] == 'minimize' else 'up'}, but the "
                f"trial's study is set to {direction}: create it with optuna.create_study(direction={METRICS[monitor]!r}), "
                "or monitor another metric."
            )
        self.trial = trial
        self.monitor = monitor
        self.every_k_steps = check_optional_positive_int("every_k_steps", every_k_steps)
        self.metric_keys: dict[str, str] = {f: k for f, k in keys.items() if k is not None}
        self._probe_batch = probe_batch
        self.probe: Optional[Probe] = None
        self._last_step = 0
        self._fitting = False  # trainer.validate() after the fit reports nothing

    @property
    def records(self) -> list[EpochRecord]:
        """The records reported so far in this fit (``[]`` before it starts)."""
        return self.probe.records if self.probe is not None else []

    # -- Lightning hooks ------------------------------------------------------------------------
    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.world_size > 1:
            raise NotImplementedError(
                f"SignalPruningCallback runs in one process; this Trainer runs {trainer.world_size} (distributed)."
            )
        if not is_overridden("validation_step", pl_module):
            raise ValueError(
                f"SignalPruningCallback reports at each validation run: {type(pl_module).__name__} needs a "
                f"validation_step that logs {self.metric_keys[self.monitor]!r}."
            )
        self._close()
        batch = self._probe_batch
        has_forward = is_overridden("forward", pl_module)
        if batch is not None and not has_forward:
            raise ValueError(f"probe_batch is run through {type(pl_module).__name__}.forward, which it does not define.")
        if batch is None and has_forward:
            batch = _first_val_inputs(trainer)
        if batch is None:
            warnings.warn(
                "SignalPruningCallback records no activation statistics: "
                + ("the module defines no forward." if not has_forward else
                   "no input tensor found in the first validation batch; pass probe_batch=<inputs>."),
                stacklevel=2,
            )
        else:
            batch = batch[:PROBE_ROWS].detach().to(pl_module.device)
        optimizer = trainer.optimizers[0] if trainer.optimizers else None
        self.probe = Probe(pl_module, probe_batch=batch, optimizer=optimizer, every_k_steps=self.every_k_steps)
        self._last_step = trainer.global_step
        self._fitting = True

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        # Only after a batch that stepped the optimizer (not while accumulating gradients): the
        # gradients are then complete, and they stay until the next batch's zero_grad.
        if self._fitting and self.probe is not None and trainer.global_step != self._last_step:
            self._last_step = trainer.global_step
            self.probe.step()

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking or not self._fitting or self.probe is None:
            return
        metrics = trainer.callback_metrics
        key = self.metric_keys[self.monitor]
        if key not in metrics:
            raise ValueError(
                f"SignalPruningCallback(monitor={self.monitor!r}) reads trainer.callback_metrics[{key!r}], which was not "
                f"logged; logged: {sorted(metrics)}. Log it with self.log({key!r}, ...), or name its key with "
                f"{self.monitor}='<logged name>'."
            )
        values = {field: _scalar(metrics[k]) for field, k in self.metric_keys.items() if k in metrics}
        record = self.probe.end_epoch(**values)
        value = report(record, self.trial, metric=self.monitor)
        if self.trial.should_prune():
            raise optuna.TrialPruned(f"pruned at epoch {record.epoch}: {self._prune_reason(record.epoch, value)}")

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._close()

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        self._close()  # TrialPruned included: leave the module without the probe's hooks

    # -- helpers --------------------------------------------------------------------------------
    def _close(self) -> None:
        self._fitting = False
        if self.probe is not None:
            self.probe.close()  # removes the forward hooks; the records stay readable

    def _prune_reason(self, epoch: int, value: float) -> str:
        """The reason the pruner stored on the trial (``SignalPruner`` writes it through the
        storage, so it is read back from there); else one written here for a pruner that stores none."""
        reason = _stored_attr(self.trial, "prune_reason")
        if reason:
            return str(reason)
        pruner = getattr(getattr(self.trial, "study", None), "pruner", None)
        name = type(pruner).__name__ if pruner is not None else "the pruner"
        shown = f"{value:.4g}" if math.isfinite(value) else str(value)
        reason = f"{name} pruned at epoch {epoch} ({self.monitor}={shown})"
        self.trial.set_user_attr("prune_reason", reason)
        self.trial.set_user_attr("prune_epoch", epoch)
        return reason


def _scalar(value: Any) -> float:
    """A logged metric as a float (``nan``/``inf`` kept: they are evidence, not errors)."""
    return float(value.item()) if isinstance(value, torch.Tensor) else float(value)


def _stored_attr(trial: Any, key: str) -> Any:
    """A user attribute as the study's storage holds it now (a live ``optuna.Trial`` caches its
    attributes, and a pruner writes through the storage), read with public calls only."""
    study = getattr(trial, "study", None)
    number = getattr(trial, "number", None)
    if study is None or number is None:
        return None
    for frozen in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        if frozen.number == number:
            return frozen.user_attrs.get(key)
    return None


def _direction(trial: Any) -> Optional[str]:
    """``"minimize"``/``"maximize"`` of the trial's single-objective study, else ``None``."""
    directions = getattr(getattr(trial, "study", None), "directions", None)
    if not directions or len(directions) != 1:
        return None
    return str(directions[0].name).lower()


def _first_val_inputs(trainer: pl.Trainer) -> Optional[torch.Tensor]:
    """The inputs of the first batch of the (first) validation dataloader, or ``None``."""
    loaders = trainer.val_dataloaders  # set once validation has run (a second fit, or after sanity checking)
    if loaders is None:
        # At on_fit_start the validation loop has not requested its dataloader yet; ask the same
        # source it will (the dataloader given to fit, or the module's or datamodule's
        # val_dataloader hook). Private in Lightning 2.x: without it, no probe batch is found.
        try:
            source = trainer.fit_loop.epoch_loop.val_loop._data_source
            if not source.is_defined():
                return None
            loaders = source.dataloader()
        except AttributeError:  # another Lightning layout
            return None
    loader = _first_loader(loaders)
    if loader is None:
        return None
    try:
        batch = next(iter(loader))
    except StopIteration:
        return None
    if isinstance(batch, (list, tuple)) and batch:
        batch = batch[0]
    return batch if isinstance(batch, torch.Tensor) and batch.dim() >= 1 and batch.shape[0] > 0 else None


def _first_loader(loaders: Any) -> Any:
    loaders = getattr(loaders, "iterables", loaders)  # a CombinedLoader
    while isinstance(loaders, (list, tuple, Mapping)):
        if not loaders:
            return None
        loaders = next(iter(loaders.values())) if isinstance(loaders, Mapping) else loaders[0]
    return loaders
