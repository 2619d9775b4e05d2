"""Shared state on a real, private redis-server: one contract for every store, and two clients standing in
for two processes (a breaker, a cooldown and an rpm window shared between them)."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack

import pytest

from model_orchestrator.core.errors import CircuitOpenError, CoolingDownError, RateLimitedError, ServerError
from model_orchestrator.core.events import EventBus
from model_orchestrator.core.rate_limits import RateLimitSnapshot
from model_orchestrator.core.request import ChatRequest
from model_orchestrator.resilience.circuit_breaker import BreakerPolicy, BreakerState, CircuitBreakerModel
from model_orchestrator.resilience.cooldown import CooldownModel, CooldownPolicy
from model_orchestrator.resilience.health import ProbeResult
from model_orchestrator.resilience.rate_limiter import RateLimitedModel, RateLimitPolicy
from model_orchestrator.resilience.redis_state import RedisStateStore, state_client
from model_orchestrator.resilience.request_log import RequestLog, learn_from_snapshot
from model_orchestrator.resilience.shared_state import FailoverStateStore
from model_orchestrator.resilience.sliding_window import Slot, WindowLog
from model_orchestrator.resilience.state_codec import default_codec
from model_orchestrator.resilience.state_store import MemoryStateStore, StateStore, WindowTake
from model_orchestrator.testing import FakeClock, ScriptedModel

REQUEST = ChatRequest.from_prompt("hello", request_id="req-1")
STORES = ("memory", "redis", "failover")


@pytest.fixture
async def open_store(redis_url: str) -> AsyncIterator[Callable[[str], StateStore]]:
    """Opens stores of a kind; every Redis store is a client of its own (a process of its own)."""
    async with AsyncExitStack() as stack:

        def make(kind: str) -> StateStore:
            if kind == "memory":
                return MemoryStateStore()
            redis = RedisStateStore(state_client(redis_url))
            stack.push_async_callback(redis.aclose)
            if kind == "redis":
                return redis
            return FailoverStateStore(redis, clock=FakeClock(), bus=EventBus())

        yield make


# ---- the contract every store keeps ------------------------------------------------------------------


@pytest.mark.parametrize("kind", STORES)
async def test_get_update_and_items(kind: str, open_store: Callable[[str], StateStore]) -> None:
    store = open_store(kind)
    assert await store.get("cooldown:a") is None
    assert await store.update("cooldown:a", lambda old: (12.5, old)) is None
    assert await store.update("cooldown:a", lambda old: (max(old or 0, 3.0), old)) == 12.5
    await store.update("cooldown:b", lambda old: (1.0, None))
    await store.update("breaker:a", lambda old: (BreakerState(), None))
    assert await store.get("cooldown:a") == 12.5
    assert await store.items("cooldown:") == {"cooldown:a": 12.5, "cooldown:b": 1.0}


@pytest.mark.parametrize("kind", STORES)
async def test_record_is_an_update_without_an_answer(
    kind: str, open_store: Callable[[str], StateStore]
) -> None:
    store = open_store(kind)
    await store.update("n", lambda old: (2, None))
    await store.record("n", lambda old: (old or 0) * 10)
    await store.record("n", lambda old: (old or 0) + 1)
    assert await store.get("n") == 21  # applied in order, and read back by the process that recorded them
    assert await store.update("n", lambda old: (old, old)) == 21


@pytest.mark.parametrize("kind", STORES)
async def test_state_values_round_trip(kind: str, open_store: Callable[[str], StateStore]) -> None:
    store = open_store(kind)
    values: dict[str, object] = {
        "breaker:x": BreakerState("open", 5, ((10.0, 1, 4), (15.0, 0, 1)), 1_700_000_000.25, 0, 0, None),
        "health:x": ProbeResult(False, 0.5, 1_700_000_000.0, 2, "refused"),
        "rpm:x": RequestLog(WindowLog((Slot(3, 3.5, 2),), 2), 3.5, 9.0, 0.25, 20.0),
        "tpm:x": WindowLog(),
        "cooldown:x": 1_700_000_123.456789,
    }
    for key, value in values.items():
        await store.update(key, lambda old, value=value: (value, None))
    for key, value in values.items():
        assert await store.get(key) == value


@pytest.mark.parametrize("kind", STORES)
async def test_take_window_counts_refuses_and_gives_back(
    kind: str, open_store: Callable[[str], StateStore]
) -> None:
    store, now = open_store(kind), 1_700_000_000.5
    grants = [await store.take_window("tpm:x", kind="units", now=now, limit=30, amount=10) for _ in range(4)]
    assert [g.taken for g in grants] == [True, True, True, False]
    assert grants[0].slot == 1_700_000_000 and grants[3].ready_at == pytest.approx(now + 60, abs=1e-3)
    await store.adjust_window("tpm:x", slot=1_700_000_000, delta=-15)
    assert (await store.take_window("tpm:x", kind="units", now=now + 1, limit=30, amount=15)).taken
    never = await store.take_window("tpm:x", kind="units", now=now + 1, limit=30, amount=31)
    assert not never.taken and never.ready_at is None
    later = await store.take_window("tpm:x", kind="units", now=now + 61, limit=30, amount=30)
    assert later.taken


@pytest.mark.parametrize("kind", STORES)
async def test_take_windows_counts_every_window_or_none(
    kind: str, open_store: Callable[[str], StateStore]
) -> None:
    store, now = open_store(kind), 1_700_000_000.5

    def both(tokens: int) -> list[WindowTake]:
        return [WindowTake("rpm:y", "requests", 3, 1), WindowTake("tpm:y", "units", 100, tokens)]

    rpm, tpm = await store.take_windows(both(60), now=now)
    assert (
        rpm.taken and tpm.taken and rpm.slot == tpm.slot == 1_700_000_000 and rpm.previous_last_sent is None
    )
    rpm, tpm = await store.take_windows(both(60), now=now + 1)  # the tokens do not fit: nothing counted
    assert not rpm.taken and rpm.ready_at == now + 1
    assert not tpm.taken and tpm.ready_at == pytest.approx(now + 60, abs=1e-3)
    rpm, tpm = await store.take_windows(both(101), now=now + 1)
    assert tpm.ready_at is None  # never fits
    rpm, tpm = await store.take_windows(both(40), now=now + 1)  # the refused calls took no request slot
    assert rpm.taken and tpm.taken and rpm.previous_last_sent == pytest.approx(now, abs=1e-3)
    assert (await store.take_window("rpm:y", kind="requests", now=now + 2, limit=3, amount=1)).taken
    refused = await store.take_windows(both(0), now=now + 2)  # now the requests are full
    assert [g.taken for g in refused] == [False, False] and refused[0].ready_at == pytest.approx(
        now + 60, abs=1e-3
    )


@pytest.mark.parametrize("kind", STORES)
async def test_take_window_of_requests_honours_pacing(
    kind: str, open_store: Callable[[str], StateStore]
) -> None:
    store, now = open_store(kind), 1_700_000_000.0
    await store.update("rpm:x", lambda old: (RequestLog(not_before=now + 5), None))
    refused = await store.take_window("rpm:x", kind="requests", now=now, limit=None, amount=1)
    assert not refused.taken and refused.ready_at == pytest.approx(now + 5)
    first = await store.take_window("rpm:x", kind="requests", now=now + 5, limit=2, amount=1)
    second = await store.take_window("rpm:x", kind="requests", now=now + 6, limit=2, amount=1)
    third = await store.take_window("rpm:x", kind="requests", now=now + 7, limit=2, amount=1)
    assert first.taken and first.previous_last_sent is None
    assert second.taken and second.previous_last_sent == pytest.approx(now + 5, abs=1e-3)
    assert not third.taken and third.ready_at == pytest.approx(now + 65, abs=1e-3)


async def test_the_lua_windows_match_the_python_algorithm(open_store: Callable[[str], StateStore]) -> None:
    memory, redis = open_store("memory"), open_store("redis")
    rng, now = random.Random(15), 1_700_000_000.0
    for _ in range(300):
        now += rng.choice((0.0, 0.3, 1.7, 20.0))
        amount, key = rng.randint(1, 6), rng.choice(("a", "b"))
        if rng.random() < 0.2:
            slot = int(now) - rng.randint(0, 3)
            await memory.adjust_window(key, slot=slot, delta=-amount)
            await redis.adjust_window(key, slot=slot, delta=-amount)
            continue
        expected = await memory.take_window(key, kind="units", now=now, limit=20, amount=amount)
        got = await redis.take_window(key, kind="units", now=now, limit=20, amount=amount)
        assert (got.taken, got.slot) == (expected.taken, expected.slot)
        assert got.ready_at == pytest.approx(expected.ready_at, abs=1e-3)
    for key in ("a", "b"):
        mine, theirs = await memory.get(key), await redis.get(key)
        assert isinstance(mine, WindowLog) and isinstance(theirs, WindowLog)
        assert mine.total == theirs.total and [s.index for s in mine.slots] == [s.index for s in theirs.slots]


async def test_the_lua_request_log_matches_the_python_algorithm(
    open_store: Callable[[str], StateStore],
) -> None:
    memory, redis = open_store("memory"), open_store("redis")
    rng, now = random.Random(16), 1_700_000_000.0
    for _ in range(300):
        # Steps off the 0.1 ms grid: Lua rounds send times up to it, so only exact ties could differ.
        now += rng.choice((0.0, rng.uniform(0.1, 3.0), rng.uniform(20.0, 40.0)))
        if rng.random() < 0.15:  # the provider asked for a pause, or reported few requests left
            snapshot = rng.choice(
                (
                    RateLimitSnapshot(retry_after=rng.uniform(0.5, 20)),
                    RateLimitSnapshot(remaining_requests=2, limit_requests=100, reset_requests_after=10),
                    RateLimitSnapshot(remaining_requests=50, limit_requests=100, reset_requests_after=10),
                )
            )
            for store in (memory, redis):
                await store.update(
                    "rpm",
                    lambda old, s=snapshot, t=now: (learn_from_snapshot(old or RequestLog(), s, t), None),
                )
            continue
        limit = rng.choice((None, 4, 7))
        expected = await memory.take_window("rpm", kind="requests", now=now, limit=limit, amount=1)
        got = await redis.take_window("rpm", kind="requests", now=now, limit=limit, amount=1)
        assert (got.taken, got.slot) == (expected.taken, expected.slot)
        assert got.ready_at == pytest.approx(expected.ready_at, abs=1e-3)
        assert got.previous_last_sent == pytest.approx(expected.previous_last_sent, abs=1e-3)


# ---- two processes (two clients) share it -----------------------------------------------------------


async def test_generic_updates_from_two_clients_never_lose_a_write(
    open_store: Callable[[str], StateStore],
) -> None:
    first, second = open_store("redis"), open_store("redis")

    async def add(store: StateStore) -> None:
        await store.update("counter", lambda old: ((old or 0) + 1, None))

    await asyncio.gather(*(add(store) for _ in range(40) for store in (first, second)))
    assert await open_store("redis").get("counter") == 80  # a third process (each caches what it wrote)


async def test_an_rpm_window_is_never_exceeded_across_clients(
    open_store: Callable[[str], StateStore],
) -> None:
    clock = FakeClock()
    stores = [open_store("redis") for _ in range(3)]
    answers = [ScriptedModel([], default="ok") for _ in stores]
    models = [
        RateLimitedModel(
            model, deployment="d", policy=RateLimitPolicy(rpm=10, on_limit="skip"), store=s, clock=clock
        )
        for model, s in zip(answers, stores, strict=True)
    ]
    for _ in range(2):  # two minutes: full, then free again
        outcomes = await asyncio.gather(
            *(m.complete(REQUEST) for m in models for _ in range(20)), return_exceptions=True
        )
        assert sum(not isinstance(o, BaseException) for o in outcomes) == 10
        clock.advance(60)
    assert sum(len(model.requests) for model in answers) == 20


async def test_a_breaker_opened_by_one_client_stops_the_other(
    open_store: Callable[[str], StateStore],
) -> None:
    clock, policy = FakeClock(), BreakerPolicy(failure_threshold=2, reset_timeout=30)
    failing = ScriptedModel([ServerError("boom", status_code=500)] * 2)
    healthy = ScriptedModel([], default="ok")
    one = CircuitBreakerModel(
        failing, deployment="d", policy=policy, store=open_store("redis"), clock=clock, bus=EventBus()
    )
    other = CircuitBreakerModel(
        healthy, deployment="d", policy=policy, store=open_store("redis"), clock=clock, bus=EventBus()
    )
    for _ in range(2):
        with pytest.raises(ServerError):
            await one.complete(REQUEST)
    with pytest.raises(CircuitOpenError):
        await other.complete(REQUEST)
    assert healthy.requests == []
    clock.advance(30)
    assert (await other.complete(REQUEST)).text == "ok"  # the other process's probe closes it for both


async def test_a_breaker_opened_elsewhere_stops_a_busy_client_within_its_trust_window(
    open_store: Callable[[str], StateStore],
) -> None:
    clock, policy = FakeClock(), BreakerPolicy(failure_threshold=1, reset_timeout=30)
    failing = ScriptedModel([ServerError("boom", status_code=500)])
    healthy = ScriptedModel([], default="ok")
    one = CircuitBreakerModel(
        failing, deployment="d", policy=policy, store=open_store("redis"), clock=clock, bus=EventBus()
    )
    other = CircuitBreakerModel(
        healthy, deployment="d", policy=policy, store=open_store("redis"), clock=clock, bus=EventBus()
    )
    await other.complete(REQUEST)  # the other process has seen the breaker closed
    with pytest.raises(ServerError):
        await one.complete(REQUEST)  # and this one opens it
    polls = 0
    while True:  # every 50 ms the other process tries again: it trusts what it saw for 0.25 s at most
        polls += 1
        try:
            await other.complete(REQUEST)
        except CircuitOpenError:
            break
        assert polls <= 7, "the other process still called a deployment whose breaker opened elsewhere"
        await asyncio.sleep(0.05)


async def test_a_cooldown_learnt_by_one_client_holds_for_the_other(
    open_store: Callable[[str], StateStore],
) -> None:
    clock = FakeClock()
    limited = ScriptedModel([RateLimitedError("slow down", retry_after=20)])
    healthy = ScriptedModel([], default="ok")
    one, other = (
        CooldownModel(
            m, deployment="d", policy=CooldownPolicy(), store=open_store("redis"), clock=clock, bus=EventBus()
        )
        for m in (limited, healthy)
    )
    with pytest.raises(RateLimitedError):
        await one.complete(REQUEST)
    with pytest.raises(CoolingDownError) as refused:
        await other.complete(REQUEST)
    assert refused.value.retry_after == pytest.approx(20, abs=1e-3) and healthy.requests == []
    clock.advance(20)
    assert (await other.complete(REQUEST)).text == "ok"


def test_the_codec_refuses_unregistered_types() -> None:
    codec = default_codec()
    with pytest.raises(TypeError, match="register"):
        codec.encode(REQUEST)
    with pytest.raises(ValueError, match="same version"):
        codec.decode('{"__t": "Unknown"}')


# ---- what keeps the round trips few: the cache, group commit, held writes ---------------------------


async def _writes(store: RedisStateStore) -> int:
    """Scripts this store's server has run (compare-and-set, windows): INFO commandstats."""
    stats = await store._client.info("commandstats")
    return sum(int(v["calls"]) for k, v in stats.items() if k in ("cmdstat_evalsha", "cmdstat_eval"))


