"""Guided training: guidance networks (ENNs) that score an MLP's weights, and which one to use.

A side branch of the data flow, fed by ``automl.training`` (its datasets and training runs):
``enn`` trains evaluator networks on real training trajectories and adds their score to
backpropagation (``guided_fit``); ``recommender`` keeps a zoo of them with measured gains and
ranks them for a target architecture (``automl recommend``, ``automl enn train``). Both import
torch, so the names below load on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = [
    "parse_arch", "arch_name", "build_mlp", "ENN", "StatsENN", "guided_fit", "train_enn", "build_enn", "save_enn",
    "load_enn", "gradcam",
    "ZOO", "build_zoo", "measure_gains", "fit_recommender", "recommend", "load_zoo", "zoo_dir",
]

_LAZY = {
    **dict.fromkeys(("parse_arch", "arch_name", "build_mlp", "ENN", "StatsENN", "guided_fit", "train_enn", "build_enn",
                     "save_enn", "load_enn", "gradcam"), "automl.guidance.enn"),
    **dict.fromkeys(("ZOO", "build_zoo", "measure_gains", "fit_recommender", "recommend", "load_zoo", "zoo_dir"),
                    "automl.guidance.recommender"),
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'automl.guidance' has no attribute {name!r}")
