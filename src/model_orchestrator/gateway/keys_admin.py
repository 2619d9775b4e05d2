"""Admin routes for virtual keys (master key only; the auth middleware enforces it).

``POST /admin/keys`` creates a key and returns its secret once; ``GET /admin/keys`` lists keys (ids, limits,
state, never secrets); ``DELETE /admin/keys/{key_id}`` revokes one and drops it from this gateway's key
cache at once. The same operations as ``orchestrator keys create|list|revoke``.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated, Literal, Protocol

from aiohttp import web
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from model_orchestrator.core.clock import Clock
from model_orchestrator.gateway.connections import read_body
from model_orchestrator.gateway.convert import whole_number
from model_orchestrator.gateway.errors import GatewayError

if TYPE_CHECKING:
    from model_orchestrator.gateway.auth import Authenticator
    from model_orchestrator.ledger.keys import VirtualKey


class KeyStore(Protocol):
    """The virtual-key store as the gateway uses it (``ledger.keys.VirtualKeyStore``)."""

    async def create(
        self,
        *,
        name: str | None = None,
        models: tuple[str, ...] = (),
        budget_usd: float | None = None,
        budget_period: str = "month",
        rpm: int | None = None,
        expires_at: float | None = None,
    ) -> tuple[VirtualKey, str]: ...

    async def list(self) -> list[VirtualKey]: ...

    async def revoke(self, key_id: str) -> VirtualKey: ...

    async def verify(self, presented: str) -> VirtualKey | None: ...


class NewKey(BaseModel):
    """``POST /admin/keys`` body. ``expires_in``: seconds from now (or ``expires_at``, epoch seconds)."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, max_length=200)
    models: list[str] = Field(default_factory=list, max_length=1000)
    budget_usd: float | None = Field(default=None, ge=0, le=1e12)
    budget_period: Literal["day", "month"] = "month"
    rpm: Annotated[int, Field(ge=1, le=2**31 - 1), BeforeValidator(whole_number)] | None = None
    expires_at: float | None = Field(default=None, ge=0, le=1e11)
    expires_in: float | None = Field(default=None, gt=0, le=1e10)


def add_key_routes(
    app: web.Application,
    keys: KeyStore,
    authenticator: Authenticator | None,
    clock: Clock,
    *,
    body_timeout: float,
) -> None:
    """Register the three admin routes on ``app`` (``body_timeout``: seconds a body may take to arrive)."""

    async def create(request: web.Request) -> web.Response:
        raw = await read_body(request, body_timeout)
        try:
            spec = NewKey.model_validate_json(raw, strict=True)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(map(str, first["loc"]))
            raise GatewayError(400, f"Invalid key spec: {first['msg']}", param=where) from None
        expires = spec.expires_at
        if spec.expires_in is not None:
            expires = clock.wall() + spec.expires_in
        key, secret = await keys.create(
            name=spec.name,
            models=tuple(spec.models),
            budget_usd=spec.budget_usd,
            budget_period=spec.budget_period,
            rpm=spec.rpm,
            expires_at=expires,
        )
        return web.json_response({**key.to_dict(clock.wall()), "key": secret}, status=201, dumps=json.dumps)

    async def listing(_request: web.Request) -> web.Response:
        now = clock.wall()
        return web.json_response({"data": [k.to_dict(now) for k in await keys.list()]}, dumps=json.dumps)

    async def revoke(request: web.Request) -> web.Response:
        key = await keys.revoke(request.match_info["key_id"])
        if authenticator is not None:
            authenticator.forget(key.id)
        return web.json_response(key.to_dict(clock.wall()), dumps=json.dumps)

    app.router.add_post("/admin/keys", create)
    app.router.add_get("/admin/keys", listing)
    app.router.add_delete("/admin/keys/{key_id}", revoke)
