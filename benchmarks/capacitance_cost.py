"""What βeff costs next to an epoch of training (issue 4 target: <= 1% on the mnist5k CNN).

    python benchmarks/capacitance_cost.py [--repeats 3]

Measured in one process, interleaved, so the ratios compare like with like on a shared machine:
- an epoch of the mnist5k CNN without any NCP, with a shadow NCP, with an NCP head;
- one βeff evaluation of the NCP (both weightings: a host copy of its weights + the closed forms),
  timed over many calls; the probe makes one per epoch plus one every k steps.
Writes ``benchmarks/results/capacitance_cost.{md,json}``.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import torch

RESULTS = Path(__file__).resolve().parent / "results"
CONFIG = {"lr": 1e-3, "weight_decay": 1e-5, "dropout": 0.1, "batch_size": 64, "optimizer": "adam",
          "channels": 32, "depth": 2, "activation": "relu"}


def main() -> None:
    from automl.training.data import load_dataset
    from automl.training.ncp import NCP
    from automl.training.probe import auto_every_k_steps
    from automl.training.trainer import train
    from search_spaces import get_space

    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)
    data, space = load_dataset("mnist5k"), get_space("cnn")
    k = auto_every_k_steps(len(data.x_train), CONFIG["batch_size"], 30)
    epoch = {None: [], "shadow": [], "head": []}
    for _ in range(args.repeats):
        for mode in epoch:
            start = time.perf_counter()
            train(space, CONFIG, data, epochs=1, seed=0, ncp=mode)
            epoch[mode].append(time.perf_counter() - start)
    ncp = NCP(2 * CONFIG["channels"], data.n_classes)
    calls = 200
    start = time.perf_counter()
    for _ in range(calls):
        ncp.beta_eff()
    beta_s = (time.perf_counter() - start) / calls
    steps = -(-len(data.x_train) // CONFIG["batch_size"])
    per_epoch_calls = 1 + steps // k
    plain = statistics.median(epoch[None])
    out = {
        "machine": f"{platform.machine()}, {torch.get_num_threads()} torch thread",
        "config": CONFIG, "train_samples": len(data.x_train), "every_k_steps": k,
        "epoch_s": {str(m): statistics.median(v) for m, v in epoch.items()},
        "beta_eval_ms": beta_s * 1e3, "beta_evals_per_epoch": per_epoch_calls,
        "beta_share_of_epoch": per_epoch_calls * beta_s / plain,
        "shadow_overhead": statistics.median(epoch["shadow"]) / plain - 1,
        "head_vs_plain": statistics.median(epoch["head"]) / plain - 1,
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "capacitance_cost.json").write_text(json.dumps(out, indent=1))
    md = f"""# What βeff costs (mnist5k, cnn channels=32 depth=2, batch 64)

`python benchmarks/capacitance_cost.py --repeats {args.repeats}`; {out['machine']}; medians of {args.repeats} interleaved epochs.

| quantity | value |
| --- | --- |
| epoch, no NCP | {plain:.2f} s |
| epoch, shadow NCP (trained on detached features) | {out['epoch_s']['shadow']:.2f} s ({out['shadow_overhead']:+.1%}) |
| epoch, NCP as the head | {out['epoch_s']['head']:.2f} s ({out['head_vs_plain']:+.1%}) |
| one βeff evaluation (both weightings) | {out['beta_eval_ms']:.3f} ms |
| βeff evaluations per epoch (1 + every {k} steps) | {per_epoch_calls} |
| **βeff computation / epoch time** | **{out['beta_share_of_epoch']:.3%}** (target ≤ 1%) |

The shadow NCP's own training (one small MLP step per batch) is the larger cost of the shadow
mode; βeff itself is a few matrix-vector products on a host copy of three small matrices.
"""
    (RESULTS / "capacitance_cost.md").write_text(md)
    print(md)


if __name__ == "__main__":
    main()
