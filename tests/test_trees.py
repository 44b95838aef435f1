"""The numpy walk of XGBoost's JSON trees gives XGBoost's own numbers (shipped models and fresh ones)."""

from __future__ import annotations

import gzip
import json

import numpy as np
import pytest
import xgboost as xgb

from automl.diagnosis import FEATURES, load_model
from automl.trees import Trees


def _booster(doc: dict) -> xgb.Booster:
    b = xgb.Booster()
    b.load_model(bytearray(json.dumps(doc).encode()))
    return b


def _rows(n_features: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    rows = rng.normal(0, 2, (64, n_features)).astype(np.float32)
    rows[rng.random(rows.shape) < 0.15] = np.nan  # missing values take each node's default branch
    return rows


@pytest.mark.parametrize("view", ["curves", "full"])
def test_the_diagnosis_heads_walked_in_numpy_equal_xgboost(view):
    model = load_model()
    heads = model.doc["views"][view]
    docs = [h["booster"] for h in heads.values() if h["booster"] is not None]
    rows = _rows(len(FEATURES))
    ours = Trees(docs).predict(rows)
    theirs = np.stack([_booster(d).predict(xgb.DMatrix(rows, missing=np.nan), output_margin=True) for d in docs], axis=1)
    np.testing.assert_allclose(ours, theirs, atol=1e-4)


def test_the_recommender_walked_in_numpy_equals_xgboost():
    from automl.guidance.recommender import zoo_dir

    with gzip.open(zoo_dir() / "recommender.json.gz", "rt") as f:
        docs = json.load(f)["boosters"]
    rows = _rows(int(docs[0]["learner"]["learner_model_param"]["num_feature"]), seed=1)
    ours = Trees(docs).predict(rows)
    theirs = np.stack([_booster(d).predict(xgb.DMatrix(rows, missing=np.nan)) for d in docs], axis=1)
    np.testing.assert_allclose(ours, theirs, atol=1e-5)


@pytest.mark.parametrize("objective", ["binary:logistic", "reg:squarederror"])
def test_fresh_boosters_of_different_sizes_and_objectives(objective):
    rng = np.random.default_rng(3)
    x = rng.normal(size=(200, 5))
    y = (x[:, 0] + x[:, 1] ** 2 > 1).astype(float) if objective == "binary:logistic" else x[:, 0] * 2 + rng.normal(size=200)
    boosters = [xgb.train({"objective": objective, "max_depth": d, "nthread": 1}, xgb.DMatrix(x, label=y), num_boost_round=r)
                for d, r in ((2, 7), (4, 20))]
    docs = [json.loads(bytes(b.save_raw(raw_format="json"))) for b in boosters]
    rows = _rows(5, seed=2)
    ours = Trees(docs).predict(rows)
    theirs = np.stack([b.predict(xgb.DMatrix(rows, missing=np.nan), output_margin=True) for b in boosters], axis=1)
    np.testing.assert_allclose(ours, theirs, atol=1e-4)


def test_an_objective_it_cannot_read_is_refused_by_name():
    x = np.random.default_rng(0).normal(size=(50, 3))
    b = xgb.train({"objective": "count:poisson", "nthread": 1}, xgb.DMatrix(x, label=np.abs(x[:, 0])), num_boost_round=2)
    with pytest.raises(ValueError, match="count:poisson"):
        Trees([json.loads(bytes(b.save_raw(raw_format="json")))])
