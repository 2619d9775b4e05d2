"""TimeoutModel: whose fault running out of time is, and that expiry really closes the upstream connection."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from model_orchestrator.config.loader import parse_config
from model_orchestrator.core.clock import SystemClock
from model_orchestrator.core.errors import DeadlineExceededError, RequestTimeoutError
from model_orchestrator.core.events import AttemptStarted, RecordingSink
from model_orchestrator.core.request import ChatRequest
from model_orchestrator.core.response import Completion, StreamDelta
from model_orchestrator.core.usage import Usage
from model_orchestrator.orchestrator import Orchestrator
from model_orchestrator.providers.http import HttpTransport
from model_orchestrator.providers.openai_compatible import OpenAICompatibleModel
from model_orchestrator.resilience.timeout import TimeoutModel
from model_orchestrator.testing import FakeClock, FakeUpstream, Fault, FunctionModel, Reply

REQUEST = ChatRequest.from_prompt("hello")


class Stalling:
    """Answers ``complete`` only when released; streams ``head`` then stalls. Records cancellations."""

    def __init__(self, head: tuple[str, ...] = ()) -> None:
        self.head = head
        self.release = asyncio.Event()
        self.cancelled = 0
        self.calls = 0

    @property
    def name(self) -> str:
        return "stalling"

    async def complete(self, request: ChatRequest) -> Completion:
        self.calls += 1
        try:
            await self.release.wait()
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        return Completion("late", "m", "p", "d", Usage())

    async def stream(self, request: ChatRequest) -> AsyncIterator[StreamDelta]:
        self.calls += 1
        for text in self.head:
            yield StreamDelta(text=text)
        try:
            await self.release.wait()
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        yield StreamDelta(text="late")

    async def aclose(self) -> None:
        self.release.set()


def timed(inner: object, clock: FakeClock, **options: object) -> TimeoutModel:
    return TimeoutModel(inner, deployment="dep-a", clock=clock, **options)  # type: ignore[arg-type]


# --- classification, on a fake clock -----------------------------------------------------------


async def test_the_deployments_own_timeout_is_its_fault() -> None:
    clock, inner = FakeClock(), Stalling()
    with pytest.raises(RequestTimeoutError) as caught:
        await timed(inner, clock, timeout=2.0).complete(REQUEST)
    assert type(caught.value) is RequestTimeoutError and caught.value.retryable
    assert caught.value.deployment == "dep-a" and "2.0s timeout" in caught.value.message
    assert clock.sleeps == [2.0] and inner.cancelled == 1


async def test_a_sooner_deadline_is_the_callers_fault() -> None:
    clock, inner = FakeClock(start=10.0), Stalling()
    with pytest.raises(DeadlineExceededError) as caught:
        await timed(inner, clock, timeout=5.0).complete(REQUEST.with_options(deadline=11.0))
    assert not caught.value.retryable
    assert clock.sleeps == [1.0] and inner.cancelled == 1


async def test_a_later_deadline_leaves_the_timeout_binding() -> None:
    clock, inner = FakeClock(), Stalling()
    with pytest.raises(RequestTimeoutError) as caught:
        await timed(inner, clock, timeout=2.0).complete(REQUEST.with_options(deadline=10.0))
    assert not isinstance(caught.value, DeadlineExceededError)
    assert clock.sleeps == [2.0]


async def test_a_deadline_alone_bounds_a_call_without_a_timeout() -> None:
    clock = FakeClock()
    with pytest.raises(DeadlineExceededError):
        await timed(Stalling(), clock, timeout=None).complete(REQUEST.with_options(deadline=3.0))
    assert clock.sleeps == [3.0]


async def test_a_passed_deadline_raises_without_a_call() -> None:
    clock, inner = FakeClock(start=5.0), Stalling()
    with pytest.raises(DeadlineExceededError):
        await timed(inner, clock, timeout=2.0).complete(REQUEST.with_options(deadline=5.0))
    assert inner.calls == 0


async def test_an_answer_in_time_passes_through() -> None:
    clock = FakeClock()
    model = timed(FunctionModel(lambda r: "quick"), clock, timeout=2.0)
    assert (await model.complete(REQUEST.with_options(deadline=1.0))).text == "quick"
    assert clock.sleeps == []
    unbounded = timed(FunctionModel(lambda r: "free"), clock, timeout=None)
    assert (await unbounded.complete(REQUEST)).text == "free"


async def test_an_inner_timeout_at_the_deadline_is_reclassified_as_the_callers() -> None:
    clock = FakeClock()

    def slow(request: ChatRequest) -> str:
        clock.advance(4.0)  # the adapter's own timer, set to the deadline, fired first
        raise RequestTimeoutError("read timed out")

    with pytest.raises(DeadlineExceededError):
        await timed(FunctionModel(slow), clock, timeout=10.0).complete(REQUEST.with_options(deadline=4.0))
    with pytest.raises(RequestTimeoutError) as caught:
        await timed(FunctionModel(slow), clock, timeout=10.0).complete(REQUEST.with_options(deadline=99.0))
    assert not isinstance(caught.value, DeadlineExceededError)


async def test_a_callers_cancellation_stays_a_cancellation() -> None:
    inner = Stalling()
    model = TimeoutModel(inner, deployment="d", timeout=30.0, clock=SystemClock())
    task = asyncio.create_task(model.complete(REQUEST))
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert inner.cancelled == 1


def test_timeouts_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        TimeoutModel(Stalling(), deployment="d", timeout=0.0)


# --- streams, on a fake clock ------------------------------------------------------------------


async def test_a_stream_without_text_hits_the_first_token_timeout() -> None:
    clock, inner = FakeClock(), Stalling(head=("",))
    model = timed(inner, clock, timeout=30.0, first_token_timeout=3.0)
    with pytest.raises(RequestTimeoutError, match="first-token"):
        async for _ in model.stream(REQUEST):
            pass
    assert clock.sleeps == [3.0] and inner.cancelled == 1


async def test_a_stalled_stream_hits_the_idle_timeout_after_its_text() -> None:
    clock, inner = FakeClock(), Stalling(head=("Hel", "lo"))
    model = timed(inner, clock, timeout=30.0, idle_timeout=1.5)
    seen: list[str] = []
    with pytest.raises(RequestTimeoutError, match="idle"):
        async for delta in model.stream(REQUEST):
            seen.append(delta.text)
    assert seen == ["Hel", "lo"] and clock.sleeps == [1.5] and inner.cancelled == 1


async def test_a_stream_is_cut_by_the_deadline_as_the_callers_fault() -> None:
    clock, inner = FakeClock(), Stalling(head=("a",))
    model = timed(inner, clock, timeout=30.0)
    with pytest.raises(DeadlineExceededError):
        async for _ in model.stream(REQUEST.with_options(deadline=2.0)):
            pass
    assert clock.sleeps == [2.0]


async def test_a_stream_runs_one_timer_however_many_deltas() -> None:
    created: list[object] = []
    loop = asyncio.get_running_loop()

    def counting(loop: asyncio.AbstractEventLoop, coro: Any, **options: Any) -> asyncio.Task[Any]:
        created.append(coro)
        return asyncio.Task(coro, loop=loop, **options)

    model = TimeoutModel(
        FunctionModel(lambda _: "x" * 800, chunk_size=4), deployment="d", timeout=30.0, clock=SystemClock()
    )
    loop.set_task_factory(counting)
    try:
        texts = [delta.text async for delta in model.stream(REQUEST) if delta.text]
    finally:
        loop.set_task_factory(None)
    assert len(texts) == 200 and len(created) == 1


# --- through HTTP: expiry closes the connection ------------------------------------------------


@pytest.fixture
def upstream() -> Iterator[FakeUpstream]:
    with FakeUpstream() as up:
        yield up


@pytest.fixture
async def adapter(upstream: FakeUpstream) -> AsyncIterator[OpenAICompatibleModel]:
    transport = HttpTransport()
    yield OpenAICompatibleModel(
        name="m", model_id="m", api_base=upstream.openai_base, api_key="k", transport=transport
    )
    await transport.aclose()


async def consume(model: TimeoutModel, request: ChatRequest, stream: bool) -> str:
    if not stream:
        return (await model.complete(request)).text
    return "".join([d.text async for d in model.stream(request)])


@pytest.mark.parametrize("stream", [False, True])
async def test_a_timeout_disconnects_a_hanging_upstream(
    upstream: FakeUpstream, adapter: OpenAICompatibleModel, stream: bool
) -> None:
    upstream.script(Fault.hang(5))
    model = TimeoutModel(adapter, deployment="d", timeout=0.2, clock=SystemClock())
    with pytest.raises(RequestTimeoutError) as caught:
        await consume(model, REQUEST, stream)
    assert not isinstance(caught.value, DeadlineExceededError)
    # The client hung up: the fake saw the disconnect instead of finishing its 5 s hang.
    record = (await upstream.await_finished(1))[0]
    assert record.disconnected


@pytest.mark.parametrize("stream", [False, True])
async def test_a_deadline_disconnects_a_hanging_upstream(
    upstream: FakeUpstream, adapter: OpenAICompatibleModel, stream: bool
) -> None:
    upstream.script(Fault.hang(5))
    model = TimeoutModel(adapter, deployment="d", timeout=30.0, clock=SystemClock())
    with pytest.raises(DeadlineExceededError):
        await consume(model, REQUEST.with_options(deadline=time.monotonic() + 0.2), stream)
    assert (await upstream.await_finished(1))[0].disconnected


async def test_a_stream_stalling_between_chunks_is_cut_and_disconnected(
    upstream: FakeUpstream, adapter: OpenAICompatibleModel
) -> None:
    # Every frame (the first carries no text) comes 0.5 s after the one before: the first text arrives
    # within the first-token timeout, and the gap after it exceeds the idle timeout.
    upstream.script(Reply("first chunk, then a long silence", chunk_size=12, chunk_delay=0.5))
    model = TimeoutModel(adapter, deployment="d", timeout=30.0, idle_timeout=0.1, clock=SystemClock())
    seen: list[str] = []
    with pytest.raises(RequestTimeoutError, match="idle"):
        async for delta in model.stream(REQUEST):
            seen.append(delta.text)
    assert "".join(seen).startswith("first")
    assert (await upstream.await_finished(1))[0].disconnected


# --- a timeout with somewhere else to go moves on at once -----------------------------------------


async def test_a_timed_out_member_with_a_fallback_is_not_retried_but_the_last_one_is() -> None:
    async with FakeUpstream() as hanging, FakeUpstream() as healthy:
        hanging.script(*[Fault.hang(5)] * 4)
        slow, fast = hanging.openai_base, healthy.openai_base
        config = parse_config(
            "models:\n"
            f"  - {{name: slow, provider: openai, model: m, api_base: '{slow}', timeout: 0.3}}\n"
            f"  - {{name: fast, provider: openai, model: m, api_base: '{fast}'}}\n"
            "resilience:\n"
            "  retry: {base_delay: 0, max_delay: 0}\n"
        )
        sink = RecordingSink()
        async with Orchestrator(config, env={}) as orch:
            orch.events.subscribe(sink)
            answered = await orch.complete("hi", model="fallback:slow,fast")
            assert answered.response == "ok"
            # Default 3 attempts, but fast was next in line: one call, then straight on.
            assert [e.model for e in sink.of_type(AttemptStarted)] == ["slow", "fast"]
            with pytest.raises(RequestTimeoutError):
                await orch.complete("hi", model="slow")  # the last (only) option: retried
        assert [e.model for e in sink.of_type(AttemptStarted)] == ["slow", "fast"] + ["slow"] * 3


async def test_the_time_a_consumer_holds_a_delta_is_not_an_idle_gap() -> None:
    clock = FakeClock()
    model = timed(
        FunctionModel(lambda _: "one two three", chunk_size=4), clock, timeout=30.0, idle_timeout=1.0
    )
    seen: list[str] = []
    async for delta in model.stream(REQUEST):
        seen.append(delta.text)
        clock.advance(5.0)  # the consumer is slow, the upstream is not
        await asyncio.sleep(0)  # and the timer task gets to run meanwhile
    assert "".join(seen) == "one two three"
