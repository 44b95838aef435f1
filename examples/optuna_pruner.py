"""Plug SignalPruner into a plain Optuna study, with your own PyTorch training loop.

Two lines join the loop to the pruner: `probe.step()` after each optimizer step, and
`automl.report(record, trial, metric=...)` after each epoch. Every pruned trial keeps a
readable reason in its user attributes (`prune_reason`).

    python examples/optuna_pruner.py            # 24 trials x 12 epochs on digits, about a minute on 2 CPUs
    python examples/optuna_pruner.py --converge # also stop a trial whose layer dynamics settled
"""

from __future__ import annotations

import argparse
import warnings

import optuna
import torch
from torch import nn

import automl
from pruners import SignalPruner


def make_model(trial: optuna.Trial, n_in: int, n_classes: int) -> nn.Module:
    width = trial.suggest_int("width", 16, 256, log=True)
    depth = trial.suggest_int("depth", 1, 3)
    act = {"relu": nn.ReLU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid}[trial.suggest_categorical("act", ["relu", "tanh", "sigmoid"])]
    layers: list[nn.Module] = [nn.Flatten()]
    for i in range(depth):
        layers += [nn.Linear(n_in if i == 0 else width, width), act()]
    return nn.Sequential(*layers, nn.Linear(width, n_classes))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=24)
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--converge", action="store_true",
                        help="Policy(convergence='dynamics'): a trial whose layer dynamics settled ends COMPLETE early")
    args = parser.parse_args()
    policy = automl.Policy(convergence="dynamics") if args.converge else automl.Policy()

    data = automl.load_dataset("digits")  # bundled with scikit-learn; nothing is downloaded
    x, y = data.x_train, data.y_train

    def objective(trial: optuna.Trial) -> float:
        torch.manual_seed(args.seed + trial.number)
        model = make_model(trial, x[0].numel(), data.n_classes)
        lr = trial.suggest_float("lr", 1e-4, 3.0, log=True)  # the top of this range diverges
        opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
        k = automl.training.auto_every_k_steps(len(x), 64, args.epochs) if args.converge else None  # >= 200 points a run
        probe = automl.Probe(model, probe_batch=data.x_val[:256], optimizer=opt, every_k_steps=k)
        val_acc = 0.0
        for epoch in range(1, args.epochs + 1):
            model.train()
            perm = torch.randperm(len(x))
            for i in range(0, len(x), 64):
                idx = perm[i : i + 64]
                opt.zero_grad()
                loss = nn.functional.cross_entropy(model(x[idx]), y[idx])
                loss.backward()
                opt.step()
                probe.step()  # gradient norms, zero-gradient fraction
            val_loss, val_acc = automl.evaluate(model, data.x_val, data.y_val)
            record = probe.end_epoch(train_loss=loss.item(), val_loss=val_loss, val_acc=val_acc)
            automl.report(record, trial, metric="val_acc")  # trial.report + the record, kept on the trial
            if trial.should_prune():
                raise optuna.TrialPruned()
            if args.converge and probe.should_stop(trial, metric="val_acc", policy=policy):  # user_attrs["stop_reason"] says why
                break
        return val_acc

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)  # set_metric_names
    study = optuna.create_study(
        direction="maximize",
        pruner=SignalPruner(policy, max_epochs=args.epochs),
        sampler=optuna.samplers.TPESampler(seed=args.seed),
    )
    study.set_metric_names(["val_acc"])  # names the metric in prune reasons
    study.optimize(objective, n_trials=args.trials)

    pruned = [t for t in study.trials if t.state == optuna.trial.TrialState.PRUNED]
    epochs = sum(t.last_step or 0 for t in study.trials)
    print(f"{len(study.trials)} trials, {len(pruned)} pruned, {epochs} of {args.epochs * len(study.trials)} epochs used")
    print(f"best val_acc {study.best_value:.4f} with {study.best_params}")
    for t in pruned[:8]:
        print(f"  trial {t.number} pruned at epoch {t.user_attrs['prune_epoch']}: {t.user_attrs['prune_reason']}")
    for t in [t for t in study.trials if "stop_reason" in t.user_attrs][:8]:
        print(f"  trial {t.number} converged at epoch {t.user_attrs['stop_epoch']}: {t.user_attrs['stop_reason']}")


if __name__ == "__main__":
    main()
