"""Run a search end to end: a declared space, a bundled dataset, Optuna or Ray Tune, a pruner.

Both backends persist every trial in an Optuna storage (Ray's trials are added to the study as
they finish), so ``automl show``, the service and optuna-dashboard read one place, whichever
backend ran the search.
"""

from __future__ import annotations

import json
import math
import os
import signal
import socket
import time
import warnings
import zlib
from collections.abc import Callable, Mapping
from typing import Any, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, model_validator

from automl.records import METRICS

__all__ = ["SearchSettings", "PRUNERS", "BACKENDS", "run_search", "run_workers", "WorkerError", "leaderboard", "summarize", "trial_seed", "optuna_pruner", "ray_scheduler", "check_signal_options"]

PRUNERS = ("signal", "median", "asha", "hyperband", "none")
BACKENDS = ("optuna", "ray")


class SearchSettings(BaseModel):
    """Everything that defines a search (validated on construction)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    space: str
    dataset: str
    trials: int = Field(30, ge=1)
    epochs: int = Field(20, ge=1)
    backend: Literal["optuna", "ray"] = "optuna"
    pruner: Literal["signal", "median", "asha", "hyperband", "none"] = "signal"
    metric: Literal["val_acc", "val_loss"] = "val_acc"
    storage: str = "sqlite:///automl.db"
    study: Optional[str] = None
    seed: int = 0
    n_jobs: int = Field(1, ge=1)
    device: str = "cpu"
    ray_address: Optional[str] = None
    worker: int = Field(0, ge=0)  # which of several processes on one study (its own sampler stream)
    heartbeat: int = Field(30, ge=0)  # seconds between a running trial's heartbeats (SQL storages; 0: off)
    failure: bool = False  # the signal pruner also prunes what the failure classifier labels a sure failure
    converge: bool = False  # trials whose layer dynamics settled and metric stalled stop as converged

    @model_validator(mode="after")
    def _signal_only(self) -> "SearchSettings":
        check_signal_options(self.pruner, failure=self.failure, converge=self.converge)
        return self

    def policy(self) -> Any:
        """The signal pruner's ``Policy``: the default, with the failure classifier and the
        convergence stop as asked."""
        from automl.decision import Policy

        return Policy(failure="model" if self.failure else "off", convergence="dynamics" if self.converge else "off")

    @property
    def direction(self) -> str:
        return METRICS[self.metric]

    @property
    def study_name(self) -> str:
        return self.study or f"{self.space}-{self.dataset}-{self.pruner}-seed{self.seed}"


def check_signal_options(pruner: str, *, failure: bool, converge: bool) -> None:
    """Refuse the signal pruner's options (``failure``, ``converge``) with another pruner."""
    for flag, on in (("failure", failure), ("converge", converge)):
        if on and pruner != "signal":
            raise ValueError(f"{flag} is an option of the signal pruner, but pruner is {pruner!r}; "
                             "use pruner 'signal' or leave it off.")


def trial_seed(seed: int, config: Mapping[str, Any]) -> int:
    """The model/batch-order seed of a configuration: the same for the same config and search
    seed, whichever backend or worker trains it (no hidden global randomness)."""
    text = json.dumps({k: config[k] for k in sorted(config)}, sort_keys=True, default=str)
    return zlib.crc32(f"{seed}:{text}".encode()) & 0x7FFFFFFF


def worker_id() -> str:
    """``host:pid`` of this process, stored on each trial it runs (``user_attrs["worker"]``)."""
    return f"{socket.gethostname()}:{os.getpid()}"


def error_text(exc: BaseException, limit: int = 500) -> str:
    """A one-line reason for a failed trial: the exception's type and message, cut to ``limit``."""
    text = " ".join(f"{type(exc).__name__}: {exc}".split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def sampler_seed(seed: int, n_existing_trials: int) -> int:
    """The sampler seed of a run: ``seed`` for a new study, a different one for each resumption."""
    return seed if n_existing_trials == 0 else zlib.crc32(f"{seed}:{n_existing_trials}".encode()) & 0x7FFFFFFF


def optuna_pruner(name: str, epochs: int, policy: Any = None) -> Any:
    """The Optuna pruner a CLI name stands for (built-ins with their default settings;
    ``policy`` for ``signal``)."""
    import optuna

    from pruners import SignalPruner

    if name == "signal":
        return SignalPruner(policy, max_epochs=epochs)
    if name == "median":
        return optuna.pruners.MedianPruner()
    if name == "asha":
        return optuna.pruners.SuccessiveHalvingPruner()
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=epochs)
    if name == "none":
        return optuna.pruners.NopPruner()
    raise ValueError(f"unknown pruner {name!r}; choose one of {', '.join(PRUNERS)}.")


