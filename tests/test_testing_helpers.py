"""``FakeClock``, ``ScriptedModel`` and ``FunctionModel``: the in-process fakes strategy tests build on."""

from __future__ import annotations

import asyncio

import pytest

from model_orchestrator.core.clock import Clock
from model_orchestrator.core.errors import RateLimitedError
from model_orchestrator.core.model import ChatModel
from model_orchestrator.core.request import ChatRequest
from model_orchestrator.core.response import Completion, FinishReason
from model_orchestrator.core.usage import Usage
from model_orchestrator.testing import FakeClock, FunctionModel, ScriptedModel

PROMPT = ChatRequest.from_prompt("2+2?")


async def test_fake_clock_moves_only_when_asked() -> None:
    clock: Clock = FakeClock(start=100.0, wall_start=1_000.0)  # type-checked against the protocol
    assert isinstance(clock, FakeClock)
    assert (clock.monotonic(), clock.wall()) == (100.0, 1_000.0)
    await clock.sleep(2.5)
    await clock.sleep(-1)
    clock.advance(0.5)
    assert (clock.monotonic(), clock.wall()) == (103.0, 1_003.0)
    assert clock.sleeps == [2.5, -1]
    assert clock.total_slept == 1.5
    with pytest.raises(ValueError, match="backwards"):
        clock.advance(-1)


async def test_fake_clock_sleep_lets_other_tasks_run() -> None:
    clock = FakeClock()
    order: list[str] = []

    async def sleeper() -> None:
        await clock.sleep(60)
        order.append("sleeper")

    task = asyncio.create_task(sleeper())
    await asyncio.sleep(0)
    order.append("main")
    await task
    assert order == ["main", "sleeper"]


async def test_scripted_model_answers_in_order_and_raises_errors() -> None:
    boom = RateLimitedError("slow down", retry_after=1.0)
    model = ScriptedModel(["four", boom], name="weak")
    assert isinstance(model, ChatModel)
    first = await model.complete(PROMPT)
    assert (first.text, first.model, first.provider, first.deployment) == ("four", "weak", "scripted", "weak")
    assert first.usage.output_tokens == 1 and first.usage.input_tokens > 0
    with pytest.raises(RateLimitedError):
        await model.complete(PROMPT)
    with pytest.raises(RuntimeError, match="no answer left"):
        await model.complete(PROMPT)
    assert model.requests == [PROMPT, PROMPT, PROMPT]
    assert model.remaining == 0


async def test_scripted_model_default_push_and_completion_entries() -> None:
    canned = Completion(text="exact", model="m", provider="p", deployment="d", usage=Usage(3, 4))
    model = ScriptedModel([], default="again")
    model.push(canned)
    assert await model.complete(PROMPT) is canned
    assert (await model.complete(PROMPT)).text == "again"
    await model.aclose()
    assert model.closed


async def test_stream_pieces_join_to_the_answer_and_end_with_usage() -> None:
    model = ScriptedModel(["The answer is four."], chunk_size=5)
    deltas = [d async for d in model.stream(PROMPT)]
    assert "".join(d.text for d in deltas) == "The answer is four."
    assert [d.text for d in deltas][:2] == ["The a", "nswer"]
    assert deltas[-1].finish_reason is FinishReason.STOP and deltas[-1].usage is not None
    assert all(d.usage is None for d in deltas[:-1])


async def test_stream_of_empty_answer_is_one_closing_delta() -> None:
    deltas = [d async for d in ScriptedModel([""]).stream(PROMPT)]
    assert len(deltas) == 1 and deltas[0].finish_reason is FinishReason.STOP


async def test_stream_raises_scripted_error_before_any_delta() -> None:
    model = ScriptedModel([RateLimitedError("no")])
    with pytest.raises(RateLimitedError):
        [d async for d in model.stream(PROMPT)]


async def test_function_model_sync_and_async_functions() -> None:
    echo = FunctionModel(lambda request: request.messages[-1].text.upper(), name="echo")
    assert (await echo.complete(PROMPT)).text == "2+2?"

    async def answer(request: ChatRequest) -> str:
        return f"{len(request.messages)} message(s)"

    assert (await FunctionModel(answer).complete(PROMPT)).text == "1 message(s)"
    assert repr(echo) == "FunctionModel(name='echo')"


async def test_delay_sleeps_on_the_injected_clock() -> None:
    clock = FakeClock()
    model = FunctionModel(lambda _: "late", delay=2.0, clock=clock)
    completion = await model.complete(PROMPT)
    assert clock.sleeps == [2.0]
    assert completion.latency == 2.0
