"""Virtual keys across two gateway processes (two authenticators, each with its own Redis client and its own
connection to one key table): one rpm for the key, and a revocation refused by both within a second."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from model_orchestrator.gateway.auth import Authenticator
from model_orchestrator.gateway.errors import GatewayError
from model_orchestrator.ledger.keys import VirtualKeyStore
from model_orchestrator.ledger.store import LedgerStore
from model_orchestrator.resilience.redis_state import RedisStateStore, state_client
from model_orchestrator.testing import FakeClock
from tests.ledger_db import url_for


@pytest.fixture
async def processes(
    tmp_path: Path, redis_url: str
) -> AsyncIterator[tuple[FakeClock, list[Authenticator], VirtualKeyStore]]:
    """Two authenticators as two processes serve them (1 s key cache, as with shared state)."""
    clock, url = FakeClock(), url_for("sqlite", tmp_path)
    ledgers = [await LedgerStore.open(url, now=time.time()) for _ in range(2)]
    stores = [RedisStateStore(state_client(redis_url)) for _ in range(2)]
    keys = [VirtualKeyStore(ledger.engine, clock=clock) for ledger in ledgers]
    authenticators = [
        Authenticator(master_key=None, keys=k, clock=clock, cache_seconds=1.0, store=s)
        for k, s in zip(keys, stores, strict=True)
    ]
    yield clock, authenticators, keys[0]
    for store in stores:
        await store.aclose()
    for ledger in ledgers:
        await ledger.aclose()


async def test_a_keys_rpm_holds_across_processes(
    processes: tuple[FakeClock, list[Authenticator], VirtualKeyStore],
) -> None:
    clock, (one, two), keys = processes
    _, secret = await keys.create(name="team", rpm=3)
    allowed = refused = 0
    for auth in (one, two, one, two, one, two):
        principal = await auth.authenticate(f"Bearer {secret}")
        try:
            await auth.take_request(principal)
            allowed += 1
        except GatewayError as exc:
            assert exc.status == 429 and exc.headers["retry-after"] == "60"
            refused += 1
    assert (allowed, refused) == (3, 3)
    clock.advance(60)
    await two.take_request(await two.authenticate(f"Bearer {secret}"))


async def test_a_revocation_is_refused_by_every_process_within_a_second(
    processes: tuple[FakeClock, list[Authenticator], VirtualKeyStore],
) -> None:
    clock, (one, two), keys = processes
    key, secret = await keys.create(name="team")
    for auth in (one, two):
        await auth.authenticate(f"Bearer {secret}")  # both have it cached
    await keys.revoke(key.id)
    one.forget(key.id)  # the process that revoked it drops it at once (the admin route does this)
    with pytest.raises(GatewayError):
        await one.authenticate(f"Bearer {secret}")
    polls = 0
    while True:  # the other process: poll every 0.1 s of (fake) time until it refuses
        polls += 1
        try:
            await two.authenticate(f"Bearer {secret}")
        except GatewayError as exc:
            assert exc.status == 401
            break
        clock.advance(0.1)
        assert polls <= 11, "a revoked key was still accepted more than a second later"
