"""Cooldown: after a 429 or an overload, skip the deployment until the time the provider asked for.

Owns the cooldown policy, the pure decisions (does this error start a cooldown, for how long, which end
time wins), ``CooldownModel`` (the ``ChatModel`` wrapper that applies them for every request sharing the
store) and ``cooldown_until`` for inspection (``orchestrator health``). The state is one float under
``cooldown:<deployment>``: the end of the cooldown on the store's timebase (``StateStore.now``: wall time
in a shared store, so every process and host sees the same expiry). It does not retry or wait:
a cooling deployment is skipped at once with ``CoolingDownError`` so a strategy moves on. A cooldown it
starts is also recorded in the request's ``RequestScope`` (``pause``), which the retry above reads.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass

from model_orchestrator.core.clock import Clock
from model_orchestrator.core.errors import (
    ConfigError,
    CoolingDownError,
    DeadlineExceededError,
    ProviderError,
    RateLimitedError,
    ServerError,
)
from model_orchestrator.core.events import CooldownStarted, EventBus
from model_orchestrator.core.model import ChatModel
from model_orchestrator.core.request import ChatRequest
from model_orchestrator.core.request_scope import current_scope
from model_orchestrator.core.response import Completion, StreamDelta
from model_orchestrator.core.stream_start import closing
from model_orchestrator.core.wrapper import WrapperModel
from model_orchestrator.resilience.state_store import StateStore

_log = logging.getLogger(__name__)

# 503 Service Unavailable, and 529, the status one vendor uses for "overloaded".
OVERLOAD_STATUSES = frozenset({503, 529})


@dataclass(frozen=True, slots=True)
class CooldownPolicy:
    """How long to cool down: the provider's ``retry_after`` when it gave one, else ``default_seconds``
    (0: only when the provider says how long); never longer than ``max_seconds``. ``on_overload`` also
    cools down on 503/529 server errors."""

    default_seconds: float = 1.0
    max_seconds: float = 300.0
    on_overload: bool = True

    def __post_init__(self) -> None:
        if self.default_seconds < 0 or self.max_seconds <= 0 or self.max_seconds < self.default_seconds:
            raise ConfigError(
                "cooldown: default_seconds must be 0 or more, max_seconds above 0 and at least as long"
            )


def cooldown_reason(error: BaseException, policy: CooldownPolicy) -> str | None:
    """``"rate_limited"`` or ``"overloaded"`` when ``error`` should cool the deployment down, else None.

    The caller's own deadline never does: running out of time says nothing about the deployment.
    """
    if isinstance(error, DeadlineExceededError):
        return None
    if isinstance(error, RateLimitedError):
        return "rate_limited"
    if policy.on_overload and isinstance(error, ServerError) and error.status_code in OVERLOAD_STATUSES:
        return "overloaded"
    return None


def cooldown_seconds(error: ProviderError, policy: CooldownPolicy) -> float:
    """How long ``error`` asks us to stay away: its positive ``retry_after``, else the default, capped."""
    wanted = error.retry_after if error.retry_after and error.retry_after > 0 else policy.default_seconds
    return min(wanted, policy.max_seconds)


def extended(current: float | None, proposed: float) -> float:
    """The cooldown end to keep: the later one (a new, shorter cooldown never cuts an existing one)."""
    return proposed if current is None else max(current, proposed)


def remaining(until: float | None, now: float) -> float | None:
    """Seconds of cooldown left at ``now`` (None: not cooling down)."""
    if until is None or until <= now:
        return None
    return until - now


async def cooldown_until(store: StateStore, deployment: str) -> float | None:
    """When ``deployment``'s latest cooldown ends (store timebase; may be past); None: never had one."""
    value = await store.get(_key(deployment))
    return float(value) if isinstance(value, int | float) else None


class CooldownModel(WrapperModel):
    """Skips its deployment without a call while it cools down; starts a cooldown on 429 or overload."""

    def __init__(
        self,
        inner: ChatModel,
        *,
        deployment: str,
        policy: CooldownPolicy,
        store: StateStore,
        clock: Clock,
        bus: EventBus,
    ) -> None:
        super().__init__(inner)
        self._deployment = deployment
        self._policy = policy
        self._store = store
        self._clock = clock
        self._bus = bus

    def __repr__(self) -> str:
        return f"CooldownModel({self.inner!r}, deployment={self._deployment!r})"

    async def complete(self, request: ChatRequest) -> Completion:
        await self._check()
        try:
            return await self.inner.complete(request)
        except ProviderError as exc:
            await self._on_error(request, exc)
            raise

    async def stream(self, request: ChatRequest) -> AsyncIterator[StreamDelta]:
        await self._check()
        async with closing(self.inner.stream(request)) as inner:
            try:
                async for delta in inner:
                    yield delta
            except ProviderError as exc:
                await self._on_error(request, exc)
                raise

    async def _check(self) -> None:
        left = remaining(await cooldown_until(self._store, self._deployment), self._store.now(self._clock))
        if left is not None:
            raise CoolingDownError(
                f"{self._deployment} is cooling down after a rate limit or overload for {left:.1f}s more; "
                "skipped without a call (use another model or wait)",
                retry_after=left,
                deployment=self._deployment,
            )

    async def _on_error(self, request: ChatRequest, error: ProviderError) -> None:
        reason = cooldown_reason(error, self._policy)
        seconds = cooldown_seconds(error, self._policy)
        if reason is None or seconds <= 0:
            return
        now = self._store.now(self._clock)
        proposed = now + seconds

        def change(old: float | None) -> tuple[float, tuple[float | None, float]]:
            new = extended(old, proposed)
            return new, (old, new)

        old, until = await self._store.update(_key(self._deployment), change)
        # Tell the retry above how long the deployment is out (in the request's scope; the error stays
        # as the provider sent it), so it waits out the cooldown instead of hitting it, or moves on at once
        # when that is too long: never a wasted sleep.
        scope = current_scope()
        if scope is not None:
            scope.pause(self._deployment, self._clock.monotonic() + (until - now))
        if old is not None and until <= old:
            return  # an existing, longer cooldown already covers this one
        seconds = until - now  # may exceed this error's own wait when an earlier cooldown ran longer
        _log.warning(
            "%s cooling down for %.1fs (%s); calls skip it until then", self._deployment, seconds, reason
        )
        self._bus.emit(
            CooldownStarted(
                request_id=request.request_id or "",
                timestamp=self._clock.wall(),
                deployment=self._deployment,
                seconds=seconds,
                reason=reason,
            )
        )


def _key(deployment: str) -> str:
    return f"cooldown:{deployment}"
