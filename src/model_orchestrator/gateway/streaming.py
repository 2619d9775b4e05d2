"""Server-sent events for ``stream: true``, with honest failure semantics.

Owns the order of events and when the HTTP status is committed. Deltas are read from the façade's stream
until its first content (``core.stream_start``: text or a tool-call piece) BEFORE the response starts: a
failure up to then (every fallback member failed, an unknown model, a budget refusal) is still an ordinary
HTTP error with its status code, and a fallback strategy has already moved on to its next member without
the client seeing anything. Once content was sent the status is 200 and cannot change, so a later failure
ends the stream with one error event, ``data: {"error": {...}}``, and no ``[DONE]``: clients' SDKs raise
on it, the answer is never silently cut.

Tool calls stream as the Chat Completions API streams them: ``delta.tool_calls`` pieces, the first of
each call with its ``index``, ``id``, ``type`` and ``function.name``, later ones with more
``function.arguments``.
A successful stream ends: text and tool-call chunks, a chunk with ``finish_reason`` and the
``orchestrator`` metadata (model used, cost of every attempt, explanation: the stream handle's result),
the usage chunk (``stream_options.include_usage``), ``data: [DONE]``. How the bytes are written
(together when ready) is ``sse_writer``'s; how a chunk is encoded ``convert.ChunkEncoder``'s.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass

from aiohttp import web

from model_orchestrator.core.response import StreamDelta
from model_orchestrator.core.result import OrchestrationResult
from model_orchestrator.core.stream_start import start_stream
from model_orchestrator.gateway.chat_tools import chunk_tool_calls
from model_orchestrator.gateway.convert import ChunkEncoder, wire_finish, wire_usage
from model_orchestrator.gateway.errors import from_exception
from model_orchestrator.gateway.event_stream import remember
from model_orchestrator.gateway.sse_writer import EventWriter
from model_orchestrator.orchestrator import StreamHandle
from model_orchestrator.orchestrator.access import without_hosts, without_hosts_in

DONE = b"data: [DONE]\n\n"


@dataclass(frozen=True, slots=True)
class StreamPlan:
    """One stream to serve: ids, the requested model name, whether to add the usage chunk, headers."""

    request_id: str
    requested: str
    include_usage: bool
    headers: Mapping[str, str]
    operator: bool = True  # False: a key holder, whose error texts name no internal host

    @property
    def completion_id(self) -> str:
        return f"chatcmpl-{self.request_id}"


async def serve_stream(request: web.Request, stream: StreamHandle, plan: StreamPlan) -> web.StreamResponse:
    """Serve the façade's ``stream`` as SSE; raises, before anything is sent, when it fails before its
    first content. The stream is closed however serving ends."""
    async with stream:
        started = await start_stream(aiter(stream))
        async with started:
            writer = EventWriter(request, plan.headers)
            await _relay(writer, started, stream, plan)
            return writer.response


async def _relay(
    writer: EventWriter, deltas: AsyncIterator[StreamDelta], stream: StreamHandle, plan: StreamPlan
) -> None:
    encode = ChunkEncoder(plan.completion_id, plan.requested, int(time.time()))
    writer.add(encode.role())
    chunks = _Chunks(writer, encode)
    try:
        await writer.relay(deltas, chunks.add)
    except (ConnectionResetError, web.HTTPException):
        raise
    except Exception as exc:  # noqa: BLE001 - whatever broke the stream is reported in it, then the stream ends
        await writer.end(b"data: " + _error_json(exc, plan.operator) + b"\n\n")
        return
    last = chunks.last
    final = [encode.finish(wire_finish(last.finish_reason), stream_metadata(plan, stream.result()))]
    if plan.include_usage:
        final.append(encode.usage(wire_usage(last.usage)))
    await writer.end(*final, DONE)


class _Chunks:
    """Each delta's chunks, queued on the writer; keeps what the end needs (finish reason, usage)."""

    __slots__ = ("_encode", "_queue", "last")

    def __init__(self, writer: EventWriter, encode: ChunkEncoder) -> None:
        self._queue = writer.add
        self._encode = encode
        self.last = StreamDelta()

    def add(self, delta: StreamDelta) -> None:
        if delta.text:
            self._queue(self._encode.text(delta.text))
        if delta.tool_calls:
            self._queue(self._encode.tool_calls(chunk_tool_calls(delta.tool_calls)))
        if delta.finish_reason is not None or delta.usage is not None:
            self.last = remember(delta, self.last)


def stream_metadata(plan: StreamPlan, result: OrchestrationResult) -> object:
    """The ``orchestrator`` field at the end of a stream in any format: model used, cost of every attempt,
    explanation (from the stream's result; no internal host for a key holder)."""
    meta = result.metadata
    metadata = {
        "request_id": plan.request_id,
        "model_used": result.model_used,
        "strategy": result.strategy,
        "cost": result.cost,
        "latency": round(result.latency, 6),
        "confidence": result.confidence,
        "attempts": meta.get("attempts"),
        "explanation": meta.get("explanation"),
    }
    return metadata if plan.operator else without_hosts_in(metadata)


def _error_json(exc: BaseException, operator: bool) -> bytes:
    error = from_exception(exc)
    if not operator:
        error.message = without_hosts(error.message)
    return json.dumps(error.body()).encode()
