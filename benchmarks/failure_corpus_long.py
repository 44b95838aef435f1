"""The long-run failure corpus: whole training runs of 15-100 epochs, with causes that start late.

The first corpus (``failure_corpus.py``) is 12-epoch runs of the reference trainer on two image
datasets: enough for the early question ("will this run fail?"), not for the whole-run one ("what
went wrong in this run?"), where overfitting or a divergence may start at epoch 40. This one widens
it on every axis a run a user brings may differ on:

- **data**: images (``digits``, ``mnist5k`` at 14x14), sequences (``mnist1d``; ``waves``, generated
  here: noisy sums of sinusoids whose class is their frequency pattern), tabular (scikit-learn's
  bundled ``breast_cancer``, 2 classes; ``blobs``, generated here with ``make_classification``,
  4 classes) -- each a leave-one-dataset-out group;
- **models**: logistic regression, MLPs, small CNNs (Conv1d on sequences), GRUs on sequences (a
  GRU sees at most 1,000 training samples, to keep the corpus to half an hour on 2 cores);
- **training**: a plain PyTorch loop (not the reference trainer): SGD with and without momentum,
  Adam, AdamW, RMSprop; constant, cosine, step and warm-up-then-cosine learning-rate schedules;
  budgets of 15-100 epochs;
- **causes**, each injected and then checked to have taken (the full run shows its primary labels,
  :func:`took`), as in the first corpus, plus two that start late: ``late_diverge`` (the learning
  rate jumps 300-3000x at 30-80% of the budget) and ``late_overfit`` (a 10-25% training subset, no
  regularisation, a long budget: validation loss turns up mid-run). A healthy draw is kept only if
  its full run is neither non-finite, underfit nor clearly overfit (:func:`clear_overfit`): such a
  "healthy" run failed for a reason nobody injected, and is no control.

Per epoch it records the four curves, test accuracy, and the gradient statistics a plain loop can
give (the first and last weight's gradient norm and the share of exactly-zero gradient entries,
averaged over the epoch's batches).

    python benchmarks/failure_corpus_long.py record --seeds 0 1 --jobs 2   # resumes
    python benchmarks/failure_corpus_long.py summary
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any, Optional

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
for _p in (ROOT, ROOT / "benchmarks"):  # the package, and failure_corpus beside this file
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))

from automl.bench.bank import Run, iter_bank  # noqa: E402
from automl.signals.failure import LABELS, rule_labels  # noqa: E402

BANK = ROOT / "benchmarks" / "banks" / "failures" / "long.jsonl.gz"
KINDS = {"digits": "image", "mnist5k": "image", "mnist1d": "sequence", "waves": "sequence",
         "breast_cancer": "tabular", "blobs": "tabular"}
DATASETS = tuple(KINDS)
FAMILIES_OF = {"image": ("linear", "mlp", "cnn"), "sequence": ("mlp", "cnn", "gru"), "tabular": ("linear", "mlp")}
BUDGETS = (15, 20, 30, 40, 60, 80, 100)
GRU_TRAIN = 1000  # training samples a GRU run sees at most
OPTIMIZERS = ("sgd", "momentum", "adam", "adamw", "rmsprop")
SCHEDULES = ("constant", "cosine", "step", "warmup_cosine")

#: cause -> (primary labels, possible secondary labels, families it applies to); see failure_corpus.CAUSES.
CAUSES: dict[str, tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]] = {
    "healthy": ((), (), ("linear", "mlp", "cnn", "gru")),
    "lr_high_sgd": (("nonfinite",), ("plateau", "underfit"), ("mlp", "cnn", "gru")),
    "lr_high_adam": (("oscillation",), ("underfit",), ("mlp", "cnn", "gru")),
    "late_diverge": (("nonfinite",), ("plateau", "underfit"), ("mlp", "cnn", "gru")),
    "lr_low": (("underfit",), ("plateau",), ("linear", "mlp", "cnn", "gru")),
    "deep_sigmoid": (("vanishing_gradient",), ("plateau", "underfit"), ("mlp", "cnn")),
    "deep_bn": (("exploding_gradient",), ("plateau", "underfit"), ("mlp",)),
    "init_constant": (("underfit",), ("plateau",), ("mlp", "cnn")),
    "dead_relu": (("dying_relu",), ("plateau", "underfit"), ("mlp", "cnn")),
    "tiny_train": (("overfit",), (), ("linear", "mlp", "cnn", "gru")),
    "label_noise": (("overfit",), (), ("mlp", "cnn", "gru")),
    "late_overfit": (("overfit",), (), ("mlp", "cnn", "gru")),
    "class_imbalance": (("shift",), (), ("linear", "mlp", "cnn", "gru")),
    "test_noise": (("shift",), (), ("linear", "mlp", "cnn", "gru")),
    "test_invert": (("shift",), (), ("linear", "mlp", "cnn", "gru")),
}
for _c, (_primary, _secondary, _) in CAUSES.items():
    assert set(_primary) | set(_secondary) <= set(LABELS), _c


def clear_overfit(curves: dict[str, list[float]]) -> bool:
    """Validation loss at the end at least 20% above its lowest, that lowest before the last quarter
    of the run, and the training loss lower at the end than there: the model kept fitting its
    training set while it got worse on held-out data."""
    vl = np.asarray(curves["val_loss"], dtype=float)
    tl = np.asarray(curves["train_loss"], dtype=float)
    if not (np.isfinite(vl).all() and np.isfinite(tl).all()):
        return False
    m = int(np.argmin(vl))
    return m < 0.75 * len(vl) and vl[-1] >= 1.2 * vl[m] and tl[-1] < tl[m]


def took(cause: str, weak: "set[str] | list[str]", curves: dict[str, list[float]]) -> bool:
    """Whether a run is kept: its full run shows its cause's primary labels (an overfit cause also
    :func:`clear_overfit`); a healthy run is neither non-finite, underfit nor clearly overfit."""
    weak = set(weak)
    if cause == "healthy":
        return not weak & {"nonfinite", "underfit"} and not clear_overfit(curves)
    if "overfit" in CAUSES[cause][0] and not clear_overfit(curves):
        return False
    return set(CAUSES[cause][0]) <= weak


# ----------------------------------------------------------------------------------- data
def _tensors(name: str, x: np.ndarray, y: np.ndarray, n_classes: int, seed: int = 0):
    """Standardised train/val/test (60/20/20, stratified) as a ``Dataset``."""
    from sklearn.model_selection import train_test_split

    from automl.training.data import from_tensors

    x_rest, x_test, y_rest, y_test = train_test_split(x, y, test_size=0.2, random_state=seed, stratify=y)
    x_tr, x_val, y_tr, y_val = train_test_split(x_rest, y_rest, test_size=0.25, random_state=seed, stratify=y_rest)
    axes = tuple(i for i in range(x.ndim) if i != 1) if x.ndim == 3 else 0
    mean, std = x_tr.mean(axis=axes, keepdims=True), x_tr.std(axis=axes, keepdims=True) + 1e-8
    f = lambda a: ((a - mean) / std).astype(np.float32)  # noqa: E731
    return from_tensors(name, f(x_tr), y_tr.astype(np.int64), f(x_val), y_val.astype(np.int64), f(x_test),
                        y_test.astype(np.int64), n_classes=n_classes)


def _waves(n: int = 3000, length: int = 48, seed: int = 7):
    """Sequences of two noisy sinusoids; the class (of 5) is which pair of frequency bands they come from."""
    rng = np.random.default_rng(seed)
    bands = [(1.0, 2.0), (2.0, 3.0), (3.0, 4.5), (1.0, 4.5), (2.0, 4.5)]
    y = rng.integers(0, len(bands), n)
    t = np.linspace(0, 2 * np.pi, length)
    x = np.empty((n, 1, length))
    for i, c in enumerate(y):
        f1, f2 = bands[c]
        a = rng.uniform(0.5, 1.5, 2)
        phase = rng.uniform(0, 2 * np.pi, 2)
        x[i, 0] = (a[0] * np.sin(f1 * (1 + 0.1 * rng.normal()) * t + phase[0])
                   + a[1] * np.sin(f2 * (1 + 0.1 * rng.normal()) * t + phase[1]) + rng.normal(0, 0.6, length))
    return x, y, len(bands)


def load(name: str):
    """The dataset a run of the corpus trains on (see the module docstring); nothing is downloaded."""
    if name == "mnist5k":
        from failure_corpus import corpus_dataset

        return corpus_dataset("mnist5k")
    if name in ("digits", "mnist1d"):
        from automl.training.data import load_dataset

        return load_dataset(name)
    if name == "breast_cancer":
        from sklearn.datasets import load_breast_cancer

        b = load_breast_cancer()
        return _tensors(name, b.data, b.target, 2)
    if name == "blobs":
        from sklearn.datasets import make_classification

        x, y = make_classification(n_samples=3000, n_features=24, n_informative=10, n_redundant=6, n_classes=4,
                                   n_clusters_per_class=2, class_sep=0.9, flip_y=0.03, random_state=11)
        return _tensors(name, x, y, 4)
    if name == "waves":
        x, y, c = _waves()
        return _tensors(name, x, y, c)
    raise ValueError(f"unknown dataset {name!r}; expected one of {DATASETS}")


# ----------------------------------------------------------------------------------- models
def _gru(cfg: dict[str, Any], input_shape: tuple[int, ...], n_classes: int):
    """A GRU over the sequence (channels as features), its last hidden state to a linear head."""
    from torch import nn

    class GRUNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.rnn = nn.GRU(input_shape[0], cfg["width"], num_layers=cfg["depth"], batch_first=True,
                              dropout=cfg["dropout"] if cfg["depth"] > 1 else 0.0)
            self.head = nn.Linear(cfg["width"], n_classes)

        def forward(self, x):
            out, _ = self.rnn(x.transpose(1, 2))
            return self.head(out[:, -1])

    return GRUNet()


def make_config(cause: str, family: str, budget: int, rng: np.random.Generator) -> dict[str, Any]:
    """A healthy draw for ``family`` (the first corpus's, plus optimizer and schedule), then the cause's changes."""
    from failure_corpus import make_config as short_config

    base = "mlp" if family == "gru" else family
    cfg = short_config(cause if cause not in ("late_diverge", "late_overfit") else "healthy", base, rng)
    opt = str(rng.choice(OPTIMIZERS))
    if cause not in ("lr_high_sgd", "lr_high_adam", "deep_bn"):
        good = {"sgd": (-1.3, -0.5), "momentum": (-2.3, -1.3), "adam": (-3.3, -2.3), "adamw": (-3.3, -2.3),
                        "rmsprop": (-3.6, -2.8)}[opt]
        lr = 10 ** rng.uniform(*good) * (float(rng.choice([1e-2, 1e-3])) if cause == "lr_low" else 1.0)
        cfg.update(optimizer=opt, lr=float(lr))
    cfg["schedule"] = str(rng.choice(SCHEDULES))
    cfg["epochs"] = budget
    if family == "gru":
        cfg.update(width=int(rng.choice([32, 48])), depth=int(rng.integers(1, 3)))
        cfg["rnn_layers"] = cfg["depth"]
        cfg.pop("activation", None)
    if cause == "late_diverge":
        cfg.update(optimizer="momentum", lr=float(10 ** rng.uniform(-2.3, -1.5)), schedule="constant",
                   jump_at=int(round(budget * rng.uniform(0.3, 0.8))), jump=float(10 ** rng.uniform(2.5, 3.5)),
                   dropout=0.0)
        if family != "gru":
            cfg["activation"] = "tanh"
    elif cause == "late_overfit":
        cfg.update(train_share=float(rng.uniform(0.1, 0.25)), dropout=0.0, weight_decay=0.0, schedule="constant",
                   optimizer=str(rng.choice(["adam", "adamw"] + (["momentum"] if family != "gru" else []))))
        cfg["lr"] = float(10 ** rng.uniform(-3.0, -2.5)) if cfg["optimizer"] != "momentum" else float(10 ** rng.uniform(-1.7, -1.2))
        if family == "mlp":
            cfg.update(width=int(rng.choice([256, 512])), depth=int(rng.integers(2, 4)))
    elif cause == "lr_high_sgd" and family == "gru":
        cfg["lr"] = float(10 ** rng.uniform(1.0, 2.0))
    return cfg


def build(family: str, cfg: dict[str, Any], data) -> Any:
    from failure_corpus import build_model

    if family == "gru":
        return _gru(cfg, data.input_shape, data.n_classes)
    if family == "cnn" and len(data.input_shape) == 1:
        raise ValueError("no CNN on tabular data")
    return build_model(family, cfg, data.input_shape, data.n_classes)


# ----------------------------------------------------------------------------------- training
def _optimizer(params, cfg: dict[str, Any]):
    import torch

    name, lr, wd = cfg["optimizer"], cfg["lr"], cfg["weight_decay"]
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, weight_decay=wd)
    if name == "momentum":
        return torch.optim.SGD(params, lr=lr, momentum=0.9, nesterov=True, weight_decay=wd)
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=wd)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=max(wd, 1e-4))
    return torch.optim.RMSprop(params, lr=lr, weight_decay=wd)


def lr_factor(cfg: dict[str, Any], epoch: int) -> float:
    """The learning-rate multiplier of epoch ``epoch`` (0-based) under the run's schedule and jump."""
    n, s = cfg["epochs"], cfg["schedule"]
    if s == "cosine":
        f = 0.5 * (1 + math.cos(math.pi * epoch / n))
    elif s == "step":
        f = 0.1 ** ((epoch >= n // 2) + (epoch >= (3 * n) // 4))
    elif s == "warmup_cosine":
        w = max(1, n // 20)
        f = (epoch + 1) / w if epoch < w else 0.5 * (1 + math.cos(math.pi * (epoch - w) / max(1, n - w)))
    else:
        f = 1.0
    if "jump_at" in cfg and epoch >= cfg["jump_at"]:
        f *= cfg["jump"]
    return max(f, 1e-3) if s != "constant" else f


def train(model, data, cfg: dict[str, Any], seed: int) -> dict[str, list[float]]:
    """Train for the budget; per epoch the curves, test accuracy and gradient statistics."""
    import torch
    from torch import nn

    torch.manual_seed(seed)
    opt = _optimizer(model.parameters(), cfg)
    loss_fn = nn.CrossEntropyLoss()
    weights = [p for name, p in model.named_parameters() if p.dim() > 1]
    first, last = weights[0], weights[-1]
    bs = min(int(cfg["batch_size"]), len(data.x_train))
    out: dict[str, list[float]] = {k: [] for k in ("train_loss", "val_loss", "train_acc", "val_acc", "test_acc",
                                                   "grad_norm_first", "grad_norm_last", "zero_grad_frac")}

    def evaluate(x, y) -> tuple[float, float]:
        model.eval()
        with torch.no_grad():
            logits = torch.cat([model(x[i:i + 1024]) for i in range(0, len(x), 1024)])
            return float(loss_fn(logits, y)), float((logits.argmax(1) == y).float().mean())

    for epoch in range(cfg["epochs"]):
        for group in opt.param_groups:
            group["lr"] = cfg["lr"] * lr_factor(cfg, epoch)
        model.train()
        perm = torch.randperm(len(data.x_train))
        g_first, g_last, zeros, losses, hits = [], [], [], [], 0
        for i in range(0, len(perm), bs):
            idx = perm[i:i + bs]
            logits = model(data.x_train[idx])
            loss = loss_fn(logits, data.y_train[idx])
            opt.zero_grad()
            loss.backward()
            g_first.append(float(first.grad.norm()) if first.grad is not None else math.nan)
            g_last.append(float(last.grad.norm()) if last.grad is not None else math.nan)
            grads = [p.grad for p in weights if p.grad is not None]
            zeros.append(float(sum(int((g == 0).sum()) for g in grads) / max(1, sum(g.numel() for g in grads))))
            opt.step()
            losses.append(float(loss.detach()) * len(idx))
            hits += int((logits.argmax(1) == data.y_train[idx]).sum())
        out["train_loss"].append(sum(losses) / len(perm))
        out["train_acc"].append(hits / len(perm))
        vl, va = evaluate(data.x_val, data.y_val)
        out["val_loss"].append(vl)
        out["val_acc"].append(va)
        out["test_acc"].append(evaluate(data.x_test, data.y_test)[1])
        out["grad_norm_first"].append(float(np.mean(g_first)))
        out["grad_norm_last"].append(float(np.mean(g_last)))
        out["zero_grad_frac"].append(float(np.mean(zeros)))
        if not math.isfinite(out["train_loss"][-1]) and epoch >= 2 and not math.isfinite(out["train_loss"][-2]):
            for key, v in out.items():  # diverged two epochs running: the rest would be NaN too
                v.extend([v[-1] if "acc" in key else math.nan] * (cfg["epochs"] - epoch - 1))
            break
    return out


# ----------------------------------------------------------------------------------- recording
def plan(seeds: list[int]) -> list[tuple[str, str, str, int]]:
    """(cause, family, dataset, seed) for every run; healthy runs get three draws per cell."""
    out = []
    for seed in seeds:
        for cause, (_, _, families) in CAUSES.items():
            for dataset, kind in KINDS.items():
                for family in FAMILIES_OF[kind]:
                    if family not in families:
                        continue
                    for rep in range(3 if cause == "healthy" else 1):
                        out.append((cause, family, dataset, seed * 10 + rep))
    return out


def family_of(cfg: dict[str, Any]) -> str:
    return "gru" if "rnn_layers" in cfg else cfg.get("family", "")


def run_id(cause: str, family: str, dataset: str, seed: int) -> str:
    return f"{cause}/{family}/{dataset}/{seed}"


def inject(cfg: dict[str, Any], data, seed: int):
    """The data the run sees (the first corpus's injections, plus ``train_share``)."""
    import torch

    from failure_corpus import inject_data

    if family_of(cfg) == "gru" and len(data.x_train) > GRU_TRAIN:  # a GRU steps through time: keep it to minutes
        g = torch.Generator().manual_seed(seed + 1)
        idx = torch.randperm(len(data.x_train), generator=g)[:GRU_TRAIN]
        data = dataclasses.replace(data, x_train=data.x_train[idx], y_train=data.y_train[idx])
    if "train_share" in cfg:
        g = torch.Generator().manual_seed(seed)
        idx = torch.randperm(len(data.x_train), generator=g)[: max(40, int(cfg["train_share"] * len(data.x_train)))]
        data = dataclasses.replace(data, x_train=data.x_train[idx], y_train=data.y_train[idx])
    if "n_train" in cfg:  # tiny_train: 30-80 samples, and never more than half the training set
        cfg["n_train"] = min(cfg["n_train"], len(data.x_train) // 2)
    return inject_data(cfg, data, seed)


def record_run(args: tuple[str, str, str, int]) -> Run:
    """Train one planned run and return its bank row with the labels it earned."""
    import torch

    from automl.diagnosis import run_from_bank

    cause, family, dataset, seed = args
    rng = np.random.default_rng([seed, list(CAUSES).index(cause), DATASETS.index(dataset), len(family), ord(family[0])])
    budget = int(rng.choice(BUDGETS))
    if cause in ("late_overfit", "tiny_train", "label_noise"):
        budget = max(budget, 30 if cause != "late_overfit" else 40)  # overfitting takes a while to show
    cfg = make_config(cause, family, budget, rng)
    data = inject(cfg, load(dataset), seed)
    with torch.random.fork_rng(devices=[]):
        torch.default_generator.manual_seed(seed)
        model = build(family, cfg, data)
    t0 = time.perf_counter()
    with np.errstate(all="ignore"):
        curves = train(model, data, cfg, seed)
    grads = [[a, b] for a, b in zip(curves.pop("grad_norm_first"), curves.pop("grad_norm_last"))]
    zero = [[z] for z in curves.pop("zero_grad_frac")]
    row = Run(task=f"failures_long/{family}/{dataset}", run_id=run_id(cause, family, dataset, seed),
              config={**cfg, "family": family, "dataset": dataset, "kind": KINDS[dataset], "cause": cause, "seed": seed},
              metric="val_acc", direction="maximize", curves=curves,
              signals={"grad_norm": grads, "zero_grad_frac": zero, "n_classes": data.n_classes,
                       "n_train": len(data.x_train), "seconds": round(time.perf_counter() - t0, 2)})
    weak = rule_labels(run_from_bank(row))
    primary, secondary, _ = CAUSES[cause]
    labels = [lab for lab in LABELS if lab in primary or (lab in secondary and lab in weak)]
    return row.model_copy(update={"signals": {**row.signals, "labels": labels, "took": took(cause, weak, curves),
                                              "weak_labels": sorted(weak)}})


def summary(path: Path = BANK) -> str:
    """Per cause: runs, how many took, the truth labels, and what the rules said beyond them."""
    from failure_corpus import cause_table

    runs = list(iter_bank(path))
    count = lambda key: dict(sorted(Counter(key(r) for r in runs).items()))  # noqa: E731
    return "\n".join([f"{len(runs)} runs, {sum(r.signals['took'] for r in runs)} kept; datasets "
                      f"{count(lambda r: r.config['dataset'])}; families {count(lambda r: r.config['family'])}; "
                      f"epochs {count(lambda r: len(r.curves['val_acc']))}", ""]
                     + cause_table(runs, CAUSES, lambda r: r.signals["took"]))


def main(argv: Optional[list[str]] = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    rec = sub.add_parser("record", help="train the corpus (resumes)")
    rec.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    rec.add_argument("--jobs", type=int, default=2)
    rec.add_argument("--out", type=Path, default=BANK)
    sm = sub.add_parser("summary", help="causes, how often they took, and the rules beyond the truth")
    sm.add_argument("--bank", type=Path, default=BANK)
    args = ap.parse_args(argv)
    if args.cmd == "record":
        from failure_corpus import record

        record(args.seeds, args.jobs, args.out, plan_of=plan, run=record_run)
    else:
        print(summary(args.bank))


if __name__ == "__main__":
    main()
