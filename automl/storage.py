"""Open an Optuna storage from a URL, with an error that says what was wrong.

- ``sqlite:///automl.db`` (default): one process, no server.
- ``journal:///path/to/study.log`` (or any path ending in ``.log``/``.journal``): several processes
  on one machine, through ``JournalStorage(JournalFileBackend(path))``.
- ``postgresql+psycopg://user:pass@host/db`` (any SQLAlchemy URL): several machines.
- ``memory``: in-memory, for tests and throwaway runs.

On the SQL storages, ``heartbeat`` seconds turn on Optuna's heartbeats: a running trial whose
process stops beating for two intervals (killed, out of memory, its machine gone) is marked
``FAIL`` by the next trial any worker starts, so it is not left ``RUNNING`` forever. The journal
storage has no heartbeats in Optuna; ``automl search --workers`` watches its own processes instead.

This is also the one module that calls Optuna's private storage API (``study._storage``,
``FrozenTrial._trial_id``): a pruner is handed a frozen copy of its trial, and a supervisor must
fail a trial whose process died, and Optuna has no public call for either. ``tests/test_storages.py``
checks the calls against the installed Optuna and refuses one outside :data:`OPTUNA_CHECKED`.
"""

from __future__ import annotations

import contextlib
import time
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from automl.validation import check_optional_positive_int

__all__ = ["open_storage", "StorageError", "study_storage", "set_trial_attrs", "fail_trial", "OPTUNA_CHECKED"]

#: The Optuna releases (major.minor, oldest and newest) that ``pyproject.toml`` admits for the
#: private calls below; a newer one is admitted only once the storage tests pass on it.
OPTUNA_CHECKED = ("4.5", "5.1")


class StorageError(ValueError):
    """The storage URL is malformed or the storage cannot be reached."""


def _journal_path(url: str) -> str | None:
    if url.startswith("journal://"):
        return url[len("journal://"):] or None
    if url.endswith((".log", ".journal")) and "://" not in url:
        return url
    return None


def open_storage(url: str, *, must_exist: bool = False, read_only: bool = False, heartbeat: int | None = None) -> Any:
    """An Optuna storage for ``url`` (see the module docstring); raises ``StorageError``.

    With ``must_exist``, a SQLite or journal file that is not there is an error instead of
    being created. With ``read_only`` (for commands that only read, such as ``automl show``) the
    storage must exist and already hold Optuna's tables, and it is opened so that nothing can be
    written to it: SQLite read-only, PostgreSQL in read-only transactions. A zero-byte or foreign
    SQLite file is refused by name, never turned into an Optuna storage. ``heartbeat`` (seconds,
    SQL storages only): trials send a heartbeat that often, and one silent for twice that is
    failed as stale.
    """
    must_exist = must_exist or read_only
    try:
        heartbeat = check_optional_positive_int("heartbeat", heartbeat, minimum=0)  # seconds; 0: off
    except ValueError as e:
        raise StorageError(str(e)) from None
    import optuna
    from optuna.storages import JournalStorage, RDBStorage
    from optuna.storages.journal import JournalFileBackend

    if not isinstance(url, str) or not url.strip():
        raise StorageError(f"storage must be a URL such as sqlite:///automl.db, but got {url!r}.")
    url = url.strip()
    if url == "memory":
        return optuna.storages.InMemoryStorage()
    path = _journal_path(url)
    if path is not None:
        parent = Path(path).expanduser().resolve().parent
        if not parent.is_dir():
            raise StorageError(f"cannot open storage {url!r}: folder {str(parent)!r} does not exist.")
        if must_exist and not Path(path).expanduser().exists():
            raise StorageError(f"cannot open storage {url!r}: file {path!r} does not exist.")
        try:
            return JournalStorage(JournalFileBackend(str(Path(path).expanduser())))
        except (ValueError, KeyError, TypeError, AttributeError) as exc:  # the replay of a line that is not Optuna's
            detail = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
            raise StorageError(f"cannot open storage {url!r}: {path!r} is not an Optuna journal file "
                               f"({type(exc).__name__}: {detail}); it was left unchanged.") from None
    if "://" not in url:
        raise StorageError(
            f"cannot open storage {url!r}: expected sqlite:///FILE, journal:///FILE, "
            "postgresql+psycopg://USER@HOST/DB or memory."
        )
    if url.startswith("sqlite:///"):
        db = url[len("sqlite:///"):]
        if db and db != ":memory:":
            parent = Path(db).expanduser().resolve().parent
            if not parent.is_dir():
                raise StorageError(f"cannot open storage {url!r}: folder {str(parent)!r} does not exist.")
            if must_exist and not Path(db).expanduser().exists():
                raise StorageError(f"cannot open storage {url!r}: file {db!r} does not exist.")
    engine_kwargs: dict[str, Any] | None = {"pool_pre_ping": True} if not url.startswith("sqlite") else None
    if read_only:
        url, engine_kwargs = _read_only(url, engine_kwargs or {})
        if url.startswith("sqlite:///file:"):
            return _reader(url)
    try:
        beats = {"heartbeat_interval": heartbeat, "grace_period": 2 * heartbeat} if heartbeat else {}
        for attempt in range(4):
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)  # heartbeats, stable since 2.9
                    return RDBStorage(url, engine_kwargs=engine_kwargs, **beats)
            except Exception as exc:  # noqa: BLE001 - only the race below is retried
                # Two processes that open a new database at once both write its schema version, and
                # the second fails on a duplicate row; by the next try the schema is there to read.
                if attempt == 3 or "alembic_version" not in str(exc):
                    raise
                time.sleep(0.2 * (attempt + 1))
        raise AssertionError("unreachable")  # pragma: no cover
    except ImportError as exc:  # Optuna re-raises the driver's ModuleNotFoundError as a plain ImportError
        missing = exc.name or getattr(exc.__cause__, "name", None) or "the database driver"
        extra = ' (pip install "automl-signals[postgres]", or pip install ".[postgres]" in a clone)' \
            if url.startswith("postgres") else f" (pip install {missing})"
        raise StorageError(f"cannot open storage {url!r}: driver {missing!r} is not installed{extra}.") from None
    except Exception as exc:  # noqa: BLE001 - SQLAlchemy raises many types for a bad URL or host
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise StorageError(f"cannot open storage {url!r}: {first_line}") from None


