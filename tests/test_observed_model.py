"""ObservedModel: every attempt (success, failure, cancellation, streams) reaches the event bus, priced."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest

from model_orchestrator.core.errors import ServerError
from model_orchestrator.core.events import (
    AttemptFailed,
    AttemptStarted,
    AttemptSucceeded,
    EventBus,
    RecordingSink,
)
from model_orchestrator.core.observed import ObservedModel
from model_orchestrator.core.pricing import Price
from model_orchestrator.core.request import ChatRequest
from model_orchestrator.core.response import Completion
from model_orchestrator.core.usage import Usage
from model_orchestrator.testing import FakeClock, FunctionModel, ScriptedModel

PRICE = Price(input=1.0, output=2.0)


def observe(inner: object, price: Price | None = PRICE) -> tuple[ObservedModel, RecordingSink]:
    bus, sink = EventBus(), RecordingSink()
    bus.subscribe(sink)
    model = ObservedModel(
        inner,
        name="m",
        provider="p",
        deployment="m@host",
        price=price,
        bus=bus,  # type: ignore[arg-type]
        clock=FakeClock(),
    )
    return model, sink


def request() -> ChatRequest:
    return ChatRequest.from_prompt("hello", request_id="req-1")


async def test_success_is_priced_and_reported() -> None:
    answer = Completion("hi", "m", "p", "inner", Usage(1_000_000, 500_000))
    model, sink = observe(ScriptedModel([answer]))
    completion = await model.complete(request())
    assert completion.cost == pytest.approx(1.0 + 1.0)
    assert completion.deployment == "m@host"
    started, succeeded = sink.events
    assert isinstance(started, AttemptStarted) and isinstance(succeeded, AttemptSucceeded)
    assert started.attempt_id == succeeded.attempt_id and succeeded.request_id == "req-1"
    assert succeeded.cost == pytest.approx(2.0)


async def test_unknown_price_keeps_a_reported_cost_or_none() -> None:
    reported = Completion("hi", "m", "p", "d", Usage(10, 10), cost=0.25)
    model, _ = observe(ScriptedModel([reported, "plain"]), price=None)
    assert (await model.complete(request())).cost == 0.25
    assert (await model.complete(request())).cost is None


async def test_failure_is_reported_and_reraised() -> None:
    model, sink = observe(ScriptedModel([ServerError("boom", status_code=503)]))
    with pytest.raises(ServerError):
        await model.complete(request())
    failed = sink.of_type(AttemptFailed)[0]
    assert isinstance(failed, AttemptFailed)
    assert (failed.error_type, failed.status_code, failed.retryable, failed.cancelled) == (
        "ServerError",
        503,
        True,
        False,
    )


async def test_cancellation_is_reported_as_a_cancelled_attempt() -> None:
    never = asyncio.Event()

    async def wait_forever(_: ChatRequest) -> str:
        await never.wait()
        return "unreachable"

    model, sink = observe(FunctionModel(wait_forever))
    task = asyncio.create_task(model.complete(request()))
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    failed = sink.of_type(AttemptFailed)[0]
    assert isinstance(failed, AttemptFailed) and failed.cancelled and failed.error_type == "Cancelled"


async def test_stream_reports_usage_from_the_last_delta() -> None:
    answer = Completion("streamed text", "m", "p", "d", Usage(100, 7))
    model, sink = observe(ScriptedModel([answer], chunk_size=3))
    text = "".join([d.text async for d in model.stream(request())])
    assert text == "streamed text"
    succeeded = sink.of_type(AttemptSucceeded)[0]
    assert isinstance(succeeded, AttemptSucceeded)
    assert succeeded.usage == Usage(100, 7) and succeeded.cost == pytest.approx((100 + 14) / 1e6)


async def test_abandoned_stream_is_reported_with_estimated_usage() -> None:
    model, sink = observe(ScriptedModel(["a long streamed answer"], chunk_size=2))
    stream = model.stream(request())
    await stream.__anext__()
    await stream.aclose()
    failed = sink.of_type(AttemptFailed)[0]
    assert isinstance(failed, AttemptFailed) and failed.cancelled
    assert failed.usage.estimated and failed.usage.output_tokens == 1


def full_completion() -> Completion:
    """A completion with every field away from its default (so a copy that dropped one shows)."""
    from model_orchestrator.core.explanation import Explanation
    from model_orchestrator.core.rate_limits import RateLimitSnapshot
    from model_orchestrator.core.response import FinishReason, TokenLogprob
    from model_orchestrator.core.tools import ToolCall

    defaults = Completion("", "", "", "", Usage())
    completion = Completion(
        text="hi",
        model="inner-model",
        provider="inner-provider",
        deployment="inner-deployment",
        usage=Usage(3, 4),
        cost=0.5,
        latency=1.5,
        finish_reason=FinishReason.TOOL_CALLS,
        logprobs=(TokenLogprob("hi", -0.1),),
        response_id="resp-1",
        rate_limits=RateLimitSnapshot(remaining_requests=9),
        details=(("k", "v"),),
        explanation=Explanation(strategy="inner"),
        tool_calls=(ToolCall("c1", "lookup", "{}"),),
    )
    for field in dataclasses.fields(Completion):
        assert getattr(completion, field.name) != getattr(defaults, field.name), field.name
    return completion


async def test_an_answer_keeps_every_field_but_its_price_and_deployment() -> None:
    completion = full_completion()
    model, _ = observe(FunctionModel(lambda _: completion))
    answer = await model.complete(ChatRequest.from_prompt("hi"))
    assert answer == dataclasses.replace(completion, deployment="m@host")  # a reported cost is kept
