"""Curve banks: gzip JSON Lines of recorded runs, one run a row (format below).

```
{"task": "taskset/imdb_patch32_GRU128_bs128", "run_id": "17", "config": {...},
 "metric": "val_loss", "direction": "minimize",
 "curves": {"val_loss": [...], "train_loss": [...], "test_loss": [...]},
 "signals": {"beta_eff": [...], "layer_rms": [[...], ...]}}        # signals optional
```

Epoch i (1-based) is position i-1; ``null`` is a non-finite value (a diverged run), read as
``nan``; curves may differ in length; a run's outcome is its metric's last value. A malformed row
is refused with the file, the line number and the field.
"""

from __future__ import annotations

import gzip
import json
import math
import os
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, Literal, Optional

from pydantic import BaseModel, ConfigDict

__all__ = ["Run", "BankError", "read_bank", "iter_bank", "write_bank", "runs_by_task"]


class BankError(ValueError):
    """A curve bank row that does not follow the format; the message names file, line and field."""


class Run(BaseModel):
    """One recorded run. Curve values are floats in memory (``nan`` for a non-finite value).

    Example:
        >>> run = Run(task="t", run_id="0", config={"lr": 0.1}, metric="val_loss", direction="minimize",
        ...           curves={"val_loss": [1.0, 0.5, float("nan")]})
        >>> run.budget, run.outcome
        (3, nan)
        >>> run.to_json()["curves"]["val_loss"]
        [1.0, 0.5, None]
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    task: str
    run_id: str
    config: dict[str, Any]
    metric: str
    direction: Literal["minimize", "maximize"]
    curves: dict[str, list[float]]
    signals: dict[str, Any] = {}

    @property
    def values(self) -> list[float]:
        """The metric's curve, epoch 1 first."""
        return self.curves[self.metric]

    @property
    def budget(self) -> int:
        return len(self.values)

    @property
    def outcome(self) -> float:
        """The metric's last value (``nan`` if the run ended diverged)."""
        return self.values[-1]

    def to_json(self) -> dict[str, Any]:
        """The bank row: non-finite numbers become ``null``."""
        row = {
            "task": self.task,
            "run_id": self.run_id,
            "config": self.config,
            "metric": self.metric,
            "direction": self.direction,
            "curves": {k: [v if math.isfinite(v) else None for v in c] for k, c in self.curves.items()},
        }
        if self.signals:
            row["signals"] = _nulls(self.signals)
        return row


def _nulls(obj: Any) -> Any:
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, Mapping):
        return {k: _nulls(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_nulls(v) for v in obj]
    return obj


_REQUIRED = ("task", "run_id", "config", "metric", "direction", "curves")
_ALLOWED = set(_REQUIRED) | {"signals"}


def _parse_row(row: Any, where: str) -> Run:
    if not isinstance(row, dict):
        raise BankError(f"{where}: a row must be a JSON object, but got {type(row).__name__}.")
    for key in _REQUIRED:
        if key not in row:
            raise BankError(f"{where}: field '{key}' is missing; a row needs {', '.join(_REQUIRED)}.")
    extra = sorted(set(row) - _ALLOWED)
    if extra:
        raise BankError(f"{where}: unknown field(s) {extra}; allowed: {sorted(_ALLOWED)}.")
    if not isinstance(row["task"], str) or not row["task"]:
        raise BankError(f"{where}: field 'task' must be a non-empty string, but got {row['task']!r}.")
    run_id = row["run_id"]
    if isinstance(run_id, bool) or not isinstance(run_id, (str, int)):
        raise BankError(f"{where}: field 'run_id' must be a string, but got {run_id!r}.")
    if not isinstance(row["config"], dict):
        raise BankError(f"{where}: field 'config' must be an object, but got {type(row['config']).__name__}.")
    if row["direction"] not in ("minimize", "maximize"):
        raise BankError(f"{where}: field 'direction' must be 'minimize' or 'maximize', but got {row['direction']!r}.")
    curves = row["curves"]
    if not isinstance(curves, dict) or not curves:
        raise BankError(f"{where}: field 'curves' must be a non-empty object of curves.")
    metric = row["metric"]
    if not isinstance(metric, str) or metric not in curves:
        raise BankError(f"{where}: field 'metric' ({metric!r}) must name one of the curves {sorted(curves)}.")
    parsed: dict[str, list[float]] = {}
    for name, curve in curves.items():
        if not isinstance(curve, list) or not curve:
            raise BankError(f"{where}: field 'curves.{name}' must be a non-empty list of numbers or null.")
        out = []
        for i, v in enumerate(curve):
            if v is None:
                out.append(math.nan)
            elif isinstance(v, (int, float)) and not isinstance(v, bool):
                out.append(float(v))
            else:
                raise BankError(f"{where}: field 'curves.{name}[{i}]' must be a number or null, but got {v!r}.")
        parsed[name] = out
    signals = row.get("signals", {})
    if not isinstance(signals, dict):
        raise BankError(f"{where}: field 'signals' must be an object, but got {type(signals).__name__}.")
    return Run(
        task=row["task"], run_id=str(run_id), config=row["config"], metric=metric, direction=row["direction"],
        curves=parsed, signals=signals,
    )


def _open(path: Path, mode: str, *, gz: Optional[bool] = None):
    """Open a bank for text ``mode`` ('r', 'w', 'a'); gzip unless the name ends otherwise."""
    if gz is None:
        gz = path.suffix == ".gz"
    return gzip.open(path, mode + "t", encoding="utf-8") if gz else open(path, mode, encoding="utf-8")


def iter_bank(path: str | os.PathLike) -> Iterator[Run]:
    """Yield the runs of a bank (``.jsonl.gz``, or plain ``.jsonl``), validating each row."""
    path = Path(path)
    if not path.is_file():
        raise BankError(f"{path}: no such curve bank file.")
    try:
        with _open(path, "r") as f:
            for lineno, line in enumerate(f, 1):
                if not line.strip():
                    continue
                where = f"{path}:{lineno}"
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise BankError(f"{where}: not valid JSON ({exc.msg} at column {exc.colno}).") from None
                yield _parse_row(row, where)
    except (OSError, EOFError) as exc:
        raise BankError(f"{path}: cannot read the bank ({exc}).") from None


def read_bank(path: str | os.PathLike) -> list[Run]:
    """All runs of a bank; a malformed row raises ``BankError`` naming file, line and field."""
    return list(iter_bank(path))


def write_bank(path: str | os.PathLike, runs: Iterable[Run], *, append: bool = False) -> int:
    """Write runs as gzip JSON Lines (plain JSON Lines if the name does not end in ``.gz``).

    ``append`` adds to an existing bank (for gzip, a new member, which readers concatenate).
    A new bank is written under a temporary name and renamed, so an interrupted write never
    leaves half a bank behind. Returns the number of runs written.
    """
    path = Path(path)
    gz = path.suffix == ".gz"
    appending = append and path.exists()
    target = path if appending else path.with_name(path.name + ".tmp")
    n = 0
    with _open(target, "a" if appending else "w", gz=gz) as f:
        for run in runs:
            f.write(json.dumps(run.to_json(), allow_nan=False) + "\n")
            n += 1
    if not appending:
        target.replace(path)
    return n


def runs_by_task(runs: Iterable[Run]) -> dict[str, list[Run]]:
    """Group runs by task, keeping the bank's order within each task."""
    out: dict[str, list[Run]] = {}
    for run in runs:
        out.setdefault(run.task, []).append(run)
    return out
