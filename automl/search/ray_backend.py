"""The Ray Tune backend of ``automl.search`` (imported only when a search runs on Ray): ``run_ray``
runs the trials on Ray Tune and ``OptunaRecorder`` adds each finished one to the Optuna study."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any, Optional

import optuna
from ray.tune import Callback

from automl.reporting import PRUNE_ATTRS, STOP_ATTRS
from automl.search.settings import error_text, sampler_seed, trial_seed
from automl.storage import study_storage

__all__ = ["run_ray", "OptunaRecorder"]


def run_ray(settings: Any, space: Any, study: Any, on_trial_done: Optional[Callable[[Any], None]]) -> Any:
    """Run ``settings`` on Ray Tune; every finished trial is added to ``study``."""
    import ray
    from ray import tune
    from ray.tune.search.basic_variant import BasicVariantGenerator

    metric, name, epochs, base_seed = settings.metric, settings.dataset, settings.epochs, settings.seed
    space_name, device, converge = settings.space, settings.device, settings.converge

    def trainable(config: dict) -> None:
        import torch
        from search_spaces import get_space as _get_space

        from automl.reporting import report as _report
        from automl.training.data import load_dataset as _load
        from automl.training.probe import auto_every_k_steps
        from automl.training.trainer import train as _train

        def on_epoch(record: Any) -> None:
            _report(record, metric=metric)  # to ray.tune.report; the scheduler decides

        torch.set_num_threads(1)
        space_ = _get_space(space_name)
        cfg = {k: config[k] for k in space_.names}
        data = _load(name)
        # The convergence stop reads the activation trace: the scheduler gets it with each result.
        k = auto_every_k_steps(len(data.x_train), int(cfg.get("batch_size", 64)), epochs) if converge else None
        _train(space_, cfg, data, epochs=epochs, seed=trial_seed(base_seed, cfg), device=device, every_k_steps=k,
               on_epoch=on_epoch)

    scheduler = settings.make_pruner()
    random_state = sampler_seed(settings.seed, len(study.get_trials(deepcopy=False)))
    started_here = False
    if not ray.is_initialized():
        kwargs: dict[str, Any] = dict(include_dashboard=False, log_to_driver=False, configure_logging=False)
        if settings.ray_address:
            try:
                ray.init(address=settings.ray_address, **kwargs)
            except ConnectionError as exc:
                first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                raise ValueError(f"cannot reach the Ray cluster at {settings.ray_address!r} ({first}); "
                                 "start one with `ray start --head`, or leave out --ray-address for a local Ray.") from None
        else:  # a Ray of its own, even where `ray start` left a cluster running (ray.init() would join that)
            ray.init(address="local", num_cpus=settings.n_jobs, **kwargs)
        started_here = True
    try:
        tuner = tune.Tuner(
            tune.with_resources(trainable, {"cpu": 1}),
            param_space=space.param_space(),
            tune_config=tune.TuneConfig(
                metric=metric,
                mode="max" if settings.direction == "maximize" else "min",
                num_samples=settings.trials,
                scheduler=scheduler,
                search_alg=BasicVariantGenerator(random_state=random_state, max_concurrent=settings.n_jobs),
                reuse_actors=True,
            ),
            run_config=tune.RunConfig(
                name=settings.study_name,
                storage_path=None,  # Ray's own default (~/ray_results), not the working folder: the trials live in the study
                verbose=0,
                callbacks=[OptunaRecorder(study, space, metric, type(scheduler).__name__, on_trial_done)],
            ),
        )
        tuner.fit()
    finally:
        if started_here:
            ray.shutdown()
    return optuna.load_study(study_name=study.study_name, storage=study_storage(study))


class OptunaRecorder(Callback):
    """Adds each finished Ray Tune trial to the Optuna study, with its curve and prune reason."""

    def __init__(self, study: Any, space: Any, metric: str, scheduler_name: str,
                 on_trial_done: Optional[Callable[[Any], None]] = None) -> None:
        self._study, self._space, self._metric, self._on_done = study, space, metric, on_trial_done
        self._scheduler_name = scheduler_name
        self._curves: dict[str, dict[int, float]] = {}

    def __getstate__(self) -> dict[str, Any]:
        # Ray pickles callbacks into its experiment checkpoint; the live study (storage locks)
        # and the progress hook stay with this process.
        state = self.__dict__.copy()
        state["_study"] = state["_on_done"] = None
        return state

    def on_trial_result(self, iteration, trials, trial, result, **info):
        if self._metric in result and "epoch" in result:
            value = result[self._metric]
            self._curves.setdefault(trial.trial_id, {})[int(result["epoch"])] = float("nan") if value is None else float(value)

    def _add(self, trial: Any, failed: bool) -> None:
        import optuna
        from optuna.trial import TrialState

        curve = self._curves.pop(trial.trial_id, {})
        last = dict(getattr(trial, "last_result", {}) or {})
        # SignalScheduler writes PRUNE_ATTRS on a pruned trial, STOP_ATTRS on a converged one.
        pruned = last.get("prune_reason") is not None and last.get("prune_action", "prune") == "prune"
        converged = last.get("stop_reason") is not None
        config = {k: trial.config[k] for k in self._space.names}
        user_attrs = {"ray_trial_id": trial.trial_id, "epochs": max(curve) if curve else 0}
        if failed:
            state, value = TrialState.FAIL, None
            user_attrs["fail_reason"] = _ray_error(trial)
        elif pruned:
            state, value = TrialState.PRUNED, _last_finite(curve)  # as Optuna stores a pruned trial
            user_attrs.update({k: last[k] for k in PRUNE_ATTRS if k in last})
        else:
            if converged:  # it finished with the value it reached
                user_attrs.update({k: last[k] for k in STOP_ATTRS if k in last})
            value = curve[max(curve)] if curve else float("nan")
            state = TrialState.COMPLETE if math.isfinite(value) else TrialState.FAIL
            value = value if state == TrialState.COMPLETE else None
            if not converged and curve and max(curve) < int(self._study.user_attrs.get("epochs", max(curve))):
                state, value = TrialState.PRUNED, _last_finite(curve)
                user_attrs["prune_reason"] = (
                    f"stopped at epoch {max(curve)} by Ray Tune ({self._scheduler_name} or a stopper)"
                )
        frozen = optuna.trial.create_trial(
            state=state,
            value=value,
            params=config,
            distributions=self._space.distributions(),
            user_attrs=user_attrs,
            intermediate_values={k: v for k, v in curve.items()},
        )
        self._study.add_trial(frozen)
        if self._on_done is not None:
            self._on_done(frozen)

    def on_trial_complete(self, iteration, trials, trial, **info):
        self._add(trial, failed=False)

    def on_trial_error(self, iteration, trials, trial, **info):
        self._add(trial, failed=True)


def _ray_error(trial: Any) -> str:
    """The error a Ray trial raised, as one line. Ray writes it beside the trial, pickled and as
    text, before it calls ``on_trial_error``."""
    from ray import cloudpickle

    try:
        if trial.pickled_error_file and Path(trial.pickled_error_file).is_file():
            with open(trial.pickled_error_file, "rb") as f:
                exc = cloudpickle.load(f)
            # Ray wraps the trainable's exception (RayTaskError): report the user's own
            cause = getattr(exc, "cause", None)
            return error_text(cause if isinstance(cause, BaseException) else exc)
        text = Path(trial.error_file).read_text() if trial.error_file and Path(trial.error_file).is_file() else ""
    except Exception as exc:  # noqa: BLE001 - the trial is recorded FAIL either way
        return f"the Ray trial raised; its error could not be read back ({error_text(exc)})"
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.startswith("Failure #")]
    return lines[-1][:500] if lines else "the Ray trial raised (Ray kept no error text)"


def _last_finite(curve: dict[int, float]) -> Optional[float]:
    finite = [curve[k] for k in sorted(curve) if math.isfinite(curve[k])]
    return finite[-1] if finite else None
