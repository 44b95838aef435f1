"""The HTTP service: ``automl serve`` (FastAPI on uvicorn).

Endpoints (OpenAPI at ``/docs``):

- ``POST /v1/searches`` ``{space, dataset, trials, epochs, pruner, backend, metric, seed, failure,
  converge}`` -> 202
  ``{id, state, ...}``. The search runs in its own worker process (never in the event loop) and
  every trial is persisted in the Optuna storage, in a study named ``search-<id>``;
- ``GET /v1/searches``; ``GET /v1/searches/{id}`` -> ``{id, state, progress, budget, epochs: {used, full},
  leaderboard: [{number, state, params, value, epochs, reason, duration_s, curve: [[epoch, value]],
  stopped_at}]}`` with Optuna's trial states (``COMPLETE``, ``PRUNED``...);
  ``DELETE /v1/searches/{id}`` cancels a running search (its running trials end ``FAIL``);
- ``POST /v1/diagnose`` (the JSON of ``automl diagnose``; ``?k=K`` for the early question) -> ``{labels, healthy,
  reasons, scope, epochs, run_epochs, onsets, rule_onsets}``;
- ``POST /v1/recommend`` ``{arch, top}``: guidance networks ranked for an architecture
  (``automl.recommend``), with ``confidence: "low"`` outside what the zoo has seen;
- ``GET /v1/health``;
- ``GET /``: a page listing the searches with live progress, each trial's state and reason (why it
  was pruned or failed), and a plot of the best value over trials; it polls the endpoints above.

A search's state is kept in its study (user attribute ``service_state``): ``queued``, ``running``,
``done``, ``failed`` (with the error), ``cancelled``, or ``interrupted``: a service that restarts
finds searches it was running and marks them so, their running trials ``FAIL``; finished trials are
never lost. Settings: :class:`ServiceSettings` (environment variables ``AUTOML_*``). Requests that
start or cancel work need ``Authorization: Bearer <AUTOML_API_TOKEN>`` (compared in constant time);
reads and the stateless ``diagnose``/``recommend`` need none. Bodies over ``max_body_bytes`` get 413.
"""

from __future__ import annotations

import hmac
import math
import multiprocessing
import os
import secrets
import threading
import time
import uuid
from collections.abc import Mapping
from datetime import datetime, timezone
from importlib import resources
from typing import Any, Literal, Optional

from fastapi import Depends, FastAPI, HTTPException, Query, Request, Response
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from automl.decision.defaults import DEFAULT_RISK
from automl.training.data import DATASETS

__all__ = ["ServiceSettings", "SearchRequest", "SearchManager", "create_app", "search_worker"]

SPACES = ("mlp", "cnn", "resnet", "resnet_small")
STUDY_PREFIX = "search-"
ACTIVE = ("queued", "running")
#: States a search never leaves: the listing reads such a search once.
FINAL = ("done", "failed", "cancelled", "interrupted")
LOOPBACK = ("127.0.0.1", "localhost", "::1")
#: The page's headers: scripts and styles from this origin only (no inline code), never framed.
PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                               "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
    "X-Frame-Options": "DENY", "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer",
}
#: Seconds between a search worker's heartbeats; one silent for 6 beats has lost its owner.
HEARTBEAT_S = 10.0
#: Seconds the service's own Ray may take to start.
RAY_START_S = 120.0


class ServiceSettings(BaseSettings):
    """``automl serve`` settings; each is read from ``AUTOML_<NAME>`` unless given."""

    model_config = SettingsConfigDict(env_prefix="AUTOML_", extra="forbid")

    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)
    storage: str = "sqlite:///automl.db"
    api_token: Optional[SecretStr] = None
    max_body_bytes: int = Field(1_000_000, ge=1024)
    #: searches training at once (each a process); the others wait, listed as queued with their position
    max_running_searches: int = Field(2, ge=1, le=64)
    #: the most trials x epochs one search may ask for
    max_trial_epochs: int = Field(20_000, ge=1)
    #: a running Ray cluster (``ray start --head``) every Ray search of this service joins; empty: the
    #: service starts one local Ray for its first Ray search, shared by the next, stopped with it
    ray_address: Optional[str] = None
    #: CPUs of that local Ray (default: the machine's)
    ray_cpus: Optional[int] = Field(None, ge=1)
    #: Host headers answered, comma-separated (besides the loopback names when bound to loopback);
    #: empty and bound beyond loopback: any (the token guards what changes state)
    allowed_hosts: str = ""

    def hosts(self) -> list[str]:
        """The Host header values this service answers (a request naming another gets 400: a page
        on another site cannot read the API through DNS rebinding)."""
        named = [h.strip() for h in self.allowed_hosts.split(",") if h.strip()]
        if self.host in LOOPBACK:
            return [*named, *LOOPBACK, "[::1]"]
        return named or ["*"]

    @field_validator("api_token", mode="before")
    @classmethod
    def _blank_is_no_token(cls, value: Any) -> Any:
        """``AUTOML_API_TOKEN=""`` (or blank) means no token, never a token that an empty
        ``Authorization: Bearer`` header would match."""
        raw = value.get_secret_value() if isinstance(value, SecretStr) else value
        if raw is None or (isinstance(raw, str) and not raw.strip()):
            return None
        return raw.strip() if isinstance(raw, str) else value


