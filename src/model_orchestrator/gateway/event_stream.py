"""Typed server-sent events (``event:`` and ``data:`` lines) over a façade stream, for the Messages and
Responses formats, with the same honest failure semantics as ``streaming`` (Chat Completions).

Owns when the HTTP status is committed: deltas are read until the first one carrying text or a tool-call
piece BEFORE the response starts, so a failure up to then (every fallback member failed, an unknown model,
a budget refusal) is still an ordinary HTTP error with its status; after that a failure can only be told
inside the stream (each format's ``error`` event). Closing is structural: the façade's stream (and the
upstream connection) is closed however serving ends. Not the events themselves (``messages_stream``,
``responses_stream``).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncGenerator, AsyncIterator, Mapping

from aiohttp import web

from model_orchestrator.core.events import RequestFinished
from model_orchestrator.core.response import StreamDelta
from model_orchestrator.gateway.convert import leaf_model
from model_orchestrator.gateway.sse_writer import SSE_HEADERS
from model_orchestrator.gateway.streaming import StreamPlan


def sse_event(name: str, data: Mapping[str, object]) -> bytes:
    """One event: ``event: <name>`` then its JSON ``data:`` line."""
    return f"event: {name}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


@contextlib.asynccontextmanager
async def held_stream(
    request: web.Request, deltas: AsyncIterator[StreamDelta], headers: Mapping[str, str]
) -> AsyncIterator[tuple[web.StreamResponse, list[StreamDelta], AsyncIterator[StreamDelta]]]:
    """The prepared 200 response, the deltas read up to the first content, and the rest of the stream.
    Raises (before anything is sent) when the stream fails before its first content."""
    async with contextlib.aclosing(_owned(deltas)) as pieces:
        held: list[StreamDelta] = []
        async for delta in pieces:
            held.append(delta)
            if delta.text or delta.tool_calls:
                break
        response = web.StreamResponse(status=200, headers={**SSE_HEADERS, **headers})
        await response.prepare(request)
        yield response, held, pieces


async def _owned(deltas: AsyncIterator[StreamDelta]) -> AsyncGenerator[StreamDelta, None]:
    # An async generator we own, so ``aclosing`` closes the façade's stream however serving ends.
    try:
        async for delta in deltas:
            yield delta
    finally:
        close = getattr(deltas, "aclose", None)
        if close is not None:
            await close()


async def every_delta(
    held: list[StreamDelta], rest: AsyncIterator[StreamDelta]
) -> AsyncGenerator[StreamDelta, None]:
    """The held deltas, then the rest of the stream."""
    for delta in held:
        yield delta
    async for delta in rest:
        yield delta


def remember(delta: StreamDelta, last: StreamDelta) -> StreamDelta:
    """What the end of the stream needs (finish reason, usage, explanation), updated by ``delta``."""
    if delta.finish_reason is None and delta.usage is None and delta.explanation is None:
        return last
    return StreamDelta(
        finish_reason=delta.finish_reason or last.finish_reason,
        usage=delta.usage or last.usage,
        explanation=delta.explanation or last.explanation,
    )


def stream_metadata(plan: StreamPlan, last: StreamDelta, event: RequestFinished | None) -> dict[str, object]:
    """The ``orchestrator`` field at the end of a stream: model used, cost of every attempt, explanation."""
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
