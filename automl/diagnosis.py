"""Failure diagnosis of a training run: ``automl.diagnose(records_or_curves) -> Diagnosis``.

Two shipped meta-classifiers (XGBoost trees in their JSON format, Platt calibration, the feature
schema and version; no pickle) give each failure label of :data:`automl.signals.failure.LABELS` a
calibrated probability:

- the whole-run model (``automl/models/diagnosis_whole.json.gz``), the default: what went wrong in
  this run? It reads every epoch of a run of any length, and places each label it finds at the
  epoch it rests on (:func:`onsets`). Trained on both failure corpora (``benchmarks/failure_corpus.py``,
  ``benchmarks/failure_corpus_long.py``: real runs with injected causes, 12 to 100 epochs, images,
  sequences and tabular data); ``python benchmarks/whole_run_study.py ship`` retrains it and
  ``benchmarks/results/diagnosis.md`` says how well it does on datasets it never saw;
- the early model (``automl/models/diagnosis.json.gz``): will this run fail? It reads the first k
  (2-8) epochs, as a pruner sees them; ``python benchmarks/failure_study.py ship`` retrains it,
  ``benchmarks/results/diagnosis_early.md`` compares it with other models per view.

Example:
    >>> d = diagnose({"train_loss": [2.30, 2.30, 2.30, 2.30, 2.30], "val_loss": [2.30, 2.30, 2.30, 2.30, 2.30],
    ...               "train_acc": [0.10, 0.11, 0.10, 0.10, 0.11], "val_acc": [0.10, 0.10, 0.10, 0.10, 0.10]})
    >>> d.healthy < 0.5, max(d.labels, key=d.labels.get) in ("underfit", "plateau")
    (True, True)
"""

from __future__ import annotations

import functools
import gzip
import json
import math
import numbers
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Optional

import numpy as np
from pydantic import BaseModel, Field

from automl.signals.failure import (CURVE_KEYS, FEATURES, LABELS, OPTIONAL_KEYS, RULES, WHOLE_FEATURES, as_arrays,
                                    features, rule_labels, whole_features)
from automl.trees import Trees
from automl.validation import check_optional_positive_int, check_positive_int, real_or_none

MODEL_PATH = Path(__file__).resolve().parent / "models" / "diagnosis.json.gz"
WHOLE_MODEL_PATH = Path(__file__).resolve().parent / "models" / "diagnosis_whole.json.gz"
__all__ = ["Diagnosis", "diagnose", "DiagnosisModel", "load_model", "load_whole_model", "validate_curves", "run_from_bank",
           "run_from_records", "MODEL_PATH", "WHOLE_MODEL_PATH", "GROUPS", "VIEWS", "WHOLE_VIEWS", "view_of", "restrict",
           "view_labels", "rule_onsets", "onsets", "first_nonfinite_loss", "NONFINITE_SEEN"]

#: Optional inputs, in groups that a model view reads all or none of.
GROUPS: dict[str, tuple[str, ...]] = {
    "test": ("test_acc",),
    "grad": ("grad_norm_first", "grad_norm_last", "zero_grad_frac"),
    "weights": ("weight_norm", "n_layers"),
}
#: Model views: the groups each reads besides the four curves (and ``n_classes``). A run is read by
#: the largest view whose groups it has in full (:func:`view_of`); the shipped model has one set of
#: heads per view, each trained on exactly those inputs, so a missing input is never a surprise to
#: the trees (one model over full rows and curves-only copies scored 0.891 macro-F1 at k=5 on the
#: full rows, against 0.931 for the full view alone: benchmarks/results/diagnosis_early.md).
VIEWS: dict[str, tuple[str, ...]] = {
    "curves": (), "test": ("test",), "grad": ("grad",), "grad_test": ("grad", "test"),
    "grad_weights": ("grad", "weights"), "full": ("grad", "weights", "test"),
}
#: The whole-run model's views: its long-run corpus records no weight norms, so a run that has
#: them is read without them (by the largest of these its inputs allow).
WHOLE_VIEWS = ("curves", "test", "grad", "grad_test")
#: Labels that only a view with the given group can assess (``shift`` compares val with test accuracy).
NEEDS = {"shift": "test"}


def view_of(run: Mapping[str, Any], views: Sequence[str] = tuple(VIEWS)) -> str:
    """The largest view of ``views`` whose input groups ``run`` has in full."""
    have = {g for g, keys in GROUPS.items() if all(run.get(key) is not None for key in keys)}
    return max((v for v in views if set(VIEWS[v]) <= have), key=lambda v: len(VIEWS[v]))


def restrict(run: Mapping[str, Any], view: str) -> dict[str, Any]:
    """``run`` with only the inputs ``view`` reads (the curves, ``n_classes`` and its groups)."""
    keep = set(CURVE_KEYS) | {"n_classes"} | {key for g in VIEWS[view] for key in GROUPS[g]}
    return {key: v for key, v in run.items() if key in keep}