class SearchRequest(BaseModel):
    """The body of ``POST /v1/searches``."""

    model_config = ConfigDict(extra="forbid")

    space: Literal[SPACES]  # type: ignore[valid-type]
    dataset: Literal[DATASETS]  # type: ignore[valid-type]
    trials: int = Field(20, ge=1, le=10_000)
    epochs: int = Field(10, ge=1, le=1_000)
    pruner: Literal["signal", "forecast", "median", "asha", "hyperband", "none"] = "signal"
    risk: float = Field(DEFAULT_RISK, gt=0.0, lt=1.0)
    backend: Literal["optuna", "ray"] = "optuna"
    metric: Literal["val_acc", "val_loss"] = "val_acc"
    seed: int = Field(0, ge=0, le=2**31 - 1)
    failure: bool = False
    converge: bool = False

    @model_validator(mode="after")
    def _signal_only(self) -> "SearchRequest":
        from automl.search import check_signal_options

        check_signal_options(self.pruner, failure=self.failure, converge=self.converge)
        return self


class RecommendRequest(BaseModel):
    """The body of ``POST /v1/recommend``."""

    model_config = ConfigDict(extra="forbid")

    arch: str = Field(..., max_length=200, description="an MLP spec such as 'mlp:784-128-64-10'")
    top: int = Field(3, ge=1, le=50)


def _finite(x: Any) -> Any:
    return x if not isinstance(x, float) or math.isfinite(x) else None


def _json_safe(x: Any) -> Any:
    """``x`` with non-finite floats written as strings ("nan", "inf"): strict JSON has no such numbers."""
    if isinstance(x, float) and not math.isfinite(x):
        return repr(x)
    if isinstance(x, dict):
        return {k: _json_safe(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_json_safe(v) for v in x]
    return x


def _die_with_parent() -> int:
    """End this worker when the service that started it is gone (``kill -9`` included): Linux's
    parent-death signal at once, and everywhere a watch on the parent's pid each second. SIGTERM
    ends the running trial ``FAIL`` with the reason and leaves the search's state to the service."""
    import ctypes
    import signal as _signal

    parent = os.getppid()
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, int(_signal.SIGTERM))  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass  # not Linux: the watch below does it

    def watch() -> None:
        while True:
            time.sleep(1.0)
            if os.getppid() != parent:  # re-parented: the service died
                os.kill(os.getpid(), _signal.SIGTERM)
                return

    threading.Thread(target=watch, name="automl-parent-watch", daemon=True).start()
    return parent


def _ray_head(conn: Any, num_cpus: int, token: str) -> None:
    """The service's one local Ray, in a process of its own started for its first Ray search: it
    sends back its address (or why it could not start), then holds Ray until the service says stop
    or is gone (it dies with the service, as workers do), and shuts it down. Only drivers holding
    ``token`` may join it (Ray's token authentication): the service's search workers."""
    _die_with_parent()
    os.environ.update(_ray_env(token))
    try:
        import ray

        ray.init(address="local", num_cpus=num_cpus, include_dashboard=False, log_to_driver=False, configure_logging=False)
        conn.send(("ok", ray.get_runtime_context().gcs_address))
    except Exception as exc:  # noqa: BLE001 - the service reports it on the search that asked
        conn.send(("error", f"{type(exc).__name__}: {exc}"[:300]))
        return
    try:
        conn.recv()  # "stop", or EOF once the service is gone
    except (EOFError, OSError):
        pass
    finally:
        ray.shutdown()


