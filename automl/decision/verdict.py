"""What ``decide`` reads and returns: ``TrialHistory``, ``Population`` and ``Verdict``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple, Optional

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["TrialHistory", "Population", "Verdict", "Direction", "Action", "Source", "FINISHED"]

Direction = Literal["minimize", "maximize"]
Action = Literal["continue", "prune", "converged"]
Source = Literal["no_data", "budget", "divergence", "incumbent", "contender", "rank", "capacitance", "curve", "fallback",
                 "thin", "dynamics", "failure", "forecast", "rung"]

#: The state of a trial that ran to its end (Optuna's name); a trial stopped as converged is one too.
FINISHED = "COMPLETE"


class TrialHistory(NamedTuple):
    """What is known of one trial: its metric per epoch, and its final value once finished.

    Attributes:
        number: the trial's number in its study (Optuna's ``trial.number``, or Ray's order).
        values: metric value per epoch (1-based step -> value); ``nan``/``inf`` mark divergence.
        state: ``"RUNNING"``, ``"COMPLETE"``, ``"PRUNED"`` or ``"FAIL"`` (Optuna's names).
        final: the objective value of a ``COMPLETE`` trial.
        records: the trial's ``EpochRecord`` dicts (``EpochRecord.compact()``: a key holding
            ``None`` is a non-finite value, an absent key was not measured), oldest first.
        budget: the trial's own budget in epochs, where trials differ (a hyperparameter such as
            ``epochs`` with a schedule that runs to it); ``None``: the study's ``max_epochs``.
    """

    number: int
    values: Mapping[int, float]
    state: str = "RUNNING"
    final: Optional[float] = None
    records: Sequence[Mapping[str, Any]] = ()
    budget: Optional[int] = None

    @property
    def last_step(self) -> Optional[int]:
        return max(self.values) if self.values else None


@dataclass(frozen=True, slots=True)
class Population:
    """The other trials of the study, and how to read their metric."""

    trials: Sequence[TrialHistory]
    direction: Direction = "minimize"
    metric: str = "value"
    max_epochs: Optional[int] = None  # the budget; at it, stopping saves nothing

    def __post_init__(self) -> None:
        if self.direction not in ("minimize", "maximize"):
            raise ValueError(f"direction must be 'minimize' or 'maximize', but got {self.direction!r}.")


class Verdict(BaseModel):
    """A decision with the reason a person can read and the numbers behind it.

    Attributes:
        action: ``"continue"``, ``"prune"`` (will lose) or ``"converged"`` (will not gain).
        reason: one sentence, e.g. ``"diverged at epoch 3: val_loss=nan"``.
        evidence: the numbers the reason rests on (JSON-ready; non-finite as ``None``).
        predicted_final: the forecast final metric value, in the metric's own units.
        source: which check decided (``divergence``, ``budget``, ``incumbent``, ``contender``,
            ``rank``, ``failure``, ``capacitance``, ``curve``, ``fallback``, ``thin``,
            ``no_data``, ``dynamics``, ``failure``, ``forecast``, ``rung``).
    """

    model_config = ConfigDict(frozen=True, ser_json_inf_nan="null")

    action: Action
    reason: str
    evidence: dict[str, Any] = Field(default_factory=dict)
    predicted_final: Optional[float] = None
    source: Source

    @property
    def should_stop(self) -> bool:
        return self.action != "continue"
