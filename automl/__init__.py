"""automl: stop bad trials early, on evidence from real training state, with a readable reason.

Public names: ``Probe`` and ``EpochRecord`` (record a training loop), ``report`` (send a record to
Optuna or Ray Tune), ``decide`` with ``TrialHistory``, ``Population``, ``Policy`` and ``Verdict``
(the one decision core; ``converged_verdict`` is its "will not gain" check, also asked by
``Probe.should_stop``), ``train``/``fit`` and ``load_dataset`` (reference trainer and bundled data); ``diagnose`` (the
failure meta-classifier: labels with probabilities and reasons); ``recommend`` (which guidance
network to train an MLP with: ``automl.guidance.recommender``; the networks are in ``automl.guidance.enn``).
torch is imported only when a torch-facing name is first used.

Packages, in data-flow order: ``automl.training`` (datasets, probe, trainer) feeds records through
``automl.reporting`` to the pruners (``automl.decision``); ``automl.search`` runs whole searches
with them; ``automl.bench`` records curve banks and replays pruners on them; ``automl.guidance``
holds the guidance networks and their recommender.
"""

from __future__ import annotations

import importlib
from typing import Any

from automl.decision import Policy, Population, TrialHistory, Verdict, converged_verdict, decide
from automl.records import EpochRecord, LayerStats

__version__ = "0.1.0"

__all__ = [
    "Probe",
    "EpochRecord",
    "LayerStats",
    "report",
    "decide",
    "converged_verdict",
    "TrialHistory",
    "Population",
    "Policy",
    "Verdict",
    "train",
    "fit",
    "evaluate",
    "load_dataset",
    "from_tensors",
    "Dataset",
    "diagnose",
    "Diagnosis",
    "recommend",
]

_LAZY = {
    "Probe": "automl.training.probe",
    "report": "automl.reporting",
    "train": "automl.training.trainer",
    "fit": "automl.training.trainer",
    "evaluate": "automl.training.trainer",
    "load_dataset": "automl.training.data",
    "from_tensors": "automl.training.data",
    "Dataset": "automl.training.data",
    "diagnose": "automl.diagnosis",
    "Diagnosis": "automl.diagnosis",
    "recommend": "automl.guidance.recommender",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'automl' has no attribute {name!r}")
