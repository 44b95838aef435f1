"""Run a Ray Tune search with SignalScheduler: same decision as SignalPruner, on Ray.

The trainable reports each epoch with `automl.report(record, metric=...)` (which calls
`ray.tune.report`); metric and mode come from `TuneConfig`, as with Ray's own schedulers.
A stopped trial's reason is in its last result (`prune_reason`).

    python examples/ray_tune_search.py          # 16 trials x 10 epochs on digits, about a minute on 2 CPUs
"""

from __future__ import annotations

import argparse
import tempfile

import ray
from ray import tune

import automl
from pruners import SignalScheduler
from search_spaces import get_space


def trainable(config: dict) -> None:
    import torch

    torch.set_num_threads(1)
    space = get_space("mlp")
    params = {k: config[k] for k in space.names}
    def on_epoch(record: automl.EpochRecord) -> None:
        automl.report(record, metric="val_acc")  # ray.tune.report; SignalScheduler decides

    data = automl.load_dataset("digits")
    automl.train(space, params, data, epochs=config["epochs"], seed=config["seed"], on_epoch=on_epoch)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=16)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    scheduler = SignalScheduler(time_attr="epoch", max_t=args.epochs)
    param_space = {**get_space("mlp").param_space(), "epochs": args.epochs, "seed": args.seed}
    tuner = tune.Tuner(
        tune.with_resources(trainable, {"cpu": 1}),
        param_space=param_space,
        tune_config=tune.TuneConfig(metric="val_acc", mode="max", num_samples=args.trials, scheduler=scheduler,
                                    reuse_actors=True),
        run_config=tune.RunConfig(storage_path=tempfile.mkdtemp(prefix="ray_example_"), verbose=0),
    )
    grid = tuner.fit()
    ray.shutdown()

    results = [r.metrics for r in grid if r.metrics]
    stopped = [m for m in results if m.get("prune_reason")]
    used = sum(int(m.get("epoch", 0)) for m in results)
    best = grid.get_best_result(metric="val_acc", mode="max")
    print(f"{len(results)} trials, {len(stopped)} stopped early, {used} of {args.epochs * len(results)} epochs used")
    print(f"best val_acc {best.metrics['val_acc']:.4f}")
    for m in stopped[:8]:
        print(f"  stopped at epoch {m['epoch']}: {m['prune_reason']}")


if __name__ == "__main__":
    main()
