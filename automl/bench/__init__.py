"""Benchmarks on recorded curves: curve banks, the recorder that fills them, and the replay.

Beside the live data flow: ``recorder`` trains sampled configurations to the full budget with
``automl.training`` (seeded as ``automl.search`` seeds its trials) and appends each run's curves
and probe signals to a ``bank`` file; ``replay`` then runs every pruner on a bank offline, as if
live, and scores epochs saved against the best run lost. Nothing here imports torch until a run
is trained; the names below load on first use (the replay's own ``PRUNERS`` and ``summarize`` are
read from ``automl.bench.replay``, not to be confused with ``automl.search``'s).
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = [
    "Run", "BankError", "read_bank", "iter_bank", "write_bank", "runs_by_task",
    "record_bank", "run_row", "records_row",
    "ReplayResult", "replay_task", "replay",
]

_LAZY = {
    **dict.fromkeys(("Run", "BankError", "read_bank", "iter_bank", "write_bank", "runs_by_task"), "automl.bench.bank"),
    **dict.fromkeys(("record_bank", "run_row", "records_row"), "automl.bench.recorder"),
    **dict.fromkeys(("ReplayResult", "replay_task", "replay"), "automl.bench.replay"),
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'automl.bench' has no attribute {name!r}")
