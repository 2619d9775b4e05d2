"""``TimeoutModel``: bounds each upstream call by the deployment's timeout and the request's deadline.

Owns the time limits of one call and whose fault running out of time is: the deployment's own timeout
-> ``RequestTimeoutError`` (retryable, counts against the deployment); the caller's deadline ->
``DeadlineExceededError`` (not retryable, never counted against the deployment, so a caller's short
deadline cannot cool down a healthy deployment). A deadline already passed raises without a call.

On expiry the inner call is cancelled, so the adapter closes its connection and the upstream stops.

Streams: ``first_token_timeout`` (default: ``timeout``) bounds the time from the call to the first
delta carrying text, and ``idle_timeout`` (default: ``timeout``) each gap between deltas after that;
a stream that keeps producing is not cut by a total time, only by the deadline.

Timers run on the injected ``Clock`` (one watchdog task per call or per stream, sleeping on it and
re-armed for each delta, like ``asyncio.timeout``'s ``reschedule``), so a ``FakeClock`` drives them in
tests; note that a fake clock's sleep returns at once, so with a ``FakeClock`` an inner call that awaits
anything real times out immediately. Without a ``timeout`` and a deadline no timer runs at all; the
transport's own connect, stall and read limits (``providers.http.Timeouts``) still apply to HTTP calls.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable
from typing import Literal, TypeVar

from model_orchestrator.core.clock import Clock, SystemClock
from model_orchestrator.core.errors import DeadlineExceededError, RequestTimeoutError
from model_orchestrator.core.model import ChatModel
from model_orchestrator.core.request import ChatRequest
from model_orchestrator.core.response import Completion, StreamDelta
from model_orchestrator.core.stream_start import closing
from model_orchestrator.core.wrapper import WrapperModel

T = TypeVar("T")
Limit = Literal["timeout", "first_token", "idle", "deadline"]


class _Expired(Exception):
    """The watchdog fired before the guarded await finished."""


class _Watchdog:
    """One timer task for a call or a whole stream, re-armed for each guarded await.

    ``await watchdog.guard(call, s)`` cancels the awaiting task if ``call`` takes more than ``s``
    seconds on ``clock`` and turns that cancellation into ``_Expired``; a cancellation from elsewhere
    passes through. Between guarded awaits (while a stream's consumer holds a delta) it is disarmed.
    Re-arming moves the due time without a new task (the timer sleeps again for the remainder), unless
    the new due time is sooner than the timer's current sleep. ``close`` ends the timer.
    """

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._due: float | None = None
        self._sleeping_until: float | None = None
        self._armed = asyncio.Event()
        self._task: asyncio.Task[object] | None = None
        self._cancelling = 0
        self._expired = False
        self._timer: asyncio.Task[None] | None = None

    async def guard(self, call: Awaitable[T], seconds: float) -> T:
        task = asyncio.current_task()
        if task is None:
            raise RuntimeError("a timeout needs a running task")
        self._task, self._cancelling = task, task.cancelling()
        self._arm(self._clock.monotonic() + seconds)
        try:
            return await call
        except asyncio.CancelledError:
            # Ours only if no one else asked to cancel the task meanwhile (asyncio.timeout's rule).
            if self._expired and task.uncancel() <= self._cancelling:
                raise _Expired from None
            raise
        finally:
            self._due = None
            self._armed.clear()

    def close(self) -> None:
        """Stop the timer task (idempotent)."""
        timer, self._timer = self._timer, None
        if timer is not None:
            timer.cancel()

    def _arm(self, due: float) -> None:
        self._due = due
        self._armed.set()
        sleeping = self._sleeping_until
        if self._timer is not None and sleeping is not None and due < sleeping:
            self.close()  # it would wake too late: start over
        if self._timer is None:
            self._timer = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        while True:
            await self._armed.wait()
            due = self._due
            if due is None:
                continue
            left = due - self._clock.monotonic()
            if left > 0:
                self._sleeping_until = due
                await self._clock.sleep(left)
                self._sleeping_until = None
                continue
            if self._task is not None:
                self._expired = True
                self._due = None
                self._armed.clear()
                self._task.cancel()
            return


class TimeoutModel(WrapperModel):
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
        super().__init__(inner)
        self._deployment = deployment
        self._timeout = timeout
        self._first_token_timeout = first_token_timeout if first_token_timeout is not None else timeout
        self._idle_timeout = idle_timeout if idle_timeout is not None else timeout
        self._clock = clock or SystemClock()

    def __repr__(self) -> str:
        return f"TimeoutModel({self.inner!r}, deployment={self._deployment!r}, timeout={self._timeout})"

    async def complete(self, request: ChatRequest) -> Completion:
        limit, kind = self._limit(request, (self._timeout, "timeout"))
        watchdog = _Watchdog(self._clock)
        try:
            return await self._within(watchdog, self.inner.complete(request), request, limit, kind)
        finally:
            watchdog.close()

    async def stream(self, request: ChatRequest) -> AsyncIterator[StreamDelta]:
        started = self._clock.monotonic()
        first_by = None if self._first_token_timeout is None else started + self._first_token_timeout
        seen_text = False
        watchdog = _Watchdog(self._clock)  # one timer for the whole stream, not one per delta
        try:
            async with closing(self.inner.stream(request)) as deltas:
                while True:
                    if seen_text:
                        limit, kind = self._limit(request, (self._idle_timeout, "idle"))
                    else:
                        left = None if first_by is None else first_by - self._clock.monotonic()
                        limit, kind = self._limit(request, (left, "first_token"))
                    try:
                        delta = await self._within(watchdog, anext(deltas), request, limit, kind)
                    except StopAsyncIteration:
                        return
                    seen_text = seen_text or bool(delta.text or delta.tool_calls)
                    yield delta
        finally:
            watchdog.close()

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

    async def _within(
        self, watchdog: _Watchdog, call: Awaitable[T], request: ChatRequest, limit: float | None, kind: Limit
    ) -> T:
        try:
            if limit is None:
                return await call
            return await watchdog.guard(call, limit)
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
