"""What the cost ledger costs: on the call path, per written attempt, and per budgeted call.

  - handle():   the recorder's work on the call path per event (a tuple appended to a queue), in µs
  - write:      the writer thread's CPU per attempt row, by batch size (1, 10, 50, 200, 1000), SQLite and
                PostgreSQL; on SQLite also through SQLAlchemy's ``exec_driver_sql`` (the alternative)
  - ids:        the writer thread's CPU per request (its attempt and request rows) on SQLite, in tables
                already holding 0, 20,000 and 200,000 requests, with random 128-bit ids (what the façade,
                the gateway and ObservedModel make today) and with time-ordered ids (milliseconds first):
                random keys dirty a different B-tree page per row in three indexes, so the cost grows
                with the table
  - budget:     one reserve + settle (what a budgeted deployment call adds), sequential and at
                concurrency 32, SQLite and PostgreSQL
PostgreSQL is measured when ``--postgres URL`` is given (a server whose user may create databases), or
when the Debian server binaries are installed (a private cluster is started, as the tests do).

Usage: python benchmarks/ledger.py [--postgres URL] [--rows N]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from model_orchestrator.core.budget import BudgetLimit  # noqa: E402
from model_orchestrator.core.events import AttemptSucceeded  # noqa: E402
from model_orchestrator.core.usage import Usage  # noqa: E402
from model_orchestrator.ledger.ledger import Ledger  # noqa: E402
from model_orchestrator.ledger.recorder import LedgerRecorder  # noqa: E402
from model_orchestrator.ledger.records import Batch, Row, attempt_row, request_row, utc_day  # noqa: E402
from model_orchestrator.ledger.settings import LedgerSettings, sqlite_url  # noqa: E402
from model_orchestrator.ledger.writer_sql import SqliteSink, sink_for  # noqa: E402

BATCHES = (1, 10, 50, 200, 1000)
LIMITS = [BudgetLimit("global", "usd", "day", 1e12), BudgetLimit("provider:p", "calls", "day", 1e12)]


def attempt(n: int) -> AttemptSucceeded:
    return AttemptSucceeded(
        request_id=f"r{n}",
        timestamp=1_800_000_000.0 + n,
        attempt_id=f"bench-{n:09d}-{time.monotonic_ns()}",
        model="fast",
        provider="p",
        deployment="fast@127.0.0.1:8000",
        usage=Usage(1200, 300, cached_input_tokens=400),
        cost=0.00042,
        latency=0.8,
    )


def handle_cost(events: int) -> float:
    """µs per ``handle()`` call: what recording adds on the call path (no writer started: no loop)."""

    async def never() -> None:
        raise AssertionError("not opened")

    recorder = LedgerRecorder(never, batch_size=events, max_queue=events)  # type: ignore[arg-type]
    prepared = [attempt(n) for n in range(events)]
    started = time.perf_counter()
    for event in prepared:
        recorder.handle(event)
    return (time.perf_counter() - started) / events * 1e6


class AlchemySink(SqliteSink):
    """The same statements through a SQLAlchemy connection's ``exec_driver_sql`` (what lost)."""

    def __init__(self, url: str) -> None:
        import sqlalchemy as sa
        from sqlalchemy.dialects import sqlite

        from model_orchestrator.ledger.store import LedgerStore
        from model_orchestrator.ledger.writer_sql import statements

        super().__init__(sa.make_url(url).database or "")
        self._sql = statements(sqlite.pysqlite.dialect())
        self._store = LedgerStore.connect(url)
        assert self._store._sync is not None
        self._engine = self._store._sync

    def write(self, batch: Batch) -> None:
        from model_orchestrator.ledger.writer_sql import statement_rows

        with self._engine.connect() as conn:
            conn = conn.execution_options(sqlite_immediate=True)
            with conn.begin():
                for statement, rows in statement_rows(batch, self._sql):
                    conn.exec_driver_sql(statement, rows)


async def write_cost(url: str, rows: int, alchemy: bool = False) -> dict[int, float]:
    """CPU µs of the writer thread per attempt row, per batch size (one transaction per batch)."""
    ledger = Ledger(LedgerSettings(url))
    await ledger.store()  # migrated
    result = {}

    def measure() -> None:
        sink = AlchemySink(url) if alchemy else sink_for(url)
        try:
            for size in BATCHES:
                batches = [
                    Batch([attempt_row(attempt(n)) for n in range(i, i + size)])
                    for i in range(0, max(rows, size), size)
                ]
                started = time.thread_time()
                for batch in batches:
                    sink.write(batch)
                result[size] = (time.thread_time() - started) / (len(batches) * size) * 1e6
        finally:
            sink.close()

    try:
        await asyncio.to_thread(measure)
    finally:
        await ledger.aclose()
    return result


