"""Read a finished (or running) study back: the leaderboard and the totals ``automl show`` prints."""

from __future__ import annotations

import math
from typing import Any, Optional

__all__ = ["leaderboard", "summarize", "best_test_acc", "curves"]


def leaderboard(study: Any, trials: Optional[list[Any]] = None) -> list[dict[str, Any]]:
    """One row per trial: number, state, params, value, epochs, reason, duration; best finished
    first. ``trials``: the study's trials if the caller has read them already."""
    from automl.reporting import records_of

    rows = []
    for t in study.get_trials(deepcopy=False) if trials is None else trials:
        epochs = t.user_attrs.get("epochs")
        if epochs is None:
            epochs = t.last_step or len(records_of(t)) or 0
        reason = (t.user_attrs.get("prune_reason") or t.user_attrs.get("stop_reason") or t.user_attrs.get("fail_reason")
                  or t.system_attrs.get("fail_reason") or "")
        if not reason and t.state.name == "FAIL" and t.user_attrs.get("worker"):
            reason = (f"ended without a recorded error: its worker {t.user_attrs['worker']} stopped "
                      "(killed, out of memory, or lost its heartbeat)")
        rows.append(
            {"number": t.number, "state": t.state.name, "params": dict(t.params), "value": t.value, "epochs": int(epochs), "reason": reason,
             "duration_s": _duration(t)}
        )
    sign = -1.0 if study.direction.name == "MAXIMIZE" else 1.0
    order = {"COMPLETE": 0, "RUNNING": 1, "PRUNED": 2, "FAIL": 3, "WAITING": 4}

    def key(r: dict[str, Any]) -> tuple:
        v = r["value"]
        return (order.get(r["state"], 5), sign * v if v is not None and math.isfinite(v) else math.inf, r["number"])

    return sorted(rows, key=key)


def _duration(trial: Any) -> Optional[float]:
    """Seconds a trial ran (so far, if it is running); ``None`` before it started."""
    import datetime

    start = trial.datetime_start
    if start is None:
        return None
    end = trial.datetime_complete or datetime.datetime.now(start.tzinfo)
    return round((end - start).total_seconds(), 1)


def curves(trials: list[Any]) -> dict[int, dict[str, Any]]:
    """Per trial number: its reported curve as ``[[epoch, value], ...]`` (non-finite values as
    ``None``) and the epoch a pruner or the convergence rule stopped it at (``None`` if none did)."""
    out = {}
    for t in trials:
        points = [[int(e), v if isinstance(v, (int, float)) and math.isfinite(v) else None]
                  for e, v in sorted(t.intermediate_values.items())]
        stop = t.user_attrs.get("prune_epoch", t.user_attrs.get("stop_epoch"))
        out[t.number] = {"curve": points, "stopped_at": int(stop) if isinstance(stop, (int, float)) else None}
    return out


def summarize(study: Any) -> dict[str, Any]:
    """Totals over a study: trials by state, epochs consumed against the full budget, the best trial."""
    rows = leaderboard(study)
    budget = int(study.user_attrs.get("epochs", 0)) or max((r["epochs"] for r in rows), default=0)
    states: dict[str, int] = {}
    for r in rows:
        states[r["state"]] = states.get(r["state"], 0) + 1
    complete = [r for r in rows if r["state"] == "COMPLETE" and r["value"] is not None]
    best = complete[0] if complete else None
    used = sum(r["epochs"] for r in rows)
    return {
        "study": study.study_name,
        "metric": (study.metric_names or ["value"])[0],
        "direction": study.direction.name.lower(),
        "trials": len(rows),
        "states": states,
        "epochs_used": used,
        "epochs_full_budget": budget * len(rows),
        "best_trial": best["number"] if best else None,
        "best_value": best["value"] if best else None,
    }


def best_test_acc(study: Any) -> Optional[float]:
    """The test accuracy recorded at the best finished trial's last epoch (``None``: no finished
    trial, or it recorded none): what the model a search picks scores on data no pruner saw."""
    from automl.reporting import records_of

    try:
        best = study.best_trial
    except ValueError:
        return None
    records = records_of(best)
    return records[-1].get("test_acc") if records else None

