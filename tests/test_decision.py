"""The decision core: pure, deterministic, symmetric in direction, never prunes the incumbent."""

from __future__ import annotations

import math

import numpy as np
import optuna
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from automl import Policy, Population, TrialHistory, Verdict, decide
from automl.signals import forecast_final


def finished(number: int, curve: list[float]) -> TrialHistory:
    return TrialHistory(number, {i + 1: v for i, v in enumerate(curve)}, "COMPLETE", curve[-1])


def population(curves, direction="minimize", **kw) -> Population:
    return Population([finished(i, c) for i, c in enumerate(curves)], direction=direction, metric="val_loss", **kw)


# The forecast's mechanism from epoch 1 (the defaults wait until epoch 5, as measured by replay),
# without the rank cut (its own tests turn it on).
EARLY = Policy(min_epochs=1, fallback_warmup_epochs=0, n_neighbors=7, band=0.8, rank_cut=0.0)

# Ten finished loss curves 1/(e) + offset, offsets 0..0.9: the best finished final is 0.1.
CURVES = [[o + 1.0 / e for e in range(1, 11)] for o in np.linspace(0.0, 0.9, 10)]


def test_no_values_continues():
    v = decide(TrialHistory(99, {}), population(CURVES))
    assert (v.action, v.source) == ("continue", "no_data")


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_non_finite_metric_prunes_with_epoch_in_reason(bad):
    v = decide(TrialHistory(99, {1: 2.0, 2: 1.0, 3: bad}), population(CURVES))
    assert v.action == "prune" and v.source == "divergence"
    assert v.reason.startswith("diverged at epoch 3: val_loss=")


def test_earliest_non_finite_is_reported():
    v = decide(TrialHistory(99, {1: 2.0, 2: float("nan"), 3: float("nan")}), population(CURVES))
    assert v.reason == "diverged at epoch 2: val_loss=nan"


def test_non_finite_loss_in_record_prunes_even_if_metric_finite():
    # val_acc stays finite (argmax of nan logits) while the loss diverged.
    records = ({"epoch": 4, "train_loss": None, "val_loss": 2.3},)
    pop = Population([finished(i, [0.5, 0.6, 0.7, 0.8]) for i in range(6)], direction="maximize", metric="val_acc")
    v = decide(TrialHistory(99, {1: 0.1, 2: 0.1, 3: 0.1, 4: 0.1}, records=records), pop)
    assert v.action == "prune" and v.reason == "diverged at epoch 4: train_loss=nan"


def test_clear_loser_is_pruned_by_curve_with_numbers():
    loser = TrialHistory(99, {1: 5.0, 2: 4.6})
    v = decide(loser, population(CURVES), EARLY)
    assert v.action == "prune" and v.source == "curve"
    assert v.evidence["optimistic_final"] > v.evidence["best_finished"]
    assert v.predicted_final == pytest.approx(v.evidence["predicted_final"])
    assert "cannot beat the best finished trial #0" in v.reason


def test_trial_whose_optimistic_forecast_can_win_continues():
    # Peers at epoch 1 and their finals: one of them improved by 1.2, so a trial at 1.05 may
    # still reach below the best final 0.2 at the optimistic end of the band.
    starts, finals = [1.0, 1.1, 1.2, 1.3, 1.4, 1.5], [0.2, 0.3, 0.9, 0.5, 0.6, 0.3]
    pop = population([[s, f] for s, f in zip(starts, finals)])
    v = decide(TrialHistory(99, {1: 1.05}), pop, EARLY)
    assert (v.action, v.source) == ("continue", "curve")
    assert v.evidence["optimistic_final"] < v.evidence["best_finished"] < v.evidence["predicted_final"]


def test_step_leader_is_incumbent():
    v = decide(TrialHistory(99, {1: 1.0, 2: 0.45}), population(CURVES))
    assert (v.action, v.source) == ("continue", "incumbent")


def test_incumbent_better_than_best_finished_is_never_pruned():
    # Worse than others at this epoch but its best-so-far already beats every finished final.
    hist = TrialHistory(99, {1: 0.05, 2: 3.0})
    assert decide(hist, population(CURVES)).source == "incumbent"


