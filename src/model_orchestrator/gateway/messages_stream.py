"""``stream: true`` on ``/v1/messages``: the Messages format's event sequence over a façade stream.

Owns the order of events: ``message_start`` (an empty assistant message), ``ping``, then per content block
``content_block_start`` / ``content_block_delta`` (``text_delta`` for text, ``input_json_delta`` for a tool
call's arguments) / ``content_block_stop`` (blocks are numbered in the order they start, as clients' SDKs
require), ``message_delta`` with ``stop_reason`` and the usage known at the end (plus the ``orchestrator``
metadata: model used, cost of every attempt, explanation), ``message_stop``. A failure after the first
content ends the stream with one ``error`` event and no ``message_stop`` (SDKs raise on it); before it,
``event_stream.held_stream`` makes it an ordinary HTTP error.
Reference: the streaming page linked from ``wire.messages``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from aiohttp import web

from model_orchestrator.core.tools import ToolCallDelta
from model_orchestrator.core.usage import Usage
from model_orchestrator.gateway.event_stream import DeltaEvents, held_stream, sse_event
from model_orchestrator.gateway.messages_convert import stop_reason, wire_usage
from model_orchestrator.gateway.messages_errors import error_event
from model_orchestrator.gateway.streaming import StreamPlan, stream_metadata
from model_orchestrator.orchestrator import StreamHandle


@dataclass(slots=True)
class _Blocks:
    """Content blocks opened so far: the open one, and which block each streamed tool call writes to."""

    count: int = 0
    text_open: int | None = None
    tools: dict[int, int] = field(default_factory=dict)
    open: int | None = None

    def text(self, text: str) -> list[bytes]:
        events: list[bytes] = []
        if self.text_open is None or self.open != self.text_open:
            events += self._start({"type": "text", "text": ""})
            self.text_open = self.open
        delta = {"type": "text_delta", "text": text}
        events.append(
            sse_event(
                "content_block_delta", {"type": "content_block_delta", "index": self.open, "delta": delta}
            )
        )
        return events

    def tool(self, piece: ToolCallDelta) -> list[bytes]:
        events: list[bytes] = []
        if piece.index not in self.tools:
            block = {
                "type": "tool_use",
                "id": piece.id or f"toolu_{piece.index}",
                "name": piece.name or "",
                "input": {},
            }
            events += self._start(block)
            self.tools[piece.index] = self.count - 1
        if piece.arguments:
            delta = {"type": "input_json_delta", "partial_json": piece.arguments}
            index = self.tools[piece.index]
            events.append(
                sse_event(
                    "content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta}
                )
            )
        return events

    def close(self) -> list[bytes]:
        if self.open is None:
            return []
        event = sse_event("content_block_stop", {"type": "content_block_stop", "index": self.open})
        self.open = None
        return [event]

    def _start(self, block: Mapping[str, object]) -> list[bytes]:
        events = self.close()
        self.open = self.count
        self.count += 1
        events.append(
            sse_event(
                "content_block_start",
                {"type": "content_block_start", "index": self.open, "content_block": block},
            )
        )
        return events


async def serve_message_stream(
    request: web.Request, stream: StreamHandle, plan: StreamPlan
) -> web.StreamResponse:
    """Serve the façade's ``stream`` as the Messages format's events; raises, before anything is sent, when
    it fails before its first content."""
    async with held_stream(request, stream, plan.headers) as (writer, deltas):
        message: dict[str, object] = {
            "id": f"msg_{plan.request_id}",
            "type": "message",
            "role": "assistant",
            "model": plan.requested,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": wire_usage(Usage()),
        }
        writer.add(
            sse_event("message_start", {"type": "message_start", "message": message}),
            sse_event("ping", {"type": "ping"}),
        )
        blocks = _Blocks()
        relayed = DeltaEvents(writer, blocks)
        try:
            await writer.relay(deltas, relayed.add)
        except (ConnectionResetError, web.HTTPException):
            raise
        except Exception as exc:  # noqa: BLE001 - whatever broke the stream is reported in it, then it ends
            await writer.end(error_event(exc, operator=plan.operator))
            return writer.response
        last = relayed.last
        closing = {
            "type": "message_delta",
            "delta": {"stop_reason": stop_reason(last.finish_reason), "stop_sequence": None},
            "usage": wire_usage(last.usage or Usage()),
            "orchestrator": stream_metadata(plan, stream.result()),
        }
        await writer.end(
            *blocks.close(),
            sse_event("message_delta", closing),
            sse_event("message_stop", {"type": "message_stop"}),
        )
        return writer.response
