"""``core.wrapper.WrapperModel`` and the wrappers built on it: forwarding, and structural stream closing."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable

import pytest

from model_orchestrator.core.events import EventBus
from model_orchestrator.core.messages import Message
from model_orchestrator.core.model import ChatModel
from model_orchestrator.core.observed import ObservedModel
from model_orchestrator.core.profile import ModelProfile
from model_orchestrator.core.request import ChatRequest
from model_orchestrator.core.response import StreamDelta
from model_orchestrator.core.wrapper import WrapperModel
from model_orchestrator.ledger.guard import BudgetGuardModel
from model_orchestrator.ledger.limits import BudgetRules
from model_orchestrator.resilience.circuit_breaker import BreakerPolicy, CircuitBreakerModel
from model_orchestrator.resilience.cooldown import CooldownModel, CooldownPolicy
from model_orchestrator.resilience.health import HealthGatedModel
from model_orchestrator.resilience.rate_limiter import RateLimitedModel, RateLimitPolicy
from model_orchestrator.resilience.retry import RetryingModel
from model_orchestrator.resilience.state_store import MemoryStateStore
from model_orchestrator.resilience.timeout import TimeoutModel
from model_orchestrator.testing import FakeClock, FunctionModel

REQUEST = ChatRequest(messages=(Message.user("hi"),), request_id="r1")


class _TrackedStreams(FunctionModel):
    """A model whose streams record whether they were closed."""

    def __init__(self) -> None:
        super().__init__(lambda _: "one two three four five six", name="m", chunk_size=4)
        self.open_streams = 0

    async def stream(self, request: ChatRequest) -> AsyncIterator[StreamDelta]:
        self.open_streams += 1
        try:
            async for delta in super().stream(request):
                yield delta
        finally:
            self.open_streams -= 1


Wrap = Callable[[ChatModel], ChatModel]
_clock = FakeClock()
_store = MemoryStateStore()
_bus = EventBus()

WRAPPERS: dict[str, Wrap] = {
    "plain": WrapperModel,
    "timeout": lambda m: TimeoutModel(m, deployment="d", timeout=None),
    "observed": lambda m: ObservedModel(m, name="m", provider="p", deployment="d", price=None, bus=_bus),
    "rate_limited": lambda m: RateLimitedModel(m, deployment="d", policy=RateLimitPolicy(), store=_store),
    "cooldown": lambda m: CooldownModel(
        m, deployment="d", policy=CooldownPolicy(), store=_store, clock=_clock, bus=_bus
    ),
    "breaker": lambda m: CircuitBreakerModel(
        m, deployment="d", policy=BreakerPolicy(), store=_store, clock=_clock, bus=_bus
    ),
    "health": lambda m: HealthGatedModel(m, deployment="d", store=_store),
    "retry": lambda m: RetryingModel(m, deployment="d", clock=_clock),
    "budget_guard": lambda m: BudgetGuardModel(
        m,
        keeper=None,  # type: ignore[arg-type]  # no limits apply, so the keeper is never asked
        rules=BudgetRules(),
        profile=ModelProfile("m"),
        provider="p",
        deployment="d",
        bus=_bus,
        clock=_clock,
    ),
}


@pytest.mark.parametrize("wrap", WRAPPERS.values(), ids=WRAPPERS.keys())
async def test_a_wrapper_forwards_name_answers_and_closing(wrap: Wrap) -> None:
    inner = _TrackedStreams()
    model = wrap(inner)
    assert isinstance(model, WrapperModel)
    assert model.name == "m"
    assert (await model.complete(REQUEST)).text == "one two three four five six"
    assert "".join([d.text async for d in model.stream(REQUEST)]) == "one two three four five six"
    await model.aclose()
    assert inner.closed


@pytest.mark.parametrize("wrap", WRAPPERS.values(), ids=WRAPPERS.keys())
async def test_leaving_a_stream_early_closes_the_inner_stream_at_once(wrap: Wrap) -> None:
    inner = _TrackedStreams()
    model = wrap(inner)
    async with contextlib.aclosing(model.stream(REQUEST)) as deltas:  # type: ignore[type-var]
        async for _ in deltas:
            break
    assert inner.open_streams == 0  # closed by the wrapper, not later by the garbage collector


async def test_wrappers_nest_and_name_the_innermost_model() -> None:
    inner = _TrackedStreams()
    model: ChatModel = inner
    for wrap in WRAPPERS.values():
        model = wrap(model)
    assert model.name == "m"
    assert "".join([d.text async for d in model.stream(REQUEST)]) == "one two three four five six"
