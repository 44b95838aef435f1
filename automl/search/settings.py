"""What a search is: its validated settings, the pruner and backend names, and the seeds.

Light on purpose (pydantic and the standard library): ``automl.cli`` reads the choices here at
import time, and every other module of ``automl.search`` builds on it.
"""

from __future__ import annotations

import json
import os
import socket
import zlib
from collections.abc import Mapping
from typing import Any, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, model_validator

from automl.decision.defaults import DEFAULT_RISK
from automl.records import METRICS

__all__ = ["SearchSettings", "PRUNERS", "BACKENDS", "check_signal_options", "trial_seed", "sampler_seed", "worker_id",
           "error_text"]

PRUNERS = ("signal", "forecast", "median", "asha", "hyperband", "none")
BACKENDS = ("optuna", "ray")


class SearchSettings(BaseModel):
    """Everything that defines a search (validated on construction)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    space: str
    dataset: str
    trials: int = Field(30, ge=1)
    epochs: int = Field(20, ge=1)
    backend: Literal["optuna", "ray"] = "optuna"
    pruner: Literal["signal", "forecast", "median", "asha", "hyperband", "none"] = "signal"
    risk: float = Field(DEFAULT_RISK, gt=0.0, lt=1.0)  # the forecast pruner's knob: prune below this P(beat the best)
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

        return Policy(failure="model" if self.failure else "off", convergence="dynamics" if self.converge else "off",
                      risk=self.risk)

    def make_pruner(self) -> Any:
        """The pruner ``pruner`` names for this search's backend: an Optuna pruner, or a Ray Tune
        scheduler stepping by ``epoch``, built by :mod:`pruners`' registry as the benchmarks build it."""
        from pruners import optuna_pruner, ray_scheduler

        if self.backend == "optuna":
            return optuna_pruner(self.pruner, max_epochs=self.epochs, policy=self.policy())
        return ray_scheduler(self.pruner, max_t=self.epochs, time_attr="epoch", policy=self.policy())

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


def _load_task(settings: SearchSettings) -> tuple[Any, Any]:
    """The search space and dataset ``settings`` name, checked against each other (imports torch)."""
    from search_spaces import get_space

    from automl.training.data import load_dataset

    space = get_space(settings.space)
    data = load_dataset(settings.dataset)
    space.check_input_shape(data.input_shape)
    return space, data
