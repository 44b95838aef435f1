"""The forecaster (``Policy(rule="forecast")``): calibrated on synthetic studies it never saw,
monotone in the trial's value, budget-aware, and deciding the same in both adapters and processes."""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys

import numpy as np
import pytest

from automl.decision import Policy, Population, TrialHistory, decide
from automl.forecast.features import NAMES, StudyFrame, features
from automl.forecast.model import QUANTILES, load_forecaster, p_below, training_rows
from automl.forecast.prior import sample_study

FORECAST = Policy(rule="forecast", risk=0.05, forecast_tie=0.0)
CALIBRATED = FORECAST.model_copy(update={"forecast_calibration": 15})  # P recalibrated on the study


def test_quantiles_are_calibrated_on_held_out_synthetic_studies():
    """Studies drawn with seeds the training never used (it used 0..359): every quantile level's
    coverage within 5 points of the level."""
    model = load_forecaster()
    X, y = [], []
    for seed in range(20):
        rng = np.random.default_rng([10_000 + seed, 7])
        study = sample_study(rng, 80)
        Xs, ys = training_rows(study.curves, study.budgets, rng)
        X.append(Xs)
        y.append(ys)
    X, y = np.concatenate(X), np.concatenate(y)
    assert len(y) > 2000
    q = model.predict_z(X)
    for i, level in enumerate(QUANTILES):
        if level <= 0.9:  # above it the targets pile up at the clip for diverged trials
            assert abs(np.mean(y <= q[:, i]) - level) <= 0.05, (level, np.mean(y <= q[:, i]))


def _frame(n: int = 12, e: int = 5, rng_seed: int = 0) -> StudyFrame:
    rng = np.random.default_rng(rng_seed)
    ends = np.sort(rng.uniform(0.2, 0.8, n))
    at_e = ends + 0.3 + rng.normal(0, 0.03, n)
    return StudyFrame(at_epoch=at_e, at_progress=at_e, final=ends, budget=np.full(n, 20.0),
                      first=np.full(n, 1.0), others_at_epoch=at_e)


def test_the_probability_is_monotone_in_the_trials_value():
    model = load_forecaster()
    frame = _frame()
    prefix = np.array([1.0, 0.9, 0.8, 0.75])
    ps = [model.forecast(np.append(prefix, v), 20, frame).p_beat for v in np.linspace(0.2, 1.2, 41)]
    assert all(b <= a + 1e-12 for a, b in zip(ps, ps[1:])), ps
    assert ps[0] > 0.5 and ps[-1] < 0.01


def test_every_quantile_is_monotone_in_the_trials_value_across_studies():
    """A worse current value never forecasts a better end, at any quantile level, in 20 studies
    (XGBoost ignores monotone constraints in one booster fitting several levels: one per level)."""
    model = load_forecaster()
    prefix = np.array([1.0, 0.9, 0.8, 0.75])
    values = np.linspace(0.0, 1.5, 151)
    for seed in range(20):
        frame = _frame(rng_seed=seed)
        rows = np.array([features(np.append(prefix, v), 20, frame)[0] for v in values])
        q = model.predict_z(rows)  # the batch path (XGBoost)
        assert np.diff(q, axis=0).min() >= -1e-6, seed
        q_small = np.concatenate([model.predict_z(rows[i:i + model.SMALL]) for i in range(0, len(rows), model.SMALL)])
        np.testing.assert_allclose(q_small, q, atol=1e-5)  # the numpy walk gives the same numbers


