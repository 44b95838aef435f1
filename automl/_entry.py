"""The ``automl`` console script: the short commands run with the cyclic garbage collector paused.

Loading the command line, Optuna and SQLAlchemy allocates a few hundred thousand long-lived objects;
the collector walks them again and again while they load, and once more at exit: about a third of
what ``automl show`` takes (``benchmarks/results/cli_startup.md``). A short command (``--help``,
``show``, ``diagnose``, ``recommend``) makes few cycles and exits at once, so it runs without the
collector; the long ones (``search``, ``serve``, ``bench``, ``enn``) keep it.
"""

from __future__ import annotations

import gc
import sys

#: Commands that run long or allocate without bound: they keep the garbage collector.
LONG = frozenset({"search", "serve", "bench", "enn"})


def main() -> None:
    command = sys.argv[1] if len(sys.argv) > 1 else None
    if command not in LONG:
        gc.disable()
    from automl.cli import main as run

    run()
