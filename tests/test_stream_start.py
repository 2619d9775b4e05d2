"""``core.stream_start``: the one first-content helper (hold until text or a tool call, then pass through)."""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator

import pytest

from model_orchestrator.core.errors import ServerError
from model_orchestrator.core.response import StreamDelta
from model_orchestrator.core.stream_start import DeferredStream, closing, has_content, start_stream
from model_orchestrator.core.tools import ToolCallDelta


class _Source:
    """A stream of scripted deltas that may fail after them, recording how far it got and its closing."""

    def __init__(self, *deltas: StreamDelta, fail: bool = False) -> None:
        self.deltas = deltas
        self.fail = fail
        self.read = 0
        self.closed = False

    async def stream(self) -> AsyncGenerator[StreamDelta, None]:
        try:
            for delta in self.deltas:
                self.read += 1
                yield delta
            if self.fail:
                raise ServerError("upstream broke", status_code=500, retryable=True)
        finally:
            self.closed = True


def test_content_is_visible_text_or_a_tool_call_piece() -> None:
    assert not has_content(StreamDelta(text=" \n"))
    assert has_content(StreamDelta(text="a"))
    assert has_content(StreamDelta(tool_calls=(ToolCallDelta(index=0, name="f"),)))


async def test_reads_up_to_the_first_content_only_then_passes_the_rest_through() -> None:
    source = _Source(
        StreamDelta(text=""), StreamDelta(text=" "), StreamDelta(text="Hi"), StreamDelta(text="!")
    )
    started = await start_stream(source.stream())
    assert started.has_content
    assert [d.text for d in started.held] == ["", " ", "Hi"]
    assert source.read == 3  # nothing past the first content was read
    async with started:
        assert [d.text async for d in started] == ["", " ", "Hi", "!"]
    assert source.closed


async def test_a_failure_before_content_is_raised_and_closes_the_stream() -> None:
    source = _Source(StreamDelta(text=""), fail=True)
    with pytest.raises(ServerError):
        await start_stream(source.stream())
    assert source.closed


async def test_a_failure_after_content_is_the_consumers() -> None:
    source = _Source(StreamDelta(text="Hi"), fail=True)
    started = await start_stream(source.stream())
    seen: list[str] = []
    with pytest.raises(ServerError):
        async with started:
            async for delta in started:
                seen.append(delta.text)
    assert seen == ["Hi"]
    assert source.closed


async def test_a_stream_without_content_ends_with_everything_held() -> None:
    source = _Source(StreamDelta(text=""), StreamDelta(finish_reason="stop"))
    async with await start_stream(source.stream()) as started:
        assert not started.has_content
        assert [d.finish_reason async for d in started] == [None, "stop"]


async def test_leaving_early_closes_the_inner_stream() -> None:
    source = _Source(StreamDelta(text="a"), StreamDelta(text="b"), StreamDelta(text="c"))
    async with await start_stream(source.stream()) as started:
        async for _ in started:
            break
    assert source.closed
    assert source.read == 1
    assert [d async for d in started] == []  # a closed stream yields nothing more


async def test_a_deferred_stream_opens_at_its_first_read_and_closes_what_it_opened() -> None:
    source = _Source(StreamDelta(text="a"), StreamDelta(text="b"))
    opened: list[str] = []

    async def open_stream() -> AsyncIterator[StreamDelta]:
        opened.append("opened")
        return source.stream()

    deferred = DeferredStream(open_stream)
    assert opened == []  # nothing runs until the first read
    assert (await anext(deferred)).text == "a"
    assert opened == ["opened"]
    await deferred.aclose()
    assert source.closed
    assert [d async for d in deferred] == [] and opened == ["opened"]  # closed: not opened again
    assert await DeferredStream(open_stream).aclose() is None  # never started: nothing to close


async def test_a_deferred_streams_opening_failure_is_raised_at_the_first_read() -> None:
    async def refuse() -> AsyncIterator[StreamDelta]:
        raise ServerError("circuit open", status_code=503, retryable=False)

    deferred = DeferredStream(refuse)
    with pytest.raises(ServerError):
        async for _ in deferred:
            pass
    assert [d async for d in deferred] == []  # over, as a failed generator is; not opened again


async def test_a_started_stream_of_started_layers_reads_the_source_directly_and_closes_it() -> None:
    source = _Source(
        StreamDelta(text=""), StreamDelta(text="Hi"), StreamDelta(text="!"), StreamDelta(text="?")
    )
    generator = source.stream()

    async def open_inner() -> AsyncIterator[StreamDelta]:
        return await start_stream(generator)  # a retry's opening: the source read up to its first text

    started = await start_stream(DeferredStream(open_inner))
    assert [d.text for d in started.held] == ["", "Hi"]
    assert started._rest is generator  # the opened layers only handed reads on: they are passed over
    async with started:
        assert [(await anext(started)).text for _ in range(3)] == ["", "Hi", "!"]
    assert source.closed and source.read == 3  # left before "?": closing the started stream closed the source


async def test_closing_closes_the_stream_however_the_block_is_left_and_passes_errors_on() -> None:
    source = _Source(StreamDelta(text="a"), StreamDelta(text="b"))
    async with closing(source.stream()) as deltas:
        assert (await anext(deltas)).text == "a"
    assert source.closed and source.read == 1

    failing = _Source(StreamDelta(text="a"))
    with pytest.raises(ServerError, match="caller broke"):
        async with closing(failing.stream()) as deltas:
            await anext(deltas)
            raise ServerError("caller broke", status_code=500, retryable=True)
    assert failing.closed

    ended = _Source(StreamDelta(text="a"))
    with pytest.raises(StopAsyncIteration):
        async with closing(ended.stream()) as deltas:
            while True:
                await anext(deltas)
    assert ended.closed
