"""What the cost ledger costs: on the call path, per written attempt, and per budgeted call.

  - handle():   the recorder's work on the call path per event (enqueue only), in µs
  - write:      database time per attempt row, by batch size (1, 10, 50, 200, 1000), SQLite and PostgreSQL
  - budget:     one reserve + settle (what a budgeted deployment call adds), sequential and at
                concurrency 32, SQLite and PostgreSQL
PostgreSQL is measured when ``--postgres URL`` is given (a server whose user may create databases), or
when the Debian server binaries are installed (a private cluster is started, as the tests do).

Usage: python benchmarks/ledger.py [--postgres URL] [--rows N]
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from model_orchestrator.core.budget import BudgetLimit  # noqa: E402
from model_orchestrator.core.events import AttemptSucceeded  # noqa: E402
from model_orchestrator.core.usage import Usage  # noqa: E402
from model_orchestrator.ledger.ledger import Ledger  # noqa: E402
from model_orchestrator.ledger.recorder import LedgerRecorder  # noqa: E402
from model_orchestrator.ledger.records import to_batch  # noqa: E402
from model_orchestrator.ledger.settings import LedgerSettings, sqlite_url  # noqa: E402

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
    """µs per ``handle()`` call: what recording adds on the call path."""

    async def nowrite(_batch: object) -> None:
        return None

    recorder = LedgerRecorder(nowrite, batch_size=events, max_queue=events)  # type: ignore[arg-type]
    prepared = [attempt(n) for n in range(events)]
    started = time.perf_counter()
    for event in prepared:
        recorder.handle(event)
    return (time.perf_counter() - started) / events * 1e6


async def write_cost(url: str, rows: int) -> dict[int, float]:
    """µs of database time per attempt row, per batch size."""
    ledger = Ledger(LedgerSettings(url))
    store = await ledger.store()
    result = {}
    try:
        for size in BATCHES:
            batches = [
                to_batch(attempt(n) for n in range(i, i + size)) for i in range(0, max(rows, size), size)
            ]
            started = time.perf_counter()
            for batch in batches:
                await store.write(batch)
            result[size] = (time.perf_counter() - started) / (len(batches) * size) * 1e6
    finally:
        await ledger.aclose()
    return result


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
            writes = asyncio.run(write_cost(url, args.rows))
            table = ", ".join(f"batch {size}: {cost:.0f} µs" for size, cost in writes.items())
            print(f"{name} write per attempt row: {table}")
            sequential, concurrent = asyncio.run(budget_cost(url, 300))
            print(
                f"{name} budget reserve+settle: {sequential:.2f} ms sequential (median), "
                f"{concurrent:.2f} ms per call at concurrency 32"
            )
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
