"""The failure meta-classifier: compare models on the corpus, and ship the chosen one.

    python benchmarks/failure_study.py evaluate     # -> benchmarks/results/diagnosis_early.{md,json}
    python benchmarks/failure_study.py ship         # retrains the shipped model -> automl/models/diagnosis.json.gz

Rows: every kept run of ``benchmarks/banks/failures/corpus.jsonl.gz`` (see ``failure_corpus.py``;
``ship`` adds the long-run corpus, ``failure_corpus_long.py``) cut at k = 2..8 epochs, featurised by :func:`automl.signals.failure.features` of the first k epochs.
Truth: the run's labels (from its injected cause), the same at every k. Each row reads only the
inputs of one view (:data:`automl.diagnosis.VIEWS`: the curves alone, or with test accuracy,
gradients, weights); a model is trained per view. Models, each one binary classifier per label
the view can assess plus one for "any failure" (``healthy = 1 - p(any)``), calibrated by Platt
scaling on out-of-fold predictions (GroupKFold by run inside the training data):

- ``xgboost``: gradient-boosted trees (NaN handled natively);
- ``forest``: scikit-learn random forest;
- ``logistic``: median imputation with missing-value indicators, standardisation, L2 logistic;
- ``ensemble``: the mean of the three calibrated probabilities;
- ``rules``: the SIGNALS.md threshold rules on the same k epochs (probability 0 or 1).

Protocols: GroupKFold (5 folds) by run, and leave-one-architecture-out (train on three families,
test on the fourth). A label is predicted at probability >= 0.5. The model comparison runs on the
full view; the shipped model (XGBoost) is also scored on every other view.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import gzip
import hashlib
import json
import sys
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from automl.bench.bank import iter_bank  # noqa: E402
from benchmarks.failure_corpus import took  # noqa: E402
from automl.diagnosis import GROUPS, MODEL_PATH, VIEWS, restrict, run_from_bank, view_labels  # noqa: E402
from automl.signals.failure import FEATURES, LABELS, features, rule_labels  # noqa: E402

BANK = ROOT / "benchmarks" / "banks" / "failures" / "corpus.jsonl.gz"
RESULTS = ROOT / "benchmarks" / "results"
K_TRAIN = tuple(range(2, 9))
K_EVAL = (3, 5, 8)
SEED = 0


# ------------------------------------------------------------------------------------- data
def load_corpus(path: Path = BANK) -> list[dict[str, Any]]:
    """Kept runs (:func:`failure_corpus.took`), each with its diagnosis input and truth."""
    out = []
    for row in iter_bank(path):
        sig = row.signals
        if not took(row.config["cause"], sig["weak_labels"]):
            continue
        out.append({"id": row.run_id, "cause": row.config["cause"], "family": row.config["family"],
                    "dataset": row.config["dataset"], "run": run_from_bank(row), "labels": set(sig["labels"])})
    return out


def load_long() -> list[dict[str, Any]]:
    """Kept runs of the long-run corpus (``failure_corpus_long.py``), in :func:`load_corpus`'s shape."""
    from benchmarks.failure_corpus_long import BANK as LONG

    return [{"id": row.run_id, "cause": row.config["cause"], "family": row.config["family"],
             "dataset": row.config["dataset"], "run": run_from_bank(row), "labels": set(row.signals["labels"])}
            for row in iter_bank(LONG) if row.signals["took"]]


def targets(view: str) -> tuple[str, ...]:
    """The columns of Y for ``view``: the labels it can assess, then "any" (any of them)."""
    return view_labels(view) + ("any",)