def view_labels(view: str) -> tuple[str, ...]:
    """The labels ``view`` can assess."""
    return tuple(lab for lab in LABELS if lab not in NEEDS or NEEDS[lab] in VIEWS[view])


class Diagnosis(BaseModel):
    """What the meta-classifier says about a run.

    Attributes:
        labels: calibrated probability of every failure label the given inputs can show (all of
            ``LABELS`` but ``shift`` when no ``test_acc`` was given: see ``unassessed``).
        healthy: probability that the run has none of them (the "any failure" head's, at most
            one minus the likeliest label's).
        reasons: one readable sentence per label at or above ``threshold``, with the numbers
            behind it; for a healthy run, the label that came closest; then what was not assessed.
        scope: ``"whole"`` (what went wrong in the run: the whole-run model read every epoch) or
            ``"early"`` (will it fail: the early model read the first ``epochs``).
        epochs: how many epochs the model read (all of them for ``"whole"``).
        run_epochs: how many epochs the run has.
        onsets: for each label present (whole run), the epoch it rests on: reading the run up to
            each epoch, the first from which the model keeps the label to the end.
        rule_onsets: the labels the threshold rules (:data:`automl.signals.failure.RULES`) give
            the whole run, each with the first epoch by which its rule holds.
        threshold: the probability at which a label counts as present.
        view: the model view that read the run (:data:`VIEWS`), from the inputs it has.
        unassessed: labels the inputs cannot show (``shift`` without ``test_acc``).
    """

    labels: dict[str, float]
    healthy: float
    reasons: list[str] = Field(default_factory=list)
    scope: str = "whole"
    epochs: int = 0
    run_epochs: int = 0
    onsets: dict[str, int] = Field(default_factory=dict)
    rule_onsets: dict[str, int] = Field(default_factory=dict)
    threshold: float = 0.5
    view: str = "full"
    unassessed: list[str] = Field(default_factory=list)

    @property
    def present(self) -> list[str]:
        """Labels at or above the threshold, most probable first."""
        return sorted((k for k, p in self.labels.items() if p >= self.threshold), key=lambda k: -self.labels[k])

    def public(self) -> dict[str, Any]:
        """The JSON object of ``automl diagnose --json``: labels, healthy, reasons, the scope, the
        epochs the model read and the run's, each present label's onset epoch, and the whole run's
        rule labels with theirs."""
        return {"labels": self.labels, "healthy": self.healthy, "reasons": self.reasons, "scope": self.scope,
                "epochs": self.epochs, "run_epochs": self.run_epochs, "onsets": self.onsets,
                "rule_onsets": self.rule_onsets}


class DiagnosisModel:
    """A shipped classifier: per view, one calibrated XGBoost head per label it can assess plus
    one for "any failure". ``scope`` ``"early"`` (``diagnosis.json.gz``: the first k epochs,
    :func:`automl.signals.failure.features`, views :data:`VIEWS`) or ``"whole"``
    (``diagnosis_whole.json.gz``: a whole run of any length, :func:`whole_features`, views
    :data:`WHOLE_VIEWS`)."""

    def __init__(self, doc: Mapping[str, Any]) -> None:
        if doc.get("format") != "automl-diagnosis" or doc.get("version") != 2:
            raise ValueError(f"not a version-2 automl-diagnosis model (format={doc.get('format')!r}, "
                             f"version={doc.get('version')!r}); retrain it with `python benchmarks/failure_study.py ship`.")
        self.scope = str(doc.get("scope", "early"))
        if self.scope not in ("early", "whole"):
            raise ValueError(f"unknown model scope {self.scope!r}; expected 'early' or 'whole'.")
        schema, views, retrain = ((FEATURES, tuple(VIEWS), "failure_study.py ship") if self.scope == "early"
                                  else (WHOLE_FEATURES, WHOLE_VIEWS, "whole_run_study.py ship"))
        if list(doc["features"]) != list(schema):
            raise ValueError(f"the {self.scope} model's feature schema differs from this package's features: retrain it "
                             f"with `python benchmarks/{retrain}`.")
        missing = sorted(set(views) - set(doc["views"]))
        if missing:
            raise ValueError(f"the model lacks view(s) {missing}; expected {list(views)}.")
        self.views = views
        self.doc = doc
        self.threshold = float(doc.get("threshold", 0.5))
        self.k_range = tuple(doc["k_range"])
        self._views: dict[str, tuple[list[str], Optional[Trees], np.ndarray, np.ndarray, np.ndarray]] = {}

    def heads(self, view: str) -> tuple[list[str], Optional[Trees], np.ndarray, np.ndarray, np.ndarray]:
        """The view's heads, built on first use: (targets, their boosters' trees, which targets have
        a booster, Platt a, Platt b). A head without a booster (a label never seen in training) is
        its Platt intercept alone."""
        if view not in self.doc["views"]:
            raise ValueError(f"unknown view {view!r}; expected one of {list(self.doc['views'])}.")
        if view not in self._views:
            heads = self.doc["views"][view]
            targets = list(heads)
            boosted = np.array([heads[t]["booster"] is not None for t in targets])
            trees = Trees([heads[t]["booster"] for t in targets if heads[t]["booster"] is not None]) if boosted.any() else None
            a = np.array([float(heads[t]["platt"][0]) for t in targets])
            b = np.array([float(heads[t]["platt"][1]) for t in targets])
            self._views[view] = (targets, trees, boosted, a, b)
        return self._views[view]

    def predict(self, X: np.ndarray, view: str = "full") -> dict[str, np.ndarray]:
        """Calibrated probabilities per target (the view's labels and ``"any"``) for rows of
        features computed from runs restricted to ``view`` (:func:`restrict`). The trees are walked
        in numpy (:class:`automl.trees.Trees`): no XGBoost import, no thread pool, a few ms a row."""
        targets, trees, boosted, a, b = self.heads(view)
        X = np.atleast_2d(np.asarray(X, dtype=float))
        z = np.broadcast_to(b, (len(X), len(targets))).copy()
        if trees is not None:
            # the booster's probability, clipped as before, then Platt scaling of its log-odds
            p = np.clip(1.0 / (1.0 + np.exp(-trees.predict(X))), 1e-6, 1 - 1e-6)
            z[:, boosted] += a[boosted] * np.log(p / (1 - p))
        probs = 1.0 / (1.0 + np.exp(-z))
        return {target: probs[:, i] for i, target in enumerate(targets)}


