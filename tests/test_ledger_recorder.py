"""The recorder: never blocks, batches by size and interval, bounded queue, retries failed writes, flushes
on close; rows carry ids, tokens and costs, never prompts, answers, error messages or keys."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from model_orchestrator import Orchestrator
from model_orchestrator.config.loader import parse_config
from model_orchestrator.core.events import (
    AttemptSucceeded,
    CircuitOpened,
    RequestFinished,
    RequestStarted,
)
from model_orchestrator.ledger.ledger import Ledger, LedgerError
from model_orchestrator.ledger.recorder import LedgerRecorder
from model_orchestrator.ledger.records import (
    REQUEST_COLUMNS,
    Batch,
    attempt_row,
    request_finish,
    request_row,
    request_start,
)
from model_orchestrator.ledger.settings import LedgerSettings
from model_orchestrator.ledger.writer_sql import sink_for
from model_orchestrator.testing import FakeUpstream, Fault, Reply
from tests.ledger_db import DATABASES, url_for
from tests.ledger_events import attempt


class Sink:
    """A database stand-in for the writer thread: records batches and can be told to fail."""

    def __init__(self) -> None:
        self.batches: list[Batch] = []
        self.fail = False
        self.wrote = threading.Event()

    def write(self, batch: Batch) -> None:
        if self.fail:
            raise OSError("database unreachable")
        self.batches.append(Batch(list(batch.attempts), list(batch.requests), list(batch.labels)))
        self.wrote.set()

    def close(self) -> None:
        pass


def recorder_for(sink: Sink, **options: Any) -> LedgerRecorder:
    async def open_sink() -> Callable[[], Sink]:
        return lambda: sink

    return LedgerRecorder(open_sink, **options)


async def wrote(sink: Sink) -> None:
    assert await asyncio.to_thread(sink.wrote.wait, 10)


async def test_a_full_batch_is_written_at_once_without_waiting_for_the_interval() -> None:
    sink = Sink()
    recorder = recorder_for(sink, flush_interval=60, batch_size=10)
    for n in range(9):
        recorder.handle(attempt(n))  # returns at once: no I/O here
    for _ in range(5):
        await asyncio.sleep(0)
    assert sink.batches == []  # fewer than batch_size: they wait for the (60 s) interval
    for n in range(9, 25):
        recorder.handle(attempt(n))
    await wrote(sink)
    await recorder.aclose()
    assert [len(b) for b in sink.batches] == [10, 10, 5]  # woken: full batches go, the rest at close
    assert recorder.written == 25 and recorder.pending == 0


async def test_a_partial_batch_is_written_after_the_flush_interval() -> None:
    sink = Sink()
    recorder = recorder_for(sink, flush_interval=0.005, batch_size=100)
    recorder.handle(attempt(1))
    await wrote(sink)  # nobody flushed: the writer thread's interval did
    assert [len(b) for b in sink.batches] == [1]
    await recorder.aclose()


async def test_a_request_is_one_row_when_it_finishes_within_the_interval() -> None:
    sink = Sink()
    recorder = recorder_for(sink, flush_interval=60, batch_size=100)
    recorder.handle(started("r1"))
    recorder.handle(attempt(1, "r1"))
    recorder.handle(finished("r1"))
    await recorder.flush()
    [batch] = sink.batches
    [row] = batch.requests
    assert dict(zip(REQUEST_COLUMNS, row, strict=True)) | {"day": None} == {
        "request_id": "r1",
        "started_at": 1_700_000_000.0,
        "finished_at": 1_700_000_002.0,
        "day": None,
        "requested": "safe",
        "strategy": "fallback",
        "category": "docs",
        "tags": "t1,t2",
        "api_key_id": "team-a",
        "max_cost": 0.5,
        "ok": True,
        "model_used": "m",
        "cost": 0.002,
        "latency": 2.0,
        "input_tokens": 10,
        "output_tokens": 5,
        "attempts": 1,
        "error_type": None,
    }
    await recorder.aclose()


async def test_a_request_running_past_the_interval_has_its_start_written_alone() -> None:
    sink = Sink()
    recorder = recorder_for(sink, flush_interval=0.005, batch_size=100)
    recorder.handle(started("long"))
    while not any(b.requests for b in sink.batches):  # the writer's own ticks, nobody flushing
        await asyncio.sleep(0.005)
    [start_only] = [row for b in sink.batches for row in b.requests]
    assert start_only[0] == "long" and start_only[2] is None and start_only[10] is None  # no finish yet
    recorder.handle(finished("long"))
    await recorder.flush()
    finish_only = sink.batches[-1].requests[-1]
    assert finish_only[0] == "long" and finish_only[1] is None and finish_only[10] is True
    await recorder.aclose()


async def test_a_full_queue_drops_and_counts_instead_of_blocking(caplog: pytest.LogCaptureFixture) -> None:
    sink = Sink()
    recorder = recorder_for(sink, flush_interval=60, batch_size=10, max_queue=10)
    sink.fail = True
    with caplog.at_level(logging.WARNING):
        for n in range(15):
            recorder.handle(attempt(n))
    assert recorder.dropped == 5 and recorder.pending == 10
    assert "ledger queue full" in caplog.text
    sink.fail = False
    await recorder.aclose()
    assert sum(len(b) for b in sink.batches) == 10


async def test_a_failed_write_keeps_its_rows_for_the_next_try() -> None:
    sink = Sink()
    recorder = recorder_for(sink, flush_interval=60, batch_size=5)
    sink.fail = True
    for n in range(3):
        recorder.handle(attempt(n))
    with pytest.raises(OSError):
        await recorder.flush()
    assert recorder.pending == 3 and recorder.failure == "OSError: database unreachable"
    sink.fail = False
    await recorder.aclose()
    assert [len(b.attempts) for b in sink.batches] == [3]


async def test_a_failing_database_is_logged_once_retried_and_never_raised_into_a_request(
    caplog: pytest.LogCaptureFixture,
) -> None:
    sink = Sink()
    recorder = recorder_for(sink, flush_interval=0.002, batch_size=2)
    sink.fail = True
    with caplog.at_level(logging.DEBUG, logger="model_orchestrator.ledger"):
        for n in range(6):
            recorder.handle(attempt(n))  # full batches wake the writer; the failures stay on its thread
        while "write failed again" not in caplog.text:  # retried by the writer on its own
            await asyncio.sleep(0.002)
        sink.fail = False
        await wrote(sink)
        await recorder.aclose()
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and "ledger write failed; 6 rows kept" in errors[0].getMessage()
    assert "ledger writes work again" in caplog.text
    assert sorted(row[0] for b in sink.batches for row in b.attempts) == [f"a{n:05d}" for n in range(6)]


def test_events_queue_without_a_loop_and_other_kinds_are_ignored() -> None:
    sink = Sink()
    recorder = recorder_for(sink, batch_size=2)
    recorder.handle(CircuitOpened(request_id="", timestamp=0.0, deployment="d", failures=5, reset_after=30))
    recorder.handle(attempt(1))
    recorder.handle(attempt(2))
    assert recorder.pending == 2
    asyncio.run(recorder.aclose())
    assert [len(b) for b in sink.batches] == [2]


def started(request_id: str) -> RequestStarted:
    return RequestStarted(
        request_id=request_id,
        timestamp=1_700_000_000.0,
        requested="safe",
        strategy="fallback",
        category="docs",
        tags=("t1", "t2"),
        api_key_id="team-a",
        max_cost=0.5,
    )


def finished(request_id: str) -> RequestFinished:
    return RequestFinished(
        request_id=request_id,
        timestamp=1_700_000_002.0,
        requested="safe",
        strategy="fallback",
        ok=True,
        latency=2.0,
        model_used="m",
        cost=0.002,
        input_tokens=10,
        output_tokens=5,
        attempts=1,
    )


@pytest.fixture(params=DATABASES)
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return url_for(request.param, tmp_path)


async def test_request_rows_merge_start_and_finish_across_batches(url: str) -> None:
    ledger = Ledger(LedgerSettings(url, batch_size=1))
    try:
        for event in (started("r1"), attempt(1, "r1"), finished("r1")):
            ledger.recorder.handle(event)
            await ledger.flush()  # the start is written alone, the finish completes its row
        store = await ledger.store()
        async with store.engine.connect() as conn:
            row = (await conn.execute(sa.text("SELECT * FROM requests"))).mappings().one()
    finally:
        await ledger.aclose()
    assert (row["category"], row["tags"], row["api_key_id"], row["max_cost"]) == (
        "docs",
        "t1,t2",
        "team-a",
        0.5,
    )
    assert (row["ok"], row["model_used"], row["cost"], row["attempts"]) == (True, "m", 0.002, 1)


async def test_no_prompt_answer_error_text_or_key_in_any_row(url: str) -> None:
    secret_key, prompt = "sk-live-SECRET-0123456789", "my confidential prompt xyzzy"
    async with FakeUpstream() as up:
        up.script(Fault.status(400, f"bad input: {prompt} with key {secret_key[:12]}"), Reply("plugh answer"))
        config = parse_config(
            f"""