def test_thin_evidence_uses_median_rule_like_optuna():
    pop = population(CURVES[:3])  # 3 finished < min_finished=5; median startup = 5 too
    v = decide(TrialHistory(99, {1: 50.0}), pop)
    assert v.action == "continue" and v.source == "fallback"
    v = decide(TrialHistory(99, {1: 50.0}), pop, EARLY.model_copy(update={"fallback_startup_trials": 2}))
    assert v.action == "prune" and v.source == "fallback" and "median rule" in v.reason


def test_fallback_none_reports_thin():
    v = decide(TrialHistory(99, {1: 50.0}), population(CURVES[:3]), Policy(fallback="none"))
    assert (v.action, v.source) == ("continue", "thin")


def test_budget_reached_never_prunes():
    v = decide(TrialHistory(99, {e: 9.0 for e in range(1, 11)}), population(CURVES, max_epochs=10))
    assert (v.action, v.source) == ("continue", "budget")


def test_default_policy_ranks_from_epoch_2_and_forecasts_from_epoch_5():
    # A clear loser, behind all 10 finished trials: nothing at epoch 1, the rank cut at epoch 2.
    v = decide(TrialHistory(99, {1: 5.0}), population(CURVES))
    assert v.action == "continue" and v.source == "fallback"
    v = decide(TrialHistory(99, {1: 5.0, 2: 4.6}), population(CURVES))
    assert (v.action, v.source) == ("prune", "rank")
    # Mid-pack (4 of 11 trials ahead, under the 40% cut) but unable to catch the best finished
    # trial: the forecast waits for epoch 5.
    mid = {e: 0.35 + 1.0 / e for e in range(1, 6)}
    for epoch in (2, 3, 4):
        v = decide(TrialHistory(99, {e: mid[e] for e in range(1, epoch + 1)}), population(CURVES))
        assert v.action == "continue" and v.source == "fallback"
    v = decide(TrialHistory(99, mid), population(CURVES))
    assert (v.action, v.source) == ("prune", "curve")


def test_trial_itself_in_population_is_skipped():
    pop = population(CURVES)
    me = TrialHistory(3, {1: 5.0, 2: 4.6})
    assert decide(me, pop) == decide(TrialHistory(3, me.values), Population([*pop.trials, me], "minimize", "val_loss"))


def test_verdict_is_json_ready_with_nulls():
    v = decide(TrialHistory(1, {1: float("nan")}), population(CURVES))
    assert Verdict.model_validate_json(v.model_dump_json()) == v.model_copy(update={"evidence": {"epoch": 1, "value": None}})


def test_policy_validates_with_named_field():
    with pytest.raises(ValueError, match="band"):
        Policy(band=1.5)
    with pytest.raises(ValueError, match="min_finished"):
        Policy(min_finished=0)
    with pytest.raises(ValueError, match="rank_cut"):
        Policy(rank_cut=1.0)  # every trial would be cut
    with pytest.raises(ValueError, match="rank_cut_from"):
        Policy(rank_cut_from=0)
    with pytest.raises(ValueError, match="direction"):
        Population([], direction="up")


# -- property tests ----------------------------------------------------------------------------
curve_values = st.floats(min_value=-10, max_value=10, allow_nan=False)


@st.composite
def populations(draw):
    n = draw(st.integers(0, 12))
    length = draw(st.integers(1, 6))
    curves = [draw(st.lists(curve_values, min_size=length, max_size=length)) for _ in range(n)]
    trial = draw(st.lists(curve_values, min_size=1, max_size=length))
    return curves, trial


@settings(max_examples=200, deadline=None)
@given(populations(), st.sampled_from(["minimize", "maximize"]))
def test_incumbent_at_its_epoch_is_never_pruned(data, direction):
    curves, trial = data
    pop = Population([finished(i, c) for i, c in enumerate(curves)], direction=direction)
    step = len(trial)
    sign = 1 if direction == "minimize" else -1
    others = [sign * c[step - 1] for c in curves if len(c) >= step]
    hist = TrialHistory(99, {i + 1: v for i, v in enumerate(trial)})
    v = decide(hist, pop)
    if not others or sign * trial[-1] <= min(others):
        assert v.action == "continue"
    assert decide(hist, pop) == v  # deterministic


