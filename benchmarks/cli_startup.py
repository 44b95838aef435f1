"""How long the command line takes to answer: `automl --help`, `show`, `diagnose`, `recommend`.

    python benchmarks/cli_startup.py [--repeat 7]

Each command runs as a fresh process (what a user waits for), interleaved with the others, and the
median and the slowest of the runs are written to benchmarks/results/cli_startup.md, beside the
time of a bare `python -c pass` on the same machine (the floor no command can go under) and which
heavy libraries each command imported. Targets (issues 22 and 24): `--help` and `show` under 1 s,
`diagnose` under 1.5 s, on the 2-core CI machine.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
HEAVY = ("torch", "scipy", "xgboost", "sklearn", "ray", "optuna", "fastapi")
TARGETS = {"--help": 1.0, "show": 1.0, "diagnose": 1.5, "diagnose (100 epochs)": 1.5, "diagnose --k 5": 1.5}

# the overfitting curve of the diagnosis tests: validation loss turns up at epoch 4 while training loss falls
CURVES = {"train_loss": [2.0, 1.5, 1.0, 0.6, 0.3, 0.1, 0.05, 0.02, 0.01, 0.01],
          "val_loss": [2.0, 1.6, 1.3, 1.2, 1.3, 1.5, 1.7, 1.9, 2.0, 2.1],
          "train_acc": [0.3, 0.5, 0.7, 0.85, 0.93, 0.98, 0.99, 1, 1, 1],
          "val_acc": [0.3, 0.45, 0.55, 0.6, 0.6, 0.59, 0.58, 0.58, 0.57, 0.57]}


_T = [t / 10 for t in range(100)]
# 100 epochs that overfit from epoch 30: the whole-run model reads them all and places the onset
CURVES_LONG = {"train_loss": [0.02 + 2.0 * 2.718 ** (-t / 1.2) for t in _T],
               "val_loss": [0.5 + 1.6 * 2.718 ** (-t) + 0.1 * max(0.0, t - 3) for t in _T],
               "train_acc": [0.99 - 0.7 * 2.718 ** (-t) for t in _T],
               "val_acc": [0.85 - 0.6 * 2.718 ** (-t / 0.8) - 0.01 * max(0.0, t - 3) for t in _T]}


def _imports(args: list[str]) -> list[str]:
    """The heavy libraries a command imports (run in-process under click's test runner)."""
    code = ("import sys; from click.testing import CliRunner; from automl.cli import cli; "
            f"CliRunner().invoke(cli, {args!r}); "
            f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    return [m for m in out.split(",") if m]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=7)
    args = ap.parse_args()
    automl = str(Path(sys.executable).parent / "automl")
    with tempfile.TemporaryDirectory() as tmp:
        db = f"sqlite:///{tmp}/bench.db"
        subprocess.run([automl, "search", "--space", "mlp", "--dataset", "digits", "--trials", "3", "--epochs", "2",
                        "--storage", db, "--study", "bench", "--json"], check=True, capture_output=True)
        curves = Path(tmp) / "curves.json"
        curves.write_text(json.dumps(CURVES))
        long_curves = Path(tmp) / "long.json"
        long_curves.write_text(json.dumps(CURVES_LONG))
        commands = {
            "python -c pass": [sys.executable, "-c", "pass"],
            "--help": [automl, "--help"],
            "show": [automl, "show", "bench", "--storage", db],
            "diagnose": [automl, "diagnose", str(curves)],
            "diagnose (100 epochs)": [automl, "diagnose", str(long_curves)],
            "diagnose --k 5": [automl, "diagnose", str(curves), "--k", "5"],
            "recommend": [automl, "recommend", "--arch", "mlp:784-128-64-10"],
        }
        times: dict[str, list[float]] = {k: [] for k in commands}
        for _ in range(args.repeat):
            for name, cmd in commands.items():  # interleaved: a busy moment slows every command alike
                t = time.perf_counter()
                subprocess.run(cmd, check=True, capture_output=True, env={**os.environ, "COLUMNS": "120"})
                times[name].append(time.perf_counter() - t)
        imported = {name: _imports(cmd[1:]) for name, cmd in commands.items() if cmd[0] == automl}
    rows = []
    for name, ts in times.items():
        target = TARGETS.get(name)
        verdict = "" if target is None else ("met" if statistics.median(ts) < target else "NOT met")
        shown = name if name.startswith("python") else "automl " + name.replace(" (100 epochs)", "") + (
            " (100 epochs)" if "100" in name else "")
        rows.append(f"| `{shown}` | {statistics.median(ts):.2f} | {max(ts):.2f} | "
                    f"{'' if target is None else f'< {target:g} s: {verdict}'} | {', '.join(imported.get(name, [])) or '-'} |")
    text = "\n".join([
        "# Command-line startup",
        "",
        f"Command: `python benchmarks/cli_startup.py --repeat {args.repeat}`  ",
        f"Machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}; "
        f"{time.strftime('%Y-%m-%d')}. Each command is a fresh process, interleaved with the others.",
        "",
        "| command | median s | slowest s | target | heavy libraries it imports |",
        "|---|---|---|---|---|",
        *rows,
        "",
        "`show` reads a 3-trial SQLite study (Optuna and SQLAlchemy are its floor); `diagnose` parses the "
        "whole-run model and walks its trees in numpy, once for the run and once per prefix it reads to place each "
        "label's onset (10 and 100 epochs); `diagnose --k 5` reads the early model; `recommend` walks the gain regressor's trees in numpy "
        "(no XGBoost, no torch on any of these paths).",
        "",
    ])
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "cli_startup.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
