"""Guidance networks (ENN): a small CNN that reads an MLP's weight matrices as images and predicts
its final validation accuracy, and training guided by it.

After Ino, "Grad-Instructor" (arXiv 2406.10559): the ENN's score is added to backpropagation as
an evaluation term, ``θ ← θ − α(∇CE − β∇ENN(img(θ)))`` with the ENN frozen. What we build (the
paper gives only its abstract, so the details are ours):

- :func:`weight_image`: a weight matrix, z-scored, resized by area averaging (differentiable) to
  0.15 of each side;
- :class:`ENN`: a shared two-layer conv trunk per matrix, pooled, with the layer's position and
  fan-in/out, then a mean/max over layers and a head: works for any depth and width;
  :class:`StatsENN` reads only per-layer weight statistics (the baseline of Unterthiner et al.
  2020, "Predicting neural network accuracy from weights");
- :func:`collect_trajectories` and :func:`train_enn`: value learning over real training runs
  (state = the weights after an epoch, return = the run's final validation accuracy), alternating
  with runs guided by the current ENN (:func:`build_enn`);
- :func:`guided_fit`: one target's training with the guidance term, logging per epoch the ratio of
  the guidance and cross-entropy gradient norms;
- :func:`gradcam`: which weights the ENN rewards (Grad-CAM on its last conv layer, in weight space).

Architectures are written ``mlp:784-128-64-10`` (input, hidden widths, classes).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from automl.guidance.arch import arch_name, parse_arch
from automl.training.data import Dataset
from automl.validation import check_positive_int

__all__ = [
    "SCALE", "parse_arch", "arch_name", "build_mlp", "weight_matrices", "weight_image", "weight_stats",
    "ENN", "StatsENN", "State", "Trajectory", "FitResult", "guided_fit", "collect_trajectories", "train_enn",
    "build_enn", "save_enn", "load_enn", "gradcam", "accuracy",
]

SCALE = 0.15  # each side of a weight matrix is resized to this fraction (Ino 2024: 0.15² of the original)


# ------------------------------------------------------------------------------ architectures
def build_mlp(dims: Sequence[int], *, init: str = "default", seed: int = 0) -> nn.Sequential:
    """An MLP ``dims[0] -> ... -> dims[-1]`` with ReLU; ``init`` is ``default`` (PyTorch's) or
    ``he`` (Kaiming normal, fan-in, zero biases)."""
    if init not in ("default", "he"):
        raise ValueError(f"init must be 'default' or 'he', but got {init!r}.")
    gen_state = torch.random.get_rng_state()
    torch.manual_seed(int(seed))
    try:
        layers: list[nn.Module] = [nn.Flatten()]
        for i, (a, b) in enumerate(zip(dims[:-1], dims[1:])):
            lin = nn.Linear(int(a), int(b))
            if init == "he":
                nn.init.kaiming_normal_(lin.weight, nonlinearity="relu")
                nn.init.zeros_(lin.bias)
            layers.append(lin)
            if i < len(dims) - 2:
                layers.append(nn.ReLU())
        return nn.Sequential(*layers)
    finally:
        torch.random.set_rng_state(gen_state)


def weight_matrices(model: nn.Module) -> list[torch.Tensor]:
    """The weight matrices of ``model``'s linear layers, in order (views: gradients flow)."""
    mats = [m.weight for m in model.modules() if isinstance(m, nn.Linear)]
    if not mats:
        raise ValueError(f"{type(model).__name__} has no nn.Linear layer: guidance networks read MLP weight matrices.")
    return mats


def _image_size(shape: Sequence[int], scale: float = SCALE) -> tuple[int, int]:
    return max(2, round(shape[0] * scale)), max(2, round(shape[1] * scale))


def weight_image(w: torch.Tensor, scale: float = SCALE) -> torch.Tensor:
    """``w`` (``(out, in)`` or a batch ``(B, out, in)``) z-scored per matrix and resized by area
    averaging to ``scale`` of each side: ``(B, 1, h, w)``. Differentiable in ``w``."""
    x = w if w.dim() == 3 else w.unsqueeze(0)
    mu = x.mean(dim=(1, 2), keepdim=True)
    sd = x.std(dim=(1, 2), keepdim=True).clamp_min(1e-8)
    return F.adaptive_avg_pool2d(((x - mu) / sd).unsqueeze(1), _image_size(x.shape[1:], scale))


_QUANTILES = torch.tensor([0.0, 0.25, 0.5, 0.75, 1.0])
N_STATS = 8


def weight_stats(w: torch.Tensor) -> torch.Tensor:
    """Per-matrix statistics of the raw weights (not z-scored): mean, sd, mean |w| and five
    quantiles -> ``(B, 8)``. Differentiable in ``w``."""
    x = (w if w.dim() == 3 else w.unsqueeze(0)).flatten(1)
    q = torch.quantile(x, _QUANTILES.to(x), dim=1).T
    return torch.cat([x.mean(1, keepdim=True), x.std(1, keepdim=True), x.abs().mean(1, keepdim=True), q], dim=1)


def _descriptor(index: int, n_layers: int, shape: Sequence[int]) -> list[float]:
    return [index / max(1, n_layers - 1), math.log(shape[1]) / 7.0, math.log(shape[0]) / 7.0]


# ------------------------------------------------------------------------------ the networks
class _LayerSetNet(nn.Module):
    """Embeds each weight matrix, then pools over layers (mean and max) into one score in (0, 1)."""

    kind = "base"

    def __init__(self, feature_dim: int, embed: int) -> None:
        super().__init__()
        self.layer_mlp = nn.Sequential(nn.Linear(feature_dim + 3, embed), nn.ReLU(), nn.Linear(embed, embed), nn.ReLU())
        self.head = nn.Sequential(nn.Linear(2 * embed, embed), nn.ReLU(), nn.Linear(embed, 1))

    def features(self, inputs: torch.Tensor) -> torch.Tensor:  # (B, ...) -> (B, feature_dim)
        raise NotImplementedError

    def prepare(self, w: torch.Tensor) -> torch.Tensor:
        """A weight matrix (or a batch of them) -> this network's input for it."""
        raise NotImplementedError

    def embed_layers(self, inputs: Sequence[torch.Tensor], shapes: Sequence[Sequence[int]]) -> list[torch.Tensor]:
        out = []
        for i, (x, shape) in enumerate(zip(inputs, shapes)):
            d = torch.tensor(_descriptor(i, len(shapes), shape), dtype=x.dtype, device=x.device).expand(x.shape[0], 3)
            out.append(self.layer_mlp(torch.cat([self.features(x), d], dim=1)))
        return out

    def score_embeddings(self, embeddings: Sequence[torch.Tensor]) -> torch.Tensor:
        e = torch.stack(list(embeddings), dim=1)  # (B, L, embed)
        return torch.sigmoid(self.head(torch.cat([e.mean(1), e.amax(1)], dim=1))).squeeze(1)

    def score_inputs(self, inputs: Sequence[torch.Tensor], shapes: Sequence[Sequence[int]]) -> torch.Tensor:
        """Scores ``(B,)`` from prepared inputs, one tensor per layer, a batch of one architecture."""
        return self.score_embeddings(self.embed_layers(inputs, shapes))

    def forward(self, model_or_matrices: nn.Module | Sequence[torch.Tensor]) -> torch.Tensor:
        """The predicted final validation accuracy of a model (or of its weight matrices): a scalar
        tensor, differentiable in the weights."""
        mats = weight_matrices(model_or_matrices) if isinstance(model_or_matrices, nn.Module) else list(model_or_matrices)
        return self.score_inputs([self.prepare(w) for w in mats], [tuple(w.shape[-2:]) for w in mats])[0]


class ENN(_LayerSetNet):
    """Reads each weight matrix as an image (:func:`weight_image`) with a shared conv trunk."""

    kind = "image"

    def __init__(self, channels: tuple[int, int] = (8, 16), embed: int = 32, pool: int = 4, scale: float = SCALE) -> None:
        super().__init__(channels[1] * pool * pool, embed)
        self.config = {"channels": list(channels), "embed": embed, "pool": pool, "scale": scale}
        self.scale, self.pool = scale, pool
        self.conv1 = nn.Conv2d(1, channels[0], 3, padding=1)
        self.last_conv = nn.Conv2d(channels[0], channels[1], 3, padding=1)  # Grad-CAM reads this one

    def prepare(self, w: torch.Tensor) -> torch.Tensor:
        return weight_image(w, self.scale)

    def conv_maps(self, img: torch.Tensor) -> torch.Tensor:
        return F.relu(self.last_conv(F.relu(self.conv1(img))))

    def features(self, img: torch.Tensor) -> torch.Tensor:
        return F.adaptive_avg_pool2d(self.conv_maps(img), self.pool).flatten(1)


class StatsENN(_LayerSetNet):
    """Reads only per-layer weight statistics (:func:`weight_stats`): the ablation of the images."""

    kind = "stats"

    def __init__(self, embed: int = 32) -> None:
        super().__init__(N_STATS, embed)
        self.config = {"embed": embed}

    def prepare(self, w: torch.Tensor) -> torch.Tensor:
        return weight_stats(w)

    def features(self, stats: torch.Tensor) -> torch.Tensor:
        # scale-free inputs: signed log of the raw statistics
        return torch.sign(stats) * torch.log1p(stats.abs() * 100.0)


def gradcam(enn: ENN, model_or_matrices: nn.Module | Sequence[torch.Tensor], layer: int = 0) -> torch.Tensor:
    """Grad-CAM (captum's ``LayerGradCam``) of the ENN's last conv layer for weight matrix
    ``layer``, upsampled back to that matrix's shape: where in weight space the ENN's score rises.
    The other layers enter the score as they are, held fixed."""
    try:
        from captum.attr import LayerGradCam
    except ImportError:
        raise ImportError('gradcam needs captum: pip install "automl-signals[explain]" (".[explain]" in a clone)') from None
    if not isinstance(enn, ENN):
        raise TypeError(f"gradcam reads an image ENN's conv layer; got {type(enn).__name__}.")
    mats = weight_matrices(model_or_matrices) if isinstance(model_or_matrices, nn.Module) else list(model_or_matrices)
    mats = [w.detach() for w in mats]
    if not 0 <= layer < len(mats):
        raise ValueError(f"layer must be in 0..{len(mats) - 1}, but got {layer}.")
    shapes = [tuple(w.shape) for w in mats]
    prepared = [enn.prepare(w) for w in mats]
    with torch.no_grad():
        fixed = enn.embed_layers(prepared, shapes)
    desc = torch.tensor([_descriptor(layer, len(mats), shapes[layer])])

    def score(img: torch.Tensor) -> torch.Tensor:
        e = enn.layer_mlp(torch.cat([enn.features(img), desc.expand(img.shape[0], 3)], dim=1))
        embeddings = [f.expand(img.shape[0], -1) for f in fixed]
        embeddings[layer] = e
        return enn.score_embeddings(embeddings)

    cam = LayerGradCam(score, enn.last_conv).attribute(prepared[layer].clone().requires_grad_(True), relu_attributions=True)
    return F.interpolate(cam, size=shapes[layer], mode="bilinear", align_corners=False)[0, 0].detach()


def save_enn(enn: _LayerSetNet, path: str, **meta: Any) -> None:
    """State dict plus what rebuilds it (loaded with ``weights_only=True``)."""
    torch.save({"kind": enn.kind, "config": enn.config, "state": enn.state_dict(), "meta": meta}, path)


def load_enn(path: Any) -> tuple[_LayerSetNet, dict[str, Any]]:
    blob = torch.load(path, map_location="cpu", weights_only=True)
    kind = blob.get("kind")
    if kind == "image":
        cfg = dict(blob["config"])
        enn: _LayerSetNet = ENN(channels=tuple(cfg["channels"]), embed=cfg["embed"], pool=cfg["pool"], scale=cfg["scale"])
    elif kind == "stats":
        enn = StatsENN(**blob["config"])
    else:
        raise ValueError(f"{path}: not a saved guidance network (kind {kind!r}).")
    enn.load_state_dict(blob["state"])
    enn.eval()
    for p in enn.parameters():
        p.requires_grad_(False)
    return enn, dict(blob.get("meta") or {})


# ------------------------------------------------------------------------------ guided training
@dataclass
class FitResult:
    """Per-epoch history of :func:`guided_fit` and the final accuracies."""

    history: list[dict[str, float]] = field(default_factory=list)
    states: list[list[np.ndarray]] = field(default_factory=list)  # prepared ENN inputs per epoch, if asked

    @property
    def final(self) -> dict[str, float]:
        return self.history[-1] if self.history else {}


@torch.no_grad()
def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    """``(cross-entropy loss, accuracy)`` of ``model`` on ``x, y``, in eval mode, without gradients."""
    model.eval()
    out = model(x)
    loss = F.cross_entropy(out, y).item()
    return loss, (out.argmax(1) == y).float().mean().item()


def guided_fit(
    model: nn.Module,
    data: Dataset,
    enn: Optional[_LayerSetNet] = None,
    beta: float = 0.0,
    *,
    epochs: int = 15,
    lr: float = 0.05,
    momentum: float = 0.9,
    batch_size: int = 64,
    l1: float = 0.0,
    seed: int = 0,
    record: Optional[Callable[[nn.Module], list[np.ndarray]]] = None,
    on_epoch: Optional[Callable[[dict[str, float]], None]] = None,
) -> FitResult:
    """Train ``model`` with SGD on cross-entropy (+ ``l1``·Σ|W|), adding ``β·∇ENN(img(θ))`` each
    step (the ENN frozen): ``θ ← θ − lr·(∇CE + l1·sign(W) − β∇ENN)``.

    Each epoch's history has ``train_loss``, ``train_acc_running`` (during the epoch),
    ``train_acc``/``val_acc``/``test_acc`` (after it, in eval mode), ``enn_score`` and
    ``grad_ratio``: the mean over the epoch's steps of ``‖β∇ENN‖ / ‖∇CE‖`` (0 without an ENN or
    with β = 0). ``record(model)`` is called after each epoch (and before the first) to keep states.
    """
    epochs = check_positive_int("epochs", epochs)
    if not (isinstance(beta, (int, float)) and math.isfinite(beta) and beta >= 0):
        raise ValueError(f"beta must be a finite number >= 0, but got {beta=}.")
    if not (isinstance(lr, (int, float)) and math.isfinite(lr) and lr > 0):
        raise ValueError(f"lr must be a positive finite number, but got {lr=}.")
    if enn is not None:
        enn.eval()
        for p in enn.parameters():
            p.requires_grad_(False)
    params = [p for p in model.parameters() if p.requires_grad]
    mats = weight_matrices(model)
    opt = torch.optim.SGD(params, lr=float(lr), momentum=float(momentum))
    x = data.x_train.flatten(1) if data.x_train.dim() > 2 else data.x_train
    xv, xt = data.x_val.flatten(1), data.x_test.flatten(1)
    y, n = data.y_train, len(data.x_train)
    result = FitResult()
    guide = enn is not None and beta > 0
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        gen = torch.Generator().manual_seed(int(seed))
        if record is not None:
            result.states.append(record(model))
        for epoch in range(1, int(epochs) + 1):
            model.train()
            order = torch.randperm(n, generator=gen)
            loss_sum, correct, ratios, scores = 0.0, 0, [], []
            for i in range(0, n, int(batch_size)):
                idx = order[i : i + int(batch_size)]
                out = model(x[idx])
                loss = F.cross_entropy(out, y[idx])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                if l1 > 0:
                    with torch.no_grad():
                        for w in mats:
                            w.grad.add_(torch.sign(w), alpha=float(l1))
                if guide:
                    ce_norm = torch.sqrt(sum((p.grad.detach() ** 2).sum() for p in params))
                    score = enn(mats)
                    g = torch.autograd.grad(score, mats)
                    g_norm = torch.sqrt(sum((gi**2).sum() for gi in g)) * float(beta)
                    with torch.no_grad():
                        for w, gi in zip(mats, g):
                            w.grad.sub_(gi, alpha=float(beta))  # ascend the ENN's score
                    ratios.append(float(g_norm / ce_norm.clamp_min(1e-12)))
                    scores.append(float(score.detach()))
                opt.step()
                loss_sum += float(loss.detach()) * len(idx)
                correct += int((out.detach().argmax(1) == y[idx]).sum())
            _, train_acc = accuracy(model, x, y)
            _, val_acc = accuracy(model, xv, data.y_val)
            _, test_acc = accuracy(model, xt, data.y_test)
            row = {"epoch": epoch, "train_loss": loss_sum / n, "train_acc_running": correct / n, "train_acc": train_acc,
                   "val_acc": val_acc,
                   "test_acc": test_acc, "grad_ratio": float(np.mean(ratios)) if ratios else 0.0,
                   "enn_score": float(np.mean(scores)) if scores else float("nan")}
            result.history.append(row)
            if record is not None:
                result.states.append(record(model))
            if on_epoch is not None:
                on_epoch(row)
    return result


# ------------------------------------------------------------------------------ value learning
@dataclass
class State:
    """One training state: the prepared inputs of both ENN kinds per layer, and the run's return."""

    arch: tuple[int, ...]
    images: list[np.ndarray]
    stats: list[np.ndarray]
    ret: float
    run: int


@dataclass
class Trajectory:
    arch: tuple[int, ...]
    dataset: str
    config: dict[str, Any]
    final_val_acc: float
    final_test_acc: float
    states: list[State]


def _snapshot(model: nn.Module) -> list[np.ndarray]:
    with torch.no_grad():
        return [w.detach().clone().numpy() for w in weight_matrices(model)]


def collect_trajectories(
    data: Dataset,
    archs: Sequence[Sequence[int]],
    runs: int,
    *,
    epochs: int = 10,
    seed: int = 0,
    enn: Optional[_LayerSetNet] = None,
    betas: Sequence[float] = (0.0,),
    run_offset: int = 0,
    progress: Optional[Callable[[int], None]] = None,
) -> list[Trajectory]:
    """Train ``runs`` targets (architectures and hyperparameters drawn with ``seed``) and keep the
    weights after every epoch as states whose return is the run's final validation accuracy. With
    an ``enn``, each run is guided with a β drawn from ``betas`` (the alternation of value learning
    and training under the current ENN). Learning rates span 1e-3..0.5 and half the runs use He
    init, so returns range from chance to the best the architecture reaches."""
    rng = np.random.default_rng(seed)
    out = []
    for r in range(runs):
        dims = tuple(archs[int(rng.integers(len(archs)))])
        cfg = {"lr": float(10 ** rng.uniform(-3, math.log10(0.5))), "init": "he" if rng.random() < 0.5 else "default",
               "momentum": float(rng.choice([0.0, 0.9])), "beta": float(rng.choice(list(betas))) if enn is not None else 0.0,
               "seed": int(rng.integers(2**31 - 1))}
        model = build_mlp(dims, init=cfg["init"], seed=cfg["seed"])
        snaps: list[list[np.ndarray]] = []
        res = guided_fit(model, data, enn, cfg["beta"], epochs=epochs, lr=cfg["lr"], momentum=cfg["momentum"],
                         seed=cfg["seed"], record=_snapshot)
        snaps = res.states
        val = res.final["val_acc"]
        val = val if math.isfinite(val) else 1.0 / data.n_classes
        states = []
        for mats in snaps:
            t = [torch.from_numpy(m) for m in mats]
            if not all(torch.isfinite(m).all() for m in t):
                continue  # a diverged state has no image
            states.append(State(dims, [weight_image(m).squeeze(0).numpy() for m in t],
                                [weight_stats(m).squeeze(0).numpy() for m in t], float(val), run_offset + r))
        out.append(Trajectory(dims, data.name, cfg, float(val), float(res.final["test_acc"]), states))
        if progress is not None:
            progress(r + 1)
    return out


def train_enn(
    enn: _LayerSetNet,
    states: Sequence[State],
    *,
    epochs: int = 60,
    lr: float = 3e-3,
    batch_size: int = 64,
    seed: int = 0,
    holdout_runs: float = 0.2,
) -> dict[str, float]:
    """Fit ``enn`` to the returns of ``states`` (MSE; Adam), grouping batches by architecture.
    A fifth of the runs (whole runs, never single states) is held out: returns its R² and MAE."""
    if not states:
        raise ValueError("no states to learn from.")
    rng = np.random.default_rng(seed)
    runs = sorted({s.run for s in states})
    held = set(rng.choice(runs, size=max(1, int(len(runs) * holdout_runs)), replace=False).tolist()) if len(runs) > 4 else set()
    train = [s for s in states if s.run not in held]
    test = [s for s in states if s.run in held]
    use_images = enn.kind == "image"

    def batches(pool: Sequence[State], shuffle: bool):
        by_arch: dict[tuple[int, ...], list[State]] = {}
        for s in pool:
            by_arch.setdefault(s.arch, []).append(s)
        chunks = []
        for arch, group in by_arch.items():
            order = rng.permutation(len(group)) if shuffle else np.arange(len(group))
            for i in range(0, len(group), batch_size):
                chunks.append((arch, [group[j] for j in order[i : i + batch_size]]))
        if shuffle:
            chunks = [chunks[i] for i in rng.permutation(len(chunks))]
        for arch, chunk in chunks:
            L = len(arch) - 1
            inputs = [torch.from_numpy(np.stack([(s.images if use_images else s.stats)[l] for s in chunk])) for l in range(L)]
            shapes = [(arch[l + 1], arch[l]) for l in range(L)]
            yield inputs, shapes, torch.tensor([s.ret for s in chunk], dtype=torch.float32)

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for p in enn.parameters():
            p.requires_grad_(True)
        enn.train()
        opt = torch.optim.Adam(enn.parameters(), lr=lr, weight_decay=1e-5)
        for _ in range(epochs):
            for inputs, shapes, target in batches(train, True):
                loss = F.mse_loss(enn.score_inputs(inputs, shapes), target)
                opt.zero_grad()
                loss.backward()
                opt.step()
        enn.eval()
        for p in enn.parameters():
            p.requires_grad_(False)

    base = float(np.mean([s.ret for s in train]))

    def score(pool):
        # R² against the training mean: a held-out set of a few runs has little spread of its own
        preds, ys = [], []
        with torch.no_grad():
            for inputs, shapes, target in batches(pool, False):
                preds.append(enn.score_inputs(inputs, shapes).numpy())
                ys.append(target.numpy())
        if not preds:
            return float("nan"), float("nan")
        p, t = np.concatenate(preds), np.concatenate(ys)
        ss = float(((t - base) ** 2).sum())
        return (1.0 - float(((t - p) ** 2).sum()) / ss if ss > 1e-9 else float("nan")), float(np.abs(t - p).mean())

    r2_train, mae_train = score(train)
    r2, mae = score(test)
    return {"r2_train": r2_train, "mae_train": mae_train, "r2_holdout": r2, "mae_holdout": mae,
            "states": len(train), "holdout_states": len(test)}


def build_enn(
    data: Dataset,
    archs: Sequence[Sequence[int]],
    *,
    kind: str = "image",
    channels: tuple[int, int] = (8, 16),
    runs: int = 60,
    guided_runs: int = 30,
    rounds: int = 2,
    betas: Sequence[float] = (0.0, 10.0, 100.0),
    epochs: int = 10,
    seed: int = 0,
    fit_epochs: int = 60,
    progress: Optional[Callable[[str], None]] = None,
) -> tuple[_LayerSetNet, dict[str, Any]]:
    """An ENN trained by value learning: ``runs`` plain trajectories, then ``rounds - 1`` rounds of
    ``guided_runs`` trajectories trained under the current ENN, refitting on all states each round.
    Returns the ENN and its report (fit quality per round, the trajectories' returns)."""
    if kind not in ("image", "stats"):
        raise ValueError(f"kind must be 'image' or 'stats', but got {kind!r}.")
    torch.manual_seed(seed)
    enn: _LayerSetNet = ENN(channels=channels) if kind == "image" else StatsENN()
    trajs = collect_trajectories(data, archs, runs, epochs=epochs, seed=seed)
    states = [s for t in trajs for s in t.states]
    report: dict[str, Any] = {"rounds": []}
    fit = train_enn(enn, states, epochs=fit_epochs, seed=seed)
    report["rounds"].append({"round": 0, "runs": runs, "guided": False, **fit})
    if progress:
        progress(f"round 0: {runs} runs, held-out R² {fit['r2_holdout']:.3f}")
    for rnd in range(1, rounds):
        more = collect_trajectories(data, archs, guided_runs, epochs=epochs, seed=seed * 1000 + rnd, enn=enn,
                                    betas=betas, run_offset=len(trajs))
        trajs += more
        states += [s for t in more for s in t.states]
        fit = train_enn(enn, states, epochs=max(10, fit_epochs // 2), seed=seed + rnd)
        report["rounds"].append({"round": rnd, "runs": guided_runs, "guided": True, **fit})
        if progress:
            progress(f"round {rnd}: +{guided_runs} guided runs, held-out R² {fit['r2_holdout']:.3f}")
    report["returns"] = [t.final_val_acc for t in trajs]
    report["archs"] = sorted({arch_name(t.arch) for t in trajs})
    report["dataset"] = data.name
    return enn, report
