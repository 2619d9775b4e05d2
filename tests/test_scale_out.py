"""Three gateway processes sharing one private ``redis-server`` and one PostgreSQL ledger, against a
FakeUpstream: limits and what one process learns hold across all of them.

Each property is counted at the upstream (the model id in each request tells the deployment) or from
status codes, never timed: an rpm of 10 lets 10 calls through across the three; a 429 or an opened
breaker seen by one process keeps the others off that deployment; a revoked key is refused everywhere
within the key cache's second; a daily budget holds across ``--workers 3``; and with Redis killed no
request fails, then state is shared again once it is back.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import openai
import pytest
import sqlalchemy as sa
from openai.types.chat import ChatCompletionMessageParam

from model_orchestrator.ledger.store import LedgerStore
from model_orchestrator.ledger.tables import attempts
from model_orchestrator.testing import FakeUpstream, Fault, Reply
from tests.cli_helpers import command
from tests.gateway_helpers import MASTER, USER
from tests.ledger_db import fresh_postgres_database
from tests.redis_server import RedisServer

pytestmark = [pytest.mark.slow, pytest.mark.subprocess]

# A call's cost: (14 * 1000 + 10 * 2000) / 1e6 USD at the prices below, with the fake's usage (14, 10).
CALL_COST = 0.034
ANSWER = Reply("ok", usage=(14, 10))
# Long enough that the reservation's estimate (about 4 characters a token) covers the 14 tokens reported.
BUDGET_PROMPT: list[ChatCompletionMessageParam] = [
    {"role": "user", "content": "Summarise the ledger of this test in one short phrase, please."}
]


@pytest.fixture
def redis() -> Iterator[RedisServer]:
    """A Redis server of this test's own (the outage test stops and restarts it)."""
    server = RedisServer()
    server.start()
    yield server
    server.close()


def config_text(up: FakeUpstream, redis: RedisServer, ledger_url: str, extra: str = "") -> str:
    model = "provider: openai, api_base: '{base}', api_key_env: UP_KEY, price: {{input: 1000, output: 2000}}"
    row = model.format(base=up.openai_base)
    return f"""
default_model: b
models:
  - {{name: limited, model: m-limited, rpm: 10, {row}}}
  - {{name: throttled, model: m-throttled, {row}}}
  - {{name: fragile, model: m-fragile, breaker: {{failure_threshold: 1, reset_timeout: 60}}, {row}}}
  - {{name: b, model: m-b, {row}}}
strategies:
  - {{name: via-limited, type: fallback, chain: [limited, b]}}
  - {{name: via-throttled, type: fallback, chain: [throttled, b]}}
  - {{name: via-fragile, type: fallback, chain: [fragile, b]}}
resilience:
  retry: {{max_attempts: 1}}
  breaker: {{failure_threshold: 1000}}
  cooldown: {{default_seconds: 60}}
  health: {{interval: 3600}}
state: {{url: '{redis.url}', retry_interval: 0.2}}
ledger: {{url: '{ledger_url}'}}
{extra}
"""


@dataclass
class Cluster:
    """Gateway processes over one config; ``urls[i]`` reaches process ``i``."""

    up: FakeUpstream
    urls: list[str]
    ledger_url: str

    def sent_to(self, model_id: str) -> int:
        """Chat requests the upstream got for ``model_id``."""
        return sum(
            1 for r in self.up.requests if r.path.endswith("/chat/completions") and _model(r.json) == model_id
        )

    async def ask(self, index: int, model: str, *, key: str = MASTER) -> int:
        """One chat request to process ``index``; its HTTP status. The client's timeout only keeps a hung
        gateway from hanging the test: how long a Redis call may keep a request is proven by counting,
        in tests/test_state_failover.py, not timed here (a loaded machine stretches every request)."""
        async with httpx.AsyncClient(base_url=self.urls[index], timeout=30.0) as client:
            response = await client.post(
                "/v1/chat/completions",
                json={"model": model, "messages": USER, "max_tokens": 10},
                headers={"authorization": f"Bearer {key}"},
            )
        return response.status_code