def test_the_first_epochs_value_never_reads_likelier_to_win_when_worse():
    """At epoch 1 the trial's value is also its first value, which once moved the study's scale
    (the median first value): then a worse first value could read as likelier to win."""
    model = load_forecaster()
    values = np.linspace(0.3, 3.0, 91)
    for seed in range(20):
        rng = np.random.default_rng(seed)
        frame = _frame(rng_seed=seed)
        frame = StudyFrame(at_epoch=frame.at_epoch, at_progress=frame.at_progress, final=frame.final, budget=frame.budget,
                           first=rng.uniform(0.8, 2.5, len(frame.final)), others_at_epoch=frame.others_at_epoch)
        frame = StudyFrame(**{**frame.__dict__, "at_epoch": frame.first, "at_progress": frame.first, "others_at_epoch": frame.first})
        ps = [model.forecast(np.array([v]), 20, frame, epoch=1).p_beat for v in values]
        assert all(b <= a + 1e-12 for a, b in zip(ps, ps[1:])), (seed, ps)


def test_the_model_file_round_trips(tmp_path):
    model = load_forecaster()
    path = tmp_path / "f.json.gz"
    model.save(path)
    again = load_forecaster(str(path))
    rows = np.random.default_rng(2).normal(0, 1, (40, len(NAMES)))
    np.testing.assert_array_equal(again.predict_z(rows), model.predict_z(rows))


def test_p_below_reads_quantiles():
    assert p_below([0.0, 1.0, 2.0], [0.1, 0.5, 0.9], x=1.0) == pytest.approx(0.5)
    assert p_below([0.0, 1.0], [0.1, 0.9], x=-10.0) < 1e-12 and p_below([0.0, 1.0], [0.1, 0.9], x=10.0) > 1 - 1e-12
    tails = [p_below([q0, q0 + step], [0.01, 0.02]) for q0 in (0.01, 0.05, 0.2) for step in (0.01, 1.0)]
    assert tails[0] == tails[1] > tails[2] == tails[3] > tails[4] == tails[5]  # the tail reads the outer quantile only
    assert features(np.array([1.0, 0.5]), 10, _frame())[0].shape == (len(NAMES),)


def _budget_study() -> tuple[list[TrialHistory], list[float]]:
    """Finished trials of two kinds: 20-epoch runs that learn fast and end at 0.30-0.40, and
    100-epoch runs (a schedule to their budget) that are behind at every early epoch and end at
    0.18-0.25. Returns them and the curve of one more long run."""
    trials, n = [], 0
    for k in range(8):  # short budgets: fast, end mid-pack
        end, b = 0.30 + 0.0125 * k, 20
        c = [end + 0.7 * math.exp(-e / 3.0) for e in range(1, b + 1)]
        trials.append(TrialHistory(n, dict(enumerate(c, 1)), "COMPLETE", c[-1], budget=b))
        n += 1
    long_curve = None
    for k in range(5):  # long budgets: slow, behind early, end first
        end, b = 0.18 + 0.015 * k, 100
        c = [end + 0.75 * (1 - (e / b) ** 0.5) + 0.05 * math.exp(-e / 30.0) for e in range(1, b + 1)]
        trials.append(TrialHistory(n, dict(enumerate(c, 1)), "COMPLETE", c[-1], budget=b))
        n += 1
        long_curve = c
    return trials, long_curve


def test_a_long_budget_trial_behind_short_ones_is_not_pruned():
    trials, _ = _budget_study()
    pop = Population(trials, direction="minimize", metric="val_loss")
    # one more long run, on its way to end first (0.16): behind every short run at every early epoch
    curve = [0.16 + 0.75 * (1 - (e / 100) ** 0.5) + 0.05 * math.exp(-e / 30.0) for e in range(1, 101)]
    default = Policy(rule="forecast", protect_top=0.0)  # the shipped risk
    for e in (3, 5, 10, 20):
        me = TrialHistory(99, dict(enumerate(curve[:e], 1)), budget=100)
        behind = sum(t.values[e] < curve[e - 1] for t in trials if t.budget == 20)
        assert behind == 8  # it stands behind every short run at this epoch
        v = decide(me, pop, default)
        assert v.action == "continue" and v.source in ("forecast", "incumbent"), v.reason
        # read as a 20-epoch trial, the same values give a far smaller chance
        as_short = decide(me._replace(budget=20), pop, default)
        if as_short.source == "forecast" and v.source == "forecast":
            assert as_short.evidence["p_beat_best"] < 0.1 * v.evidence["p_beat_best"], (v.reason, as_short.reason)
    # the same values read as a 20-epoch trial's are a loser among the short runs: pruned
    short = TrialHistory(98, dict(enumerate(curve[:10], 1)), budget=20)
    assert decide(short, pop, FORECAST).action == "prune"


