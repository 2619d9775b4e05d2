"""Budgets kept in Redis for ledgers that are not shared (a SQLite file per host): atomic across keepers,
a dead holder's reservation lapses, Redis outages follow ``state.on_unavailable``, a lost tally is rebuilt
from every ledger's own spend, and the keeper is chosen only for SQLite ledgers with shared state. All
against the private ``redis-server`` and real SQLite ledgers."""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import openai
import pytest
import redis.asyncio as aioredis
import sqlalchemy as sa

from model_orchestrator import Orchestrator
from model_orchestrator.config.ledger import budget_guards
from model_orchestrator.config.loader import parse_config
from model_orchestrator.core.budget import BudgetLimit
from model_orchestrator.core.errors import BudgetExceededError, StateUnavailableError
from model_orchestrator.ledger.budgets import period_key
from model_orchestrator.ledger.ledger import Ledger
from model_orchestrator.ledger.settings import LedgerSettings, sqlite_url
from model_orchestrator.ledger.shared_budget import SharedBudgetKeeper, recorded_spend
from model_orchestrator.ledger.store import LedgerStore
from model_orchestrator.ledger.tables import attempts
from model_orchestrator.resilience.redis_state import redis_client
from model_orchestrator.testing import FakeClock, FakeUpstream, Reply
from tests.gateway_helpers import MASTER
from tests.redis_server import RedisServer
from tests.test_scale_out import ANSWER, BUDGET_PROMPT, CALL_COST, _start, _url_of

DAY = BudgetLimit("global", "usd", "day", 1.0)
Keepers = Callable[..., SharedBudgetKeeper]


def _clock() -> FakeClock:
    """A fake clock at today's date: counters expire a day after their period, by Redis's own clock."""
    return FakeClock(wall_start=time.time())


@pytest.fixture
async def keepers(tmp_path: Path) -> AsyncIterator[Keepers]:
    """Makes keepers, each with its own SQLite ledger (as on its own host); closes them all."""
    made: list[tuple[SharedBudgetKeeper, Ledger]] = []

    def make(url: str, clock: FakeClock, *, seed: float = 0.0, **options: object) -> SharedBudgetKeeper:
        ledger = Ledger(LedgerSettings(sqlite_url(tmp_path / f"host{len(made)}.sqlite3")), clock=clock)

        async def seeded(limit: BudgetLimit, key: str) -> float:
            return seed

        settings: dict[str, object] = {"ttl": 60.0, "timeout": 1.0, **options}
        keeper = SharedBudgetKeeper(
            redis_client(url, timeout=1.0),
            fallback=ledger,
            seed=seeded,
            ledger_id=f"host{len(made)}",
            clock=clock,
            **settings,  # type: ignore[arg-type]
        )
        made.append((keeper, ledger))
        return keeper

    yield make
    for keeper, ledger in made:
        await keeper.aclose()
        await ledger.aclose()


async def _field(url: str, key: str, field: str) -> bytes | None:
    client = aioredis.Redis.from_url(url)
    try:
        return await client.hget(key, field)  # type: ignore[no-any-return,misc]
    finally:
        await client.aclose()


async def test_concurrent_reserves_from_two_keepers_never_exceed_the_limit(
    redis_url: str, keepers: Keepers
) -> None:
    clock = _clock()
    a, b = keepers(redis_url, clock), keepers(redis_url, clock)
    outcomes = await asyncio.gather(
        *(keeper.reserve([DAY], usd=0.07, calls=1) for _ in range(50) for keeper in (a, b)),
        return_exceptions=True,
    )
    held = [o for o in outcomes if not isinstance(o, BaseException)]
    refused = [o for o in outcomes if isinstance(o, BudgetExceededError)]
    assert (len(held), len(refused)) == (14, 86)  # 14 * 0.07 = 0.98 fits 1.0, a 15th does not
    assert "daily budget 'global' of $1.00 would be exceeded" in str(refused[0])
    for reservation in held:
        await (a if held.index(reservation) % 2 else b).settle(reservation, usd=0.05, calls=1)
    # The actual amounts moved into the shared tally; the holds are gone.
    key = DAY_KEY(clock)
    assert float(await _field(redis_url, key, "spent") or 0) == pytest.approx(0.7)
    assert float(await _field(redis_url, key, "held") or 0) == pytest.approx(0.0)
    # 0.7 spent: 0.3 more fits, from either keeper, but not 0.31.
    await b.release(await a.reserve([DAY], usd=0.3, calls=1))
    with pytest.raises(BudgetExceededError, match=r"spent \$0.70, in flight \$0.00"):
        await b.reserve([DAY], usd=0.31, calls=1)