@functools.lru_cache(maxsize=4)
def _load(path: str) -> DiagnosisModel:
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"no diagnosis model at {path}; build it with `python benchmarks/failure_study.py ship`.")
    raw = p.read_bytes()
    return DiagnosisModel(json.loads(gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw))


def load_model(path: Optional[str | Path] = None) -> DiagnosisModel:
    """The shipped early model (cached), or the one at ``path`` (JSON, gzipped or not)."""
    return _load(str(path or MODEL_PATH))


def load_whole_model(path: Optional[str | Path] = None) -> DiagnosisModel:
    """The shipped whole-run model (cached), or the one at ``path``."""
    return _load(str(path or WHOLE_MODEL_PATH))


def _total_norm(norms: Sequence[Optional[float]]) -> float:
    vals = [math.nan if v is None else float(v) for v in norms]
    return math.sqrt(sum(v * v for v in vals)) if vals else math.nan


def _mean(vals: Sequence[Optional[float]]) -> float:
    finite = [float(v) for v in vals if v is not None and math.isfinite(float(v))]
    return sum(finite) / len(finite) if finite else math.nan


def run_from_bank(row: Any) -> dict[str, Any]:
    """The diagnosis input of a curve-bank row (``automl.bench.bank.Run``) recorded by the probe."""
    sig = row.signals
    grads = sig.get("grad_norm")
    run: dict[str, Any] = {key: list(row.curves[key]) for key in CURVE_KEYS}
    if "test_acc" in row.curves:
        run["test_acc"] = list(row.curves["test_acc"])
    if grads:
        run["grad_norm_first"] = [g[0] if g else math.nan for g in grads]
        run["grad_norm_last"] = [g[-1] if g else math.nan for g in grads]
        run["n_layers"] = len(grads[0])
    if sig.get("zero_grad_frac"):
        run["zero_grad_frac"] = [_mean(z) for z in sig["zero_grad_frac"]]
    if sig.get("weight_norm"):
        run["weight_norm"] = [_total_norm(w) for w in sig["weight_norm"]]
    if sig.get("n_classes"):
        run["n_classes"] = int(sig["n_classes"])
    return run


def run_from_records(records: Sequence[Any], n_classes: Optional[int] = None) -> dict[str, Any]:
    """The diagnosis input of a trial's ``EpochRecord`` list (objects or ``compact()`` dicts), or of
    flat per-epoch dicts with ``grad_norm_first``/``grad_norm_last``/``zero_grad_frac`` (and
    ``weight_norm``, ``n_layers``) instead of ``layers``, as ``automl.reporting.tune_metrics``
    reports them to Ray Tune."""
    recs = [r if isinstance(r, Mapping) else r.compact() for r in records]
    get = lambda r, key: (math.nan if r.get(key) is None else float(r[key])) if key in r else math.nan  # noqa: E731
    run: dict[str, Any] = {key: [get(r, key) for r in recs] for key in CURVE_KEYS}
    if any("test_acc" in r for r in recs):
        run["test_acc"] = [get(r, "test_acc") for r in recs]
    layers = [r.get("layers") or [] for r in recs]
    if all(layers):
        norm = lambda l: math.nan if l.get("grad_norm") is None else float(l["grad_norm"])  # noqa: E731
        run["grad_norm_first"] = [norm(ls[0]) for ls in layers]
        run["grad_norm_last"] = [norm(ls[-1]) for ls in layers]
        run["zero_grad_frac"] = [_mean([l.get("zero_grad_frac") for l in ls]) for ls in layers]
        run["weight_norm"] = [_total_norm([l.get("weight_norm") for l in ls]) for ls in layers]
        run["n_layers"] = len(layers[0])
    elif all(key in r for r in recs for key in GROUPS["grad"]):  # flattened, as Ray Tune results carry them
        for key in GROUPS["grad"]:
            run[key] = [get(r, key) for r in recs]
        if all("weight_norm" in r and "n_layers" in r for r in recs):
            run["weight_norm"] = [get(r, "weight_norm") for r in recs]
            run["n_layers"] = int(recs[0]["n_layers"])
    if n_classes:
        run["n_classes"] = int(n_classes)
    return run


