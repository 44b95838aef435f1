"""Architecture specs of the guidance networks' targets: ``"mlp:784-128-64-10"`` <-> ``(784, 128, 64, 10)``.

No torch here: ``automl recommend`` parses a spec without loading it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

__all__ = ["parse_arch", "arch_name", "MAX_WIDTH"]

MAX_WIDTH = 100_000
_ARCH = re.compile(r"^\s*([A-Za-z_]+)\s*:\s*(.+?)\s*$")
_DIGITS = re.compile(r"[0-9]+")  # ASCII digits only: str.isdigit() also accepts '²' and other digit signs


def parse_arch(spec: str) -> tuple[int, ...]:
    """``"mlp:784-128-64-10"`` -> ``(784, 128, 64, 10)``; a malformed spec raises ``ValueError``
    naming the part that is wrong.

    Example:
        >>> parse_arch("mlp:64-32-10")
        (64, 32, 10)
        >>> parse_arch("mlp:²-10")
        Traceback (most recent call last):
        ...
        ValueError: arch 'mlp:²-10': input size '²' (part 1) is not a positive integer written in digits 0-9.
    """
    if not isinstance(spec, str):
        raise ValueError(f"arch must be a string such as 'mlp:784-128-64-10', but got {type(spec).__name__} {spec!r}.")
    shown = spec if len(spec) <= 60 else spec[:57] + "..."
    m = _ARCH.match(spec)
    if not m:
        raise ValueError(f"arch {shown!r} must look like 'mlp:784-128-64-10' (family, then input-hidden...-classes).")
    family, body = m.group(1).lower(), m.group(2)
    if family != "mlp":
        raise ValueError(f"arch {shown!r}: family {m.group(1)!r} is not supported; guidance networks read 'mlp' weights.")
    parts = body.split("-")
    dims = []
    for i, raw in enumerate(parts):
        p = raw.strip()
        what = "input size" if i == 0 else "number of classes" if i == len(parts) - 1 else f"hidden width {i}"
        if not _DIGITS.fullmatch(p) or not p.lstrip("0"):
            part = p if len(p) <= 20 else p[:17] + "..."
            raise ValueError(f"arch {shown!r}: {what} {part!r} (part {i + 1}) is not a positive integer written in digits 0-9.")
        if len(p.lstrip("0")) > len(str(MAX_WIDTH)) or int(p) > MAX_WIDTH:
            raise ValueError(f"arch {shown!r}: {what} (part {i + 1}, {len(p.lstrip('0'))} digits) is over {MAX_WIDTH}.")
        dims.append(int(p))
    if len(dims) < 2:
        raise ValueError(f"arch {shown!r} needs at least an input size and a number of classes, e.g. 'mlp:784-10'.")
    if dims[-1] < 2:
        raise ValueError(f"arch {shown!r}: number of classes {dims[-1]} must be at least 2.")
    return tuple(dims)


def arch_name(dims: Sequence[int]) -> str:
    return "mlp:" + "-".join(str(int(d)) for d in dims)
