"""Fuzz the HTTP API with hypothesis: whatever the body, path or header, never a 500."""

from __future__ import annotations

import json
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient
from hypothesis import given, settings
from hypothesis import strategies as st

from automl.service import SearchManager, ServiceSettings, create_app

TOKEN = "fuzz-token"
FIELDS = ["train_loss", "val_loss", "train_acc", "val_acc", "test_acc", "grad_norm_first", "grad_norm_last",
          "zero_grad_frac", "weight_norm", "n_layers", "n_classes", "space", "dataset", "trials", "epochs",
          "pruner", "backend", "metric", "seed", "arch"]
scalars = st.none() | st.booleans() | st.integers(-10**12, 10**12) | st.floats() | st.text(max_size=8)
values = st.recursive(scalars, lambda c: st.lists(c, max_size=12) | st.dictionaries(st.text(max_size=6), c, max_size=4),
                      max_leaves=30)
bodies = st.dictionaries(st.sampled_from(FIELDS) | st.text(max_size=6), values, max_size=8) | values
curves = st.fixed_dictionaries({k: st.lists(st.none() | st.floats() | st.integers(-5, 5), min_size=0, max_size=10)
                                for k in ("train_loss", "val_loss", "train_acc", "val_acc")},
                               optional={"test_acc": st.lists(st.floats(), max_size=10),
                                         "zero_grad_frac": st.lists(st.floats(), max_size=10),
                                         "n_classes": st.integers(-3, 100)})


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    # A valid search body must not start real workers here: answer as if queued instead.
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(SearchManager, "start", lambda self, req: "0" * 12)
        mp.setattr(SearchManager, "status", lambda self, sid, with_leaderboard=True: {"id": sid, "state": "queued"})
        storage = f"sqlite:///{tmp_path_factory.mktemp('fuzz') / 'fuzz.db'}"
        # schemathesis's ASGI transport names the host "testserver": served here by configuration
        with TestClient(create_app(ServiceSettings(storage=storage, api_token=TOKEN, allowed_hosts="testserver")),
                        raise_server_exceptions=False, base_url="http://127.0.0.1") as c:
            yield c


@settings(max_examples=150, deadline=None)
@given(body=bodies, curves=curves, path=st.text(max_size=12), auth=st.sampled_from([None, f"Bearer {TOKEN}", "Bearer x", "Basic abc", ""]))
def test_no_request_gets_a_500(client, body, curves, path, auth):
    headers = {} if auth is None else {"Authorization": auth}
    sid = quote(path, safe="")
    for method, url, payload in (("POST", "/v1/diagnose", body), ("POST", "/v1/diagnose", curves),
                                 ("POST", "/v1/searches", body), ("POST", "/v1/recommend", body),
                                 ("GET", f"/v1/searches/{sid}", None), ("DELETE", f"/v1/searches/{sid}", None)):
        if payload is None:
            res = client.request(method, url, headers=headers)
        else:  # Python's json writes NaN and Infinity, as many clients do
            res = client.request(method, url, content=json.dumps(payload).encode(),
                                 headers={**headers, "content-type": "application/json"})
        assert res.status_code < 500, (method, url, payload, res.text)


# -- schemathesis: cases generated from the service's own OpenAPI spec ----------------------------
schemathesis = pytest.importorskip("schemathesis")
from schemathesis import GenerationMode  # noqa: E402
from schemathesis.checks import not_a_server_error  # noqa: E402
from schemathesis.specs.openapi.checks import content_type_conformance, response_schema_conformance  # noqa: E402


@pytest.fixture(scope="module")
def api_schema(client):
    return schemathesis.openapi.from_asgi("/openapi.json", client.app)


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
@settings(max_examples=120, deadline=None)
@given(data=st.data())
def test_openapi_cases_get_no_500_and_conform(api_schema, mode, data):
    """Cases for every operation of /openapi.json, valid and invalid, sent with the token: no 5xx,
    and JSON answers that match the declared schema."""
    case = data.draw(api_schema.as_strategy(mode))
    res = case.call(headers={"Authorization": f"Bearer {TOKEN}"})
    case.validate_response(res, checks=[not_a_server_error, content_type_conformance, response_schema_conformance])
