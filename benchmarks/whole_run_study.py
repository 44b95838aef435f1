"""Whole-run diagnosis ("what went wrong in this run?"): evaluate leave-one-dataset-out, and ship.

    python benchmarks/whole_run_study.py evaluate   # -> benchmarks/results/diagnosis.{md,json}
    python benchmarks/whole_run_study.py ship       # -> automl/models/diagnosis_whole.json.gz

Runs: every kept run of both failure corpora -- ``failures/corpus.jsonl.gz`` (12-epoch runs of the
reference trainer on digits and mnist5k, ``failure_corpus.py``) and ``failures/long.jsonl.gz``
(15-100-epoch runs of a plain PyTorch loop on six image, sequence and tabular datasets, with
failures that start late, ``failure_corpus_long.py``). Truth: the injected cause's labels.

Each run is one row: :func:`automl.signals.failure.whole_features` of all its epochs, restricted
to a view's inputs (:data:`VIEWS`). Training rows add two label-preserving copies of every
training run (:func:`augment`: resampled in time to 0.5-2x its length, curve noise, loss rescaled);
test rows never are. Models, each one binary head per label plus "any failure", calibrated by
Platt scaling on out-of-fold predictions inside the training data (``failure_study.fit_calibrated``):
XGBoost, random forest, logistic regression, and the SIGNALS.md threshold rules over the whole run.

Protocols: leave-one-dataset-out (the six datasets; a held-out dataset's runs of both corpora go
together) and leave-one-architecture-out. Scores: macro-F1 over the labels the view assesses,
per-label F1, the share of healthy runs given any label (false alarms), and the detection epoch:
the first epoch from which the model, reading the run up to each later epoch, keeps the label
(:func:`automl.diagnosis.onsets`), against the epoch a late divergence was injected.

The early question ("will this run fail?", the first k epochs) is scored here too on both
corpora, leave-one-dataset-out, with the shipped early model's recipe (``failure_study``).
"""

from __future__ import annotations

import argparse
import datetime as _dt
import gzip
import hashlib
import json
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
for _p in (ROOT, ROOT / "benchmarks"):
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))

import failure_corpus  # noqa: E402
import failure_corpus_long  # noqa: E402
from automl.bench.bank import iter_bank  # noqa: E402
from automl.diagnosis import WHOLE_MODEL_PATH, WHOLE_VIEWS, onsets, restrict, run_from_bank, view_labels  # noqa: E402
from automl.signals.failure import LABELS, WHOLE_FEATURES, features, rule_labels, whole_features  # noqa: E402
from failure_study import MAKERS, _xgb, fit_calibrated, predict_calibrated, scores  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
SEED = 0
COPIES = 2
#: Causes whose failure starts late in the run by design: the early view cannot see them coming.
LATE = ("late_diverge", "late_overfit")
#: Labels the four curves can show; the gradient labels (exploding, vanishing, dying ReLUs) leave
#: curves that look like any other stuck run, so from the curves alone they are guesses.
CURVE_VISIBLE = ("nonfinite", "oscillation", "plateau", "underfit", "overfit")


def visible_macro(s: dict[str, Any]) -> float:
    """Macro-F1 over the :data:`CURVE_VISIBLE` labels of a :func:`scores` result."""
    return float(np.mean([s["per_label"][lab]["f1"] for lab in CURVE_VISIBLE if lab in s["per_label"]]))


# ------------------------------------------------------------------------------------- data
def load_runs() -> list[dict[str, Any]]:
    """Kept runs of both corpora, each with its diagnosis input, truth and groups."""
    out = []
    for row in iter_bank(failure_corpus.BANK):
        sig = row.signals
        if failure_corpus.took(row.config["cause"], sig["weak_labels"]):
            out.append({"id": row.run_id, "corpus": "short", "cause": row.config["cause"], "family": row.config["family"],
                        "dataset": row.config["dataset"], "run": run_from_bank(row), "labels": set(sig["labels"]),
                        "jump_at": None})
    for row in iter_bank(failure_corpus_long.BANK):
        sig = row.signals
        if sig["took"]:
            out.append({"id": row.run_id, "corpus": "long", "cause": row.config["cause"], "family": row.config["family"],
                        "dataset": row.config["dataset"], "run": run_from_bank(row), "labels": set(sig["labels"]),
                        "jump_at": row.config.get("jump_at")})
    return out


