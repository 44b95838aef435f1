"""Which guidance network (ENN) to train an architecture with: a zoo, measured gains, a regressor.

- :data:`ZOO`: K ENNs that differ in seed, width, kind and the runs they learned from;
  :func:`build_zoo` trains them (``automl enn train``) and picks each one's β on tuning seeds;
- :func:`measure_gains`: the test-accuracy gain, in points, of training each target architecture
  guided by each ENN over plain backprop, at equal epochs and paired seeds;
- :func:`fit_recommender`: XGBoost over ENN and architecture features predicting that gain, a
  bootstrap ensemble; the uncertainty shown combines its spread with its leave-one-architecture-out
  error, and measured gains come with a paired t-test (Holm-corrected over the ENNs);
- :func:`recommend`: ENNs ranked by predicted gain for an architecture, with the evidence, and a
  plain "low confidence" when the architecture is outside what the zoo has seen.

The shipped zoo lives in ``automl/models/enn/``: ``enn-*.pt`` (state dicts, loaded with
``weights_only=True``), ``zoo.json``, ``gains.json`` and ``recommender.json.gz`` (XGBoost JSON trees).
"""

from __future__ import annotations

import gzip
import json
import math
import multiprocessing
import os
from collections.abc import Callable, Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import Any, Optional

import numpy as np

from automl.guidance.arch import arch_name, parse_arch
from automl.trees import Trees
from automl.validation import check_positive_int

__all__ = ["ZOO", "TARGET_ARCHS", "DATASET_BY_INPUT", "build_zoo", "measure_gains", "fit_recommender",
           "pair_features", "recommend", "load_zoo", "zoo_dir", "build_one", "pool_map"]

DATASET_BY_INPUT = {784: "mnist5k", 64: "digits"}
M5K_POOL = [(784, 32, 10), (784, 64, 10), (784, 128, 10), (784, 256, 10), (784, 128, 64, 10), (784, 256, 128, 10)]
DIGITS_POOL = [(64, 32, 10), (64, 64, 10), (64, 128, 10), (64, 64, 32, 10)]

# K = 6: seeds, widths, kinds and training data differ
ZOO: list[dict[str, Any]] = [
    {"name": "img-m5k-a", "kind": "image", "channels": [8, 16], "dataset": "mnist5k", "pool": M5K_POOL, "seed": 0},
    {"name": "img-m5k-b", "kind": "image", "channels": [8, 16], "dataset": "mnist5k", "pool": M5K_POOL, "seed": 1},
    {"name": "img-m5k-wide", "kind": "image", "channels": [16, 32], "dataset": "mnist5k", "pool": M5K_POOL, "seed": 2},
    {"name": "img-m5k-narrow", "kind": "image", "channels": [8, 16], "dataset": "mnist5k", "pool": M5K_POOL[:2], "seed": 3},
    {"name": "img-digits", "kind": "image", "channels": [8, 16], "dataset": "digits", "pool": DIGITS_POOL, "seed": 4},
    {"name": "stats-m5k", "kind": "stats", "channels": None, "dataset": "mnist5k", "pool": M5K_POOL, "seed": 5},
]
# 12 targets; some inside the zoo's training pools, some outside (wider, deeper, other inputs)
TARGET_ARCHS = [(784, 64, 10), (784, 128, 10), (784, 256, 10), (784, 512, 10), (784, 128, 64, 10),
                (784, 256, 128, 10), (784, 64, 64, 10), (784, 256, 64, 32, 10),
                (64, 32, 10), (64, 64, 10), (64, 128, 10), (64, 64, 32, 10)]
BETAS = (1.0, 10.0, 100.0)
TRAIN_EPOCHS = 10  # epochs of the runs the ENNs learn from, and of the gain measurements


def zoo_dir() -> Path:
    return Path(str(resources.files("automl").joinpath("models/enn")))


def _writable(path: Optional[str | os.PathLike], replace_shipped: bool) -> Path:
    """The zoo folder a build writes into; the shipped zoo only when asked by name."""
    d = Path(path) if path is not None else zoo_dir()
    if d.resolve() == zoo_dir().resolve() and not replace_shipped:
        raise ValueError(f"this would write over the shipped zoo in {d}; give another folder (`automl enn train --out DIR`, "
                         "then `automl recommend --zoo DIR`), or pass replace_shipped=True (--replace-shipped) on purpose.")
    return d


