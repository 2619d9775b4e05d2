"""Who may use the MCP server over HTTP: the gateway's rules (``orchestrator.access``) as ASGI middleware.

Owns ``HttpAccess``, wrapped around the SDK's streamable HTTP app. Before the SDK sees a request it
refuses what a web page could make a browser send (Host against DNS rebinding, browser Origins, POST bodies
that are not ``application/json``), then, when auth is on, checks the presented key (``Authorization:
Bearer`` or ``x-api-key``): the master key or a virtual key (the key store of the orchestrator's ledger),
with failed attempts throttled per client address. The caller (``Principal``) rides in the ASGI scope
under ``PRINCIPAL_SCOPE_KEY`` so each tool can apply the key's model list. Virtual keys with a budget or
an rpm are refused: only the gateway enforces those, and a key must not escape its limits here.
Statuses: 401 (with ``WWW-Authenticate: Bearer``), 403, 415, 429 (with ``retry-after``).
"""

from __future__ import annotations

import json
import math

from starlette.types import ASGIApp, Receive, Scope, Send

from model_orchestrator.core.clock import Clock
from model_orchestrator.orchestrator.access import (
    OPEN,
    AuthFailure,
    BrowserGuard,
    FailedAuthThrottle,
    KeyVerifier,
    Principal,
    identify,
    presented_key,
)

PRINCIPAL_SCOPE_KEY = "model_orchestrator.principal"


class HttpAccess:
    """ASGI middleware: browser defences, then keys (``auth`` False: every caller is the operator)."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        guard: BrowserGuard,
        auth: bool,
        master_key: str | None,
        keys: KeyVerifier | None,
        clock: Clock,
        failures_per_minute: int = 20,
    ) -> None:
        self._app = app
        self._guard = guard
        self._auth = auth
        self._master = master_key
        self._keys = keys
        self._clock = clock
        self._failures = FailedAuthThrottle(clock, limit=failures_per_minute)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._app(scope, receive, send)
            return
        if scope["type"] != "http":  # a WebSocket upgrade: MCP does not use one, and it skips our checks
            await send({"type": "websocket.close", "code": 1008})
            return
        headers = _headers(scope)
        refusal = self._guard.refusal(
            method=str(scope.get("method", "GET")),
            host=headers.get("host"),
            origin=headers.get("origin"),
            content_type=headers.get("content-type"),
        )
        if refusal is not None:
            status = 415 if refusal.check == "content_type" else 403
            await _reply(send, status, f"{refusal.check}_not_allowed", refusal.message)
            return
        principal = await self._principal(scope, headers, send)
        if principal is None:
            return
        scope[PRINCIPAL_SCOPE_KEY] = principal
        await self._app(scope, receive, send)

    async def _principal(self, scope: Scope, headers: dict[str, str], send: Send) -> Principal | None:
        """The caller, or None once a refusal has been sent."""
        if not self._auth:
            return OPEN
        client = scope.get("client")
        address = str(client[0]) if client else ""
        wait = self._failures.retry_after(address)
        if wait is not None:
            message = "Too many failed authentication attempts from this address; wait before trying again."
            retry = [(b"retry-after", str(max(1, math.ceil(wait))).encode())]
            await _reply(send, 429, "too_many_auth_failures", message, retry)
            return None
        presented = presented_key(headers.get("authorization"), headers.get("x-api-key"))
        found = await identify(presented, master_key=self._master, keys=self._keys, now=self._clock.wall())
        if isinstance(found, AuthFailure):
            if presented is not None:
                self._failures.failed(address)
            await _reply(send, 401, found.code, found.message, [(b"www-authenticate", b"Bearer")])
            return None
        if found.budget_usd is not None or found.rpm is not None:
            message = (
                f"API key {found.key_id} has a budget or a rate limit, which only the gateway enforces: "
                "use it with `orchestrator serve`, or use a key without limits here."
            )
            await _reply(send, 403, "key_limits_not_enforced_here", message)
            return None
        return found


def _headers(scope: Scope) -> dict[str, str]:
    """Request headers, lower-cased names; bytes that are not UTF-8 are kept as escapes (and then match
    no key), never an exception."""
    return {
        bytes(name).decode("latin-1").lower(): bytes(value).decode("utf-8", "surrogateescape")
        for name, value in scope.get("headers", [])
    }


async def _reply(
    send: Send, status: int, code: str, message: str, extra: list[tuple[bytes, bytes]] | None = None
) -> None:
    body = json.dumps({"error": {"code": code, "message": message}}).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        *(extra or []),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
