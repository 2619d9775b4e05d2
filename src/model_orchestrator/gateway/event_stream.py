"""Typed server-sent events (``event:`` and ``data:`` lines) over a façade stream, for the Messages and
Responses formats, with the same honest failure semantics as ``streaming`` (Chat Completions).

Owns when the HTTP status is committed: the stream is read until its first content (``core.stream_start``:
text or a tool-call piece) BEFORE the response starts, so a failure up to then (every fallback member
failed, an unknown model, a budget refusal) is still an ordinary HTTP error with its status; after that a
failure can only be told inside the stream (each format's ``error`` event). Closing is structural: the
façade's stream (and the upstream connection) is closed however serving ends. Not the events themselves
(``messages_stream``, ``responses_stream``), nor how they are written (``sse_writer``).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Mapping
from typing import Protocol

from aiohttp import web
from pydantic_core import to_json

from model_orchestrator.core.response import StreamDelta
from model_orchestrator.core.stream_start import StartedStream, start_stream
from model_orchestrator.core.tools import ToolCallDelta
from model_orchestrator.gateway.sse_writer import EventWriter
from model_orchestrator.orchestrator import StreamHandle


def sse_event(name: str, data: Mapping[str, object]) -> bytes:
    """One event: ``event: <name>`` then its JSON ``data:`` line."""
    return b"event: " + name.encode() + b"\ndata: " + to_json(data) + b"\n\n"


@contextlib.asynccontextmanager
async def held_stream(
    request: web.Request, stream: StreamHandle, headers: Mapping[str, str]
) -> AsyncIterator[tuple[EventWriter, StartedStream]]:
    """The writer of the 200 response (started by its first write) and the stream read up to its first
    content (its deltas from the first on). Raises, with nothing sent, when the stream fails before it."""
    async with stream:
        started = await start_stream(aiter(stream))
        async with started:
            yield EventWriter(request, headers), started


def remember(delta: StreamDelta, last: StreamDelta) -> StreamDelta:
    """What the end of the stream needs (finish reason, usage), updated by ``delta``."""
    if delta.finish_reason is None and delta.usage is None:
        return last
    return StreamDelta(
        finish_reason=delta.finish_reason or last.finish_reason, usage=delta.usage or last.usage
    )


class FormatEvents(Protocol):
    """A wire format's events for one delta's text and for one tool-call piece."""

    def text(self, text: str) -> list[bytes]: ...

    def tool(self, piece: ToolCallDelta) -> list[bytes]: ...


class DeltaEvents:
    """``EventWriter.relay``'s callback for a typed-event format: each delta's events queued on ``writer``,
    and ``last``, what the end of the stream needs (finish reason, usage)."""

    __slots__ = ("_events", "_queue", "last")

    def __init__(self, writer: EventWriter, events: FormatEvents) -> None:
        self._queue = writer.add
        self._events = events
        self.last = StreamDelta()

    def add(self, delta: StreamDelta) -> None:
        """Queue ``delta``'s events."""
        if delta.text:
            self._queue(*self._events.text(delta.text))
        for piece in delta.tool_calls:
            self._queue(*self._events.tool(piece))
        self.last = remember(delta, self.last)
