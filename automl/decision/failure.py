"""The failure check: prune on a failure label the meta-classifier is sure of."""

from __future__ import annotations

from typing import Optional

import numpy as np

from automl.decision.context import Context
from automl.decision.text import fmt
from automl.decision.verdict import Verdict
from automl.signals.curve import median_at_step

__all__ = ["failure", "RELATIVE_FAILURES"]

#: Labels that depend on the task's pace: the classifier learned them on 12-epoch runs, and on a
#: slower task a run still climbing at epoch 5 looks just like one that will never learn. They
#: prune only a trial that is also behind the median of its finished peers at the same epoch, with
#: ``Policy(failure_relative=True)`` (on 108 runs it had never seen, from 40-epoch tasks slower than
#: its corpus, "underfit" fell on 18% of the runs that ended in the better half at p >= 0.5 and on
#: 1.8% at p >= 0.9: benchmarks/results/diagnosis_replay.md).
RELATIVE_FAILURES = frozenset({"underfit", "plateau", "oscillation", "overfit"})
_MIN_PEERS_RELATIVE = 3


def failure(ctx: Context) -> Optional[Verdict]:
    """With ``Policy(failure="model")``: the label, its probability and the classifier's evidence."""
    pol, step = ctx.policy, ctx.step
    if pol.failure != "model" or step < pol.failure_min_epochs or not ctx.trial.records:
        return None
    from automl.diagnosis import diagnose

    try:
        diag = diagnose(ctx.trial.records, scope="early")  # will it fail: the first epochs, as the model was validated
    except ValueError:  # records without the four curves: the classifier has nothing to read
        return None
    now = ctx.peers.now
    median = median_at_step(np.asarray(now)) if len(now) >= _MIN_PEERS_RELATIVE else None
    behind = median is not None and ctx.current > median
    hits = [lab for lab in diag.present if lab in pol.failure_labels and diag.labels[lab] >= pol.failure_threshold
            and (lab not in RELATIVE_FAILURES or behind or not pol.failure_relative)]
    if not hits:
        return None
    lab = hits[0]
    why = next((r for r in diag.reasons if r.startswith(f"{lab} ")), lab)
    if lab in RELATIVE_FAILURES and behind:
        why += (f", and {ctx.metric} {fmt(ctx.sign * ctx.current)} is behind the median {fmt(ctx.sign * median)} "
                f"of {len(now)} finished trials")
    return Verdict(action="prune", reason=f"failure at epoch {step}: {why}", source="failure",
                   evidence={"epoch": step, "label": lab, "p": diag.labels[lab], "labels": diag.labels,
                             "healthy": diag.healthy})
