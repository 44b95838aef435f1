"""The reference trainer: trains one configuration on a ``Dataset`` with a ``Probe`` attached.

``fit`` trains a given model; ``train`` builds it first from a search space (any object with
``build_model(config, input_shape, n_classes)``, such as those of ``search_spaces``). After every
epoch the ``on_epoch`` callback receives the ``EpochRecord``; it may raise to stop the run (e.g.
``optuna.TrialPruned``), or return ``True`` to end it early but normally ("converged").
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Optional

import torch
from torch import nn

from automl.records import EpochRecord
from automl.training.data import Dataset
from automl.training.ncp import NCP, install_ncp_head
from automl.training.probe import Probe
from automl.validation import check_positive_int

__all__ = ["fit", "train", "evaluate", "TrainResult", "make_optimizer", "make_schedule", "OPTIMIZERS", "SCHEDULES"]

OPTIMIZERS = ("adam", "adamw", "sgd")
#: Learning-rate schedules; each runs to the run's own budget (``epochs``), stepped per batch.
SCHEDULES = ("constant", "cosine", "step")


@dataclass
class TrainResult:
    """What a training run produced: one record per epoch, and whether it ended early."""

    records: list[EpochRecord] = field(default_factory=list)
    stopped_early: bool = False

    @property
    def epochs(self) -> int:
        return len(self.records)

    def final(self, metric: str) -> float:
        """The metric's value at the last epoch (``nan`` if it diverged or no epoch ran)."""
        return self.records[-1].metric(metric) if self.records else float("nan")


def make_optimizer(name: str, params, *, lr: float, weight_decay: float = 0.0) -> torch.optim.Optimizer:
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, weight_decay=weight_decay, momentum=0.9, nesterov=True)
    raise ValueError(f"unknown optimizer {name!r}; choose one of {', '.join(OPTIMIZERS)}.")


