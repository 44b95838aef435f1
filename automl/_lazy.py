"""Lazy package attributes (PEP 562): a package names what it offers without importing it.

The command line answers ``--help`` and ``show`` without loading scipy, torch or XGBoost; a name
is imported from its module the first time it is used.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable, Mapping
from typing import Any


def table(groups: Mapping[str, Iterable[str]]) -> dict[str, str]:
    """``{module: names}`` -> ``{name: module}``."""
    return {name: module for module, names in groups.items() for name in names}


def attributes(package: str, lazy: Mapping[str, str], eager: Iterable[str] = ()) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """The ``__getattr__`` and ``__dir__`` of ``package`` for the names in ``lazy`` (name -> module)."""

    def __getattr__(name: str) -> Any:
        module = lazy.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        globals_ = importlib.import_module(package).__dict__
        globals_[name] = value  # later lookups skip this function
        return value

    def __dir__() -> list[str]:
        return sorted({*lazy, *eager, *importlib.import_module(package).__dict__})

    return __getattr__, __dir__