def pool_map(fn: Callable, jobs_args: list, jobs: int) -> list:
    """``[fn(a) for a in jobs_args]``, in ``jobs`` spawned processes of one torch thread each when ``jobs > 1``."""
    if jobs <= 1 or len(jobs_args) <= 1:
        return [fn(a) for a in jobs_args]
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(min(jobs, len(jobs_args)), initializer=_one_thread) as pool:
        return pool.map(fn, jobs_args, chunksize=1)


def _one_thread() -> None:
    import torch

    torch.set_num_threads(1)


# ------------------------------------------------------------------------------ zoo
def _run(args: tuple) -> dict[str, Any]:
    """One guided (or plain) training: ``(arch, dataset, enn_path | None, beta, seed, epochs)``."""
    import torch

    from automl.guidance.enn import build_mlp, guided_fit, load_enn
    from automl.training.data import load_dataset

    dims, dataset, enn_path, beta, seed, epochs = args
    torch.set_num_threads(1)
    enn = load_enn(enn_path)[0] if enn_path else None
    res = guided_fit(build_mlp(dims, seed=seed), load_dataset(dataset), enn, beta if enn is not None else 0.0,
                     epochs=epochs, seed=seed)
    f = res.final
    return {"arch": arch_name(dims), "dataset": dataset, "enn": Path(enn_path).stem[4:] if enn_path else None, "beta": beta,
            "seed": seed, "val_acc": f["val_acc"], "test_acc": f["test_acc"], "train_acc": f["train_acc"],
            "grad_ratio": [h["grad_ratio"] for h in res.history]}


def build_one(args: tuple) -> dict[str, Any]:
    """Train one zoo ENN, ``(spec, out, runs, guided_runs, epochs)``, into ``out``, pick its β on tuning
    seeds, and return its ``zoo.json`` entry."""
    import torch

    from automl.guidance.enn import build_enn, save_enn
    from automl.training.data import load_dataset

    spec, out, runs, guided_runs, epochs = args
    torch.set_num_threads(1)
    data = load_dataset(spec["dataset"])
    enn, report = build_enn(data, spec["pool"], kind=spec["kind"], channels=tuple(spec["channels"] or (8, 16)),
                            runs=runs, guided_runs=guided_runs, rounds=2, epochs=epochs, seed=spec["seed"],
                            betas=(0.0, *BETAS[1:]))
    path = str(Path(out) / f"enn-{spec['name']}.pt")
    save_enn(enn, path, name=spec["name"])
    # β by validation accuracy on tuning seeds (never the seeds gains are measured on), on the
    # pool's first and last architectures
    tune_archs = [spec["pool"][0], spec["pool"][-1]]
    trials = {b: [_run((a, spec["dataset"], path, b, 10_000 + s, epochs))["val_acc"] for a in tune_archs for s in range(3)]
              for b in BETAS}
    beta = max(BETAS, key=lambda b: (np.mean(trials[b]), -b))
    return {**{k: v for k, v in spec.items() if k != "pool"}, "pool": [arch_name(a) for a in spec["pool"]],
            "beta": beta, "beta_val_acc": {str(b): float(np.mean(v)) for b, v in trials.items()},
            "fit": report["rounds"], "returns_mean": float(np.mean(report["returns"])),
            "returns_sd": float(np.std(report["returns"])), "runs": runs + guided_runs, "epochs": epochs, "file": Path(path).name}


def build_zoo(out: Optional[str | os.PathLike] = None, *, jobs: int = 2, runs: int = 60, guided_runs: int = 30,
              epochs: int = TRAIN_EPOCHS, specs: Optional[Sequence[dict[str, Any]]] = None,
              replace_shipped: bool = False) -> list[dict[str, Any]]:
    """Train the zoo's ENNs into ``out`` and write ``zoo.json``. Writing into the shipped zoo (``out``
    None or the package's ``models/enn``) needs ``replace_shipped=True``."""
    out = _writable(out, replace_shipped)
    out.mkdir(parents=True, exist_ok=True)
    metas = pool_map(build_one, [(s, str(out), runs, guided_runs, epochs) for s in (specs or ZOO)], jobs)
    (out / "zoo.json").write_text(json.dumps({"enns": metas}, indent=1))
    return metas