#: The largest finite float32: a curve value beyond it cannot come from float32 training.
FLOAT32_MAX = 3.4028234663852886e38


# ----------------------------------------------------------------------------------- input checks
#: Inputs that are fractions (accuracies, the share of zero gradients).
FRACTION_KEYS = frozenset({"train_acc", "val_acc", "test_acc", "zero_grad_frac"})
#: The most classes a task may state (a chance level below one in a million says nothing more).
MAX_CLASSES = 10**6


def _check_classes(n: Optional[int]) -> Optional[int]:
    if n is not None and n > MAX_CLASSES:
        shown = str(n) if n < 10**20 else f"an integer of {len(str(n))} digits"
        raise ValueError(f"n_classes: {shown}; expected at most {MAX_CLASSES} classes.")
    return n


def _fraction(where: str, x: Any) -> float:
    """:func:`_number`, and a finite value within [0, 1] (an accuracy or a share, not a percent)."""
    value = _number(where, x)
    if not math.isnan(value) and not -1e-3 <= value <= 1.0 + 1e-3:  # float16 rounding is within 1e-3
        raise ValueError(f"{where}: {value:g} is not a fraction in [0, 1] (give accuracies and shares as fractions, "
                         "not percents).")
    return value


def _number(where: str, x: Any) -> float:
    """``x`` as a float (``null`` as ``nan``), or a ``ValueError`` that names ``where``: a value
    must be a real number (numpy's included, not a bool) within float32's range, or non-finite."""
    if x is None:
        return math.nan
    value = real_or_none(x)
    if value is None:
        raise ValueError(f"{where}: {x!r:.40} is not a number (null marks a non-finite value).")
    if (math.isfinite(value) or isinstance(x, numbers.Integral)) and not abs(value) <= FLOAT32_MAX:
        shown = f"an integer of {len(str(abs(int(x))))} digits" if isinstance(x, numbers.Integral) else f"{value:.3g}"
        raise ValueError(f"{where}: {shown} is beyond float32's range (±3.4e38), which no float32 training reports; "
                         "use null for a non-finite value.")
    return value


def _check_record_values(i: int, r: Mapping[str, Any]) -> None:
    """Every number of record ``i`` (its curves, flat layer statistics and ``layers``)."""
    for key, x in r.items():
        if key in CURVE_KEYS or key in ("test_acc", "weight_norm") or key in GROUPS["grad"]:
            (_fraction if key in FRACTION_KEYS else _number)(f"record {i} (epoch {i + 1}), key {key!r}", x)
    if "n_layers" in r:
        check_positive_int(f"record {i} n_layers", r["n_layers"], minimum=1)
    layers = r.get("layers")
    if layers is None:
        return
    if isinstance(layers, (str, bytes, Mapping)) or not isinstance(layers, Sequence):
        raise ValueError(f"record {i} (epoch {i + 1}), key 'layers': expected a list of per-layer objects, "
                         f"got {type(layers).__name__}.")
    for j, layer in enumerate(layers):
        if not isinstance(layer, Mapping):
            raise ValueError(f"record {i} (epoch {i + 1}), layers[{j}]: expected an object with grad_norm, "
                             f"zero_grad_frac, weight_norm, got {type(layer).__name__} {layer!r:.40}.")
        for key in ("grad_norm", "zero_grad_frac", "weight_norm"):
            if key in layer:
                check = _fraction if key == "zero_grad_frac" else _number
                check(f"record {i} (epoch {i + 1}), layers[{j}].{key}", layer[key])


def _record_keys() -> frozenset[str]:
    """The keys an epoch record may carry: ``EpochRecord``'s fields (as ``compact()`` writes them)
    and the flat layer statistics of ``automl.records.tune_metrics``."""
    from automl.records import EpochRecord

    return frozenset(EpochRecord.model_fields) | set(GROUPS["grad"]) | {"weight_norm", "n_layers"}


