"""The HTTP service: searches in worker processes, auth, limits, errors, diagnose, recovery."""

from __future__ import annotations

import os
import signal
import time

import optuna
import pytest
from fastapi.testclient import TestClient

from automl.service import SearchManager, SearchRequest, ServiceSettings, create_app
from automl.storage import open_storage

TOKEN = "s3cret-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
FLAT = {"train_loss": [2.30] * 6, "val_loss": [2.30] * 6, "train_acc": [0.10, 0.11, 0.10, 0.10, 0.11, 0.10],
        "val_acc": [0.10] * 6}
SMALL = {"space": "mlp", "dataset": "digits", "trials": 3, "epochs": 2, "pruner": "median", "seed": 0}


@pytest.fixture()
def client(tmp_path):
    settings = ServiceSettings(storage=f"sqlite:///{tmp_path / 'svc.db'}", api_token=TOKEN, max_body_bytes=20_000)
    with TestClient(create_app(settings), base_url="http://127.0.0.1") as c:
        yield c


def _wait(client, sid, until, timeout=240):
    deadline = time.time() + timeout
    while time.time() < deadline:
        doc = client.get(f"/v1/searches/{sid}").json()
        if until(doc):
            return doc
        time.sleep(0.5)
    raise AssertionError(f"search {sid} never got there: {doc}")


def test_health_and_openapi(client):
    assert client.get("/v1/health").json()["status"] == "ok"
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/v1/searches", "/v1/searches/{sid}", "/v1/diagnose", "/v1/recommend", "/v1/health"} <= set(paths)


@pytest.mark.slow
def test_a_search_runs_in_a_worker_and_is_persisted(client):
    assert client.post("/v1/searches", json=SMALL).status_code == 401
    assert client.post("/v1/searches", json=SMALL, headers={"Authorization": "Bearer nope"}).status_code == 401
    res = client.post("/v1/searches", json=SMALL, headers=AUTH)
    assert res.status_code == 202, res.text
    sid = res.json()["id"]
    assert res.json()["state"] in ("queued", "running")
    doc = _wait(client, sid, lambda d: d["state"] not in ("queued", "running"))
    assert doc["state"] == "done", doc
    assert doc["progress"] == {"finished": 3, "requested": 3, "fraction": 1.0}
    assert len(doc["leaderboard"]) == 3
    assert {r["state"] for r in doc["leaderboard"]} <= {"COMPLETE", "PRUNED"}
    assert set(doc["leaderboard"][0]) == {"number", "state", "params", "value", "epochs", "reason", "duration_s", "curve",
                                          "stopped_at"}
    assert doc["budget"] == SMALL["epochs"] and doc["epochs"]["full"] == 3 * SMALL["epochs"]
    for row in doc["leaderboard"]:  # each trial's curve: one [epoch, value] per epoch it ran
        assert [e for e, _ in row["curve"]] == list(range(1, row["epochs"] + 1)) and row["duration_s"] >= 0
    listed = client.get("/v1/searches")
    assert [s["id"] for s in listed.json()] == [sid] and listed.headers["X-Total-Count"] == "1"
    # the list is read from the summary the worker kept; it says what the detail says
    summary = {k: v for k, v in doc.items() if k not in ("leaderboard", "budget", "epochs")}
    assert listed.json()[0] == summary


def _stored_search(url: str, sid: str, created: str, **attrs) -> None:
    study = optuna.create_study(study_name=f"search-{sid}", storage=open_storage(url), direction="maximize")
    for key, value in {"service_state": "done", "service_trials": 2, "service_created": created, "metric": "val_acc",
                       "service_progress": {"finished": 2, "best": {"number": 1, "value": 0.9}}, **attrs}.items():
        study.set_user_attr(key, value)


