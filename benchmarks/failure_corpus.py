"""The failure corpus: real training runs with *injected* causes, for the failure meta-classifier.

Each run trains one model of one architecture family on a bundled dataset with the reference
trainer and the probe attached (gradients every step), after injecting one cause. The run's
ground-truth labels are the labels its cause is declared to produce (``CAUSES``): they come from
what was done to the run, not from rules over its curves (SIGNALS.md §3). The rules are computed
too (``automl.signals.failure.rule_labels`` over the full run) and stored as ``weak_labels``, so the
study can say how often a cause showed the symptoms it is declared to produce.

    python benchmarks/failure_corpus.py record --seeds 0 1 2 3 4 5 --jobs 2   # 600 runs; resumes
    python benchmarks/failure_corpus.py summary                          # causes x families, manifestation

Causes and how each is injected; ``CAUSES`` names the labels each produces. A run's truth is its
cause's *primary* labels, and it is kept only if the full run (all epochs, which the classifier
never sees) shows them: otherwise the injection did not take and the run is stored but left out.
Its *secondary* labels (the consequences a cause may have: a diverged net is also stuck) count
where the full run shows them. A healthy run's truth is "none"; it is kept only if its full run is
neither non-finite nor underfit by the rules (a "healthy" draw still near chance after all its
epochs is a failure of unknown cause, not a control): :func:`took`.

==================  ==============================================================================
cause               injection
==================  ==============================================================================
healthy             a sane configuration (optimizer, lr, width, depth, dropout drawn)
lr_high_sgd         SGD (momentum 0.9) at lr 5-30 (100-1000x a good one), tanh units (ReLU units
                    die instead of diverging)
lr_high_adam        Adam at lr 0.3-1 (300-1000x its usual), tanh units
lr_low              0.01x or 0.001x a good learning rate
deep_sigmoid        8-10 sigmoid layers without normalisation
deep_bn             32-48 ReLU layers each with BatchNorm, no skips: the gradient explodes towards
                    the input (Yang et al., "A mean field theory of batch normalization", ICLR 2019)
init_constant       every weight the same constant, biases zero (hidden units stay identical)
dead_relu           ReLU units biased far negative (the BatchNorm shift in BN nets)
tiny_train          30-80 training samples, batches of 8, a wide model
label_noise         40-60% of train and val labels replaced, a wide model
class_imbalance     train/val skewed to 3 classes; test stays balanced
test_noise          Gaussian noise (1.5-3 std) on the test inputs only
test_invert         test inputs mirrored about the training mean
==================  ==============================================================================

Families: ``linear`` (logistic regression), ``mlp``, ``cnn``, ``resnet_small`` (``search_spaces``),
on ``digits`` (8x8 images) and ``mnist5k`` (MNIST digits average-pooled to 14x14, 1200 training
samples, to keep the corpus to minutes on 2 cores), where every family learns well
when nothing is injected (on ``mnist1d`` a linear model cannot: its "healthy" runs would underfit). A cause is injected only where it
means something (no deep stacks for ``linear``, no plain deep stacks for the residual family; a learning rate too
high does not derail a convex logistic regression, so ``linear`` gets no ``lr_high_*``).
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import sys
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any, Optional

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from automl.bench.bank import Run, iter_bank, write_bank  # noqa: E402
from automl.diagnosis import run_from_bank  # noqa: E402
from automl.signals.failure import LABELS, rule_labels  # noqa: E402

BANK = ROOT / "benchmarks" / "banks" / "failures" / "corpus.jsonl.gz"
EPOCHS = 12
FAMILIES = ("linear", "mlp", "cnn", "resnet_small")
DATASETS = ("digits", "mnist5k")

#: cause -> (primary labels, possible secondary labels, families it applies to). A run's truth is its
#: primary labels (the run is kept only if the full run shows them: the injection "took") plus
#: those secondary labels the full run also shows; a healthy run's truth is always "none".
CAUSES: dict[str, tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]] = {
    "healthy": ((), (), FAMILIES),
    "lr_high_sgd": (("nonfinite",), ("plateau", "underfit"), ("mlp", "cnn", "resnet_small")),
    "lr_high_adam": (("oscillation",), ("underfit",), ("mlp", "cnn", "resnet_small")),
    "lr_low": (("underfit",), ("plateau",), FAMILIES),
    "deep_sigmoid": (("vanishing_gradient",), ("plateau", "underfit"), ("mlp", "cnn")),
    "deep_bn": (("exploding_gradient",), ("plateau", "underfit"), ("mlp",)),
    "init_constant": (("underfit",), ("plateau",), ("mlp", "cnn", "resnet_small")),
    "dead_relu": (("dying_relu",), ("plateau", "underfit"), ("mlp", "cnn", "resnet_small")),
    "tiny_train": (("overfit",), (), FAMILIES),
    "label_noise": (("overfit",), (), ("mlp", "cnn", "resnet_small")),
    "class_imbalance": (("shift",), (), FAMILIES),
    "test_noise": (("shift",), (), FAMILIES),
    "test_invert": (("shift",), (), FAMILIES),
}
for _c, (_primary, _secondary, _) in CAUSES.items():
    assert set(_primary) | set(_secondary) <= set(LABELS), _c

#: What a healthy control must not show over its full run: a "healthy" draw still near chance, or
#: diverged, after all its epochs is an uncontrolled failure of unknown cause, not a control.
HEALTHY_MUST_NOT = ("nonfinite", "underfit")


def took(cause: str, weak: "set[str] | list[str]") -> bool:
    """Whether a run is kept: its full run (``weak``: the rules over all its epochs) shows its
    cause's primary labels; for a healthy run, none of :data:`HEALTHY_MUST_NOT`."""
    if cause == "healthy":
        return not set(HEALTHY_MUST_NOT) & set(weak)
    return set(CAUSES[cause][0]) <= set(weak)


