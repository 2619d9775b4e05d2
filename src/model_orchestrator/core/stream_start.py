"""The one first-content helper: hold a stream until its first text or tool call, then pass the rest through.

Owns the rule for when a stream has *started* (a delta with visible text or a tool-call piece,
``has_content``) and ``start_stream``, which reads a stream up to that delta. A failure before it is
raised by ``start_stream`` itself, with nothing passed on yet, so the caller can still retry, fail over or
answer with an HTTP error; after it the caller has output, and a failure is the stream's own. It does not
decide what to do with a failure or with a stream that ends without content (retry, the breaker, the
strategies and the gateway each decide that).

Closing is structural: ``start_stream`` closes the inner stream when it fails, and the ``StartedStream``
it returns is an async context manager that closes the inner stream however the ``async with`` ends
(finished, failed, cancelled, abandoned by the consumer)::

    async with await start_stream(model.stream(request)) as started:
        if not started.has_content: ...        # ended without text or tool call; ``held`` has it all
        async for delta in started:            # the held deltas, then the rest
            ...

Iterating a ``StartedStream`` costs one method call per delta, not an async-generator frame. A wrapper
that holds nothing back closes its inner stream with ``async with closing(inner.stream(request))``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from types import TracebackType

from model_orchestrator.core.response import StreamDelta


def has_content(delta: StreamDelta) -> bool:
    """True for a streamed piece that makes the answer not empty (visible text or a tool-call piece)."""
    return bool(delta.tool_calls or delta.text.strip())


async def close_stream(deltas: AsyncIterator[StreamDelta]) -> None:
    """Close ``deltas`` if it can be closed (async generators close their upstream connection)."""
    close = getattr(deltas, "aclose", None)
    if close is not None:
        await close()


def closing(deltas: AsyncIterator[StreamDelta]) -> AbstractAsyncContextManager[AsyncIterator[StreamDelta]]:
    """A context whose value is ``deltas``; on leaving (finished, failed, cancelled, abandoned) it closes
    ``deltas``. For a wrapper that passes every delta on as it comes (``ChatModel.stream`` is typed
    ``AsyncIterator``, which ``contextlib.aclosing`` does not accept)."""
    return _Closing(deltas)


class _Closing:
    """``closing``'s context manager: a class, as every streamed attempt enters several of them and a
    ``contextlib.asynccontextmanager`` costs about three times as much to enter and leave."""

    __slots__ = ("_deltas",)

    def __init__(self, deltas: AsyncIterator[StreamDelta]) -> None:
        self._deltas = deltas

    async def __aenter__(self) -> AsyncIterator[StreamDelta]:
        return self._deltas

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        await close_stream(self._deltas)


class StartedStream:
    """A stream read up to its first content: ``held`` (the deltas read so far, the last one the first
    content when ``has_content``) and the unread rest. Iterates the held deltas, then the rest; closes the
    inner stream on ``aclose`` or when its ``async with`` ends."""

    __slots__ = ("_closed", "_next", "_rest", "has_content", "held")

    def __init__(
        self, held: list[StreamDelta], rest: AsyncIterator[StreamDelta], *, has_content: bool
    ) -> None:
        self.held = held
        self.has_content = has_content
        self._rest = rest
        self._next = 0
        self._closed = False

    def __aiter__(self) -> StartedStream:
        return self

    def __anext__(self) -> Awaitable[StreamDelta]:
        # A plain method handing on the inner stream's own awaitable: no coroutine of ours per delta.
        position = self._next
        if position < len(self.held):
            self._next = position + 1
            return _ready(self.held[position])
        if not self.has_content or self._closed:
            raise StopAsyncIteration  # the inner stream already ended (or was closed)
        return self._rest.__anext__()

    async def aclose(self) -> None:
        """Close the inner stream (once)."""
        if not self._closed:
            self._closed = True
            await close_stream(self._rest)

    async def __aenter__(self) -> StartedStream:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        await self.aclose()


class DeferredStream:
    """A stream whose start is awaited at its first read: ``open()`` (a check, a retry loop) gives the
    stream to pass on, and every later read is handed straight to it (no async-generator frame of ours per
    delta). ``aclose`` closes the opened stream; before the first read there is nothing to close."""

    __slots__ = ("_closed", "_open", "_stream")

    def __init__(self, open_stream: Callable[[], Awaitable[AsyncIterator[StreamDelta]]]) -> None:
        self._open = open_stream
        self._stream: AsyncIterator[StreamDelta] | None = None
        self._closed = False

    def __aiter__(self) -> DeferredStream:
        return self

    def __anext__(self) -> Awaitable[StreamDelta]:
        stream = self._stream
        if stream is not None:
            return stream.__anext__()
        if self._closed:
            raise StopAsyncIteration
        return self._first()

    async def _first(self) -> StreamDelta:
        self._closed = True  # opened once: after a failed opening the stream is over, as a generator's is
        self._stream = await self._open()
        return await self._stream.__anext__()

    async def aclose(self) -> None:
        """Close the opened stream, if the stream was started; a closed stream yields nothing more."""
        stream, self._stream, self._closed = self._stream, None, True
        if stream is not None:
            await close_stream(stream)


async def _ready(delta: StreamDelta) -> StreamDelta:
    return delta


async def start_stream(deltas: AsyncIterator[StreamDelta]) -> StartedStream:
    """Read ``deltas`` up to and including the first delta with content (or to its end).

    A failure (or cancellation) before that closes ``deltas`` and is raised, with nothing passed on. The
    caller owns the returned ``StartedStream`` and must close it (``async with``).
    """
    held: list[StreamDelta] = []
    try:
        async for delta in deltas:
            held.append(delta)
            if has_content(delta):
                return StartedStream(held, _source(deltas), has_content=True)
    except BaseException:
        await close_stream(deltas)
        raise
    return StartedStream(held, deltas, has_content=False)


def _source(deltas: AsyncIterator[StreamDelta]) -> AsyncIterator[StreamDelta]:
    """The stream that gives ``deltas``' next items once it has started: past the ``DeferredStream``s
    that opened and the ``StartedStream``s that gave everything they held, which only hand each read on.
    Reading (and closing) it directly spares a method call per delta and layer."""
    while True:
        if type(deltas) is DeferredStream and deltas._stream is not None:
            deltas = deltas._stream
        elif (
            type(deltas) is StartedStream
            and deltas.has_content
            and not deltas._closed
            and deltas._next == len(deltas.held)
        ):
            deltas = deltas._rest
        else:
            return deltas
