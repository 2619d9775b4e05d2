"""``core.layered_stream``: one stream object per attempt that a deployment's layers attach hooks to, run in
the order their nested generators ran them (in: outermost first; out: innermost first)."""

from __future__ import annotations

import asyncio
import gc
import sys
from collections.abc import AsyncGenerator

import pytest

from model_orchestrator.core.errors import (
    CoolingDownError,
    RateLimitedError,
    ServerError,
)
from model_orchestrator.core.events import AttemptFailed, AttemptSucceeded, EventBus, RecordingSink
from model_orchestrator.core.layered_stream import LayeredStream, StreamHooks
from model_orchestrator.core.messages import Message
from model_orchestrator.core.observed import ObservedModel
from model_orchestrator.core.request import ChatRequest
from model_orchestrator.core.response import StreamDelta
from model_orchestrator.resilience.circuit_breaker import BreakerPolicy, CircuitBreakerModel
from model_orchestrator.resilience.cooldown import CooldownModel, CooldownPolicy
from model_orchestrator.resilience.rate_limiter import RateLimitedModel, RateLimitPolicy
from model_orchestrator.resilience.state_store import MemoryStateStore
from model_orchestrator.testing import FakeClock, ScriptedModel


class _Source:
    """Scripted deltas that may fail after them, recording what was read and how often it was closed."""

    def __init__(self, *texts: str, fail: BaseException | None = None) -> None:
        self.texts = texts
        self.fail = fail
        self.opened = 0
        self.closed = 0

    def open(self) -> AsyncGenerator[StreamDelta, None]:
        self.opened += 1
        return self._deltas()

    async def _deltas(self) -> AsyncGenerator[StreamDelta, None]:
        try:
            for text in self.texts:
                yield StreamDelta(text=text)
            if self.fail is not None:
                raise self.fail
        finally:
            self.closed += 1


class _Recorder(StreamHooks):
    """A layer that writes each hook it sees to ``log``; ``raises`` maps a hook name to what it raises."""

    __slots__ = ("_log", "_name", "_raises", "empty_fails")

    def __init__(self, name: str, log: list[str], *, raises: dict[str, BaseException] | None = None) -> None:
        self._name = name
        self._log = log
        self._raises = raises or {}
        self.empty_fails = False

    def _note(self, hook: str) -> None:
        self._log.append(f"{self._name}.{hook}")
        if hook in self._raises:
            raise self._raises[hook]

    async def begin(self) -> None:
        self._note("begin")

    def delta(self, delta: StreamDelta) -> None:
        self._log.append(f"{self._name}.delta:{delta.text}")

    async def end(self, stream: LayeredStream) -> None:
        self._note("end")

    async def error(self, error: BaseException) -> None:
        self._log.append(f"{self._name}.error:{type(error).__name__}")
        if "error" in self._raises:
            raise self._raises["error"]

    async def close(self) -> None:
        self._note("close")


class _NoDelta(_Recorder):
    """A layer without a per-delta hook (it is not called per delta)."""

    __slots__ = ()

    delta = StreamHooks.delta


class _Holder(_Recorder):
    """A layer that holds the stream until its first content and settles before the source closes."""

    __slots__ = ()

    hold_until_content = True
    closes_first = True

    async def end(self, stream: LayeredStream) -> None:
        self._log.append(f"{self._name}.end:content={stream.has_content}")
        if not stream.has_content and self.empty_fails:
            raise ServerError("empty answer", status_code=502, retryable=True)


def _stream(source: _Source, *layers: StreamHooks) -> LayeredStream:
    stream = LayeredStream(source.open)
    for hooks in layers:  # innermost first, as each layer joins from the inside out
        stream.add(hooks)
    return stream


async def test_hooks_run_in_the_nesting_order_in_and_out() -> None:
    log: list[str] = []
    source = _Source("a", "b")
    stream = _stream(source, _Recorder("inner", log), _NoDelta("middle", log), _Recorder("outer", log))
    assert [delta.text async for delta in stream] == ["a", "b"]
    assert log == [
        "outer.begin",
        "middle.begin",
        "inner.begin",
        "inner.delta:a",
        "outer.delta:a",
        "inner.delta:b",
        "outer.delta:b",
        "inner.end",
        "middle.end",
        "outer.end",
    ]
    assert (source.opened, source.closed) == (1, 1)


