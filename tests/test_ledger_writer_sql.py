"""The writer thread's SQL: SQLite rows go in a few multi-row statements, every row lands once, and the
batch size defaults large but never above the queue bound."""

from __future__ import annotations

import asyncio
import sqlite3
from dataclasses import replace
from pathlib import Path

import pytest
import sqlalchemy as sa

from model_orchestrator.core.events import AttemptFailed, RequestFinished, RequestStarted
from model_orchestrator.core.usage import Usage
from model_orchestrator.ledger.ledger import Ledger
from model_orchestrator.ledger.records import (
    Batch,
    attempt_row,
    request_finish,
    request_row,
    request_start,
)
from model_orchestrator.ledger.settings import DEFAULT_BATCH_SIZE, LedgerSettings, sqlite_url
from model_orchestrator.ledger.writer_sql import MultiRowInsert, SqliteSink, sink_for
from tests.ledger_db import DATABASES, url_for
from tests.ledger_events import attempt

ONE_ROW = "INSERT INTO t (a, b, c) VALUES (?, ?, ?) ON CONFLICT DO NOTHING"


def test_rows_go_in_power_of_two_chunks_largest_first_with_every_parameter_in_order() -> None:
    insert = MultiRowInsert(ONE_ROW, 3, max_parameters=1000)
    rows = [(n, n + 0.5, f"r{n}") for n in range(13)]
    chunks = list(insert.chunks(rows))
    assert [sql.count("(?, ?, ?)") for sql, _ in chunks] == [8, 4, 1]
    assert all(sql.endswith(") ON CONFLICT DO NOTHING") for sql, _ in chunks)
    assert [p for _, parameters in chunks for p in parameters] == [v for row in rows for v in row]