# ----------------------------------------------------------------------------------- configs
def _healthy_config(family: str, rng: np.random.Generator) -> dict[str, Any]:
    opt = str(rng.choice(["adam", "adamw", "sgd"]))
    lr = float(10 ** rng.uniform(-3.3, -2.3)) if opt != "sgd" else float(10 ** rng.uniform(-2.0, -1.0))
    cfg: dict[str, Any] = {"optimizer": opt, "lr": lr, "weight_decay": float(10 ** rng.uniform(-6, -3)),
                           "dropout": float(rng.choice([0.0, 0.1, 0.2])), "batch_size": int(rng.choice([32, 64, 128]))}
    if family == "linear":
        cfg.update(width=16, depth=0, activation="relu", dropout=0.0)
    elif family == "mlp":
        cfg.update(width=int(rng.choice([64, 128, 256])), depth=int(rng.integers(1, 4)),
                   activation=str(rng.choice(["relu", "gelu", "tanh"])))
    elif family == "cnn":
        cfg.update(channels=int(rng.choice([8, 16, 32])), depth=int(rng.integers(1, 4)),
                   activation=str(rng.choice(["relu", "gelu"])))
    else:
        cfg.update(width=8, blocks=int(rng.integers(1, 3)), activation=str(rng.choice(["relu", "gelu"])))
    return cfg