def test_the_reason_names_the_probability_the_risk_and_the_forecast():
    trials, _ = _budget_study()
    pop = Population(trials, direction="minimize", metric="val_loss")
    loser = TrialHistory(99, {e: 1.2 - 0.01 * e for e in range(1, 7)}, budget=40)
    plain = decide(loser, pop, FORECAST)
    assert plain.reason.startswith("P(beat the best finished trial #8, 0.1818) = ")
    assert "< risk 0.05; forecast val_loss " in plain.reason and "recalibrated" not in plain.reason
    v = decide(loser, pop, CALIBRATED)
    assert v.action == "prune" and v.source == "forecast"
    assert v.reason.startswith("P(beat the best finished trial #8, 0.1818) = ")
    assert re.search(r"< risk 0\.05 \(the model's [0-9.e-]+, recalibrated on this study's \d+ finished trials\); "
                     r"forecast val_loss ", v.reason), v.reason
    assert v.reason.endswith("at epoch 6 of 40")
    assert v.evidence["p_beat_best"] < 0.05 and v.evidence["budget"] == 40
    assert v.evidence["n_calibration"] >= 3 and "p_beat_model" in v.evidence


def test_a_final_within_the_outcomes_noise_counts_as_a_tie():
    """With ``forecast_tie`` a trial forecast to end just short of the best, within the noise the
    finished trials' last values show, is not yet a loser."""
    trials, _ = _budget_study()
    rng = np.random.default_rng(0)
    noisy = [t._replace(values={e: v + rng.normal(0, 0.01) for e, v in t.values.items()}) for t in trials]
    noisy = [t._replace(final=t.values[max(t.values)]) for t in noisy if t.budget == 20]  # the short runs only
    pop = Population(noisy, direction="minimize", metric="val_loss")
    me = TrialHistory(99, {e: 0.31 + 0.7 * math.exp(-e / 3.0) for e in range(1, 9)}, budget=20)  # just behind the best
    # the noise is read only where P itself is below risk (a tie only raises P): a high risk asks for it
    strict = decide(me, pop, Policy(rule="forecast", forecast_tie=0.0, protect_top=0.0, risk=0.9))
    tie = decide(me, pop, Policy(rule="forecast", forecast_tie=2.0, protect_top=0.0, risk=0.9))
    assert tie.evidence["p_beat_best"] > strict.evidence["p_beat_best"]
    assert tie.evidence["noise"] > 0 and "within 2x its noise" in tie.reason


def test_study_offset_is_zero_where_the_probabilities_leave_one_winner():
    from automl.forecast.model import shift, study_offset

    assert study_offset([0.25] * 4, [1, 0, 0, 0]) == 0.0  # they sum to the one winner there is
    over = study_offset([0.5] * 8, [1] + [0] * 7)  # 4 winners expected, 1 seen: P falls
    under = study_offset([0.02] * 8, [1] + [0] * 7)  # 0.16 expected, 1 seen: P rises
    assert over < 0 < under
    # more trials saying the same thing move it further from 0 (the prior weighs less)
    assert study_offset([0.5] * 16, [1] + [0] * 15) < study_offset([0.5] * 4, [1, 0, 0, 0]) < 0
    assert study_offset([], []) == 0.0
    # the shift keeps the order of probabilities and leaves 0 and 1 alone
    ps = np.linspace(0, 1, 21)
    moved = [shift(p, over) for p in ps]
    assert all(b > a for a, b in zip(moved, moved[1:])) and moved[0] == 0.0 and moved[-1] == 1.0


