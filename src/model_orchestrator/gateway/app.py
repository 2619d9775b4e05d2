"""The gateway application: routes over the façade, wrapped in the middlewares. A thin app.

Owns the routes (``/v1/chat/completions``, ``/v1/models``, health, metrics, ``/openapi.json``, key admin)
and turning a parsed body into one façade call. Everything cross-cutting (request ids, error rendering,
auth, rate limits) is in ``middleware``; wire conversion in ``convert``; SSE in ``streaming``. The app
talks to the ``Orchestrator`` and, for key admin, to the key store the façade opened; nothing else.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from aiohttp import web
from pydantic import ValidationError

from model_orchestrator.core.clock import Clock, SystemClock
from model_orchestrator.core.request import ChatRequest
from model_orchestrator.gateway.auth import Authenticator, require_master
from model_orchestrator.gateway.connections import ConnectionGuard, read_body
from model_orchestrator.gateway.convert import ChatRequestBody, completion_body, to_chat_request
from model_orchestrator.gateway.errors import GatewayError
from model_orchestrator.gateway.feedback import add_feedback_route, document_feedback
from model_orchestrator.gateway.http_metrics import http_metrics
from model_orchestrator.gateway.key_budgets import FinishedRequests, KeyBudgets
from model_orchestrator.gateway.keys_admin import KeyStore, add_key_routes
from model_orchestrator.gateway.messages_api import add_messages_routes, document_messages
from model_orchestrator.gateway.messages_errors import PATH_PREFIX as MESSAGES_PREFIX
from model_orchestrator.gateway.messages_errors import messages_error_body
from model_orchestrator.gateway.middleware import (
    PRINCIPAL_KEY,
    REQUEST_ID,
    access_middleware,
    context_middleware,
    hide_server_banner,
)
from model_orchestrator.gateway.openapi import document_middleware_statuses, openapi_document
from model_orchestrator.gateway.responses_api import add_responses_route, document_responses
from model_orchestrator.gateway.served import FormatRoutes, header_safe, json_answer, metadata_headers
from model_orchestrator.gateway.settings import GatewaySettings
from model_orchestrator.gateway.streaming import StreamPlan, serve_stream
from model_orchestrator.orchestrator.access import browser_guard, without_hosts, without_hosts_in

if TYPE_CHECKING:
    from model_orchestrator.orchestrator import Orchestrator

HEADER = "x-orchestrator-"


class _Validated(Protocol):
    def errors(self) -> list[Any]: ...


@dataclass(frozen=True, slots=True)
class _Routes:
    orch: Orchestrator
    settings: GatewaySettings
    formats: FormatRoutes
    document: dict[str, object]

    async def chat_completions(self, request: web.Request) -> web.StreamResponse:
        body = await self._body(request)
        request_id, key_id = FormatRoutes.allow(request, body.model)
        chat = to_chat_request(
            body,
            request_id=request_id,
            api_key_id=key_id,
            max_tokens_ceiling=self.settings.limits.max_tokens,
        )
        answer: Callable[[], Awaitable[web.StreamResponse]]
        if body.stream:
            answer = functools.partial(self._stream, request, body, chat)
        else:
            answer = functools.partial(self._complete, body, chat, operator=request[PRINCIPAL_KEY].master)
        return await self.formats.within_budget(request, body.model, chat, answer)

    async def _complete(self, body: ChatRequestBody, chat: ChatRequest, *, operator: bool) -> web.Response:
        timeout = self.settings.limits.request_timeout
        result = await self.orch.complete(chat, model=body.model, timeout=timeout)
        answer = completion_body(result, completion_id=f"chatcmpl-{chat.request_id}")
        if not operator:  # a key holder learns which step failed, never where it runs
            answer["orchestrator"] = without_hosts_in(answer["orchestrator"])
        return json_answer(answer, headers=metadata_headers(result))

    async def _stream(
        self, request: web.Request, body: ChatRequestBody, chat: ChatRequest
    ) -> web.StreamResponse:
        request_id = chat.request_id or ""
        plan = StreamPlan(
            request_id=request_id,
            requested=body.model,
            include_usage=bool(body.stream_options and body.stream_options.include_usage),
            headers={REQUEST_ID: request_id, f"{HEADER}requested": header_safe(body.model)},
            operator=request[PRINCIPAL_KEY].master,
        )
        stream = self.orch.stream(chat, model=body.model, timeout=self.settings.limits.request_timeout)
        return await serve_stream(request, stream, plan)

    async def _body(self, request: web.Request) -> ChatRequestBody:
        limits = self.settings.limits
        if request.content_length is not None and request.content_length > limits.max_body_bytes:
            raise GatewayError(
                413,
                f"The request body is larger than this gateway's limit of {limits.max_body_bytes} bytes.",
                code="request_too_large",
            )
        raw = await read_body(request, limits.body_timeout)
        try:
            body = ChatRequestBody.model_validate_json(raw, strict=True)
        except ValidationError as exc:
            raise _invalid(exc) from None
        if len(body.messages) > limits.max_messages:
            raise GatewayError(
                400,
                f"{len(body.messages)} messages is above this gateway's limit of {limits.max_messages}.",
                param="messages",
                code="too_many_messages",
            )
        return body

    async def list_models(self, request: web.Request) -> web.Response:
        principal = request[PRINCIPAL_KEY]
        cards = [c for c in self.cards() if principal.may_use(str(c["id"]))]
        return web.json_response({"object": "list", "data": cards}, dumps=_dumps)

    async def get_model(self, request: web.Request) -> web.Response:
        name = request.match_info["model"]
        principal = request[PRINCIPAL_KEY]
        card = next((c for c in self.cards() if c["id"] == name), None)
        if card is None or not principal.may_use(name):
            raise GatewayError(
                404, f"The model {name!r} does not exist.", code="model_not_found", param="model"
            )
        return web.json_response(card, dumps=_dumps)

    def cards(self) -> list[dict[str, object]]:
        return [
            {
                "id": info.name,
                "object": "model",
                "created": 0,
                "owned_by": info.provider,
                "orchestrator": {
                    "kind": "strategy" if info.provider == "strategy" else "model",
                    "model": info.model_id,
                    "tier": info.tier,
                    "context_window": info.context_window,
                    "price": info.to_dict()["price"],
                },
            }
            for info in self.orch.models()
            if info.usable and info.source != "reference"
        ]

    async def health(self, _request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def health_providers(self, request: web.Request) -> web.Response:
        """Every deployment for the master key; a virtual key sees only those of models it may use,
        with no internal host in them, and may not trigger probes (each probe is an upstream call)."""
        principal = request[PRINCIPAL_KEY]
        probe = _flag(request.query.get("probe"), "probe")
        if probe:
            require_master(principal)
        states = [s for s in await self.orch.health(probe=probe) if principal.may_use(s.name)]
        shown = [s.to_dict() for s in states]
        if not principal.master:
            shown = [{k: without_hosts(v) if isinstance(v, str) else v for k, v in d.items()} for d in shown]
        return web.json_response(
            {"healthy": all(s.available for s in states), "deployments": shown}, dumps=_dumps
        )

    async def metrics(self, _request: web.Request) -> web.Response:
        text = self.orch.metrics_text()
        return web.Response(
            body=text.encode(), headers={"content-type": "text/plain; version=0.0.4; charset=utf-8"}
        )

    async def openapi(self, _request: web.Request) -> web.Response:
        return web.json_response(self.document, dumps=_dumps)


def build_app(
    orch: Orchestrator,
    settings: GatewaySettings,
    *,
    keys: KeyStore | None = None,
    budgets: KeyBudgets | None = None,
    clock: Clock | None = None,
    connections: ConnectionGuard | None = None,
) -> web.Application:
    """The aiohttp application serving ``orch``. ``keys``: the virtual-key store (None: the master key
    only); ``budgets``: where keys' budgets are kept (None: keys' budgets are not enforced);
    ``connections``: the guard counting unauthenticated connections (None: not counted)."""
    clock = clock or SystemClock()
    authenticator = None
    if settings.auth:
        authenticator = Authenticator(
            master_key=settings.master_key,
            keys=keys,
            clock=clock,
            # With shared state several processes serve the keys: a revocation must reach them all
            # within a second, so none trusts its cache longer.
            cache_seconds=min(settings.key_cache_seconds, 1.0)
            if orch.config.state.shared
            else settings.key_cache_seconds,
            failures_per_minute=settings.limits.auth_failures_per_minute,
            store=orch.state_store,
        )
    metrics = http_metrics(orch)
    guard = browser_guard(settings.host, settings.allowed_hosts, settings.allowed_origins)
    app = web.Application(
        middlewares=[
            context_middleware(metrics, {MESSAGES_PREFIX: messages_error_body}),
            access_middleware(guard, authenticator, connections),
        ],
        client_max_size=settings.limits.max_body_bytes,
    )
    app.on_response_prepare.append(hide_server_banner)
    finished = FinishedRequests()
    unsubscribe = orch.events.subscribe(finished)
    formats = FormatRoutes(orch, settings, finished, budgets)
    routes = _Routes(orch, settings, formats, {})
    configured = [i.name for i in orch.models() if i.usable and i.source == "config"]
    routes.document.update(openapi_document(settings, configured, admin=keys is not None))
    document_feedback(routes.document)
    document_messages(routes.document, settings.limits.max_tokens)
    document_responses(routes.document, settings.limits.max_tokens)
    document_middleware_statuses(routes.document)
    app.router.add_post("/v1/chat/completions", routes.chat_completions)
    add_messages_routes(app, formats)
    add_responses_route(app, formats)
    app.router.add_get("/v1/models", routes.list_models)
    app.router.add_get("/v1/models/{model}", routes.get_model)
    app.router.add_get("/health", routes.health)
    app.router.add_get("/health/providers", routes.health_providers)
    if metrics is not None:
        app.router.add_get("/metrics", routes.metrics)
    app.router.add_get("/openapi.json", routes.openapi)
    add_feedback_route(app, orch, body_timeout=settings.limits.body_timeout)
    if keys is not None:
        add_key_routes(app, keys, authenticator, clock, body_timeout=settings.limits.body_timeout)

    async def on_cleanup(_app: web.Application) -> None:
        unsubscribe()

    app.on_cleanup.append(on_cleanup)
    return app


def _flag(value: str | None, name: str) -> bool:
    if value is None or value == "false":
        return False
    if value == "true":
        return True
    raise GatewayError(400, f"{name} must be true or false", param=name)


def _invalid(exc: _Validated) -> GatewayError:
    first = exc.errors()[0]
    location = [str(p) for p in first.get("loc", ())]
    param = ".".join(location) or None
    where = f" at {param}" if param else ""
    return GatewayError(400, f"Invalid request body{where}: {first.get('msg', 'invalid')}", param=param)


def _dumps(value: object) -> str:
    return json.dumps(value, separators=(",", ":"))
