"""The Optuna backend of ``automl.search``: the study, the trials of one process, and worker processes.

``create_study`` opens (or makes) the study a search writes to, for either backend; ``run_optuna``
runs trials in this process; ``run_workers`` runs them in several processes on one study and fails
the trials a killed worker left running. optuna and torch are imported only when a search runs.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import threading
import time
import warnings
import zlib
from collections.abc import Callable
from typing import Any, Optional

from automl.search.settings import SearchSettings, _load_task, error_text, sampler_seed, trial_seed, worker_id

__all__ = ["create_study", "run_optuna", "run_workers", "WorkerError", "Interrupted", "interruptible", "was_interrupted"]


class Interrupted(KeyboardInterrupt):
    """The search was stopped by Ctrl-C or SIGTERM: each running trial ends ``FAIL`` with ``how`` in
    its reason, finished trials are kept, and the study can be resumed."""

    def __init__(self, how: str = "interrupted by the user (Ctrl-C)") -> None:
        super().__init__(how)
        self.how = how


_STOP = threading.Event()  # set by the handler: trials in other threads stop at their next epoch
_HOW = ["interrupted by the user (Ctrl-C)"]


def was_interrupted() -> bool:
    """Whether a SIGINT or SIGTERM reached this process inside :func:`interruptible` (wherever the
    exception it raised was caught or wrapped on its way out)."""
    return _STOP.is_set()


@contextlib.contextmanager
def interruptible():
    """While inside, SIGINT (Ctrl-C) and SIGTERM raise :class:`Interrupted` in this process, and
    every trial it runs (in any thread) stops at its next epoch. Outside the main thread, a no-op."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        _HOW[0] = "interrupted by the user (Ctrl-C)" if signum == signal.SIGINT else f"stopped by {signal.Signals(signum).name}"
        _STOP.set()
        logging.getLogger("optuna").setLevel(logging.ERROR)  # not Optuna's traceback of the trial it stops
        raise Interrupted(_HOW[0])

    _STOP.clear()
    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


def create_study(settings: SearchSettings, storage: Any, *, pruner: Any = None, overwrite: bool = False) -> Any:
    """The Optuna study ``settings`` write to (created, or loaded to add trials; deleted first with
    ``overwrite``), with a seeded sampler, the metric's name and the settings as user attrs.
    ``pruner`` is for trials run in this process; raises ``ValueError`` if an existing study of
    that name optimizes the other direction."""
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
    for key in ("space", "dataset", "epochs", "backend", "pruner", "metric", "seed", "failure", "converge", "risk"):
        study.set_user_attr(key, getattr(settings, key))
    return study


def run_optuna(
    settings: SearchSettings,
    *,
    overwrite: bool = False,
    on_trial_done: Optional[Callable[[Any], None]] = None,
    on_epoch: Optional[Callable[[int, int], None]] = None,
) -> Any:
    """Run ``settings`` (backend ``optuna``) in this process; see :func:`automl.search.run_search`."""
    from automl.storage import open_storage

    space, data = _load_task(settings)
    storage = open_storage(settings.storage, heartbeat=settings.heartbeat)
    return _run_optuna(settings, space, data, storage, overwrite, on_trial_done, on_epoch)


def _worker(settings: dict[str, Any]) -> None:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    with interruptible():  # Ctrl-C reaches every process of the group; SIGTERM from run_workers
        try:
            run_optuna(SearchSettings(**settings))
        except Interrupted:
            raise SystemExit(130) from None


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
    study = create_study(settings, storage, overwrite=overwrite)
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
    except KeyboardInterrupt as exc:  # Ctrl-C also reached the workers (one process group); SIGTERM may not have
        how = getattr(exc, "how", "interrupted by the user (Ctrl-C)")
        for p in procs:
            if p.is_alive():
                p.terminate()  # SIGTERM: the worker fails its running trial with a reason and exits
        for p in procs:
            p.join(timeout=60)
            if p.is_alive():
                p.kill()
                p.join()
            _fail_orphans(study, f"{socket.gethostname()}:{p.pid}", p.exitcode, why=f"{how}; its worker stopped mid-trial")
        raise
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


def _fail_orphans(study: Any, worker: str, exitcode: Optional[int], why: Optional[str] = None) -> list[int]:
    """Mark ``FAIL`` the trials that ``worker`` left ``RUNNING``; returns their numbers (a trial a
    heartbeat check elsewhere already failed is left as it is)."""
    from optuna.trial import TrialState

    from automl.storage import fail_trial

    why = why or f"its worker process {worker} ended mid-trial ({_exit_words(exitcode)})"
    return [t.number for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
            if t.user_attrs.get("worker") == worker and fail_trial(study, t, why)]


def _run_optuna(settings, space, data, storage, overwrite, on_trial_done, epoch_done=None):
    import optuna
    import torch

    from automl.reporting import report
    from automl.training.probe import auto_every_k_steps, converged_stop
    from automl.training.trainer import train

    policy = settings.policy()
    pruner = settings.make_pruner()
    study = create_study(settings, storage, pruner=pruner, overwrite=overwrite)
    writes_reason = hasattr(pruner, "verdict")  # SignalPruner stores its own reason
    if settings.n_jobs > 1:
        # Optuna runs n_jobs as threads: they share torch's global RNG, so parameter init and
        # dropout are not bit-reproducible across runs (processes on a JournalStorage are).
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // settings.n_jobs))

    epochs_done: dict[int, int] = {}  # trial number -> its last finished epoch (for an interruption's reason)

    def objective(trial: optuna.Trial) -> float:
        trial.set_user_attr("worker", worker_id())
        try:
            return _objective(trial)
        except optuna.TrialPruned:
            raise
        except KeyboardInterrupt as exc:  # Optuna marks it FAIL and re-raises: the search stops
            how = getattr(exc, "how", "interrupted by the user (Ctrl-C)")
            trial.set_user_attr("fail_reason", f"{how} during epoch {epochs_done.get(trial.number, 0) + 1} of {settings.epochs}")
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
            epochs_done[trial.number] = record.epoch
            if epoch_done:
                epoch_done(trial.number, record.epoch)
            if _STOP.is_set():  # another thread took the signal: this trial stops here too
                raise Interrupted(_HOW[0])
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