def validate_records(records: Sequence[Any]) -> list[Any]:
    """Check a list of epoch records (``EpochRecord`` objects, or their ``compact()`` dicts as JSON)
    and return it; anything else raises ``ValueError`` naming the record and the key.

    Example:
        >>> validate_records([{"epoch": 1, "loss": 0.3}])
        Traceback (most recent call last):
        ...
        ValueError: record 0 has unknown key(s) ['loss']; an epoch record has train_loss, val_loss, train_acc, val_acc and optionally ...
    """
    if len(records) == 0:
        raise ValueError("the list of epoch records is empty; give one record per epoch (at least 2), e.g. "
                         '[{"epoch": 1, "train_loss": 2.1, "val_loss": 2.2, "train_acc": 0.3, "val_acc": 0.3}, ...], '
                         "or an object of per-epoch lists.")
    allowed = _record_keys() | {key for key in CURVE_KEYS}
    for i, r in enumerate(records):
        if not isinstance(r, Mapping) and not hasattr(r, "compact"):
            raise ValueError(f"record {i} is {type(r).__name__} {r!r:.40}; each record must be an object with the epoch's "
                             f"{', '.join(CURVE_KEYS)} (or give an object of per-epoch lists instead of a list).")
        if isinstance(r, Mapping):
            unknown = sorted(str(key) for key in r if key not in allowed and not str(key).startswith("dynamics_"))
            if unknown:
                raise ValueError(f"record {i} has unknown key(s) {unknown}; an epoch record has {', '.join(CURVE_KEYS)} and "
                                 f"optionally {', '.join(sorted(allowed - set(CURVE_KEYS)))}.")
            _check_record_values(i, r)
    dicts = [r if isinstance(r, Mapping) else r.compact() for r in records]
    absent = [key for key in CURVE_KEYS if not any(key in r for r in dicts)]
    if absent:
        raise ValueError(f"no record has {', '.join(repr(k) for k in absent)}; each epoch record needs {', '.join(CURVE_KEYS)} "
                         "(null where a value was not finite).")
    return list(records)


def validate_curves(curves: Any) -> dict[str, Any]:
    """Check a curves object (the JSON of ``automl diagnose``) and return it as float lists.

    Required: ``train_loss``, ``val_loss``, ``train_acc``, ``val_acc``; optional per-epoch lists
    ``test_acc``, ``grad_norm_first``, ``grad_norm_last``, ``zero_grad_frac``, ``weight_norm``, and
    the integers ``n_layers``, ``n_classes``. Every list has the same length, at least 2; ``null``,
    ``NaN`` and ``inf`` are allowed (a diverged run). Anything else raises ``ValueError`` naming the field.
    """
    if not isinstance(curves, Mapping):
        raise ValueError(f"curves must be a JSON object of per-epoch lists, but got {type(curves).__name__}.")
    allowed = set(CURVE_KEYS) | set(OPTIONAL_KEYS) | {"n_layers", "n_classes"}
    unknown = sorted(set(curves) - allowed)
    if unknown:
        raise ValueError(f"unknown field(s) {unknown}; expected {list(CURVE_KEYS)} and optionally "
                         f"{list(OPTIONAL_KEYS) + ['n_layers', 'n_classes']}.")
    out: dict[str, Any] = {}
    length = None
    for key in CURVE_KEYS + tuple(k for k in OPTIONAL_KEYS if k in curves):
        if key not in curves:
            raise ValueError(f"missing field {key!r}: {list(CURVE_KEYS)} are required.")
        v = curves[key]
        if isinstance(v, np.ndarray) and v.ndim == 1:
            v = v.tolist()
        if isinstance(v, (str, bytes, Mapping)) or not isinstance(v, Sequence):
            raise ValueError(f"field {key!r} must be a list of numbers (one per epoch), but got {type(v).__name__}.")
        check = _fraction if key in FRACTION_KEYS else _number
        vals = [check(f"field {key!r}, epoch {i + 1}", x) for i, x in enumerate(v)]
        if length is None:
            length = len(vals)
        elif len(vals) != length:
            raise ValueError(f"field {key!r} has {len(vals)} epochs but {CURVE_KEYS[0]!r} has {length}: every list needs one value per epoch.")
        out[key] = vals
    if length is None or length < 2:
        raise ValueError(f"a diagnosis needs at least 2 epochs, but the curves have {length or 0}.")
    for key in ("n_layers", "n_classes"):
        if key in curves:
            out[key] = check_positive_int(key, curves[key], minimum=1 if key == "n_layers" else 2)
    _check_classes(out.get("n_classes"))
    for key in OPTIONAL_KEYS:  # an optional list with no value in it was not measured: as if not given
        if key in out and not any(math.isfinite(x) or math.isinf(x) for x in out[key]):
            del out[key]
    return out


# ----------------------------------------------------------------------------------- diagnosis
def _f(x: float, digits: int = 3) -> str:
    return "nan" if not math.isfinite(x) else f"{x:.{digits}g}"