def test_the_list_pages_and_flags_a_study_it_cannot_read_instead_of_failing(tmp_path):
    url = f"sqlite:///{tmp_path / 'svc.db'}"
    for i in range(5):
        _stored_search(url, f"{i:012d}", f"2026-01-0{i + 1}T00:00:00+00:00")
    _stored_search(url, "bad000000000", "2026-01-09T00:00:00+00:00", service_trials="many")  # a non-integer attribute
    optuna.create_study(study_name="search-multi000000", storage=open_storage(url), directions=["maximize", "minimize"])
    with TestClient(create_app(ServiceSettings(storage=url, api_token=TOKEN)), base_url="http://127.0.0.1") as c:
        res = c.get("/v1/searches")
        assert res.status_code == 200 and res.headers["X-Total-Count"] == "7"
        docs = {d["id"]: d for d in res.json()}
        assert docs["000000000003"]["best"] == {"number": 1, "value": 0.9} and docs["000000000003"]["state"] == "done"
        assert docs["bad000000000"]["state"] == "unreadable" and "cannot be read as a search" in docs["bad000000000"]["error"]
        assert docs["multi000000"]["state"] == "unreadable" and "2 objectives" in docs["multi000000"]["error"]
        page = c.get("/v1/searches", params={"limit": 2, "offset": 1}).json()
        assert [d["id"] for d in page] == [d["id"] for d in res.json()][1:3]
        assert c.get("/v1/searches", params={"limit": 0}).status_code == 422
        newest = c.get("/v1/searches", params={"order": "newest", "limit": 3}).json()
        assert [d["id"] for d in newest] == [d["id"] for d in res.json()][::-1][:3]
        assert c.get("/v1/searches/multi000000").status_code == 409
        assert c.get("/v1/searches/bad000000000").status_code == 409
        assert c.get("/v1/searches/000000000001").status_code == 200


def test_bad_requests_name_what_was_wrong(client):
    res = client.post("/v1/searches", json={**SMALL, "trials": 0}, headers=AUTH)
    assert res.status_code == 422 and "trials" in res.text
    res = client.post("/v1/searches", json={**SMALL, "space": "transformer"}, headers=AUTH)
    assert res.status_code == 422 and "space" in res.text
    res = client.post("/v1/searches", json={**SMALL, "colour": "red"}, headers=AUTH)
    assert res.status_code == 422 and "colour" in res.text
    res = client.post("/v1/searches", json={**SMALL, "pruner": "median", "converge": True}, headers=AUTH)
    assert res.status_code == 422 and "converge is an option of the signal pruner, but pruner is 'median'" in res.text
    res = client.post("/v1/searches", content=b'{"space": "mlp", "dataset": "digits", "trials": Infinity}', headers={
        **AUTH, "content-type": "application/json"})
    assert res.status_code == 422 and "trials" in res.text  # the bad value echoed as text, not a 500
    assert client.get("/v1/searches/doesnotexist").status_code == 404
    assert client.delete("/v1/searches/doesnotexist", headers=AUTH).status_code == 404
    assert client.delete("/v1/searches/doesnotexist").status_code == 401


def test_oversized_bodies_get_413(client):
    big = {**FLAT, "train_loss": [2.3] * 5000}
    assert client.post("/v1/diagnose", json=big).status_code == 413


def test_an_oversized_chunked_body_gets_413_and_a_small_one_is_read():
    """A streamed body (no Content-Length) over the limit once got 400 from the body parser."""
    import json

    settings = ServiceSettings(storage="memory", api_token=TOKEN, max_body_bytes=20_000)
    with TestClient(create_app(settings), base_url="http://127.0.0.1") as c:
        def chunks(doc, size=4096):
            data = json.dumps(doc).encode()
            yield from (data[i:i + size] for i in range(0, len(data), size))

        big = {**FLAT, "train_loss": [2.3] * 5000}
        res = c.post("/v1/diagnose", content=chunks(big), headers={"content-type": "application/json"})
        assert res.status_code == 413 and "over 20000 bytes" in res.text
        res = c.post("/v1/diagnose", content=chunks(FLAT, 16), headers={"content-type": "application/json"})
        assert res.status_code == 200 and "labels" in res.json()


