"""The writer thread's SQL: one prepared statement per table, compiled once, executed per batch.

``sink_for(url)`` makes the ``BatchSink`` for a database, on the writer thread. The statements come from
the Core tables (``tables.py``), compiled once for the dialect: attempts, labels and prompts are inserts
that ignore a key already present, requests an upsert in which a NULL never erases a known value (a
finish completing a start written earlier). So a batch written twice (a retry after a commit whose
acknowledgement was lost, or several processes) counts nothing twice. Each batch is one transaction.

SQLite: the DB-API (``sqlite3``) directly on the thread's own connection (WAL, ``synchronous=NORMAL``, the
store's busy timeout), as SQLAlchemy's ``exec_driver_sql`` cost twice as much CPU per batch for the same
statement; each table's rows go in a few multi-row statements (``MultiRowInsert``) rather than one
``executemany``, which gives the GIL up and takes it back for every row (docs/decisions.md, "The ledger's
writer"), and a row binds only the values that differ from its column's usual one (``NarrowInsert``).
PostgreSQL: SQLAlchemy's asyncpg engine on an event loop private to the thread (asyncpg has no blocking
API), one ``executemany`` per table of the full compiled statements.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from itertools import chain
from operator import eq, itemgetter
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
    Row,
)
from model_orchestrator.ledger.settings import async_url
from model_orchestrator.ledger.store import sqlite_pragmas
from model_orchestrator.ledger.tables import attempts, outcome_labels, request_prompts, requests

_COLUMNS = (ATTEMPT_COLUMNS, REQUEST_COLUMNS, LABEL_COLUMNS, PROMPT_COLUMNS)
# Per table, the columns ``NarrowInsert`` does not bind in a row that holds their usual value: NULL (left
# out: the column's default) or a constant (written as a literal). Most requests have no category, tags,
# key, cost cap or error and succeed at the first attempt; most attempts succeed with exact usage and no
# cached, reasoning or cache-write tokens. Omitted, a request column is NULL in ``excluded``, so the
# upsert's coalesce keeps what a start written earlier knew.
_USUAL: tuple[dict[str, int | str | None], ...] = (
    {
        "error_type": None,
        "status_code": None,
        "cached_input_tokens": 0,
        "reasoning_tokens": 0,
        "usage_estimated": 0,
        "cache_write_tokens": 0,
        "status": "ok",
    },
    {
        "category": None,
        "tags": None,
        "api_key_id": None,
        "max_cost": None,
        "error_type": None,
        "ok": 1,
        "attempts": 1,
    },
    {},
    {},
)


def inserts(dialect: sa.Dialect) -> tuple[sa.Insert, sa.Insert, sa.Insert, sa.Insert]:
    """The statements for (attempts, requests, labels, prompts) on ``dialect``, not compiled."""
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
    return (
        insert(attempts).on_conflict_do_nothing(index_elements=["attempt_id"]),
        upsert,
        insert(outcome_labels).on_conflict_do_nothing(),
        insert(request_prompts).on_conflict_do_nothing(),
    )


def compiled(statement: sa.Insert, dialect: sa.Dialect, columns: tuple[str, ...]) -> str:
    """``statement``'s SQL for ``columns`` only (the others take their defaults), parameters in order."""
    done = statement.compile(dialect=dialect, column_keys=list(columns))
    if tuple(done.positiontup or ()) != columns:
        raise RuntimeError(f"ledger rows do not match {statement.table.name}'s columns")
    return done.string


def statements(dialect: sa.Dialect) -> tuple[str, str, str, str]:
    """The SQL of (attempts, requests, labels, prompts) for ``dialect``, parameters in ``records``' order."""
    sql = [compiled(s, dialect, c) for s, c in zip(inserts(dialect), _COLUMNS, strict=True)]
    return sql[0], sql[1], sql[2], sql[3]


def statement_rows(batch: Batch, sql: tuple[str, str, str, str]) -> list[tuple[str, list[Any]]]:
    """Each of ``statements``' SQL with the batch's rows for it (tables without rows left out)."""
    rows = (batch.attempts, batch.requests, batch.labels, batch.prompts)
    return [(statement, list(part)) for statement, part in zip(sql, rows, strict=True) if part]


