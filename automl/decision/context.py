"""``Context``: one decision's inputs, and the statistics over the study computed once for it."""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property
from typing import Optional

import numpy as np

from automl.decision.policy import Policy
from automl.decision.verdict import FINISHED, Population, TrialHistory
from automl.signals.curve import rank_correlation

__all__ = ["Context", "Peers", "trial_budget"]


@dataclass(frozen=True, slots=True)
class Peers:
    """The study seen from one trial at its epoch, in signed units (lower is better). Where the
    trial has a budget of its own, "this epoch" of another trial is the same share of its budget.

    Attributes:
        n_at_step: other trials that reached this epoch, or stopped before it.
        n_ahead: those ahead of this trial (a trial stopped early is behind, unless it finished
            early, as a converged one does, with a better final value).
        best_now: the best value of another trial at this epoch (``inf``: none).
        n_finished: finished trials.
        best_final, best_final_number: the best finite final value, and whose (``inf``, ``None``: none).
        now, final: value at this epoch and final value of every finished trial that has both.
    """

    n_at_step: int
    n_ahead: int
    best_now: float
    n_finished: int
    best_final: float
    best_final_number: Optional[int]
    now: tuple[float, ...]
    final: tuple[float, ...]


@dataclass(frozen=True)
class Context:
    """What every check reads: the trial, its study, the policy, and derived numbers."""

    trial: TrialHistory
    population: Population
    policy: Policy

    @property
    def metric(self) -> str:
        return self.population.metric

    @cached_property
    def step(self) -> int:
        """The trial's latest epoch (the checks after ``no_data`` may rely on one)."""
        return max(self.trial.values)

    @property
    def value(self) -> float:
        """The trial's value at its latest epoch, in the metric's units."""
        return self.trial.values[self.step]

    @cached_property
    def sign(self) -> float:
        return 1.0 if self.population.direction == "minimize" else -1.0

    @cached_property
    def current(self) -> float:
        return self.sign * self.value

    @cached_property
    def best_so_far(self) -> float:
        return min(self.sign * v for v in self.trial.values.values())

    @cached_property
    def rank_corr(self) -> Optional[float]:
        """Spearman's rho between the finished trials' values at this epoch and their final
        values, where ``Policy.min_rank_corr`` asks for it (``None``: not asked; ``nan``: undefined)."""
        p, pol = self.peers, self.policy
        if pol.min_rank_corr > 0 and len(p.now) >= pol.min_finished and self.step >= pol.min_epochs:
            return rank_correlation(np.asarray(p.now), np.asarray(p.final))
        return None

    @cached_property
    def peers(self) -> Peers:
        return _peers(self.trial.number, self.population, self.step, self.sign, self.current, self.trial.budget)


def trial_budget(t: TrialHistory, default: Optional[int]) -> Optional[int]:
    """A trial's budget: its own, else where it finished (its last epoch), else ``default``."""
    return t.budget or (next(reversed(t.values)) if t.state == FINISHED and t.values else default)


def _step_of(t: TrialHistory, step: int, budget: int, default: int) -> int:
    """The epoch of trial ``t`` at the same share of its own budget as ``step`` of ``budget``."""
    return max(1, round(step * trial_budget(t, default) / budget))


def _peers(me: int, population: Population, step: int, sign: float, current: float, budget: Optional[int] = None) -> Peers:
    """One pass over the study. The hot path (up to hundreds of trials per decision): ``v - v == 0``
    is True exactly for finite floats, and plain comparisons replace min() calls. Where the trial
    has a budget of its own (trials differ in budget), every other trial is read at the same share
    of its own budget, not at the same epoch: a long-budget trial, whose schedule runs to its end,
    is compared with short ones at the same point of their schedules."""
    best_now = best_final = math.inf
    n_at_step = n_ahead = n_finished = 0
    best_number: Optional[int] = None
    now: list[float] = []
    final: list[float] = []
    default = population.max_epochs or budget
    for t in population.trials:
        if t.number == me:
            continue
        v = t.values.get(step if budget is None else _step_of(t, step, budget, default))
        if v is not None and v - v == 0:
            v = sign * v
            n_at_step += 1
            n_ahead += v < current
            best_now = v if v < best_now else best_now
        else:
            v = None
            if t.state != "RUNNING" and t.values:  # stopped before this epoch
                n_at_step += 1
                n_ahead += t.state == FINISHED and t.final is not None and sign * t.final < current
        if t.state != FINISHED:
            continue
        n_finished += 1
        f = t.final
        if f is None or f - f != 0:
            continue
        f = sign * f
        if f < best_final:
            best_final, best_number = f, t.number
        if v is not None:
            now.append(v)
            final.append(f)
    return Peers(n_at_step, int(n_ahead), best_now, n_finished, best_final, best_number, tuple(now), tuple(final))
