"""What the activation trace and the convergence rule cost next to an epoch (issue 5 target: <= 3%).

    python benchmarks/dynamics_cost.py [--repeats 3]

Measured in one process, interleaved, so the ratios compare like with like on a shared machine. For
each case, an epoch of training with the probe as the trainer always attaches it (epoch-end
statistics only), and with the step-level trace the dynamics signals need: every k steps (k from
``auto_every_k_steps`` for a 30-epoch budget, >= 200 points a run), a forward pass of the fixed
probe batch, with the default 32-sample trace batch and with the full 256-sample probe batch. The
convergence rule (numpy) is timed on a trace of a whole run, with and without its null surrogates.
Writes ``benchmarks/results/dynamics_cost.{md,json}``.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import numpy as np
import torch

RESULTS = Path(__file__).resolve().parent / "results"
CASES = {
    "mnist5k cnn": ("mnist5k", "cnn", {"lr": 1e-3, "weight_decay": 1e-5, "dropout": 0.1, "batch_size": 64, "optimizer": "adam",
                                       "channels": 32, "depth": 2, "activation": "relu"}),
    "mnist5k mlp": ("mnist5k", "mlp", {"lr": 1e-3, "weight_decay": 1e-5, "dropout": 0.1, "batch_size": 64, "optimizer": "adam",
                                       "width": 256, "depth": 2, "activation": "relu"}),
    "digits mlp": ("digits", "mlp", {"lr": 1e-3, "weight_decay": 1e-5, "dropout": 0.1, "batch_size": 64, "optimizer": "adam",
                                     "width": 128, "depth": 2, "activation": "relu"}),
}


def _epoch(space, config, data, k, trace_batch) -> float:
    from automl.training.trainer import fit

    model = space.build_model(config, data.input_shape, data.n_classes)
    start = time.perf_counter()
    fit(model, data, epochs=1, lr=config["lr"], batch_size=config["batch_size"], seed=0, every_k_steps=k,
        probe_options={"trace_batch_size": trace_batch})
    return time.perf_counter() - start


def main() -> None:
    from automl.signals.dynamics import convergence
    from automl.training.data import load_dataset
    from automl.training.probe import auto_every_k_steps
    from search_spaces import get_space

    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)
    out: dict = {"machine": f"{platform.machine()}, {torch.get_num_threads()} torch thread", "cases": {}}
    for name, (dataset, family, config) in CASES.items():
        data, space = load_dataset(dataset), get_space(family)
        k = auto_every_k_steps(len(data.x_train), config["batch_size"], 30)
        times: dict[str, list[float]] = {"off": [], "trace32": [], "trace256": []}
        _epoch(space, config, data, None, 32)  # warm-up
        for _ in range(args.repeats):
            times["off"].append(_epoch(space, config, data, None, 32))
            times["trace32"].append(_epoch(space, config, data, k, 32))
            times["trace256"].append(_epoch(space, config, data, k, 256))
        med = {m: statistics.median(v) for m, v in times.items()}
        out["cases"][name] = {"every_k_steps": k, "epoch_s": med,
                              "overhead_trace32": med["trace32"] / med["off"] - 1,
                              "overhead_trace256": med["trace256"] / med["off"] - 1}
    # The rule on a whole run's trace: 6 layers x 400 points (end of a run; the probe runs it once an epoch).
    rng = np.random.default_rng(0)
    x = np.abs(rng.normal(size=(6, 400)).cumsum(axis=1)) + 1.0
    for label, kw in (("rule_full_ms", {"n_null": 0}), ("rule_with_null_ms", {})):
        start = time.perf_counter()
        for _ in range(5):
            convergence(x, **kw)
        out[label] = (time.perf_counter() - start) / 5 * 1e3
    # What the probe does: once an epoch (30 epochs of ~13 points), extending the previous series.
    start, series = time.perf_counter(), None
    for end in np.linspace(0, 400, 31).astype(int)[1:]:
        series = convergence(x[:, :end], n_null=0, previous=series).series
    out["rule_per_epoch_ms"] = (time.perf_counter() - start) / 30 * 1e3
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "dynamics_cost.json").write_text(json.dumps(out, indent=1))
    rows = "\n".join(
        f"| {n} | {c['every_k_steps']} | {c['epoch_s']['off']:.3f} s | {c['epoch_s']['trace32']:.3f} s (**{c['overhead_trace32']:+.1%}**) | "
        f"{c['epoch_s']['trace256']:.3f} s ({c['overhead_trace256']:+.1%}) |"
        for n, c in out["cases"].items())
    md = f"""# What the activation trace costs (issue 5 target: <= 3% of epoch time)

`python benchmarks/dynamics_cost.py --repeats {args.repeats}`; {out['machine']}; medians of {args.repeats} interleaved epochs.
k = steps between trace points for >= 200 points over a 30-epoch budget.

| case | k | epoch, epoch-end probe only | with the trace (32-sample batch, default) | with a 256-sample trace batch |
| --- | --- | --- | --- | --- |
{rows}

The convergence rule on a 6-layer, 400-point trace (numpy): {out['rule_per_epoch_ms']:.1f} ms an epoch as the probe runs it
(30 epochs, each extending the previous epoch's series; {out['rule_full_ms']:.1f} ms to compute a whole run's series at once); with
its 20 null surrogates, drawn only in the epochs after the rule first fires until it counts (usually one epoch
a run): {out['rule_with_null_ms']:.0f} ms. Both are outside the epoch times above, which train one epoch (no
full-length trace).
"""
    (RESULTS / "dynamics_cost.md").write_text(md)
    print(md)


if __name__ == "__main__":
    main()
