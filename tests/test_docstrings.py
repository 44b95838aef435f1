"""Every public class's docstring example runs (STYLE: one runnable example per public class)."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = [
    "automl.records",
    "automl.reporting",
    "automl.decision.core",
    "automl.decision.convergence",
    "automl.decision.policy",
    "automl.validation",
    "pruners._registry",
    "automl.signals.curve",
    "automl.signals.dynamics",
    "automl.signals.failure",
    "automl.diagnosis",
    "automl.training.probe",
    "automl.training.data",
    "automl.training.trainer",
    "automl.bench.bank",
    "pruners._signal",
    "pruners._ray",
    "search_spaces",
    "search_spaces._params",
    "automl.guidance.arch",
    "automl.guidance.recommender",
    "automl.forecast.model",
    "automl.integrations.lightning",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0, f"{name} has no runnable example"
    assert result.failed == 0