def augment(run: dict[str, Any], rng: np.random.Generator) -> dict[str, Any]:
    """A label-preserving copy: resampled in time to 0.5-2x the run's length (at least 8 epochs;
    linear between finite neighbours, nearest otherwise), accuracies jittered by 0.005, losses
    rescaled by a common factor 0.7-1.4 and jittered by 2%."""
    n = len(run["train_loss"])
    m = int(np.clip(round(n * rng.uniform(0.5, 2.0)), 8, 150))
    pos = np.linspace(0, n - 1, m)
    lo, hi = np.floor(pos).astype(int), np.ceil(pos).astype(int)
    w = pos - lo
    scale = rng.uniform(0.7, 1.4)
    out: dict[str, Any] = {k: v for k, v in run.items() if not isinstance(v, list)}
    for key, v in run.items():
        if not isinstance(v, list):
            continue
        a = np.array([np.nan if x is None else float(x) for x in v])
        both = np.isfinite(a[lo]) & np.isfinite(a[hi])
        y = np.where(both, (1 - w) * a[lo] + w * a[hi], a[np.rint(pos).astype(int)])
        if key.endswith("_acc"):
            y = np.clip(y + rng.normal(0, 0.005, m), 0.0, 1.0)
        elif key.endswith("_loss"):
            y = y * scale * np.exp(rng.normal(0, 0.02, m))
        out[key] = [float(x) for x in y]
    return out


def rows(runs: list[dict[str, Any]], view: str, copies: int = 0, seed: int = SEED):
    """X, Y (the view's labels, then "any") and the run index of every row; ``copies`` augmented
    copies of every run follow its own row."""
    labs = view_labels(view)
    rng = np.random.default_rng(seed)
    X, Y, idx = [], [], []
    for i, r in enumerate(runs):
        y = [lab in r["labels"] for lab in labs]
        y.append(any(y))
        run = restrict(r["run"], view)
        for c in range(copies + 1):
            X.append(whole_features(run if c == 0 else augment(run, rng)))
            Y.append(y)
            idx.append(i)
    return np.array(X), np.array(Y, dtype=int), np.array(idx)


def targets(view: str) -> tuple[str, ...]:
    return view_labels(view) + ("any",)


# ------------------------------------------------------------------------------------- evaluation
def splits(runs: list[dict[str, Any]]) -> dict[str, list[tuple[str, np.ndarray, np.ndarray]]]:
    ids = np.arange(len(runs))
    out = {}
    for proto, key in (("lodo", "dataset"), ("loao", "family")):
        g = np.array([r[key] for r in runs], dtype=object)
        out[proto] = [(name, ids[g != name], ids[g == name]) for name in sorted(set(g))]
    return out


def fit_heads(name: str, X, Y, groups) -> list[Any]:
    return [fit_calibrated(MAKERS[name], X, Y[:, j], groups) for j in range(Y.shape[1])]


def predict_heads(heads: list[Any], X: np.ndarray) -> np.ndarray:
    return np.stack([predict_calibrated(h, X) for h in heads], axis=1)


def rule_probs(runs: list[dict[str, Any]], test: np.ndarray, view: str) -> np.ndarray:
    labs = view_labels(view)
    P = np.zeros((len(test), len(labs) + 1))
    for row, i in enumerate(test):
        got = rule_labels(restrict(runs[i]["run"], view))
        P[row, :-1] = [lab in got for lab in labs]
        P[row, -1] = bool(got & set(labs))
    return P


class _Fitted:
    """Fold heads in the shape :func:`automl.diagnosis.onsets` reads (a ``predict`` per view)."""

    def __init__(self, heads: list[Any], view: str, threshold: float = 0.5) -> None:
        self.heads, self.view, self.threshold = heads, view, threshold

    def predict(self, X: np.ndarray, view: str) -> dict[str, np.ndarray]:
        P = predict_heads(self.heads, np.atleast_2d(X))
        return {t: P[:, j] for j, t in enumerate(targets(self.view))}