@settings(max_examples=200, deadline=None)
@given(populations())
def test_direction_symmetry(data):
    curves, trial = data
    hist = TrialHistory(99, {i + 1: v for i, v in enumerate(trial)})
    neg = TrialHistory(99, {k: -v for k, v in hist.values.items()})
    pop_min = Population([finished(i, c) for i, c in enumerate(curves)], direction="minimize")
    pop_max = Population([finished(i, [-x for x in c]) for i, c in enumerate(curves)], direction="maximize")
    a, b = decide(hist, pop_min), decide(neg, pop_max)
    assert (a.action, a.source) == (b.action, b.source)
    if a.predicted_final is not None:
        assert b.predicted_final == pytest.approx(-a.predicted_final)


@settings(max_examples=100, deadline=None)
@given(populations())
def test_median_fallback_agrees_with_optuna_median_pruner(data):
    """While evidence is thin, the core's median rule decides exactly as optuna.MedianPruner."""
    curves, trial = data
    # Always thin: the median decides, as MedianPruner(n_startup_trials=5, n_warmup_steps=0).
    policy = Policy(min_finished=10**6, fallback_startup_trials=5, fallback_warmup_epochs=0)
    study = optuna.create_study(pruner=optuna.pruners.MedianPruner(n_startup_trials=5))
    for c in curves:
        t = study.ask()
        for i, v in enumerate(c):
            t.report(v, i + 1)
        study.tell(t, c[-1])
    t = study.ask()
    for i, v in enumerate(trial):
        t.report(v, i + 1)
    optuna_says = t.should_prune()
    pop = Population([finished(i, c) for i, c in enumerate(curves)], direction="minimize")
    v = decide(TrialHistory(t.number, {i + 1: x for i, x in enumerate(trial)}), pop, policy)
    if v.source == "incumbent":
        # The one intended difference: the guard keeps a trial that leads its epoch or is already
        # better than every finished trial, which the median rule alone may prune.
        assert v.action == "continue"
        finals = [c[-1] for c in curves]
        at_step = [c[len(trial) - 1] for c in curves if len(c) >= len(trial)]
        assert (at_step and trial[-1] <= min(at_step)) or min(trial) < min(finals)
    else:
        assert (v.action == "prune") == optuna_says


optuna.logging.set_verbosity(optuna.logging.ERROR)


# -- the forecast itself -------------------------------------------------------------------------
def test_forecast_transfers_neighbour_deltas():
    now = np.array([1.0, 2.0, 3.0, 10.0])
    final = np.array([0.5, 1.5, 2.5, 2.0])  # nearest three improve by 0.5
    fc = forecast_final(2.1, now, final, n_neighbors=3, band=0.8)
    assert fc.mean == pytest.approx(1.6) and fc.low == pytest.approx(1.6) and fc.n_neighbors == 3


def test_forecast_band_orders_and_widens_with_spread():
    rng = np.random.default_rng(0)
    now = rng.uniform(0, 1, 50)
    final = now - rng.uniform(0, 0.5, 50)
    fc = forecast_final(0.5, now, final, n_neighbors=7, band=0.8)
    assert fc.low <= fc.mean <= fc.high
    narrow = forecast_final(0.5, now, final, n_neighbors=7, band=0.2)
    assert narrow.high - narrow.low < fc.high - fc.low


@pytest.mark.parametrize(
    "args, match",
    [
        ((0.5, [1.0, 2.0], [1.0]), "equal-length"),
        ((0.5, [], []), "non-empty"),
        ((math.nan, [1.0], [1.0]), "finite"),
        ((0.5, [math.inf], [1.0]), "finite"),
    ],
)
def test_forecast_rejects_bad_input(args, match):
    with pytest.raises(ValueError, match=match):
        forecast_final(args[0], np.array(args[1]), np.array(args[2]))


