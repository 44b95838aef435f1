"""decide() with capacitance evidence: used where βeff predicts the ends, ignored where it does not."""

import numpy as np
import optuna
import pytest

from automl.decision import Policy, Population, TrialHistory, decide
from pruners import SignalPruner

POLICY = Policy(capacitance="auto", min_finished=1000)  # the curve forecast never decides here


def study_population(beta_informative: bool, n=30, seed=0):
    """Finished trials whose epoch-2 accuracy says little, and whose βeff at epoch 2 either
    sets the final accuracy (informative) or is noise."""
    rng = np.random.default_rng(seed)
    trials = []
    for i in range(n):
        quality = rng.uniform(0, 1)
        acc2 = 0.5 + 0.05 * rng.normal()
        beta2 = 0.05 + 0.05 * quality if beta_informative else 0.05 + 0.05 * rng.uniform()
        final = 0.6 + 0.3 * quality
        values = {1: acc2 - 0.05, 2: acc2, 3: final}
        records = [{"epoch": 1, "beta_eff": beta2 * 0.9}, {"epoch": 2, "beta_eff": beta2}, {"epoch": 3, "beta_eff": beta2}]
        trials.append(TrialHistory(i, values, "COMPLETE", final, records))
    return Population(trials, direction="maximize", metric="val_acc", max_epochs=3)


def newcomer(beta2):
    return TrialHistory(99, {1: 0.45, 2: 0.5}, records=[{"epoch": 1, "beta_eff": beta2 * 0.9}, {"epoch": 2, "beta_eff": beta2}])


def test_informative_beta_prunes_a_low_capacitance_trial_with_a_reason():
    v = decide(newcomer(0.051), study_population(True), POLICY)
    assert v.action == "prune" and v.source == "capacitance"
    assert "capacitance: βeff" in v.reason and "cannot beat the best finished trial" in v.reason
    ev = v.evidence
    assert ev["loo_mse_with_beta"] < ev["loo_mse_curve_only"] and ev["n_finished_at_epoch"] == 30
    assert abs(ev["weights"]["beta_eff"]) > abs(ev["weights"]["value"])
    assert v.predicted_final < 0.75


def test_high_capacitance_trial_continues():
    # βeff above every finished trial's: predicted to beat the best (0.9 at quality 1)
    assert decide(newcomer(0.101), study_population(True), POLICY).action == "continue"


def test_uninformative_beta_is_not_used():
    v = decide(newcomer(0.051), study_population(False), POLICY)
    assert v.source != "capacitance" and v.action == "continue"


def test_off_by_default_and_waits_for_enough_finished_trials():
    assert decide(newcomer(0.051), study_population(True), Policy(min_finished=1000)).source != "capacitance"
    few = study_population(True, n=6)
    assert decide(newcomer(0.051), few, POLICY).source != "capacitance"
    assert decide(newcomer(0.051), study_population(True), POLICY.model_copy(update={"capacitance_min_epochs": 3})).source != "capacitance"


def test_nan_beta_in_a_record_is_read_as_missing_not_a_crash():
    pop = study_population(True)
    v = decide(TrialHistory(99, {1: 0.45, 2: 0.5}, records=[{"epoch": 1, "beta_eff": None}, {"epoch": 2, "beta_eff": None}]), pop, POLICY)
    assert v.source != "capacitance"


def test_signal_pruner_reads_beta_from_the_trials_records():
    """End to end through Optuna: βeff goes in as automl.report stores it (user attrs)."""
    pop = study_population(True)
    study = optuna.create_study(direction="maximize", pruner=SignalPruner(POLICY, max_epochs=3))
    for t in pop.trials:
        trial = study.ask()
        for rec in t.records:
            trial.set_user_attr(f"record_{rec['epoch']:04d}", rec)
            trial.report(t.values[rec["epoch"]], rec["epoch"])
        study.tell(trial, t.final)
    trial = study.ask()
    for epoch, beta in ((1, 0.046), (2, 0.051)):
        trial.set_user_attr(f"record_{epoch:04d}", {"epoch": epoch, "beta_eff": beta})
        trial.report({1: 0.45, 2: 0.5}[epoch], epoch)
    assert trial.should_prune()
    study.tell(trial, state=optuna.trial.TrialState.PRUNED)
    assert study.trials[-1].user_attrs["prune_source"] == "capacitance"


@pytest.mark.parametrize("field, value", [("capacitance", "on"), ("capacitance_min_finished", 2), ("capacitance_min_gain", 1.0)])
def test_policy_validates_capacitance_fields(field, value):
    with pytest.raises(ValueError, match=field):
        Policy(**{field: value})


def test_signal_scheduler_reads_beta_from_the_reported_results():
    from ray.tune.experiment import Trial
    from ray.tune.schedulers import TrialScheduler

    from pruners import SignalScheduler

    s = SignalScheduler(POLICY, time_attr="training_iteration", max_t=3)
    s.set_search_properties("val_acc", "max")
    for t in study_population(True).trials:
        trial = Trial("__fake", trial_id=f"t{t.number:03d}", stub=True)
        s.on_trial_add(None, trial)
        for rec in t.records:
            e = rec["epoch"]
            s.on_trial_result(None, trial, {"val_acc": t.values[e], "training_iteration": e, "beta_eff": rec["beta_eff"]})
        s.on_trial_complete(None, trial, {"val_acc": t.final, "training_iteration": 3})
    trial = Trial("__fake", trial_id="new", stub=True)
    s.on_trial_add(None, trial)
    first = s.on_trial_result(None, trial, {"val_acc": 0.45, "training_iteration": 1, "beta_eff": 0.046})
    second = s.on_trial_result(None, trial, {"val_acc": 0.5, "training_iteration": 2, "beta_eff": 0.051})
    assert (first, second) == (TrialScheduler.CONTINUE, TrialScheduler.STOP)
    assert s.verdicts["new"].source == "capacitance"