def test_diagnose_and_recommend(client):
    res = client.post("/v1/diagnose", json=FLAT)
    assert res.status_code == 200, res.text
    body = res.json()
    assert set(body) == {"labels", "healthy", "reasons", "scope", "epochs", "run_epochs", "onsets", "rule_onsets"}
    assert body["healthy"] < 0.5 and body["scope"] == "whole" and set(body["onsets"]) & {"underfit", "plateau"}
    assert body["epochs"] == body["run_epochs"] == 6 and set(body["rule_onsets"]) >= {"underfit"}
    assert client.post("/v1/diagnose", params={"k": 5}, json=FLAT).json()["scope"] == "early"
    res = client.post("/v1/diagnose", params={"k": 12}, json=FLAT)
    assert res.status_code == 422 and "k=12: the model reads the first 2 to 8 epochs" in res.text
    res = client.post("/v1/diagnose", json={**FLAT, "val_acc": [0.1, "x", 0.1, 0.1, 0.1, 0.1]})
    assert res.status_code == 422 and "val_acc" in res.text
    res = client.post("/v1/recommend", json={"arch": "mlp:784-128-10", "top": 2})
    assert res.status_code == 200, res.text
    assert res.json()["arch"] == "mlp:784-128-10" and len(res.json()["recommendations"]) == 2
    res = client.post("/v1/recommend", json={"arch": "mlp:784-12x-10"})
    assert res.status_code == 422 and "hidden width 1 '12x'" in res.json()["detail"][0]["msg"]
    assert client.post("/v1/recommend", json={"arch": "mlp:784-10", "top": 0}).status_code == 422


def test_no_token_configured_refuses_work(tmp_path):
    settings = ServiceSettings(storage=f"sqlite:///{tmp_path / 'svc.db'}")
    with TestClient(create_app(settings), base_url="http://127.0.0.1") as c:
        res = c.post("/v1/searches", json=SMALL, headers=AUTH)
        assert res.status_code == 401 and "AUTOML_API_TOKEN" in res.text


@pytest.mark.parametrize("blank", ["", " ", "\t\n"])
def test_an_empty_token_means_no_token_never_an_open_door(tmp_path, monkeypatch, blank):
    """AUTOML_API_TOKEN="" once let `Authorization: Bearer` (nothing after it) start a search."""
    monkeypatch.setenv("AUTOML_API_TOKEN", blank)
    settings = ServiceSettings(storage=f"sqlite:///{tmp_path / 'svc.db'}")
    assert settings.api_token is None and ServiceSettings(api_token=blank).api_token is None
    with TestClient(create_app(settings), base_url="http://127.0.0.1") as c:
        for header in ({"Authorization": "Bearer"}, {"Authorization": "Bearer "}, {"Authorization": f"Bearer {blank}"}, {}):
            res = c.post("/v1/searches", json=SMALL, headers=header)
            assert res.status_code == 401 and "no AUTOML_API_TOKEN set" in res.text, (header, res.text)
        assert c.get("/v1/searches").json() == []  # nothing was started
    from click.testing import CliRunner

    from automl.cli import cli

    res = CliRunner().invoke(cli, ["serve", "--host", "0.0.0.0", "--storage", f"sqlite:///{tmp_path / 'svc.db'}"],
                             env={"AUTOML_API_TOKEN": blank})
    assert res.exit_code == 2 and "beyond loopback needs AUTOML_API_TOKEN" in res.output


def test_a_configured_token_is_not_matched_by_an_empty_bearer(client):
    for header in ({"Authorization": "Bearer"}, {"Authorization": "Bearer  "}, {"Authorization": "bearer"}):
        assert client.post("/v1/searches", json=SMALL, headers=header).status_code == 401


@pytest.mark.slow
def test_cancel_and_a_killed_service_keep_finished_trials(tmp_path):
    """DELETE ends a search (running trials FAIL); a service that dies mid-search and restarts marks
    the search interrupted and keeps every finished trial."""
    url = f"sqlite:///{tmp_path / 'svc.db'}"
    long = SearchRequest(**{**SMALL, "trials": 200, "epochs": 30, "pruner": "none"})
    mgr = SearchManager(url)
    try:
        sid = mgr.start(long)
        deadline = time.time() + 240
        while mgr.status(sid)["progress"]["finished"] < 1 and time.time() < deadline:
            time.sleep(0.5)
        out = mgr.cancel(sid)
        assert out["state"] == "cancelled"
        doc = mgr.status(sid)
        assert doc["progress"]["finished"] >= 1
        assert "RUNNING" not in {r["state"] for r in doc["leaderboard"]}

        sid3 = mgr.start(long)  # a worker killed under a live service: the search fails, its trials stay
        while mgr.status(sid3)["progress"]["finished"] < 1 and time.time() < deadline + 240:
            time.sleep(0.5)
        os.kill(mgr._procs[sid3].pid, signal.SIGKILL)
        mgr._procs[sid3].join(10)
        doc = mgr.status(sid3)
        assert doc["state"] == "failed" and "-9" in doc["error"], doc
        assert doc["progress"]["finished"] >= 1 and "RUNNING" not in {r["state"] for r in doc["leaderboard"]}

        sid2 = mgr.start(long)
        while mgr.status(sid2)["progress"]["finished"] < 1 and time.time() < deadline + 480:
            time.sleep(0.5)
        kept = mgr.status(sid2)["progress"]["finished"]
        os.kill(mgr._procs[sid2].pid, signal.SIGKILL)  # the worker dies with the service's process group
        mgr._procs[sid2].join(10)
    finally:
        mgr._procs.clear()  # this manager is "dead": a new one takes over the storage
    restarted = SearchManager(url)
    doc = restarted.status(sid2)
    assert doc["state"] == "interrupted" and "stopped" in doc["error"]
    assert doc["progress"]["finished"] >= kept
    assert "RUNNING" not in {r["state"] for r in doc["leaderboard"]}
    assert restarted.status(sid)["state"] == "cancelled"