async def test_a_failure_reaches_every_layer_innermost_first_and_a_raise_replaces_it_outside() -> None:
    log: list[str] = []
    source = _Source("a", fail=RateLimitedError("slow down", retry_after=1.0))
    replaced = CoolingDownError("cooling down", retry_after=1.0)
    stream = _stream(
        source,
        _NoDelta("inner", log),
        _NoDelta("middle", log, raises={"error": replaced}),
        _NoDelta("outer", log),
    )
    with pytest.raises(CoolingDownError) as raised:
        async for _ in stream:
            pass
    assert raised.value is replaced
    assert log[-3:] == [
        "inner.error:RateLimitedError",
        "middle.error:RateLimitedError",
        "outer.error:CoolingDownError",
    ]


async def test_an_end_hook_that_raises_is_an_error_for_the_layers_outside_it() -> None:
    log: list[str] = []
    stream = _stream(
        _Source("a"),
        _NoDelta("inner", log, raises={"end": ServerError("bad end", status_code=500)}),
        _NoDelta("outer", log),
    )
    with pytest.raises(ServerError, match="bad end"):
        async for _ in stream:
            pass
    assert log[-2:] == ["inner.end", "outer.error:ServerError"]


async def test_a_refused_begin_opens_nothing_and_only_the_layers_outside_see_it() -> None:
    log: list[str] = []
    source = _Source("a")
    refused = CoolingDownError("cooling down", retry_after=1.0)
    stream = _stream(
        source,
        _NoDelta("inner", log),
        _NoDelta("middle", log, raises={"begin": refused}),
        _NoDelta("outer", log),
    )
    with pytest.raises(CoolingDownError):
        await anext(stream)
    assert log == ["outer.begin", "middle.begin", "outer.error:CoolingDownError"]
    assert source.opened == 0
    with pytest.raises(StopAsyncIteration):  # a failed stream is over
        await anext(stream)


async def test_leaving_early_closes_the_source_once_and_the_layers_see_a_cancel_in_order() -> None:
    log: list[str] = []
    source = _Source("a", "b", "c")
    stream = _stream(source, _NoDelta("observed", log), _Holder("breaker", log))
    assert (await anext(stream)).text == "a"
    await stream.aclose()
    await stream.aclose()
    assert log[-2:] == ["breaker.close", "observed.close"]  # the breaker settles before the source closes
    assert (source.opened, source.closed) == (1, 1)
    with pytest.raises(StopAsyncIteration):
        await anext(stream)


async def test_closing_a_stream_never_read_or_already_ended_does_nothing() -> None:
    log: list[str] = []
    unread = _Source("a")
    await _stream(unread, _NoDelta("layer", log)).aclose()
    assert (unread.opened, log) == (0, [])
    ended = _Source("a")
    stream = _stream(ended, _NoDelta("layer", log))
    assert [delta.text async for delta in stream] == ["a"]
    await stream.aclose()
    assert log == ["layer.begin", "layer.end"]
    assert ended.closed == 1


async def test_a_holder_passes_nothing_on_before_the_first_content() -> None:
    log: list[str] = []
    source = _Source("", " ", "Hi", "!")
    stream = _stream(source, _Recorder("observed", log), _Holder("breaker", log))
    assert (await anext(stream)).text == ""
    # The read-ahead stopped at the first content: the source gave three deltas and no more.
    assert [entry for entry in log if "delta" in entry] == [
        "observed.delta:",
        "breaker.delta:",
        "observed.delta: ",
        "breaker.delta: ",
        "observed.delta:Hi",
        "breaker.delta:Hi",
    ]
    assert [delta.text async for delta in stream] == [" ", "Hi", "!"]
    assert log[-2:] == ["observed.end", "breaker.end:content=True"]


async def test_an_empty_stream_fails_at_the_holder_before_any_delta_is_passed_on() -> None:
    log: list[str] = []
    holder = _Holder("breaker", log)
    holder.empty_fails = True
    stream = _stream(_Source("", " "), _NoDelta("observed", log), holder, _NoDelta("outer", log))
    with pytest.raises(ServerError, match="empty answer"):
        await anext(stream)  # the very first read fails: no empty delta reached the consumer
    assert log[-3:] == ["observed.end", "breaker.end:content=False", "outer.error:ServerError"]