def _read_only(url: str, engine_kwargs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The URL and engine options that open an existing Optuna SQL storage without writing to it."""
    if url.startswith("sqlite:///"):
        import sqlite3

        db = Path(url[len("sqlite:///"):].split("?", 1)[0]).expanduser().resolve()
        try:
            with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as con:
                tables = {row[0] for row in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        except sqlite3.DatabaseError as exc:
            raise StorageError(f"cannot open storage {url!r}: {db} is not a SQLite database ({exc}).") from None
        missing = sorted({"studies", "trials", "version_info", "alembic_version"} - tables)
        if missing:
            what = "an empty file" if not tables else f"a SQLite database without Optuna's tables ({', '.join(missing)} missing)"
            raise StorageError(f"cannot open storage {url!r}: {db} is {what}, not an Optuna storage; it was left unchanged.")
        return f"sqlite:///file:{db}?mode=ro&uri=true", engine_kwargs
    if url.startswith("postgresql"):
        return url, {**engine_kwargs, "connect_args": {"options": "-c default_transaction_read_only=on"}}
    return url, engine_kwargs


def _reader(url: str) -> Any:
    """An ``RDBStorage`` over a SQLite file opened read-only, built without Optuna's schema-version
    manager: that manager writes a version row when it finds none and imports Alembic (a third of
    what ``automl show`` takes). The file was checked to hold Optuna's tables (:func:`_read_only`);
    a schema too old to read is reported by reopening it the usual way. The attributes are those
    ``RDBStorage.__init__`` sets (``tests/test_storages.py`` compares them with the installed Optuna)."""
    import sqlalchemy
    from optuna.storages import RDBStorage
    from sqlalchemy import orm

    storage = RDBStorage.__new__(RDBStorage)
    storage.__dict__.update(
        engine_kwargs={}, url=url, skip_compatibility_check=True, heartbeat_interval=None, grace_period=None,
        heartbeat_stale_trial_callback=None, failed_trial_callback=None,
        engine=sqlalchemy.engine.create_engine(url),
    )
    storage.scoped_session = orm.scoped_session(orm.sessionmaker(bind=storage.engine))
    storage._version_manager = None  # noqa: SLF001 - no schema upgrades from a read-only view
    return storage


def study_storage(study: Any) -> Any:
    """The storage object a study reads and writes (``optuna.Study`` keeps it private)."""
    return study._storage  # noqa: SLF001 - see the module docstring


def set_trial_attrs(study: Any, trial: Any, attrs: Mapping[str, Any], *, kind: Literal["user", "system"] = "user") -> None:
    """Write ``attrs`` onto ``trial`` through the study's storage, where ``trial`` is a
    ``FrozenTrial`` (as a pruner receives it): thread- and process-safe as the storage is."""
    storage, tid = study_storage(study), trial._trial_id  # noqa: SLF001
    write = storage.set_trial_user_attr if kind == "user" else storage.set_trial_system_attr
    for key, value in attrs.items():
        write(tid, key, value)


def fail_trial(study: Any, trial: Any, reason: str, *, kind: Literal["user", "system"] = "user") -> bool:
    """Mark a ``RUNNING`` trial ``FAIL`` with ``fail_reason`` (a user or system attribute), for a
    trial whose process can no longer do it. ``False`` if it had already finished (another
    supervisor, or a heartbeat check, got there first): a finished trial is never changed."""
    from optuna.exceptions import UpdateFinishedTrialError
    from optuna.trial import TrialState

    try:
        set_trial_attrs(study, trial, {"fail_reason": reason}, kind=kind)
        study_storage(study).set_trial_state_values(trial._trial_id, TrialState.FAIL)  # noqa: SLF001
    except (UpdateFinishedTrialError, RuntimeError):
        return False
    return True
