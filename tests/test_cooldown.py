"""Cooldown: pure decisions, the wrapper over scripted models with a fake clock, and a real 429 upstream."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from model_orchestrator.core.errors import (
    ConfigError,
    CoolingDownError,
    DeadlineExceededError,
    ProviderError,
    RateLimitedError,
    ServerError,
    UpstreamConnectionError,
)
from model_orchestrator.core.events import CooldownStarted, EventBus, RecordingSink
from model_orchestrator.core.model import ChatModel
from model_orchestrator.core.request import ChatRequest
from model_orchestrator.providers.http import HttpTransport
from model_orchestrator.providers.openai_compatible import OpenAICompatibleModel
from model_orchestrator.resilience.cooldown import (
    CooldownModel,
    CooldownPolicy,
    cooldown_reason,
    cooldown_seconds,
    cooldown_until,
    extended,
    remaining,
)
from model_orchestrator.resilience.state_store import MemoryStateStore
from model_orchestrator.testing import FakeClock, FakeUpstream, Fault, FunctionModel, ScriptedModel

REQUEST = ChatRequest.from_prompt("hello", request_id="req-1")
POLICY = CooldownPolicy()

# ---- pure decisions --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "policy", "reason"),
    [
        (RateLimitedError("429"), POLICY, "rate_limited"),
        (ServerError("busy", status_code=503), POLICY, "overloaded"),
        (ServerError("overloaded", status_code=529), POLICY, "overloaded"),
        (ServerError("busy", status_code=503), CooldownPolicy(on_overload=False), None),
        (ServerError("boom", status_code=500), POLICY, None),
        (UpstreamConnectionError("refused"), POLICY, None),  # 503 by default, but no answer came back
        (DeadlineExceededError("the caller ran out of time"), POLICY, None),
    ],
)
def test_which_errors_start_a_cooldown(
    error: ProviderError, policy: CooldownPolicy, reason: str | None
) -> None:
    assert cooldown_reason(error, policy) == reason


def test_cooldown_length_honours_retry_after_else_the_default_and_is_capped() -> None:
    assert cooldown_seconds(RateLimitedError("x", retry_after=7.5), POLICY) == 7.5
    assert cooldown_seconds(RateLimitedError("x"), POLICY) == POLICY.default_seconds
    assert cooldown_seconds(RateLimitedError("x", retry_after=0.0), POLICY) == POLICY.default_seconds
    assert cooldown_seconds(RateLimitedError("x", retry_after=3600.0), POLICY) == 300.0


def test_the_later_end_wins_and_remaining_is_none_once_over() -> None:
    assert extended(None, 10.0) == 10.0
    assert extended(30.0, 10.0) == 30.0
    assert extended(10.0, 30.0) == 30.0
    assert remaining(30.0, 12.0) == 18.0
    assert remaining(30.0, 30.0) is None
    assert remaining(None, 1.0) is None


def test_policy_rejects_nonsense() -> None:
    with pytest.raises(ConfigError):
        CooldownPolicy(default_seconds=-1)
    with pytest.raises(ConfigError):
        CooldownPolicy(default_seconds=10, max_seconds=5)


# ---- the wrapper -----------------------------------------------------------------------------------


def wrap(
    inner: ChatModel, *, clock: FakeClock, store: MemoryStateStore | None = None
) -> tuple[CooldownModel, RecordingSink, MemoryStateStore]:
    return wrap_with(inner, POLICY, clock=clock, store=store)


def wrap_with(
    inner: ChatModel,
    policy: CooldownPolicy,
    *,
    clock: FakeClock | None = None,
    store: MemoryStateStore | None = None,
) -> tuple[CooldownModel, RecordingSink, MemoryStateStore]:
    bus, sink, store = EventBus(), RecordingSink(), store or MemoryStateStore()
    bus.subscribe(sink)
    model = CooldownModel(
        inner,
        deployment="m@host",
        policy=policy,
        store=store,
        clock=clock or FakeClock(),
        bus=bus,
    )
    return model, sink, store


async def test_retry_after_is_honoured_exactly_and_nothing_is_sent_before() -> None:
    clock = FakeClock(start=100.0)
    inner = ScriptedModel([RateLimitedError("429", retry_after=7.5), "back"])
    model, sink, store = wrap(inner, clock=clock)
    with pytest.raises(RateLimitedError):
        await model.complete(REQUEST)
    assert await cooldown_until(store, "m@host") == 107.5
    clock.advance(7.4)
    with pytest.raises(CoolingDownError) as caught:
        await model.complete(REQUEST)
    assert caught.value.retry_after == pytest.approx(0.1)
    error = caught.value
    assert (error.deployment, error.reason) == ("m@host", "cooling_down")
    assert len(inner.requests) == 1
    clock.advance(0.1)
    assert (await model.complete(REQUEST)).text == "back"
    events = sink.of_type(CooldownStarted)
    assert len(events) == 1
    started = events[0]
    assert isinstance(started, CooldownStarted)
    assert (started.seconds, started.reason, started.deployment, started.request_id) == (
        7.5,
        "rate_limited",
        "m@host",
        "req-1",
    )


async def test_default_cooldown_when_the_429_has_no_retry_after() -> None:
    clock = FakeClock()
    model, _, store = wrap(ScriptedModel([RateLimitedError("429")]), clock=clock)
    with pytest.raises(RateLimitedError):
        await model.complete(REQUEST)
    assert await cooldown_until(store, "m@host") == POLICY.default_seconds


async def test_a_zero_default_cools_down_only_when_the_provider_says_how_long() -> None:
    inner = ScriptedModel([RateLimitedError("429"), RateLimitedError("429", retry_after=2.0)])
    model, sink, store = wrap_with(inner, CooldownPolicy(default_seconds=0.0))
    with pytest.raises(RateLimitedError):
        await model.complete(REQUEST)
    assert await cooldown_until(store, "m@host") is None and sink.events == []
    with pytest.raises(RateLimitedError):
        await model.complete(REQUEST)
    assert await cooldown_until(store, "m@host") == 2.0


async def test_overload_cools_down_and_a_plain_500_does_not() -> None:
    clock = FakeClock()
    inner = ScriptedModel([ServerError("boom", status_code=500), ServerError("overloaded", status_code=529)])
    model, sink, store = wrap(inner, clock=clock)
    with pytest.raises(ServerError):
        await model.complete(REQUEST)
    assert await cooldown_until(store, "m@host") is None
    with pytest.raises(ServerError):
        await model.complete(REQUEST)
    assert await cooldown_until(store, "m@host") == POLICY.default_seconds
    assert [e.reason for e in sink.of_type(CooldownStarted)] == ["overloaded"]  # type: ignore[attr-defined]


async def test_the_callers_deadline_never_cools_a_deployment_down() -> None:
    inner = ScriptedModel([DeadlineExceededError("deadline passed"), "fine"])
    model, sink, store = wrap(inner, clock=FakeClock())
    with pytest.raises(DeadlineExceededError):
        await model.complete(REQUEST)
    assert (await model.complete(REQUEST)).text == "fine"
    assert await cooldown_until(store, "m@host") is None and sink.events == []


async def test_the_longest_cooldown_wins_when_concurrent_calls_get_429s() -> None:
    gate = asyncio.Event()
    errors = [RateLimitedError("429", retry_after=30.0), RateLimitedError("429", retry_after=5.0)]

    async def answer(_: ChatRequest) -> str:
        await gate.wait()
        raise errors.pop(0)

    clock = FakeClock()
    model, sink, store = wrap(FunctionModel(answer), clock=clock)
    calls = [asyncio.create_task(model.complete(REQUEST)) for _ in range(2)]
    await asyncio.sleep(0)  # both pass the cooldown check and wait upstream
    gate.set()
    results = await asyncio.gather(*calls, return_exceptions=True)
    assert all(isinstance(r, RateLimitedError) for r in results)
    assert await cooldown_until(store, "m@host") == 30.0
    assert [e.seconds for e in sink.of_type(CooldownStarted)] == [30.0]  # type: ignore[attr-defined]


async def test_a_rate_limited_stream_cools_down_too() -> None:
    clock = FakeClock()
    model, _, store = wrap(ScriptedModel([RateLimitedError("429", retry_after=2.0)]), clock=clock)
    with pytest.raises(RateLimitedError):
        [d async for d in model.stream(REQUEST)]
    with pytest.raises(CoolingDownError):
        [d async for d in model.stream(REQUEST)]
    assert await cooldown_until(store, "m@host") == 2.0


async def test_wrappers_sharing_a_store_share_the_cooldown() -> None:
    clock = FakeClock()
    first, _, store = wrap(ScriptedModel([RateLimitedError("429", retry_after=9.0)]), clock=clock)
    other_inner = ScriptedModel(["never sent"])
    second, _, _ = wrap(other_inner, clock=clock, store=store)
    with pytest.raises(RateLimitedError):
        await first.complete(REQUEST)
    with pytest.raises(CoolingDownError):
        await second.complete(REQUEST)
    assert other_inner.requests == []
    assert await cooldown_until(store, "elsewhere@host") is None


# ---- end to end: a real 429 with retry-after --------------------------------------------------------


@pytest.fixture
async def upstream() -> AsyncIterator[FakeUpstream]:
    async with FakeUpstream() as up:
        yield up


async def test_a_real_429_retry_after_header_sets_the_cooldown(upstream: FakeUpstream) -> None:
    transport = HttpTransport()
    adapter = OpenAICompatibleModel(
        name="fast", model_id="m", api_base=upstream.openai_base, api_key="k", transport=transport
    )
    clock = FakeClock()
    model, _, store = wrap(adapter, clock=clock)
    upstream.script(Fault.rate_limited(retry_after=12.0))
    try:
        with pytest.raises(RateLimitedError):
            await model.complete(REQUEST)
        with pytest.raises(CoolingDownError) as caught:
            await model.complete(REQUEST)
    finally:
        await transport.aclose()
    assert caught.value.retry_after == 12.0
    assert await cooldown_until(store, "m@host") == 12.0
    assert len(upstream.requests) == 1