def make_config(cause: str, family: str, rng: np.random.Generator) -> dict[str, Any]:
    """The run's configuration: a healthy draw, then the cause's changes (recorded in the config)."""
    cfg = _healthy_config(family, rng)
    if cause == "lr_high_sgd":
        cfg.update(optimizer="sgd", lr=float(10 ** rng.uniform(0.7, 1.5)), activation="tanh", dropout=0.0, weight_decay=0.0)
    elif cause == "lr_high_adam":
        cfg.update(optimizer="adam", lr=float(10 ** rng.uniform(-0.5, 0.0)), activation="tanh", dropout=0.0)
    elif cause == "lr_low":
        cfg["lr"] = cfg["lr"] * float(rng.choice([1e-2, 1e-3]))
    elif cause == "deep_sigmoid":
        cfg.update(plain_depth=int(rng.integers(8, 11)), activation="sigmoid", norm=False, dropout=0.0)
    elif cause == "deep_bn":
        cfg.update(plain_depth=int(rng.integers(32, 49)), activation="relu", norm=True, dropout=0.0,
                   optimizer="adam", lr=float(10 ** rng.uniform(-3.3, -2.7)))
    elif cause == "init_constant":
        cfg["init_constant"] = float(rng.choice([0.01, 0.05, 0.1]))
    elif cause == "dead_relu":
        cfg.update(activation="relu", dead_bias=float(rng.uniform(3.0, 6.0)))
    elif cause == "tiny_train":
        cfg.update(n_train=int(rng.integers(30, 81)), dropout=0.0, weight_decay=1e-6, batch_size=8)
        if family == "mlp":
            cfg.update(width=512, depth=2)
    elif cause == "label_noise":
        cfg.update(label_noise=float(rng.uniform(0.4, 0.6)), dropout=0.0, weight_decay=1e-6)
        if family == "mlp":
            cfg.update(width=512, depth=2)
    elif cause == "class_imbalance":
        cfg["imbalance_keep"] = float(rng.uniform(0.02, 0.06))
    elif cause == "test_noise":
        cfg["test_noise"] = float(rng.uniform(1.5, 3.0))
    elif cause == "test_invert":
        cfg["test_invert"] = True
    return cfg


# ----------------------------------------------------------------------------------- building
def _plain_stack(family: str, cfg: dict[str, Any], input_shape: tuple[int, ...], n_classes: int):
    """A deep stack without skips: ``plain_depth`` x (Linear|Conv, [BatchNorm], activation)."""
    from torch import nn

    from search_spaces import activation, classifier

    depth, act, norm = cfg["plain_depth"], cfg["activation"], cfg["norm"]
    layers: list[nn.Module] = []
    if family == "mlp":
        n_in, width = math.prod(input_shape), 64
        layers.append(nn.Flatten())
        for i in range(depth):
            layers += [nn.Linear(n_in if i == 0 else width, width)] + ([nn.BatchNorm1d(width)] if norm else []) + [activation(act)]
        return classifier(nn.Sequential(*layers), nn.Linear(width, n_classes))
    one_d = len(input_shape) == 2
    conv, bn = (nn.Conv1d, nn.BatchNorm1d) if one_d else (nn.Conv2d, nn.BatchNorm2d)
    c_in, c = input_shape[0], 16
    for i in range(depth):
        layers += [conv(c_in if i == 0 else c, c, 3, padding=1)] + ([bn(c)] if norm else []) + [activation(act)]
    layers += [nn.AdaptiveAvgPool1d(1) if one_d else nn.AdaptiveAvgPool2d(1), nn.Flatten()]
    return classifier(nn.Sequential(*layers), nn.Linear(c, n_classes))


def build_model(family: str, cfg: dict[str, Any], input_shape: tuple[int, ...], n_classes: int):
    import torch
    from torch import nn

    from search_spaces import get_space

    if "plain_depth" in cfg:
        model = _plain_stack(family, cfg, input_shape, n_classes)
    else:
        # the builder itself: injected configurations lie outside the declared spaces on purpose
        model = get_space("mlp" if family == "linear" else family).builder(cfg, tuple(input_shape), int(n_classes))
    with torch.no_grad():
        if "init_constant" in cfg:
            for m in model.modules():
                if isinstance(m, (nn.Linear, nn.Conv1d, nn.Conv2d)):
                    m.weight.fill_(cfg["init_constant"])
                    if m.bias is not None:
                        m.bias.zero_()
        if "dead_bias" in cfg:  # every hidden unit feeding a ReLU starts far below zero
            mods = list(model.features.modules())
            for m, nxt in zip(mods, mods[1:]):
                if isinstance(nxt, nn.ReLU) and getattr(m, "bias", None) is not None:
                    m.bias.fill_(-cfg["dead_bias"])
            for m in model.features.modules():
                if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
                    m.bias.fill_(-cfg["dead_bias"])
            # residual blocks: the activation after the sum is also fed by a BN (the body's last)
    return model


