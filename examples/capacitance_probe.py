"""Record neural capacitance (βeff) in your own loop and let the pruner use it where it helps.

A shadow NCP (a small MLP probe head trained on the detached features beside the real head)
leaves each candidate's training exactly as it would be without it. `Policy(capacitance="auto")`
fits a population model on the finished trials and uses βeff only where it predicts their ends
better than the curve alone; every stop says which evidence decided.

    python examples/capacitance_probe.py        # 30 trials x 12 epochs of a cnn on digits, a few minutes on 2 CPUs
"""

from __future__ import annotations

import argparse
import collections
import warnings

import optuna
import torch
from torch import nn

import automl
from automl.reporting import records_of
from automl.training.trainer import make_optimizer
from pruners import SignalPruner
from search_spaces import get_space


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=30)
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    data = automl.load_dataset("digits")
    space = get_space("cnn")  # any model with a `.features` module works; or name it: Probe(features="...")

    def objective(trial: optuna.Trial) -> float:
        config = space.suggest(trial)
        torch.manual_seed(args.seed + trial.number)
        model = space.build_model(config, data.input_shape, data.n_classes)
        opt = make_optimizer(config["optimizer"], model.parameters(), lr=config["lr"], weight_decay=config["weight_decay"])
        probe = automl.Probe(model, probe_batch=data.x_val[:256], optimizer=opt, ncp="shadow")
        gen = torch.Generator().manual_seed(args.seed + trial.number)
        with probe:
            for epoch in range(1, args.epochs + 1):
                model.train()
                order = torch.randperm(len(data.x_train), generator=gen)
                for i in range(0, len(order), config["batch_size"]):
                    idx = order[i : i + config["batch_size"]]
                    opt.zero_grad()
                    nn.functional.cross_entropy(model(data.x_train[idx]), data.y_train[idx]).backward()
                    opt.step()
                    probe.step(targets=data.y_train[idx])  # the shadow NCP learns from the same batch
                val_loss, val_acc = automl.evaluate(model, data.x_val, data.y_val)
                record = probe.end_epoch(val_loss=val_loss, val_acc=val_acc)  # record.beta_eff is set
                automl.report(record, trial, metric="val_acc")
                if epoch < args.epochs and trial.should_prune():
                    raise optuna.TrialPruned()
        return val_acc

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
    policy = automl.Policy(capacitance="auto")
    study = optuna.create_study(direction="maximize", pruner=SignalPruner(policy, max_epochs=args.epochs),
                                sampler=optuna.samplers.TPESampler(seed=args.seed))
    study.set_metric_names(["val_acc"])
    study.optimize(objective, n_trials=args.trials)

    pruned = [t for t in study.trials if t.state == optuna.trial.TrialState.PRUNED]
    epochs = sum(len(t.intermediate_values) for t in study.trials)
    by_source = collections.Counter(t.user_attrs.get("prune_source", "?") for t in pruned)
    print(f"{len(study.trials)} trials, {len(pruned)} pruned ({dict(by_source)}), "
          f"{epochs} of {args.trials * args.epochs} epochs; best val_acc {study.best_value:.4f} (trial {study.best_trial.number})")
    for t in pruned[:5]:
        print(f"  #{t.number} epoch {t.user_attrs.get('prune_epoch')}: {t.user_attrs.get('prune_reason')}")
    best = study.best_trial
    betas = [r.get("beta_eff") for r in records_of(best)]
    print("βeff of the best trial per epoch:", ", ".join(f"{b:.4g}" for b in betas if b is not None))


if __name__ == "__main__":
    main()
