"""One request's answer on ``FakeUpstream``: a scripted reply (whole or streamed, with its timing) or a
fault (an HTTP error with the vendor's body and rate-limit headers, a reset, a hang, a truncated stream,
malformed JSON). Rendering the bodies is the wire format's job; serving and recording is ``server``'s.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, NoReturn

from aiohttp import web

from model_orchestrator.testing.fake_upstream.script import Fault, Reply

if TYPE_CHECKING:
    from model_orchestrator.testing.fake_upstream.server import WireFormat

_SSE_HEADERS = {"content-type": "text/event-stream", "cache-control": "no-cache"}
_MALFORMED_BODY = b'{"id": "broken", "choices": [{"index": 0, "message": {"content": "'
_MALFORMED_FRAME = b'data: {"id": "broken", "choices": [{"delta": \n\n'


class Dropped(Exception):
    """The fake closed the connection on purpose (reset, hang end, truncation)."""


class Turn:
    """Serving one request: a reply or a fault, rendered by the request's wire format."""

    def __init__(self, request: web.Request, wire: WireFormat, body: dict[str, Any], fallback: Reply) -> None:
        self.request = request
        self.wire = wire
        self.body = body
        self.fallback = fallback
        self.stream = wire.is_stream(request.path, request.query, body)
        self.prompt_tokens = wire.prompt_tokens(body)

    def model(self, reply: Reply) -> str:
        return reply.model or self.wire.model_of(self.request.path, self.body)

    async def reply(self, reply: Reply) -> web.StreamResponse:
        adapt = getattr(self.wire, "reply_for", None)
        if adapt is not None:
            reply = adapt(reply, self.body)
        if reply.latency > 0:
            await asyncio.sleep(reply.latency)
        if not self.stream:
            payload = self.wire.reply_body(reply, self.model(reply), self.prompt_tokens)
            return web.json_response(payload, headers=reply.headers)
        frames = self.wire.stream_frames(reply, self.model(reply), self.prompt_tokens)
        response = await self._open_stream(reply.headers)
        for index, frame in enumerate(frames):
            if index and reply.chunk_delay > 0:
                await asyncio.sleep(reply.chunk_delay)
            await response.write(frame)
        await response.write_eof()
        return response

    async def fault(self, fault: Fault) -> web.StreamResponse:
        if fault.kind == "hang":
            await asyncio.sleep(fault.seconds)
            self._drop()
        if fault.kind == "reset":
            self._drop()
        if fault.kind == "malformed_json":
            return await self._malformed()
        if fault.kind == "truncated_stream":
            return await self._truncated(fault.after_chunks)
        return self._error(fault)

    def _error(self, fault: Fault) -> web.StreamResponse:
        status, kind = fault.code, fault.kind
        headers: dict[str, str] = {}
        if kind == "overloaded":
            status = int(getattr(self.wire, "overloaded_status", 503))
        elif kind == "status":
            kind = kind_for_status(status)
        if kind == "rate_limit":
            headers.update(self._rate_limit_headers(fault.retry_after))
        headers.update(fault.headers)
        payload = self.wire.error_response(kind, status, fault.message)
        return web.json_response(payload, status=status, headers=headers)

    def _rate_limit_headers(self, retry_after: float | None) -> dict[str, str]:
        headers: dict[str, str] = {}
        if retry_after is not None:
            headers["retry-after"] = _format_seconds(retry_after)
        hook = getattr(self.wire, "rate_limit_headers", None)
        if hook is not None:
            headers.update(hook(retry_after))
        return headers

    async def _malformed(self) -> web.StreamResponse:
        if not self.stream:
            return web.Response(body=_MALFORMED_BODY, content_type="application/json")
        response = await self._open_stream({})
        await response.write(_MALFORMED_FRAME)
        await response.write_eof()
        return response

    async def _truncated(self, after_chunks: int) -> web.StreamResponse:
        reply = self.fallback
        if not self.stream:
            data = json.dumps(self.wire.reply_body(reply, self.model(reply), self.prompt_tokens)).encode()
            response = web.StreamResponse(headers={"content-type": "application/json"})
            response.content_length = len(data)
            await response.prepare(self.request)
            await response.write(data[: len(data) // 2])
            self._drop()
        frames = self.wire.stream_frames(reply, self.model(reply), self.prompt_tokens)
        response = await self._open_stream({})
        for frame in frames[:after_chunks]:
            await response.write(frame)
        self._drop()

    async def _open_stream(self, headers: Mapping[str, str]) -> web.StreamResponse:
        response = web.StreamResponse(headers={**_SSE_HEADERS, **headers})
        await response.prepare(self.request)
        return response

    def _drop(self) -> NoReturn:
        transport = self.request.transport
        if transport is not None:
            transport.abort()
        raise Dropped


def kind_for_status(status: int) -> str:
    if status == 429:
        return "rate_limit"
    if status in (401, 403):
        return "auth"
    if status >= 500:
        return "server"
    return "bad_request"


def _format_seconds(seconds: float) -> str:
    return str(int(seconds)) if float(seconds).is_integer() else f"{seconds:g}"