def evaluate_whole(runs, model: str, view: str, protos=("lodo", "loao"), detect: bool = False) -> dict[str, Any]:
    """Out-of-fold scores of ``model`` on ``view``; ``model`` ending in ``-noaug`` trains without
    the augmented copies (what they are worth)."""
    labs = view_labels(view)
    healthy = np.array([not r["labels"] for r in runs])  # healthy: no failure injected (a shift-only run is not)
    X0, Y0, I0 = rows(runs, view)
    copies = 0 if model.endswith("-noaug") else COPIES
    model = model.removesuffix("-noaug")
    Xa, Ya, Ia = rows(runs, view, copies) if model != "rules" else (None, None, None)
    out: dict[str, Any] = {}
    for proto in protos:
        P = np.zeros(Y0.shape)
        per_group, detections = {}, []
        for name, train, test in splits(runs)[proto]:
            te = np.isin(I0, test)
            if model == "rules":
                P[te] = rule_probs(runs, I0[te], view)
            else:
                tr = np.isin(Ia, train)
                heads = fit_heads(model, Xa[tr], Ya[tr], Ia[tr])
                P[te] = predict_heads(heads, X0[te])
                if detect and proto == "lodo":
                    fitted = _Fitted(heads, view)
                    for i in I0[te]:
                        r = runs[i]
                        if r["labels"] & set(labs):
                            on = onsets(restrict(r["run"], view), fitted, view)
                            for lab in r["labels"] & set(labs):
                                detections.append({"label": lab, "cause": r["cause"], "epochs": len(r["run"]["train_loss"]),
                                                   "onset": on.get(lab), "jump_at": r["jump_at"]})
            per_group[name] = scores(P[te], Y0[te], labs, healthy[I0[te]])["macro_f1"]
        out[proto] = {**scores(P, Y0, labs, healthy), "by_group": per_group}
        out[proto]["macro_f1_visible"] = visible_macro(out[proto])
        if detections:
            out[proto]["detection"] = detection_summary(detections)
    return out


def detection_summary(d: list[dict[str, Any]]) -> dict[str, Any]:
    """Per label: the median detection epoch as a share of the run, and how often the model,
    reading prefixes, never settles on the label; for late divergences, epochs after the jump."""
    out: dict[str, Any] = {}
    for lab in LABELS:
        ds = [x for x in d if x["label"] == lab]
        if not ds:
            continue
        found = [x for x in ds if x["onset"] is not None]
        out[lab] = {"positives": len(ds), "settled": len(found) / len(ds),
                    "median_share": float(np.median([x["onset"] / x["epochs"] for x in found])) if found else None}
    late = [x for x in d if x["cause"] == "late_diverge" and x["label"] == "nonfinite" and x["onset"] is not None]
    if late:
        lag = [x["onset"] - (x["jump_at"] + 1) for x in late]
        out["late_diverge_lag"] = {"runs": len(late), "median": float(np.median(lag)), "max": int(max(lag)),
                                   "before_jump": int(sum(v < 0 for v in lag))}
    return out


def evaluate_early(runs, k: int = 5, view: str = "curves") -> dict[str, Any]:
    """The early question at k epochs, leave-one-dataset-out: the early model's recipe (rows at
    k = 2..8, XGBoost heads) trained on both corpora; scored on all runs and without the causes
    that start late by design (:data:`LATE`)."""
    labs = view_labels(view)
    X, Y, I, K = [], [], [], []
    for i, r in enumerate(runs):
        y = [lab in r["labels"] for lab in labs]
        y.append(any(y))
        run = restrict(r["run"], view)
        for kk in range(2, 9):
            X.append(features(run, kk))
            Y.append(y)
            I.append(i)
            K.append(kk)
    X, Y, I, K = np.array(X), np.array(Y, dtype=int), np.array(I), np.array(K)
    healthy = np.array([not r["labels"] for r in runs])  # healthy: no failure injected (a shift-only run is not)
    late = np.array([r["cause"] in LATE for r in runs])
    out: dict[str, Any] = {}
    short = np.array([r["corpus"] == "short" for r in runs])
    for model in ("rules", "xgboost_short", "xgboost"):
        P = np.zeros(Y.shape)
        for _, train, test in splits(runs)["lodo"]:
            te = np.isin(I, test) & (K == k)
            if model == "xgboost_short":  # the shipped early model's data: the 12-epoch corpus only
                tr = np.isin(I, train) & short[I]
                P[te] = predict_heads(fit_heads("xgboost", X[tr], Y[tr], I[tr]), X[te])
            elif model == "rules":
                for row in np.where(te)[0]:
                    got = rule_labels(restrict(runs[I[row]]["run"], view), k)
                    P[row, :-1] = [lab in got for lab in labs]
                    P[row, -1] = bool(got & set(labs))
            else:
                tr = np.isin(I, train)
                P[te] = predict_heads(fit_heads("xgboost", X[tr], Y[tr], I[tr]), X[te])
        m = K == k
        out[model] = {"all": scores(P[m], Y[m], labs, healthy[I[m]]),
                      "not_late": scores(P[m & ~late[I]], Y[m & ~late[I]], labs, healthy[I[m & ~late[I]]])}
        for part in out[model].values():
            part["macro_f1_visible"] = visible_macro(part)
        print(f"early k={k} {model}: macro-F1 {out[model]['all']['macro_f1']:.3f} "
              f"(without late causes {out[model]['not_late']['macro_f1']:.3f})", flush=True)
    return out


