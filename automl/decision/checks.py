"""The checks ``decide`` asks in order. Each reads a :class:`Context` and returns a ``Verdict``,
or ``None`` to let the next check decide. The failure and capacitance checks, which call models,
are in modules of their own."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Optional

import numpy as np

from automl.decision.context import Context
from automl.decision.text import fmt, rank_evidence, rank_phrase
from automl.decision.verdict import FINISHED, TrialHistory, Verdict
from automl.signals.curve import forecast_final, median_at_step, rank_tail
from automl.validation import finite_or_none, is_finite

__all__ = ["no_data", "divergence", "budget", "incumbent", "contender", "rank", "curve", "fallback", "final_noise"]

_LOSS_KEYS = ("train_loss", "val_loss")


def no_data(ctx: Context) -> Optional[Verdict]:
    """Nothing reported yet: nothing to judge."""
    if ctx.trial.values:
        return None
    return Verdict(action="continue", reason="no value reported yet", source="no_data")


def divergence(ctx: Context) -> Optional[Verdict]:
    """A non-finite metric value (the earliest is reported), or a non-finite loss in the last
    record: an accuracy can stay finite while the loss behind it has diverged."""
    values = ctx.trial.values
    for s in sorted(values):
        if not is_finite(values[s]):
            return Verdict(action="prune", reason=f"diverged at epoch {s}: {ctx.metric}={float(values[s])}",
                           evidence={"epoch": s, "value": None}, source="divergence")
    if ctx.trial.records:
        last = ctx.trial.records[-1]
        for key in _LOSS_KEYS:
            if key in last and not is_finite(last[key]):
                epoch = last.get("epoch", ctx.step)
                shown = "nan" if last[key] is None else float(last[key])
                return Verdict(action="prune", reason=f"diverged at epoch {epoch}: {key}={shown}",
                               evidence={"epoch": epoch, key: None}, source="divergence")
    return None


def budget(ctx: Context) -> Optional[Verdict]:
    """At the budget (the trial's own, else the study's), stopping saves nothing and loses the result."""
    max_epochs = ctx.trial.budget or ctx.population.max_epochs
    if max_epochs is None or ctx.step < max_epochs:
        return None
    return Verdict(action="continue", reason=f"budget reached at epoch {ctx.step}: stopping now would save nothing",
                   evidence={"epoch": ctx.step, "max_epochs": max_epochs}, source="budget")


def incumbent(ctx: Context) -> Optional[Verdict]:
    """Never stop the leader at this epoch (among trials that reached it), nor a trial already
    better than every finished one. Alone at an epoch, a trial leads nothing."""
    p, best = ctx.peers, ctx.best_so_far
    if not (ctx.current <= p.best_now < math.inf or best < p.best_final < math.inf):
        return None
    if best < p.best_final:
        why = f"already better than every finished trial ({ctx.metric} {fmt(ctx.sign * best)})"
    else:
        why = f"best {ctx.metric} at epoch {ctx.step} among all trials ({fmt(ctx.value)})"
    return Verdict(action="continue", reason=f"incumbent: {why}", source="incumbent",
                   evidence={"epoch": ctx.step, "value": ctx.value, "best_finished": finite_or_none(ctx.sign * p.best_final)})


def contender(ctx: Context) -> Optional[Verdict]:
    """A trial in the top ``protect_top`` of every trial that reached this epoch or stopped
    before it is not judged further (alone at an epoch, a trial is no contender)."""
    p, top = ctx.peers, ctx.policy.protect_top
    if not (top > 0 and p.n_at_step > 0 and p.n_ahead < top * (p.n_at_step + 1)):
        return None
    return Verdict(action="continue", source="contender",
                   reason=f"contender: {rank_phrase(p.n_ahead, p.n_at_step, ctx.step, ctx.trial.budget)} (top {top:.0%} are never pruned)",
                   evidence=rank_evidence(ctx.step, ctx.value, p.n_ahead, p.n_at_step, protect_top=top))


def rank(ctx: Context) -> Optional[Verdict]:
    """The rank cut: more than ``rank_cut`` of the trials at this epoch are ahead (with
    ``rank_confidence``: surely so, by a one-sided binomial test)."""
    p, pol, step = ctx.peers, ctx.policy, ctx.step
    if not (pol.rank_cut > 0 and step >= pol.rank_cut_from and p.n_ahead > pol.rank_cut * (p.n_at_step + 1)
            and (pol.rank_confidence > 0 or p.n_finished >= pol.min_finished)):
        return None
    phrase, shown = rank_phrase(p.n_ahead, p.n_at_step, step, ctx.trial.budget), f"{ctx.metric} {fmt(ctx.value)}"
    evidence = rank_evidence(step, ctx.value, p.n_ahead, p.n_at_step, rank_cut=pol.rank_cut)
    if pol.rank_confidence == 0:
        return Verdict(action="prune", reason=f"{phrase}: more than {pol.rank_cut:.0%} of the trials are ahead ({shown})",
                       evidence=evidence, source="rank")
    tail = rank_tail(p.n_ahead, p.n_at_step, pol.rank_cut)
    if tail > 1.0 - pol.rank_confidence:
        return None
    return Verdict(action="prune", source="rank",
                   reason=f"{phrase} ({shown}): a trial in the top {pol.rank_cut:.0%} would see {p.n_ahead} of "
                          f"{p.n_at_step} ahead with probability {tail:.2g}",
                   evidence={**evidence, "rank_confidence": pol.rank_confidence, "p_value": tail})


def informative(ctx: Context) -> bool:
    """Whether this epoch ranks the finished trials' ends well enough for the curve to decide
    (always, unless ``min_rank_corr`` asks and the Spearman rho falls short or is undefined)."""
    rho = ctx.rank_corr
    return rho is None or (not math.isnan(rho) and rho >= ctx.policy.min_rank_corr)


def curve(ctx: Context) -> Optional[Verdict]:
    """The curve forecast from the finished trials closest at this epoch: prune when even its
    optimistic end cannot beat the best finished trial, else continue on its word."""
    p, pol, step, sign = ctx.peers, ctx.policy, ctx.step, ctx.sign
    if len(p.now) < pol.min_finished or step < pol.min_epochs or not informative(ctx):
        return None
    fc = forecast_final(ctx.current, np.asarray(p.now), np.asarray(p.final), n_neighbors=pol.n_neighbors, band=pol.band)
    low = fc.low if pol.optimism != "all" else min(fc.low, ctx.current + min(f - n for n, f in zip(p.now, p.final)))
    pred, optimistic = sign * fc.mean, sign * low
    evidence = {"epoch": step, "value": ctx.value, "predicted_final": pred, "optimistic_final": optimistic,
                "pessimistic_final": sign * fc.high, "band": pol.band, "n_neighbors": fc.n_neighbors,
                "n_finished_at_epoch": len(p.now), "best_finished": sign * p.best_final,
                "best_finished_trial": p.best_final_number, "rank_corr_at_epoch": finite_or_none(ctx.rank_corr)}
    noise = 0.0
    if pol.noise_margin > 0 and low > p.best_final + pol.margin:
        noise = evidence["noise"] = final_noise(ctx.population.trials, ctx.trial.number)
    best = f"the best finished trial #{p.best_final_number} ({fmt(sign * p.best_final)})"
    if low > p.best_final + pol.margin + pol.noise_margin * noise:
        beyond = f", even by {pol.noise_margin:g}x its noise {fmt(noise)}" if noise > 0 else ""
        reason = (f"predicted final {ctx.metric} {fmt(pred)} (optimistic {fmt(optimistic)}, {pol.band:.0%} band from the "
                  f"{fc.n_neighbors} finished trials closest at epoch {step}) cannot beat {best}{beyond}")
        return Verdict(action="prune", reason=reason, evidence=evidence, predicted_final=pred, source="curve")
    within = f" (within {pol.noise_margin:g}x the outcome's noise {fmt(noise)})" if noise > 0 else ""
    reason = (f"may still beat the best finished trial: optimistic final {ctx.metric} {fmt(optimistic)} "
              f"vs {fmt(sign * p.best_final)}{within}")
    return Verdict(action="continue", reason=reason, evidence=evidence, predicted_final=pred, source="curve")


def fallback(ctx: Context) -> Verdict:
    """While the evidence is thin: the median rule (Optuna's ``MedianPruner``), or "thin" for an
    adapter that wraps a classic pruner of its own. Always decides: it is the last check."""
    p, pol, step, sign = ctx.peers, ctx.policy, ctx.step, ctx.sign
    if not informative(ctx):
        shown = "undefined" if math.isnan(ctx.rank_corr) else f"{ctx.rank_corr:.2f}"
        thin = (f"at epoch {step} the curve barely ranks the {len(p.now)} finished trials' final values "
                f"(Spearman {shown} < {pol.min_rank_corr})")
    else:
        thin = f"{len(p.now)} finished trials reached epoch {step} (curve forecast needs {pol.min_finished})"
    if pol.fallback == "none":
        return Verdict(action="continue", reason=f"thin evidence: {thin}", evidence={"epoch": step}, source="thin")
    if p.n_finished < pol.fallback_startup_trials or step < pol.fallback_warmup_epochs or not p.now:
        return Verdict(action="continue", source="fallback", evidence={"epoch": step, "n_finished": p.n_finished},
                       reason=f"thin evidence: {thin}; median rule waits for {pol.fallback_startup_trials} finished "
                              f"trials and epoch {pol.fallback_warmup_epochs}")
    median = median_at_step(np.asarray(p.now))
    evidence = {"epoch": step, "best_so_far": sign * ctx.best_so_far, "median": sign * median, "n_peers": len(p.now)}
    rule = "median rule (evidence thin): "
    if ctx.best_so_far > median:
        reason = (f"{rule}best {ctx.metric} so far {fmt(sign * ctx.best_so_far)} is worse than the median "
                  f"{fmt(sign * median)} of {len(p.now)} finished trials at epoch {step}")
        return Verdict(action="prune", reason=reason, evidence=evidence, source="fallback")
    reason = f"{rule}{ctx.metric} {fmt(sign * ctx.best_so_far)} is within the median {fmt(sign * median)} at epoch {step}"
    return Verdict(action="continue", reason=reason, evidence=evidence, source="fallback")


def final_noise(trials: Sequence[TrialHistory], me: int, last: int = 6, most: int = 16) -> float:
    """How much a finished trial's value moves from epoch to epoch near its end: the median, over
    the ``most`` latest finished trials, of the standard deviation of the differences of their last
    ``last`` reported values, over sqrt 2 (the per-epoch noise of a flat curve; a steady trend does
    not count). Computed only when the forecast is about to prune: it reads many trials."""
    tails = []
    for t in reversed(trials):
        if t.number != me and t.state == FINISHED and len(t.values) >= last:
            end = next(reversed(t.values))  # the last reported step
            tails.append([t.values.get(s) for s in range(end - last + 1, end + 1)])
            if len(tails) == 2 * most:  # room for the diverged ones dropped below
                break
    if not tails:
        return 0.0
    arr = np.asarray(tails, dtype=float)  # a missing step (None) becomes nan
    arr = arr[np.isfinite(arr).all(axis=1)][:most]
    if not len(arr):
        return 0.0
    with np.errstate(over="ignore", invalid="ignore"):
        d = arr[:, 1:] - arr[:, :-1]
        d -= d.mean(axis=1, keepdims=True)
        spread = ((d * d).mean(axis=1) ** 0.5)
    spread = sorted(spread[np.isfinite(spread)].tolist())  # a tail past float range says nothing of noise
    n = len(spread)
    if not n:
        return 0.0
    return (spread[n // 2] + spread[(n - 1) // 2]) / 2.0 / math.sqrt(2.0)
