"""Record a curve bank: train sampled configurations to the full budget, keep every curve and signal.

``record_bank(space, dataset, runs=N, epochs=T, seed=K, out=PATH)`` draws N configurations from
the space with a generator seeded by K (run i is always the same configuration), trains each to T
epochs with the probe attached, and appends one bank row per finished run. With ``min_epochs=M`` the
budget is itself a hyperparameter: run i trains to its own ``epochs`` drawn from [M, T] (kept in
its config), so the bank's runs differ in length, as in a budget search; ``schedule`` (a
learning-rate schedule of :data:`automl.training.trainer.SCHEDULES`, kept in the config too)
then runs to each run's own budget. Re-running the same command resumes: runs already in the bank are skipped; a bank whose last row was cut off by an
interruption is repaired (the complete rows are kept) before recording goes on.

Each row has the curves ``train_loss``, ``val_loss``, ``test_loss``, ``train_acc``, ``val_acc``,
``test_acc`` and the signals the probe records, per epoch: ``layer_rms``, ``grad_norm``,
``zero_grad_frac``, ``weight_norm``, ``weight_std`` (one list per layer each), ``layers`` and
``steps_per_epoch``; and ``act_steps``/``act_rms`` (per-layer activation RMS every k steps, k from
:func:`automl.training.probe.auto_every_k_steps` unless given).
With ``ncp="shadow"`` or ``"head"`` it adds ``ncp`` (the mode), ``beta_eff`` and
``beta_eff_downstream`` per epoch, ``act_beta_eff`` every k steps, and for a shadow NCP its
training accuracy ``ncp_train_acc``. A head-mode bank's task is named ``<dataset>_<space>_ncphead``:
its runs train a different model (the NCP is their output layer); a budget search's ends in ``_budget``.
"""

from __future__ import annotations

import gzip
import math
import os
import zlib
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any, Optional

import numpy as np

from automl.bench.bank import BankError, Run, iter_bank, write_bank
from automl.validation import check_metric, check_positive_int

__all__ = ["record_bank", "run_row", "records_row"]

CURVES = ("train_loss", "val_loss", "test_loss", "train_acc", "val_acc", "test_acc")


def _nan(x: Optional[float]) -> float:
    return math.nan if x is None else float(x)


def _g6(x: Optional[float]) -> float:
    """A signal value kept to 6 significant digits (curves keep full precision): banks stay small."""
    return math.nan if x is None else float(f"{float(x):.6g}")


def run_row(space: Any, config: dict, data: Any, *, task: str, run_id: str, epochs: int, seed: int,
            metric: str, direction: str, every_k_steps: Optional[int], ncp: Optional[str] = None) -> Run:
    """Train one configuration to the full budget and return its bank row."""
    from automl.training.probe import auto_every_k_steps
    from automl.training.trainer import train

    k = every_k_steps or auto_every_k_steps(len(data.x_train), int(config.get("batch_size", 64)), epochs)
    result = train(space, config, data, epochs=epochs, seed=seed, every_k_steps=k, ncp=ncp)
    return records_row(result.records, task=task, run_id=run_id, config=config, metric=metric, direction=direction,
                       seed=seed, every_k_steps=k, ncp=ncp)


def records_row(recs: list, *, task: str, run_id: str, config: dict, metric: str, direction: str, seed: int,
                every_k_steps: Optional[int] = None, ncp: Optional[str] = None) -> Run:
    """The bank row of a finished run's ``EpochRecord`` list (curves and the probe's signals)."""
    k = every_k_steps
    curves = {name: [r.metric(name) for r in recs] for name in CURVES}
    per_layer = lambda attr: [[_g6(getattr(l, attr)) for l in r.layers] for r in recs]  # noqa: E731
    signals: dict[str, Any] = {
        "layers": [l.name for l in recs[0].layers] if recs else [],
        "layer_rms": per_layer("act_rms"),
        "grad_norm": per_layer("grad_norm"),
        "zero_grad_frac": per_layer("zero_grad_frac"),
        "weight_norm": per_layer("weight_norm"),
        "weight_std": per_layer("weight_std"),
        "wall_time": [_g6(r.wall_time) for r in recs],
        "every_k_steps": k,
        "steps_per_epoch": recs[0].step if recs else 0,
        "act_steps": [s for r in recs if r.activations for s in r.activations.steps],
        "act_rms": [[_g6(v) for v in row] for r in recs if r.activations for row in r.activations.rms],
        "seed": seed,
    }
    if ncp:
        cap = lambda key: [_g6((r.capacitance or {}).get(key)) for r in recs]  # noqa: E731
        signals.update({
            "ncp": ncp,
            "beta_eff": cap("product"),
            "beta_eff_downstream": cap("downstream"),
            "act_beta_eff": [_g6(v) for r in recs if r.activations for v in r.activations.beta_eff],
        })
        if ncp == "shadow":
            signals["ncp_train_acc"] = cap("ncp_train_acc")
    return Run(task=task, run_id=run_id, config=config, metric=metric, direction=direction, curves=curves, signals=signals)


