"""Shared fixtures: a throwaway PostgreSQL server on loopback for the storage tests that need one."""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time

import pytest


def _pg_bin(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    versions = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))  # Debian keeps them off PATH
    return versions[-1] if versions else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def postgres_url():
    """``postgresql+psycopg://`` URL of a database on a real PostgreSQL server.

    ``AUTOML_TEST_POSTGRES_URL`` names one; otherwise a throwaway cluster is made with the server
    binaries (``initdb``, ``pg_ctl``: the Debian ``postgresql`` package, which ``.ci/run`` installs
    where it is missing), listening on 127.0.0.1 only, and removed afterwards.
    """
    given = os.environ.get("AUTOML_TEST_POSTGRES_URL")
    if given:
        yield given
        return
    initdb, pg_ctl = _pg_bin("initdb"), _pg_bin("pg_ctl")
    if not (initdb and pg_ctl):
        pytest.skip("no PostgreSQL server binaries (initdb, pg_ctl) here; .ci/run installs the Debian package")
    pytest.importorskip("psycopg", reason="the psycopg driver (pip install 'automl-signals[postgres]')")
    root = tempfile.mkdtemp(prefix="automl-pg-")
    data, port = os.path.join(root, "data"), _free_port()
    as_user: list[str] = []
    if os.geteuid() == 0:  # the server refuses to run as root: run it as the package's user
        shutil.chown(root, "postgres")
        as_user = ["runuser", "-u", "postgres", "--"]
    run = lambda *cmd: subprocess.run([*as_user, *cmd], check=True, capture_output=True, text=True)  # noqa: E731
    try:
        run(initdb, "-D", data, "-U", "automl", "-A", "trust", "--no-sync")
        run(pg_ctl, "-D", data, "-l", os.path.join(root, "log"), "-w", "-t", "60", "start",
            "-o", f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off")
    except subprocess.CalledProcessError as exc:
        shutil.rmtree(root, ignore_errors=True)
        raise RuntimeError(f"could not start a test PostgreSQL server: {exc.stderr or exc.stdout}") from None
    try:
        import psycopg

        deadline = time.time() + 30
        while True:
            try:
                with psycopg.connect(f"host=127.0.0.1 port={port} user=automl dbname=postgres", autocommit=True) as conn:
                    conn.execute("CREATE DATABASE automl_test")
                break
            except psycopg.OperationalError:
                if time.time() > deadline:
                    raise
                time.sleep(0.5)
        yield f"postgresql+psycopg://automl@127.0.0.1:{port}/automl_test"
    finally:
        subprocess.run([*as_user, pg_ctl, "-D", data, "-m", "immediate", "stop"], capture_output=True)
        shutil.rmtree(root, ignore_errors=True)