def _model(body: object) -> object:
    return body.get("model") if isinstance(body, dict) else None


def _start(config: Path, *args: str) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if "API_KEY" not in k}
    env.update({"ORCHESTRATOR_MASTER_KEY": MASTER, "UP_KEY": "upstream-secret"})
    return subprocess.Popen(
        [*command(), "--config", str(config), "serve", "--port", "0", *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def _url_of(process: subprocess.Popen[str]) -> str:
    assert process.stderr is not None
    line = process.stderr.readline()
    assert "orchestrator gateway:" in line, line + process.stderr.read()
    return line.split("gateway: ", 1)[1].split("/v1", 1)[0]


@contextlib.asynccontextmanager
async def cluster(
    tmp_path: Path, redis: RedisServer, *, extra: str = "", processes: int = 3, args: tuple[str, ...] = ()
) -> AsyncIterator[Cluster]:
    """``processes`` separate ``orchestrator serve`` processes (each ``args``) on one Redis and ledger."""
    async with FakeUpstream(default_reply=ANSWER) as up:
        config = tmp_path / "orchestrator.yaml"
        ledger_url = fresh_postgres_database()
        config.write_text(config_text(up, redis, ledger_url, extra))
        started = [_start(config, *args) for _ in range(processes)]
        try:
            urls = [await asyncio.to_thread(_url_of, p) for p in started]
            yield Cluster(up, urls, ledger_url)
        finally:
            for process in started:
                process.send_signal(signal.SIGTERM)
            for process in started:
                try:
                    await asyncio.to_thread(process.wait, 30)
                except subprocess.TimeoutExpired:
                    process.kill()


async def test_limits_cooldowns_breakers_and_revocations_hold_across_processes(
    tmp_path: Path, redis: RedisServer
) -> None:
    async with cluster(tmp_path, redis) as c:
        # rpm 10 across three processes: 30 requests, 10 each, all answered; 10 reached the deployment.
        statuses = await asyncio.gather(*(c.ask(i % 3, "via-limited") for i in range(30)))
        assert statuses == [200] * 30
        assert c.sent_to("m-limited") == 10

        # A 429 with retry-after seen by process 0: processes 1 and 2 stay off that deployment.
        c.up.script(Fault.rate_limited(retry_after=30))
        assert await c.ask(0, "via-throttled") == 200  # answered by b
        assert await asyncio.gather(*(c.ask(i, "via-throttled") for i in (1, 2, 1, 2))) == [200] * 4
        assert c.sent_to("m-throttled") == 1

        # A breaker opened by process 0 (threshold 1): processes 1 and 2 skip the deployment.
        c.up.script(Fault.server_error(500))
        assert await c.ask(0, "via-fragile") == 200
        assert await asyncio.gather(*(c.ask(i, "via-fragile") for i in (1, 2, 1, 2))) == [200] * 4
        assert c.sent_to("m-fragile") == 1

        # A virtual key revoked through process 0: refused there at once, by every process within 1 s.
        async with httpx.AsyncClient(
            base_url=c.urls[0], headers={"authorization": f"Bearer {MASTER}"}
        ) as admin:
            made = (await admin.post("/admin/keys", json={"name": "k", "models": ["b"]})).json()
            assert [await c.ask(i, "b", key=made["key"]) for i in range(3)] == [200] * 3  # cached everywhere
            assert (await admin.delete(f"/admin/keys/{made['id']}")).status_code == 200
        assert await c.ask(0, "b", key=made["key"]) == 401
        await asyncio.sleep(1.0)  # the documented bound: a checked key is trusted for 1 s
        assert [await c.ask(i, "b", key=made["key"]) for i in range(3)] == [401] * 3


async def test_a_daily_budget_holds_across_workers_on_one_ledger(tmp_path: Path, redis: RedisServer) -> None:
    budget = 50 * CALL_COST + CALL_COST / 2
    extra = f"budgets: {{daily_usd: {budget}}}"
    async with cluster(tmp_path, redis, extra=extra, processes=1, args=("--workers", "3")) as c:
        client = openai.AsyncOpenAI(base_url=f"{c.urls[0]}/v1", api_key=MASTER, max_retries=0, timeout=30)
        async with client:
            calls = [
                client.chat.completions.create(model="b", messages=BUDGET_PROMPT, max_tokens=10)
                for _ in range(200)
            ]
            outcomes = await asyncio.gather(*calls, return_exceptions=True)
    spent = await _spent(c.ledger_url)  # the workers have stopped, so flushed their ledgers
    answered = [o for o in outcomes if not isinstance(o, BaseException)]
    refused = [o for o in outcomes if isinstance(o, openai.RateLimitError)]
    assert len(answered) + len(refused) == 200, [o for o in outcomes if isinstance(o, BaseException)][:3]
    assert 0 < len(answered) <= 50 and c.sent_to("m-b") == len(answered)
    assert spent <= budget + CALL_COST
    assert spent == pytest.approx(len(answered) * CALL_COST)


async def _spent(ledger_url: str) -> float:
    """The cost of every attempt in the ledger."""
    store = LedgerStore.connect(ledger_url)
    try:
        async with store.engine.connect() as conn:
            return float((await conn.execute(sa.select(sa.func.sum(attempts.c.cost)))).scalar() or 0.0)
    finally:
        await store.aclose()


async def test_redis_killed_mid_run_then_back(tmp_path: Path, redis: RedisServer) -> None:
    async with cluster(tmp_path, redis) as c:
        assert await asyncio.gather(*(c.ask(i % 3, "via-limited") for i in range(6))) == [200] * 6
        redis.pause()
        # Frozen (accepts connections, answers nothing): each store call gives up after state.timeout.
        assert await asyncio.gather(*(c.ask(i % 3, "b") for i in range(15))) == [200] * 15
        redis.stop()
        # Down: no 500; per-process state.
        statuses = await asyncio.gather(*(c.ask(i % 3, "via-limited") for i in range(30)))
        assert statuses == [200] * 30
        # Each process noticed the outage once, and retried the store since without counting it again.
        assert await asyncio.gather(*(_outages(url) for url in c.urls)) == [1.0] * 3
        redis.start()
        sent = c.sent_to("m-limited")
        # Back (empty): once every process has retried the store, the window is shared again: across
        # 30 requests exactly 10 reach the deployment (per-process windows, full since the outage, would
        # let none through).
        await _until_shared(c)
        statuses = await asyncio.gather(*(c.ask(i % 3, "via-limited") for i in range(30)))
        assert statuses == [200] * 30
        assert c.sent_to("m-limited") - sent == 10


async def _until_shared(c: Cluster) -> None:
    """Send requests that touch state (to ``b``, which has no limit) until every process counted the
    store's recovery in its metrics."""
    for _ in range(100):
        assert await asyncio.gather(*(c.ask(i, "b") for i in range(3))) == [200] * 3
        if all(n > 0 for n in await asyncio.gather(*(_recoveries(url) for url in c.urls))):
            return
        await asyncio.sleep(0.05)
    raise AssertionError("a gateway process never used the restarted Redis")


async def _recoveries(url: str) -> float:
    return await _counted(url, "orchestrator_state_store_recovered_total")


async def _outages(url: str) -> float:
    return await _counted(url, "orchestrator_state_store_unavailable_total")


async def _counted(url: str, series: str) -> float:
    """The sum of ``series`` in the process's /metrics."""
    async with httpx.AsyncClient(base_url=url, headers={"authorization": f"Bearer {MASTER}"}) as client:
        text = (await client.get("/metrics")).text
    return sum(float(line.split()[-1]) for line in text.splitlines() if line.startswith(series))
