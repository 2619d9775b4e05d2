"""The shared store's failure policy against a real redis-server that is killed, frozen and restarted:
local state with divided limits (one warning, a metric), or a clear 503-family error; never a hang."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from redis.asyncio import Redis

from model_orchestrator.core.errors import StateUnavailableError
from model_orchestrator.core.events import EventBus, RecordingSink, StateStoreRecovered, StateStoreUnavailable
from model_orchestrator.resilience.redis_state import RedisStateStore, redis_client, state_client
from model_orchestrator.resilience.shared_state import FailoverStateStore
from model_orchestrator.resilience.state_store import MemoryStateStore, StateContentionError
from model_orchestrator.telemetry.metrics import MetricsSink
from model_orchestrator.testing import FakeClock
from tests.redis_server import RedisServer


@pytest.fixture
async def redis_store(own_redis: RedisServer) -> AsyncIterator[RedisStateStore]:
    store = RedisStateStore(state_client(own_redis.url))
    yield store
    await store.aclose()


async def test_killed_redis_falls_back_to_local_state_and_recovers(
    own_redis: RedisServer,
    redis_store: RedisStateStore,
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock, bus, sink, metrics = FakeClock(), EventBus(), RecordingSink(), MetricsSink()
    bus.subscribe(sink)
    bus.subscribe(metrics)
    store = FailoverStateStore(redis_store, clock=clock, bus=bus, replicas=3, retry_interval=1.0)
    await store.update("cooldown:d", lambda old: (5.0, None))
    own_redis.stop()
    with caplog.at_level(logging.WARNING, logger="model_orchestrator.resilience.shared_state"):
        # A read this process has not cached finds Redis gone (cooldown:d, written 0 s ago, would be answered
        # from the cache: what Redis held within state's staleness bound).
        assert await store.get("health:d") is None
        assert await store.get("cooldown:d") is None  # local state from now on: the cache went with Redis
        grants = [
            await store.take_window("rpm:d", kind="units", now=1.0, limit=30, amount=1) for _ in range(12)
        ]
    assert [g.taken for g in grants].count(True) == 10  # 30 rpm over 3 replicas
    assert not store.shared and len(sink.of_type(StateStoreUnavailable)) == 1
    assert len([r for r in caplog.records if "shared state store unavailable" in r.message]) == 1
    assert 'orchestrator_state_store_unavailable_total{policy="local"} 1.0' in metrics.render().decode()

    own_redis.start()
    await store.update("cooldown:d", lambda old: (7.0, None))  # within the retry interval: still local
    assert not store.shared
    clock.advance(1.0)
    assert await store.get("cooldown:d") is None  # Redis again (it restarted empty)
    assert store.shared and len(sink.of_type(StateStoreRecovered)) == 1
    assert "orchestrator_state_store_recovered_total 1.0" in metrics.render().decode()
    await store.update("cooldown:d", lambda old: (9.0, None))
    assert await redis_store.get("cooldown:d") == 9.0


async def test_a_frozen_redis_costs_one_timeout_then_calls_stay_local(
    own_redis: RedisServer,
    redis_store: RedisStateStore,
) -> None:
    clock, bus, sink = FakeClock(), EventBus(), RecordingSink()
    bus.subscribe(sink)
    store = FailoverStateStore(redis_store, clock=clock, bus=bus, timeout=0.2)
    await store.get("warm-up")  # a connection is open before the server freezes
    own_redis.pause()
    try:
        assert await store.update("n", lambda old: ((old or 0) + 1, None)) is None
        for _ in range(20):  # all local: none of them waits on the frozen server
            await store.update("n", lambda old: ((old or 0) + 1, None))
        assert await store.get("n") == 21
        assert len(sink.of_type(StateStoreUnavailable)) == 1
    finally:
        own_redis.resume()


class _DeafRedis(Redis):
    """A client whose commands do not stop when cancelled: what redis-py did, in a race, to one of five
    concurrent commands on a frozen server (a gateway request then waited out the socket timeout)."""

    async def execute_command(self, *args: Any, **options: Any) -> Any:
        command = asyncio.ensure_future(super().execute_command(*args, **options))
        while True:
            try:
                return await asyncio.shield(command)
            except asyncio.CancelledError:
                continue


async def test_a_command_that_ignores_cancellation_still_ends_at_the_deadline(own_redis: RedisServer) -> None:
    bus, sink = EventBus(), RecordingSink()
    bus.subscribe(sink)
    client = _DeafRedis.from_url(own_redis.url, socket_connect_timeout=30)
    redis = RedisStateStore(client)
    store = FailoverStateStore(redis, clock=FakeClock(), bus=bus, timeout=0.2)
    await store.get("warm-up")
    own_redis.pause()
    try:
        # Left at the deadline (the store is down: local state), not at the 30 s socket timeout.
        assert await store.update("n", lambda old: ((old or 0) + 1, None)) is None
        [down] = sink.of_type(StateStoreUnavailable)
        assert isinstance(down, StateStoreUnavailable) and down.error == "no answer within 0.2s"
    finally:
        own_redis.resume()
        await redis.aclose()


async def test_a_take_whose_command_ignores_cancellation_still_ends_at_the_deadline(
    own_redis: RedisServer,
) -> None:
    """A take runs its command in the caller's task (no task of its own): a command that does not stop
    when cancelled is left running, and the caller leaves at the deadline all the same."""
    redis = RedisStateStore(_DeafRedis.from_url(own_redis.url, socket_connect_timeout=30))
    store = FailoverStateStore(redis, clock=FakeClock(), bus=EventBus(), timeout=0.2)
    await store.get("warm-up")
    own_redis.pause()
    try:
        grant = await store.take_window("rpm:d", kind="requests", now=1.0, limit=5, amount=1)
        assert grant.taken and not store.shared  # local state: Redis counted as down
    finally:
        own_redis.resume()
        await redis.aclose()


async def test_without_a_socket_timeout_every_command_is_bounded_by_the_store(own_redis: RedisServer) -> None:
    """``state_client`` has no socket timeout: the store's own bound ends a read, a queued update and a
    held write on a frozen server, and the key's updates go on when it is back (nothing stuck)."""
    redis = RedisStateStore(state_client(own_redis.url), command_timeout=0.2)
    await redis.update("n", lambda old: (1, None))
    own_redis.pause()
    try:
        with pytest.raises(StateUnavailableError, match="no answer within its bound"):
            await redis.get("health:d")
        task = asyncio.current_task()
        assert task is not None and task.cancelling() == 0  # the bound's cancellation was taken back
        with pytest.raises(StateUnavailableError, match="no answer within its bound"):
            await redis.update("n", lambda old: ((old or 0) + 1, None))
        await redis.record("n", lambda old: (old or 0) + 10)
        await redis.flush()  # the held write is dropped at the bound, not waited on
    finally:
        own_redis.resume()
    # The frozen server may still run what was sent before the client gave up: whatever n holds now,
    # the next update of the key is written.
    before = await redis.update("n", lambda old: ((old or 0) + 100, old))
    assert isinstance(before, int) and await redis.get("n") == before + 100
    await redis.aclose()


