"""The writer thread's SQL: one prepared statement per table, compiled once, executed per batch.

``sink_for(url)`` makes the ``BatchSink`` for a database, on the writer thread. The statements come from
the Core tables (``tables.py``), compiled once for the dialect: attempts, labels and prompts are inserts
that ignore a key already present, requests an upsert in which a NULL never erases a known value (a
finish completing a start written earlier). So a batch written twice (a retry after a commit whose
acknowledgement was lost, or several processes) counts nothing twice. Each batch is one transaction
with one ``executemany`` per table.

SQLite: the DB-API (``sqlite3``) directly on the thread's own connection (WAL, ``synchronous=NORMAL``, the
store's busy timeout), as SQLAlchemy's ``exec_driver_sql`` cost twice as much CPU per batch for the same
statement (docs/decisions.md, "The ledger's writer"). PostgreSQL: SQLAlchemy's asyncpg engine on an event
loop private to the thread (asyncpg has no blocking API), the same compiled statements.
"""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.ext.asyncio import create_async_engine

from model_orchestrator.ledger.records import (
    ATTEMPT_COLUMNS,
    LABEL_COLUMNS,
    PROMPT_COLUMNS,
    REQUEST_COLUMNS,
    Batch,
)
from model_orchestrator.ledger.settings import async_url
from model_orchestrator.ledger.store import sqlite_pragmas
from model_orchestrator.ledger.tables import attempts, outcome_labels, request_prompts, requests


def statements(dialect: sa.Dialect) -> tuple[str, str, str, str]:
    """The SQL of (attempts, requests, labels, prompts) for ``dialect``, parameters in ``records``' order."""
    insert = postgresql.insert if dialect.name == "postgresql" else sqlite_dialect.insert
    upsert = insert(requests)
    upsert = upsert.on_conflict_do_update(
        index_elements=["request_id"],
        set_={
            column.name: sa.func.coalesce(upsert.excluded[column.name], column)
            for column in requests.columns
            if column.name != "request_id"
        },
    )
    compiled = (
        (insert(attempts).on_conflict_do_nothing(index_elements=["attempt_id"]), ATTEMPT_COLUMNS),
        (upsert, REQUEST_COLUMNS),
        (insert(outcome_labels).on_conflict_do_nothing(), LABEL_COLUMNS),
        (insert(request_prompts).on_conflict_do_nothing(), PROMPT_COLUMNS),
    )
    sql = []
    for statement, columns in compiled:
        done = statement.compile(dialect=dialect)
        if tuple(done.positiontup or ()) != columns:
            raise RuntimeError(f"ledger rows do not match {statement.table.name}'s columns")
        sql.append(done.string)
    return sql[0], sql[1], sql[2], sql[3]


def statement_rows(batch: Batch, sql: tuple[str, str, str, str]) -> list[tuple[str, list[Any]]]:
    """Each of ``statements``' SQL with the batch's rows for it (tables without rows left out)."""
    rows = (batch.attempts, batch.requests, batch.labels, batch.prompts)
    return [(statement, list(part)) for statement, part in zip(sql, rows, strict=True) if part]


class SqliteSink:
    """Batches into a SQLite file through its own ``sqlite3`` connection (made on the writer thread)."""

    def __init__(self, path: str) -> None:
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=True)
        sqlite_pragmas(self._db)
        self._sql = statements(sqlite_dialect.pysqlite.dialect())

    def write(self, batch: Batch) -> None:
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            for statement, rows in statement_rows(batch, self._sql):
                db.executemany(statement, rows)
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise

    def close(self) -> None:
        self._db.close()


class PostgresSink:
    """Batches into PostgreSQL through one asyncpg connection on a loop private to the writer thread."""

    def __init__(self, url: str) -> None:
        self._loop = asyncio.new_event_loop()
        self._engine = create_async_engine(url, pool_size=1, max_overflow=0, hide_parameters=True)
        self._sql = statements(self._engine.dialect)

    def write(self, batch: Batch) -> None:
        self._loop.run_until_complete(self._write(statement_rows(batch, self._sql)))

    async def _write(self, parts: list[tuple[str, list[Any]]]) -> None:
        async with self._engine.begin() as conn:
            for statement, rows in parts:
                await conn.exec_driver_sql(statement, rows)

    def close(self) -> None:
        try:
            self._loop.run_until_complete(self._engine.dispose())
        finally:
            self._loop.close()


def sink_for(url: str) -> SqliteSink | PostgresSink:
    """The sink for a ledger URL (as ``LedgerSettings.url`` holds it); call it on the writer thread."""
    full = async_url(url)
    if not full.startswith("sqlite"):
        return PostgresSink(full)
    database = sa.make_url(full).database or ":memory:"
    if database != ":memory:":
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    return SqliteSink(database)
