"""Training: the bundled datasets, the reference trainer, and the probe that records a live model.

The start of the data flow: ``data`` loads a dataset, ``trainer`` trains a model on it with the
``probe`` attached (``ncp`` adds the neural capacitance probe), and each epoch ends in an
``automl.records.EpochRecord`` that ``automl.reporting`` hands to a pruner; ``automl.search``
trains its trials here and ``automl.bench`` records banks with it. Every module here imports
torch, so the names below load on first use: importing this package imports nothing.
"""

from __future__ import annotations

from automl import _lazy

__all__ = [
    "Dataset", "DATASETS", "load_dataset", "from_tensors", "from_image_folder",
    "Probe", "find_layers", "STOP_ATTRS", "converged_stop", "auto_every_k_steps",
    "fit", "train", "evaluate", "TrainResult", "make_optimizer", "OPTIMIZERS",
    "NCP", "ShadowNCP", "install_ncp_head", "find_features", "find_head", "DEFAULT_HIDDEN",
]

_LAZY = _lazy.table({
    "automl.training.data": ("Dataset", "DATASETS", "load_dataset", "from_tensors", "from_image_folder"),
    "automl.training.probe": ("Probe", "find_layers", "STOP_ATTRS", "converged_stop", "auto_every_k_steps"),
    "automl.training.trainer": ("fit", "train", "evaluate", "TrainResult", "make_optimizer", "OPTIMIZERS"),
    "automl.training.ncp": ("NCP", "ShadowNCP", "install_ncp_head", "find_features", "find_head", "DEFAULT_HIDDEN"),
})
__getattr__, __dir__ = _lazy.attributes(__name__, _LAZY, __all__)