def _ordered_study(cross: bool) -> list[TrialHistory]:
    """12 finished 20-epoch runs with the same finals; their curves keep their order at every epoch,
    or (``cross``) the eventual best runs are the worst ones at epoch 5 and overtake later."""
    out = []
    for i in range(12):
        final = 0.2 + 0.04 * i
        c = 0.6 + (0.2 * (11 - i) if cross else 0.0)
        out.append(TrialHistory(i, {e: final + c * math.exp(-e / 4.0) for e in range(1, 21)}, state="COMPLETE",
                                final=final + c * math.exp(-5.0), budget=20))
    return out


def test_the_study_calibration_lowers_p_where_the_model_spreads_the_win_over_many_trials():
    """12 finished runs whose curves never crossed: read at epoch 5 against each other, the model gives
    them chances that add up to about 2 winners where there was 1; so P of a running trial is moved
    down (a log-odds offset), and the reason names the model's own P and the trials it was fitted to."""
    import automl.forecast.model as model

    seen = []
    fit = model.study_offset
    me = TrialHistory(99, {e: 0.7 + 0.6 * math.exp(-e / 4.0) for e in range(1, 6)}, budget=20)
    policy = CALIBRATED.model_copy(update={"protect_top": 0.0})
    pop = Population(_ordered_study(False), direction="minimize", metric="val_loss")
    try:
        model.study_offset = lambda p, won, **kw: seen.append((list(p), list(won))) or fit(p, won, **kw)
        v = decide(me, pop, policy)
    finally:
        model.study_offset = fit
    (p, won), = seen
    assert won == [1.0] + [0.0] * 11  # the best run (#0) beat the 11 others
    assert sum(p) > 1.5
    assert v.source == "forecast" and v.evidence["n_calibration"] == 12
    assert v.evidence["study_offset"] < 0 and v.evidence["p_beat_best"] < v.evidence["p_beat_model"]
    assert "(the model's " in v.reason and "recalibrated on this study's 12 finished trials" in v.reason
    off = decide(me, pop, policy.model_copy(update={"forecast_calibration": 0}))
    assert off.evidence["study_offset"] == 0.0 and "recalibrated" not in off.reason
    assert off.evidence["p_beat_best"] == off.evidence["p_beat_model"] == v.evidence["p_beat_model"]


def test_the_study_calibration_cache_never_mixes_two_studies():
    """Two studies with the same trial numbers, budgets and final values but other curves: each gets
    its own offset (the one computed without the cache), in either order."""
    from automl.decision import forecast as check

    a, b = _ordered_study(False), _ordered_study(True)
    b = [t._replace(final=u.final) for t, u in zip(b, a)]  # same finals as the first study
    expect = {}
    for name, trials in (("a", a), ("b", b)):
        check._RETRO.clear()
        expect[name] = check.calibrate_on(trials, sign=1.0, step=5, budget=20)
    assert expect["a"] != expect["b"]
    check._RETRO.clear()
    for name, trials in (("a", a), ("b", b), ("a", a), ("b", b)):
        assert check.calibrate_on(trials, sign=1.0, step=5, budget=20) == expect[name]
    assert len(check._RETRO) == 2


def test_the_recalibrated_probability_is_monotone_in_the_trials_value():
    pop = Population(_ordered_study(True), direction="minimize", metric="val_loss")
    policy = CALIBRATED.model_copy(update={"protect_top": 0.0})
    ps = []
    for v in np.linspace(0.85, 1.4, 23):  # behind the best value at epoch 5 (0.81): no incumbent
        me = TrialHistory(99, {**{e: 0.7 + 0.6 * math.exp(-e / 4.0) for e in range(1, 5)}, 5: float(v)}, budget=20)
        ps.append(decide(me, pop, policy).evidence.get("p_beat_best"))
    assert None not in ps
    assert all(b <= a + 1e-12 for a, b in zip(ps, ps[1:])), ps


