"""Features of a running trial's prefix against its study, in the units the forecaster learns in.

Every value is signed lower-is-better and then put on the study's own scale:
``z = (y - best) / (start - best)``, where ``best`` is the best finished trial's final value and
``start`` the median first-epoch value of the study's trials. So ``z = 0`` is "as good as the best
finished trial", ``z = 1`` "no better than where trials start", whatever the metric, its units or
its direction, and "this trial beats the best finished one" is ``z_final < 0``.

Progress is read two ways: in epochs, and as a fraction of the trial's own budget (a 100-epoch run
with a schedule that runs to 100 is compared, at epoch 10, with other runs at 10% of their budgets
as well as with other runs at epoch 10). Pure numpy.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from automl.signals.curve import rank_correlation

__all__ = ["StudyFrame", "NAMES", "features", "scale_of", "to_z", "Z_CLIP"]

#: z values are clipped to [-Z_CLIP, Z_CLIP]: a diverged trial is "far worse than the start".
Z_CLIP = 4.0

#: Every feature that moves with the trial's current value moves the same way (``z_now``, its best so
#: far, slopes and ranks), so with monotone constraints on them a worse value never forecasts a better
#: end. (Forecasts from the nearest finished trials were features once; which trials are nearest
#: changes with the value, so they broke that.)
NAMES = (
    "z_now", "z_best_so_far", "z_first", "slope_last", "slope_3", "progress", "log_epoch", "log_budget",
    "log_budget_vs_finished", "log_n_finished", "rank_epoch_finished", "rank_epoch_all", "rank_progress_finished",
    "gain_after_progress", "gain_after_progress_q10", "gain_after_progress_q90", "share_finished_reaching_epoch",
    "rho_progress_finished",
)


@dataclass(frozen=True)
class StudyFrame:
    """The finished trials of a study as arrays (signed lower-is-better; ``nan`` where missing).

    Attributes:
        at_epoch: each finished trial's value at the asking trial's epoch (``nan``: it had no such epoch).
        at_progress: each one's value at the same fraction of its own budget as the asking trial.
        final: each one's final value (``nan`` if it ended diverged).
        budget: each one's budget (epochs).
        first: each one's first value.
        others_at_epoch: every other trial's value at the epoch (any state; stopped ones have none).
    """

    at_epoch: np.ndarray
    at_progress: np.ndarray
    final: np.ndarray
    budget: np.ndarray
    first: np.ndarray
    others_at_epoch: np.ndarray


def scale_of(frame: StudyFrame, own_first: float) -> tuple[float, float]:
    """``(best, span)``: the best finite final value of the finished trials, and the study's scale
    ``start - best`` (``start``: the median first value of the finished trials; the asking trial's
    own only where none has one, so that its value never moves the scale it is read on: a worse
    first value must read as worse); ``span`` falls back to the spread of the first values, then
    to 1, where it is not positive."""
    finals = frame.final[np.isfinite(frame.final)]
    best = float(finals.min()) if len(finals) else math.nan
    firsts = frame.first[np.isfinite(frame.first)]
    if not len(firsts) and math.isfinite(own_first):
        firsts = np.array([own_first])
    start = float(np.median(firsts)) if len(firsts) else math.nan
    span = start - best
    if not span > 0 and len(firsts) > 1:
        span = float(np.ptp(firsts))
    if not span > 0 and len(finals) > 1:
        span = float(np.ptp(finals))
    return best, span if span > 0 else 1.0


def to_z(x: np.ndarray | float, best: float, span: float) -> np.ndarray:
    """Values in the study's z units (``nan`` and beyond-the-clip values read as :data:`Z_CLIP`)."""
    z = (np.asarray(x, dtype=float) - best) / span
    return np.clip(np.where(np.isnan(z), Z_CLIP, z), -Z_CLIP, Z_CLIP)


def features(own: np.ndarray, budget: int, frame: StudyFrame, epoch: int | None = None) -> tuple[np.ndarray, float, float]:
    """The feature row (ordered as :data:`NAMES`) of a trial whose values so far are ``own``
    (oldest first, finite; one per epoch unless ``epoch`` says how far it is) and whose budget is
    ``budget``, against the study's finished trials; with ``(best, span)`` to read a z forecast
    back in the metric's units."""
    e = len(own)
    epoch = e if epoch is None else epoch
    best, span = scale_of(frame, float(own[0]))
    z = to_z(own, best, span)
    fz = to_z(frame.final, best, span)
    ez, pz = to_z(frame.at_epoch, best, span), to_z(frame.at_progress, best, span)
    ez[~np.isfinite(frame.at_epoch)] = np.nan
    pz[~np.isfinite(frame.at_progress)] = np.nan
    n = len(frame.final)
    reach = np.isfinite(ez)
    others = frame.others_at_epoch[np.isfinite(frame.others_at_epoch)]
    gain = fz[np.isfinite(pz)] - pz[np.isfinite(pz)]
    med_budget = float(np.median(frame.budget)) if n else float(budget)
    row = [
        z[-1], z.min(), z[0],
        z[-1] - z[-2] if e > 1 else 0.0,
        (z[-1] - z[max(0, e - 4)]) / max(1, min(3, e - 1)) if e > 1 else 0.0,
        epoch / max(budget, epoch), math.log(epoch), math.log(max(budget, epoch)), math.log(budget / max(med_budget, 1.0)), math.log1p(n),
        float(np.mean(ez[reach] < z[-1])) if reach.any() else math.nan,
        float(np.mean(to_z(others, best, span) < z[-1])) if len(others) else math.nan,
        float(np.mean(pz[np.isfinite(pz)] < z[-1])) if np.isfinite(pz).any() else math.nan,
        *(np.quantile(gain, [0.5, 0.1, 0.9]).tolist() if len(gain) else [math.nan] * 3),
        float(np.mean(reach)) if n else math.nan,
        # how well this point of the budget orders the finished trials' ends in this study: where it
        # orders them well, few trials cross later
        rank_correlation(pz[np.isfinite(pz)], fz[np.isfinite(pz)]) if np.isfinite(pz).sum() >= 3 else math.nan,
    ]
    return np.asarray(row, dtype=float), best, span