def ray_scheduler(name: str, epochs: int, policy: Any = None) -> Any:
    """The Ray Tune scheduler a CLI name stands for (metric and mode come from ``TuneConfig``;
    ``policy`` for ``signal``)."""
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler, HyperBandScheduler, MedianStoppingRule

    from pruners import SignalScheduler

    if name == "signal":
        return SignalScheduler(policy, time_attr="epoch", max_t=epochs)
    if name == "median":
        return MedianStoppingRule(time_attr="epoch", grace_period=1, min_samples_required=5)
    if name == "asha":
        return ASHAScheduler(time_attr="epoch", max_t=epochs, grace_period=1)
    if name == "hyperband":
        return HyperBandScheduler(time_attr="epoch", max_t=epochs)
    if name == "none":
        return FIFOScheduler()
    raise ValueError(f"unknown pruner {name!r}; choose one of {', '.join(PRUNERS)}.")


def _create_study(settings: SearchSettings, storage: Any, *, pruner: Any = None, overwrite: bool = False) -> Any:
    import optuna

    if overwrite:
        try:
            optuna.delete_study(study_name=settings.study_name, storage=storage)
        except KeyError:
            pass
    study = optuna.create_study(
        study_name=settings.study_name, storage=storage, direction=settings.direction, pruner=pruner, load_if_exists=True
    )
    # Seeded, but a second run into the same study must not replay the first run's draws.
    seed = settings.seed if settings.worker == 0 else zlib.crc32(f"{settings.seed}:worker{settings.worker}".encode()) & 0x7FFFFFFF
    study.sampler = optuna.samplers.TPESampler(seed=sampler_seed(seed, len(study.get_trials(deepcopy=False))))
    if study.direction.name.lower() != settings.direction:
        raise ValueError(
            f"study {settings.study_name!r} already exists with direction {study.direction.name.lower()}, "
            f"but metric {settings.metric} is to be {settings.direction}d; use another --study or --overwrite."
        )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study.set_metric_names([settings.metric])
    for key in ("space", "dataset", "epochs", "backend", "pruner", "metric", "seed", "failure", "converge"):
        study.set_user_attr(key, getattr(settings, key))
    return study


def run_search(
    settings: SearchSettings,
    *,
    overwrite: bool = False,
    on_trial_done: Optional[Callable[[Any], None]] = None,
) -> Any:
    """Run the search and return the Optuna study holding its trials.

    Args:
        settings: what to search (space, dataset, budget, backend, pruner, storage, seed).
        overwrite: delete an existing study of the same name first (else add trials to it).
        on_trial_done: called with each finished ``FrozenTrial`` (e.g. to advance a progress bar).
    """
    from search_spaces import get_space

    from automl.data import load_dataset
    from automl.storage import open_storage

    space = get_space(settings.space)
    data = load_dataset(settings.dataset)
    space.check_input_shape(data.input_shape)
    storage = open_storage(settings.storage, heartbeat=settings.heartbeat if settings.backend == "optuna" else None)
    if settings.backend == "optuna":
        return _run_optuna(settings, space, data, storage, overwrite, on_trial_done)
    from automl._ray_search import run_ray

    study = _create_study(settings, storage, overwrite=overwrite)
    return run_ray(settings, space, study, on_trial_done)


def _worker(settings: dict[str, Any]) -> None:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    run_search(SearchSettings(**settings))