def make_schedule(name: str, opt: torch.optim.Optimizer, *, total_steps: int) -> Optional[Any]:
    """The per-step learning-rate scheduler ``name`` over ``total_steps`` (``None`` for constant).

    ``cosine`` anneals to 0 at the last step; ``step`` divides by 10 at 50% and again at 75%:
    the late gain a schedule brings lands at the run's own budget, as in a budget search."""
    if name == "constant":
        return None
    if name == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, total_steps))
    if name == "step":
        return torch.optim.lr_scheduler.MultiStepLR(opt, milestones=[total_steps // 2, (3 * total_steps) // 4], gamma=0.1)
    raise ValueError(f"unknown schedule {name!r}; choose one of {', '.join(SCHEDULES)}.")


@torch.no_grad()
def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, batch_size: int = 1024) -> tuple[float, float]:
    """Mean cross-entropy and accuracy of ``model`` on ``(x, y)`` in eval mode."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    total_loss, correct = 0.0, 0
    try:
        for i in range(0, len(x), batch_size):
            xb, yb = x[i : i + batch_size].to(device), y[i : i + batch_size].to(device)
            out = model(xb)
            total_loss += float(nn.functional.cross_entropy(out, yb, reduction="sum"))
            correct += int((out.argmax(1) == yb).sum())
    finally:
        model.train(was_training)
    return total_loss / len(x), correct / len(x)


def fit(
    model: nn.Module,
    data: Dataset,
    *,
    epochs: int,
    lr: float,
    optimizer: str = "adam",
    weight_decay: float = 0.0,
    batch_size: int = 64,
    schedule: str = "constant",
    seed: int = 0,
    device: str | torch.device = "cpu",
    probe_batch_size: int = 256,
    every_k_steps: Optional[int] = None,
    ncp: Optional[str] = None,
    on_epoch: Optional[Callable[[EpochRecord], Optional[bool]]] = None,
    probe_options: Optional[Mapping[str, Any]] = None,
) -> TrainResult:
    """Train ``model`` on ``data`` with cross-entropy, recording every epoch with a ``Probe``.

    Args:
        epochs: the budget (maximum number of epochs).
        lr, optimizer, weight_decay, batch_size: the optimisation hyperparameters.
        schedule: the learning-rate schedule (:data:`SCHEDULES`), run to ``epochs``: a run
            stopped early has not had its schedule's late gain.
        seed: seeds the batch order and every random draw during training (dropout), in a
            forked generator: the caller's global torch RNG is left as it was.
        every_k_steps: also log layer activations every k optimizer steps.
        ncp: record βeff of a neural capacitance probe: ``"head"`` replaces the model's output
            layer by an NCP (unless one is installed already), ``"shadow"`` trains one beside it.
        on_epoch: called with each ``EpochRecord``; may raise to abort (the exception
            propagates) or return ``True`` to stop after this epoch.
        probe_options: further keyword arguments of the ``Probe`` (e.g. ``trace_batch_size``,
            ``convergence_rule``).

    A non-finite training loss does not stop the run: the diverged values are recorded (as
    ``nan``) so that pruners see them, exactly as they would in a user's own loop.
    """
    epochs = check_positive_int("epochs", epochs)
    batch_size = check_positive_int("batch_size", batch_size)
    if isinstance(lr, bool) or not (isinstance(lr, (int, float)) and math.isfinite(lr) and lr > 0):
        raise ValueError(f"lr must be a positive finite number, but got {lr=}.")
    if ncp == "head" and not any(isinstance(m, NCP) for m in model.modules()):
        install_ncp_head(model, seed=int(seed))  # before the optimizer, so that it trains the NCP
    device = torch.device(device)
    model.to(device)
    opt = make_optimizer(optimizer, model.parameters(), lr=float(lr), weight_decay=float(weight_decay))
    x, y = data.x_train.to(device), data.y_train.to(device)
    n = len(x)
    sched = make_schedule(schedule, opt, total_steps=epochs * math.ceil(n / batch_size))
    gen = torch.Generator().manual_seed(int(seed))
    probe_batch = data.x_val[:probe_batch_size]
    result = TrainResult()
    cuda = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=cuda), Probe(model, probe_batch, optimizer=opt, every_k_steps=every_k_steps,
                                                     ncp=ncp, ncp_seed=int(seed), ncp_classes=data.n_classes,
                                                     **dict(probe_options or {})) as probe:
        # Seed only the generators fork_rng restores: torch.manual_seed would reseed every CUDA
        # device, leaving the caller's CUDA stream changed after a CPU run.
        torch.default_generator.manual_seed(int(seed))
        if cuda:
            with torch.cuda.device(device):
                torch.cuda.manual_seed(int(seed))  # the training device, forked above
        for _ in range(int(epochs)):
            model.train()
            order = torch.randperm(n, generator=gen).to(device)
            loss_sum = torch.zeros((), device=device)
            correct = torch.zeros((), device=device, dtype=torch.long)
            for i in range(0, n, int(batch_size)):
                idx = order[i : i + int(batch_size)]
                xb, yb = x[idx], y[idx]
                opt.zero_grad(set_to_none=True)
                out = model(xb)
                loss = nn.functional.cross_entropy(out, yb)
                loss.backward()
                opt.step()
                if sched is not None:
                    sched.step()
                probe.step(targets=yb)
                loss_sum += loss.detach() * len(idx)
                correct += (out.detach().argmax(1) == yb).sum()
            val_loss, val_acc = evaluate(model, data.x_val, data.y_val)
            test_loss, test_acc = evaluate(model, data.x_test, data.y_test)
            record = probe.end_epoch(
                train_loss=float(loss_sum) / n,
                train_acc=int(correct) / n,
                val_loss=val_loss,
                val_acc=val_acc,
                test_loss=test_loss,
                test_acc=test_acc,
            )
            result.records.append(record)
            if on_epoch is not None and on_epoch(record) is True:
                result.stopped_early = len(result.records) < int(epochs)
                break
    return result


def train(
    space: Any,
    config: Mapping[str, Any],
    data: Dataset,
    *,
    epochs: int,
    seed: int = 0,
    device: str | torch.device = "cpu",
    every_k_steps: Optional[int] = None,
    ncp: Optional[str] = None,
    on_epoch: Optional[Callable[[EpochRecord], Optional[bool]]] = None,
) -> TrainResult:
    """Build ``space``'s model for ``config`` (seeded by ``seed``) and ``fit`` it on ``data``.

    Example:
        >>> from search_spaces import get_space
        >>> from automl.training.data import load_dataset
        >>> space = get_space("mlp")
        >>> cfg = {"lr": 1e-2, "weight_decay": 1e-5, "dropout": 0.0, "batch_size": 64,
        ...        "optimizer": "adam", "width": 32, "depth": 1, "activation": "relu"}
        >>> res = train(space, cfg, load_dataset("digits"), epochs=2, seed=0)
        >>> res.epochs, res.final("val_acc") > 0.5
        (2, True)
    """
    with torch.random.fork_rng(devices=[]):  # models are built on the CPU, then moved
        torch.default_generator.manual_seed(int(seed))  # not torch.manual_seed: it reseeds CUDA too
        model = space.build_model(config, data.input_shape, data.n_classes)
    return fit(
        model,
        data,
        epochs=epochs,
        lr=config["lr"],
        optimizer=config.get("optimizer", "adam"),
        weight_decay=config.get("weight_decay", 0.0),
        batch_size=config.get("batch_size", 64),
        schedule=config.get("schedule", "constant"),
        seed=seed,
        device=device,
        every_k_steps=every_k_steps,
        ncp=ncp,
        on_epoch=on_epoch,
    )