def load_zoo(path: Optional[str | os.PathLike] = None) -> dict[str, Any]:
    """``{"enns": [...], "gains": {...} | None, "recommender": {...} | None, "dir": Path}``."""
    d = Path(path or zoo_dir())
    if not (d / "zoo.json").is_file():
        raise FileNotFoundError(f"no guidance-network zoo in {d}; build it with `automl enn train`.")
    out: dict[str, Any] = {"dir": d, **json.loads((d / "zoo.json").read_text())}
    f = d / "gains.json"
    out["gains"] = json.loads(f.read_text()) if f.is_file() else None
    f = d / "recommender.json.gz"
    if f.is_file():
        with gzip.open(f, "rt", encoding="utf-8") as fh:
            out["recommender"] = json.load(fh)
    else:
        out["recommender"] = None
    return out


# ------------------------------------------------------------------------------ gains
def measure_gains(zoo_path: Optional[str | os.PathLike] = None, *, archs: Sequence[Sequence[int]] = TARGET_ARCHS,
                  seeds: Sequence[int] = range(5), epochs: int = TRAIN_EPOCHS, jobs: int = 2,
                  resume: bool = False, replace_shipped: bool = False) -> dict[str, Any]:
    """Test accuracy of each architecture trained plainly and guided by each ENN (its β), paired
    seeds, equal epochs; gain = guided − plain in points. Writes ``gains.json`` beside the zoo.
    With ``resume``, the seeds an existing ``gains.json`` (same epochs) already holds are kept
    and only the others are run. Writing into the shipped zoo needs ``replace_shipped=True``."""
    zoo = load_zoo(_writable(zoo_path, replace_shipped))
    old = zoo.get("gains") if resume else None
    if old is not None and old.get("epochs") != epochs:
        raise ValueError(f"cannot resume: gains.json was measured at {old.get('epochs')} epochs, not {epochs}.")
    done = set(old["seeds"]) if old else set()
    todo = [int(s) for s in seeds if int(s) not in done]
    jobs_args = []
    for dims in archs:
        ds = DATASET_BY_INPUT[dims[0]]
        for s in todo:
            jobs_args.append((tuple(dims), ds, None, 0.0, s, epochs))
            for e in zoo["enns"]:
                jobs_args.append((tuple(dims), ds, str(zoo["dir"] / e["file"]), e["beta"], s, epochs))
    runs = pool_map(_run, jobs_args, jobs)
    plain = {(r["arch"], r["seed"]): r["test_acc"] for r in runs if r["enn"] is None}
    table: dict[str, dict[str, Any]] = {}
    if old:
        plain.update({(k.rsplit("|", 1)[0], int(k.rsplit("|", 1)[1])): v for k, v in old["plain"].items()})
        for arch, cells in old["table"].items():
            for name, cell in cells.items():
                table.setdefault(arch, {})[name] = {"gains": list(cell["gains"]), "grad_ratio": list(cell["grad_ratio"])}
    for r in runs:
        if r["enn"] is None:
            continue
        cell = table.setdefault(r["arch"], {}).setdefault(r["enn"], {"gains": [], "grad_ratio": []})
        cell["gains"].append(100.0 * (r["test_acc"] - plain[(r["arch"], r["seed"])]))
        cell["grad_ratio"].append(float(np.mean(r["grad_ratio"])))
    for arch, cells in table.items():
        for cell in cells.values():
            cell["mean"] = float(np.mean(cell["gains"]))
            cell["sd"] = float(np.std(cell["gains"], ddof=1)) if len(cell["gains"]) > 1 else 0.0
    doc = {"epochs": epochs, "seeds": sorted(done | set(todo)), "plain": {f"{a}|{s}": v for (a, s), v in plain.items()},
           "table": table}
    (Path(zoo["dir"]) / "gains.json").write_text(json.dumps(doc, indent=1))
    return doc


# ------------------------------------------------------------------------------ features
def _arch_features(dims: Sequence[int]) -> dict[str, float]:
    hidden = list(dims[1:-1]) or [dims[-1]]
    params = sum(a * b + b for a, b in zip(dims[:-1], dims[1:]))
    return {"arch_log_input": math.log(dims[0]), "arch_depth": len(dims) - 2, "arch_log_min_width": math.log(min(hidden)),
            "arch_log_max_width": math.log(max(hidden)), "arch_log_params": math.log(params)}