def _salvage(path: Path) -> set[str]:
    """Run ids already in the bank; a truncated tail (an interrupted append) is cut off."""
    if not path.exists():
        return set()
    good: list[Run] = []
    try:
        for run in iter_bank(path):
            good.append(run)
        return {r.run_id for r in good}
    except (BankError, EOFError, OSError, zlib.error, gzip.BadGzipFile):
        write_bank(path, good)  # atomic rewrite with the complete rows only
        return {r.run_id for r in good}


def _one_thread() -> None:
    import torch

    torch.set_num_threads(1)  # one process per core


def _work(args: tuple) -> Run:
    space_name, dataset, i, config, epochs, seed, metric, direction, k, ncp = args
    epochs = int(config.get("epochs", epochs))  # a budget search: the run's own budget
    from search_spaces import get_space

    from automl.search.settings import trial_seed
    from automl.training.data import load_dataset

    task = f"{dataset}_{space_name}" + ("_ncphead" if ncp == "head" else "") + ("_budget" if "epochs" in config else "")
    return run_row(get_space(space_name), config, load_dataset(dataset), task=task, run_id=str(i),
                   epochs=epochs, seed=trial_seed(seed, config), metric=metric, direction=direction, every_k_steps=k,
                   ncp=ncp)


def _draw(space: Any, rng: np.random.Generator, min_epochs: Optional[int], epochs: int, schedule: str) -> dict:
    config = space.sample(rng)
    if min_epochs is not None:
        config["epochs"] = int(rng.integers(min_epochs, epochs + 1))
    if schedule != "constant":
        config["schedule"] = schedule
    return config


def record_bank(
    space: str,
    dataset: str,
    *,
    runs: int,
    epochs: int,
    seed: int,
    out: str | os.PathLike,
    metric: str = "val_acc",
    every_k_steps: Optional[int] = None,
    jobs: int = 1,
    ncp: Optional[str] = None,
    min_epochs: Optional[int] = None,
    schedule: str = "constant",
    progress: Optional[Callable[[Run], None]] = None,
) -> int:
    """Record ``runs`` runs into ``out`` (resuming); returns how many were trained now."""
    from search_spaces import get_space

    from automl.records import METRICS
    from automl.training.data import load_dataset
    from automl.training.trainer import SCHEDULES

    if ncp not in (None, "head", "shadow"):
        raise ValueError(f"ncp must be None, 'head' or 'shadow', but got {ncp!r}.")
    check_metric(metric, METRICS)
    runs, epochs, jobs = check_positive_int("runs", runs), check_positive_int("epochs", epochs), check_positive_int("jobs", jobs)
    if min_epochs is not None and not 1 <= check_positive_int("min_epochs", min_epochs) <= epochs:
        raise ValueError(f"min_epochs must lie in [1, epochs={epochs}], but got {min_epochs}.")
    if schedule not in SCHEDULES:
        raise ValueError(f"unknown schedule {schedule!r}; choose one of {', '.join(SCHEDULES)}.")
    sp = get_space(space)
    sp.check_input_shape(load_dataset(dataset).input_shape)
    rng = np.random.default_rng(seed)
    configs = [_draw(sp, rng, min_epochs, epochs, schedule) for _ in range(runs)]  # run i is fixed across resumes
    out = Path(out)
    if not out.parent.is_dir():
        raise ValueError(f"folder {str(out.parent)!r} for --out does not exist.")
    done = _salvage(out)
    todo = [(space, dataset, i, c, epochs, int(seed), metric, METRICS[metric], every_k_steps, ncp)
            for i, c in enumerate(configs) if str(i) not in done]
    n = 0
    if jobs > 1:
        with ProcessPoolExecutor(max_workers=jobs, initializer=_one_thread) as pool:
            for run in pool.map(_work, todo):
                write_bank(out, [run], append=True)
                n += 1
                if progress:
                    progress(run)
    else:
        for args in todo:
            run = _work(args)
            write_bank(out, [run], append=True)
            n += 1
            if progress:
                progress(run)
    return n

