"""A writer killed with SIGKILL: mid-stream, every batch it reported committed is in the database, the
database opens cleanly (SQLite integrity check), and the ledger keeps working; after the flush window,
with nothing flushed, a finished request and the start of a running one are both there."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

from model_orchestrator.core.events import AttemptSucceeded
from model_orchestrator.core.usage import Usage
from model_orchestrator.ledger.ledger import Ledger
from model_orchestrator.ledger.settings import LedgerSettings
from tests.ledger_db import DATABASES, url_for

WRITER = Path(__file__).with_name("ledger_crash_writer.py")
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(params=DATABASES)
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return url_for(request.param, tmp_path)


def _writer(url: str, mode: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(WRITER), url, mode],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT / "src")},
    )


def _write_until_killed(url: str, batches: int) -> set[str]:
    """Run the writer, kill it with SIGKILL after ``batches`` commits; the attempt ids it reported."""
    process = _writer(url, "stream")
    assert process.stdout is not None
    committed: set[str] = set()
    seen = 0
    try:
        for line in process.stdout:
            if line.startswith("committed"):
                committed.update(line.split()[1:])
                seen += 1
                if seen == batches:
                    process.send_signal(signal.SIGKILL)  # mid-stream: the next batch is being written
                    break
        committed.update(
            i for line in process.stdout if line.startswith("committed") for i in line.split()[1:]
        )
    finally:
        process.kill()
        process.wait(timeout=30)
    assert process.returncode == -signal.SIGKILL, process.stderr.read() if process.stderr else ""
    return committed


@pytest.mark.slow
async def test_sigkill_loses_nothing_that_was_committed(url: str) -> None:
    committed = _write_until_killed(url, batches=40)
    assert len(committed) >= 40 * 10
    ledger = Ledger(LedgerSettings(url))
    try:
        store = await ledger.store()  # opens (and would migrate) cleanly
        async with store.engine.connect() as conn:
            if store.dialect == "sqlite":
                assert (await conn.execute(sa.text("PRAGMA integrity_check"))).scalar() == "ok"
            stored = {row[0] for row in await conn.execute(sa.text("SELECT attempt_id FROM attempts"))}
        assert committed <= stored, f"{len(committed - stored)} committed rows are missing"
        ledger.recorder.handle(
            AttemptSucceeded(
                request_id="after",
                timestamp=1_900_000_000.0,
                attempt_id="after-crash",
                model="m",
                provider="p",
                deployment="m@p",
                usage=Usage(1, 1),
                cost=0.0,
                latency=0.0,
            )
        )
        await ledger.flush()
        async with store.engine.connect() as conn:
            count = (await conn.execute(sa.text("SELECT count(*) FROM attempts"))).scalar()
        assert count == len(stored) + 1
    finally:
        await ledger.aclose()


@pytest.mark.slow
async def test_sigkill_after_the_flush_window_loses_no_request(url: str) -> None:
    process = _writer(url, "requests")
    assert process.stdout is not None
    reported: set[str] = set()
    try:
        for line in process.stdout:  # the writer thread's own commits: the child never flushes
            if line.startswith("request "):
                reported.add(line.split()[1])
            if reported == {"done", "running"}:
                process.send_signal(signal.SIGKILL)
                break
    finally:
        process.kill()
        process.wait(timeout=30)
    assert process.returncode == -signal.SIGKILL, process.stderr.read() if process.stderr else ""
    ledger = Ledger(LedgerSettings(url))
    try:
        store = await ledger.store()
        async with store.engine.connect() as conn:
            rows = {
                row.request_id: row
                for row in await conn.execute(
                    sa.text("SELECT request_id, started_at, finished_at, ok FROM requests")
                )
            }
            attempt_ids = [row[0] for row in await conn.execute(sa.text("SELECT attempt_id FROM attempts"))]
    finally:
        await ledger.aclose()
    assert attempt_ids == ["a000000001"]
    done, running = rows["done"], rows["running"]
    assert (done.started_at, done.finished_at, bool(done.ok)) == (1_800_000_000.0, 1_800_000_001.0, True)
    assert (running.started_at, running.finished_at, running.ok) == (
        1_800_000_000.0,
        None,
        None,
    )  # unfinished
