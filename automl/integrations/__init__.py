"""Optional integrations with training frameworks, each in its own module.

- ``automl.integrations.lightning``: ``SignalPruningCallback``, a PyTorch Lightning callback that
  runs the probe on a ``LightningModule``, reports each validation run with ``automl.report`` and
  prunes (``pip install "automl-signals[lightning]"``).

Importing this package imports no framework: each module imports its own when it is imported.
"""

from __future__ import annotations

__all__: list[str] = []