def evaluate(quick: bool = False, only: tuple[str, ...] = ()) -> dict[str, Any]:
    """Every job (``MODEL/VIEW``) and the early view; ``only``: just those jobs, merged into the
    last diagnosis.json."""
    runs = load_runs()
    res: dict[str, Any] = {
        "runs": len(runs), "corpora": dict(Counter(r["corpus"] for r in runs)),
        "datasets": dict(sorted(Counter(r["dataset"] for r in runs).items())),
        "families": dict(sorted(Counter(r["family"] for r in runs).items())),
        "label_runs": {lab: sum(lab in r["labels"] for r in runs) for lab in LABELS},
        "healthy_runs": sum(not r["labels"] for r in runs),
        "epochs": {"min": min(len(r["run"]["train_loss"]) for r in runs), "max": max(len(r["run"]["train_loss"]) for r in runs)},
        "whole": {}, "date": _dt.date.today().isoformat(),
    }
    jobs = [("rules", "curves"), ("xgboost", "curves"), ("xgboost-noaug", "curves"), ("forest", "curves"), ("logistic", "curves"),
            ("rules", "grad_test"), ("xgboost", "test"), ("xgboost", "grad"), ("xgboost", "grad_test")]
    if quick:
        jobs = jobs[:2]
    if only:
        res = {**json.loads((RESULTS / "diagnosis.json").read_text()), "date": res["date"]}
        jobs = [tuple(j.split("/")) for j in only]
    for model, view in jobs:
        t0 = time.time()
        e = evaluate_whole(runs, model, view, detect=(model == "xgboost" and view in ("curves", "grad_test")))
        e["seconds"] = round(time.time() - t0, 1)
        res["whole"][f"{model}/{view}"] = e
        print(f"whole {model}/{view}: LODO macro-F1 {e['lodo']['macro_f1']:.3f}, overfit F1 "
              f"{e['lodo']['per_label'].get('overfit', {}).get('f1', float('nan')):.3f}, healthy false alarms "
              f"{e['lodo']['false_alarms_healthy']:.1%}; LOAO {e['loao']['macro_f1']:.3f} ({e['seconds']} s)", flush=True)
    if not only:
        res["early_k5"] = evaluate_early(runs)
    return res


# ------------------------------------------------------------------------------------- shipping
def ship(path: Path = WHOLE_MODEL_PATH) -> dict[str, Any]:
    """Train the whole-run model (XGBoost heads per view of :data:`WHOLE_VIEWS`) on every kept run
    of both corpora with their augmented copies, and write it (gzipped JSON, no pickle)."""
    runs = load_runs()
    views, n_rows = {}, 0
    for view in WHOLE_VIEWS:
        X, Y, I = rows(runs, view, COPIES)
        n_rows += len(X)
        heads = {}
        for j, target in enumerate(targets(view)):
            model, (a, b) = fit_calibrated(_xgb, X, Y[:, j], I)
            booster = None if model is None else json.loads(model.get_booster().save_raw("json").decode())
            heads[target] = {"booster": booster, "platt": [a, b]}
        views[view] = heads
    digest = hashlib.sha256(failure_corpus.BANK.read_bytes() + failure_corpus_long.BANK.read_bytes()).hexdigest()
    doc = {"format": "automl-diagnosis", "version": 2, "scope": "whole", "model": "xgboost",
           "created": _dt.date.today().isoformat(), "features": list(WHOLE_FEATURES), "labels": list(LABELS),
           "k_range": [2, 10_000], "threshold": 0.5,
           "training": {"corpora": [str(failure_corpus.BANK.relative_to(ROOT)), str(failure_corpus_long.BANK.relative_to(ROOT))],
                        "corpora_sha256": digest, "runs": len(runs), "rows": n_rows, "copies": COPIES,
                        "retrain": "python benchmarks/whole_run_study.py ship"},
           "views": views}
    path.write_bytes(gzip.compress(json.dumps(doc, separators=(",", ":")).encode(), mtime=0))
    return doc


