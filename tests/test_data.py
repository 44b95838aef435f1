"""Tests of the bundled datasets and of ``from_tensors``."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
import torch

from automl.training.data import DATASETS, Dataset, from_tensors, load_dataset


@pytest.fixture(scope="module")
def digits() -> Dataset:
    return load_dataset("digits")


def _rows(x: torch.Tensor, y: torch.Tensor) -> list[bytes]:
    """One hashable key per sample (its pixels and its label)."""
    flat = x.reshape(len(x), -1).numpy()
    return [r.tobytes() + int(l).to_bytes(2, "little") for r, l in zip(flat, y.tolist())]


# -- digits ----------------------------------------------------------------------------------


def test_digits_shapes_dtypes_classes(digits):
    assert digits.name == "digits"
    assert digits.input_shape == (1, 8, 8)
    assert digits.n_classes == 10
    assert (len(digits.x_train), len(digits.x_val), len(digits.x_test)) == (1077, 360, 360)
    for split in ("train", "val", "test"):
        x, y = getattr(digits, f"x_{split}"), getattr(digits, f"y_{split}")
        assert x.dtype == torch.float32
        assert y.dtype == torch.int64
        assert x.shape[1:] == (1, 8, 8)
        assert len(x) == len(y)
        assert 0.0 <= float(x.min()) and float(x.max()) <= 1.0
        assert set(y.tolist()) == set(range(10))  # stratified: every class in every split
    assert "input_shape=(1, 8, 8)" in repr(digits)


def test_digits_splits_disjoint_and_cover_the_data(digits):
    from sklearn.datasets import load_digits

    bunch = load_digits()
    original = Counter(
        _rows(torch.as_tensor((bunch.data / 16.0).astype(np.float32)), torch.as_tensor(bunch.target))
    )
    keys = {s: _rows(getattr(digits, f"x_{s}"), getattr(digits, f"y_{s}")) for s in ("train", "val", "test")}
    assert sum(len(k) for k in keys.values()) == 1797
    tr, va, te = (set(keys[s]) for s in ("train", "val", "test"))
    assert not tr & va and not tr & te and not va & te
    assert Counter(keys["train"] + keys["val"] + keys["test"]) == original


def test_digits_splits_fixed_across_calls(digits):
    fresh = load_dataset.__wrapped__("digits")  # bypass the cache: really load again
    assert fresh is not digits
    for field in ("x_train", "y_train", "x_val", "y_val", "x_test", "y_test"):
        assert torch.equal(getattr(fresh, field), getattr(digits, field)), field


def test_unknown_dataset_lists_choices():
    with pytest.raises(ValueError) as info:
        load_dataset("cifar")
    message = str(info.value)
    assert "'cifar'" in message
    for name in DATASETS:
        assert name in message


def test_mnist1d_generates_sequences():
    data = load_dataset("mnist1d")
    assert data.input_shape == (1, 40)
    assert data.n_classes == 10
    assert data.x_train.dtype == torch.float32 and data.y_train.dtype == torch.int64
    assert (len(data.x_train), len(data.x_val)) == (3200, 800)
    assert len(data.x_test) > 0 and data.x_test.shape[1:] == (1, 40)
    assert torch.isfinite(data.x_train).all()
    # normalised on the training data
    assert abs(float(data.x_train.mean())) < 0.1
    assert abs(float(data.x_train.std()) - 1.0) < 0.1
    assert set(data.y_test.tolist()) == set(range(10))


# -- from_tensors ----------------------------------------------------------------------------


def _arrays(n_train=20, n_val=8, shape=(1, 4, 4), seed=0):
    rng = np.random.default_rng(seed)
    return (
        rng.normal(size=(n_train, *shape)).astype(np.float32),
        rng.integers(0, 3, size=n_train),
        rng.normal(size=(n_val, *shape)).astype(np.float32),
        rng.integers(0, 3, size=n_val),
    )


def test_from_tensors_wraps_numpy_and_torch():
    x_tr, y_tr, x_va, y_va = _arrays()
    y_tr[0], y_va[0] = 2, 0
    data = from_tensors("mine", torch.from_numpy(x_tr), y_tr.astype(np.int32), x_va, torch.from_numpy(y_va))
    assert data.name == "mine"
    assert data.input_shape == (1, 4, 4)
    assert data.y_train.dtype == torch.int64 and data.x_train.dtype == torch.float32
    assert data.n_classes == 3  # inferred from the labels
    assert torch.equal(data.x_train, torch.from_numpy(x_tr))


def test_from_tensors_missing_test_reuses_val():
    x_tr, y_tr, x_va, y_va = _arrays()
    data = from_tensors("mine", x_tr, y_tr, x_va, y_va)
    assert torch.equal(data.x_test, data.x_val)
    assert torch.equal(data.y_test, data.y_val)
    assert len(data.x_test) == 8


def test_from_tensors_flat_inputs_get_a_channel_axis():
    x_tr, y_tr, x_va, y_va = _arrays(shape=(6,))
    x_te = np.ones((5, 6), dtype=np.float32)
    data = from_tensors("flat", x_tr, y_tr, x_va, y_va, x_te, np.zeros(5, dtype=np.int64), n_classes=4)
    assert data.x_train.shape == (20, 1, 6)
    assert data.x_val.shape == (8, 1, 6)
    assert data.x_test.shape == (5, 1, 6)
    assert data.input_shape == (1, 6)
    assert data.n_classes == 4
    assert torch.equal(data.x_train[:, 0], torch.from_numpy(x_tr))


def test_from_tensors_mismatched_label_length_names_array():
    x_tr, y_tr, x_va, y_va = _arrays()
    with pytest.raises(ValueError, match="y_val"):
        from_tensors("bad", x_tr, y_tr, x_va, y_va[:-1])
    with pytest.raises(ValueError, match="y_train"):
        from_tensors("bad", x_tr, y_tr[:, None], x_va, y_va)  # 2-D labels


def test_from_tensors_float_labels_name_array():
    x_tr, y_tr, x_va, y_va = _arrays()
    with pytest.raises(ValueError) as info:
        from_tensors("bad", x_tr, y_tr.astype(np.float32), x_va, y_va)
    assert "y_train" in str(info.value) and "integer" in str(info.value)
    with pytest.raises(ValueError, match="y_test"):
        from_tensors("bad", x_tr, y_tr, x_va, y_va, x_va, y_va.astype(bool))


@pytest.mark.parametrize("split, bad", [("x_val", float("nan")), ("x_train", float("inf"))])
def test_from_tensors_non_finite_inputs_name_array(split, bad):
    x_tr, y_tr, x_va, y_va = _arrays()
    (x_va if split == "x_val" else x_tr)[3, 0, 1, 2] = bad
    with pytest.raises(ValueError, match=split):
        from_tensors("bad", x_tr, y_tr, x_va, y_va)


def test_from_tensors_differing_sample_shapes():
    x_tr, y_tr, _, y_va = _arrays()
    x_va = np.zeros((8, 1, 5, 5), dtype=np.float32)
    with pytest.raises(ValueError) as info:
        from_tensors("bad", x_tr, y_tr, x_va, y_va)
    message = str(info.value)
    assert "sample shape" in message
    assert "(1, 4, 4)" in message and "(1, 5, 5)" in message


def test_from_tensors_other_refusals():
    x_tr, y_tr, x_va, y_va = _arrays()
    with pytest.raises(ValueError, match="x_train"):  # no feature axis
        from_tensors("bad", np.zeros(20, dtype=np.float32), y_tr, x_va, y_va)
    with pytest.raises(ValueError, match="x_train is empty"):
        from_tensors("bad", x_tr[:0], y_tr[:0], x_va, y_va)
    y_neg = y_tr.copy()
    y_neg[0] = -1
    with pytest.raises(ValueError, match=">= 0"):
        from_tensors("bad", x_tr, y_neg, x_va, y_va)
    with pytest.raises(ValueError, match="n_classes=2"):
        from_tensors("bad", x_tr, np.full(20, 2), x_va, y_va, n_classes=2)