# -- the informativeness gate --------------------------------------------------------------------
@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.integers(-5, 5), st.integers(-5, 5)), min_size=3, max_size=40))
def test_rank_correlation_matches_scipy(pairs):
    from scipy.stats import spearmanr

    from automl.signals import rank_correlation

    a = np.array([p[0] for p in pairs], dtype=float)
    b = np.array([p[1] for p in pairs], dtype=float)
    ours = rank_correlation(a, b)
    if np.ptp(a) == 0 or np.ptp(b) == 0:
        assert math.isnan(ours)
    else:
        assert ours == pytest.approx(spearmanr(a, b).statistic, abs=1e-12)


def test_uninformative_epoch_defers_to_fallback():
    # At epoch 1 every finished trial sat at the same value: epoch 1 ranks nothing.
    curves = [[0.7, 0.7 - 0.05 * i, 0.7 - 0.06 * i] for i in range(10)]
    loser = TrialHistory(99, {1: 0.71})
    gate = EARLY.model_copy(update={"min_rank_corr": 0.5, "fallback": "none"})
    gated = decide(loser, population(curves), gate)
    assert (gated.action, gated.source) == ("continue", "thin")
    assert "barely ranks" in gated.reason and "undefined" in gated.reason
    # At epoch 2 the ranking is perfect: the forecast decides.
    loser2 = TrialHistory(99, {1: 0.71, 2: 0.75})
    v = decide(loser2, population(curves), gate)
    assert v.source == "curve" and v.evidence["rank_corr_at_epoch"] == pytest.approx(1.0)


def _pruned(number: int, curve: list[float]) -> TrialHistory:
    return TrialHistory(number, {i + 1: v for i, v in enumerate(curve)}, "PRUNED")


def test_contender_in_the_top_fraction_is_not_pruned():
    # 30 trials stopped at epoch 2 (they count as behind at epoch 2), 10 finished ones.
    pop = Population([finished(i, c) for i, c in enumerate(CURVES)]
                     + [_pruned(100 + i, [3.0 + i, 2.5 + i]) for i in range(30)], metric="val_loss")
    loser = TrialHistory(99, {1: 1.9, 2: 1.5})  # behind all 10 finished trials at epoch 2, ahead of the 30
    assert decide(loser, pop, EARLY).action == "prune"
    v = decide(loser, pop, EARLY.model_copy(update={"protect_top": 0.3}))
    assert (v.action, v.source) == ("continue", "contender")
    assert v.evidence["rank"] == 11 and v.evidence["n_at_epoch"] == 41
    assert v.reason == "contender: rank 11 of 41 trials at epoch 2 (top 30% are never pruned)"
    # Outside the top fraction: the forecast decides as before.
    assert decide(loser, pop, EARLY.model_copy(update={"protect_top": 0.2})).action == "prune"


def test_contender_rank_counts_a_trial_that_finished_early_by_its_final_value():
    policy = EARLY.model_copy(update={"protect_top": 0.99})
    trial = TrialHistory(99, {1: 1.9, 2: 1.5})  # behind the 10 finished trials at epoch 2
    early = TrialHistory(50, {1: 0.5}, "COMPLETE", 0.05)  # finished (converged) at epoch 1: ahead
    pop = Population([finished(i, c) for i, c in enumerate(CURVES)] + [early], metric="val_loss")
    assert decide(trial, pop, policy).evidence["rank"] == 12
    stopped = TrialHistory(50, {1: 0.5}, "PRUNED")  # pruned at epoch 1: behind
    pop = Population([finished(i, c) for i, c in enumerate(CURVES)] + [stopped], metric="val_loss")
    assert decide(trial, pop, policy).evidence["rank"] == 11


def test_contender_is_symmetric_in_direction():
    pop = Population([finished(i, c) for i, c in enumerate(CURVES)]
                     + [_pruned(100 + i, [3.0 + i, 2.5 + i]) for i in range(30)], metric="val_loss")
    flip = Population([TrialHistory(t.number, {k: -v for k, v in t.values.items()}, t.state,
                                    None if t.final is None else -t.final) for t in pop.trials],
                      direction="maximize", metric="val_loss")
    policy = EARLY.model_copy(update={"protect_top": 0.3})
    a = decide(TrialHistory(99, {1: 1.9, 2: 1.5}), pop, policy)
    b = decide(TrialHistory(99, {1: -1.9, 2: -1.5}), flip, policy)
    assert (a.action, a.source, a.evidence["rank"]) == (b.action, b.source, b.evidence["rank"])