def test_a_client_with_a_socket_timeout_is_refused() -> None:
    with pytest.raises(ValueError, match="state_client"):
        RedisStateStore(redis_client("redis://127.0.0.1:1/0", timeout=1.0))


async def test_fail_policy_raises_a_clear_503_error(
    own_redis: RedisServer,
    redis_store: RedisStateStore,
) -> None:
    clock = FakeClock()
    store = FailoverStateStore(redis_store, clock=clock, bus=EventBus(), on_unavailable="fail")
    own_redis.stop()
    for _ in range(2):  # the first tries Redis, the second does not even try
        with pytest.raises(StateUnavailableError, match="on_unavailable is 'fail'") as failed:
            await store.get("breaker:d")
    assert failed.value.status_code == 503 and failed.value.reason == "state_unavailable"
    own_redis.start()
    clock.advance(1.0)
    assert await store.get("breaker:d") is None


class _SlowWrites(MemoryStateStore):
    """A store that answers reads at once and each update after ``delay`` seconds (a queue on a hot key)."""

    def __init__(self, delay: float) -> None:
        super().__init__()
        self.delay = delay

    async def update(self, key: str, change: Callable[[Any], tuple[Any, Any]]) -> Any:
        await asyncio.sleep(self.delay)
        return await super().update(key, change)


async def test_slow_updates_on_an_answering_store_fail_the_call_not_the_store() -> None:
    bus, sink = EventBus(), RecordingSink()
    bus.subscribe(sink)
    slow = _SlowWrites(delay=0.2)
    store = FailoverStateStore(slow, clock=FakeClock(), bus=bus, timeout=0.05)
    with pytest.raises(StateContentionError, match=r"waited more than 0\.05s twice"):
        await store.update("breaker:d", lambda old: (1, None))
    assert store.shared and sink.of_type(StateStoreUnavailable) == []
    slow.delay = 0.0
    assert await store.update("breaker:d", lambda old: (2, old)) in (None, 1)  # a timed-out write may land


class _QuickWrites(MemoryStateStore):
    """A store whose updates answer after 10 ms of waiting on I/O (a quick network round trip)."""

    async def update(self, key: str, change: Callable[[Any], tuple[Any, Any]]) -> Any:
        await asyncio.sleep(0.01)
        return await super().update(key, change)


async def test_an_event_loop_blocked_elsewhere_is_not_an_outage() -> None:
    bus, sink = EventBus(), RecordingSink()
    bus.subscribe(sink)
    quick = _QuickWrites()
    store = FailoverStateStore(quick, clock=FakeClock(), bus=bus, timeout=0.1)

    async def busy_elsewhere() -> None:  # synchronous steps (imports, say) of other requests
        for _ in range(4):
            time.sleep(0.2)
            await asyncio.sleep(0)

    await asyncio.gather(store.update("n", lambda old: (1, None)), busy_elsewhere())
    assert store.shared and sink.of_type(StateStoreUnavailable) == []
    assert await quick.get("n") == 1
