"""Where the runs that end best stand early on: the evidence behind ``Policy(protect_top=...)``.

For each task, the five runs with the best outcome, and for each the share of the task's runs
ahead of it at epochs 1, 2, 3, 5, 8, 12 and 20 (0.00 = first). Non-finite values count as the worst.

    python benchmarks/best_run_rank.py benchmarks/banks/taskset_imdb_rnn.jsonl.gz \
        benchmarks/banks/{digits_mlp,mnist5k_mlp,mnist1d_cnn}.jsonl.gz

Writes benchmarks/results/best_run_rank.md.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from automl.bench.bank import read_bank, runs_by_task

RESULTS = Path(__file__).resolve().parent / "results"
EPOCHS = (1, 2, 3, 5, 8, 12, 20)
TOP = 5


def ranks(runs: list) -> dict[int, list[float]]:
    """Epoch -> the share of runs ahead of each of the ``TOP`` best runs (best first)."""
    sign = 1.0 if runs[0].direction == "minimize" else -1.0
    horizon = min(r.budget for r in runs)
    values = np.array([[sign * v for v in r.values[:horizon]] for r in runs], dtype=float)
    values[~np.isfinite(values)] = np.inf
    outcome = np.array([sign * r.outcome for r in runs], dtype=float)
    outcome[~np.isfinite(outcome)] = np.inf
    best = np.argsort(outcome, kind="stable")[:TOP]
    return {e: [float((values[:, e - 1] < values[i, e - 1]).mean()) for i in best] for e in EPOCHS if e <= horizon}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("banks", nargs="+")
    args = parser.parse_args()
    lines = [
        "# Where the best runs stand early on",
        "",
        f"Command: `python benchmarks/best_run_rank.py {' '.join(Path(b).name for b in args.banks)}`",
        "",
        f"Per task, the {TOP} runs with the best outcome (best first); each cell gives, for each of them, the share "
        "of the task's runs ahead of it at that epoch (0.00 = first). The last column: the best run's worst share "
        "from epoch 2 on.",
        "",
        "| task | runs | " + " | ".join(f"epoch {e}" for e in EPOCHS) + " | best run, worst from epoch 2 |",
        "|---|---:|" + "---|" * len(EPOCHS) + "---:|",
    ]
    for bank in args.banks:
        for task, runs in runs_by_task(read_bank(bank)).items():
            r = ranks(runs)
            cells = [", ".join(f"{x:.2f}" for x in r[e]) if e in r else "" for e in EPOCHS]
            worst = max(r[e][0] for e in r if e >= 2)
            lines.append(f"| {task.split('/')[-1]} | {len(runs)} | " + " | ".join(cells) + f" | {worst:.2f} |")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "best_run_rank.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
