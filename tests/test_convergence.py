"""The converged verdict: decide, Probe.should_stop in Optuna, SignalScheduler in Ray, and replay."""

from __future__ import annotations

import math

import optuna
import pytest
import torch

from automl import Policy, Population, TrialHistory, decide
from automl.decision import converged_verdict

ON = Policy(convergence="dynamics")


def _rec(epoch, converged=True):
    return {"epoch": epoch, "dynamics": {"converged_step": 100 if converged else None, "volatility": 0.01,
                                          "volatility_peak": 0.1, "null_fired_share": 0.1}}


def _flat(n=10, top=0.9):
    """val_acc that rises and then stays flat for the last 4 epochs."""
    return {e: min(top, 0.5 + 0.1 * e) for e in range(1, n + 1)}


def test_verdict_needs_the_dynamics_and_a_flat_metric():
    h = TrialHistory(0, _flat(), records=[_rec(10)])
    v = converged_verdict(h, "maximize", ON, metric="val_acc")
    assert v.action == "converged" and v.source == "dynamics" and v.predicted_final == 0.9
    assert "converged at epoch 10" in v.reason and "val_acc has not improved for 3 epochs" in v.reason
    assert v.evidence["converged_step"] == 100
    # the dynamics have not settled: no verdict
    assert converged_verdict(h._replace(records=[_rec(10, converged=False)]), "maximize", ON) is None
    assert converged_verdict(h._replace(records=[{"epoch": 10}]), "maximize", ON) is None
    # the metric still improves: the dynamics alone do not stop it
    rising = {e: 0.5 + 0.04 * e for e in range(1, 11)}
    assert converged_verdict(h._replace(values=rising), "maximize", ON) is None
    # a diverged value is for pruning, not convergence
    assert converged_verdict(h._replace(values={**_flat(), 10: math.nan}), "maximize", ON) is None
    # a loss (minimised) that has stopped falling for 4 epochs
    losses = {e: max(0.35, 1.0 - 0.1 * e) for e in range(1, 11)}
    assert converged_verdict(TrialHistory(0, losses, records=[_rec(10)]), "minimize", ON) is not None
    assert converged_verdict(TrialHistory(0, losses, records=[_rec(10)]), "maximize", ON) is not None  # falling acc: no gain either
    # a small improvement counted as none with a tolerance (fraction of the gain so far)
    tiny = {**_flat(), 10: 0.905}
    assert converged_verdict(h._replace(values=tiny), "maximize", ON) is None
    assert converged_verdict(h._replace(values=tiny), "maximize", ON.model_copy(update={"convergence_tol": 0.05})) is not None


def test_decide_stops_converged_but_prunes_losers_and_ignores_the_budget():
    done = [TrialHistory(i, {e: 0.95 - 0.5 / e for e in range(1, 21)}, "COMPLETE", 0.95 - 0.5 / 20) for i in range(8)]
    pop = Population(done, direction="maximize", metric="val_acc", max_epochs=20)
    leader = TrialHistory(99, {e: min(0.97, 0.6 + 0.1 * e) for e in range(1, 11)}, records=[_rec(10)])
    assert decide(leader, pop).action == "continue"  # off by default
    v = decide(leader, pop, ON)
    assert v.action == "converged" and v.should_stop
    loser = TrialHistory(98, {e: min(0.3, 0.1 + 0.05 * e) for e in range(1, 11)}, records=[_rec(10)])
    assert decide(loser, pop, ON).action == "prune"  # "will lose" wins over "will not gain"
    at_budget = TrialHistory(97, {e: min(0.97, 0.6 + 0.1 * e) for e in range(1, 21)}, records=[_rec(20)])
    assert decide(at_budget, pop, ON).source == "budget"


def _digits_loop(trial, epochs=25, lr=1e-2):
    from automl import report
    from automl.training.data import load_dataset
    from automl.training.probe import Probe
    from automl.training.trainer import evaluate

    data = load_dataset("digits")
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 64), torch.nn.ReLU(), torch.nn.Linear(64, 10))
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    gen = torch.Generator().manual_seed(0)
    value = math.nan
    with Probe(model, data.x_val[:64], optimizer=opt, every_k_steps=1) as probe:
        for _ in range(epochs):
            for idx in torch.randperm(len(data.x_train), generator=gen).split(64):
                opt.zero_grad()
                torch.nn.functional.cross_entropy(model(data.x_train[idx]), data.y_train[idx]).backward()
                opt.step()
                probe.step()
            val_loss, val_acc = evaluate(model, data.x_val, data.y_val)
            record = probe.end_epoch(val_loss=val_loss, val_acc=val_acc)
            value = report(record, trial, metric="val_acc")
            if probe.should_stop(trial, metric="val_acc"):
                break
    return value, record, probe


