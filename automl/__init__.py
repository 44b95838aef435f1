"""automl: stop bad trials early, on evidence from real training state, with a readable reason.

Public names: ``Probe`` and ``EpochRecord`` (record a training loop), ``report`` (send a record to
Optuna or Ray Tune), ``decide`` with ``TrialHistory``, ``Population``, ``Policy`` and ``Verdict``
(the one decision core; ``converged_verdict`` is its "will not gain" check, also asked by
``Probe.should_stop``), ``train``/``fit`` and ``load_dataset`` (reference trainer and bundled data); ``diagnose`` (the
failure meta-classifier: labels with probabilities and reasons); ``recommend`` (which guidance
network to train an MLP with: ``automl.guidance.recommender``; the networks are in ``automl.guidance.enn``).
Every name loads on first use, so ``import automl`` imports neither torch, scipy nor XGBoost.

Packages, in data-flow order: ``automl.training`` (datasets, probe, trainer) feeds records through
``automl.reporting`` to the pruners (``automl.decision``); ``automl.search`` runs whole searches
with them; ``automl.bench`` records curve banks and replays pruners on them; ``automl.guidance``
holds the guidance networks and their recommender.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from automl import _lazy

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

_LAZY = _lazy.table({
    "automl.training.probe": ("Probe",),
    "automl.records": ("EpochRecord", "LayerStats"),
    "automl.reporting": ("report",),
    "automl.decision": ("decide", "converged_verdict", "TrialHistory", "Population", "Policy", "Verdict"),
    "automl.training.trainer": ("train", "fit", "evaluate"),
    "automl.training.data": ("load_dataset", "from_tensors", "Dataset"),
    "automl.diagnosis": ("diagnose", "Diagnosis"),
    "automl.guidance.recommender": ("recommend",),
})
__getattr__, __dir__ = _lazy.attributes(__name__, _LAZY, __all__)

if TYPE_CHECKING:  # what type checkers and IDEs read; at run time each name loads on first use
    from automl.decision import Policy, Population, TrialHistory, Verdict, converged_verdict, decide
    from automl.diagnosis import Diagnosis, diagnose
    from automl.guidance.recommender import recommend
    from automl.records import EpochRecord, LayerStats
    from automl.reporting import report
    from automl.training.data import Dataset, from_tensors, load_dataset
    from automl.training.probe import Probe
    from automl.training.trainer import evaluate, fit, train
