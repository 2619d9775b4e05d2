"""Proactive per-deployment rate limits: requests and tokens per minute, plus pacing from the provider.

Owns ``RateLimitPolicy``, the pacing learnt from rate-limit headers, and ``RateLimitedModel``, which
reserves room before each upstream call, waits a bounded time or skips, and corrects the token
reservation with the usage the provider reported afterwards. The window algorithm itself (a sliding log
that never lets more than the limit through in any 60-second window) is ``sliding_window``. It does not
retry, cool down after a 429 or choose another deployment (the layers above do).

Why our own algorithm rather than aiolimiter: the state must live behind ``StateStore`` (keys
``rpm:<deployment>`` and ``tpm:<deployment>``) so a shared store can serve several processes, and
time must come from the injected ``Clock``; aiolimiter keeps its state in the object, reads the loop's
clock, and is a leaky bucket, which can let up to twice the limit through in one 60-second window.

Guarantees hold where calls leave this layer (the composition root puts it just outside the adapter);
network jitter after that can move arrivals by milliseconds. Times are on the store's timebase
(``StateStore.now``): with a shared store, wall time, so the clocks of all hosts must agree.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Literal

from model_orchestrator.core.clock import Clock, SystemClock
from model_orchestrator.core.errors import RateLimitedError, RateLimitExhaustedError
from model_orchestrator.core.model import ChatModel
from model_orchestrator.core.profile import ModelProfile
from model_orchestrator.core.rate_limits import RateLimitSnapshot
from model_orchestrator.core.request import ChatRequest
from model_orchestrator.core.response import Completion, StreamDelta
from model_orchestrator.core.stream_start import closing
from model_orchestrator.core.tokens import estimate_message_tokens
from model_orchestrator.core.usage import Usage
from model_orchestrator.core.wrapper import WrapperModel
from model_orchestrator.resilience.request_log import (
    LOW_REMAINING_SHARE as LOW_REMAINING_SHARE,
)
from model_orchestrator.resilience.request_log import (
    RequestLog,
    learn_from_snapshot,
)
from model_orchestrator.resilience.request_log import request_ready_at as request_ready_at
from model_orchestrator.resilience.request_log import take_request as take_request
from model_orchestrator.resilience.state_store import StateStore, WindowTake

_log = logging.getLogger(__name__)

OnLimit = Literal["wait", "skip"]


@dataclass(frozen=True, slots=True)
class RateLimitPolicy:
    """One deployment's limits. ``rpm``/``tpm`` None: not limited locally.

    ``on_limit="wait"`` waits up to ``max_wait`` seconds (and never past the request's deadline) for
    room, unless the request has somewhere else to go (``request.has_fallback``); ``"skip"`` raises
    ``RateLimitExhaustedError`` at once so the strategy moves on. ``adaptive`` follows the provider's
    rate-limit headers: nothing is sent before a 429's ``retry_after``, none while it reports zero
    requests left, and calls are spaced out when fewer than 10% are left.
    """

    rpm: int | None = None
    tpm: int | None = None
    on_limit: OnLimit = "wait"
    max_wait: float = 5.0
    adaptive: bool = True

    def __post_init__(self) -> None:
        if (self.rpm is not None and self.rpm < 1) or (self.tpm is not None and self.tpm < 1):
            raise ValueError("rpm and tpm must be at least 1 (or None for no limit)")
        if self.on_limit not in ("wait", "skip"):
            raise ValueError(f"on_limit must be 'wait' or 'skip', not {self.on_limit!r}")
        if self.max_wait < 0:
            raise ValueError("max_wait must not be negative")


@dataclass(frozen=True, slots=True)
class _Ticket:
    """What one call reserved: the tokens and the token-window slot holding them (None: not limited)."""

    tokens: int
    token_slot: int | None


_NOTHING_RESERVED = _Ticket(0, None)


class RateLimitedModel(WrapperModel):
    """Reserves room under one deployment's ``RateLimitPolicy`` before every upstream call.

    Raises ``RateLimitExhaustedError`` (no call made) when there is no room within the allowed wait.
    """

    def __init__(
        self,
        inner: ChatModel,
        *,
        deployment: str,
        policy: RateLimitPolicy,
        store: StateStore,
        clock: Clock | None = None,
        profile: ModelProfile | None = None,
    ) -> None:
        super().__init__(inner)
        self._deployment = deployment
        self._policy = policy
        self._store = store
        self._clock = clock or SystemClock()
        self._profile = profile or ModelProfile(name=deployment)
        self._rpm_key = f"rpm:{deployment}"
        self._tpm_key = f"tpm:{deployment}"

    def __repr__(self) -> str:
        return f"RateLimitedModel({self.inner!r}, deployment={self._deployment!r})"

    @property
    def policy(self) -> RateLimitPolicy:
        """The limits this wrapper applies."""
        return self._policy

    async def complete(self, request: ChatRequest) -> Completion:
        ticket = await self._acquire(request)
        try:
            completion = await self.inner.complete(request)
        except RateLimitedError as exc:
            await self._learn(RateLimitSnapshot(retry_after=exc.retry_after))
            raise
        await self._settle(ticket, completion.usage)
        await self._learn(completion.rate_limits)
        return completion

    async def stream(self, request: ChatRequest) -> AsyncIterator[StreamDelta]:
        ticket = await self._acquire(request)
        usage: Usage | None = None
        limits: RateLimitSnapshot | None = None
        try:
            async with closing(self.inner.stream(request)) as deltas:
                async for delta in deltas:
                    usage = delta.usage or usage
                    limits = delta.rate_limits or limits
                    yield delta
        except RateLimitedError as exc:
            await self._learn(RateLimitSnapshot(retry_after=exc.retry_after))
            raise
        if usage is not None:
            await self._settle(ticket, usage)
        if limits is not None:
            await self._learn(limits)

    def estimate_tokens(self, request: ChatRequest) -> int:
        """Tokens reserved for ``request``: estimated prompt plus the output it may produce."""
        return estimate_message_tokens(request.messages) + self._profile.reserved_output(request)

    @property
    def _tracks_requests(self) -> bool:
        return self._policy.rpm is not None or self._policy.adaptive

    async def _acquire(self, request: ChatRequest) -> _Ticket:
        """Wait (bounded) until both limits have room, then record the send; or raise."""
        if not self._tracks_requests and self._policy.tpm is None:
            return _NOTHING_RESERVED
        # Only a token limit needs the estimate (a prompt's token count is a walk over all its text).
        tokens = 0 if self._policy.tpm is None else self.estimate_tokens(request)
        started = self._store.now(self._clock)
        while True:
            now = self._store.now(self._clock)
            ticket, ready = await self._take(now, tokens)
            if ticket is not None:
                return ticket
            self._check_wait(request, started, now, ready)
            _log.info("waiting %.2fs for %s's local rate limit", ready - now, self._deployment)
            await self._clock.sleep(ready - now)

    async def _take(self, now: float, tokens: int) -> tuple[_Ticket | None, float]:
        """Record the send at ``now`` in both windows, or in neither: the ticket, or when to try again."""
        if self._policy.tpm is None:
            # Requests alone (an rpm, or the adaptive pacing every deployment has by default): one window,
            # so one plain take, without the all-or-none bookkeeping of several.
            grant = await self._store.take_window(
                self._rpm_key, kind="requests", now=now, limit=self._policy.rpm, amount=1
            )
            if grant.taken:
                return _NOTHING_RESERVED, now
            return None, now if grant.ready_at is None else grant.ready_at
        takes = []
        if self._tracks_requests:
            takes.append(WindowTake(self._rpm_key, "requests", self._policy.rpm, 1))
        if self._policy.tpm is not None:
            takes.append(WindowTake(self._tpm_key, "units", self._policy.tpm, tokens))
        # One atomic step for both windows (one round trip on a shared store; nothing to give back).
        grants = await self._store.take_windows(takes, now=now)
        if all(grant.taken for grant in grants):
            token_slot = grants[-1].slot if self._policy.tpm is not None else None
            return _Ticket(tokens, token_slot), now
        if self._policy.tpm is not None and grants[-1].ready_at is None:
            raise RateLimitExhaustedError(
                f"the call needs about {tokens} tokens, more than {self._deployment}'s limit of "
                f"{self._policy.tpm} tokens per minute; lower max_tokens or raise tpm",
                deployment=self._deployment,
            )
        refused = [grant.ready_at for grant in grants if not grant.taken and grant.ready_at is not None]
        return None, max(refused, default=now)

    def _check_wait(self, request: ChatRequest, started: float, now: float, ready: float) -> None:
        """Raise ``RateLimitExhaustedError`` unless waiting until ``ready`` is allowed."""
        wait = ready - now
        if self._policy.on_limit == "skip":
            why = "the policy skips instead of waiting"
        elif request.has_fallback:
            why = "the request has another deployment to try, so it does not wait here"
        elif ready - started > self._policy.max_wait:
            why = f"more than the allowed wait of {self._policy.max_wait:g}s"
        elif request.deadline is not None and ready - now >= request.deadline - self._clock.monotonic():
            why = "past the request's deadline"
        else:
            return
        raise RateLimitExhaustedError(
            f"{self._deployment}'s local rate limit has no room for {wait:.2f}s ({why}); "
            "another deployment may have room now",
            retry_after=wait,
            deployment=self._deployment,
        )

    async def _settle(self, ticket: _Ticket, usage: Usage) -> None:
        """Replace the token reservation by the reported usage (refund or charge the difference)."""
        token_slot = ticket.token_slot
        if token_slot is None or usage.estimated:
            return
        delta = usage.total_tokens - ticket.tokens
        await self._store.adjust_window(self._tpm_key, slot=token_slot, delta=delta)

    async def _learn(self, snapshot: RateLimitSnapshot) -> None:
        if not self._policy.adaptive or snapshot.is_empty:
            return
        now = self._store.now(self._clock)
        await self._store.update(
            self._rpm_key, lambda old: (learn_from_snapshot(_request_log(old), snapshot, now), None)
        )
        if snapshot.remaining_requests is not None and snapshot.remaining_requests <= 0:
            _log.info("%s reports no requests left; pausing it locally", self._deployment)


def _request_log(value: object | None) -> RequestLog:
    return value if isinstance(value, RequestLog) else RequestLog()