def test_probe_should_stop_ends_an_optuna_trial_as_complete_with_its_reason():
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize")
    out = {}

    def objective(trial):
        value, record, probe = _digits_loop(trial)
        out.update(record=record, probe=probe)
        return value

    study.optimize(objective, n_trials=1)
    t = study.trials[0]
    record, probe = out["record"], out["probe"]
    assert record.dynamics is not None and record.dynamics["points"] == record.step  # one point every step
    assert t.state == optuna.trial.TrialState.COMPLETE
    # digits at lr 1e-2 settles well within 25 epochs: the verdict stops it, with its reason
    assert record.epoch < 25, "the run never converged: the rule or the confirmation did not fire"
    assert t.user_attrs["stop_source"] == "dynamics" and t.user_attrs["stop_epoch"] == record.epoch
    assert t.user_attrs["stop_reason"].startswith(f"converged at epoch {record.epoch}")
    assert probe.stop_verdict.action == "converged" and t.value == record.val_acc
    assert record.dynamics["converged_step"] <= record.step


def test_should_stop_needs_the_trace():
    from automl.training.probe import Probe

    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
    with Probe(model, torch.randn(8, 4)) as probe:
        with pytest.raises(ValueError, match="every_k_steps"):
            probe.should_stop()
    with pytest.raises(ValueError, match="unknown keys"):
        Probe(model, torch.randn(8, 4), every_k_steps=1, convergence_rule={"windw": 32})
    with pytest.raises(ValueError, match="fraction"):
        Probe(model, torch.randn(8, 4), every_k_steps=1, convergence_rule={"fraction": 2.0})


def test_scheduler_stops_converged_trials_and_keeps_them_as_peers():
    from ray.tune.experiment import Trial
    from ray.tune.schedulers import TrialScheduler

    from pruners import SignalScheduler

    s = SignalScheduler(ON, metric="val_acc", mode="max", time_attr="epoch", max_t=30)
    trial = Trial("__t", trial_id="a", stub=True)
    s.on_trial_add(None, trial)
    decisions = []
    for e, v in _flat(12).items():
        result = {"val_acc": v, "epoch": e}
        if e >= 9:
            result.update(dynamics_converged_step=300, dynamics_volatility=0.01, dynamics_volatility_peak=0.1)
        decisions.append(s.on_trial_result(None, trial, result))
        if decisions[-1] == TrialScheduler.STOP:
            break
    assert decisions[-1] == TrialScheduler.STOP and len(decisions) == 9
    assert s.verdicts["a"].action == "converged"
    s.on_trial_complete(None, trial, {"val_acc": 0.9, "epoch": 9})
    assert trial.last_result["stop_source"] == "dynamics" and trial.last_result["stop_epoch"] == 9
    assert trial.last_result["stop_reason"].startswith("converged at epoch 9") and "prune_reason" not in trial.last_result
    assert s._trials["a"].state == "COMPLETE" and s._trials["a"].final == 0.9  # a finished peer
    assert "1 stopped as converged" in s.debug_string()


def test_replay_stops_converged_runs_in_both_backends():
    from pathlib import Path

    from automl.bench.bank import read_bank
    from automl.bench.replay import replay_task, run_dynamics, steps_per_epoch

    runs = read_bank(Path(__file__).resolve().parents[1] / "benchmarks" / "banks" / "dynamics" / "digits_mlp.jsonl.gz")
    assert all(steps_per_epoch(r) for r in runs)
    conv = [run_dynamics(r) for r in runs]
    assert any(c is not None for c in conv) and all(c is None or 1 <= c <= r.budget for c, r in zip(conv, runs))
    without = replay_task(runs, "signal", seed=0, trials=len(runs), policy=Policy())
    opt = replay_task(runs, "signal", seed=0, trials=len(runs), policy=ON, converged_epochs=conv)
    ray = replay_task(runs, "signal-ray", seed=0, trials=len(runs), policy=ON, converged_epochs=conv)
    assert opt == ray  # one decision core
    assert without.n_converged == 0 and opt.n_converged > 0
    assert opt.cost_epochs < without.cost_epochs
    assert opt.regret is not None and opt.regret >= 0.0
