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
from typing import Any, Protocol

from aiohttp import web

from model_orchestrator.testing.fake_upstream.script import Fault, RecordedRequest, Reply, ScriptItem
from model_orchestrator.testing.fake_upstream.turn import Dropped, Turn

FORMAT_MODULES = ("openai", "anthropic", "gemini")
_START_TIMEOUT = 10.0


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
        except Dropped:
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
        turn = Turn(request, wire, body, self.default_reply)
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
        return await Turn(request, wire, {}, self.default_reply).fault(fault)


def _parse_json(raw: bytes) -> Any:
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return None