@pytest.mark.slow
def test_a_worker_dies_with_its_killed_service_and_never_rewrites_the_searchs_state(tmp_path):
    """kill -9 of `automl serve` once left its worker training as an orphan, which later died with
    "Cannot tell a FAIL trial" and overwrote the restarted service's `interrupted` with `failed`."""
    import http.client
    import json
    import socket
    import subprocess
    import sys

    url = f"sqlite:///{tmp_path / 'svc.db'}"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-m", "automl.cli", "serve", "--port", str(port), "--storage", url],
                              env={**os.environ, "AUTOML_API_TOKEN": TOKEN}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 120
        while True:
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
                conn.request("POST", "/v1/searches", json.dumps({**SMALL, "trials": 200, "epochs": 40, "pruner": "none"}),
                             {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"})
                sid = json.loads(conn.getresponse().read())["id"]
                break
            except OSError:
                assert time.time() < deadline, "the service did not start"
                time.sleep(0.5)
        study = None
        while time.time() < deadline + 240:  # until a trial is running with an epoch reported
            time.sleep(0.5)
            study = optuna.load_study(study_name=f"search-{sid}", storage=open_storage(url))
            running = [t for t in study.get_trials(deepcopy=False) if t.state.name == "RUNNING" and t.intermediate_values]
            if running:
                break
        worker_pid = int(running[0].user_attrs["worker"].rsplit(":", 1)[1])
        os.kill(server.pid, signal.SIGKILL)
        server.wait(10)
        gone = time.time() + 30
        while time.time() < gone:
            try:
                os.kill(worker_pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.2)
        else:
            os.kill(worker_pid, signal.SIGKILL)
            pytest.fail("the search worker outlived its killed service by 30 s")
    finally:
        if server.poll() is None:
            server.kill()
    restarted = SearchManager(url)
    doc = restarted.status(sid)
    assert doc["state"] == "interrupted", doc
    time.sleep(3)  # nothing left running can rewrite it
    assert restarted.status(sid)["state"] == "interrupted"
    assert "RUNNING" not in {r["state"] for r in restarted.status(sid)["leaderboard"]}


@pytest.mark.slow
def test_a_second_service_on_the_same_storage_leaves_a_live_search_alone(tmp_path):
    """Its startup recovery once failed a trial another live service was running."""
    url = f"sqlite:///{tmp_path / 'svc.db'}"
    first = SearchManager(url)
    try:
        sid = first.start(SearchRequest(**{**SMALL, "trials": 200, "epochs": 30, "pruner": "none"}))
        deadline = time.time() + 240
        while time.time() < deadline:
            doc = first.status(sid)
            if doc["state"] == "running" and any(r["state"] == "RUNNING" and r["curve"] for r in doc["leaderboard"]):
                break
            time.sleep(0.5)
        second = SearchManager(url)  # recovers at start
        assert second.recover() == [] and second.status(sid)["state"] == "running"
        assert "FAIL" not in {r["state"] for r in first.status(sid)["leaderboard"]}
    finally:
        first.shutdown()
    assert SearchManager(url).status(sid)["state"] == "interrupted"  # its owner gone: now it is recovered


def test_searches_beyond_the_limit_wait_in_a_visible_queue_and_start_in_turn(tmp_path):
    """Five POSTs once started five training processes at once; one request could ask 10,000 x 1,000."""
    url = f"sqlite:///{tmp_path / 'svc.db'}"
    settings = ServiceSettings(storage=url, api_token=TOKEN, max_running_searches=1, max_trial_epochs=500)
    with TestClient(create_app(settings), base_url="http://127.0.0.1") as c:
        res = c.post("/v1/searches", json={**SMALL, "trials": 50, "epochs": 20}, headers=AUTH)
        assert res.status_code == 422 and "trials x epochs = 50 x 20 = 1000 is over this service's limit of 500" in res.text
        first = c.post("/v1/searches", json={**SMALL, "trials": 100, "epochs": 5, "pruner": "none"}, headers=AUTH).json()["id"]
        second = c.post("/v1/searches", json=SMALL, headers=AUTH).json()["id"]
        third = c.post("/v1/searches", json=SMALL, headers=AUTH).json()["id"]
        docs = {d["id"]: d for d in c.get("/v1/searches").json()}
        assert docs[second]["state"] == "queued" and docs[second]["queue_position"] == 1
        assert docs[third]["queue_position"] == 2 and docs[first]["queue_position"] is None
        assert c.delete(f"/v1/searches/{first}", headers=AUTH).json()["state"] == "cancelled"
        done = _wait(c, third, lambda d: d["state"] == "done")  # the queue moved up and ran them in turn
        assert done["queue_position"] is None and c.get(f"/v1/searches/{second}").json()["state"] == "done"


def test_the_listing_is_served_from_memory_and_read_again_when_old(tmp_path, monkeypatch):
    """What keeps the list fast at 1,000 searches (timed by benchmarks/service_load.py): one storage
    read serves many requests; a change this service makes shows at once; an old listing is
    served while a fresh one is read in the background, and that read takes only the searches
    that are new or may still change (a full read of 1,000 studies every second slowed the
    requests beside it: p99 153 ms at 8 clients)."""
    url = f"sqlite:///{tmp_path / 'svc.db'}"
    for i in range(3):
        _stored_search(url, f"{i:012d}", f"2026-01-0{i + 1}T00:00:00+00:00")
    _stored_search(url, "000000000007", "2026-01-07T00:00:00+00:00", service_state="running",
                   service_owner="someone-else", service_heartbeat=time.time())  # another live service runs it
    mgr = SearchManager(url)
    try:
        full, attrs = [], []
        real_all, real_attrs = mgr.storage.get_all_studies, mgr.storage.get_study_user_attrs
        monkeypatch.setattr(mgr.storage, "get_all_studies", lambda: full.append(1) or real_all())
        monkeypatch.setattr(mgr.storage, "get_study_user_attrs", lambda i: attrs.append(i) or real_attrs(i))
        for _ in range(5):
            assert mgr.summaries(10, 0)[1] == 4
        assert len(full) == 1 and attrs == []
        _stored_search(url, "000000000009", "2026-01-09T00:00:00+00:00")  # written by another process
        study = optuna.load_study(study_name="search-000000000007", storage=open_storage(url))
        study.set_user_attr("service_progress", {"finished": 1, "best": {"number": 0, "value": 0.5}})
        mgr._listing_at -= 10  # the listing is now old
        assert mgr.summaries(10, 0)[1] == 4  # served at once, as it was
        deadline = time.time() + 10
        while mgr.summaries(10, 0)[1] != 5 and time.time() < deadline:
            time.sleep(0.05)
        docs = {d["id"]: d for d in mgr.summaries(10, 0)[0]}
        assert len(docs) == 5 and docs["000000000007"]["progress"]["finished"] == 1
        assert len(full) == 1 and len(attrs) == 2  # only the new search and the running one were read
        study.set_user_attr("service_state", "done")
        mgr._changed()  # what start/cancel do: the next request reads afresh
        assert {d["id"]: d for d in mgr.summaries(10, 0)[0]}["000000000007"]["state"] == "done" and len(attrs) == 3
        mgr._changed()
        assert mgr.summaries(10, 0)[1] == 5 and len(attrs) == 3  # every search is finished: nothing to re-read
        optuna.delete_study(study_name="search-000000000001", storage=open_storage(url))
        mgr._changed()
        assert [d["id"] for d in mgr.summaries(10, 0)[0]] == ["000000000000", "000000000002", "000000000007",
                                                              "000000000009"]
    finally:
        mgr.shutdown()


def test_many_clients_on_one_search_share_one_read_of_its_trials(tmp_path, monkeypatch):
    """What keeps the detail fast when every open page polls it (timed by benchmarks/service_load.py):
    16 requests at once read the search once; a read older than DETAIL_MAX_AGE is read again; a
    change this service makes shows at once; an unknown id keeps nothing behind."""
    import threading

    url = f"sqlite:///{tmp_path / 'svc.db'}"
    _stored_search(url, "000000000001", "2026-01-01T00:00:00+00:00")
    mgr = SearchManager(url)
    try:
        reads = []
        real = mgr.status

        def slow_status(sid, **kw):
            reads.append(sid)
            time.sleep(0.2)  # a read that takes a while, so the requests overlap
            return real(sid, **kw)

        monkeypatch.setattr(mgr, "status", slow_status)
        docs = []
        threads = [threading.Thread(target=lambda: docs.append(mgr.detail("000000000001"))) for _ in range(16)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(docs) == 16 and len(reads) == 1 and docs[0]["state"] == "done" and "leaderboard" in docs[0]
        monkeypatch.setattr(mgr, "DETAIL_MAX_AGE", 0.05)
        time.sleep(0.1)
        mgr.detail("000000000001")
        assert len(reads) == 2
        monkeypatch.setattr(mgr, "DETAIL_MAX_AGE", 60.0)
        mgr.detail("000000000001")
        assert len(reads) == 2
        mgr._changed()  # what start/cancel do
        mgr.detail("000000000001")
        assert len(reads) == 3
        with pytest.raises(KeyError):
            mgr.detail("nosuchsearch")
        assert "nosuchsearch" not in mgr._detail_locks and "nosuchsearch" not in mgr._details
    finally:
        mgr.shutdown()


def test_a_worker_whose_search_was_cancelled_while_it_started_runs_nothing(tmp_path):
    """A search cancelled between leaving the queue and its worker starting (the service's Ray may
    take seconds to start): the worker finds it no longer queued and exits without changing it."""
    import multiprocessing

    from automl.search import SearchSettings, create_study
    from automl.service import search_worker

    url = f"sqlite:///{tmp_path / 'svc.db'}"
    settings = SearchSettings(**SMALL, storage=url, study="search-000000000042")
    study = create_study(settings, open_storage(url))
    study.set_user_attr("service_state", "cancelled")
    proc = multiprocessing.get_context("spawn").Process(target=search_worker, args=(settings.model_dump(),))
    proc.start()
    proc.join(120)
    assert proc.exitcode == 0
    after = optuna.load_study(study_name="search-000000000042", storage=open_storage(url))
    assert after.user_attrs["service_state"] == "cancelled" and not after.trials
    assert "service_worker" not in after.user_attrs


def test_a_host_header_it_does_not_serve_gets_400(tmp_path):
    """DNS rebinding: a page on evil.example resolving to 127.0.0.1 could read the list."""
    settings = ServiceSettings(storage=f"sqlite:///{tmp_path / 'svc.db'}", api_token=TOKEN)
    with TestClient(create_app(settings), base_url="http://127.0.0.1") as c:
        assert c.get("/v1/searches").status_code == 200
        assert c.get("/v1/searches", headers={"Host": "localhost:8000"}).status_code == 200
        assert c.get("/v1/searches", headers={"Host": "evil.example:8000"}).status_code == 400
        assert c.get("/", headers={"Host": "evil.example"}).status_code == 400
    wide = ServiceSettings(storage="memory", api_token=TOKEN, host="0.0.0.0", allowed_hosts="automl.lab, 10.0.0.5")
    assert wide.hosts() == ["automl.lab", "10.0.0.5"] and ServiceSettings(host="0.0.0.0").hosts() == ["*"]


def test_the_page_allows_no_inline_code_and_no_framing(client):
    res = client.get("/")
    csp = res.headers["Content-Security-Policy"]
    assert "'unsafe-inline'" not in csp and "frame-ancestors 'none'" in csp and res.headers["X-Frame-Options"] == "DENY"
    page = res.text
    assert "<script>" not in page and "<style>" not in page and "style=" not in page  # all of it in /app.js, /app.css
    js, css = client.get("/app.js"), client.get("/app.css")
    assert js.status_code == css.status_code == 200
    assert js.headers["content-type"].startswith("text/javascript") and "function refresh" in js.text
    assert css.headers["content-type"].startswith("text/css")