models:
  - {{name: fast, provider: openai, model: m-fast, api_base: '{up.openai_base}', api_key_env: K,
     price: {{input: 1, output: 1}}}}
ledger: {{url: '{url}'}}
telemetry: {{record_content: true, tracing: false}}
"""
        )
        async with Orchestrator(config, env={"K": secret_key}) as orch:
            with pytest.raises(Exception, match="bad input"):
                await orch.complete(prompt, model="fast", api_key_id="team-a", category="c")
            await orch.complete(prompt, model="fast", api_key_id="team-a", category="c")
            await orch.ledger.flush()
            store = await orch.ledger.store()
            dump = []
            async with store.engine.connect() as conn:
                for table in ("requests", "attempts", "budget_counters", "budget_reservations"):
                    dump += [repr(tuple(r)) for r in await conn.execute(sa.text(f"SELECT * FROM {table}"))]
    text = "\n".join(dump)
    assert "team-a" in text and "BadRequestError" in text
    for secret in (secret_key, secret_key[:12], "xyzzy", "plugh", "confidential", "bad input"):
        assert secret not in text


def _attempts(n: int) -> list[AttemptSucceeded]:
    return [attempt(i) for i in range(n)]


async def test_a_batch_written_twice_counts_once(url: str) -> None:
    ledger = Ledger(LedgerSettings(url))
    try:
        store = await ledger.store()
        batch = Batch(
            [attempt_row(a) for a in _attempts(3)],
            [request_row(request_start(started("r1")), request_finish(finished("r1")))],
        )

        def write_twice() -> None:  # on a thread, as the writer does
            sink = sink_for(url)
            try:
                sink.write(batch)
                sink.write(batch)  # a retry after a lost commit acknowledgement
            finally:
                sink.close()

        await asyncio.to_thread(write_twice)
        async with store.engine.connect() as conn:
            assert (await conn.execute(sa.text("SELECT count(*) FROM attempts"))).scalar() == 3
            assert (await conn.execute(sa.text("SELECT sum(cost) FROM requests"))).scalar() == 0.002
    finally:
        await ledger.aclose()


async def test_a_database_error_is_kept_off_the_call_path_reported_and_the_rows_written_later(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "ledger.sqlite3"
    ledger = Ledger(LedgerSettings(url_for("sqlite", tmp_path), flush_interval=60))
    try:
        ledger.recorder.handle(attempt(1))
        await ledger.flush()
        with sqlite3.connect(path) as db:  # the table vanishes under the writer
            db.execute("ALTER TABLE attempts RENAME TO attempts_away")
        with caplog.at_level(logging.ERROR, logger="model_orchestrator.ledger"):
            ledger.recorder.handle(attempt(2))  # no error here: the write happens on the writer thread
            for _ in range(2):
                with pytest.raises(LedgerError, match="no such table: attempts"):
                    await ledger.flush()
        assert ledger.recorder.pending == 1 and "no such table" in (ledger.recorder.failure or "")
        assert len(caplog.records) == 1 and "1 rows kept" in caplog.records[0].getMessage()  # logged once
        with sqlite3.connect(path) as db:
            db.execute("ALTER TABLE attempts_away RENAME TO attempts")
        await ledger.flush()
        assert ledger.recorder.pending == 0 and ledger.recorder.failure is None
    finally:
        await ledger.aclose()
    with sqlite3.connect(path) as db:
        assert [r[0] for r in db.execute("SELECT attempt_id FROM attempts ORDER BY 1")] == [
            "a00001",
            "a00002",
        ]


async def test_a_database_that_cannot_be_opened_never_blocks_a_request_or_the_close(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    ledger = Ledger(LedgerSettings(f"sqlite:///{blocker}/ledger.sqlite3", flush_interval=0.01))
    with caplog.at_level(logging.ERROR, logger="model_orchestrator.ledger"):
        ledger.recorder.handle(attempt(1))  # opening starts in the background and fails there
        while "opening the database failed" not in caplog.text:
            await asyncio.sleep(0.01)
        ledger.recorder.handle(attempt(2))
        with pytest.raises(LedgerError, match="ledger open failed"):
            await ledger.flush()
        assert ledger.recorder.pending == 2
        await asyncio.wait_for(ledger.aclose(), 30)  # returns: the loss is logged, not waited out
    assert "2 rows could not be written on close and are lost" in caplog.text
    assert caplog.text.count("opening the database failed") == 1