class MultiRowInsert:
    """One table's statement widened to ``VALUES (...), (...), ...`` for several rows at once.

    ``sqlite3`` releases the GIL around each step of a statement, and while the event loop is busy every
    take back waits for it (up to the 5 ms switch interval) and costs both threads a context switch:
    ``executemany`` steps once per row, this once per chunk. Chunks are powers of two (at most
    ``max_rows``, and within the connection's limit on parameters), so a batch of any length is a few
    statements and few distinct statements sit in ``sqlite3``'s cache.
    """

    def __init__(self, sql: str, columns: int, *, max_parameters: int, max_rows: int = 1024) -> None:
        head, found, tail = sql.partition(" VALUES (")
        values, closed, tail = tail.partition(")")
        if not (found and closed) or values.count("?") != columns:
            raise RuntimeError(f"no single-row VALUES clause of {columns} parameters in {sql!r}")
        self._head, self._tail, self._values = head + " VALUES ", tail, f"({values})"
        self._largest = 1 << (max(1, min(max_rows, max_parameters // columns)).bit_length() - 1)
        self._sql: dict[int, str] = {}

    def chunks(
        self, rows: Sequence[Row], pick: Callable[[Row], Row] | None = None
    ) -> Iterator[tuple[str, list[Any]]]:
        """(SQL, its parameters flattened) for consecutive chunks of ``rows``, largest first; ``pick``
        takes the statement's columns from a row (all of them when None)."""
        start = 0
        while start < len(rows):
            size = min(self._largest, 1 << ((len(rows) - start).bit_length() - 1))
            sql = self._sql.get(size)
            if sql is None:
                sql = self._sql[size] = self._head + ", ".join([self._values] * size) + self._tail
            chunk = rows[start : start + size]
            yield sql, list(chain.from_iterable(chunk if pick is None else map(pick, chunk)))
            start += size


class NarrowInsert:
    """One table's rows grouped by which columns hold their usual value (``usual``: NULL or a constant),
    each group's statement binding only the others: NULLs are left out, constants written as literals.

    Each bound value costs ``sqlite3`` and SQLite about 0.2 µs, NULL or not, and a request's two rows
    commonly hold fourteen usual values of 37: unbound, the writer's CPU per request (both rows, grouping
    included) fell from 8.1-8.9 µs to 5.0-5.4 (docs/decisions.md, "The ledger's writer").
    """

    def __init__(
        self,
        statement: sa.Insert,
        dialect: sa.Dialect,
        columns: tuple[str, ...],
        usual: dict[str, int | str | None],
        *,
        max_parameters: int,
    ) -> None:
        if len(usual) == 1:  # itemgetter of one index gives the value, not a tuple
            raise ValueError("name no column with a usual value, or at least two")
        self._statement, self._dialect, self._columns = statement, dialect, columns
        self._limit = max_parameters
        self._usual = usual
        # Compared with ==: NULL equals only NULL; False and 0.0 count as 0, True as 1 (as SQLite stores).
        self._values = tuple(usual.values())
        self._all_usual = (True,) * len(usual)  # the common shape, found by one comparison
        self._pick = itemgetter(*(columns.index(name) for name in usual)) if usual else None
        self._shapes: dict[tuple[bool, ...], tuple[MultiRowInsert, itemgetter[Any]]] = {}

    def chunks(self, rows: Sequence[Row]) -> Iterator[tuple[str, list[Any]]]:
        """(SQL, its parameters flattened) for ``rows``, a few statements per shape."""
        pick = self._pick
        if pick is None:
            yield from self._shape(())[0].chunks(rows)
            return
        groups: dict[tuple[bool, ...], list[Row]] = {}
        usual, all_usual = self._values, self._all_usual
        for row in rows:
            values = pick(row)
            shape = all_usual if values == usual else tuple(map(eq, values, usual))
            group = groups.get(shape)
            if group is None:
                group = groups[shape] = []
            group.append(row)
        for shape, group in groups.items():
            insert, kept = self._shape(shape)
            yield from insert.chunks(group, kept)

    def _shape(self, shape: tuple[bool, ...]) -> tuple[MultiRowInsert, itemgetter[Any]]:
        made = self._shapes.get(shape)
        if made is None:
            unbound = {name for name, found in zip(self._usual, shape, strict=True) if found}
            kept = tuple(name for name in self._columns if name not in unbound)
            literals: dict[str, Any] = {
                name: sa.literal_column(f"'{value}'" if isinstance(value, str) else str(value))
                for name, value in self._usual.items()
                if name in unbound and value is not None
            }
            statement = self._statement.values(literals) if literals else self._statement
            made = self._shapes[shape] = (
                MultiRowInsert(
                    compiled(statement, self._dialect, kept), len(kept), max_parameters=self._limit
                ),
                itemgetter(*(self._columns.index(name) for name in kept)),
            )
        return made


class SqliteSink:
    """Batches into a SQLite file through its own ``sqlite3`` connection (made on the writer thread)."""

    def __init__(self, path: str) -> None:
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=True)
        sqlite_pragmas(self._db)
        dialect = sqlite_dialect.pysqlite.dialect()
        limit = self._db.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)
        self._inserts = [
            NarrowInsert(statement, dialect, columns, usual, max_parameters=limit)
            for statement, columns, usual in zip(inserts(dialect), _COLUMNS, _USUAL, strict=True)
        ]

    def write(self, batch: Batch) -> None:
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            tables = (batch.attempts, batch.requests, batch.labels, batch.prompts)
            for insert, rows in zip(self._inserts, tables, strict=True):
                for statement, parameters in insert.chunks(rows):
                    db.execute(statement, parameters)
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