def test_noise_margin_spares_a_trial_within_the_outcomes_noise():
    # Finished accuracy curves that wobble by about 0.01 from epoch to epoch near their end.
    rng = np.random.default_rng(0)
    curves = [[0.5 + 0.03 * e + o + 0.01 * rng.standard_normal() for e in range(1, 11)] for o in np.linspace(0, 0.1, 10)]
    pop = Population([finished(i, c) for i, c in enumerate(curves)], direction="maximize", metric="val_acc")
    best = max(c[-1] for c in curves)
    near = TrialHistory(99, {1: 0.5 + 0.03 + 0.07, 2: 0.5 + 0.06 + 0.07})
    plain = decide(near, pop, EARLY.model_copy(update={"noise_margin": 0.0}))
    assert plain.action == "prune" and "noise" not in plain.reason
    gap = best - plain.evidence["optimistic_final"]
    noisy = EARLY.model_copy(update={"noise_margin": 3.0})
    v = decide(near, pop, noisy)
    noise = v.evidence["noise"]
    assert 0.003 < noise < 0.03  # the wobble, measured from the finished trials' tails
    assert 0 < gap <= 3.0 * noise and (v.action, v.source) == ("continue", "curve")
    assert v.reason.endswith(f"(within 3x the outcome's noise {noise:.4g})")
    # A clear loser is still pruned, and its reason says by how much beyond the noise.
    lost = decide(TrialHistory(99, {1: 0.2, 2: 0.21}), pop, noisy)
    assert lost.action == "prune" and f"even by 3x its noise {lost.evidence['noise']:.4g}" in lost.reason


def test_a_trial_alone_at_its_epoch_is_no_contender():
    v = decide(TrialHistory(0, {1: 1.0}), Population([], metric="val_loss"), Policy(protect_top=0.5))
    assert v.source != "contender"


def test_rank_cut_prunes_a_trial_far_behind_the_trials_at_its_epoch():
    # 10 finished trials and 10 pruned at epoch 3 (values at epochs 1-3, behind at later epochs).
    pruned = [_pruned(100 + i, [5.0 + i, 4.0 + i, 3.5 + i]) for i in range(10)]
    pop = Population([finished(i, c) for i, c in enumerate(CURVES)] + pruned, metric="val_loss")
    off = EARLY.model_copy(update={"rank_cut": 0.0})
    cut = off.model_copy(update={"rank_cut": 0.5, "rank_cut_from": 2})
    # At epoch 2: 10 finished trials (1.0..1.4) ahead of 1.45, 10 pruned ones behind: 10 of 21 ahead.
    mid = TrialHistory(99, {1: 2.0, 2: 1.45})
    assert decide(mid, pop, cut).source != "rank"
    # Behind the 10 finished trials and 5 of the pruned ones (4.0..8.0): 15 of 21 ahead.
    far = TrialHistory(99, {1: 6.0, 2: 8.5})
    assert decide(far, pop, off).source == "curve"  # without the cut, the forecast decides
    v = decide(far, pop, cut)
    assert (v.action, v.source) == ("prune", "rank")
    assert v.evidence["rank"] == 16 and v.evidence["n_at_epoch"] == 21
    assert v.reason == "rank 16 of 21 trials at epoch 2: more than 50% of the trials are ahead (val_loss 8.5)"
    # Not before its first epoch, and not before min_finished trials finished.
    assert decide(far, pop, cut.model_copy(update={"rank_cut_from": 3})).source != "rank"
    assert decide(far, pop, cut.model_copy(update={"min_finished": 11})).source != "rank"
    # At a later epoch the trials stopped before it count as behind: 2.0 at epoch 5 has 10 ahead of 21.
    late = TrialHistory(99, {1: 6.0, 2: 5.0, 3: 4.0, 4: 3.0, 5: 2.0})
    assert decide(late, pop, cut.model_copy(update={"rank_cut": 0.45})).source == "rank"
    assert decide(late, pop, cut).source != "rank"