def test_before_enough_finished_trials_it_waits_between_rungs():
    trials, _ = _budget_study()
    pop = Population(trials[:2], direction="minimize", metric="val_loss")
    v = decide(TrialHistory(9, {1: 5.0, 2: 5.0, 3: 5.0}, budget=20), pop, FORECAST)  # rungs of 20: epochs 7 and 2
    assert (v.action, v.source) == ("continue", "thin") and "the forecaster needs 3" in v.reason


def test_a_rung_cuts_outside_the_top_third_before_trials_finish():
    """No finished trial: ASHA's rung at 1/9 of the budget (epoch 2 of 20) keeps the top 1/3."""
    others = [TrialHistory(i, {1: 0.9, 2: 0.5 + 0.05 * i}) for i in range(5)]
    pop = Population(others, direction="minimize", metric="val_loss", max_epochs=20)
    cut = decide(TrialHistory(9, {1: 0.9, 2: 0.8}), pop, Policy(rule="forecast", protect_top=0.0, rung_eta=3))
    assert (cut.action, cut.source) == ("prune", "rung"), cut.reason
    assert cut.reason.startswith("rung at epoch 2 (1/9 of its budget 20): rank 6 of 6 trials there, outside the top 2")
    assert "no forecast to veto it" in cut.reason
    ahead = decide(TrialHistory(9, {1: 0.9, 2: 0.52}), pop, Policy(rule="forecast", protect_top=0.0, rung_eta=3))
    assert (ahead.action, ahead.source) == ("continue", "rung") and "rank 2 of 6" in ahead.reason
    off = decide(TrialHistory(9, {1: 0.9, 2: 0.8}), pop, Policy(rule="forecast", protect_top=0.0))  # rungs off by default
    assert (off.action, off.source) == ("continue", "thin")
    few = Population(others[:1], direction="minimize", metric="val_loss", max_epochs=20)  # fewer than eta at the rung
    assert decide(TrialHistory(9, {1: 0.9, 2: 0.8}), few, Policy(rule="forecast", protect_top=0.0, rung_eta=3)).source == "thin"
    unknown = Population(others, direction="minimize", metric="val_loss")  # no budget: no share of it to place rungs at
    assert decide(TrialHistory(9, {1: 0.9, 2: 0.8}), unknown, Policy(rule="forecast", protect_top=0.0, rung_eta=3)).source == "thin"


def test_a_rung_compares_a_long_budget_trial_at_the_same_share_of_its_budget():
    """A 100-epoch trial at epoch 11 (rung 1/9) is behind the 20-epoch ones at epoch 11, but ahead
    of them at their own 1/9 (epoch 2): it goes on."""
    trials, _ = _budget_study()
    running = [t._replace(number=100 + t.number, state="RUNNING", final=None) for t in trials if t.budget == 20]
    leader = TrialHistory(200, {1: 0.7, 2: 0.5}, budget=20)  # ahead of it at 1/9 of the budgets: it leads nothing
    pop = Population([*running, leader], direction="minimize", metric="val_loss")
    curve = [0.2 + 0.6 * (1 - (e / 100) ** 0.5) for e in range(1, 12)]  # a slow start, its schedule runs to 100
    me = TrialHistory(99, dict(enumerate(curve, 1)), budget=100)
    assert all(t.values[11] < curve[10] for t in running)  # behind every short run at epoch 11
    v = decide(me, pop, Policy(rule="forecast", protect_top=0.0, rung_eta=3))
    assert (v.action, v.source) == ("continue", "rung") and "rank 2 of 10" in v.reason, v.reason
    short = TrialHistory(99, dict(enumerate(curve[:7], 1)), budget=20)  # the same curve read as a 20-epoch run's
    as_short = decide(short, pop, Policy(rule="forecast", protect_top=0.0, rung_eta=3))  # at its rung 7 (1/3 of 20)
    assert as_short.action == "prune", as_short.reason


