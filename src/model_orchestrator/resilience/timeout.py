"""``TimeoutModel``: bounds each upstream call by the deployment's timeout and the request's deadline.

Owns the time limits of one call and whose fault running out of time is: the deployment's own timeout
-> ``RequestTimeoutError`` (retryable, counts against the deployment); the caller's deadline ->
``DeadlineExceededError`` (not retryable, never counted against the deployment, so a caller's short
deadline cannot cool down a healthy deployment). A deadline already passed raises without a call.

On expiry the inner call is cancelled, so the adapter closes its connection and the upstream stops.

Streams: ``first_token_timeout`` (default: ``timeout``) bounds the time from the call to the first
delta carrying text, and ``idle_timeout`` (default: ``timeout``) each gap between deltas after that;
a stream that keeps producing is not cut by a total time, only by the deadline.

Timers run on the injected ``Clock`` (a watchdog task sleeping on it, like ``asyncio.timeout``), so a
``FakeClock`` drives them in tests; note that a fake clock's sleep returns at once, so with a
``FakeClock`` an inner call that awaits anything real times out immediately.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable
from types import TracebackType
from typing import Literal, TypeVar

from model_orchestrator.core.clock import Clock, SystemClock
from model_orchestrator.core.errors import DeadlineExceededError, RequestTimeoutError
from model_orchestrator.core.model import ChatModel
from model_orchestrator.core.request import ChatRequest
from model_orchestrator.core.response import Completion, StreamDelta
from model_orchestrator.resilience._streams import closing_stream

T = TypeVar("T")
Limit = Literal["timeout", "first_token", "idle", "deadline"]


class _Expired(Exception):
    """The watchdog fired before the guarded await finished."""


class _Watchdog:
    """``async with _Watchdog(clock, s):`` cancels the block's task after ``s`` seconds on ``clock``
    and turns that cancellation into ``_Expired``; a cancellation from elsewhere passes through."""

    def __init__(self, clock: Clock, seconds: float) -> None:
        self._clock = clock
        self._seconds = seconds
        self._expired = False
        self._inside = False
        self._task: asyncio.Task[object] | None = None
        self._timer: asyncio.Task[None] | None = None
        self._cancelling = 0

    async def __aenter__(self) -> None:
        task = asyncio.current_task()
        if task is None:
            raise RuntimeError("a timeout needs a running task")
        self._task, self._cancelling, self._inside = task, task.cancelling(), True
        self._timer = asyncio.get_running_loop().create_task(self._fire())

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._inside = False
        if self._timer is not None:
            self._timer.cancel()
        if not self._expired or self._task is None:
            return
        # Ours only if no one else asked to cancel the task meanwhile (asyncio.timeout's rule).
        if self._task.uncancel() <= self._cancelling and exc_type is asyncio.CancelledError:
            raise _Expired from exc

    async def _fire(self) -> None:
        await self._clock.sleep(self._seconds)
        if self._inside and self._task is not None:
            self._expired = True
            self._task.cancel()


class TimeoutModel:
    """Runs one deployment's calls under ``min(timeout, deadline - now)``; see the module docstring.

    ``timeout`` None: only the deadline (if any) bounds a call.
    """

    def __init__(
        self,
        inner: ChatModel,
        *,
        deployment: str,
        timeout: float | None,
        clock: Clock | None = None,
        first_token_timeout: float | None = None,
        idle_timeout: float | None = None,
    ) -> None:
        for value in (timeout, first_token_timeout, idle_timeout):
            if value is not None and value <= 0:
                raise ValueError("timeouts must be positive seconds (or None for no limit)")
        self._inner = inner
        self._deployment = deployment
        self._timeout = timeout
        self._first_token_timeout = first_token_timeout if first_token_timeout is not None else timeout
        self._idle_timeout = idle_timeout if idle_timeout is not None else timeout
        self._clock = clock or SystemClock()

    def __repr__(self) -> str:
        return f"TimeoutModel({self._inner!r}, deployment={self._deployment!r}, timeout={self._timeout})"

    @property
    def name(self) -> str:
        return self._inner.name

    async def complete(self, request: ChatRequest) -> Completion:
        limit, kind = self._limit(request, (self._timeout, "timeout"))
        return await self._within(self._inner.complete(request), request, limit, kind)

    async def stream(self, request: ChatRequest) -> AsyncIterator[StreamDelta]:
        started = self._clock.monotonic()
        first_by = None if self._first_token_timeout is None else started + self._first_token_timeout
        seen_text = False
        async with closing_stream(self._inner.stream(request)) as deltas:
            while True:
                if seen_text:
                    limit, kind = self._limit(request, (self._idle_timeout, "idle"))
                else:
                    left = None if first_by is None else first_by - self._clock.monotonic()
                    limit, kind = self._limit(request, (left, "first_token"))
                try:
                    delta = await self._within(anext(deltas), request, limit, kind)
                except StopAsyncIteration:
                    return
                seen_text = seen_text or bool(delta.text)
                yield delta

    async def aclose(self) -> None:
        await self._inner.aclose()

    def _limit(self, request: ChatRequest, own: tuple[float | None, Limit]) -> tuple[float | None, Limit]:
        """The binding limit: the deployment's own (``own``) or the deadline, whichever is sooner."""
        seconds, kind = own
        if request.deadline is not None:
            left = request.deadline - self._clock.monotonic()
            if seconds is None or left <= seconds:
                seconds, kind = left, "deadline"
        if seconds is not None and seconds <= 0:
            raise self._error(kind, request, 0.0)
        return seconds, kind

    async def _within(self, call: Awaitable[T], request: ChatRequest, limit: float | None, kind: Limit) -> T:
        try:
            if limit is None:
                return await call
            async with _Watchdog(self._clock, limit):
                return await call
        except _Expired:
            raise self._error(kind, request, limit or 0.0) from None
        except DeadlineExceededError:
            raise
        except RequestTimeoutError as exc:
            # The adapter's own timer, set to the same deadline, may fire first: still the caller's deadline.
            if request.deadline is not None and self._clock.monotonic() >= request.deadline:
                raise self._error("deadline", request, 0.0) from exc
            raise

    def _error(self, kind: Limit, request: ChatRequest, waited: float) -> RequestTimeoutError:
        if kind == "deadline":
            return DeadlineExceededError(
                f"the request's deadline passed while waiting {waited:.2f}s for {self._deployment}; "
                "allow the request more time",
                deployment=self._deployment,
            )
        if kind == "first_token":
            what = f"sent no text within its {self._first_token_timeout}s first-token timeout"
        elif kind == "idle":
            what = f"stalled for more than its {self._idle_timeout}s idle timeout between chunks"
        else:
            what = f"did not answer within its {self._timeout}s timeout"
        return RequestTimeoutError(
            f"{self._deployment} {what}; it may be retried or another deployment tried",
            deployment=self._deployment,
        )