@pytest.fixture
async def redis_pair(redis_url: str) -> AsyncIterator[tuple[RedisStateStore, RedisStateStore]]:
    """Two clients (two processes) with a short cache, so a test can wait it out."""
    stores = [RedisStateStore(state_client(redis_url), cache_ttl=0.05) for _ in range(2)]
    yield stores[0], stores[1]
    for store in stores:
        await store.aclose()


async def test_scripts_lost_by_redis_are_loaded_again(redis_url: str) -> None:
    """The store runs its scripts by SHA; a Redis that lost them (restarted, SCRIPT FLUSH) gets them again."""
    store = RedisStateStore(state_client(redis_url), cache_ttl=0)
    admin = state_client(redis_url)
    try:
        assert (await store.take_window("rpm:s", kind="requests", now=1.0, limit=5, amount=1)).taken
        await store.update("n", lambda old: (1, None))
        await admin.script_flush()
        assert (await store.take_window("rpm:s", kind="requests", now=2.0, limit=5, amount=1)).taken
        assert await store.update("n", lambda old: (old + 1, old)) == 1
        assert await store.get("n") == 2
    finally:
        await admin.aclose()
        await store.aclose()


async def test_concurrent_updates_of_one_key_go_out_as_one_write(
    redis_pair: tuple[RedisStateStore, RedisStateStore],
) -> None:
    store, other = redis_pair
    before = await _writes(store)
    results = await asyncio.gather(
        *(store.update("n", lambda old: ((old or 0) + 1, old or 0)) for _ in range(32))
    )
    assert sorted(results) == list(range(32))  # each change saw its predecessor's value, in order
    assert await other.get("n") == 32
    assert await _writes(store) - before == 1