# ------------------------------------------------------------------------------------- report
def _row(name: str, e: dict[str, Any], proto: str) -> str:
    s = e[proto]
    pl = s["per_label"]
    f = lambda lab: f"{pl[lab]['f1']:.3f}" if lab in pl else "-"  # noqa: E731
    return (f"| {name} | {proto} | {s['macro_f1']:.3f} | {s['macro_f1_visible']:.3f} | {s['micro_f1']:.3f} | {f('overfit')} | "
            f"{s['false_alarms_healthy']:.1%} |")


def report(res: dict[str, Any]) -> str:
    W = res["whole"]
    lines = ["# Failure diagnosis: the whole run, and the early view", "",
             f"Written by `python benchmarks/whole_run_study.py evaluate` ({res['date']}; x86_64, 2 CPUs; seed {SEED}). "
             "Corpora: `python benchmarks/failure_corpus.py record` (12-epoch runs, reference trainer, digits and mnist5k) "
             "and `python benchmarks/failure_corpus_long.py record` (15-100 epochs, a plain PyTorch loop, five optimizers, "
             "four schedules, six datasets: images, sequences, tabular; failures that start late). Truth is the injected "
             "cause, kept only where the full run shows it.", "",
             f"Kept runs: {res['runs']} ({res['corpora']}); {res['healthy_runs']} healthy; {res['epochs']['min']}-"
             f"{res['epochs']['max']} epochs; datasets {res['datasets']}; families {res['families']}; "
             f"runs per label {res['label_runs']}.", "",
             "## Whole run (\"what went wrong in this run?\")", "",
             "Out of fold, a label present at p >= 0.5. `lodo`: leave one dataset out; `loao`: leave one architecture out. "
             "Healthy false alarms: share of the healthy runs (no failure injected) given any label. Views: `curves` = the four curves only; `test` "
             "adds test accuracy (which `shift` needs); `grad` adds gradient norms and zero-gradient shares.", "",
             f"`macro-F1, curve labels`: over {', '.join(CURVE_VISIBLE)} only (the gradient labels leave curves like any "
             "other stuck run).", "",
             "| model / view | protocol | macro-F1 | macro-F1, curve labels | micro-F1 | overfit F1 | healthy false alarms |",
             "|---|---|---:|---:|---:|---:|---:|"]
    for name, e in W.items():
        for proto in ("lodo", "loao"):
            lines.append(_row(name, e, proto))
    best = W.get("xgboost/curves")
    if best:
        lines += ["", "Per held-out dataset, macro-F1, curves only:", "",
                  "| model | " + " | ".join(best["lodo"]["by_group"]) + " |", "|---|" + "---:|" * len(best["lodo"]["by_group"])]
        for name, e in W.items():
            if name.endswith("/curves"):
                lines.append(f"| {name.split('/')[0]} | " + " | ".join(f"{v:.3f}" for v in e["lodo"]["by_group"].values()) + " |")
        for view, rules_key in (("curves", "rules/curves"), ("grad_test", "rules/grad_test")):
            e = W.get(f"xgboost/{view}")
            if not e:
                continue
            lines += ["", f"Per label, view `{view}`, leave-one-dataset-out (F1; rules vs XGBoost) and the model's detection "
                      "epoch (reading the run up to each epoch, the first from which it keeps the label), as a share of the run:", "",
                      "| label | runs | rules F1 | XGBoost F1 | PR-AUC | settled on | median detection (share of run) |",
                      "|---|---:|---:|---:|---:|---:|---:|"]
            rules = W.get(rules_key, {}).get("lodo", {}).get("per_label", {})
            det = e["lodo"].get("detection", {})
            for lab, s in e["lodo"]["per_label"].items():
                d = det.get(lab, {})
                share = d.get("median_share")
                lines.append(f"| {lab} | {s['positives']} | {rules.get(lab, {}).get('f1', float('nan')):.3f} | {s['f1']:.3f} | "
                             f"{s['pr_auc']:.3f} | {d.get('settled', float('nan')):.0%} | {'-' if share is None else f'{share:.2f}'} |")
            lag = det.get("late_diverge_lag")
            if lag:
                lines += ["", f"Late divergences ({lag['runs']} runs): the model settles on `nonfinite` a median {lag['median']:g} "
                          f"epoch(s) after the learning-rate jump (at most {lag['max']}; {lag['before_jump']} before it)."]
        if "xgboost-noaug/curves" in W:
            n = W["xgboost-noaug/curves"]["lodo"]
            lines += ["", f"Without the augmented copies (`xgboost-noaug`), leave one dataset out, curves only: macro-F1 "
                      f"{n['macro_f1']:.3f}, over the curve labels {n['macro_f1_visible']:.3f}, overfit F1 "
                      f"{n['per_label']['overfit']['f1']:.3f}, healthy false alarms {n['false_alarms_healthy']:.1%} (with them: "
                      f"{best['lodo']['macro_f1']:.3f}, {best['lodo']['macro_f1_visible']:.3f}, "
                      f"{best['lodo']['per_label']['overfit']['f1']:.3f}, {best['lodo']['false_alarms_healthy']:.1%})."]
    E = res["early_k5"]
    lines += ["", "## Early view (\"will this run fail?\"), first 5 epochs, curves only, leave one dataset out", "",
              "The early model's recipe (rows at k = 2..8, XGBoost heads) trained on both corpora (`xgboost`: what "
              "`failure_study.py ship` now trains) or on the 12-epoch corpus alone (`xgboost_short`: the early model "
              "before). Late causes "
              f"({', '.join(LATE)}) have not started by epoch 5 in most runs; the second column leaves them out.", "",
              "| model | macro-F1, all runs | curve labels, all runs | macro-F1, without late causes | curve labels, "
              "without late causes | healthy false alarms |", "|---|---:|---:|---:|---:|---:|"]
    for name, e in E.items():
        lines.append(f"| {name} | {e['all']['macro_f1']:.3f} | {e['all']['macro_f1_visible']:.3f} | "
                     f"{e['not_late']['macro_f1']:.3f} | {e['not_late']['macro_f1_visible']:.3f} | "
                     f"{e['all']['false_alarms_healthy']:.1%} |")
    lines += ["", "The early model's comparison on the first corpus alone (views, k = 3, 5, 8, by architecture): "
              "`diagnosis_early.md` (`python benchmarks/failure_study.py evaluate`)."]
    return "\n".join(lines) + "\n"


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    ev = sub.add_parser("evaluate")
    ev.add_argument("--quick", action="store_true", help="rules and XGBoost on the curves only")
    ev.add_argument("--only", nargs="+", default=(), metavar="MODEL/VIEW",
                    help="run just these jobs (e.g. xgboost-noaug/curves) and merge them into diagnosis.json")
    sub.add_parser("ship")
    sub.add_parser("report", help="rewrite diagnosis.md from diagnosis.json")
    args = ap.parse_args(argv)
    if args.cmd == "report":
        (RESULTS / "diagnosis.md").write_text(report(json.loads((RESULTS / "diagnosis.json").read_text())))
        return
    if args.cmd == "ship":
        doc = ship()
        print(f"wrote {WHOLE_MODEL_PATH} ({WHOLE_MODEL_PATH.stat().st_size / 1e6:.1f} MB) from {doc['training']['runs']} runs")
        return
    res = evaluate(args.quick, tuple(args.only))
    (RESULTS / "diagnosis.json").write_text(json.dumps(res, indent=1, default=float))
    (RESULTS / "diagnosis.md").write_text(report(res))
    print(report(res))


if __name__ == "__main__":
    main()