def run_workers(settings: SearchSettings, workers: int, *, overwrite: bool = False,
                on_progress: Optional[Callable[[int], None]] = None, poll_s: float = 1.0) -> Any:
    """Run ``settings.trials`` trials in ``workers`` processes on one study (Optuna backend), as
    on several machines: the storage must be one they can all reach (``journal://`` on one
    machine, PostgreSQL across machines; SQLite works on one machine with its file locks).
    ``on_progress`` is called with the number of finished trials as they finish."""
    import multiprocessing

    import optuna

    from automl.storage import open_storage

    if settings.backend != "optuna":
        raise ValueError(f"workers run the optuna backend; for Ray use --ray-address (got backend {settings.backend!r}).")
    if settings.storage.strip() == "memory":
        raise ValueError("worker processes cannot share the 'memory' storage; use journal:///FILE, sqlite:///FILE or PostgreSQL.")
    storage = open_storage(settings.storage)
    study = _create_study(settings, storage, overwrite=overwrite)
    start = len(study.get_trials(deepcopy=False))
    shares = [settings.trials // workers + (i < settings.trials % workers) for i in range(workers)]
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_worker, args=({**settings.model_dump(), "trials": n, "worker": i},), daemon=False)
             for i, n in enumerate(shares) if n]
    for p in procs:
        p.start()
    finished, reaped = -1, set()
    try:
        while True:
            alive = [p.is_alive() for p in procs]
            for p in procs:
                if not p.is_alive() and p.pid not in reaped:
                    reaped.add(p.pid)
                    if p.exitcode != 0:  # a killed worker cannot fail its own trial: do it for it
                        _fail_orphans(study, f"{socket.gethostname()}:{p.pid}", p.exitcode)
            done = sum(t.state.is_finished() for t in study.get_trials(deepcopy=False)[start:])
            if on_progress and done != finished:
                on_progress(done)
                finished = done
            if not any(alive):
                break
            time.sleep(poll_s)
    finally:
        for p in procs:
            p.join()
    failed = [p.exitcode for p in procs if p.exitcode != 0]
    if on_progress:
        on_progress(sum(t.state.is_finished() for t in study.get_trials(deepcopy=False)[start:]))
    if failed:
        raise WorkerError(f"{len(failed)} of {len(procs)} worker processes failed ({', '.join(map(_exit_words, failed))}); "
                          "their running trials are marked FAIL, finished trials are kept.")
    return optuna.load_study(study_name=settings.study_name, storage=storage)


class WorkerError(RuntimeError):
    """A worker process of :func:`run_workers` ended abnormally (the study is still consistent)."""


def _exit_words(code: Optional[int]) -> str:
    if code is not None and code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


def _fail_orphans(study: Any, worker: str, exitcode: Optional[int]) -> list[int]:
    """Mark ``FAIL`` the trials that ``worker`` left ``RUNNING``; returns their numbers."""
    from optuna.exceptions import UpdateFinishedTrialError
    from optuna.trial import TrialState

    numbers = []
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if t.user_attrs.get("worker") != worker:
            continue
        try:
            study._storage.set_trial_user_attr(t._trial_id, "fail_reason", f"its worker process {worker} ended mid-trial ({_exit_words(exitcode)})")
            study._storage.set_trial_state_values(t._trial_id, TrialState.FAIL)
            numbers.append(t.number)
        except (UpdateFinishedTrialError, RuntimeError):
            pass  # a heartbeat check elsewhere got there first
    return numbers


