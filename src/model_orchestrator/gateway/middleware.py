"""The gateway's cross-cutting wrappers around every route (aiohttp middlewares, outermost first).

``context``: gives each request an id (``x-orchestrator-request-id`` on every response, errors included),
renders every failure as the wire's error JSON with the right status and headers (upstream failures shown
to a key holder name no internal host: ``access.without_hosts``), and counts the request in the HTTP
metrics. ``access``: first refuses what a web page could make a browser send (``access.BrowserGuard``:
Host, Origin, Content-Type) before any key is read, then resolves the caller (``Principal``) from the
presented key, keeps admin routes for the master key, counts the key's request against its rpm and tells
the connection guard the connection has authenticated. Routes see ``request[PRINCIPAL_KEY]`` and
``request[REQUEST_ID_KEY]``; none of them handles errors or keys itself. Two middlewares, not one per
concern: each is a frame on every request, and both concerns of ``access`` answer "may this caller in?".
"""

from __future__ import annotations

import functools
import json
import logging
import time
from collections.abc import Callable, Mapping

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from model_orchestrator.core.ids import new_id
from model_orchestrator.gateway.auth import OPEN, Authenticator, Principal, require_master
from model_orchestrator.gateway.connections import SERVER_NAME, ConnectionGuard
from model_orchestrator.gateway.errors import INVALID, UNAVAILABLE, GatewayError, from_exception
from model_orchestrator.gateway.http_metrics import HttpMetrics
from model_orchestrator.orchestrator.access import BrowserGuard, without_hosts

_log = logging.getLogger(__name__)

REQUEST_ID = "x-orchestrator-request-id"
REQUEST_ID_KEY = web.RequestKey("request_id", str)
PRINCIPAL_KEY = web.RequestKey("principal", Principal)
PUBLIC_PATHS = frozenset({"/health"})
ADMIN_PREFIXES = ("/admin/", "/metrics")
_HTTP_CODES = {404: "not_found", 405: "method_not_allowed", 413: "request_too_large"}


ErrorBody = Callable[[GatewayError], dict[str, object]]
"""How a wire format writes an error (``GatewayError.body`` is the Chat Completions one)."""


def error_response(error: GatewayError, render: ErrorBody | None = None) -> web.Response:
    """The JSON error response for ``error``, its body written by ``render`` (default: ``error.body``)."""
    return web.Response(
        status=error.status,
        body=json.dumps(render(error) if render else error.body()).encode(),
        content_type="application/json",
        headers=error.headers,
    )


def context_middleware(
    metrics: HttpMetrics | None, error_bodies: Mapping[str, ErrorBody] | None = None
) -> Middleware:
    """Request id, error rendering and HTTP metrics. ``error_bodies``: path prefix -> how errors are written
    there (routes speaking another wire format, e.g. ``/v1/messages``); elsewhere ``GatewayError.body``."""
    bodies = tuple((error_bodies or {}).items())

    @web.middleware
    async def context(request: web.Request, handler: Handler) -> web.StreamResponse:
        request_id = new_id()
        request[REQUEST_ID_KEY] = request_id
        started = time.perf_counter()
        try:
            response = await handler(request)
        except web.HTTPException as exc:
            response = error_response(_http_error(exc), _render_for(request.path, bodies))
        except Exception as exc:  # noqa: BLE001 - every failure becomes an error response, never a traceback
            error = from_exception(exc)
            if error.status == 500 or error.code == UNAVAILABLE:
                _log.exception("gateway request %s failed", request_id)
            elif not _is_operator(request):
                if error.status >= 500:
                    _log.warning("gateway request %s failed upstream: %s", request_id, error.message)
                error.message = without_hosts(error.message)
            response = error_response(error, _render_for(request.path, bodies))
        if not response.prepared:
            response.headers[REQUEST_ID] = request_id
        if metrics is not None:
            metrics.observe(
                _route_of(request), request.method, response.status, time.perf_counter() - started
            )
        return response

    return context


def access_middleware(
    guard: BrowserGuard, authenticator: Authenticator | None, connections: ConnectionGuard | None
) -> Middleware:
    """The browser guard, then the presented key (``authenticator`` None: auth is off, every caller is
    trusted). Guard: 403 for a Host that is not this server's (DNS rebinding) or a browser Origin not
    allowed; 415 for a POST body that is not ``application/json`` (a cross-site form or ``text/plain``)."""
    # The guard is a pure function of these four values, and callers send the same few again and again.
    # 64 entries: header values are at most 8 KB each, so a caller varying them holds at most ~1.5 MB.
    refusal_of = functools.lru_cache(maxsize=64)(
        lambda method, host, origin, content_type: guard.refusal(
            method=method, host=host, origin=origin, content_type=content_type
        )
    )

    @web.middleware
    async def access(request: web.Request, handler: Handler) -> web.StreamResponse:
        # An unknown route or method gets its 404/405 whatever the body (only real routes read bodies).
        routed = getattr(request.match_info, "http_exception", None) is None
        headers = request.headers
        refusal = refusal_of(
            request.method if routed else "GET",
            headers.get("host"),
            headers.get("origin"),
            headers.get("content-type"),
        )
        if refusal is not None and refusal.check == "content_type":
            raise GatewayError(415, refusal.message, INVALID, "unsupported_media_type")
        if refusal is not None:
            raise GatewayError(403, refusal.message, "permission_error", f"{refusal.check}_not_allowed")
        if request.path in PUBLIC_PATHS or request.method == "OPTIONS":
            return await handler(request)
        if authenticator is None:
            principal = OPEN
        else:
            principal = await authenticator.authenticate(
                headers.get("authorization"), headers.get("x-api-key"), address=request.remote or ""
            )
        if connections is not None:
            connections.authenticated(request.transport)
        if authenticator is not None:
            if request.path.startswith(ADMIN_PREFIXES):
                require_master(principal)
            await authenticator.take_request(principal)
        request[PRINCIPAL_KEY] = principal
        return await handler(request)

    return access


async def hide_server_banner(_request: web.Request, response: web.StreamResponse) -> None:
    """No ``Server: Python/... aiohttp/...``: versions tell an attacker which advisories to try."""
    response.headers["server"] = SERVER_NAME


def _render_for(path: str, bodies: tuple[tuple[str, ErrorBody], ...]) -> ErrorBody | None:
    return next((render for prefix, render in bodies if path.startswith(prefix)), None)


def _is_operator(request: web.Request) -> bool:
    principal = request.get(PRINCIPAL_KEY)
    return principal is not None and principal.master


def _http_error(exc: web.HTTPException) -> GatewayError:
    status = exc.status
    if status == 413:
        message = "The request body is too large for this gateway."
    elif status == 404:
        message = "Unknown route. See /openapi.json for the routes this gateway serves."
    else:
        message = exc.reason
    kind = "server_error" if status >= 500 else "invalid_request_error"
    headers = {"allow": exc.headers["allow"]} if "allow" in exc.headers else {}
    return GatewayError(status, message, kind, _HTTP_CODES.get(status), headers=headers)


def _route_of(request: web.Request) -> str:
    """A bounded label: the route's pattern (``/v1/models/{model}``), never the raw path."""
    info = request.match_info.route.resource
    return info.canonical if info is not None else "unmatched"
