"""Who is calling and what they may do: keys, allowed models, requests per minute, failed attempts.

Owns ``Authenticator``: it reads the presented key (``Authorization: Bearer`` or ``x-api-key``), checks the
master key in constant time, asks the key store to verify virtual keys (the store holds only salted
hashes), caches a verified key for ``cache_seconds``, counts each key's requests in a sliding one-minute
window (``StateStore.take_window`` on the configured state store, so every gateway process sharing a
Redis store shares each key's rpm) and throttles client addresses that keep failing
(``access.FailedAuthThrottle``). ``Principal`` and the key rules are ``orchestrator.access``'s, shared
with the MCP server. Statuses: 401 no, unknown, malformed, expired or revoked key; 403 a model the
key may not use, or an admin route without the master key; 429 over the key's rpm or too many failed
attempts (with ``retry-after``). Budgets are the ledger's (the façade checks them with the request's key
id). Never logs or returns a presented key.
"""

from __future__ import annotations

import hashlib
import math
from typing import TYPE_CHECKING

from model_orchestrator.core.clock import Clock
from model_orchestrator.core.errors import StateUnavailableError
from model_orchestrator.gateway.errors import GatewayError
from model_orchestrator.orchestrator.access import (
    CLI_AGENT_REFUSAL,
    OPEN,
    AuthFailure,
    FailedAuthThrottle,
    KeyVerifier,
    Principal,
    identify,
    master_key_from,
    presented_key,
    starts_host_agent,
)
from model_orchestrator.resilience.state_store import MemoryStateStore, StateStore

if TYPE_CHECKING:
    from model_orchestrator.ledger.keys import VirtualKey

__all__ = ["OPEN", "Authenticator", "KeyVerifier", "Principal", "require_master", "require_model"]


class Authenticator:
    """Checks presented keys against the master key and the virtual-key store. ``store`` keeps each key's
    request window (default: this process's memory)."""

    def __init__(
        self,
        *,
        master_key: str | None,
        keys: KeyVerifier | None,
        clock: Clock,
        cache_seconds: float = 5.0,
        failures_per_minute: int = 20,
        store: StateStore | None = None,
    ) -> None:
        self._master = master_key_from(master_key)
        self._keys = keys
        self._clock = clock
        self._cache_seconds = cache_seconds
        self._cache: dict[bytes, tuple[float, VirtualKey]] = {}
        self._windows: StateStore = store or MemoryStateStore()
        self._failures = FailedAuthThrottle(clock, limit=failures_per_minute)

    async def authenticate(
        self, authorization: str | None, x_api_key: str | None = None, *, address: str = ""
    ) -> Principal:
        """The caller named by ``Authorization: Bearer <key>`` or ``x-api-key`` (401 when no key is valid;
        429 when ``address`` failed too often in the last minute)."""
        wait = self._failures.retry_after(address)
        if wait is not None:
            raise GatewayError(
                429,
                "Too many failed authentication attempts from this address; wait before trying again.",
                "requests",
                "too_many_auth_failures",
                headers={"retry-after": str(max(1, math.ceil(wait)))},
            )
        presented = presented_key(authorization, x_api_key)
        try:
            return await self._principal(presented)
        except GatewayError:
            if presented is not None:  # a guess; a missing key costs nothing to refuse
                self._failures.failed(address)
            raise

    async def _principal(self, presented: str | None) -> Principal:
        found = await identify(presented, master_key=self._master, keys=self, now=self._clock.wall())
        if isinstance(found, AuthFailure):
            raise GatewayError(401, found.message, code=found.code)
        return found

    def forget(self, key_id: str) -> None:
        """Drop ``key_id`` from the cache (after it was revoked here)."""
        self._cache = {k: v for k, v in self._cache.items() if v[1].id != key_id}

    async def take_request(self, principal: Principal) -> None:
        """Count one request against the key's rpm; 429 with ``retry-after`` when the minute is full."""
        if principal.rpm is None or principal.key_id is None:
            return
        now, limit = self._windows.now(self._clock), principal.rpm
        key = f"key-rpm:{principal.key_id}"
        try:
            grant = await self._windows.take_window(key, kind="units", now=now, limit=limit, amount=1)
        except StateUnavailableError as exc:
            raise GatewayError(503, str(exc), "server_error", "state_unavailable") from None
        ready = grant.ready_at
        if not grant.taken and ready is not None:
            raise GatewayError(
                429,
                f"Rate limit reached for API key {principal.key_id}: {limit} requests per minute.",
                "requests",
                "rate_limit_exceeded",
                headers={"retry-after": str(max(1, int(ready - now + 0.999)))},
            )

    async def verify(self, presented: str) -> VirtualKey | None:
        """The virtual key behind ``presented``, from the cache when it was checked recently (so the
        authenticator is the ``KeyVerifier`` that ``access.identify`` asks)."""
        if self._keys is None:
            return None
        digest = hashlib.sha256(presented.encode()).digest()  # the cache never holds a usable secret
        cached = self._cache.get(digest)
        now = self._clock.monotonic()
        if cached is not None and now - cached[0] < self._cache_seconds:
            return cached[1]
        key = await self._keys.verify(presented)
        if key is not None:
            self._cache[digest] = (now, key)
        return key


def require_master(principal: Principal) -> None:
    """403 unless the caller holds the master key (admin routes, metrics)."""
    if not principal.master:
        raise GatewayError(403, "This route needs the master key.", "permission_error", "admin_only")


def require_model(principal: Principal, model: str) -> None:
    """403 when the caller's key may not use ``model``."""
    if starts_host_agent(model):
        raise GatewayError(403, CLI_AGENT_REFUSAL + ".", "permission_error", "model_not_allowed", "model")
    if not principal.may_use(model):
        raise GatewayError(
            403,
            f"API key {principal.key_id} is not allowed to use model {model!r}.",
            "permission_error",
            "model_not_allowed",
            "model",
        )
