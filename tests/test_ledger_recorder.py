"""The recorder: never blocks, batches by size and interval, bounded queue, retries failed writes, flushes
on close; rows carry ids, tokens and costs, never prompts, answers, error messages or keys."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest
import sqlalchemy as sa

from model_orchestrator import Orchestrator
from model_orchestrator.config.loader import parse_config
from model_orchestrator.core.events import (
    AttemptSucceeded,
    CircuitOpened,
    Event,
    RequestFinished,
    RequestStarted,
)
from model_orchestrator.core.usage import Usage
from model_orchestrator.ledger.ledger import Ledger
from model_orchestrator.ledger.recorder import LedgerRecorder
from model_orchestrator.ledger.records import Batch
from model_orchestrator.ledger.settings import LedgerSettings
from model_orchestrator.testing import FakeUpstream, Fault, Reply
from tests.ledger_db import DATABASES, url_for


def attempt(n: int, request_id: str = "r") -> AttemptSucceeded:
    return AttemptSucceeded(
        request_id=request_id,
        timestamp=1_700_000_000.0 + n,
        attempt_id=f"a{n:05d}",
        model="m",
        provider="p",
        deployment="m@p",
        usage=Usage(10, 5),
        cost=0.001,
        latency=0.5,
    )


class Sink:
    """A writer that records batches and can be told to fail."""

    def __init__(self) -> None:
        self.batches: list[Batch] = []
        self.fail = False
        self.wrote = asyncio.Event()

    async def __call__(self, batch: Batch) -> None:
        if self.fail:
            raise OSError("database unreachable")
        self.batches.append(batch)
        self.wrote.set()


async def test_a_full_batch_is_written_at_once_without_waiting_for_the_interval() -> None:
    sink = Sink()
    recorder = LedgerRecorder(sink, flush_interval=60, batch_size=10)
    for n in range(9):
        recorder.handle(attempt(n))  # returns at once: no I/O here
    for _ in range(5):
        await asyncio.sleep(0)
    assert sink.batches == []  # fewer than batch_size: they wait for the (60 s) interval
    for n in range(9, 25):
        recorder.handle(attempt(n))
    await asyncio.wait_for(sink.wrote.wait(), 1)
    await recorder.aclose()
    assert [len(b) for b in sink.batches] == [10, 10, 5]  # woken: everything queued goes, in batches
    assert recorder.written == 25 and recorder.pending == 0


async def test_a_partial_batch_is_written_after_the_flush_interval() -> None:
    sink = Sink()
    recorder = LedgerRecorder(sink, flush_interval=0.005, batch_size=100)
    recorder.handle(attempt(1))
    await asyncio.wait_for(sink.wrote.wait(), 1)
    assert [len(b) for b in sink.batches] == [1]
    await recorder.aclose()


async def test_a_full_queue_drops_and_counts_instead_of_blocking(caplog: pytest.LogCaptureFixture) -> None:
    sink = Sink()
    recorder = LedgerRecorder(sink, flush_interval=60, batch_size=10, max_queue=10)
    sink.fail = True
    with caplog.at_level(logging.WARNING):
        for n in range(15):
            recorder.handle(attempt(n))
    assert recorder.dropped == 5 and recorder.pending == 10
    assert "ledger queue full" in caplog.text
    sink.fail = False
    await recorder.aclose()
    assert sum(len(b) for b in sink.batches) == 10


async def test_a_failed_write_keeps_its_events_for_the_next_try() -> None:
    sink = Sink()
    recorder = LedgerRecorder(sink, flush_interval=60, batch_size=5)
    sink.fail = True
    for n in range(3):
        recorder.handle(attempt(n))
    with pytest.raises(OSError):
        await recorder.flush()
    assert recorder.pending == 3
    sink.fail = False
    await recorder.aclose()
    assert [len(b.attempts) for b in sink.batches] == [3]


def test_events_queue_without_a_loop_and_other_kinds_are_ignored() -> None:
    sink = Sink()
    recorder = LedgerRecorder(sink, batch_size=2)
    recorder.handle(CircuitOpened(request_id="", timestamp=0.0, deployment="d", failures=5, reset_after=30))
    recorder.handle(attempt(1))
    recorder.handle(attempt(2))
    assert recorder.pending == 2
    asyncio.run(recorder.aclose())
    assert [len(b) for b in sink.batches] == [2]


@pytest.fixture(params=DATABASES)
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return url_for(request.param, tmp_path)


async def test_request_rows_merge_start_and_finish_across_batches(url: str) -> None:
    ledger = Ledger(LedgerSettings(url, batch_size=1))
    start = RequestStarted(
        request_id="r1",
        timestamp=1_700_000_000.0,
        requested="safe",
        strategy="fallback",
        category="docs",
        tags=("t1", "t2"),
        api_key_id="team-a",
        max_cost=0.5,
    )
    finish = RequestFinished(
        request_id="r1",
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
    try:
        for event in (start, attempt(1, "r1"), finish):
            ledger.recorder.handle(event)
            await ledger.flush()
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


def _events(n: int) -> list[Event]:
    return [attempt(i) for i in range(n)]


async def test_attempt_rows_are_idempotent_when_a_batch_is_written_twice(tmp_path: Path) -> None:
    ledger = Ledger(LedgerSettings(url_for("sqlite", tmp_path)))
    try:
        store = await ledger.store()
        from model_orchestrator.ledger.records import to_batch

        batch = to_batch(_events(3))
        await store.write(batch)
        await store.write(batch)  # a retry after a lost commit acknowledgement
        async with store.engine.connect() as conn:
            assert (await conn.execute(sa.text("SELECT count(*) FROM attempts"))).scalar() == 3
    finally:
        await ledger.aclose()
