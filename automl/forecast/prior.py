"""A synthetic prior of *studies*: whole hyperparameter searches, not single curves.

The forecaster learns from studies drawn here, so it must see what real searches show: curves that
cross (a fast starter that ends mid-pack, a slow one that ends first), trials that never learn,
diverge, or degrade late (overfitting), noise that differs from study to study, and, where the
budget is itself a hyperparameter, learning-rate schedules that run to each trial's own budget
(cosine or step decay) with the late gain they bring. Everything is in *lower-is-better* units.

Curve shapes are the parametric families used by the learning-curve literature (Domhan et al.,
IJCAI 2015; Adriaensen et al., LC-PFN, NeurIPS 2023): pow3, Janoschek, ilog2, exp3 and MMF, each
rescaled to a "fraction of the trial's gain reached" ``s(t)`` in [0, 1]. Written for this project
from those papers' formulas; no code of theirs is used. Pure numpy: :func:`sample_study` is fully
determined by its generator.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = ["Study", "sample_study", "FAMILIES"]

FAMILIES = ("pow3", "janoschek", "ilog2", "exp3", "mmf")


@dataclass(frozen=True)
class Study:
    """One synthetic study: ``curves[i]`` is trial i's value per epoch (``nan`` once diverged),
    ``budgets[i]`` its length. Lower is better."""

    curves: list[np.ndarray]
    budgets: np.ndarray
    kind: str  # "fixed" (one budget), "budget" (budget a hyperparameter, schedule to it), "short" (few evaluations)


def _shape(family: str, x: np.ndarray, rate: float, rng: np.random.Generator) -> np.ndarray:
    """``s(x)`` in [0, 1], increasing, for progress ``x`` in (0, 1]; ``rate`` > 0 sets the pace."""
    if family == "pow3":
        alpha = rng.uniform(0.3, 2.0)
        s = 1.0 - (1.0 + rate * 20 * x) ** (-alpha)
    elif family == "janoschek":
        delta = rng.uniform(0.5, 2.0)
        s = 1.0 - np.exp(-(rate * 6 * x) ** delta)
    elif family == "ilog2":
        s = 1.0 - 1.0 / np.log(math.e + rate * 40 * x)
    elif family == "exp3":
        s = 1.0 - np.exp(-rate * 5 * x)
    else:  # mmf
        delta = rng.uniform(0.7, 3.0)
        s = (rate * 8 * x) ** delta / (1.0 + (rate * 8 * x) ** delta)
    end = s[-1] if s[-1] > 0 else 1.0
    return np.clip(s / end, 0.0, 1.0)  # each trial reaches its own end level at its budget


def _schedule_gain(x: np.ndarray, kind: str) -> np.ndarray:
    """The extra gain a decaying learning rate brings, as a fraction of it reached at progress x."""
    if kind == "cosine":
        lr = 0.5 * (1 + np.cos(np.pi * x))
        return (1 - lr) ** 2
    if kind == "step":
        return 0.6 * (x >= 0.5) + 0.4 * (x >= 0.75)
    return np.zeros_like(x)


def _trial(rng: np.random.Generator, budget: int, end: float, start: float, pace: float, family: str,
           schedule: str, noise: float, fate: str, every: int) -> np.ndarray:
    steps = np.arange(every, budget + 1, every, dtype=float) if every > 1 else np.arange(1, budget + 1, dtype=float)
    if steps[-1] != budget:
        steps = np.append(steps, float(budget))
    x = steps / budget
    late = rng.uniform(0.1, 0.5) if schedule != "none" else 0.0  # the share of the gain the schedule brings
    gain = start - end
    s = (1 - late) * _shape(family, x, pace, rng) + late * _schedule_gain(x, schedule)
    y = start - gain * s
    if fate == "overfit":  # best at some point, then worse by a share of the gain
        t0 = rng.uniform(0.2, 0.7)
        y = y + gain * rng.uniform(0.1, 0.8) * np.clip((x - t0) / (1 - t0), 0, None) ** rng.uniform(1.0, 2.0)
    y = y + rng.normal(0.0, noise, size=len(y)) * (0.3 + 0.7 * np.abs(y - end) / max(abs(gain), 1e-9) + 0.3)
    if fate == "diverge":
        y[int(rng.integers(0, len(y))):] = np.nan
    return y


def sample_study(rng: np.random.Generator, n_trials: int = 200) -> Study:
    """Draw one study of ``n_trials`` trials (their curves in full; a replay decides what is seen).

    Task-level draws: the kind (one budget / budget a hyperparameter with a schedule to it / a few
    evaluations, as in fine-tuning), the start level, the best reachable level, how spread the
    trials' end levels are, the noise, the share of trials that never learn, diverge or overfit,
    and how a trial's pace relates to its end level (crossing curves).
    """
    kind = rng.choice(["fixed", "budget", "short"], p=[0.5, 0.3, 0.2])
    start = 1.0
    floor = rng.uniform(0.0, 0.6)  # the best end level any trial of the task reaches, about
    spread = rng.uniform(0.02, 0.4) * (start - floor)
    noise = rng.choice([0.002, 0.01, 0.03]) * (start - floor) * rng.uniform(0.5, 2.0)
    p_stuck, p_div, p_over = rng.uniform(0, 0.3), rng.uniform(0, 0.15), rng.uniform(0, 0.3)
    pace_link = rng.uniform(-1.0, 1.0)  # > 0: better trials are also faster; < 0: slower
    family_weights = rng.dirichlet(np.ones(len(FAMILIES)) * 0.7)
    if kind == "fixed":
        budgets = np.full(n_trials, int(rng.integers(10, 101)))
        every, schedule_of = 1, rng.choice(["none", "cosine", "step"], p=[0.6, 0.25, 0.15])
    elif kind == "budget":
        lo = int(rng.integers(5, 31))
        hi = int(rng.integers(lo * 2, lo * 6 + 1))
        budgets = rng.integers(lo, hi + 1, size=n_trials)
        every, schedule_of = 1, rng.choice(["cosine", "step"], p=[0.7, 0.3])
    else:
        budgets = rng.integers(4, 15, size=n_trials)
        every, schedule_of = 1, rng.choice(["none", "cosine"], p=[0.4, 0.6])
    budget_gain = rng.uniform(0.0, 0.5) if kind == "budget" else 0.0  # longer budget -> lower end
    curves = []
    for i in range(n_trials):
        quality = rng.gamma(rng.uniform(0.5, 2.0), 1.0)  # 0 = as good as the task allows
        b = int(budgets[i])
        rel_b = (b - budgets.min()) / max(budgets.max() - budgets.min(), 1)
        end = floor + spread * quality * (1.0 - budget_gain * rel_b)
        fate = rng.choice(["ok", "stuck", "diverge", "overfit"], p=[1 - p_stuck - p_div - p_over, p_stuck, p_div, p_over])
        if fate == "stuck":
            end = start - rng.uniform(0.0, 0.1) * (start - floor)
        pace = float(np.exp(rng.normal(0.0, 0.7) - 0.5 * pace_link * (quality - 1.0)))
        family = FAMILIES[int(rng.choice(len(FAMILIES), p=family_weights))]
        first = start + rng.normal(0, 0.05) * (start - floor)
        curves.append(_trial(rng, b, end, first, pace, family, str(schedule_of), noise, str(fate), every))
    return Study(curves=curves, budgets=budgets.astype(int), kind=str(kind))