def test_a_chunk_stays_within_the_parameter_limit_and_the_row_cap() -> None:
    limited = MultiRowInsert(ONE_ROW, 3, max_parameters=20)  # 6 rows fit: chunks of 4
    assert [len(p) // 3 for _, p in limited.chunks([(1, 2, 3)] * 10)] == [4, 4, 2]
    capped = MultiRowInsert(ONE_ROW, 3, max_parameters=100_000, max_rows=2)
    assert [len(p) // 3 for _, p in capped.chunks([(1, 2, 3)] * 5)] == [2, 2, 1]


def test_a_statement_without_a_single_row_values_clause_is_refused() -> None:
    with pytest.raises(RuntimeError, match="VALUES"):
        MultiRowInsert("INSERT INTO t (a, b) SELECT a, b FROM u", 2, max_parameters=100)


def test_the_sqlite_sink_writes_a_large_batch_in_few_statements(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path / "ledger.sqlite3")
    asyncio.run(_migrated(url))
    statements: list[str] = []
    sink = SqliteSink(str(tmp_path / "ledger.sqlite3"))
    try:
        sink._db.set_trace_callback(statements.append)
        sink.write(Batch([attempt_row(attempt(n, f"r{n}")) for n in range(1500)]))
    finally:
        sink.close()
    inserts = [s for s in statements if s.startswith("INSERT")]
    assert len(inserts) == 7  # 1024 + 256 + 128 + 64 + 16 + 8 + 4 rows
    with sqlite3.connect(tmp_path / "ledger.sqlite3") as db:
        assert db.execute("SELECT count(*), sum(input_tokens) FROM attempts").fetchone() == (1500, 15000)


def test_a_row_binds_only_its_unusual_values_and_every_value_lands(tmp_path: Path) -> None:
    asyncio.run(_migrated(sqlite_url(tmp_path / "ledger.sqlite3")))
    failed = AttemptFailed(
        request_id="r1",
        timestamp=1_700_000_001.0,
        attempt_id="a00001",
        model="m",
        provider="p",
        deployment="m@p",
        error_type="RateLimitError",
        error_message="slow down",
        status_code=429,
        retryable=True,
        latency=0.1,
    )  # unpriced: cost None
    cached = replace(attempt(2, "r2"), usage=Usage(10, 5, cached_input_tokens=4, estimated=True))
    attempts = [attempt_row(attempt(0, "r0")), attempt_row(failed), attempt_row(cached)]
    plain = request_row(None, request_finish(_finished("r1")))
    tagged = request_row(
        request_start(replace(_started("r2"), tags=("a", "b"), api_key_id="k", max_cost=0.5)),
        request_finish(replace(_finished("r2"), ok=False, error_type="Boom")),
    )
    docs = request_row(request_start(_started("r3")), request_finish(_finished("r3")))  # category only
    statements: list[str] = []
    sink = SqliteSink(str(tmp_path / "ledger.sqlite3"))
    try:
        sink._db.set_trace_callback(statements.append)
        sink.write(Batch(attempts, [plain, tagged, docs]))
    finally:
        sink.close()
    named = sorted(s.split(" VALUES")[0].count(",") + 1 for s in statements if "INTO attempts" in s)
    assert named == [17, 17, 19]  # one statement per shape; usual NULLs left out (zeros: literals)
    requests = [s for s in statements if s.startswith("INSERT INTO requests")]
    columns = sorted(s.split("VALUES")[0].count(",") + 1 for s in requests)
    assert columns == [13, 14, 18]  # one statement per shape of NULLs, each naming only its columns
    with sqlite3.connect(tmp_path / "ledger.sqlite3") as db:
        assert db.execute("SELECT * FROM attempts ORDER BY attempt_id").fetchall() == [
            tuple(int(v) if isinstance(v, bool) else v for v in row) for row in attempts
        ]
        assert db.execute("SELECT * FROM requests ORDER BY request_id").fetchall() == [
            tuple(int(v) if isinstance(v, bool) else v for v in row) for row in (plain, tagged, docs)
        ]


@pytest.fixture(params=DATABASES)
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return url_for(request.param, tmp_path)


async def test_one_batch_holding_a_start_alone_and_later_its_finish_merges_them(url: str) -> None:
    """A failed write keeps its rows and the next take adds to them, so one batch can hold a request's
    start (written alone) and its finish: both go through the upsert, the finish completing the row."""
    ledger = Ledger(LedgerSettings(url))
    try:
        store = await ledger.store()
        start = request_start(_started("r1"))
        batch = Batch(
            [attempt_row(attempt(n, f"r{n}")) for n in range(300)],
            [request_row(start, None), request_row(None, request_finish(_finished("r1")))],
        )

        def write() -> None:  # on a thread, as the writer does
            sink = sink_for(url)
            try:
                sink.write(batch)
            finally:
                sink.close()

        await asyncio.to_thread(write)
        async with store.engine.connect() as conn:
            assert (await conn.execute(sa.text("SELECT count(*) FROM attempts"))).scalar() == 300
            row = (await conn.execute(sa.text("SELECT * FROM requests"))).mappings().one()
    finally:
        await ledger.aclose()
    assert (row["category"], row["started_at"], row["ok"], row["cost"]) == (
        "docs",
        1_700_000_000.0,
        True,
        0.002,
    )


def test_the_batch_size_defaults_large_but_never_above_the_queue_bound() -> None:
    assert LedgerSettings("sqlite:///x").rows_per_batch == DEFAULT_BATCH_SIZE
    assert LedgerSettings("sqlite:///x", max_queue=500).rows_per_batch == 500
    assert LedgerSettings("sqlite:///x", batch_size=50).rows_per_batch == 50
    with pytest.raises(ValueError, match="max_queue >= batch_size"):
        LedgerSettings("sqlite:///x", batch_size=600, max_queue=500)


async def _migrated(url: str) -> None:
    ledger = Ledger(LedgerSettings(url))
    await ledger.store()
    await ledger.aclose()


def _started(request_id: str) -> RequestStarted:
    return RequestStarted(
        request_id=request_id, timestamp=1_700_000_000.0, requested="m", strategy="single", category="docs"
    )


def _finished(request_id: str) -> RequestFinished:
    return RequestFinished(
        request_id=request_id,
        timestamp=1_700_000_001.0,
        requested="m",
        strategy="single",
        ok=True,
        model_used="m",
        cost=0.002,
        latency=1.0,
        input_tokens=10,
        output_tokens=5,
        attempts=1,
    )
