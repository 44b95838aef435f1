"""Model selection: run a declared space on a bundled dataset with Optuna or Ray Tune and a pruner.

The middle of the data flow: a search trains each trial with ``automl.training`` (the probe's
records go to the pruner through ``automl.reporting``) and persists every trial in an Optuna
storage (Ray's trials are added to the study as they finish), so ``automl show``, the service and
optuna-dashboard read one place, whichever backend ran it. ``settings`` says what a search is,
``SearchSettings.make_pruner`` builds the pruner a name stands for (through ``pruners``' registry), ``optuna_backend`` and ``ray_backend`` run the
trials, ``results`` reads a study back. Importing this package imports neither torch, optuna nor
ray: they load when a search runs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Optional

from automl.search.optuna_backend import WorkerError, create_study, run_workers
from automl.search.results import best_test_acc, leaderboard, summarize
from automl.search.settings import BACKENDS, PRUNERS, SearchSettings, check_signal_options, trial_seed

__all__ = ["SearchSettings", "PRUNERS", "BACKENDS", "run_search", "run_workers", "WorkerError", "leaderboard", "summarize", "best_test_acc",
           "trial_seed", "check_signal_options", "create_study"]


def run_search(
    settings: SearchSettings,
    *,
    overwrite: bool = False,
    on_trial_done: Optional[Callable[[Any], None]] = None,
    on_epoch: Optional[Callable[[int, int], None]] = None,
) -> Any:
    """Run the search and return the Optuna study holding its trials.

    Args:
        settings: what to search (space, dataset, budget, backend, pruner, storage, seed).
        overwrite: delete an existing study of the same name first (else add trials to it).
        on_trial_done: called with each finished ``FrozenTrial`` (e.g. to advance a progress bar).
        on_epoch: called with (trial number, epoch) after each epoch a trial of this process
            finishes (Optuna backend; Ray reports finished trials only).
    """
    if settings.backend == "optuna":
        from automl.search.optuna_backend import run_optuna

        return run_optuna(settings, overwrite=overwrite, on_trial_done=on_trial_done, on_epoch=on_epoch)
    from automl.search.settings import _load_task
    from automl.storage import open_storage

    space, _ = _load_task(settings)
    storage = open_storage(settings.storage, heartbeat=None)
    from automl.search.ray_backend import run_ray

    study = create_study(settings, storage, overwrite=overwrite)
    return run_ray(settings, space, study, on_trial_done)