def _ray_env(token: str) -> dict[str, str]:
    return {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": token, "RAY_USAGE_STATS_ENABLED": "0"}


def search_worker(settings: dict[str, Any], env: Optional[dict[str, str]] = None) -> None:
    """A search's worker process: run it, and leave its state in the study. It dies with the
    service; if it finds its search already ended by someone else (cancelled, or marked
    interrupted by a restarted service), it stops quietly and changes nothing. ``env``: variables
    it runs with (the token of the service's Ray), kept out of the stored settings."""
    os.environ.update(env or {})
    import optuna

    from automl.search import SearchSettings, run_search
    from automl.search.optuna_backend import Interrupted, interruptible, was_interrupted
    from automl.search.settings import worker_id
    from automl.storage import open_storage, study_storage

    parent = _die_with_parent()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    s = SearchSettings(**settings)
    study = optuna.load_study(study_name=s.study_name, storage=open_storage(s.storage))
    if study.user_attrs.get("service_state") != "queued":
        return  # ended (cancelled) while it was starting: nothing to run, nothing to change
    study.set_user_attr("service_worker", worker_id())
    study.set_user_attr("service_heartbeat", time.time())
    study.set_user_attr("service_state", "running")
    if s.backend == "ray":
        study.set_user_attr("service_ray", s.ray_address)  # the cluster its trials ran on

    def beat() -> None:  # tells another service on this storage that this search has a live owner
        while True:
            time.sleep(HEARTBEAT_S)
            try:
                study.set_user_attr("service_heartbeat", time.time())
            except Exception:  # noqa: BLE001 - a storage hiccup: the next beat tries again
                pass

    threading.Thread(target=beat, name="automl-search-heartbeat", daemon=True).start()
    progress = {"finished": 0, "best": None}
    sign = 1.0 if s.direction == "maximize" else -1.0

    def on_trial_done(trial: Any) -> None:
        # what GET /v1/searches lists, kept on the study so the list never reads every trial
        progress["finished"] += 1
        value = trial.value if trial.state.name == "COMPLETE" else None
        if value is not None and math.isfinite(value) and (progress["best"] is None or sign * value > sign * progress["best"]["value"]):
            progress["best"] = {"number": trial.number, "value": value}
        study.set_user_attr("service_progress", dict(progress))

    def still_mine() -> bool:
        return optuna.load_study(study_name=s.study_name, storage=study_storage(study)).user_attrs.get("service_state") == "running"

    try:
        with interruptible():  # SIGTERM (cancel, or the service gone): the running trial ends FAIL with why
            run_search(s, on_trial_done=on_trial_done)
    except Interrupted:
        return  # whoever stopped it (a cancel, a restarted service) says what the search's state is
    except BaseException as exc:  # noqa: BLE001 - any other end of the worker is recorded, then re-raised
        if was_interrupted() or os.getppid() != parent or not still_mine():
            return  # stopped (the signal may surface wrapped), its service gone, or its search ended by another
        study.set_user_attr("service_state", "failed")
        study.set_user_attr("service_error", f"{type(exc).__name__}: {exc}")
        raise
    if still_mine():
        study.set_user_attr("service_state", "done")


def _alive(owner: Any) -> Optional[bool]:
    """Whether the process ``host:pid`` lives: ``None`` when it is on another machine."""
    import socket

    host, _, pid = str(owner or "").rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return None
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _owned(attrs: Mapping[str, Any]) -> bool:
    """Whether an active search still has a live owner (see :meth:`SearchManager.recover`)."""
    worker, service = attrs.get("service_worker"), attrs.get("service_owner")
    here = _alive(worker) if worker else _alive(service)
    if here is not None:
        return here
    beat = attrs.get("service_heartbeat")
    return isinstance(beat, (int, float)) and time.time() - beat < 6 * HEARTBEAT_S


class SearchManager:
    """Searches started by this service, each a study ``search-<id>`` in one Optuna storage."""

    def __init__(self, storage: str, max_running: int = 2, *, ray_address: Optional[str] = None,
                 ray_cpus: Optional[int] = None) -> None:
        from automl.storage import open_storage

        self.url = storage
        self.storage = open_storage(storage)
        self.max_running = max_running
        self._procs: dict[str, multiprocessing.process.BaseProcess] = {}
        self._queue: list[tuple[str, dict[str, Any]]] = []  # (id, settings) waiting for a free slot, oldest first
        self._lock = threading.Lock()
        self._ctx = multiprocessing.get_context("spawn")  # never fork a process that runs threads
        self._stop = threading.Event()
        self._listing: Optional[list[dict[str, Any]]] = None  # see summaries()
        self._listing_at = 0.0
        self._listing_stale = False  # this service changed a search since the listing was read
        self._listed: dict[tuple[str, int], dict[str, Any]] = {}  # (study name, id) -> summary, see _read_listing
        self._refreshing = threading.Lock()
        self._details: dict[str, tuple[float, dict[str, Any]]] = {}  # see detail()
        self._detail_locks: dict[str, threading.Lock] = {}
        self._changed_at = 0.0
        self._starting: set[str] = set()  # taken from the queue, their worker not started yet
        self._dropped: set[str] = set()  # cancelled while starting
        self._ray_given = ray_address or None
        self._ray_cpus = ray_cpus or os.cpu_count() or 1
        self._ray: Optional[tuple[Any, Any, str]] = None  # (process, pipe, address) of the service's own Ray
        self._ray_token = secrets.token_hex(32)  # only this service's workers may join that Ray
        self._ray_lock = threading.Lock()
        self.recover()
        threading.Thread(target=self._pump_forever, name="automl-search-queue", daemon=True).start()

    def _pump_forever(self) -> None:
        while not self._stop.wait(0.5):
            self._pump()

    def _pump(self) -> None:
        """Start queued searches while fewer than ``max_running`` run. A Ray search joins the
        service's Ray (:meth:`ray_address`), which may take seconds to start the first time: that
        happens outside the lock, so the service answers meanwhile."""
        with self._lock:
            running = sum(p.is_alive() for p in self._procs.values()) + len(self._starting)
            ready = []
            while self._queue and running < self.max_running:
                sid, settings = self._queue.pop(0)
                self._starting.add(sid)
                ready.append((sid, settings))
                running += 1
            if ready:
                self._listing_stale = True  # queue positions changed (the lock is held: set directly)
        for sid, settings in ready:
            if self._stop.is_set():  # shutting down: a restarted service takes it from its stored state
                with self._lock:
                    self._starting.discard(sid)
                continue
            try:
                env: dict[str, str] = {}
                if settings.get("backend") == "ray" and not settings.get("ray_address"):
                    settings = {**settings, "ray_address": self.ray_address()}
                    env = _ray_env(self._ray_token) if self._ray_given is None else {}
                with self._lock:
                    if sid in self._dropped:  # cancelled while its Ray started
                        self._starting.discard(sid)
                        self._dropped.discard(sid)
                        continue
                proc = self._ctx.Process(target=search_worker, args=(settings, env), name=f"automl-search-{sid}", daemon=False)
                proc.start()
            except Exception as exc:  # noqa: BLE001 - the search says why it never started
                with self._lock:
                    self._starting.discard(sid)
                    self._dropped.discard(sid)
                self._end(self._load(sid), "failed", f"the search could not start: {exc}"[:300])
                continue
            with self._lock:
                self._starting.discard(sid)
                self._procs[sid] = proc
                dropped = sid in self._dropped
                self._dropped.discard(sid)
            if dropped:  # cancelled while it was starting
                proc.terminate()

    def ray_address(self) -> str:
        """The Ray cluster this service's Ray searches join: ``AUTOML_RAY_ADDRESS``, or one local Ray
        the service starts for its first Ray search (``AUTOML_RAY_CPUS`` CPUs), shares with every
        later one, and stops when it stops. Raises ``RuntimeError`` if that Ray cannot start."""
        if self._ray_given:
            return self._ray_given
        with self._ray_lock:
            if self._ray is not None and self._ray[0].is_alive():
                return self._ray[2]
            mine, theirs = self._ctx.Pipe()
            proc = self._ctx.Process(target=_ray_head, args=(theirs, self._ray_cpus, self._ray_token), name="automl-ray",
                                     daemon=False)
            proc.start()
            theirs.close()
            if not mine.poll(RAY_START_S):
                proc.kill()
                raise RuntimeError(f"the service's Ray did not start within {RAY_START_S:g} s")
            try:
                kind, value = mine.recv()
            except EOFError:
                kind, value = "error", f"its process exited with code {proc.exitcode}"
            if kind != "ok":
                proc.join(5)
                raise RuntimeError(f"the service's Ray did not start: {value}")
            self._ray = (proc, mine, value)
            return value

    def _stop_ray(self) -> None:
        with self._ray_lock:
            head, self._ray = self._ray, None
        if head is None:
            return
        proc, pipe, _ = head
        try:
            pipe.send("stop")
        except (OSError, ValueError):
            pass
        proc.join(30)
        if proc.is_alive():
            proc.terminate()
            proc.join(10)

    def queue_position(self, sid: str) -> Optional[int]:
        """1 for the next search to start, ``None`` if ``sid`` is not waiting here."""
        with self._lock:
            return next((i + 1 for i, (q, _) in enumerate(self._queue) if q == sid), None)

    # -- reading -----------------------------------------------------------------------------
    def _load(self, sid: str) -> Any:
        import optuna

        try:
            return optuna.load_study(study_name=STUDY_PREFIX + sid, storage=self.storage)
        except KeyError:
            raise KeyError(sid) from None

    def ids(self) -> list[str]:
        import optuna

        names = [s.study_name for s in optuna.get_all_study_summaries(self.storage, include_best_trial=False)]
        return sorted(n[len(STUDY_PREFIX):] for n in names if n.startswith(STUDY_PREFIX))

    #: A listing this old (seconds) is served as it is while a fresh one is read in the background.
    LIST_MAX_AGE = 1.0

    def summaries(self, limit: int, offset: int, newest_first: bool = False) -> tuple[list[dict[str, Any]], int]:
        """One page of searches (oldest first, or newest first) and how many there are.

        Served from a listing kept in memory, so a request costs the same with 10 searches or
        1,000, and 10 trials a search or 10,000 (each worker keeps its search's progress in the
        study's attributes). What this service starts or cancels shows at once; a listing older
        than :attr:`LIST_MAX_AGE` is served as it is while it is read again in the background
        (another process's progress shows within a second or two). See :meth:`_read_listing`."""
        with self._lock:
            snapshot, fresh, stale = self._listing, self._listing_at, self._listing_stale
        if snapshot is None or stale:
            snapshot = self._read_listing()
        elif time.monotonic() - fresh > self.LIST_MAX_AGE and self._refreshing.acquire(blocking=False):
            def refresh() -> None:
                try:
                    self._read_listing()
                finally:
                    self._refreshing.release()

            threading.Thread(target=refresh, name="automl-list-refresh", daemon=True).start()
        docs = snapshot[::-1] if newest_first else snapshot
        return [dict(d) for d in docs[offset:offset + limit]], len(docs)

    def _search_studies(self) -> Optional[list[tuple[str, int]]]:
        """``(name, id)`` of every search study, in one cheap query on an SQL storage; ``None``
        where the storage has no SQL engine (journal, memory) or the query fails."""
        engine = getattr(self.storage, "engine", None)
        if engine is None:
            return None
        import sqlalchemy

        try:  # Optuna's `studies` table (study_id, study_name) has had this shape since Optuna 1.0
            with engine.connect() as conn:
                rows = conn.execute(sqlalchemy.text("SELECT study_name, study_id FROM studies WHERE study_name LIKE :p"),
                                    {"p": STUDY_PREFIX + "%"}).all()
        except Exception:  # noqa: BLE001 - any surprise: read everything the documented way
            return None
        return [(str(name), int(study_id)) for name, study_id in rows if str(name).startswith(STUDY_PREFIX)]

    def _read_listing(self) -> list[dict[str, Any]]:
        """Read the listing again. The first read takes every study (~0.2 s at 1,000 searches);
        later reads, on an SQL storage, take only the studies' names and re-read the searches that
        are new or may still change (not in a :data:`FINAL` state): a few milliseconds, so the
        refresh every second does not slow the requests it runs beside. A journal or in-memory
        storage is read whole each time."""
        at = time.monotonic()
        with self._lock:
            known, stale, first = dict(self._listed), self._listing_stale, self._listing is None
            self._listing_stale = False  # a change from now on makes the next request read again
        studies = self._search_studies()
        if studies is None or first:  # (a storage with no searches yet is not read whole every second)
            ids = dict(studies or ())  # the key a later read finds each study by (-1: read whole every time)
            listed = {(s.study_name, ids.get(s.study_name, -1)): self._summary(s) for s in self.storage.get_all_studies()
                      if s.study_name.startswith(STUDY_PREFIX)}
        else:
            listed = {}
            for key in studies:
                doc = known.get(key)
                if doc is None or doc["state"] not in FINAL:
                    doc = self._summary(self._frozen(*key))
                listed[key] = doc
        docs = sorted(listed.values(), key=lambda d: (d.get("created") or "", d["id"]))
        with self._lock:
            if at >= self._listing_at:  # never replace a newer listing with an older read
                self._listing, self._listing_at, self._listed = docs, at, listed
            elif stale:
                self._listing_stale = True
        return docs

    def _frozen(self, name: str, study_id: int) -> Any:
        """What :meth:`_summary` reads of a study, read by its id (``None`` fields if it just went)."""
        from types import SimpleNamespace

        try:
            return SimpleNamespace(study_name=name, user_attrs=self.storage.get_study_user_attrs(study_id),
                                   directions=self.storage.get_study_directions(study_id))
        except KeyError:  # deleted between the two reads: listed as unreadable until the next read
            return SimpleNamespace(study_name=name, user_attrs=None, directions=None)

    def _changed(self) -> None:
        """This service changed a search: the next listing and detail are read afresh."""
        with self._lock:
            self._listing_stale = True
            self._details.clear()
            self._changed_at = time.monotonic()

    #: A search's detail this old (seconds) or younger is served as it was read.
    DETAIL_MAX_AGE = 1.0

    def detail(self, sid: str) -> dict[str, Any]:
        """:meth:`status` with the leaderboard and curves, read at most once per
        :attr:`DETAIL_MAX_AGE` per search: every open page polls it, and reading a search's trials
        takes tens of milliseconds, so many clients on one search wait for one read and share it
        (what this service starts or cancels shows at once). Raises as :meth:`status` does."""
        with self._lock:
            lock = self._detail_locks.setdefault(sid, threading.Lock())
        with lock:
            with self._lock:
                hit = self._details.get(sid)
            if hit is not None and time.monotonic() - hit[0] <= self.DETAIL_MAX_AGE:
                return hit[1]
            at = time.monotonic()
            try:
                doc = self.status(sid)
            except KeyError:
                with self._lock:  # no such search: keep no lock for it
                    self._detail_locks.pop(sid, None)
                raise
            with self._lock:
                # forget the details nobody asked for lately (each holds a search's curves)
                for old in [k for k, (t, _) in self._details.items() if at - t > 10 * self.DETAIL_MAX_AGE]:
                    del self._details[old]
                if at >= self._changed_at:  # never keep a read that a change since has made stale
                    self._details[sid] = (at, doc)
            return doc

    def _summary(self, frozen: Any) -> dict[str, Any]:
        sid = frozen.study_name[len(STUDY_PREFIX):]
        try:
            attrs = frozen.user_attrs
            if len(frozen.directions) != 1:
                raise ValueError(f"it has {len(frozen.directions)} objectives; the service runs single-objective searches")
            progress = attrs.get("service_progress")
            if progress is None:  # written before the worker kept a summary: read its trials once
                return self.status(sid, with_leaderboard=False)
            state, error = self._live_state(sid, attrs)
            requested = int(attrs.get("service_trials", 0)) or int(progress["finished"])
            finished = int(progress["finished"])
            best = progress.get("best")
            return {
                "id": sid, "state": state, "created": attrs.get("service_created"),
                "progress": {"finished": finished, "requested": requested,
                             "fraction": round(min(1.0, finished / requested), 4) if requested else 0.0},
                "metric": (attrs.get("metric") or "value"), "direction": frozen.directions[0].name.lower(),
                "best": {"number": int(best["number"]), "value": _finite(float(best["value"]))} if best else None,
                "request": attrs.get("service_request"), "error": error, "queue_position": self.queue_position(sid),
            }
        except (ValueError, TypeError, KeyError, AttributeError) as exc:  # a study someone else wrote, or damaged
            return {"id": sid, "state": "unreadable", "created": None, "progress": {"finished": 0, "requested": 0, "fraction": 0.0},
                    "metric": None, "direction": None, "best": None, "request": None, "queue_position": None,
                    "error": f"this study cannot be read as a search: {type(exc).__name__}: {exc}"[:300]}

    def _live_state(self, sid: str, attrs: Mapping[str, Any]) -> tuple[str, Any]:
        """The stored state, corrected when this service's worker for it died without saying so."""
        state, error = attrs.get("service_state", "unknown"), attrs.get("service_error")
        with self._lock:
            proc = self._procs.get(sid)
        if state in ACTIVE and proc is not None and not proc.is_alive() and proc.exitcode not in (0, None):
            state, error = "failed", f"the worker process exited with code {proc.exitcode}"
            self._end(self._load(sid), state, error)
        return state, error

    def status(self, sid: str, *, with_leaderboard: bool = True) -> dict[str, Any]:
        """``{id, state, progress, request, error, leaderboard}``; raises ``KeyError`` for an unknown id."""
        from automl.search import leaderboard

        study = self._load(sid)
        if len(study.directions) != 1:
            raise ValueError(f"search {sid!r} has {len(study.directions)} objectives; the service runs single-objective searches.")
        attrs = study.user_attrs
        state, error = self._live_state(sid, attrs)  # the worker may have died before it could say so
        trials = study.get_trials(deepcopy=False)  # read once: the leaderboard and the curves share it
        rows = leaderboard(study, trials)
        requested = int(attrs.get("service_trials", 0)) or len(rows)
        finished = sum(r["state"] in ("COMPLETE", "PRUNED", "FAIL") for r in rows)
        best = next((r for r in rows if r["state"] == "COMPLETE" and _finite(r["value"]) is not None), None)
        out: dict[str, Any] = {
            "id": sid, "state": state, "created": attrs.get("service_created"),
            "progress": {"finished": finished, "requested": requested,
                         "fraction": round(min(1.0, finished / requested), 4) if requested else 0.0},
            "metric": (study.metric_names or ["value"])[0], "direction": study.direction.name.lower(),
            "best": {"number": best["number"], "value": best["value"]} if best else None,
            "request": attrs.get("service_request"), "error": error, "queue_position": self.queue_position(sid),
        }
        if with_leaderboard:
            from automl.search.results import curves

            per_trial = curves(trials)
            budget = int(attrs.get("epochs", 0)) or max((r["epochs"] for r in rows), default=0)
            out["budget"] = budget  # epochs a trial may run
            # epochs spent against every trial so far running its full budget: what pruning saved
            out["epochs"] = {"used": sum(r["epochs"] for r in rows), "full": budget * len(rows)}
            out["leaderboard"] = [{**r, "value": _finite(r["value"]), **per_trial.get(r["number"], {})} for r in rows]
        return out

    # -- changing ----------------------------------------------------------------------------
    def start(self, req: SearchRequest) -> str:
        from automl.search import SearchSettings, create_study
        from automl.search.settings import worker_id

        sid = uuid.uuid4().hex[:12]
        settings = SearchSettings(**req.model_dump(), storage=self.url, study=STUDY_PREFIX + sid)
        study = create_study(settings, self.storage)
        study.set_user_attr("service_state", "queued")
        study.set_user_attr("service_owner", worker_id())  # this service, until its worker takes over
        study.set_user_attr("service_created", datetime.now(timezone.utc).isoformat(timespec="seconds"))
        study.set_user_attr("service_trials", req.trials)
        study.set_user_attr("service_request", req.model_dump())
        with self._lock:
            self._queue.append((sid, settings.model_dump()))
        self._changed()
        self._pump()
        return sid

    def cancel(self, sid: str) -> dict[str, Any]:
        """Stop a search; its running trials end ``FAIL``. Raises ``KeyError`` for an unknown id."""
        study = self._load(sid)
        with self._lock:
            self._queue = [(q, s) for q, s in self._queue if q != sid]
            proc = self._procs.pop(sid, None)
            if sid in self._starting:
                self._dropped.add(sid)
        if proc is not None and proc.is_alive():
            proc.terminate()
            proc.join(10)
            if proc.is_alive():
                proc.kill()
                proc.join(5)
        if study.user_attrs.get("service_state") in ACTIVE:
            self._end(study, "cancelled", "cancelled by DELETE /v1/searches")
        return self.status(sid, with_leaderboard=False)

    def recover(self) -> list[str]:
        """Mark searches whose owner is gone as ``interrupted`` (their running trials ``FAIL``);
        finished trials stay. A search another live service is running on this storage is left
        alone: its worker (or, before it started, its service) is a live process on this machine,
        or, on another machine, its heartbeat is recent. Returns the ids it marked."""
        found = []
        for sid in self.ids():
            study = self._load(sid)
            attrs = study.user_attrs
            if attrs.get("service_state") in ACTIVE and sid not in self._procs and not _owned(attrs):
                self._end(study, "interrupted", "the service stopped while this search ran")
                found.append(sid)
        return found

    def _end(self, study: Any, state: str, why: str) -> None:
        from optuna.trial import TrialState

        from automl.storage import fail_trial

        for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            fail_trial(study, t, why, kind="system")
        study.set_user_attr("service_state", state)
        study.set_user_attr("service_error", why)
        self._changed()

    def shutdown(self) -> None:
        """Stop every worker this service started and drop its queue (those searches end ``interrupted``)."""
        self._stop.set()
        with self._lock:
            sids = list(self._procs) + [q for q, _ in self._queue]
            self._queue.clear()
        for sid in sids:
            with self._lock:
                proc = self._procs.pop(sid, None)
            if proc is not None and proc.is_alive():
                proc.terminate()
                proc.join(10)
            study = self._load(sid)
            if study.user_attrs.get("service_state") in ACTIVE:
                self._end(study, "interrupted", "the service stopped while this search ran")
        self._stop_ray()


# ------------------------------------------------------------------------------------- the app
class _BodyLimit:
    """ASGI middleware: a body over ``limit`` bytes (declared or streamed) gets 413."""

    def __init__(self, app: Any, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            await self._too_large(send)
            return
        if declared is not None:  # a declared length within the limit: the server holds the body to it
            await self.app(scope, receive, send)
            return
        # a streamed (chunked) body: read it here, up to the limit, so an overflow is a 413 and not
        # an error inside the framework's body parser (which answers 400)
        messages, seen = [], 0
        while True:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request":
                break
            seen += len(message.get("body", b""))
            if seen > self.limit:
                await self._too_large(send)
                return
            if not message.get("more_body", False):
                break

        async def replay() -> dict:
            return messages.pop(0) if messages else await receive()

        await self.app(scope, replay, send)

    async def _too_large(self, send: Any) -> None:
        import json

        body = json.dumps({"detail": f"request body over {self.limit} bytes"}).encode()
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})