def _coverage(meta: dict[str, Any], dims: Sequence[int]) -> dict[str, float]:
    pool = [parse_arch(a) for a in meta["pool"]]
    same_input = [p for p in pool if p[0] == dims[0]]
    hid = list(dims[1:-1]) or [dims[-1]]
    widths = [w for p in pool for w in (p[1:-1] or (p[-1],))]
    depths = [len(p) - 2 for p in pool]
    dist = min(abs(math.log(max(hid)) - math.log(max(p[1:-1] or (p[-1],)))) + abs((len(p) - len(dims))) for p in pool)
    return {"cov_same_input": float(bool(same_input)), "cov_in_pool": float(tuple(dims) in {tuple(p) for p in pool}),
            "cov_width_inside": float(min(widths) <= min(hid) and max(hid) <= max(widths)),
            "cov_depth_inside": float(min(depths) <= len(dims) - 2 <= max(depths)), "cov_distance": dist}


def _enn_features(meta: dict[str, Any]) -> dict[str, float]:
    fit = meta["fit"][-1]
    return {"enn_image": float(meta["kind"] == "image"), "enn_width": float((meta["channels"] or [0, 0])[1]),
            "enn_log_beta": math.log(meta["beta"]), "enn_r2": float(fit["r2_holdout"]) if math.isfinite(fit["r2_holdout"]) else 0.0,
            "enn_returns_mean": meta["returns_mean"], "enn_pool_size": float(len(meta["pool"]))}


def pair_features(meta: dict[str, Any], dims: Sequence[int]) -> dict[str, float]:
    """The regressor's input for (ENN, architecture)."""
    return {**_enn_features(meta), **_arch_features(dims), **_coverage(meta, dims)}


# ------------------------------------------------------------------------------ the regressor
def _training_rows(zoo: dict[str, Any]) -> tuple[list[str], np.ndarray, np.ndarray, list[str], list[str]]:
    metas = {e["name"]: e for e in zoo["enns"]}
    rows, ys, groups, names = [], [], [], []
    for arch, cells in zoo["gains"]["table"].items():
        for name, cell in cells.items():
            rows.append(pair_features(metas[name], parse_arch(arch)))
            ys.append(cell["mean"])
            groups.append(arch)
            names.append(name)
    cols = sorted(rows[0])
    return cols, np.array([[r[c] for c in cols] for r in rows]), np.array(ys), groups, names


def _fit_boosters(x: np.ndarray, y: np.ndarray, n_models: int, seed: int) -> list[Any]:
    import xgboost as xgb

    rng = np.random.default_rng(seed)
    boosters = []
    with xgb.config_context(nthread=1):
        for i in range(n_models):
            idx = rng.integers(0, len(x), len(x)) if n_models > 1 else np.arange(len(x))
            model = xgb.XGBRegressor(n_estimators=150, max_depth=3, learning_rate=0.05, subsample=0.9,
                                     min_child_weight=2, random_state=seed + i, n_jobs=1)
            model.fit(x[idx], y[idx])
            boosters.append(model.get_booster())
    return boosters