def DAY_KEY(clock: FakeClock) -> str:
    """The Redis hash of the ``global`` day counter at ``clock``'s date, under the default prefix."""
    return f"orchestrator:state:budget:global:{period_key('day', clock.wall())}"


async def test_counters_expire_a_day_after_their_period(redis_url: str, keepers: Keepers) -> None:
    clock = _clock()
    await keepers(redis_url, clock).reserve([DAY], usd=0.1, calls=1)
    client = aioredis.Redis.from_url(redis_url)
    try:
        expires = await client.expiretime(DAY_KEY(clock))
        holds = await client.expiretime(DAY_KEY(clock) + ":holds")
    finally:
        await client.aclose()
    day_start = clock.wall() - clock.wall() % 86400
    assert expires == holds == day_start + 2 * 86400


async def test_a_dead_holders_reservation_lapses_after_the_ttl(redis_url: str, keepers: Keepers) -> None:
    clock = _clock()
    dead, alive = keepers(redis_url, clock), keepers(redis_url, clock)
    await dead.reserve([DAY], usd=0.9, calls=1)  # never settled: its process was killed
    with pytest.raises(BudgetExceededError, match=r"in flight \$0.90"):
        await alive.reserve([DAY], usd=0.5, calls=1)
    clock.advance(61)  # the TTL (60 s) has passed
    reservation = await alive.reserve([DAY], usd=0.5, calls=1)
    assert float(await _field(redis_url, DAY_KEY(clock), "held") or 0) == pytest.approx(0.5)
    await alive.release(reservation)


async def test_a_soft_limit_warns_once_and_never_refuses(redis_url: str, keepers: Keepers) -> None:
    soft = BudgetLimit("provider:p", "calls", "day", 2.0, hard=False, warn_at=0.5)
    keeper = keepers(redis_url, _clock())
    first = await keeper.reserve([soft], usd=0.0, calls=1)
    second = await keeper.reserve([soft], usd=0.0, calls=1)
    third = await keeper.reserve([soft], usd=0.0, calls=1)  # over the limit: allowed, warned once
    assert [len(r.warnings) for r in (first, second, third)] == [1, 0, 1]
    assert third.warnings[0].fraction == pytest.approx(1.5)


async def test_a_lost_tally_is_rebuilt_from_every_ledgers_own_spend(redis_url: str, keepers: Keepers) -> None:
    clock = _clock()
    a = keepers(redis_url, clock, seed=0.3)
    b = keepers(redis_url, clock, seed=0.4)
    # Each ledger adds what it recorded once, when it first touches the counter.
    await a.release(await a.reserve([DAY], usd=0.1, calls=1))
    await a.release(await a.reserve([DAY], usd=0.1, calls=1))
    assert float(await _field(redis_url, DAY_KEY(clock), "spent") or 0) == pytest.approx(0.3)
    made_before = await b.reserve([DAY], usd=0.2, calls=1)
    assert float(await _field(redis_url, DAY_KEY(clock), "spent") or 0) == pytest.approx(0.7)
    client = aioredis.Redis.from_url(redis_url)
    await client.flushdb()  # the tally is lost, as when Redis restarts without persistence
    await client.aclose()
    # A settlement of a reservation made before the loss is in b's ledger: not charged again here.
    await b.settle(made_before, usd=0.2, calls=1)
    assert await _field(redis_url, DAY_KEY(clock), "spent") is None
    await b.release(await b.reserve([DAY], usd=0.1, calls=1))
    await a.release(await a.reserve([DAY], usd=0.1, calls=1))
    assert float(await _field(redis_url, DAY_KEY(clock), "spent") or 0) == pytest.approx(0.7)