def _run_optuna(settings, space, data, storage, overwrite, on_trial_done):
    import optuna
    import torch

    from automl.probe import converged_stop
    from automl.record import auto_every_k_steps
    from automl.reporting import report
    from automl.trainer import train

    policy = settings.policy()
    pruner = optuna_pruner(settings.pruner, settings.epochs, policy)
    study = _create_study(settings, storage, pruner=pruner, overwrite=overwrite)
    writes_reason = hasattr(pruner, "verdict")  # SignalPruner stores its own reason
    if settings.n_jobs > 1:
        # Optuna runs n_jobs as threads: they share torch's global RNG, so parameter init and
        # dropout are not bit-reproducible across runs (processes on a JournalStorage are).
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // settings.n_jobs))

    def objective(trial: optuna.Trial) -> float:
        trial.set_user_attr("worker", worker_id())
        try:
            return _objective(trial)
        except optuna.TrialPruned:
            raise
        except Exception as exc:
            # Recorded as the trial's reason; Optuna then marks it FAIL and the search goes on.
            trial.set_user_attr("fail_reason", error_text(exc))
            raise

    def _objective(trial: optuna.Trial) -> float:
        config = space.suggest(trial)
        seed = trial_seed(settings.seed, config)
        trial.set_user_attr("seed", seed)
        records = []

        def on_epoch(record):
            value = report(record, trial, metric=settings.metric)
            records.append(record)
            # The last epoch is paid for: finish the trial so the sampler sees its full result
            # (the replay benchmark counts epochs the same way).
            if record.epoch < settings.epochs and trial.should_prune():
                if not writes_reason:  # a built-in pruner: say which, when and at what value
                    trial.set_user_attr("prune_reason", f"{type(pruner).__name__} pruned at epoch {record.epoch} "
                                                        f"({settings.metric}={value:.4g})")
                raise optuna.TrialPruned(f"pruned at epoch {record.epoch}")
            # Not pruned: a settled run stops as converged and finishes with the value it reached.
            return settings.converge and record.epoch < settings.epochs and \
                converged_stop(records, trial, metric=settings.metric, policy=policy) is not None

        k = auto_every_k_steps(len(data.x_train), int(config.get("batch_size", 64)), settings.epochs) if settings.converge else None
        result = train(space, config, data, epochs=settings.epochs, seed=seed, device=settings.device, every_k_steps=k,
                       on_epoch=on_epoch)
        trial.set_user_attr("epochs", result.epochs)
        return result.final(settings.metric)

    callbacks = [lambda study, trial: on_trial_done(trial)] if on_trial_done else []
    study.optimize(objective, n_trials=settings.trials, n_jobs=settings.n_jobs, callbacks=callbacks, catch=(Exception,))
    return study


def leaderboard(study: Any) -> list[dict[str, Any]]:
    """One row per trial: number, state, params, value, epochs, reason; best finished first."""
    from automl.reporting import records_from_user_attrs

    rows = []
    for t in study.get_trials(deepcopy=False):
        epochs = t.user_attrs.get("epochs")
        if epochs is None:
            epochs = t.last_step or len(records_from_user_attrs(t.user_attrs)) or 0
        reason = (t.user_attrs.get("prune_reason") or t.user_attrs.get("stop_reason") or t.user_attrs.get("fail_reason")
                  or t.system_attrs.get("fail_reason") or "")
        if not reason and t.state.name == "FAIL" and t.user_attrs.get("worker"):
            reason = (f"ended without a recorded error: its worker {t.user_attrs['worker']} stopped "
                      "(killed, out of memory, or lost its heartbeat)")
        rows.append(
            {"number": t.number, "state": t.state.name, "params": dict(t.params), "value": t.value, "epochs": int(epochs), "reason": reason}
        )
    sign = -1.0 if study.direction.name == "MAXIMIZE" else 1.0
    order = {"COMPLETE": 0, "RUNNING": 1, "PRUNED": 2, "FAIL": 3, "WAITING": 4}

    def key(r: dict[str, Any]) -> tuple:
        v = r["value"]
        return (order.get(r["state"], 5), sign * v if v is not None and math.isfinite(v) else math.inf, r["number"])

    return sorted(rows, key=key)


def summarize(study: Any) -> dict[str, Any]:
    """Totals over a study: trials by state, epochs consumed against the full budget, the best trial."""
    rows = leaderboard(study)
    budget = int(study.user_attrs.get("epochs", 0)) or max((r["epochs"] for r in rows), default=0)
    states: dict[str, int] = {}
    for r in rows:
        states[r["state"]] = states.get(r["state"], 0) + 1
    complete = [r for r in rows if r["state"] == "COMPLETE" and r["value"] is not None]
    best = complete[0] if complete else None
    used = sum(r["epochs"] for r in rows)
    return {
        "study": study.study_name,
        "metric": (study.metric_names or ["value"])[0],
        "direction": study.direction.name.lower(),
        "trials": len(rows),
        "states": states,
        "epochs_used": used,
        "epochs_full_budget": budget * len(rows),
        "best_trial": best["number"] if best else None,
        "best_value": best["value"] if best else None,
    }
