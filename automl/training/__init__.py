"""Training: the bundled datasets, the reference trainer, and the probe that records a live model.

The start of the data flow: ``data`` loads a dataset, ``trainer`` trains a model on it with the
``probe`` attached (``ncp`` adds the neural capacitance probe), and each epoch ends in an
``automl.records.EpochRecord`` that ``automl.reporting`` hands to a pruner; ``automl.search``
trains its trials here and ``automl.bench`` records banks with it. Every module here imports
torch, so the names below load on first use: importing this package imports nothing.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = [
    "Dataset", "DATASETS", "load_dataset", "from_tensors", "from_image_folder",
    "Probe", "find_layers", "STOP_ATTRS", "converged_stop", "auto_every_k_steps",
    "fit", "train", "evaluate", "TrainResult", "make_optimizer", "OPTIMIZERS",
    "NCP", "ShadowNCP", "install_ncp_head", "find_features", "find_head", "DEFAULT_HIDDEN",
]

_LAZY = {
    **dict.fromkeys(("Dataset", "DATASETS", "load_dataset", "from_tensors", "from_image_folder"), "automl.training.data"),
    **dict.fromkeys(("Probe", "find_layers", "STOP_ATTRS", "converged_stop", "auto_every_k_steps"), "automl.training.probe"),
    **dict.fromkeys(("fit", "train", "evaluate", "TrainResult", "make_optimizer", "OPTIMIZERS"), "automl.training.trainer"),
    **dict.fromkeys(("NCP", "ShadowNCP", "install_ncp_head", "find_features", "find_head", "DEFAULT_HIDDEN"),
                    "automl.training.ncp"),
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'automl.training' has no attribute {name!r}")
