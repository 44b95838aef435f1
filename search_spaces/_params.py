"""Hyperparameter declarations that check themselves and export to Optuna and Ray Tune.

A parameter is declared once; `suggest` asks an Optuna trial for it, `to_ray` gives the
matching Ray Tune sampler, `distribution` the Optuna distribution (used to store trials run
by Ray in an Optuna study), and `sample` draws it from a NumPy generator (for recorded banks).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Union

import numpy as np

__all__ = ["Float", "Int", "Categorical", "Param", "SearchSpace"]


def _check_name(name: str) -> None:
    if not isinstance(name, str) or not name.isidentifier():
        raise ValueError(f"parameter name must be an identifier, but got {name!r}.")


@dataclass(frozen=True)
class Float:
    """A real-valued hyperparameter on ``[low, high]``, optionally log-scaled."""

    name: str
    low: float
    high: float
    log: bool = False

    def __post_init__(self) -> None:
        _check_name(self.name)
        for bound in ("low", "high"):
            value = getattr(self, bound)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ValueError(f"{self.name}: {bound} must be a finite number, but got {value!r}.")
        if self.low > self.high:
            raise ValueError(f"{self.name}: low must be <= high, but got low={self.low}, high={self.high}.")
        if self.log and self.low <= 0:
            raise ValueError(f"{self.name}: low must be > 0 on a log scale, but got low={self.low}.")

    def suggest(self, trial: Any) -> float:
        return trial.suggest_float(self.name, self.low, self.high, log=self.log)

    def distribution(self) -> Any:
        from optuna.distributions import FloatDistribution

        return FloatDistribution(self.low, self.high, log=self.log)

    def to_ray(self) -> Any:
        from ray import tune

        return tune.loguniform(self.low, self.high) if self.log else tune.uniform(self.low, self.high)

    def sample(self, rng: np.random.Generator) -> float:
        if self.log:
            return float(math.exp(rng.uniform(math.log(self.low), math.log(self.high))))
        return float(rng.uniform(self.low, self.high))

    def contains(self, value: Any) -> bool:
        return isinstance(value, (int, float, np.floating)) and not isinstance(value, bool) and self.low <= value <= self.high


@dataclass(frozen=True)
class Int:
    """An integer hyperparameter on ``[low, high]`` (both included), optionally log-scaled."""

    name: str
    low: int
    high: int
    log: bool = False

    def __post_init__(self) -> None:
        _check_name(self.name)
        for bound in ("low", "high"):
            value = getattr(self, bound)
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValueError(f"{self.name}: {bound} must be an integer, but got {value!r}.")
        if self.low > self.high:
            raise ValueError(f"{self.name}: low must be <= high, but got low={self.low}, high={self.high}.")
        if self.log and self.low < 1:
            raise ValueError(f"{self.name}: low must be >= 1 on a log scale, but got low={self.low}.")

    def suggest(self, trial: Any) -> int:
        return trial.suggest_int(self.name, self.low, self.high, log=self.log)

    def distribution(self) -> Any:
        from optuna.distributions import IntDistribution

        return IntDistribution(self.low, self.high, log=self.log)

    def to_ray(self) -> Any:
        from ray import tune

        # Ray's integer samplers exclude the upper bound.
        if self.log:
            return tune.lograndint(self.low, self.high + 1)
        return tune.randint(self.low, self.high + 1)

    def sample(self, rng: np.random.Generator) -> int:
        if self.log:
            value = math.exp(rng.uniform(math.log(self.low), math.log(self.high + 1)))
            return int(min(self.high, max(self.low, math.floor(value))))
        return int(rng.integers(self.low, self.high + 1))

    def contains(self, value: Any) -> bool:
        return isinstance(value, (int, np.integer)) and not isinstance(value, bool) and self.low <= value <= self.high


@dataclass(frozen=True)
class Categorical:
    """A hyperparameter taking one of a fixed list of choices (str, int, float or bool)."""

    name: str
    choices: tuple[Any, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        _check_name(self.name)
        choices = tuple(self.choices)
        object.__setattr__(self, "choices", choices)
        if not choices:
            raise ValueError(f"{self.name}: choices must not be empty.")
        bad = [c for c in choices if not isinstance(c, (str, int, float, bool))]
        if bad:
            raise ValueError(f"{self.name}: choices must be str, int, float or bool, but got {bad!r}.")
        if len(set(choices)) != len(choices):
            raise ValueError(f"{self.name}: choices must be distinct, but got {list(choices)!r}.")

    def suggest(self, trial: Any) -> Any:
        return trial.suggest_categorical(self.name, list(self.choices))

    def distribution(self) -> Any:
        from optuna.distributions import CategoricalDistribution

        return CategoricalDistribution(list(self.choices))

    def to_ray(self) -> Any:
        from ray import tune

        return tune.choice(list(self.choices))

    def sample(self, rng: np.random.Generator) -> Any:
        return self.choices[int(rng.integers(len(self.choices)))]

    def contains(self, value: Any) -> bool:
        # True == 1 in Python: compare types too, so a bool never passes for an int choice.
        return any(type(value) is type(c) and value == c for c in self.choices) or (
            isinstance(value, np.generic) and value.item() in self.choices
        )


Param = Union[Float, Int, Categorical]


@dataclass(frozen=True)
class SearchSpace:
    """A candidate family: its hyperparameters and how to build a model from a configuration.

    Example:
        >>> from search_spaces import get_space
        >>> space = get_space("mlp")
        >>> sorted(space.names)[:3]
        ['activation', 'batch_size', 'depth']
        >>> config = space.sample(np.random.default_rng(0))
        >>> space.validate(config) == config
        True
    """

    name: str
    params: tuple[Param, ...]
    builder: Any  # callable(config, input_shape, n_classes) -> torch.nn.Module
    description: str = ""
    input_ranks: tuple[int, ...] = (1, 2, 3)  # ranks of a sample (C, L) or (C, H, W) it accepts

    def __post_init__(self) -> None:
        names = [p.name for p in self.params]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"space {self.name!r}: parameter names must be unique, but {dup} repeat.")

    @property
    def names(self) -> list[str]:
        return [p.name for p in self.params]

    def suggest(self, trial: Any) -> dict[str, Any]:
        """Ask an Optuna trial for every hyperparameter; returns the configuration."""
        return {p.name: p.suggest(trial) for p in self.params}

    def param_space(self) -> dict[str, Any]:
        """The Ray Tune ``param_space`` of this family."""
        return {p.name: p.to_ray() for p in self.params}

    def distributions(self) -> dict[str, Any]:
        """Optuna distributions, e.g. to store a trial that Ray ran in an Optuna study."""
        return {p.name: p.distribution() for p in self.params}

    def sample(self, rng: np.random.Generator) -> dict[str, Any]:
        return {p.name: p.sample(rng) for p in self.params}

    def validate(self, config: Mapping[str, Any]) -> dict[str, Any]:
        """Check a configuration; raise ``ValueError`` naming the first bad or missing key."""
        missing = [n for n in self.names if n not in config]
        if missing:
            raise ValueError(f"space {self.name!r}: configuration lacks {missing}; expected keys {self.names}.")
        for p in self.params:
            if not p.contains(config[p.name]):
                raise ValueError(f"space {self.name!r}: {p.name}={config[p.name]!r} is outside {p}.")
        return {n: config[n] for n in self.names}

    def check_input_shape(self, input_shape: Sequence[int]) -> None:
        """Raise ``ValueError`` if this family cannot take samples of ``input_shape``."""
        if len(input_shape) not in self.input_ranks:
            kinds = {1: "(F,) features", 2: "(C, L) sequences", 3: "(C, H, W) images"}
            wanted = " or ".join(kinds.get(r, f"rank {r}") for r in self.input_ranks)
            raise ValueError(
                f"space {self.name!r} takes {wanted}, but the data has input_shape={tuple(input_shape)}."
            )

    def build_model(self, config: Mapping[str, Any], input_shape: Sequence[int], n_classes: int) -> Any:
        """Build the ``torch.nn.Module`` for ``config`` on inputs of ``input_shape`` (no batch axis)."""
        self.check_input_shape(input_shape)
        return self.builder(self.validate(config), tuple(input_shape), int(n_classes))