def inject_data(cfg: dict[str, Any], data, seed: int):
    """The dataset the run sees: subsampled, relabelled, skewed or shifted as the cause says."""
    import torch

    g = torch.Generator().manual_seed(seed)
    d = data
    if "n_train" in cfg:
        idx = torch.randperm(len(d.x_train), generator=g)[: cfg["n_train"]]
        d = dataclasses.replace(d, x_train=d.x_train[idx], y_train=d.y_train[idx])
    if "label_noise" in cfg:
        def noisy(y):
            flip = torch.rand(len(y), generator=g) < cfg["label_noise"]
            other = (y + torch.randint(1, d.n_classes, (len(y),), generator=g)) % d.n_classes
            return torch.where(flip, other, y)
        d = dataclasses.replace(d, y_train=noisy(d.y_train), y_val=noisy(d.y_val))
    if "imbalance_keep" in cfg:  # three majority classes keep everything, the others a few percent
        major = torch.randperm(d.n_classes, generator=g)[:3]

        def skew(x, y):
            keep = torch.isin(y, major) | (torch.rand(len(y), generator=g) < cfg["imbalance_keep"])
            return x[keep], y[keep]
        xt, yt = skew(d.x_train, d.y_train)
        xv, yv = skew(d.x_val, d.y_val)
        d = dataclasses.replace(d, x_train=xt, y_train=yt, x_val=xv, y_val=yv)
    if "test_noise" in cfg:
        std = float(d.x_train.std())
        d = dataclasses.replace(d, x_test=d.x_test + cfg["test_noise"] * std * torch.randn(d.x_test.shape, generator=g))
    if cfg.get("test_invert"):
        mean = d.x_train.mean(0, keepdim=True)
        d = dataclasses.replace(d, x_test=2 * mean - d.x_test)
    return d


# ----------------------------------------------------------------------------------- recording
def plan(seeds: list[int]) -> list[tuple[str, str, str, int]]:
    """(cause, family, dataset, seed) for every run; healthy runs get three draws per cell."""
    out = []
    for seed in seeds:
        for cause, (_, _, families) in CAUSES.items():
            for family in families:
                for dataset in DATASETS:
                    for rep in range(3 if cause == "healthy" else 1):
                        out.append((cause, family, dataset, seed * 10 + rep))
    return out


def run_id(cause: str, family: str, dataset: str, seed: int) -> str:
    return f"{cause}/{family}/{dataset}/{seed}"


def record_run(args: tuple[str, str, str, int]) -> Run:
    """Train one planned run, ``(cause, family, dataset, seed)``, with its cause injected, and return its
    bank row with the labels it earned (``labels``, ``took``, ``weak_labels`` in its signals)."""
    import torch

    from automl.bench.recorder import records_row
    from automl.training.trainer import fit

    cause, family, dataset, seed = args
    rng = np.random.default_rng([seed, FAMILIES.index(family), DATASETS.index(dataset), list(CAUSES).index(cause)])
    cfg = make_config(cause, family, rng)
    data = inject_data(cfg, corpus_dataset(dataset), seed)
    with torch.random.fork_rng(devices=[]):
        torch.default_generator.manual_seed(seed)
        model = build_model(family, cfg, data.input_shape, data.n_classes)
    result = fit(model, data, epochs=EPOCHS, lr=cfg["lr"], optimizer=cfg["optimizer"], weight_decay=cfg["weight_decay"],
                 batch_size=min(cfg["batch_size"], len(data.x_train)), seed=seed)
    row = records_row(result.records, task=f"failures/{family}/{dataset}", run_id=run_id(cause, family, dataset, seed),
                      config={**cfg, "family": family, "dataset": dataset, "cause": cause}, metric="val_acc",
                      direction="maximize", seed=seed)
    row = row.model_copy(update={"signals": {**row.signals, "n_classes": data.n_classes, "n_train": len(data.x_train)}})
    weak = rule_labels(run_from_bank(row))
    primary, secondary, _ = CAUSES[cause]
    labels = [lab for lab in LABELS if lab in primary or (lab in secondary and lab in weak)]
    return row.model_copy(update={"signals": {**row.signals, "labels": labels, "took": took(cause, weak),
                                              "weak_labels": sorted(weak)}})


