"""Ask the recommender which guidance network (ENN) to train an MLP with, then train it plainly
and guided by that ENN, same seeds and epochs, and compare.

    python examples/enn_guided.py --arch mlp:64-64-10 --epochs 10 --seeds 3

The architecture's input size picks the bundled dataset (784: mnist5k, 64: digits).
"""

from __future__ import annotations

import argparse

import numpy as np

from automl import load_dataset, recommend
from automl.guidance.enn import build_mlp, guided_fit, load_enn, parse_arch
from automl.guidance.recommender import DATASET_BY_INPUT, load_zoo


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--arch", default="mlp:64-64-10")
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--seeds", type=int, default=3)
    args = ap.parse_args()

    dims = parse_arch(args.arch)
    if dims[0] not in DATASET_BY_INPUT:
        raise SystemExit(f"no bundled dataset has inputs of size {dims[0]}; use 784 (mnist5k) or 64 (digits).")
    rec = recommend(args.arch, top=3)
    print(f"{rec['arch']}: confidence {rec['confidence']}")
    for r in rec["recommendations"]:
        print(f"  {r['enn']:<15} predicted gain {r['predicted_gain']:+.2f} ± {r['uncertainty']:.2f} points (β={r['beta']:g})")
    for note in rec["notes"]:
        print(f"  note: {note}")

    pick = rec["recommendations"][0]
    zoo = load_zoo()
    meta = next(e for e in zoo["enns"] if e["name"] == pick["enn"])
    enn = load_enn(zoo["dir"] / meta["file"])[0]
    data = load_dataset(DATASET_BY_INPUT[dims[0]])
    plain, guided, ratios = [], [], []
    for seed in range(args.seeds):
        plain.append(guided_fit(build_mlp(dims, seed=seed), data, None, 0.0, epochs=args.epochs, seed=seed).final["test_acc"])
        res = guided_fit(build_mlp(dims, seed=seed), data, enn, pick["beta"], epochs=args.epochs, seed=seed)
        guided.append(res.final["test_acc"])
        ratios.append([h["grad_ratio"] for h in res.history])
    diff = 100 * (np.array(guided) - np.array(plain))
    print(f"plain backprop: test acc {100 * np.mean(plain):.2f}%  |  guided by {pick['enn']}: {100 * np.mean(guided):.2f}%  "
          f"|  measured gain {diff.mean():+.2f} ± {diff.std():.2f} points over {args.seeds} seeds")
    r = np.mean(ratios, axis=0)
    print(f"‖β∇ENN‖/‖∇CE‖ by epoch: first {r[0]:.3g}, middle {r[len(r) // 2]:.3g}, last {r[-1]:.3g}")


if __name__ == "__main__":
    main()
