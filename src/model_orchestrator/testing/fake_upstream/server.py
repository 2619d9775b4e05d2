"""``FakeUpstream``: a real aiohttp server on 127.0.0.1, in its own thread and loop, that answers in
the providers' wire formats from a script of replies and faults, and records every request.

Owns HTTP serving, the script queue, timing (latency, chunk delays, hangs), connection-level faults
(reset, truncation, malformed JSON), request recording and the free model-list GETs health probes
send (answered outside the script, failed on demand with ``fail_probes``). It does not know any
vendor's JSON: the format modules next to it (``openai``, ``anthropic``, ``gemini``; each exports
``FORMAT``) render bodies, frames and model lists through the ``WireFormat`` protocol.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from types import TracebackType
from typing import Any, NoReturn, Protocol

from aiohttp import web

from model_orchestrator.testing.fake_upstream.script import Fault, RecordedRequest, Reply, ScriptItem

FORMAT_MODULES = ("openai", "anthropic", "gemini")
_START_TIMEOUT = 10.0
_SSE_HEADERS = {"content-type": "text/event-stream", "cache-control": "no-cache"}
_MALFORMED_BODY = b'{"id": "broken", "choices": [{"index": 0, "message": {"content": "'
_MALFORMED_FRAME = b'data: {"id": "broken", "choices": [{"delta": \n\n'


class WireFormat(Protocol):
    """One vendor's wire format, as the fake needs it. Optional extras a format may define:
    ``overloaded_status: int`` (default 503), ``rate_limit_headers(retry_after) -> dict[str, str]``,
    ``model_list(method, path, headers) -> dict | None`` (the body of its model-list GET, None: not one) and
    ``reply_for(reply, body) -> Reply`` (the scripted reply fitted to the request, e.g. JSON for a schema).
    """

    name: str

    def matches(self, method: str, path: str) -> bool: ...

    def is_stream(self, path: str, query: Mapping[str, str], body: Mapping[str, Any]) -> bool: ...

    def model_of(self, path: str, body: Mapping[str, Any]) -> str: ...

    def prompt_tokens(self, body: Mapping[str, Any]) -> int: ...

    def reply_body(self, reply: Reply, model: str, prompt_tokens: int) -> dict[str, Any]: ...

    def stream_frames(self, reply: Reply, model: str, prompt_tokens: int) -> list[bytes]: ...

    def error_response(self, kind: str, status: int, message: str) -> dict[str, Any]: ...


def available_formats() -> list[WireFormat]:
    """The ``FORMAT`` of every format module present in this package."""
    formats: list[WireFormat] = []
    for name in FORMAT_MODULES:
        module_name = f"{__package__}.{name}"
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name != module_name:
                raise
            continue
        formats.append(module.FORMAT)
    return formats


class _Dropped(Exception):
    """The fake closed the connection on purpose (reset, hang end, truncation)."""


class FakeUpstream:
    """A scripted upstream. Use as ``with FakeUpstream() as up:`` or ``async with FakeUpstream() as up:``.

    ``script(...)`` queues replies/faults, one per request in arrival order; an empty queue answers
    with ``default_reply``. Model-list GETs (health probes) never take from the script: they get the
    format's list, or the fault set with ``fail_probes``. ``requests`` lists what arrived, in order.
    """

    def __init__(
        self, *, formats: Iterable[WireFormat] | None = None, default_reply: Reply | None = None
    ) -> None:
        self.default_reply = default_reply or Reply("ok")
        self._formats = list(formats) if formats is not None else available_formats()
        self._script: deque[ScriptItem] = deque()
        self._probe_fault: Fault | None = None
        self._requests: list[RecordedRequest] = []
        self._changed = threading.Condition()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._ready = threading.Event()
        self._start_error: BaseException | None = None
        self._port = 0

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT``."""
        if not self._port:
            raise RuntimeError("FakeUpstream is not running")
        return f"http://127.0.0.1:{self._port}"

    @property
    def openai_base(self) -> str:
        """The OpenAI-style API base: ``url + "/v1"``."""
        return self.url + "/v1"

    @property
    def requests(self) -> list[RecordedRequest]:
        """A snapshot of the requests received so far."""
        with self._changed:
            return list(self._requests)

    def script(self, *items: ScriptItem) -> None:
        """Queue answers for the next requests, in order."""
        with self._changed:
            self._script.extend(items)

    def fail_probes(self, fault: Fault | None) -> None:
        """Answer every model-list GET with ``fault`` from now on (None: answer with the list again)."""
        with self._changed:
            self._probe_fault = fault

    def wait_started(self, count: int, timeout: float = 5.0) -> list[RecordedRequest]:
        """Block until ``count`` requests have arrived."""
        return self._wait_for(lambda: len(self._requests), count, "arrived", timeout)

    def wait_finished(self, count: int, timeout: float = 5.0) -> list[RecordedRequest]:
        """Block until ``count`` requests have ended (answered, dropped or disconnected)."""
        return self._wait_for(self._finished_count, count, "finished", timeout)

    async def await_started(self, count: int, timeout: float = 5.0) -> list[RecordedRequest]:
        """``wait_started`` without blocking the caller's event loop."""
        return await asyncio.to_thread(self.wait_started, count, timeout)

    async def await_finished(self, count: int, timeout: float = 5.0) -> list[RecordedRequest]:
        """``wait_finished`` without blocking the caller's event loop."""
        return await asyncio.to_thread(self.wait_finished, count, timeout)

    def start(self) -> FakeUpstream:
        """Start serving (idempotent)."""
        if self._thread is not None:
            return self
        self._thread = threading.Thread(target=self._serve, name="FakeUpstream", daemon=True)
        self._thread.start()
        if not self._ready.wait(_START_TIMEOUT) or self._start_error is not None:
            raise RuntimeError("FakeUpstream failed to start") from self._start_error
        return self

    def stop(self) -> None:
        """Stop serving and join the thread (idempotent)."""
        thread, loop = self._thread, self._loop
        if thread is None or loop is None:
            return
        loop.call_soon_threadsafe(loop.stop)
        thread.join()
        self._thread = None
        self._port = 0

    def __enter__(self) -> FakeUpstream:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    async def __aenter__(self) -> FakeUpstream:
        return await asyncio.to_thread(self.start)

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await asyncio.to_thread(self.stop)

    def _finished_count(self) -> int:
        return sum(1 for r in self._requests if r.finished is not None)

    def _wait_for(
        self, measure: Callable[[], int], count: int, what: str, timeout: float
    ) -> list[RecordedRequest]:
        with self._changed:
            if not self._changed.wait_for(lambda: measure() >= count, timeout):
                raise TimeoutError(f"only {measure()} of {count} requests {what}")
            return list(self._requests)

    def _serve(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._start_site())
        except BaseException as exc:  # noqa: BLE001 - reported to the starting thread
            self._start_error = exc
            self._ready.set()
            loop.close()
            return
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            if self._runner is not None:
                loop.run_until_complete(self._runner.cleanup())
            loop.close()

    async def _start_site(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        # handler_cancellation: a client disconnect cancels the handler, so hangs notice it.
        self._runner = web.AppRunner(app, handler_cancellation=True, access_log=None, shutdown_timeout=0.2)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self._port = int(self._runner.addresses[0][1])

    def _next_item(self) -> ScriptItem:
        with self._changed:
            return self._script.popleft() if self._script else self.default_reply

    def _record(self, request: web.Request, body: Any) -> RecordedRequest:
        record = RecordedRequest(
            method=request.method,
            path=request.path,
            query=dict(request.query),
            headers={k.lower(): v for k, v in request.headers.items()},
            json=body,
            started=time.monotonic(),
        )
        with self._changed:
            self._requests.append(record)
            self._changed.notify_all()
        return record

    def _end(self, record: RecordedRequest, *, disconnected: bool) -> None:
        with self._changed:
            record.disconnected = disconnected
            record.finished = time.monotonic()
            self._changed.notify_all()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = _parse_json(await request.read())
        record = self._record(request, body)
        disconnected = False
        try:
            return await self._answer(request, body)
        except (asyncio.CancelledError, ConnectionResetError):
            disconnected = True
            raise
        except _Dropped:
            # Our own abort: end the handler the way aiohttp ends one whose client went away.
            raise asyncio.CancelledError from None
        finally:
            self._end(record, disconnected=disconnected)

    async def _answer(self, request: web.Request, body: Any) -> web.StreamResponse:
        listed = self._model_list(request)
        if listed is not None:
            return await self._answer_probe(request, *listed)
        wire = next((f for f in self._formats if f.matches(request.method, request.path)), None)
        if wire is None:
            return web.json_response({"error": f"no wire format serves {request.path}"}, status=404)
        if not isinstance(body, dict):
            message = "request body must be a JSON object"
            return web.json_response(wire.error_response("bad_request", 400, message), status=400)
        item = self._next_item()
        turn = _Turn(request, wire, body, self.default_reply)
        if isinstance(item, Reply):
            return await turn.reply(item)
        return await turn.fault(item)

    def _model_list(self, request: web.Request) -> tuple[WireFormat, dict[str, Any]] | None:
        headers = {k.lower(): v for k, v in request.headers.items()}
        for wire in self._formats:
            hook = getattr(wire, "model_list", None)
            listed = hook(request.method, request.path, headers) if hook is not None else None
            if listed is not None:
                return wire, listed
        return None

    async def _answer_probe(
        self, request: web.Request, wire: WireFormat, listed: dict[str, Any]
    ) -> web.StreamResponse:
        with self._changed:
            fault = self._probe_fault
        if fault is None:
            return web.json_response(listed)
        return await _Turn(request, wire, {}, self.default_reply).fault(fault)


class _Turn:
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
            kind = _kind_for_status(status)
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
        raise _Dropped


def _kind_for_status(status: int) -> str:
    if status == 429:
        return "rate_limit"
    if status in (401, 403):
        return "auth"
    if status >= 500:
        return "server"
    return "bad_request"


def _format_seconds(seconds: float) -> str:
    return str(int(seconds)) if float(seconds).is_integer() else f"{seconds:g}"


def _parse_json(raw: bytes) -> Any:
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return None