def request_rows(n: int, ordered: bool) -> tuple[Row, Row]:
    """Request ``n``'s attempt and request rows, ids random or time-ordered (ms first, then random)."""
    at = 1_800_000_000.0 + n / 1000

    def new_id() -> str:
        return f"{int(at * 1000):012x}{os.urandom(10).hex()}" if ordered else os.urandom(16).hex()

    rid = new_id()
    finish = (rid, at, "safe", "fallback", None, None, True, "fast", 0.0004, 0.8, 1200, 300, 1, None)
    start = (rid, at - 0.8, utc_day(at), "safe", "fallback", None, None, None, None)
    return attempt_row(replace(attempt(n), attempt_id=new_id(), request_id=rid)), request_row(start, finish)


async def id_cost(url: str, table: int, ordered: bool, requests: int = 4000) -> float:
    """Writer CPU µs per request (two rows, batches of the default size) after ``table`` requests."""
    ledger = Ledger(LedgerSettings(url))
    await ledger.store()  # migrated
    size = LedgerSettings(url).rows_per_batch // 2

    def batches(first: int, count: int) -> list[Batch]:
        made = []
        for start in range(first, first + count, size):
            rows = [request_rows(n, ordered) for n in range(start, min(start + size, first + count))]
            made.append(Batch([a for a, _ in rows], [r for _, r in rows]))
        return made

    def measure() -> float:
        sink = sink_for(url)
        try:
            for batch in batches(0, table):
                sink.write(batch)
            measured = batches(table, requests)
            started = time.thread_time()
            for batch in measured:
                sink.write(batch)
            return (time.thread_time() - started) / requests * 1e6
        finally:
            sink.close()

    try:
        return await asyncio.to_thread(measure)
    finally:
        await ledger.aclose()


async def budget_cost(url: str, calls: int) -> tuple[float, float]:
    """(ms per reserve+settle sequentially, ms of wall time per call at concurrency 32)."""
    ledger = Ledger(LedgerSettings(url))
    try:

        async def one() -> None:
            held = await ledger.reserve(LIMITS, usd=0.001, calls=1)
            await ledger.settle(held, usd=0.001, calls=1)

        for _ in range(20):
            await one()
        samples = []
        for _ in range(calls):
            started = time.perf_counter()
            await one()
            samples.append(time.perf_counter() - started)
        sem = asyncio.Semaphore(32)

        async def bounded() -> None:
            async with sem:
                await one()

        started = time.perf_counter()
        await asyncio.gather(*(bounded() for _ in range(calls)))
        concurrent = (time.perf_counter() - started) / calls
    finally:
        await ledger.aclose()
    return statistics.median(samples) * 1e3, concurrent * 1e3


def postgres_url(given: str | None) -> str | None:
    if given:
        return given
    try:
        from tests.ledger_db import fresh_postgres_database
    except ImportError:
        return None
    try:
        return fresh_postgres_database()
    except BaseException:  # noqa: BLE001 - no server binaries: measure SQLite only
        return None


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--postgres", help="a PostgreSQL URL (default: start a private cluster if possible)")
    parser.add_argument("--rows", type=int, default=2000)
    args = parser.parse_args()
    print(f"handle() on the call path: {handle_cost(100_000):.2f} µs per event")
    folder = Path(tempfile.mkdtemp(prefix="ledger-bench-"))
    databases = {"sqlite": sqlite_url(folder / "bench.sqlite3")}
    pg = postgres_url(args.postgres)
    if pg:
        databases["postgresql"] = pg
    try:
        for name, url in databases.items():
            variants = {"": False, " (SQLAlchemy exec_driver_sql)": True} if name == "sqlite" else {"": False}
            for label, alchemy in variants.items():
                writes = asyncio.run(write_cost(url, args.rows, alchemy))
                table = ", ".join(f"batch {size}: {cost:.1f} µs" for size, cost in writes.items())
                print(f"{name}{label} writer CPU per attempt row: {table}")
            if name == "sqlite":
                for ordered in (False, True):
                    costs = []
                    for held in (0, 20_000, 200_000):
                        fresh = sqlite_url(folder / f"ids-{ordered}-{held}.sqlite3")
                        cost = asyncio.run(id_cost(fresh, held, ordered))
                        costs.append(f"{held:,} requests: {cost:.1f} µs")
                    shape = "time-ordered" if ordered else "random"
                    print(f"sqlite writer CPU per request, {shape} ids, table of " + ", ".join(costs))
            sequential, concurrent = asyncio.run(budget_cost(url, 300))
            print(
                f"{name} budget reserve+settle: {sequential:.2f} ms sequential (median), "
                f"{concurrent:.2f} ms per call at concurrency 32"
            )
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
