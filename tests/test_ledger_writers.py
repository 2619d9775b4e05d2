"""Several processes writing one ledger at once (``orchestrator serve --workers N``, replicas): on SQLite
(WAL and a busy timeout, one machine) and PostgreSQL, they migrate a fresh database together, every
attempt lands once (a shared attempt id counts once, however many writers sent it), and reservations from
every process together never go past a daily limit."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

from model_orchestrator.ledger.migrations import LATEST
from model_orchestrator.ledger.store import LedgerStore
from model_orchestrator.ledger.tables import attempts, budget_counters, budget_reservations, schema_migrations
from tests.ledger_db import DATABASES, url_for

WRITER = Path(__file__).with_name("ledger_writer.py")
ROOT = Path(__file__).resolve().parents[1]
WRITERS = 3
COUNT = 60


@pytest.fixture(params=DATABASES)
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return url_for(request.param, tmp_path)


def _run_writers(url: str) -> list[int]:
    """Start the writers, release them at once, and return how many budget calls each was granted."""
    processes = [
        subprocess.Popen(
            [sys.executable, str(WRITER), url, f"w{i}", str(COUNT)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT / "src")},
        )
        for i in range(WRITERS)
    ]
    for process in processes:
        assert process.stdin is not None
        process.stdin.write("go\n")
        process.stdin.flush()
    granted = []
    for process in processes:
        out, err = process.communicate(timeout=120)
        assert process.returncode == 0, err
        granted.append(int(out.split()[-1]))
    return granted


@pytest.mark.slow
async def test_writers_in_several_processes_share_one_ledger(url: str) -> None:
    granted = _run_writers(url)

    store = LedgerStore.connect(url)
    try:
        async with store.engine.connect() as conn:
            ids = {row[0] for row in await conn.execute(sa.select(attempts.c.attempt_id))}
            versions = [row[0] for row in await conn.execute(sa.select(schema_migrations.c.version))]
            spent = (await conn.execute(sa.select(budget_counters.c.spent))).scalar_one()
            held = (await conn.execute(sa.select(sa.func.count()).select_from(budget_reservations))).scalar()
    finally:
        await store.aclose()
    expected = {f"w{i}-{n}" for i in range(WRITERS) for n in range(COUNT)} | {
        f"shared-{n}" for n in range(COUNT)
    }
    assert ids == expected  # nothing lost, and a shared attempt id counted once
    assert sorted(versions) == list(range(1, LATEST + 1))  # each migration applied exactly once
    assert sum(granted) == 100  # 1 USD of 0.01 calls, across the processes together
    assert spent == pytest.approx(1.0) and held == 0