def test_the_forecaster_vetoes_a_rung_cut_it_thinks_will_win():
    """Two slow finished trials, faster running ones: a trial outside the top third at its rung,
    but far ahead of where the finished ones stood then, goes on."""
    done = [TrialHistory(i, {e: 1.0 - 0.0375 * e for e in range(1, 21)}, "COMPLETE", 0.25, budget=20) for i in range(2)]
    running = [TrialHistory(10 + i, {1: 0.6, 2: 0.2 + 0.01 * i}, budget=20) for i in range(6)]
    pop = Population(done + running, direction="minimize", metric="val_loss")
    me = TrialHistory(99, {1: 0.6, 2: 0.3}, budget=20)
    v = decide(me, pop, Policy(rule="forecast", protect_top=0.0, rung_eta=3))
    assert (v.action, v.source) == ("continue", "rung") and "the forecast vetoes the cut" in v.reason, v.reason
    assert v.evidence["p_beat_best"] >= 0.5
    cut = decide(me, pop, Policy(rule="forecast", protect_top=0.0, rung_eta=3, rung_veto=1.0))
    assert (cut.action, cut.source) == ("prune", "rung")


@pytest.mark.parametrize("policy", [FORECAST, CALIBRATED], ids=["model", "recalibrated"])
def test_optuna_and_ray_adapters_give_identical_verdicts(policy):
    import optuna
    from ray.tune.experiment import Trial

    from pruners import SignalPruner, SignalScheduler

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    rng = np.random.default_rng(3)
    study = sample_study(rng, 30)
    pruner = SignalPruner(policy, budget="epochs")
    opt = optuna.create_study(pruner=pruner)
    sched = SignalScheduler(policy, metric="loss", mode="min", budget="epochs")
    for i, (curve, b) in enumerate(zip(study.curves, study.budgets)):
        trial = opt.ask()
        trial.suggest_int("epochs", int(b), int(b))
        rt = Trial("__t", config={"epochs": int(b)}, trial_id=f"t{i}", stub=True)
        sched.on_trial_add(None, rt)
        stopped = False
        for e, v in enumerate(curve, 1):
            trial.report(float(v), e)
            o = trial.should_prune()
            r = sched.on_trial_result(None, rt, {"loss": float(v), "training_iteration": e}) == "STOP"
            frozen = opt.get_trials(deepcopy=False)[-1]  # what the pruner saw
            assert o == r, (i, e, pruner.verdict(opt, frozen).reason, sched.verdicts.get(rt.trial_id))
            if o:
                stopped = True
                break
        if stopped:
            opt.tell(trial, state=optuna.trial.TrialState.PRUNED)
            sched.on_trial_complete(None, rt, {"loss": float(v), "training_iteration": e})
        else:
            ok = math.isfinite(curve[-1])
            opt.tell(trial, float(curve[-1]) if ok else None, state=None if ok else optuna.trial.TrialState.FAIL)
            sched.on_trial_complete(None, rt, {"loss": float(curve[-1]), "training_iteration": len(curve)})


