"""``stream: true`` on ``/v1/responses``: the Responses format's typed events over a façade stream.

Owns the order of events, each numbered by ``sequence_number``: ``response.created`` and
``response.in_progress`` (the response, no output yet); per output item ``response.output_item.added``,
then for a message item ``response.content_part.added``, ``response.output_text.delta`` pieces,
``response.output_text.done``, ``response.content_part.done``, and for a function call
``response.function_call_arguments.delta`` pieces and ``.done``; ``response.output_item.done`` with the whole
item; finally ``response.completed`` with the whole response (usage and, in its ``orchestrator`` field, the
model used, cost of every attempt and explanation). A failure after the first content ends the stream with
``response.failed`` (the response with ``status: failed`` and its ``error``); before it,
``event_stream.held_stream`` makes it an ordinary HTTP error.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field

from aiohttp import web

from model_orchestrator.core.tools import ToolCall, ToolCallDelta
from model_orchestrator.core.usage import Usage
from model_orchestrator.gateway.errors import from_exception
from model_orchestrator.gateway.event_stream import DeltaEvents, held_stream, sse_event
from model_orchestrator.gateway.responses_convert import call_item, response_object, text_item
from model_orchestrator.gateway.streaming import StreamPlan, stream_metadata
from model_orchestrator.orchestrator import StreamHandle
from model_orchestrator.orchestrator.access import without_hosts
from model_orchestrator.wire.responses import ResponsesRequest


@dataclass(slots=True)
class _Item:
    """One output item being streamed: a message (``call`` None) or a function call."""

    index: int
    id: str
    text: str = ""
    call: ToolCall | None = None

    def whole(self, status: str = "completed") -> dict[str, object]:
        return (
            call_item(self.call, status) if self.call is not None else text_item(self.id, self.text, status)
        )


@dataclass(slots=True)
class _Events:
    """The numbered events of one response, and the output items so far."""

    response_id: str
    sequence: int = 0
    items: list[_Item] = field(default_factory=list)
    calls: dict[int, _Item] = field(default_factory=dict)
    open: _Item | None = None

    def event(self, kind: str, **data: object) -> bytes:
        self.sequence += 1
        return sse_event(kind, {"type": kind, "sequence_number": self.sequence - 1, **data})

    def text(self, text: str) -> list[bytes]:
        events: list[bytes] = []
        item = self.open
        if item is None or item.call is not None:
            events += self.close()
            item = self._add(_Item(len(self.items), f"msg_{self.response_id}_{len(self.items)}"))
            events.append(
                self.event(
                    "response.output_item.added", output_index=item.index, item=item.whole("in_progress")
                )
            )
            part = {"type": "output_text", "text": "", "annotations": []}
            events.append(self._part("response.content_part.added", item, part))
        item.text += text
        events.append(self._part_event("response.output_text.delta", item, delta=text, logprobs=[]))
        return events

    def tool(self, piece: ToolCallDelta) -> list[bytes]:
        events: list[bytes] = []
        item = self.calls.get(piece.index)
        if item is None:
            events += self.close()
            call = ToolCall(piece.id or f"call_{piece.index}", piece.name or "", "")
            item = self._add(_Item(len(self.items), f"fc_{call.id}", call=call))
            self.calls[piece.index] = item
            events.append(
                self.event(
                    "response.output_item.added", output_index=item.index, item=item.whole("in_progress")
                )
            )
        if piece.arguments and item.call is not None:
            item.call = ToolCall(item.call.id, item.call.name, item.call.arguments + piece.arguments)
            events.append(
                self.event(
                    "response.function_call_arguments.delta",
                    item_id=item.id,
                    output_index=item.index,
                    delta=piece.arguments,
                )
            )
        return events

    def close(self) -> list[bytes]:
        item, self.open = self.open, None
        if item is None:
            return []
        if item.call is not None:
            done = [
                self.event(
                    "response.function_call_arguments.done",
                    item_id=item.id,
                    output_index=item.index,
                    name=item.call.name,
                    arguments=item.call.arguments or "{}",
                )
            ]
            if not item.call.arguments:
                item.call = ToolCall(item.call.id, item.call.name, "{}")
        else:
            part = {"type": "output_text", "text": item.text, "annotations": [], "logprobs": []}
            done = [
                self._part_event("response.output_text.done", item, text=item.text, logprobs=[]),
                self._part("response.content_part.done", item, part),
            ]
        return [*done, self.event("response.output_item.done", output_index=item.index, item=item.whole())]

    def output(self) -> list[dict[str, object]]:
        return [item.whole() for item in self.items]

    def _add(self, item: _Item) -> _Item:
        self.items.append(item)
        self.open = item
        return item

    def _added(self, item: _Item) -> bytes:
        return self.event(
            "response.output_item.added", output_index=item.index, item=item.whole("in_progress")
        )

    def _part(self, name: str, item: _Item, part: Mapping[str, object]) -> bytes:
        return self._part_event(name, item, part=part)

    def _part_event(self, name: str, item: _Item, **data: object) -> bytes:
        return self.event(name, item_id=item.id, output_index=item.index, content_index=0, **data)


async def serve_response_stream(
    request: web.Request, stream: StreamHandle, body: ResponsesRequest, plan: StreamPlan
) -> web.StreamResponse:
    """Serve the façade's ``stream`` as the Responses format's events; raises, before anything is sent,
    when it fails before its first content."""
    response_id, created = f"resp_{plan.request_id}", time.time()
    async with held_stream(request, stream, plan.headers) as (writer, deltas):
        events = _Events(response_id)
        start = response_object(body, response_id=response_id, created_at=created, status="in_progress")
        writer.add(
            events.event("response.created", response=start),
            events.event("response.in_progress", response=start),
        )
        relayed = DeltaEvents(writer, events)
        try:
            await writer.relay(deltas, relayed.add)
        except (ConnectionResetError, web.HTTPException):
            raise
        except Exception as exc:  # noqa: BLE001 - whatever broke the stream is reported in it, then it ends
            error = from_exception(exc)
            message = error.message if plan.operator else without_hosts(error.message)
            failed = response_object(
                body, response_id=response_id, created_at=created, status="failed", output=events.output()
            )
            failed["error"] = {"code": error.code or error.type, "message": message}
            await writer.end(events.event("response.failed", response=failed))
            return writer.response
        closing, last = events.close(), relayed.last
        whole = response_object(
            body,
            response_id=response_id,
            created_at=created,
            output=events.output(),
            usage=last.usage or Usage(),
            finish=last.finish_reason,
        )
        whole["orchestrator"] = stream_metadata(plan, stream.result())
        name = "response.completed" if whole["status"] == "completed" else "response.incomplete"
        await writer.end(*closing, events.event(name, response=whole))
        return writer.response