def table(runs: list[dict[str, Any]], ks: tuple[int, ...], view: str = "full",
          mixed: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """X (rows = run x k), Y (one column per target of ``view``), run index and k of each row.

    Every row reads only the inputs of ``view`` (:func:`automl.diagnosis.restrict`). ``mixed``
    (the design the views replaced, kept to measure it) adds a curves-only copy of every row,
    marked by ``k = -k``; evaluation reads rows with ``k > 0`` only."""
    labs = view_labels(view)
    X, Y, idx, kk = [], [], [], []
    for i, r in enumerate(runs):
        if not set(VIEWS[view]) <= {g for g, keys in GROUPS.items() if all(r["run"].get(key) is not None for key in keys)}:
            continue  # the run lacks an input of this view (the long corpus records no weight norms)
        y = [lab in r["labels"] for lab in labs]
        y.append(any(y))
        copies = [(restrict(r["run"], view), 1)] + ([(restrict(r["run"], "curves"), -1)] if mixed else [])
        for k in ks:
            for run, sign in copies:
                X.append(features(run, k))
                Y.append(y)
                idx.append(i)
                kk.append(sign * k)
    return np.array(X), np.array(Y, dtype=int), np.array(idx), np.array(kk)


# ------------------------------------------------------------------------------------- models
def _xgb():
    from xgboost import XGBClassifier

    return XGBClassifier(n_estimators=150, max_depth=4, learning_rate=0.08, subsample=0.8, colsample_bytree=0.8,
                         min_child_weight=2, n_jobs=1, random_state=SEED, eval_metric="logloss", verbosity=0)


def _forest():
    from sklearn.ensemble import RandomForestClassifier

    return RandomForestClassifier(n_estimators=60, min_samples_leaf=3, n_jobs=2, random_state=SEED)


def _logistic():
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(SimpleImputer(strategy="median", add_indicator=True, keep_empty_features=True), StandardScaler(),
                         LogisticRegression(C=0.5, max_iter=3000))


MAKERS: dict[str, Callable[[], Any]] = {"xgboost": _xgb, "forest": _forest, "logistic": _logistic}


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-6, 1 - 1e-6)
    return np.log(p / (1 - p))


def _raw(model: Any, X: np.ndarray) -> np.ndarray:
    return model.predict_proba(X)[:, 1]


