"""Failure pruning in replay, and the classifier on runs it has never seen (issue 6).

    python benchmarks/diagnosis_replay.py [--seeds 3] [--trials 60] [--jobs 2]
        # -> benchmarks/results/diagnosis_replay.{json,md}

1. **Replay.** The curve banks of ``benchmarks/banks/dynamics/`` (digits and mnist1d, MLP and CNN
   hyperparameter searches, 40 epochs, recorded with per-layer gradient and weight statistics) are
   replayed through ``signal`` with ``Policy()``, with ``Policy(failure="model")`` (pace-dependent
   labels judged against the peers) and with ``failure_relative=False`` (the classifier alone), beside
   Optuna's ``median`` and ``asha``: cost (epochs, as a ratio to no pruning), normalised regret,
   and how often the best run was kept. Decisions read what a probe would have recorded by then.
2. **Unseen runs.** None of these runs is in the classifier's corpora (mnist1d is among the long-run
   corpus's datasets, with other models and training code, so these are unseen runs, not an unseen
   dataset). Each run is diagnosed from its first 5 epochs; the labels it gets are set beside the
   SIGNALS.md threshold rules applied to the whole run (weak truth: the rules were not the training
   truth) and beside the run's final validation accuracy, so a "will never be good" label on a run
   that ended well is visible as a false alarm. (Why ``underfit`` and ``plateau`` prune only a
   trial behind its peers: :data:`automl.decision.RELATIVE_FAILURES`.)
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from automl.bench.bank import iter_bank, read_bank, runs_by_task  # noqa: E402
from automl.bench.replay import replay  # noqa: E402
from automl.decision import Policy  # noqa: E402
from automl.diagnosis import diagnose, run_from_bank  # noqa: E402
from automl.signals.failure import rule_labels  # noqa: E402

BANKS = sorted((ROOT / "benchmarks" / "banks" / "dynamics").glob("*.jsonl.gz"))
RESULTS = ROOT / "benchmarks" / "results"
PRUNING = Policy().failure_labels  # the labels that prune by default
PRUNE_P = Policy().failure_threshold


def replay_part(seeds: int, trials: int, jobs: int) -> dict[str, Any]:
    tasks: dict[str, Any] = {}
    for bank in BANKS:
        tasks.update(runs_by_task(read_bank(bank)))
    out: dict[str, Any] = {"tasks": sorted(tasks), "seeds": seeds, "trials": trials, "summary": {}}
    for name, policy, pruners in (("off", Policy(), ("none", "median", "asha", "signal")),
                                  ("failure", Policy(failure="model"), ("none", "signal")),
                                  ("failure-absolute", Policy(failure="model", failure_relative=False), ("none", "signal"))):
        t0 = time.time()
        res = replay(tasks, pruners, seeds=seeds, trials=trials, policy=policy, jobs=jobs)
        for p, s in res["summary"].items():
            if p != "none" and (name == "off" or p == "signal"):
                out["summary"][p if name == "off" else f"signal+{name}"] = s
        out[f"seconds_{name}"] = round(time.time() - t0, 1)
        print(f"replay ({name}): {json.dumps(res['summary'])} in {out[f'seconds_{name}']} s", flush=True)
    return out


def unseen_part(k: int = 5) -> dict[str, Any]:
    rows = []
    for bank in BANKS:
        for row in iter_bank(bank):
            run = run_from_bank(row)
            d = diagnose(run, k=k)
            rows.append({"bank": bank.name.split(".")[0], "run": row.run_id, "view": d.view, "present": d.present,
                         "sure": [lab for lab in d.present if d.labels[lab] >= PRUNE_P], "healthy": d.healthy, "rules_full": sorted(rule_labels(run)),
                         "final_val_acc": float(row.curves["val_acc"][-1])})
    accs = np.array([r["final_val_acc"] for r in rows])
    good = accs >= np.median(accs)
    flagged = np.array([bool(set(r["present"]) & set(PRUNING)) for r in rows])
    sure = np.array([bool(set(r["sure"]) & set(PRUNING)) for r in rows])
    any_label = np.array([bool(r["present"]) for r in rows])
    rules_any = np.array([bool(r["rules_full"]) for r in rows])
    return {
        "k": k, "runs": len(rows),
        "labelled_any": float(any_label.mean()),
        "pruning_label": float(flagged.mean()),
        "pruning_label_on_top_half": float(flagged[good].mean()),
        "pruning_label_on_bottom_half": float(flagged[~good].mean()),
        "sure_pruning_label_on_top_half": float(sure[good].mean()),
        "sure_pruning_label_on_bottom_half": float(sure[~good].mean()),
        "agree_with_rules_on_full_run": float(np.mean(any_label == rules_any)),
        "label_counts": {lab: int(sum(lab in r["present"] for r in rows)) for lab in sorted({x for r in rows for x in r["present"]})},
        "rows": rows,
    }


def report(doc: dict[str, Any]) -> str:
    rp, un = doc["replay"], doc["unseen"]
    lines = ["# Failure pruning in replay, and runs never seen (issue 6)", "",
             "Written by `python benchmarks/diagnosis_replay.py`.", "",
             f"## Replay: {len(rp['tasks'])} tasks ({', '.join(rp['tasks'])}), {rp['seeds']} seeds, {rp['trials']} trials", "",
             "| pruner | median cost vs none | median normalised regret | best run kept |", "|---|---:|---:|---:|"]
    for p, s in rp["summary"].items():
        lines.append(f"| {p} | {s['median_cost_ratio_vs_none']:.3f}x | {s['median_norm_regret']:.3f} | {s['kept_best_rate']:.0%} |")
    lines += ["", f"## {un['runs']} runs never seen, diagnosed from their first {un['k']} epochs", "",
              f"- given any label: {un['labelled_any']:.1%}; a label that prunes by default "
              f"({', '.join(PRUNING)}): {un['pruning_label']:.1%}",
              f"- a pruning label on runs in the top half by final val_acc: {un['pruning_label_on_top_half']:.1%}; "
              f"bottom half: {un['pruning_label_on_bottom_half']:.1%}; at p >= {PRUNE_P} (the pruner's threshold): "
              f"{un['sure_pruning_label_on_top_half']:.1%} and {un['sure_pruning_label_on_bottom_half']:.1%}",
              f"- label or none agrees with the SIGNALS.md rules on the whole 40-epoch run: {un['agree_with_rules_on_full_run']:.1%}",
              f"- labels given: {un['label_counts']}"]
    return "\n".join(lines) + "\n"


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--trials", type=int, default=60)
    ap.add_argument("--jobs", type=int, default=2)
    args = ap.parse_args(argv)
    doc = {"unseen": unseen_part(), "replay": replay_part(args.seeds, args.trials, args.jobs)}
    (RESULTS / "diagnosis_replay.json").write_text(json.dumps(doc, indent=1))
    (RESULTS / "diagnosis_replay.md").write_text(report(doc))
    print(report(doc))


if __name__ == "__main__":
    main()