async def test_a_read_is_cached_within_the_bound_and_a_change_elsewhere_shows_after_it(
    redis_pair: tuple[RedisStateStore, RedisStateStore],
) -> None:
    one, other = redis_pair
    assert await one.get("cooldown:d") is None
    await other.update("cooldown:d", lambda old: (99.0, None))
    assert await one.get("cooldown:d") is None  # answered from the cache: no round trip
    await asyncio.sleep(0.06)  # the cache's bound (0.05 s here, 0.25 s by default)
    assert await one.get("cooldown:d") == 99.0
    await one.update("cooldown:d", lambda old: (100.0, None))
    assert await one.get("cooldown:d") == 100.0  # its own writes at once


async def test_recorded_changes_are_held_then_written_together_in_order(
    redis_pair: tuple[RedisStateStore, RedisStateStore],
) -> None:
    one, other = redis_pair
    await one.update("n", lambda old: (1, None))
    before = await _writes(one)
    for _ in range(10):
        await one.record("n", lambda old: old * 2)
    assert await one.get("n") == 1024  # this process reads its own held changes
    assert await other.get("n") == 1  # not written yet
    assert await one.update("n", lambda old: (old + 1, old)) == 1024  # an update writes them first, in order
    assert await _writes(one) - before == 1
    await one.record("n", lambda old: old + 1)
    await asyncio.sleep(0.1)  # held at most write_delay (20 ms); the other's cache lasts 0.05 s
    assert await other.get("n") == 1026