def _evidence(label: str, run: Mapping[str, Any], k: int) -> str:
    """The numbers behind a label, in words (read from the first k epochs)."""
    x = dict(zip(FEATURES, features(run, k)))
    va = run["val_acc"][:k]
    if label == "nonfinite":
        bad = [i + 1 for i in range(k) if not all(math.isfinite(float(run[key][i])) for key in ("train_loss", "val_loss")
                                                   if run[key][i] is not None) or run["train_loss"][i] is None]
        if bad:
            return f"the loss is non-finite from epoch {bad[0]}"
        if math.isfinite(x["loss_max_over_first"]):
            return f"the loss reached {_f(x['loss_max_over_first'])}x its first value"
        return "the curves look like a diverged run"
    if label in ("exploding_gradient", "vanishing_gradient"):
        if math.isfinite(x["log_grad_ratio"]):
            return (f"the first layer's gradient norm is {_f(10 ** x['log_grad_ratio'])}x the last layer's "
                    f"(median over {k} epochs; first layer {_f(10 ** x['log_grad_first'])})")
        return "the curves look like it (no gradient norms were given)"
    if label == "dying_relu":
        if math.isfinite(x["zero_grad_median"]):
            return f"{x['zero_grad_median']:.0%} of gradient entries are exactly zero (median over {k} epochs)"
        return "the curves look like it (no zero-gradient fractions were given)"
    if label == "oscillation":
        drops = sum(1 for a, b in zip(va, va[1:]) if math.isfinite(a) and math.isfinite(b) and b < a - RULES["swing"])
        return f"val_acc fell by more than {RULES['swing']} on {drops} of {k - 1} epochs (largest swing {_f(x['val_acc_dstd'] * 2)})"
    if label == "plateau":
        return f"val_acc moved at most {_f(x['acc_delta_max_tail'])} an epoch after epoch {max(1, int(0.3 * k))}, at {_f(x['val_acc_end'])}"
    if label == "underfit":
        return f"train_acc is {_f(x['train_acc_end'])} after {k} epochs (train loss {_f(10 ** x['train_loss_end'])})"
    if label == "overfit":
        vl = np.array([np.nan if v is None else float(v) for v in run["val_loss"][:k]])
        tl = np.array([np.nan if v is None else float(v) for v in run["train_loss"][:k]])
        gap = f"train - val accuracy gap {_f(x['acc_gap_end'])} (slope {_f(x['acc_gap_slope'])}/epoch)"
        if np.isfinite(vl).any():
            m = int(np.nanargmin(vl))
            if m < k - 1 and np.isfinite(vl[-1]) and vl[-1] > vl[m]:
                return (f"val_loss rose from its lowest {_f(vl[m])} at epoch {m + 1} to {_f(vl[-1])} at epoch {k} while "
                        f"train_loss went from {_f(tl[m])} to {_f(tl[-1])}; {gap}")
        if math.isfinite(x["since_val_loss_min"]):
            return f"{gap}, val_loss lowest {int(round(x['since_val_loss_min'] * k))} epoch(s) ago"
        return gap
    if label == "shift":
        if math.isfinite(x["val_test_gap_end"]):
            return f"val_acc {_f(float(va[-1]))} but test_acc {_f(float(va[-1]) - x['val_test_gap_end'])}"
        return "no test_acc was given, so this rests on the curves alone"
    return ""


#: The ``nonfinite`` probability of a run whose loss diverged in the epochs read
#: (:func:`first_nonfinite_loss`): at least this, whatever the model says of the rest of its curves.
NONFINITE_SEEN = 0.99


def first_nonfinite_loss(run: Mapping[str, Any], k: int) -> Optional[int]:
    """The epoch (1-based, among the first ``k``) from which the run's loss is non-finite: the
    training loss non-finite from there to epoch ``k`` after a finite value (a network whose
    weights went NaN does not come back), or a loss that reached ±inf; ``None`` otherwise. A gap
    (``null`` between finite values, as in a validation loss measured every other epoch) is not a
    divergence, nor is a loss never measured.

    Example:
        >>> first_nonfinite_loss({"train_loss": [1.0, 0.5, None, None], "val_loss": [1.0, 0.6, 0.7, 0.7]}, 4)
        3
        >>> first_nonfinite_loss({"train_loss": [1.0, 0.5, 0.4], "val_loss": [1.0, None, 0.7]}, 3) is None
        True
        >>> first_nonfinite_loss({"train_loss": [float("inf")] * 3, "val_loss": [1.0, 1.0, 1.0]}, 3)
        1
    """
    def value(key: str, i: int) -> float:
        v = run[key][i]
        return math.nan if v is None else float(v)

    n = min(k, len(run["train_loss"]))
    found = [i + 1 for i in range(n) for key in ("train_loss", "val_loss") if math.isinf(value(key, i))][:1]
    tl = [value("train_loss", i) for i in range(n)]
    last = max((i for i, v in enumerate(tl) if math.isfinite(v)), default=None)
    if last is not None and last < n - 1:
        found.append(last + 2)
    return min(found) if found else None