async def test_redis_down_with_local_policy_keeps_each_process_to_its_share(
    own_redis: RedisServer, keepers: Keepers, caplog: pytest.LogCaptureFixture
) -> None:
    clock = _clock()
    keeper = keepers(own_redis.url, clock, seed=0.1, replicas=2, retry_interval=5.0)
    await keeper.release(await keeper.reserve([DAY], usd=0.1, calls=1))
    own_redis.stop()
    with caplog.at_level(logging.WARNING, logger="model_orchestrator.ledger.shared_budget"):
        # Its share is 1.0 / 2 less the 0.1 its ledger recorded: 0.3 fits in its own ledger, 0.2 more not.
        local = await keeper.reserve([DAY], usd=0.3, calls=1)
        with pytest.raises(BudgetExceededError, match=r"daily budget 'global' of \$0.40"):
            await keeper.reserve([DAY], usd=0.2, calls=1)
        await keeper.settle(local, usd=0.3, calls=1)
    assert [r.levelname for r in caplog.records] == ["WARNING"]  # one warning for the outage
    own_redis.start()
    clock.advance(5)  # the retry interval: Redis is tried again, and the tally is shared again
    shared = await keeper.reserve([DAY], usd=0.2, calls=1)
    assert float(await _field(own_redis.url, DAY_KEY(clock), "held") or 0) == pytest.approx(0.2)
    await keeper.release(shared)


async def test_a_hold_that_lands_after_its_caller_gave_up_is_released(
    own_redis: RedisServer, keepers: Keepers
) -> None:
    clock = _clock()
    keeper = keepers(own_redis.url, clock, timeout=0.05)
    await keeper.release(await keeper.reserve([DAY], usd=0.1, calls=1))  # connected, counter seeded
    own_redis.pause()  # hung: the script waits in the socket
    local = await keeper.reserve([DAY], usd=0.4, calls=1)  # gave up on Redis after 0.05 s: held locally
    own_redis.resume()  # the script runs now and holds 0.4, which nobody will settle
    for _ in range(200):
        if float(await _field(own_redis.url, DAY_KEY(clock), "held") or 0) == 0.0:
            break
        await asyncio.sleep(0.01)
    client = aioredis.Redis.from_url(own_redis.url)
    try:
        assert await client.zcard(DAY_KEY(clock) + ":holds") == 0
        assert float(await client.hget(DAY_KEY(clock), "held") or 0) == 0.0
    finally:
        await client.aclose()
    await keeper.release(local)


async def test_redis_down_with_fail_policy_refuses_with_a_503(
    own_redis: RedisServer, keepers: Keepers
) -> None:
    clock = _clock()
    keeper = keepers(own_redis.url, clock, on_unavailable="fail", retry_interval=5.0)
    own_redis.stop()
    for _ in range(2):  # the first call finds it down, the second does not try it again
        with pytest.raises(StateUnavailableError, match="Redis") as refused:
            await keeper.reserve([DAY], usd=0.1, calls=1)
        assert refused.value.status_code == 503
    own_redis.start()
    clock.advance(5)
    await keeper.release(await keeper.reserve([DAY], usd=0.1, calls=1))


async def test_recorded_spend_reads_what_the_ledger_wrote(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path / "ledger.sqlite3")
    async with FakeUpstream(default_reply=Reply("ok", usage=(14, 10))) as up:
        config = parse_config(
            f"models: [{{name: m, provider: openai, model: m-1, api_base: '{up.openai_base}', "
            f"api_key_env: K, price: {{input: 1000, output: 2000}}}}]\nledger: {{url: '{url}'}}\n"
        )
        async with Orchestrator(config, env={"K": "k"}) as orch:
            for category in ("a", "a", "b"):
                await orch.complete("hi", model="m", category=category)
            ledger = orch.ledger
            assert ledger is not None
            await ledger.flush()
            store, now = await ledger.store(), time.time()
            for limit, expected in [
                (BudgetLimit("global", "usd", "day", 1.0), 3 * 0.034),
                (BudgetLimit("category:a", "usd", "month", 1.0), 2 * 0.034),
                (BudgetLimit("provider:openai", "calls", "day", 9.0), 3.0),
                (BudgetLimit("key:nobody", "usd", "day", 1.0), 0.0),
            ]:
                key = period_key(limit.period, now)
                assert await recorded_spend(store, limit, key) == pytest.approx(expected)