def _invalid(message: str, *where: str) -> RequestValidationError:
    """A 422 in the shape FastAPI gives its own (``detail``: a list of ``{loc, msg, type}``), as the
    OpenAPI spec declares, for what the library found wrong in a body that parsed."""
    return RequestValidationError([{"loc": ("body", *where), "msg": message, "type": "value_error"}])


def create_app(settings: Optional[ServiceSettings] = None) -> FastAPI:
    """The FastAPI application (``automl serve`` runs it with uvicorn)."""
    from contextlib import asynccontextmanager

    from fastapi.concurrency import run_in_threadpool

    settings = settings or ServiceSettings()
    state: dict[str, Any] = {}

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        state["searches"] = app.state.searches = SearchManager(
            settings.storage, max_running=settings.max_running_searches, ray_address=settings.ray_address,
            ray_cpus=settings.ray_cpus)
        yield
        await run_in_threadpool(state["searches"].shutdown)

    app = FastAPI(title="automl", version="1", lifespan=lifespan,
                  description="Searches with early stopping that says why, failure diagnosis of training curves.")

    @app.exception_handler(RequestValidationError)
    async def invalid_body(request: Request, exc: RequestValidationError) -> JSONResponse:
        # FastAPI's own handler echoes the bad input, and a NaN or inf in it made that a 500.
        return JSONResponse(status_code=422, content={"detail": _json_safe(jsonable_encoder(exc.errors()))})

    def manager() -> SearchManager:
        return state["searches"]

    def require_token(request: Request) -> None:
        expected = settings.api_token
        if expected is None:
            raise HTTPException(401, "this service has no AUTOML_API_TOKEN set: requests that start or cancel work are refused",
                                headers={"WWW-Authenticate": "Bearer"})
        scheme, _, token = request.headers.get("authorization", "").strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip() or \
                not hmac.compare_digest(token.strip().encode(), expected.get_secret_value().encode()):
            raise HTTPException(401, "missing or wrong bearer token (Authorization: Bearer <AUTOML_API_TOKEN>)",
                                headers={"WWW-Authenticate": "Bearer"})

    @app.get("/v1/health")
    def health() -> dict[str, Any]:
        return {"status": "ok", "storage": settings.storage.split("://")[0]}

    @app.post("/v1/searches", status_code=202, dependencies=[Depends(require_token)])
    def start_search(req: SearchRequest, searches: SearchManager = Depends(manager)) -> dict[str, Any]:
        if req.trials * req.epochs > settings.max_trial_epochs:
            raise _invalid(f"trials x epochs = {req.trials} x {req.epochs} = {req.trials * req.epochs} is over this service's "
                           f"limit of {settings.max_trial_epochs} (AUTOML_MAX_TRIAL_EPOCHS)", "trials")
        sid = searches.start(req)
        return searches.status(sid, with_leaderboard=False)

    @app.get("/v1/searches")
    def list_searches(response: Response, limit: int = Query(100, ge=1, le=1000), offset: int = Query(0, ge=0),
                      order: Literal["oldest", "newest"] = "oldest",
                      searches: SearchManager = Depends(manager)) -> list[dict[str, Any]]:
        """Searches, oldest first (``order=newest``: newest first), ``limit`` from ``offset``; the
        total is in ``X-Total-Count``. A study that cannot be read as a search is listed with state
        ``unreadable`` and why."""
        page, total = searches.summaries(limit, offset, newest_first=order == "newest")
        response.headers["X-Total-Count"] = str(total)
        return page

    page = resources.files("automl").joinpath("web/index.html").read_text(encoding="utf-8")

    web = resources.files("automl").joinpath("web")
    assets = {"app.js": (web.joinpath("app.js").read_text(encoding="utf-8"), "text/javascript; charset=utf-8"),
              "app.css": (web.joinpath("app.css").read_text(encoding="utf-8"), "text/css; charset=utf-8")}

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def index() -> HTMLResponse:
        return HTMLResponse(page, headers=PAGE_HEADERS)

    @app.get("/app.js", include_in_schema=False)
    def app_js() -> Response:
        return Response(assets["app.js"][0], media_type=assets["app.js"][1], headers=PAGE_HEADERS)

    @app.get("/app.css", include_in_schema=False)
    def app_css() -> Response:
        return Response(assets["app.css"][0], media_type=assets["app.css"][1], headers=PAGE_HEADERS)

    @app.get("/v1/searches/{sid}")
    def get_search(sid: str, searches: SearchManager = Depends(manager)) -> dict[str, Any]:
        try:
            return searches.detail(sid)
        except KeyError:
            raise HTTPException(404, f"no search {sid!r}") from None
        except (ValueError, TypeError) as exc:  # a study under our prefix that is not a search we wrote
            raise HTTPException(409, f"search {sid!r} cannot be read: {exc}"[:300]) from None

    @app.delete("/v1/searches/{sid}", dependencies=[Depends(require_token)])
    def cancel_search(sid: str, searches: SearchManager = Depends(manager)) -> dict[str, Any]:
        try:
            return searches.cancel(sid)
        except KeyError:
            raise HTTPException(404, f"no search {sid!r}") from None

    @app.post("/v1/diagnose")
    def diagnose(curves: dict[str, Any], k: Optional[int] = None, n_classes: Optional[int] = None) -> dict[str, Any]:
        from automl.diagnosis import diagnose as _diagnose

        try:
            return _diagnose(curves, k=k, n_classes=n_classes).public()
        except ValueError as exc:
            raise _invalid(str(exc)) from None

    @app.post("/v1/recommend")
    def recommend(req: RecommendRequest) -> dict[str, Any]:
        from automl.guidance.recommender import recommend as _recommend

        try:
            return _recommend(req.arch, top=req.top)
        except ValueError as exc:
            raise _invalid(str(exc), "arch") from None
        except FileNotFoundError as exc:  # an install without the shipped zoo
            raise HTTPException(503, f"the guidance-network recommender has no zoo here: {exc}") from None

    app.add_middleware(_BodyLimit, limit=settings.max_body_bytes)
    from starlette.middleware.trustedhost import TrustedHostMiddleware

    app.add_middleware(TrustedHostMiddleware, allowed_hosts=settings.hosts())
    return app