def diagnose(records_or_curves: Any, *, k: Optional[int] = None, model: Optional[DiagnosisModel] = None,
             n_classes: Optional[int] = None, scope: Optional[str] = None) -> Diagnosis:
    """Diagnose a run from its ``EpochRecord`` list (objects or ``compact()`` dicts) or a curves
    mapping (see :func:`validate_curves`).

    Two questions. ``scope="whole"`` (the default): what went wrong in this run? The whole-run
    model reads every epoch, of a run of any length, and each label present comes with the epoch
    it rests on (:func:`onsets`). ``scope="early"`` (the default when ``k`` is given; what the
    pruner asks): will this run fail? The early model reads the first ``k`` epochs (default: all,
    up to the largest k it was trained on, 8).

    Args:
        k: early scope only: the model reads the first k epochs. A k outside what the model was
            trained on, or beyond the run, is refused, as is a k with ``scope="whole"``.
        model: a :class:`DiagnosisModel` of the scope asked (default: the shipped one).
        n_classes: the task's number of classes, for the rules' chance level (default 10).
        scope: ``"whole"`` or ``"early"`` (see above).

    Raises:
        ValueError: bad input, naming the field.
    """
    if isinstance(records_or_curves, Mapping):
        run = validate_curves(records_or_curves)
    elif isinstance(records_or_curves, Sequence) and not isinstance(records_or_curves, (str, bytes)):
        run = validate_curves(run_from_records(validate_records(records_or_curves)))
    else:
        raise ValueError("a run must be an object of per-epoch lists or a list of epoch records, not "
                         f"{type(records_or_curves).__name__} {records_or_curves!r:.40}.")
    if n_classes is not None:
        run["n_classes"] = _check_classes(check_positive_int("n_classes", n_classes, minimum=2))
    if scope is None:
        scope = "early" if k is not None or (model is not None and model.scope == "early") else "whole"
    if scope not in ("early", "whole"):
        raise ValueError(f"scope={scope!r}: expected 'whole' (what went wrong in the run) or 'early' (will it fail, "
                         "from its first k epochs).")
    n = len(run["train_loss"])
    if scope == "whole":
        if k is not None:
            raise ValueError(f"k={k!r}: k asks the early question (the first k epochs); the whole run is read without it.")
        model = model or load_whole_model()
        if model.scope != "whole":
            raise ValueError("the whole-run question needs the whole-run model (load_whole_model()), not an early one.")
        view = view_of(run, model.views)
        seen = restrict(run, view)
        probs = model.predict(whole_features(seen)[None, :], view)
        k = n
    else:
        model = model or load_model()
        if model.scope != "early":
            raise ValueError("the early question needs the early model (load_model()), not the whole-run one.")
        lo, hi = model.k_range
        k = check_optional_positive_int("k", k, minimum=2)
        if k is not None and not lo <= k <= hi:
            raise ValueError(f"k={k}: the model reads the first {lo} to {hi} epochs of a run (what it was trained and "
                             f"validated on); give a k in that range, or none (the whole run, read by the whole-run "
                             "model).")
        if k is not None and k > n:
            raise ValueError(f"k={k}: the run has only {n} epochs.")
        k = min(n, hi, k or n)
        view = view_of(run, model.views)
        seen = restrict(run, view)
        probs = model.predict(features(seen, k)[None, :], view)
    labels = {lab: round(float(probs[lab][0]), 4) for lab in view_labels(view)}
    bad_at = first_nonfinite_loss(seen, k)
    if bad_at is not None:  # a non-finite loss is the label's definition, whatever the model makes of the rest
        labels["nonfinite"] = max(labels["nonfinite"], NONFINITE_SEEN)
    # The "any failure" head is calibrated on its own; no failure can be likelier than the absence
    # of the likeliest one, so healthy is capped by it (the heads never contradict each other).
    healthy = round(min(1.0 - float(probs["any"][0]), 1.0 - max(labels.values())), 4)
    present = sorted((lab for lab in labels if labels[lab] >= model.threshold), key=lambda lab: -labels[lab])
    found = onsets(seen, model, view, present) if scope == "whole" else {}
    if scope == "whole" and bad_at is not None:
        found = dict(sorted({**found, "nonfinite": min(found.get("nonfinite", bad_at), bad_at)}.items(), key=lambda kv: (kv[1], kv[0])))
    reasons = [f"{lab} (p={labels[lab]:.2f})" + (f" from epoch {found[lab]}" if lab in found else "")
               + f": {_evidence(lab, seen, k)}" for lab in present]
    if not present:
        top = max(labels, key=labels.get)
        span = f"over the run's {n} epochs" if scope == "whole" else f"after {k} epochs"
        reasons.append(f"no failure label reaches p={model.threshold:.2f} {span} (healthy p={healthy:.2f}; "
                       f"closest: {top} p={labels[top]:.2f})")
    unassessed = [lab for lab in LABELS if lab not in labels]
    for lab in unassessed:
        reasons.append(f"{lab} not assessed: it needs {' and '.join(GROUPS[NEEDS[lab]])}")
    for g, keys in GROUPS.items():
        given = [key for key in keys if key in run]
        if given and g not in VIEWS[view]:  # part of a group, weights without gradients, or a group the model never reads
            lacking = [key for key in keys if key not in run] or [key for key in GROUPS["grad"] if key not in run]
            reasons.append(f"ignored {', '.join(given)}: " + (f"the model reads it only together with {', '.join(lacking)}"
                                                               if lacking else f"the {scope} model does not read it"))
    rule_on = rule_onsets(seen)
    if scope == "whole":
        if rule_on:
            reasons.append("threshold rules (automl.signals.failure.RULES) on the whole run: "
                           + ", ".join(f"{lab} from epoch {e}" for lab, e in rule_on.items()))
    else:
        rules = sorted(rule_labels(seen, k))
        if rules:
            reasons.append("threshold rules (automl.signals.failure.RULES) on the same epochs: " + ", ".join(rules))
        if n > k:
            late = {lab: e for lab, e in rule_on.items() if e > k}
            reasons.append(f"the model read the first {k} of the run's {n} epochs; the threshold rules over all {n}: "
                           + (", ".join(f"{lab} from epoch {e}" for lab, e in rule_on.items()) or "none")
                           + (f" ({', '.join(late)} after the epochs the model read)" if late else ""))
    return Diagnosis(labels=labels, healthy=healthy, reasons=reasons, scope=scope, epochs=k, run_epochs=n, onsets=found,
                     rule_onsets=rule_on, threshold=model.threshold, view=view, unassessed=unassessed)


