"""``state:`` in orchestrator.yaml: validation, the composition root, two orchestrators sharing one rpm on a
real redis-server, and the gateway's answer when the store is down (local: served; fail: 503, never 500)."""

from __future__ import annotations

import asyncio
import socket

import httpx
import openai
import pytest
import redis.asyncio

from model_orchestrator.config.build import build_state_store
from model_orchestrator.config.loader import parse_config
from model_orchestrator.config.state import StateConfig
from model_orchestrator.core.errors import ConfigError, OrchestratorError
from model_orchestrator.core.events import EventBus
from model_orchestrator.orchestrator import Orchestrator
from model_orchestrator.resilience.shared_state import FailoverStateStore
from model_orchestrator.resilience.state_store import MemoryStateStore
from model_orchestrator.testing import FakeClock, FakeUpstream
from tests.gateway_helpers import MASTER, USER, live_gateway
from tests.redis_server import RedisServer


def test_state_section_is_validated() -> None:
    assert not StateConfig().shared and StateConfig().on_unavailable == "local"
    for bad in (
        {"url": "redis://user:secret@host:6379/0"},  # a password belongs in url_env
        {"url": "http://host:6379"},
        {"url": "redis://h/0", "url_env": "STATE_URL"},
        {"url_env": "redis://h/0"},
        {"url": "redis://h/0", "timeout": 5},  # a store call may never hold a request for long
        {"url": "redis://h/0", "replicas": 0},
    ):
        with pytest.raises(ValueError):
            StateConfig.model_validate(bad)


def test_the_composition_root_builds_the_configured_store() -> None:
    clock, bus = FakeClock(), EventBus()
    assert isinstance(build_state_store(StateConfig(), {}, clock, bus), MemoryStateStore)
    shared = StateConfig(url_env="STATE_URL")
    assert isinstance(
        build_state_store(shared, {"STATE_URL": "redis://:pw@h:1/0"}, clock, bus), FailoverStateStore
    )
    with pytest.raises(ConfigError, match="STATE_URL, which is not set"):
        build_state_store(shared, {}, clock, bus)
    with pytest.raises(ConfigError, match="Redis URL") as bad:
        build_state_store(shared, {"STATE_URL": "https://:secret@h/"}, clock, bus)
    assert "secret" not in str(bad.value)
    with pytest.raises(ConfigError, match="malformed") as malformed:
        build_state_store(shared, {"STATE_URL": "redis://:secret@h:port/0"}, clock, bus)
    assert "secret" not in str(malformed.value)


async def test_two_orchestrators_share_one_rpm(redis_url: str) -> None:
    with FakeUpstream() as up:
        text = f"""
models:
  - {{name: a, provider: openai, model: m, api_base: "{up.openai_base}", api_key_env: UP_KEY, rpm: 3}}
resilience: {{retry: {{max_attempts: 1}}, rate_limit: {{on_limit: skip}}}}
state: {{url: "{redis_url}"}}
"""
        env = {"UP_KEY": "k"}
        async with (
            Orchestrator(parse_config(text), env=env) as one,
            Orchestrator(parse_config(text), env=env) as two,
        ):
            outcomes = await asyncio.gather(
                *(orch.complete(f"q{i}", model="a") for i in range(6) for orch in (one, two)),
                return_exceptions=True,
            )
        assert len(up.requests) == 3
        refused = [o for o in outcomes if isinstance(o, BaseException)]
        assert len(refused) == 9 and all(isinstance(o, OrchestratorError) for o in refused)


@pytest.mark.parametrize(("cache_ttl", "seen"), [(0.25, None), (0.0, 42.0)])
async def test_state_cache_ttl_bounds_how_late_another_process_s_change_is_seen(
    redis_url: str, cache_ttl: float, seen: float | None
) -> None:
    config = StateConfig(url=redis_url, cache_ttl=cache_ttl)
    one, two = (build_state_store(config, {}, FakeClock(), EventBus()) for _ in range(2))
    assert isinstance(one, FailoverStateStore) and isinstance(two, FailoverStateStore)
    try:
        assert await one.get("cooldown:ttl") is None
        await two.update("cooldown:ttl", lambda old: (42.0, None))
        assert await one.get("cooldown:ttl") == seen  # by default answered from what it saw 0 s ago
    finally:
        await one.aclose()
        await two.aclose()


def _dead_redis_url() -> str:
    with socket.socket() as probe:  # a port nothing listens on: connections are refused at once
        probe.bind(("127.0.0.1", 0))
        return f"redis://127.0.0.1:{probe.getsockname()[1]}/0"


@pytest.mark.parametrize(("policy", "status"), [("local", 200), ("fail", 503)])
async def test_the_gateway_with_an_unreachable_store(policy: str, status: int) -> None:
    extra = f'state: {{url: "{_dead_redis_url()}", on_unavailable: {policy}}}'
    with FakeUpstream() as up:
        async with live_gateway(up, extra_config=extra) as live:
            client = live.client()
            for _ in range(2):
                try:
                    answer = await client.chat.completions.create(model="a", messages=USER)  # type: ignore[arg-type]
                    got = 200 if answer.choices[0].message.content else 0
                except openai.APIStatusError as exc:
                    got = exc.status_code
                assert got == status
            async with httpx.AsyncClient() as http:
                health = await http.get(
                    f"{live.url}/health/providers", headers={"authorization": f"Bearer {MASTER}"}
                )
            assert health.status_code == status


async def test_a_gateway_keeps_serving_while_redis_is_killed_and_shares_again_after(
    own_redis: RedisServer,
) -> None:
    extra = f'state: {{url: "{own_redis.url}", retry_interval: 0.1}}'
    with FakeUpstream() as up:
        async with live_gateway(up, extra_config=extra) as live, httpx.AsyncClient() as http:
            client, auth = live.client(), {"authorization": f"Bearer {MASTER}"}

            async def answered() -> bool:
                answer = await client.chat.completions.create(model="a", messages=USER)  # type: ignore[arg-type]
                return bool(answer.choices[0].message.content)

            assert await answered()
            shared = redis.asyncio.Redis.from_url(own_redis.url)
            assert await shared.keys("orchestrator:state:breaker:*")  # the breaker lives in Redis
            own_redis.stop()
            assert all([await answered() for _ in range(3)])  # served on local state: no 500, no error
            metrics = (await http.get(f"{live.url}/metrics", headers=auth)).text
            assert 'orchestrator_state_store_unavailable_total{policy="local"} 1.0' in metrics
            own_redis.start()
            await shared.aclose()
            shared = redis.asyncio.Redis.from_url(own_redis.url)
            polls = 0
            while not await shared.keys("orchestrator:state:*"):  # restarted empty: state lands there again
                polls += 1
                assert polls < 100 and await answered()
                await asyncio.sleep(0.05)
            await shared.aclose()
