"""The runnable examples run (with a smaller budget) and say what they pruned and why."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
@pytest.mark.parametrize(
    "script, args, expect",
    [
        ("optuna_pruner.py", ["--trials", "10", "--epochs", "4"], "pruned"),
        ("ray_tune_search.py", ["--trials", "6", "--epochs", "3"], "stopped early"),
        ("capacitance_probe.py", ["--trials", "8", "--epochs", "3"], "βeff of the best trial per epoch"),
        ("enn_guided.py", ["--arch", "mlp:64-32-10", "--epochs", "3", "--seeds", "2"], "measured gain"),
    ],
)
def test_example_runs(tmp_path, script, args, expect):
    out = subprocess.run(
        [sys.executable, str(ROOT / "examples" / script), *args],
        cwd=tmp_path, capture_output=True, text=True, timeout=600,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert expect in out.stdout and ("best val_acc" in out.stdout or "predicted gain" in out.stdout)
