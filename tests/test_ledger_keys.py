"""``VirtualKeyStore`` on SQLite and a real PostgreSQL: create, verify, list, revoke; only hashes stored."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from model_orchestrator.core.errors import ConfigError
from model_orchestrator.ledger.keys import KeyNotFoundError, VirtualKeyStore, split_key
from model_orchestrator.ledger.store import LedgerStore
from model_orchestrator.ledger.tables import virtual_keys
from tests.ledger_db import DATABASES, url_for


@pytest.fixture(params=DATABASES)
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return url_for(request.param, tmp_path)


async def test_keys_round_trip_and_only_hashes_are_stored(url: str) -> None:
    ledger = await LedgerStore.open(url, now=time.time())
    try:
        store = VirtualKeyStore(ledger.engine)
        key, secret = await store.create(
            name="team", models=("a", "b", "a"), budget_usd=5, budget_period="day", rpm=10, expires_at=2e9
        )
        assert key.models == ("a", "b") and key.state(time.time()) == "active"
        assert (await store.verify(secret)) == key
        parts = split_key(secret)
        assert parts is not None
        key_id, body = parts
        assert await store.verify(f"sk-orch-{key_id}-{body[:-1]}x") is None
        assert await store.verify("sk-orch-short-x") is None and await store.verify("other") is None
        other, _ = await store.create()
        assert [k.id for k in await store.list()] == [key.id, other.id]

        revoked = await store.revoke(key.id)
        assert revoked.revoked_at is not None and revoked.state(time.time()) == "revoked"
        assert (await store.revoke(key.id)).revoked_at == revoked.revoked_at  # idempotent
        assert (await store.verify(secret)) == revoked  # still found: the gateway says "revoked"
        with pytest.raises(KeyNotFoundError):
            await store.revoke("000000000000")

        async with ledger.engine.connect() as conn:
            rows = (await conn.execute(sa.select(virtual_keys))).mappings().all()
        assert body not in str([dict(r) for r in rows]) and secret not in str([dict(r) for r in rows])
    finally:
        await ledger.aclose()


async def test_key_limits_are_checked(tmp_path: Path) -> None:
    ledger = await LedgerStore.open(url_for("sqlite", tmp_path), now=time.time())
    try:
        store = VirtualKeyStore(ledger.engine)
        for bad in ({"budget_usd": -1.0}, {"budget_period": "week"}, {"rpm": 0}):
            with pytest.raises(ConfigError):
                await store.create(**bad)  # type: ignore[arg-type]
    finally:
        await ledger.aclose()