def fit_calibrated(make: Callable[[], Any], X: np.ndarray, y: np.ndarray, groups: np.ndarray) -> tuple[Any, tuple[float, float]]:
    """The model fitted on all rows, and Platt parameters (a, b) fitted on its out-of-fold
    predictions (GroupKFold by run, 3 folds): ``p = 1 / (1 + exp(-(a * logit(raw) + b)))``.
    A target with one class only gives ``(None, (0, logit(rate)))``: a constant."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GroupKFold

    rate = float(np.clip(y.mean(), 1e-4, 1 - 1e-4))
    if y.min() == y.max():
        return None, (0.0, float(_logit(np.array([rate]))[0]))
    oof = np.full(len(y), np.nan)
    for tr, te in GroupKFold(n_splits=3).split(X, y, groups):
        if y[tr].min() == y[tr].max():
            oof[te] = y[tr].mean()
            continue
        oof[te] = _raw(make().fit(X[tr], y[tr]), X[te])
    platt = LogisticRegression(C=1e4, max_iter=1000).fit(_logit(oof)[:, None], y)
    return make().fit(X, y), (float(platt.coef_[0, 0]), float(platt.intercept_[0]))


def predict_calibrated(fitted: tuple[Any, tuple[float, float]], X: np.ndarray) -> np.ndarray:
    model, (a, b) = fitted
    z = np.full(len(X), b) + (a * _logit(_raw(model, X)) if model is not None else 0.0)
    return 1.0 / (1.0 + np.exp(-z))


def fit_predict(name: str, Xtr, Ytr, gtr, Xte) -> np.ndarray:
    """Calibrated probabilities (rows of Xte x columns of Ytr) of model ``name`` trained on the given rows."""
    return np.stack([predict_calibrated(fit_calibrated(MAKERS[name], Xtr, Ytr[:, j], gtr), Xte)
                     for j in range(Ytr.shape[1])], axis=1)


def rule_predict(runs: list[dict[str, Any]], idx: np.ndarray, kk: np.ndarray, view: str) -> np.ndarray:
    labs = view_labels(view)
    out = np.zeros((len(idx), len(labs) + 1))
    for row, (i, k) in enumerate(zip(idx, kk)):
        got = rule_labels(restrict(runs[i]["run"], view), int(k))
        out[row, :-1] = [lab in got for lab in labs]
        out[row, -1] = bool(got & set(labs))
    return out


# ------------------------------------------------------------------------------------- metrics
def scores(P: np.ndarray, Y: np.ndarray, labs: tuple[str, ...], healthy: np.ndarray) -> dict[str, Any]:
    """Per-label F1 and PR-AUC, macro/micro-F1 over the labels with positives, and the share of
    ``healthy`` rows (runs with no label at all) given any label."""
    from sklearn.metrics import average_precision_score, f1_score

    pred = P >= 0.5
    per = {}
    for j, lab in enumerate(labs):
        if Y[:, j].sum() == 0:
            continue
        per[lab] = {"f1": float(f1_score(Y[:, j], pred[:, j], zero_division=0)),
                    "pr_auc": float(average_precision_score(Y[:, j], P[:, j])),
                    "positives": int(Y[:, j].sum())}
    cols = [j for j, lab in enumerate(labs) if lab in per]
    return {
        "macro_f1": float(np.mean([per[labs[j]]["f1"] for j in cols])),
        "micro_f1": float(f1_score(Y[:, cols], pred[:, cols], average="micro", zero_division=0)),
        "false_alarms_healthy": float(pred[healthy][:, : len(labs)].any(axis=1).mean()) if healthy.any() else None,
        "healthy_runs": int(healthy.sum()),
        "per_label": per,
    }


def _cv(runs, name: str, splits, tab, view: str) -> np.ndarray:
    """Out-of-fold probabilities for every row of ``tab`` with k > 0."""
    Xall, Yall, Iall, Kall = tab
    P = np.zeros(Yall.shape)
    for tr_runs, te_runs in splits:
        tr = np.isin(Iall, tr_runs)
        te = np.isin(Iall, te_runs) & (Kall > 0)
        if name == "rules":
            P[te] = rule_predict(runs, Iall[te], Kall[te], view)
        else:
            P[te] = fit_predict(name, Xall[tr], Yall[tr], Iall[tr], Xall[te])
    return P


def detection_epochs(P, Y, I, K, labs) -> dict[str, float]:
    """Per label: median over its positive runs of the first k (2..8) at which it is predicted;
    and the share of positive runs never detected by k = 8."""
    out = {}
    for j, lab in enumerate(labs):
        firsts, missed = [], 0
        for i in np.unique(I[Y[:, j] == 1]):
            rows = (I == i) & (K > 0)
            hit = K[rows][P[rows, j] >= 0.5]
            if len(hit):
                firsts.append(int(hit.min()))
            else:
                missed += 1
        if firsts or missed:
            out[lab] = {"median_epoch": float(np.median(firsts)) if firsts else None,
                        "missed_by_8": missed / (len(firsts) + missed)}
    return out


def confusion(P, Y, labs) -> dict[str, dict[str, float]]:
    """For runs with true label A and without B: the share predicted B (the top confusions)."""
    pred = P >= 0.5
    out = {}
    for a, la in enumerate(labs):
        has = Y[:, a] == 1
        if not has.any():
            continue
        row = {}
        for b, lb in enumerate(labs):
            m = has & (Y[:, b] == 0)
            if m.any() and pred[m, b].mean() >= 0.05:
                row[lb] = float(pred[m, b].mean())
        out[la] = row
    return out


def _splits(runs):
    from sklearn.model_selection import GroupKFold

    ids = np.arange(len(runs))
    families = np.array([str(r["family"]) for r in runs], dtype=object)
    kfold = [(ids[tr], ids[te]) for tr, te in GroupKFold(n_splits=5).split(ids, groups=ids)]
    loao = [(ids[families != f], ids[families == f]) for f in sorted(set(families))]
    return ids, families, {"groupkfold": kfold, "loao": loao}


def _entry(P, tab, labs, healthy_run, ids, families, proto, entry) -> None:
    _, Y, I, K = tab
    entry[proto] = {f"k{k}": scores(P[K == k], Y[K == k], labs, healthy_run[I[K == k]]) for k in K_EVAL}
    if proto == "groupkfold":
        entry["detection"] = detection_epochs(P, Y, I, K, labs)
        entry["confusion_k5"] = confusion(P[K == 5], Y[K == 5], labs)
    else:
        entry["loao_by_family_k5"] = {}
        for f in sorted(set(families)):
            m = (K == 5) & np.isin(I, ids[families == f])
            entry["loao_by_family_k5"][f] = scores(P[m], Y[m], labs, healthy_run[I[m]])["macro_f1"]


def evaluate(models: tuple[str, ...] = ("rules", "logistic", "forest", "xgboost", "ensemble"),
             views: tuple[str, ...] = tuple(v for v in VIEWS if v != "full"), mixed: bool = True) -> dict[str, Any]:
    """The model comparison on the full view; the shipped model (XGBoost) on every other view; and,
    with ``mixed``, XGBoost trained on full rows plus curves-only copies (the design views replaced)."""
    runs = load_corpus()
    ids, families, splits = _splits(runs)
    healthy_run = np.array([not r["labels"] for r in runs])
    out: dict[str, Any] = {"runs": len(runs), "families": {f: int((families == f).sum()) for f in sorted(set(families))},
                           "label_runs": {lab: sum(lab in r["labels"] for r in runs) for lab in LABELS},
                           "healthy_runs": int(healthy_run.sum()), "models": {}, "views": {}}
    tab = table(runs, K_TRAIN, "full")
    labs = view_labels("full")
    cache: dict[tuple[str, str], np.ndarray] = {}
    for name in models:
        t0 = time.time()
        entry: dict[str, Any] = {}
        for proto, sp in splits.items():
            if name == "ensemble":  # the mean of the three learned models' calibrated probabilities
                P = np.mean([cache[m, proto] if (m, proto) in cache else _cv(runs, m, sp, tab, "full") for m in MAKERS], axis=0)
            else:
                P = cache[name, proto] = _cv(runs, name, sp, tab, "full")
            _entry(P, tab, labs, healthy_run, ids, families, proto, entry)
        entry["seconds"] = round(time.time() - t0, 1)
        out["models"][name] = entry
        print(f"{name}: k5 macro-F1 {entry['groupkfold']['k5']['macro_f1']:.3f} (LOAO {entry['loao']['k5']['macro_f1']:.3f})"
              f" in {entry['seconds']} s", flush=True)
    jobs = [(v, v, False) for v in views] + ([("mixed", "full", True)] if mixed else [])
    for key, view, mix in jobs:
        t0 = time.time()
        vtab = table(runs, K_TRAIN, view, mixed=mix)
        entry = {"labels": list(view_labels(view))}
        for proto, sp in splits.items():
            _entry(_cv(runs, "xgboost", sp, vtab, view), vtab, view_labels(view), healthy_run, ids, families, proto, entry)
        entry["seconds"] = round(time.time() - t0, 1)
        out["views"][key] = entry
        print(f"view {key}: k5 macro-F1 {entry['groupkfold']['k5']['macro_f1']:.3f} (LOAO {entry['loao']['k5']['macro_f1']:.3f})"
              f" in {entry['seconds']} s", flush=True)
    return out


# ------------------------------------------------------------------------------------- shipping
def ship(name: str = "xgboost", path: Path = MODEL_PATH, long: bool = True) -> dict[str, Any]:
    """Retrain model ``name`` (only ``xgboost`` is shippable as JSON) on the corpus and, with
    ``long``, the long-run corpus's first 8 epochs (leave one dataset out at k = 5 it lifts macro-F1
    from the curves from 0.734 to 0.770: benchmarks/results/diagnosis.md), one set of heads per
    view (a view's heads learn from the runs that have its inputs), and write it (gzipped JSON)."""
    if name != "xgboost":
        raise ValueError(f"only 'xgboost' is shipped (its trees have a JSON format), not {name!r}.")
    runs = load_corpus() + (load_long() if long else [])
    views, rows = {}, 0
    for view in VIEWS:
        X, Y, I, _ = table(runs, K_TRAIN, view)
        rows += len(X)
        heads = {}
        for j, target in enumerate(targets(view)):
            model, (a, b) = fit_calibrated(_xgb, X, Y[:, j], I)
            booster = None if model is None else json.loads(model.get_booster().save_raw("json").decode())
            heads[target] = {"booster": booster, "platt": [a, b]}
        views[view] = heads
    from benchmarks.failure_corpus_long import BANK as LONG

    corpora = [BANK] + ([LONG] if long else [])
    digest = hashlib.sha256(b"".join(c.read_bytes() for c in corpora)).hexdigest()
    doc = {"format": "automl-diagnosis", "version": 2, "model": "xgboost",
           "created": _dt.date.today().isoformat(), "features": list(FEATURES), "labels": list(LABELS),
           "k_range": [min(K_TRAIN), max(K_TRAIN)], "threshold": 0.5,
           "training": {"corpora": [str(c.relative_to(ROOT)) for c in corpora], "corpora_sha256": digest, "runs": len(runs),
                        "rows": rows, "retrain": "python benchmarks/failure_study.py ship"},
           "views": views}
    path.write_bytes(gzip.compress(json.dumps(doc, separators=(",", ":")).encode(), mtime=0))
    return doc


# ------------------------------------------------------------------------------------- report
def _cells(e: dict[str, Any], proto: str) -> str:
    return " | ".join(f"{e[proto][f'k{k}']['macro_f1']:.3f} / {e[proto][f'k{k}']['micro_f1']:.3f} / "
                      f"{e[proto][f'k{k}']['false_alarms_healthy']:.1%}" for k in K_EVAL)


def report(res: dict[str, Any]) -> str:
    m = res["models"]
    lines = ["# Failure meta-classifier (issue 6)", "",
             "Written by `python benchmarks/failure_study.py evaluate`; the corpus by "
             "`python benchmarks/failure_corpus.py record` (see its docstring for causes and injections).", "",
             f"Corpus: {res['runs']} kept runs ({res['healthy_runs']} healthy); families {res['families']}; "
             f"runs per label {res['label_runs']}.", "",
             "Cells: macro-F1 / micro-F1 / false alarms on healthy runs (share of healthy runs given any label), "
             "out of fold, a label predicted at p >= 0.5.", "",
             "## Model comparison, full view (curves, test accuracy, gradients, weights)", "",
             "| model | protocol | k=3 | k=5 | k=8 |", "|---|---|---|---|---|"]
    for name, e in m.items():
        for proto in ("groupkfold", "loao"):
            lines.append(f"| {name} | {proto} | {_cells(e, proto)} |")
    lines += ["", "Leave-one-architecture-out macro-F1 at k=5, per held-out family:", "",
              "| model | " + " | ".join(res["families"]) + " |", "|---|" + "---|" * len(res["families"])]
    for name, e in m.items():
        lines.append(f"| {name} | " + " | ".join(f"{e['loao_by_family_k5'][f]:.3f}" for f in res["families"]) + " |")
    if res.get("views"):
        lines += ["", "## The shipped model (XGBoost) per view: what it does with fewer inputs", "",
                  "A run is read by the largest view whose inputs it has (`automl.diagnosis.VIEWS`); "
                  "views without `test_acc` do not assess `shift` (its macro-F1 is over the other labels). "
                  "`mixed` is one XGBoost model trained on full rows plus curves-only copies, scored on the full rows: "
                  "the design the views replaced.", "",
                  "| view | protocol | k=3 | k=5 | k=8 |", "|---|---|---|---|---|"]
        for key, e in res["views"].items():
            for proto in ("groupkfold", "loao"):
                lines.append(f"| {key} | {proto} | {_cells(e, proto)} |")
        if "xgboost" in m:
            for proto in ("groupkfold", "loao"):
                lines.append(f"| full | {proto} | {_cells(m['xgboost'], proto)} |")
    best = res.get("shipped", "xgboost")
    e = m[best]
    lines += ["", f"## Per label, shipped model ({best}, full view), GroupKFold by run", "",
              "| label | runs | F1 k=3 | F1 k=5 | F1 k=8 | PR-AUC k=5 | median detection epoch | missed by k=8 |",
              "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for lab in LABELS:
        if lab not in e["groupkfold"]["k5"]["per_label"]:
            continue
        pl = [e["groupkfold"][f"k{k}"]["per_label"][lab] for k in K_EVAL]
        det = e["detection"].get(lab, {})
        lines.append(f"| {lab} | {res['label_runs'][lab]} | " + " | ".join(f"{p['f1']:.3f}" for p in pl)
                     + f" | {pl[1]['pr_auc']:.3f} | {det.get('median_epoch')} | {det.get('missed_by_8', 0):.0%} |")
    lines += ["", "Confusions at k=5 (runs with the row's label and without the column's, predicted the column; >= 5% shown):", ""]
    for lab, row in e["confusion_k5"].items():
        if row:
            lines.append(f"- {lab}: " + ", ".join(f"{k} {v:.0%}" for k, v in sorted(row.items(), key=lambda kv: -kv[1])))
    return "\n".join(lines) + "\n"


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    ev = sub.add_parser("evaluate")
    ev.add_argument("--models", nargs="+", default=["rules", "logistic", "forest", "xgboost", "ensemble"])
    ev.add_argument("--views", nargs="*", default=[v for v in VIEWS if v != "full"],
                    help="views to score the shipped model on besides the full one")
    ev.add_argument("--no-mixed", action="store_true", help="skip the mixed-input baseline")
    sub.add_parser("ship")
    sub.add_parser("report", help="rewrite diagnosis_early.md from diagnosis_early.json")
    args = ap.parse_args(argv)
    if args.cmd == "report":
        (RESULTS / "diagnosis_early.md").write_text(report(json.loads((RESULTS / "diagnosis_early.json").read_text())))
        return
    if args.cmd == "ship":
        doc = ship()
        print(f"wrote {MODEL_PATH} ({MODEL_PATH.stat().st_size / 1e6:.1f} MB) from {doc['training']['runs']} runs")
        return
    res = evaluate(tuple(args.models), tuple(args.views), not args.no_mixed)
    res["shipped"] = "xgboost"
    (RESULTS / "diagnosis_early.json").write_text(json.dumps(res, indent=1))
    (RESULTS / "diagnosis_early.md").write_text(report(res))
    print(report(res))


if __name__ == "__main__":
    main()
