"""``LedgerStore``: the one async SQL layer (SQLAlchemy Core) over SQLite and PostgreSQL.

Owns the engines (SQLite: WAL journal, ``synchronous=NORMAL``, a busy timeout, ``BEGIN IMMEDIATE`` for
transactions that must not interleave; PostgreSQL through asyncpg), opening = migrating, and ``run()``
for the hot write transactions (budgets). Recorded rows are written by the ledger's writer thread
(``writer``, ``writer_sql``) on a connection of its own. Queries for budgets and reports live in their
own modules.

``run(work)`` executes a plain function of a ``sa.Connection`` as one transaction. On PostgreSQL it runs
on the async engine (``run_sync``). On SQLite it runs on a synchronous connection in the store's own
thread, so a whole transaction costs one thread hop: through aiosqlite every cursor operation is a hop,
about 17 per budget transaction, and each hop can wait out the GIL switch interval when another thread
is busy (measured in docs/decisions.md). Reports and other reads use the async engine.

Durability: with WAL and ``synchronous=NORMAL`` a committed transaction survives the process being
killed (it is in the WAL file); only a power loss or OS crash can roll back the last few commits.

SQL parameters never reach a log or an error message (they include virtual keys' salts and hashes):
engines are made with ``hide_parameters=True``, and aiosqlite's DEBUG records, which print every call
with its arguments, are dropped at their logger whatever level the application logs at (``-vv``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from model_orchestrator.ledger.migrations import migrate, schema_version
from model_orchestrator.ledger.settings import async_url

_SQLITE_BUSY_TIMEOUT_MS = 30_000
T = TypeVar("T")


class LedgerStore:
    """An open ledger database."""

    def __init__(self, engine: AsyncEngine, sync_engine: sa.Engine | None = None) -> None:
        self.engine = engine
        self.dialect = engine.dialect.name
        self._sync = sync_engine
        self._thread: ThreadPoolExecutor | None = None
        self._write_lock: tuple[asyncio.AbstractEventLoop, asyncio.Lock] | None = None

    @classmethod
    def connect(cls, url: str) -> LedgerStore:
        """A store for ``url`` as it is, not migrated (connections are made on first use)."""
        full = async_url(url)
        sync = _sqlite_engine(full.replace("+aiosqlite", "", 1)) if full.startswith("sqlite") else None
        return cls(_engine(full), sync)

    async def run(self, work: Callable[[sa.Connection], T]) -> T:
        """``work(connection)`` in one write transaction (immediate on SQLite), committed on return.

        Once started it finishes even if the caller is cancelled, so it either commits or rolls back.
        """
        if self._sync is None:
            async with self.engine.connect() as conn, conn.begin():
                return await conn.run_sync(work)
        if self._thread is None:
            self._thread = ThreadPoolExecutor(1, thread_name_prefix="ledger-sqlite")
        async with self._lock():
            return await asyncio.get_running_loop().run_in_executor(self._thread, self._transaction, work)

    def _transaction(self, work: Callable[[sa.Connection], T]) -> T:
        assert self._sync is not None
        with self._sync.connect() as conn:
            conn = conn.execution_options(sqlite_immediate=True)
            with conn.begin():
                return work(conn)

    @classmethod
    async def open(cls, url: str, *, now: float) -> LedgerStore:
        """Connect to ``url`` (creating a SQLite file and its folder if needed) and migrate it."""
        store = cls.connect(url)
        await store.migrate(now=now)
        return store

    async def migrate(self, *, now: float) -> None:
        """Bring the schema up to date (closing the store if that fails)."""
        try:
            async with self.transaction(immediate=True) as conn:
                await migrate(conn, now=now)
        except BaseException:
            await self.aclose()
            raise

    @contextlib.asynccontextmanager
    async def transaction(self, *, immediate: bool = False) -> AsyncIterator[AsyncConnection]:
        """A transaction, committed on success; ``immediate`` takes SQLite's write lock at BEGIN.

        On SQLite, this process's writers also queue on an asyncio lock first: waiting there is free,
        while waiting in SQLite's busy handler means sleeping and polling.
        """
        lock = self._lock() if immediate and self.dialect == "sqlite" else contextlib.nullcontext()
        async with lock, self.engine.connect() as conn:
            if immediate:
                await conn.execution_options(sqlite_immediate=True)
            async with conn.begin():
                yield conn

    async def version(self) -> int:
        """The schema version of the database."""
        async with self.engine.connect() as conn:
            return await schema_version(conn)

    async def aclose(self) -> None:
        """Close every pooled connection (and the SQLite thread)."""
        await self.engine.dispose()
        thread, self._thread = self._thread, None
        if thread is not None and self._sync is not None:
            # sqlite3 connections are closed on the thread that made them.
            await asyncio.get_running_loop().run_in_executor(thread, self._sync.dispose)
            thread.shutdown(wait=True)

    def _lock(self) -> asyncio.Lock:
        loop = asyncio.get_running_loop()
        if self._write_lock is None or self._write_lock[0] is not loop:
            self._write_lock = (loop, asyncio.Lock())
        return self._write_lock[1]

    def insert(self, table: sa.Table) -> Any:
        """This dialect's INSERT (with ``on_conflict_do_nothing``/``on_conflict_do_update``)."""
        return (postgresql.insert if self.dialect == "postgresql" else sqlite.insert)(table)


def _engine(url: str) -> AsyncEngine:
    if not url.startswith("sqlite"):
        return create_async_engine(url, pool_size=5, max_overflow=10, hide_parameters=True)
    logging.getLogger("aiosqlite").addFilter(_no_debug_records)  # a no-op when already added
    database = sa.make_url(url).database
    if database and database != ":memory:":
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_async_engine(url, hide_parameters=True)
    _sqlite_hooks(engine.sync_engine)
    return engine


def _no_debug_records(record: logging.LogRecord) -> bool:
    return record.levelno > logging.DEBUG


def _sqlite_engine(url: str) -> sa.Engine:
    engine = sa.create_engine(url, pool_size=1, max_overflow=0, hide_parameters=True)
    _sqlite_hooks(engine)
    return engine


def _sqlite_hooks(engine: sa.Engine) -> None:
    event.listen(engine, "connect", _sqlite_connect)
    event.listen(engine, "begin", _sqlite_begin)


def _sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
    # Let the "begin" hook issue BEGIN itself (the sqlite3 module's implicit transactions defer the
    # write lock, which turns concurrent read-then-write transactions into "database is locked").
    dbapi_connection.isolation_level = None
    sqlite_pragmas(dbapi_connection)


def sqlite_pragmas(dbapi_connection: Any) -> None:
    """WAL journal, ``synchronous=NORMAL`` and the busy timeout on a ``sqlite3`` connection."""
    cursor = dbapi_connection.cursor()
    for pragma in ("journal_mode=WAL", "synchronous=NORMAL", f"busy_timeout={_SQLITE_BUSY_TIMEOUT_MS}"):
        cursor.execute(f"PRAGMA {pragma}")
    cursor.close()


def _sqlite_begin(conn: sa.Connection) -> None:
    immediate = conn.get_execution_options().get("sqlite_immediate", False)
    conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")