def test_decisions_are_the_same_in_another_process():
    trials, curve = _budget_study()
    pop = Population(trials, direction="minimize", metric="val_loss")
    me = TrialHistory(99, dict(enumerate(curve[:7], 1)), budget=60)
    here = decide(me, pop, CALIBRATED).model_dump_json()
    code = (
        "import json, sys; sys.path.insert(0, 'tests'); from test_forecast import _budget_study, CALIBRATED;"
        "from automl.decision import Population, TrialHistory, decide;"
        "t, c = _budget_study(); print(decide(TrialHistory(99, dict(enumerate(c[:7], 1)), budget=60),"
        " Population(t, direction='minimize', metric='val_loss'), CALIBRATED).model_dump_json())"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == json.loads(here)


def test_bad_settings_are_refused_by_name():
    from pydantic import ValidationError

    from pruners import SignalPruner

    with pytest.raises(ValidationError, match="risk"):
        Policy(rule="forecast", risk=0.0)
    with pytest.raises(ValidationError, match="rule"):
        Policy(rule="forcast")
    with pytest.raises(ValueError, match="budget must be the name of a trial's hyperparameter"):
        SignalPruner(budget=3)


def test_the_numpy_tree_walk_gives_xgboosts_numbers():
    """A decision predicts one row by walking the trees in numpy; it must equal XGBoost's predict,
    missing values (the default branch) included."""
    model = load_forecaster()
    rng = np.random.default_rng(5)
    rows = rng.normal(0, 1, (model.SMALL, len(NAMES))).astype(np.float32)
    rows[rng.random(rows.shape) < 0.15] = np.nan
    ours = model._trees.predict(rows)
    theirs = np.stack([np.asarray(b.inplace_predict(rows)) for b in model.boosters()], axis=1)
    np.testing.assert_allclose(ours, theirs, atol=1e-5)


def test_the_default_rank_cut_reads_other_trials_at_the_same_share_of_their_budgets():
    """Policy()'s checks too: a 60-epoch trial at epoch 10, behind every finished 20-epoch trial at
    epoch 10 but ahead of them at 1/6 of their budgets (epoch 3), is not pruned; read as a trial of
    the study's one budget it is."""
    trials, _ = _budget_study()
    short = [t for t in trials if t.budget == 20]
    pop = Population(short, direction="minimize", metric="val_loss")
    values = {e: 1.0 - 0.045 * e for e in range(1, 11)}  # 0.55 at epoch 10
    assert all(t.values[10] < values[10] < t.values[3] for t in short)
    v = decide(TrialHistory(99, values, budget=60), pop)
    assert v.action == "continue", v.reason
    same_epoch = decide(TrialHistory(99, values), pop)
    assert (same_epoch.action, same_epoch.source) == ("prune", "rank") and "at epoch 10" in same_epoch.reason
    behind = decide(TrialHistory(99, {e: 1.0 - 0.02 * e for e in range(1, 11)}, budget=60), pop)
    assert (behind.action, behind.source) == ("prune", "rank") and "at 10/60 of their budgets" in behind.reason, behind.reason


# ----------------------------------------------------------------------------- odd studies
def _optuna_study(first_step: int, max_epochs=10, policy=FORECAST):
    import optuna

    from pruners import SignalPruner

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    study = optuna.create_study(pruner=SignalPruner(policy, max_epochs=max_epochs))
    for i in range(4):
        t = study.ask()
        for e in range(10):
            t.report(0.5 + 0.2 * i + 1.0 / (e + 1), first_step + e)
        study.tell(t, 0.5 + 0.2 * i + 0.1)
    return study


def test_a_study_counting_steps_from_0_is_read_as_one_counting_from_1():
    verdicts = []
    for first in (0, 1):
        study = _optuna_study(first)
        t = study.ask()
        for e in range(3):
            t.report(2.0 + 0.1 * e, first + e)
        verdicts.append(t.should_prune())  # steps from 0 once crashed the forecaster (log of epoch 0)
    assert verdicts[0] == verdicts[1]
    pop = [TrialHistory(i, {e: 0.5 + 0.2 * i + 1.0 / (e + 1) for e in range(10)}, "COMPLETE", 0.6 + 0.2 * i) for i in range(4)]
    one = [TrialHistory(t.number, {e + 1: v for e, v in t.values.items()}, t.state, t.final) for t in pop]
    me0, me1 = TrialHistory(9, {0: 2.0, 1: 2.1, 2: 2.2}), TrialHistory(9, {1: 2.0, 2: 2.1, 3: 2.2})
    a = decide(me0, Population(pop, "minimize", "val_loss", max_epochs=9), FORECAST)
    b = decide(me1, Population(one, "minimize", "val_loss", max_epochs=10), FORECAST)
    assert a.action == b.action and a.evidence["p_beat_best"] == b.evidence["p_beat_best"]


def test_a_trial_at_the_longest_finished_trials_length_is_not_pruned_when_no_budget_was_given():
    pop = [TrialHistory(i, {e: 0.2 + 0.1 * i + 1.0 / e for e in range(1, 11)}, "COMPLETE", 0.3 + 0.1 * i) for i in range(5)]
    me = TrialHistory(9, {**{e: 0.25 + 1.0 / e for e in range(1, 10)}, 10: 5.0})
    v = decide(me, Population(pop, "minimize", "val_loss"), FORECAST.model_copy(update={"protect_top": 0.0}))
    assert v.action == "continue" and v.source == "budget" and "no budget was given" in v.reason


def test_the_forecast_shown_lies_inside_its_band():
    pop = [TrialHistory(i, {e: a + 1.0 / e for e in range(1, 11)}, "COMPLETE", a + 0.1) for i, a in enumerate([0.1, 0.3, 0.5, 0.7])]
    for v in np.linspace(0.5, 3.0, 26):
        got = decide(TrialHistory(9, {1: 1.5, 2: float(v)}), Population(pop, "minimize", "val_loss", 10), FORECAST)
        if got.source == "forecast":
            e = got.evidence
            assert e["final_q10"] <= e["predicted_final"] <= e["final_q90"], (v, got.reason)


def test_an_absurd_reading_in_finished_trials_does_not_switch_the_tie_off():
    from automl.decision.checks import final_noise

    clean = [TrialHistory(i, {e: 0.1 * i + 1.0 / e for e in range(1, 11)}, "COMPLETE", 0.1 * i + 0.1) for i in range(6)]
    noisy = [t._replace(values={**t.values, 7: 1e200}) if t.number % 2 else t for t in clean]
    assert math.isfinite(final_noise(noisy, me=99)) and final_noise(noisy, me=99) <= 10 * final_noise(clean, me=99) + 1e-9


def test_a_budget_past_any_training_reads_as_missing():
    from automl.validation import MAX_BUDGET, BudgetReader

    read = BudgetReader("epochs")
    assert read({"epochs": MAX_BUDGET}) == MAX_BUDGET
    assert read({"epochs": 10**400}) is None and read({"epochs": MAX_BUDGET + 1}) is None


def test_a_budget_name_no_trial_has_is_said_once(caplog):
    from automl.validation import BudgetReader

    read = BudgetReader("epochs")
    with caplog.at_level("WARNING", logger="automl.validation"):
        assert read({"epoch": 30, "lr": 0.1}) is None and read({"epoch": 20}) is None
    said = [r.getMessage() for r in caplog.records]
    assert len(said) == 1 and "budget='epochs': a trial has no 'epochs' (it has epoch, lr)" in said[0]


def test_a_budget_reader_pickled_before_it_warned_still_reads():
    import pickle

    from automl.validation import BudgetReader

    old = BudgetReader("epochs")
    for attr in ("warned", "what"):  # as an instance pickled by the code before them
        old.__dict__.pop(attr)
    assert pickle.loads(pickle.dumps(old))({"lr": 0.1}) is None


def test_a_study_too_small_to_calibrate_is_read_once(monkeypatch):
    from automl.decision import forecast as check

    calls = []
    real = check._chances
    monkeypatch.setattr(check, "_chances", lambda *a, **k: calls.append(1) or real(*a, **k))
    check._RETRO.clear()
    two = [TrialHistory(i, {e: 0.5 + 0.1 * i + 1.0 / e for e in range(1, 11)}, "COMPLETE", 0.6 + 0.1 * i) for i in range(2)]
    bad = [TrialHistory(9, {e: math.nan for e in range(1, 11)}, "COMPLETE", 1.0)]
    for _ in range(3):
        assert check.calibrate_on(two + bad, sign=1.0, step=5, budget=10) == (0.0, 0)
    assert len(calls) == 1