#: At most this many prefixes of a run are read to place an onset (then the epochs between two of them).
ONSET_GRID = 20


def _prefix(run: Mapping[str, Any], e: int) -> dict[str, Any]:
    return {key: (v[:e] if isinstance(v, (list, np.ndarray)) else v) for key, v in run.items()}


def onsets(run: Mapping[str, Any], model: Any, view: str, labels: Optional[Sequence[str]] = None) -> dict[str, int]:
    """The epoch each label rests on: reading the run up to each epoch e with the whole-run
    ``model`` (its ``predict(X, view)``), the first e from which the label stays at or above the
    model's threshold to the end of the run. ``labels``: those to place (default: every label the
    whole run has). A label the whole run does not have gets no onset.

    At most :data:`ONSET_GRID` prefixes are read first, then every epoch between the last one
    without the label and the first one of the stretch that keeps it."""
    if labels is not None and not labels:
        return {}
    run = as_arrays(run)
    n = len(run["train_loss"])
    thr = float(getattr(model, "threshold", 0.5))
    grid = list(range(2, n + 1)) if n <= ONSET_GRID else sorted({int(e) for e in np.linspace(2, n, ONSET_GRID).round()})
    rows: dict[int, np.ndarray] = {}  # prefix length -> features, read once however many labels ask

    def at(epochs: Sequence[int]) -> np.ndarray:
        for e in epochs:
            if e not in rows:
                rows[e] = whole_features(_prefix(run, e))
        return np.stack([rows[e] for e in epochs])

    P = model.predict(at(grid), view)
    wanted = list(labels) if labels is not None else [lab for lab in view_labels(view) if P[lab][-1] >= thr]
    out: dict[str, int] = {}
    for lab in wanted:
        p = P[lab]
        if p[-1] < thr:
            continue
        j = len(grid) - 1
        while j > 0 and p[j - 1] >= thr:
            j -= 1
        e = grid[j]
        if j > 0 and grid[j - 1] + 1 < e:  # the epochs between the last prefix without it and this one
            between = list(range(grid[j - 1] + 1, e))
            q = model.predict(at(between), view)[lab]
            for t, qt in zip(between[::-1], q[::-1]):
                if qt < thr:
                    break
                e = t
        out[lab] = e
    return dict(sorted(out.items(), key=lambda kv: (kv[1], kv[0])))


def rule_onsets(run: Mapping[str, Any]) -> dict[str, int]:
    """The labels the threshold rules give the whole run, each with the first epoch e such that
    they give it to the first e epochs and to every longer prefix (the epoch it has held since).

    Example:
        >>> run = {"train_loss": [1.0, 0.6, 0.4, 0.3, 0.2, 0.1, 0.05, 0.02, 0.01, 0.01],
        ...        "val_loss": [1.0, 0.7, 0.6, 0.6, 0.65, 0.8, 1.0, 1.2, 1.4, 1.6],
        ...        "train_acc": [0.6, 0.7, 0.75, 0.8, 0.86, 0.92, 0.96, 0.99, 1.0, 1.0],
        ...        "val_acc": [0.6, 0.7, 0.74, 0.75, 0.74, 0.72, 0.7, 0.68, 0.66, 0.65]}
        >>> rule_onsets(run)  # the train-val accuracy gap passes the rule's 0.15 at epoch 6
        {'overfit': 6}
    """
    run = as_arrays(run)
    n = len(run["train_loss"])
    final = rule_labels(run, n)
    onsets = {lab: n for lab in final}
    holding = set(final)
    for e in range(n - 1, 1, -1):  # walk back while some label still holds
        if not holding:
            break
        here = rule_labels(run, e)
        for lab in list(holding):
            if lab in here:
                onsets[lab] = e
            else:
                holding.discard(lab)
    return {lab: onsets[lab] for lab in sorted(final, key=lambda lab: (onsets[lab], lab))}