def test_the_shared_keeper_is_chosen_for_a_sqlite_ledger_with_shared_state(tmp_path: Path) -> None:
    config = parse_config("budgets: {daily_usd: 1}\nstate: {url: 'redis://127.0.0.1:1/0'}")
    sqlite = Ledger(LedgerSettings(sqlite_url(tmp_path / "l.sqlite3")))
    postgres = Ledger(LedgerSettings("postgresql://u@127.0.0.1:1/db"))
    assert isinstance(
        budget_guards(config, "redis://127.0.0.1:1/0", sqlite, _clock()).keeper, SharedBudgetKeeper
    )
    assert budget_guards(config, "redis://127.0.0.1:1/0", postgres, _clock()).keeper is postgres
    assert budget_guards(config, None, sqlite, _clock()).keeper is sqlite


@pytest.mark.slow
@pytest.mark.subprocess
async def test_a_daily_budget_holds_across_three_gateways_each_with_its_own_sqlite_ledger(
    tmp_path: Path, redis_server: RedisServer, redis_url: str
) -> None:
    budget = 50 * CALL_COST + CALL_COST / 2
    async with FakeUpstream(default_reply=ANSWER) as up:
        ledgers = [sqlite_url(tmp_path / f"host{i}.sqlite3") for i in range(3)]
        processes = []
        for i, ledger_url in enumerate(ledgers):
            config = tmp_path / f"host{i}.yaml"
            config.write_text(
                f"""
default_model: b
models:
  - {{name: b, model: m-b, provider: openai, api_base: '{up.openai_base}', api_key_env: UP_KEY,
     price: {{input: 1000, output: 2000}}}}
resilience: {{retry: {{max_attempts: 1}}, health: {{interval: 3600}}}}
state: {{url: '{redis_url}', timeout: 1.0}}
ledger: {{url: '{ledger_url}'}}
budgets: {{daily_usd: {budget}}}
"""
            )
            processes.append(_start(config))
        try:
            urls = [await asyncio.to_thread(_url_of, p) for p in processes]
            clients = [
                openai.AsyncOpenAI(base_url=f"{url}/v1", api_key=MASTER, max_retries=0) for url in urls
            ]
            calls = [
                clients[i % 3].chat.completions.create(model="b", messages=BUDGET_PROMPT, max_tokens=10)
                for i in range(200)
            ]
            outcomes = await asyncio.gather(*calls, return_exceptions=True)
            for client in clients:
                await client.close()
        finally:
            for process in processes:
                process.send_signal(signal.SIGTERM)
            for process in processes:
                await asyncio.to_thread(process.wait, 30)  # flushes its ledger on the way out
        sent = sum(1 for r in up.requests if r.path.endswith("/chat/completions"))
    answered = [o for o in outcomes if not isinstance(o, BaseException)]
    refused = [o for o in outcomes if isinstance(o, openai.RateLimitError)]
    assert len(answered) + len(refused) == 200, [o for o in outcomes if isinstance(o, BaseException)][:3]
    spent = [await _ledger_total(url) for url in ledgers]
    assert all(s > 0 for s in spent)  # every process served some: the budget was shared, not split
    assert sum(spent) <= budget + CALL_COST
    assert sum(spent) == pytest.approx(len(answered) * CALL_COST) and sent == len(answered)
    assert "daily budget 'global'" in str(refused[0])


async def _ledger_total(url: str) -> float:
    """The cost of every attempt one ledger recorded."""
    store = LedgerStore.connect(url)
    try:
        async with store.engine.connect() as conn:
            return float((await conn.execute(sa.select(sa.func.sum(attempts.c.cost)))).scalar() or 0.0)
    finally:
        await store.aclose()