async def test_a_record_made_while_an_update_is_written_still_waits_for_its_flush(
    redis_pair: tuple[RedisStateStore, RedisStateStore],
) -> None:
    one, other = redis_pair
    await one.update("n", lambda old: (1, None))
    before = await _writes(one)
    writing = asyncio.ensure_future(one.update("n", lambda old: (old + 1, None)))
    for _ in range(2):  # the update queues, then its write goes out (and waits for Redis's answer)
        await asyncio.sleep(0)
    await one.record("n", lambda old: old * 10)
    await writing
    await asyncio.sleep(0.005)  # well inside write_delay
    assert await _writes(one) - before == 1 and await other.get("n") == 2
    assert await one.get("n") == 20  # held, and read back here
    await one.flush()
    await asyncio.sleep(0.06)  # the other's cache
    assert await other.get("n") == 20


async def test_a_token_correction_is_held_then_applied_before_the_next_take(
    redis_pair: tuple[RedisStateStore, RedisStateStore],
) -> None:
    one, other = redis_pair
    now = 1_700_000_000.5
    grant = await one.take_window("tpm:x", kind="units", now=now, limit=100, amount=100)
    assert grant.slot is not None
    await one.adjust_window("tpm:x", slot=grant.slot, delta=-60)
    assert not (await other.take_window("tpm:x", kind="units", now=now, limit=100, amount=1)).taken
    assert (await one.take_window("tpm:x", kind="units", now=now, limit=100, amount=60)).taken
    await one.adjust_window("tpm:x", slot=grant.slot, delta=-10)
    await one.flush()
    assert (await other.take_window("tpm:x", kind="units", now=now, limit=100, amount=10)).taken
    assert not (await other.take_window("tpm:x", kind="units", now=now, limit=100, amount=1)).taken
