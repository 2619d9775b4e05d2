"""HTTP adapters time their calls on the transport's clock, the one the deadline is read on.

The handler advances a ``FakeClock`` to stand for time spent upstream, so the latency is exact and no
test waits or reads real time.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from model_orchestrator.core.model import ChatModel
from model_orchestrator.core.request import ChatRequest
from model_orchestrator.core.transport import Transport
from model_orchestrator.providers.anthropic import AnthropicModel
from model_orchestrator.providers.gemini import GeminiModel
from model_orchestrator.providers.openai_compatible import OpenAICompatibleModel
from model_orchestrator.testing import (
    FakeClock,
    MockRequest,
    MockResponse,
    MockTransport,
    Reply,
    wire_handler,
)

BASE = "http://upstream"
UPSTREAM_SECONDS = 0.25


def _openai(transport: Transport) -> ChatModel:
    return OpenAICompatibleModel(
        name="o", model_id="m", api_base=f"{BASE}/v1", api_key="k", transport=transport
    )


def _anthropic(transport: Transport) -> ChatModel:
    return AnthropicModel(name="a", model_id="m", api_key="k", transport=transport, api_base=BASE)


def _gemini(transport: Transport) -> ChatModel:
    return GeminiModel(name="g", model_id="m", api_key="k", transport=transport, api_base=BASE)


@pytest.mark.parametrize("build", [_openai, _anthropic, _gemini], ids=["openai", "anthropic", "gemini"])
async def test_latency_is_the_time_the_transport_clock_moved_during_the_call(
    build: Callable[[Transport], ChatModel],
) -> None:
    clock = FakeClock(start=100.0)
    answer = wire_handler(default=Reply("Paris."))

    def slow_upstream(request: MockRequest) -> MockResponse:
        clock.advance(UPSTREAM_SECONDS)
        return answer(request)

    model = build(MockTransport(slow_upstream, clock=clock))
    completion = await model.complete(ChatRequest.from_prompt("Capital of France?"))
    assert completion.text == "Paris."
    assert completion.latency == UPSTREAM_SECONDS
    assert clock.sleeps == []
