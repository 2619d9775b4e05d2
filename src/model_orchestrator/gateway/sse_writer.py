"""How a streamed answer reaches the socket: as few writes as the stream allows, in the stream's order.

Owns ``EventWriter``, which every streamed route (Chat Completions, Messages, Responses) writes its
encoded events through. Three rules, each a syscall saved per stream (the loopback ``send`` is charged to
the sender and was the largest single cost of the streamed gateway: docs/decisions.md, issue 13):

- the status line and headers leave with the first events, not in a write of their own;
- events are buffered while the façade's stream has more ready, and written together just before the
  gateway would wait for the next delta (``relay``), so a burst of deltas read from one upstream packet is
  one write, and a slow upstream still sees each delta forwarded as soon as it arrives;
- the last events and the end of the chunked body are one write (``end``).

Not what the events say (``streaming``, ``messages_stream``, ``responses_stream``), nor when the status is
committed (the routes hold the stream until its first content before making a writer).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Generator, Mapping
from typing import Any, Generic, TypeVar

from aiohttp import web

SSE_HEADERS = {"content-type": "text/event-stream", "cache-control": "no-cache", "x-accel-buffering": "no"}
T = TypeVar("T")


class _EventResponse(web.StreamResponse):
    # aiohttp's own ``web.Response`` sets this class attribute to keep its headers until the body is
    # written; a stream does the same, so its headers share the first write.
    _send_headers_immediately = False


class EventWriter:
    """A 200 ``text/event-stream`` response for ``request`` with ``headers``, started by the first write."""

    def __init__(self, request: web.Request, headers: Mapping[str, str]) -> None:
        self.response: web.StreamResponse = _EventResponse(status=200, headers={**SSE_HEADERS, **headers})
        self._request = request
        self._pending: list[bytes] = []
        self.writes = 0  # socket writes made so far (the end's included)

    def add(self, *events: bytes) -> None:
        """Queue ``events``; they are written at the next ``flush``, wait in ``relay``, or ``end``."""
        self._pending.extend(events)

    async def flush(self) -> None:
        """Write what is queued now (and the headers, the first time)."""
        if not self._pending:
            return
        data = b"".join(self._pending)
        self._pending.clear()
        await self._prepared()
        await self.response.write(data)
        self.writes += 1

    async def end(self, *events: bytes) -> None:
        """Write what is queued, ``events`` and the end of the body, in one write."""
        self._pending.extend(events)
        data = b"".join(self._pending)
        self._pending.clear()
        await self._prepared()
        await self.response.write_eof(data)
        self.writes += 1

    def relay(self, items: AsyncIterator[T], each: Callable[[T], None]) -> Awaitable[None]:
        """Read ``items`` to their end, calling ``each`` on every one (it queues that item's events); what
        is queued is written whenever the next item is not ready yet (never while items keep coming
        without a wait). One driver for the whole stream: no awaitable of its own per item."""
        return _Relay(items, each, self)

    async def _prepared(self) -> None:
        if not self.response.prepared:
            await self.response.prepare(self._request)


class _Relay(Generic[T]):
    """``EventWriter.relay``: drives each ``items.__anext__()`` itself; if one would suspend (its item is
    not there yet), the writer's queue is written before the task waits. Each step is driven exactly as
    ``await step`` would drive it."""

    __slots__ = ("_each", "_items", "_writer")

    def __init__(self, items: AsyncIterator[T], each: Callable[[T], None], writer: EventWriter) -> None:
        self._items = items
        self._each = each
        self._writer = writer

    def __await__(self) -> Generator[Any, Any, None]:
        following, each, writer = self._items.__anext__, self._each, self._writer
        while True:
            try:
                step = following().__await__()
                waiting = step.send(None)
            except StopIteration as ready:
                item: T = ready.value
            except StopAsyncIteration:
                return
            else:
                try:
                    yield from writer.flush().__await__()
                except BaseException:
                    # The stream is paused at its own await: cancel it there, so it unwinds (and can be
                    # closed) before the write's failure reaches the route.
                    with contextlib.suppress(BaseException):
                        step.throw(asyncio.CancelledError())
                    raise
                try:
                    item = yield from _resume(step, waiting)
                except StopAsyncIteration:
                    return
            each(item)


def _resume(step: Generator[Any, Any, T], waiting: Any) -> Generator[Any, Any, T]:
    """``yield from step`` for a ``step`` that already yielded ``waiting``."""
    while True:
        try:
            sent = yield waiting
        except GeneratorExit:
            step.close()
            raise
        except BaseException as exc:  # noqa: BLE001 - handed to the stream, as ``yield from`` would
            try:
                waiting = step.throw(exc)
            except StopIteration as done:
                thrown: T = done.value
                return thrown
        else:
            try:
                waiting = step.send(sent)
            except StopIteration as done:
                value: T = done.value
                return value
