"""Server-sent events for ``stream: true``, with honest failure semantics.

Owns the order of events and when the HTTP status is committed. Deltas are read from the façade until the
first one carrying text or a tool-call piece BEFORE the response starts: a failure up to then (every
fallback member failed, an unknown model, a budget refusal) is still an ordinary HTTP error with its
status code, and a fallback strategy has already moved on to its next member without the client seeing
anything. Once content was sent the status is 200 and cannot change, so a later failure ends the stream
with one error event, ``data: {"error": {...}}``, and no ``[DONE]``: clients' SDKs raise on it, the
answer is never silently cut.

Tool calls stream as the Chat Completions API streams them: ``delta.tool_calls`` pieces, the first of
each call with its ``index``, ``id``, ``type`` and ``function.name``, later ones with more
``function.arguments``.
A successful stream ends: text and tool-call chunks, a chunk with ``finish_reason`` and the
``orchestrator`` metadata (model used, cost of every attempt, explanation), the usage chunk
(``stream_options.include_usage``), ``data: [DONE]``.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from dataclasses import dataclass

from aiohttp import web

from model_orchestrator.core.events import Event, RequestFinished
from model_orchestrator.core.response import StreamDelta
from model_orchestrator.gateway.chat_tools import chunk_tool_calls
from model_orchestrator.gateway.convert import ChunkEncoder, leaf_model, wire_finish, wire_usage
from model_orchestrator.gateway.errors import from_exception
from model_orchestrator.gateway.sse_writer import EventWriter
from model_orchestrator.orchestrator.access import without_hosts, without_hosts_in

DONE = b"data: [DONE]\n\n"


class FinishedRequests:
    """An event sink keeping the ``RequestFinished`` of the streams being served (their cost and
    explanation are known only once the façade's stream has ended)."""

    def __init__(self) -> None:
        self._watched: dict[str, RequestFinished | None] = {}

    def watch(self, request_id: str) -> None:
        self._watched[request_id] = None

    def get(self, request_id: str) -> RequestFinished | None:
        return self._watched.get(request_id)

    def pop(self, request_id: str) -> RequestFinished | None:
        return self._watched.pop(request_id, None)

    def handle(self, event: Event) -> None:
        if isinstance(event, RequestFinished) and event.request_id in self._watched:
            self._watched[event.request_id] = event


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


async def serve_stream(
    request: web.Request, deltas: AsyncIterator[StreamDelta], plan: StreamPlan, finished: FinishedRequests
) -> web.StreamResponse:
    """Serve ``deltas`` as SSE; raises, before anything is sent, when they fail before their first content.
    ``finished`` must be watching the request (its cost and explanation go into the last chunk)."""
    async with contextlib.aclosing(_aiter(deltas)) as pieces:
        held = await _until_first_text(pieces)
        writer = EventWriter(request, plan.headers)
        await _relay(writer, pieces, held, plan, finished)
        return writer.response


async def _aiter(deltas: AsyncIterator[StreamDelta]) -> AsyncGenerator[StreamDelta, None]:
    # An async generator we own, so ``aclosing`` closes the façade's stream (and the upstream connection)
    # however serving ends.
    try:
        async for delta in deltas:
            yield delta
    finally:
        close = getattr(deltas, "aclose", None)
        if close is not None:
            await close()


async def _until_first_text(pieces: AsyncIterator[StreamDelta]) -> list[StreamDelta]:
    held: list[StreamDelta] = []
    async for delta in pieces:
        held.append(delta)
        if delta.text or delta.tool_calls:
            break
    return held


async def _relay(
    writer: EventWriter,
    pieces: AsyncIterator[StreamDelta],
    held: list[StreamDelta],
    plan: StreamPlan,
    finished: FinishedRequests,
) -> None:
    encode = ChunkEncoder(plan.completion_id, plan.requested, int(time.time()))
    writer.add(encode.role())
    last = StreamDelta()
    try:
        for delta in held:
            last = _add_delta(writer, encode, delta, last)
        while True:
            try:
                delta = await writer.next(pieces)
            except StopAsyncIteration:
                break
            last = _add_delta(writer, encode, delta, last)
    except (ConnectionResetError, web.HTTPException):
        raise
    except Exception as exc:  # noqa: BLE001 - whatever broke the stream is reported in it, then the stream ends
        await writer.end(b"data: " + _error_json(exc, plan.operator) + b"\n\n")
        return
    metadata = _stream_metadata(plan, last, finished.get(plan.request_id))
    final = [
        encode.finish(
            wire_finish(last.finish_reason), metadata if plan.operator else without_hosts_in(metadata)
        )
    ]
    if plan.include_usage:
        final.append(encode.usage(wire_usage(last.usage)))
    await writer.end(*final, DONE)


def _add_delta(
    writer: EventWriter, encode: ChunkEncoder, delta: StreamDelta, last: StreamDelta
) -> StreamDelta:
    if delta.text:
        writer.add(encode.text(delta.text))
    if delta.tool_calls:
        writer.add(encode.tool_calls(chunk_tool_calls(delta.tool_calls)))
    if delta.finish_reason is None and delta.usage is None and delta.explanation is None:
        return last
    return StreamDelta(
        finish_reason=delta.finish_reason or last.finish_reason,
        usage=delta.usage or last.usage,
        explanation=delta.explanation or last.explanation,
    )


def _error_json(exc: BaseException, operator: bool) -> bytes:
    error = from_exception(exc)
    if not operator:
        error.message = without_hosts(error.message)
    return json.dumps(error.body()).encode()


def _stream_metadata(plan: StreamPlan, last: StreamDelta, event: RequestFinished | None) -> dict[str, object]:
    explanation = last.explanation if last.explanation is not None else (event.explanation if event else None)
    return {
        "request_id": plan.request_id,
        "model_used": leaf_model(explanation, plan.requested),
        "strategy": event.strategy if event else None,
        "cost": event.cost if event else None,
        "latency": round(event.latency, 6) if event else None,
        "confidence": explanation.confidence if explanation else None,
        "attempts": event.attempts if event else None,
        "explanation": explanation.to_dict() if explanation else None,
    }