async def test_an_accepted_empty_stream_passes_its_deltas_on_and_the_holder_ends_after_them() -> None:
    log: list[str] = []
    stream = _stream(_Source("", " "), _NoDelta("observed", log), _Holder("breaker", log))
    assert (await anext(stream)).text == ""
    assert log[-1] == "observed.end"  # the layers inside the holder saw the end during the read-ahead
    assert (await anext(stream)).text == " "
    with pytest.raises(StopAsyncIteration):
        await anext(stream)
    assert log[-1] == "breaker.end:content=False"


async def test_a_layer_joins_only_before_the_stream_is_read() -> None:
    stream = _stream(_Source("a"), _NoDelta("layer", []))
    await anext(stream)
    with pytest.raises(RuntimeError, match="before it is read"):
        stream.add(_NoDelta("late", []))
    await stream.aclose()


async def test_an_abandoned_open_stream_is_closed_on_its_loop_when_collected() -> None:
    log: list[str] = []
    source = _Source("a", "b")
    stream = _stream(source, _NoDelta("observed", log))
    await anext(stream)
    del stream
    gc.collect()
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert log[-1] == "observed.close"
    assert source.closed == 1


def _deployment(adapter: ScriptedModel, bus: EventBus, clock: FakeClock) -> CircuitBreakerModel:
    store = MemoryStateStore()
    observed = ObservedModel(
        adapter, name="m", provider="p", deployment="d", price=None, bus=bus, clock=clock
    )
    limited = RateLimitedModel(observed, deployment="d", policy=RateLimitPolicy(), store=store, clock=clock)
    cooling = CooldownModel(
        limited, deployment="d", policy=CooldownPolicy(), store=store, clock=clock, bus=bus
    )
    return CircuitBreakerModel(
        cooling, deployment="d", policy=BreakerPolicy(), store=store, clock=clock, bus=bus
    )


def _frames_below(frame: object, stop: object) -> int:
    count = 0
    while frame is not None and frame is not stop:
        count += 1
        frame = frame.f_back  # type: ignore[attr-defined]
    return count


async def test_a_deployment_streams_through_one_frame_of_ours_per_delta_whatever_its_layers() -> None:
    bus, clock = EventBus(), FakeClock()
    sink = RecordingSink()
    bus.subscribe(sink)
    depths: list[int] = []
    consumer = sys._getframe()

    class _Adapter(ScriptedModel):
        async def stream(self, request: ChatRequest) -> AsyncGenerator[StreamDelta, None]:
            async for delta in super().stream(request):
                depths.append(_frames_below(sys._getframe(), consumer))
                yield delta

    deployment = _deployment(_Adapter(["one two three"], chunk_size=4), bus, clock)
    stream = deployment.stream(ChatRequest(messages=(Message.user("hi"),)))
    assert type(stream) is LayeredStream  # breaker, cooldown, rate limiter and observer share one stream
    texts = []
    async for delta in stream:  # a loop, not a comprehension: no frame of the test's own in between
        texts.append(delta.text)
    assert "".join(texts) == "one two three"
    # The adapter's generator runs right under the one ``LayeredStream.__anext__`` (the first read also
    # passes through its opening and read-ahead), not under a generator frame per layer.
    assert depths[-1] == 2
    assert [type(event) for event in sink.events][-1] is AttemptSucceeded


async def test_a_deployment_closed_early_reports_the_attempt_cancelled_and_closes_the_adapter() -> None:
    bus, clock = EventBus(), FakeClock()
    sink = RecordingSink()
    bus.subscribe(sink)
    deployment = _deployment(ScriptedModel(["one two three four"], chunk_size=4), bus, clock)
    stream = deployment.stream(ChatRequest(messages=(Message.user("hi"),)))
    assert (await anext(stream)).text
    await stream.aclose()
    failed = [event for event in sink.events if isinstance(event, AttemptFailed)]
    assert len(failed) == 1 and failed[0].cancelled
