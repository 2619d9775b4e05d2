"""Schema versions: an older ledger is upgraded in place (rows kept), a newer one is refused clearly, and
the migrations build exactly the tables the code queries."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from model_orchestrator.ledger.ledger import Ledger
from model_orchestrator.ledger.migrations import LATEST, MIGRATIONS, LedgerSchemaError, migrate
from model_orchestrator.ledger.query import CostQuery
from model_orchestrator.ledger.settings import LedgerSettings
from model_orchestrator.ledger.store import LedgerStore
from model_orchestrator.ledger.tables import metadata
from tests.ledger_db import DATABASES, url_for


@pytest.fixture(params=DATABASES)
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return url_for(request.param, tmp_path)


async def _at_version(url: str, version: int) -> LedgerStore:
    store = LedgerStore.connect(url)
    async with store.transaction(immediate=True) as conn:
        await migrate(conn, now=time.time(), target=version)
    return store


async def test_an_older_ledger_is_upgraded_and_keeps_its_rows(url: str) -> None:
    old = await _at_version(url, 1)
    async with old.transaction() as conn:  # a row as release 1 wrote it: no cache_write_tokens column
        await conn.execute(
            sa.text(
                "INSERT INTO attempts (attempt_id, request_id, started_at, finished_at, day, model, "
                "provider, deployment, status, input_tokens, output_tokens, cached_input_tokens, "
                "reasoning_tokens, usage_estimated, cost, latency) "
                "VALUES ('a1', 'r1', 1700000000, 1700000001, '2023-11-14', "
                "'m', 'p', 'm@p', 'ok', 10, 5, 0, 0, false, 0.25, 1.0)"
            )
        )
    await old.aclose()
    ledger = Ledger(LedgerSettings(url))
    try:
        store = await ledger.store()
        assert await store.version() == LATEST
        report = await ledger.report(CostQuery())
        async with store.engine.connect() as conn:
            names = (await conn.execute(sa.text("SELECT name FROM schema_migrations ORDER BY version"))).all()
    finally:
        await ledger.aclose()
    assert [n for (n,) in names] == [name for name, _ in MIGRATIONS]
    assert report.total.cost == 0.25 and report.total.cache_write_tokens == 0


async def test_a_ledger_from_a_newer_release_is_refused_with_what_to_do(url: str) -> None:
    store = await _at_version(url, LATEST)
    async with store.transaction() as conn:
        await conn.execute(
            sa.text("INSERT INTO schema_migrations (version, name, applied_at) VALUES (:v, 'future', 0)"),
            {"v": LATEST + 1},
        )
    await store.aclose()
    ledger = Ledger(LedgerSettings(url))
    with pytest.raises(LedgerSchemaError, match=r"newer than this release.*upgrade model-orchestrator"):
        await ledger.store()
    await ledger.aclose()


async def test_the_migrations_build_exactly_the_tables_the_code_uses(url: str) -> None:
    store = await _at_version(url, LATEST)

    def columns(sync: sa.Connection) -> dict[str, set[tuple[str, bool]]]:
        inspector = sa.inspect(sync)
        return {
            table: {(c["name"], bool(c["nullable"])) for c in inspector.get_columns(table)}
            for table in inspector.get_table_names()
        }

    try:
        async with store.engine.connect() as conn:
            found = await conn.run_sync(columns)
    finally:
        await store.aclose()
    expected = {
        table.name: {(c.name, bool(c.nullable) and not c.primary_key) for c in table.columns}
        for table in metadata.sorted_tables
    }
    assert found == expected