def corpus_dataset(name: str):
    """The bundled dataset; ``mnist5k`` pooled to 14x14 and its training split cut to 1200 samples
    (val and test kept), so that the corpus trains in minutes on 2 cores."""
    import torch

    from automl.training.data import load_dataset

    d = load_dataset(name)
    if name == "mnist5k":
        pool = lambda x: torch.nn.functional.avg_pool2d(x, 2)  # noqa: E731
        keep = torch.randperm(len(d.x_train), generator=torch.Generator().manual_seed(0))[:1200]
        d = dataclasses.replace(d, name="mnist5k_14", x_train=pool(d.x_train[keep]), y_train=d.y_train[keep],
                                x_val=pool(d.x_val), x_test=pool(d.x_test))
    return d


def _one_thread() -> None:
    import torch

    torch.set_num_threads(1)


def record(seeds: list[int], jobs: int, out: Path = BANK, *, plan_of=None, run=None) -> int:
    """Train the planned runs not yet in ``out`` (resumes), ``jobs`` at a time, appending each.
    ``plan_of(seeds)`` and ``run(args)`` default to this corpus's :func:`plan` and :func:`record_run`
    (``failure_corpus_long`` passes its own); a planned run's first four fields make its id."""
    plan_of, run = plan_of or plan, run or record_run
    out.parent.mkdir(parents=True, exist_ok=True)
    done = {r.run_id for r in iter_bank(out)} if out.exists() else set()
    todo = [a for a in plan_of(seeds) if run_id(*a) not in done]
    print(f"{len(todo)} runs to record ({len(done)} already in {out.name})", flush=True)
    n = 0
    with ProcessPoolExecutor(max_workers=jobs, initializer=_one_thread) as pool:
        for row in pool.map(run, todo):
            write_bank(out, [row], append=True)
            n += 1
            if n % 20 == 0:
                print(f"  {n}/{len(todo)}", flush=True)
    return n


def cause_table(runs: list[Run], causes, kept) -> list[str]:
    """Per cause (in ``causes``' order): runs, how many ``kept(run)`` keeps, the truth labels and
    the rule labels beyond them (what the rules alone would call wrongly)."""
    by = Counter(r.config["cause"] for r in runs)
    took_n = Counter(r.config["cause"] for r in runs if kept(r))
    truth: dict[str, Counter] = {c: Counter() for c in by}
    extra: dict[str, Counter] = {c: Counter() for c in by}
    for r in runs:
        c = r.config["cause"]
        truth[c].update(r.signals["labels"])
        extra[c].update(set(r.signals["weak_labels"]) - set(r.signals["labels"]))
    lines = ["| cause | runs | took | truth labels (runs) | rule labels beyond the truth (runs) |", "|---|---:|---:|---|---|"]
    for c in causes:
        if c in by:
            lab = ", ".join(f"{k} {v}" for k, v in truth[c].most_common()) or "none"
            other = ", ".join(f"{k} {v}" for k, v in extra[c].most_common()) or "-"
            lines.append(f"| {c} | {by[c]} | {took_n[c]} | {lab} | {other} |")
    return lines


def summary(path: Path = BANK) -> str:
    """Per cause: runs, how many the injection took (:func:`took`), and
    the labels the rules gave beyond the run's truth (what the rules alone would call wrongly)."""
    runs = list(iter_bank(path))
    kept = lambda r: took(r.config["cause"], r.signals["weak_labels"])  # noqa: E731
    return "\n".join([f"{len(runs)} runs, {sum(map(kept, runs))} kept; families "
                      f"{dict(sorted(Counter(r.config['family'] for r in runs).items()))}", ""]
                     + cause_table(runs, CAUSES, kept))


def main(argv: Optional[list[str]] = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    rec = sub.add_parser("record", help="train the corpus (resumes)")
    rec.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4, 5])
    rec.add_argument("--jobs", type=int, default=2)
    rec.add_argument("--out", type=Path, default=BANK)
    sm = sub.add_parser("summary", help="causes and how often their declared labels show in the full-run rules")
    sm.add_argument("--bank", type=Path, default=BANK)
    args = ap.parse_args(argv)
    if args.cmd == "record":
        record(args.seeds, args.jobs, args.out)
    else:
        print(summary(args.bank))


if __name__ == "__main__":
    main()
