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

import warnings
from pathlib import Path
from collections.abc import Mapping
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


def open_storage(url: str, *, must_exist: bool = False, heartbeat: int | None = None) -> Any:
    """An Optuna storage for ``url`` (see the module docstring); raises ``StorageError``.

    With ``must_exist``, a SQLite or journal file that is not there is an error instead of
    being created (for commands that only read). ``heartbeat`` (seconds, SQL storages only):
    trials send a heartbeat that often, and one silent for twice that is failed as stale.
    """
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
        return JournalStorage(JournalFileBackend(str(Path(path).expanduser())))
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
    try:
        beats = {"heartbeat_interval": heartbeat, "grace_period": 2 * heartbeat} if heartbeat else {}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)  # heartbeats, stable since 2.9
            return RDBStorage(url, engine_kwargs={"pool_pre_ping": True} if not url.startswith("sqlite") else None, **beats)
    except ModuleNotFoundError as exc:
        raise StorageError(f"cannot open storage {url!r}: driver {exc.name!r} is not installed (pip install {exc.name}).") from None
    except Exception as exc:  # noqa: BLE001 - SQLAlchemy raises many types for a bad URL or host
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise StorageError(f"cannot open storage {url!r}: {first_line}") from None


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
