"""Defaults that the command line, the service and the search settings show before any check loads.

Kept apart from ``policy.py`` (whose validated models take a sixth of a second to build), so
``automl --help`` and ``automl show`` do not wait for them.
"""

#: The forecast pruner's risk: prune a trial whose probability of beating the best finished trial
#: is below this (chosen by replay on the tuning half of the banks; benchmarks/results/forecast_rungs_tune.md).
DEFAULT_RISK = 0.002