def _predict(boosters: Sequence[Any], x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    import xgboost as xgb

    with xgb.config_context(nthread=1):
        preds = np.stack([b.predict(xgb.DMatrix(x)) for b in boosters])
    return preds.mean(0), preds.std(0)


def fit_recommender(zoo_path: Optional[str | os.PathLike] = None, *, n_models: int = 10, seed: int = 0,
                    replace_shipped: bool = False) -> dict[str, Any]:
    """Fit the gain regressor on every measured (ENN, architecture) pair, judge it by
    leave-one-architecture-out, and write ``recommender.json.gz`` beside the zoo (the shipped zoo
    only with ``replace_shipped=True``)."""
    from scipy.stats import spearmanr

    zoo = load_zoo(_writable(zoo_path, replace_shipped))
    if not zoo.get("gains"):
        raise FileNotFoundError(f"no gains.json in {zoo['dir']}; run measure_gains first.")
    cols, x, y, groups, names = _training_rows(zoo)
    per_arch = []
    pred_all = np.zeros(len(y))
    for arch in sorted(set(groups)):
        test = np.array([g == arch for g in groups])
        mean, _ = _predict(_fit_boosters(x[~test], y[~test], n_models, seed), x[test])
        pred_all[test] = mean
        measured, predicted = y[test], mean
        top = int(np.argmax(predicted))
        rho = spearmanr(predicted, measured).statistic if np.ptp(measured) > 0 and np.ptp(predicted) > 0 else float("nan")
        per_arch.append({"arch": arch, "spearman": None if not np.isfinite(rho) else float(rho),
                         "pick": [n for n, t in zip(names, test) if t][top], "regret": float(measured.max() - measured[top]),
                         "best_gain": float(measured.max()), "pick_gain": float(measured[top])})
    rhos = [a["spearman"] for a in per_arch if a["spearman"] is not None]
    pooled = spearmanr(pred_all, y).statistic
    evaluation = {"per_arch": per_arch, "mean_spearman": float(np.mean(rhos)) if rhos else None,
                  "pooled_spearman": float(pooled), "top1_within_0.3": float(np.mean([a["regret"] <= 0.3 for a in per_arch])),
                  "median_regret": float(np.median([a["regret"] for a in per_arch])),
                  # how far a predicted gain lands from the measured one on an architecture left out:
                  # part of the spread recommend() shows, beside the bootstrap models' disagreement
                  "rmse": float(np.sqrt(np.mean((pred_all - y) ** 2)))}
    boosters = _fit_boosters(x, y, n_models, seed)
    doc = {"version": 1, "features": cols, "boosters": [json.loads(b.save_raw("json").decode()) for b in boosters],
           "loao": evaluation, "target": "test-accuracy gain over plain backprop, points"}
    with gzip.open(Path(zoo["dir"]) / "recommender.json.gz", "wt", encoding="utf-8") as f:
        json.dump(doc, f)
    _CACHE.clear()  # recommend() must read the new model, not one loaded before
    return evaluation


_CACHE: dict[str, Any] = {}


def _loaded(path: Optional[str | os.PathLike]) -> tuple[dict[str, Any], Trees]:
    """The zoo and its gain regressor (the bootstrap boosters' trees, walked in numpy: no XGBoost import)."""
    key = str(path or zoo_dir())
    if key not in _CACHE:
        zoo = load_zoo(path)
        if not zoo.get("recommender"):
            raise FileNotFoundError(f"no recommender.json.gz in {zoo['dir']}; build it with `automl enn train`.")
        _CACHE[key] = (zoo, Trees(zoo["recommender"]["boosters"]))
    return _CACHE[key]


def measured_gain(gains: Sequence[float]) -> dict[str, Any]:
    """A measured gain over paired seeds: mean, 95% interval and two-sided p of a paired t-test.

    Example:
        >>> g = measured_gain([0.5, 0.1, 0.4, 0.2, 0.3])
        >>> g["mean"], g["n"], g["ci95"], round(g["p"], 4)
        (0.3, 5, [0.104, 0.496], 0.0132)
    """
    from scipy.special import stdtr, stdtrit  # scipy.special only: a few ms, not scipy.stats' second

    x = np.asarray(gains, dtype=float)
    x = x[np.isfinite(x)]
    n = len(x)
    mean = float(x.mean()) if n else float("nan")
    if n < 2 or float(x.std(ddof=1)) == 0.0:
        return {"mean": round(mean, 3), "n": n, "ci95": None, "p": None}
    se = float(x.std(ddof=1)) / math.sqrt(n)
    half = float(stdtrit(n - 1, 0.975)) * se
    p = float(2.0 * stdtr(n - 1, -abs(mean) / se))
    return {"mean": round(mean, 3), "n": n, "ci95": [round(mean - half, 3), round(mean + half, 3)], "p": p}


def holm(pvalues: Mapping[str, Optional[float]], alpha: float = 0.05) -> set[str]:
    """The keys whose p-value stays significant under Holm's step-down correction at ``alpha``."""
    ranked = sorted((p, k) for k, p in pvalues.items() if p is not None)
    m, significant = len(pvalues), set()
    for i, (p, k) in enumerate(ranked):
        if p > alpha / (m - i):
            break
        significant.add(k)
    return significant


def recommend(arch: str, top: int = 3, *, zoo_path: Optional[str | os.PathLike] = None) -> dict[str, Any]:
    """ENNs ranked by predicted test-accuracy gain (points) for ``arch`` (``"mlp:784-128-64-10"``).

    Returns ``{arch, dataset, confidence, notes, recommendations: [{enn, predicted_gain,
    uncertainty, beta, evidence}]}``. An architecture whose input size no ENN was trained on, or
    whose widths and depth lie outside every ENN's training runs, gets ``confidence: "low"`` and
    a note saying so; a malformed spec raises ``ValueError`` naming the part.
    """
    dims = parse_arch(arch)
    top = check_positive_int("top", top)
    zoo, trees = _loaded(zoo_path)
    cols = zoo["recommender"]["features"]
    metas = zoo["enns"]
    feats = [pair_features(m, dims) for m in metas]
    preds = trees.predict(np.array([[f[c] for c in cols] for f in feats]))  # (ENNs, bootstrap models)
    mean, boot = preds.mean(1), preds.std(1)
    loao = zoo["recommender"]["loao"]
    rmse = loao.get("rmse")
    # what a user should read as the prediction's error: the bootstrap models' disagreement and the
    # regressor's measured error on architectures it was not fitted on
    spread = np.sqrt(boot ** 2 + (rmse or 0.0) ** 2)
    measured = zoo["gains"]["table"] if zoo.get("gains") else {}
    notes = []
    if not any(f["cov_same_input"] for f in feats):
        notes.append(f"no guidance network was trained on inputs of size {dims[0]} (the zoo has "
                     f"{sorted({parse_arch(a)[0] for m in metas for a in m['pool']})}): the ranking is extrapolated")
    elif not any(f["cov_width_inside"] and f["cov_depth_inside"] and f["cov_same_input"] for f in feats):
        notes.append("its widths or depth lie outside every guidance network's training runs: the ranking is extrapolated")
    name = arch_name(dims)
    here = {enn: measured_gain(cell["gains"]) for enn, cell in measured.get(name, {}).items() if cell.get("gains")}
    significant = holm({enn: g["p"] for enn, g in here.items()})
    if here:
        best = max(here, key=lambda e: here[e]["mean"])
        if significant:
            notes.append(f"measured on this architecture ({here[best]['n']} paired seeds): "
                         + ", ".join(f"{e} {here[e]['mean']:+.2f} (p={here[e]['p']:.3g})" for e in sorted(significant, key=lambda e: -here[e]["mean"]))
                         + f" significant after Holm's correction over the {len(here)} ENNs")
        else:
            p_best = here[best]["p"]
            notes.append(f"no measured gain on this architecture is significant ({len(here)} ENNs, {here[best]['n']} paired "
                         f"seeds each, Holm's correction, alpha 0.05): the best, {best}, measured {here[best]['mean']:+.2f}"
                         + (f" (p={p_best:.2g})" if p_best is not None else ""))
    else:
        n_sig = sum(bool(holm({e: measured_gain(c["gains"])["p"] for e, c in cells.items() if c.get("gains")}))
                    for cells in measured.values())
        notes.append(f"no gain was measured on this architecture; on {n_sig} of the {len(measured)} measured ones some "
                     "ENN's gain is significant (paired t-test, Holm's correction, alpha 0.05)")
    if rmse is not None:
        notes.append(f"± is the regressor's error on architectures left out of its fit ({rmse:.2f} points) combined with "
                     "its bootstrap spread; gains are test-accuracy points over plain backprop at equal epochs")
    order = np.argsort(-mean)[:top]
    recs = []
    for i in order:
        m = metas[i]
        near = sorted((a for a in measured if a != name), key=lambda a: _distance(parse_arch(a), dims))[:2]
        evidence: dict[str, Any] = {
            "trained_on": {"dataset": m["dataset"], "architectures": m["pool"]},
            "held_out_r2": round(float(m["fit"][-1]["r2_holdout"]), 3),
            "measured_gain_nearby": {a: round(measured[a][m["name"]]["mean"], 3) for a in near if m["name"] in measured.get(a, {})},
        }
        if m["name"] in here:
            evidence["measured_here"] = {**here[m["name"]], "significant": m["name"] in significant}
        recs.append({"enn": m["name"], "predicted_gain": round(float(mean[i]), 3), "uncertainty": round(float(spread[i]), 3),
                     "bootstrap_spread": round(float(boot[i]), 3), "beta": m["beta"], "evidence": evidence})
    low = bool(notes and "extrapolated" in notes[0]) or float(np.max(boot[order])) > 1.0
    if float(np.max(boot[order])) > 1.0:
        notes.append("the regressor's bootstrap models disagree by more than a point on this architecture")
    return {"arch": name, "dataset": DATASET_BY_INPUT.get(dims[0]), "confidence": "low" if low else "normal",
            "notes": notes, "significant": sorted(significant) if here else None, "loao_rmse": rmse,
            "recommendations": recs}


def _distance(a: Sequence[int], b: Sequence[int]) -> float:
    ha, hb = list(a[1:-1]) or [a[-1]], list(b[1:-1]) or [b[-1]]
    return (0.0 if a[0] == b[0] else 10.0) + abs(math.log(max(ha)) - math.log(max(hb))) + abs(len(a) - len(b))
