"""Ledger databases for tests: a SQLite file in ``tmp_path``, or a fresh database on a real PostgreSQL.

PostgreSQL is ``$ORCHESTRATOR_TEST_POSTGRES_URL`` when set (a server URL whose user may create
databases), else a private cluster this module starts once per test process: ``initdb`` + ``pg_ctl`` from
the Debian packages into a temporary directory, listening on a free port of 127.0.0.1 only (as the
``postgres`` user via ``runuser`` when we are root), stopped at exit. Without PostgreSQL binaries the
PostgreSQL cases skip locally but FAIL when ``$CI`` is set: CI must run them (``.ci/run`` installs them).
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import glob
import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from pathlib import Path

import pytest

from model_orchestrator.ledger.settings import sqlite_url

DATABASES = ("sqlite", "postgresql")
# Read at import: the autouse env fixture removes every ORCHESTRATOR_* variable before each test.
_GIVEN_URL = os.environ.get("ORCHESTRATOR_TEST_POSTGRES_URL")
_server: list[str] = []  # the started (or given) server URL, once per test process


def url_for(kind: str, tmp_path: Path) -> str:
    """A fresh, empty ledger database of ``kind`` (``sqlite`` or ``postgresql``)."""
    if kind == "sqlite":
        return sqlite_url(tmp_path / "ledger.sqlite3")
    return fresh_postgres_database()


def fresh_postgres_database() -> str:
    """The URL of a new, empty database on the test PostgreSQL server."""
    server = postgres_server()
    name = f"ledger_{uuid.uuid4().hex[:12]}"

    async def create() -> None:
        import asyncpg

        conn = await asyncpg.connect(server)
        try:
            await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()

    # In its own thread: callers may already be inside an event loop (async fixtures).
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, create()).result()
    return server.rsplit("/", 1)[0] + "/" + name


def postgres_server() -> str:
    """The test server's URL (its maintenance database)."""
    if not _server:
        _server.append(_GIVEN_URL or _start_cluster())
    return _server[0]


def _bin_dir() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[4]))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def _start_cluster() -> str:
    bin_dir = _bin_dir()
    if bin_dir is None:
        message = "PostgreSQL server binaries (initdb, pg_ctl) not found: apt-get install postgresql"
        if os.environ.get("CI"):
            pytest.fail(f"{message} (CI must run the PostgreSQL ledger tests)")
        pytest.skip(message)
    root = Path(tempfile.mkdtemp(prefix="orchestrator-pg-"))
    as_postgres = os.geteuid() == 0
    if as_postgres:
        shutil.chown(root, "postgres", "postgres")
    data, port = root / "data", _free_port()
    _run(
        [
            str(bin_dir / "initdb"),
            "-D",
            str(data),
            "-U",
            "postgres",
            "--auth=trust",
            "-E",
            "UTF8",
            "--no-sync",
        ],
        as_postgres,
    )
    options = (
        f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off "
        "-c full_page_writes=off -c max_connections=300"
    )
    pg_ctl = str(bin_dir / "pg_ctl")
    _run([pg_ctl, "-D", str(data), "-o", options, "-l", str(root / "server.log"), "-w", "start"], as_postgres)
    atexit.register(_stop, pg_ctl, data, root, as_postgres)
    return f"postgresql://postgres@127.0.0.1:{port}/postgres"


def _stop(pg_ctl: str, data: Path, root: Path, as_postgres: bool) -> None:
    _run([pg_ctl, "-D", str(data), "-m", "immediate", "-w", "stop"], as_postgres, check=False)
    shutil.rmtree(root, ignore_errors=True)


def _run(args: list[str], as_postgres: bool, *, check: bool = True) -> None:
    command = ["runuser", "-u", "postgres", "--", *args] if as_postgres else args
    subprocess.run(command, check=check, capture_output=True, timeout=120)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