@settings(max_examples=100, deadline=None)
@given(st.integers(0, 300), st.data(), st.floats(0.01, 0.99))
def test_rank_tail_is_the_binomial_upper_tail(n_others, data, cut):
    from scipy.stats import binom

    from automl.signals import rank_tail

    n_ahead = data.draw(st.integers(0, n_others))
    assert rank_tail(n_ahead, n_others, cut) == pytest.approx(binom.sf(n_ahead - 1, n_others, cut), rel=1e-9, abs=1e-300)


@pytest.mark.parametrize("args, match", [((3, 2, 0.4), "n_ahead=3"), ((-1, 2, 0.4), "n_ahead=-1"),
                                         ((1, 2, 0.0), "cut"), ((1, 2, 1.0), "cut")])
def test_rank_tail_rejects_bad_input(args, match):
    from automl.signals import rank_tail

    with pytest.raises(ValueError, match=match):
        rank_tail(*args)


def test_confident_rank_cut_waits_for_evidence_not_for_finished_trials():
    # Trials 0..k-1 stopped at epoch 2 (none finished); a trial behind all of them at epoch 2.
    def pop(k):
        return Population([_pruned(i, [2.0, 1.0 + 0.01 * i]) for i in range(k)], metric="val_loss")

    behind = TrialHistory(99, {1: 2.0, 2: 3.0})
    plain = Policy(rank_cut=0.4)
    sure = Policy(rank_cut=0.4, rank_confidence=0.9)
    # The plain cut waits for min_finished finished trials, whatever the ranks say.
    assert decide(behind, pop(12), plain).source != "rank"
    # The test: all of k ahead has probability 0.4**k for a trial at the cut: 0.16 at k=2 (not
    # sure enough at 90%), 0.064 at k=3 (sure).
    assert decide(behind, pop(2), sure).source != "rank"
    v = decide(behind, pop(3), sure)
    assert (v.action, v.source) == ("prune", "rank")
    assert v.evidence["p_value"] == pytest.approx(0.064)
    assert v.evidence["rank_confidence"] == 0.9 and v.evidence["rank"] == 4 and v.evidence["n_at_epoch"] == 4
    assert v.reason == ("rank 4 of 4 trials at epoch 2 (val_loss 3): a trial in the top 40% would see 3 of 3 ahead "
                        "with probability 0.064")


def test_confident_rank_cut_is_never_looser_than_the_plain_cut():
    # With many trials the test asks more than the fraction: 89 of 200 ahead (44.5%) is past a
    # 40% cut, yet a trial at the cut sees that many with probability 0.11.
    pruned = [_pruned(i, [1.0, 1.0 + 0.001 * i]) for i in range(200)]
    pop = Population(pruned, metric="val_loss")
    t = TrialHistory(999, {1: 1.0, 2: 1.0 + 0.001 * 88.5})
    plain = Policy(rank_cut=0.4, min_finished=1, fallback="none")
    pop_fin = Population(pruned + [finished(500, [1.0, 0.5, 0.4])], metric="val_loss")
    assert decide(t, pop_fin, plain).source == "rank"
    assert decide(t, pop, Policy(rank_cut=0.4, rank_confidence=0.9, fallback="none")).source != "rank"
    assert decide(t, pop, Policy(rank_cut=0.4, rank_confidence=0.85, fallback="none")).source == "rank"


def test_rank_cut_never_prunes_the_incumbent_or_a_contender():
    pop = Population([finished(i, c) for i, c in enumerate(CURVES)], metric="val_loss")
    cut = EARLY.model_copy(update={"rank_cut": 0.05, "protect_top": 0.2})
    assert decide(TrialHistory(99, {1: 0.5, 2: 0.3}), pop, cut).source == "incumbent"
    assert decide(TrialHistory(99, {1: 1.5, 2: 0.65}), pop, cut).source == "contender"  # rank 2 of 11
