"""``TimeoutModel``: bounds each upstream call by the deployment's timeout and the request's deadline.

Owns the time limits of one call and whose fault running out of time is: the deployment's own timeout
-> ``RequestTimeoutError`` (retryable, counts against the deployment); the caller's deadline ->
``DeadlineExceededError`` (not retryable, never counted against the deployment, so a caller's short
deadline cannot cool down a healthy deployment). A deadline already passed raises without a call.

On expiry the inner call is cancelled, so the adapter closes its connection and the upstream stops.

Streams: ``first_token_timeout`` (default: ``timeout``) bounds the time from the call to the first
delta carrying text, and ``idle_timeout`` (default: ``timeout``) each wait for the next delta after that
(the time a consumer holds a delta does not count); a stream that keeps producing is not cut by a total
time, only by the deadline.

Timers run on the injected ``Clock``, so a ``FakeClock`` drives them in tests (note that a fake clock's
sleep returns at once, so with a ``FakeClock`` an inner call that awaits anything real times out
immediately). One ``_Watch`` task per call or per stream: per delta the stream only notes when it started
waiting and that it stopped, and the timer re-reads that when it wakes (it sleeps again for the rest when
the stream moved on), so nothing is re-armed per delta. Without a ``timeout`` and a deadline no timer runs
at all; the transport's own connect, stall and read limits (``providers.http.Timeouts``) still apply to
HTTP calls.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Literal

from model_orchestrator.core.clock import Clock, SystemClock
from model_orchestrator.core.errors import DeadlineExceededError, RequestTimeoutError
from model_orchestrator.core.model import ChatModel
from model_orchestrator.core.request import ChatRequest
from model_orchestrator.core.response import Completion, StreamDelta
from model_orchestrator.core.stream_start import closing
from model_orchestrator.core.wrapper import WrapperModel

Limit = Literal["timeout", "first_token", "idle", "deadline"]


class _Watch:
    """One timer task for a call or a whole stream, fired when a wait for the inner model outlasts its limit.

    The awaiting side calls ``waiting`` before each await of the inner model and sets ``since`` to None
    after it. The timer sleeps until the current wait's due time; on waking it fires (cancels the task)
    if that wait is still running and due, sleeps again for the rest if a later wait began, and parks
    while the consumer holds a delta (``since`` None). A cancellation it did not cause passes through
    (``asyncio.timeout``'s rule, by the task's ``cancelling`` count).
    """

    __slots__ = (
        "_cancelling",
        "_clock",
        "_parked",
        "_sleeping_until",
        "_task",
        "_timer",
        "deadline",
        "expired",
        "first_by",
        "first_kind",
        "idle",
        "seen_text",
        "since",
    )

    def __init__(
        self,
        clock: Clock,
        *,
        first_by: float | None,
        first_kind: Limit,
        idle: float | None,
        deadline: float | None,
    ) -> None:
        self._clock = clock
        self.first_by = first_by
        self.first_kind = first_kind
        self.idle = idle
        self.deadline = deadline
        self.seen_text = False
        self.since: float | None = None
        self.expired: Limit | None = None
        self._task: asyncio.Task[object] | None = None
        self._cancelling = 0
        self._timer: asyncio.Task[None] | None = None
        self._parked: asyncio.Event | None = None
        self._sleeping_until: float | None = None

    def due(self, since: float) -> tuple[float | None, Limit]:
        """When the wait that began at ``since`` expires, and which limit that is (None: never)."""
        own: float | None
        kind: Limit
        if self.seen_text:
            own, kind = (None if self.idle is None else since + self.idle), "idle"
        else:
            own, kind = self.first_by, self.first_kind
        deadline = self.deadline
        if deadline is not None and (own is None or deadline <= own):
            return deadline, "deadline"
        return own, kind

    def waiting(self) -> Limit | None:
        """Note that a wait begins now; the limit already passed, if one has (nothing is awaited then)."""
        now = self._clock.monotonic()
        due, kind = self.due(now)
        if due is not None and due <= now:
            return kind
        self.since = now
        if self._timer is None:
            task = asyncio.current_task()
            if task is None:
                raise RuntimeError("a timeout needs a running task")
            self._task, self._cancelling = task, task.cancelling()
            self._timer = asyncio.get_running_loop().create_task(self._run())
        elif self._parked is not None:
            self._parked.set()
        elif due is not None and self._sleeping_until is not None and due < self._sleeping_until:
            # The timer would wake too late (an idle limit shorter than the first-token one): start over.
            self._timer.cancel()
            self._sleeping_until = None
            self._timer = asyncio.get_running_loop().create_task(self._run())
        return None

    def fired(self) -> bool:
        """After a ``CancelledError`` in the guarded await: True when this watch caused it (and it is
        taken back), False when someone else cancelled the task."""
        task = self._task
        return self.expired is not None and task is not None and task.uncancel() <= self._cancelling

    def close(self) -> None:
        """Stop the timer task (idempotent)."""
        timer, self._timer = self._timer, None
        if timer is not None:
            timer.cancel()

    async def _run(self) -> None:
        clock = self._clock
        while True:
            since = self.since
            due, kind = (None, self.first_kind) if since is None else self.due(since)
            if due is None:  # the consumer holds a delta, or no limit applies: park until the next wait
                self._parked = asyncio.Event()
                await self._parked.wait()
                self._parked = None
                continue
            left = due - clock.monotonic()
            if left > 0:
                self._sleeping_until = due
                await clock.sleep(left)
                self._sleeping_until = None
                continue
            if self._task is not None:  # no await since reading ``since``: that wait is still running
                self.expired = kind
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
        watch = self._watch(request, self._timeout, "timeout")
        if watch is None:
            return await self.inner.complete(request)
        try:
            expired = watch.waiting()
            if expired is not None:
                raise self._error(expired, request, 0.0)
            since = watch.since or 0.0
            try:
                return await self.inner.complete(request)
            except asyncio.CancelledError:
                if watch.fired() and watch.expired is not None:
                    raise self._error(watch.expired, request, self._clock.monotonic() - since) from None
                raise
            except RequestTimeoutError as exc:
                if self._callers_deadline(exc, request):
                    raise self._error("deadline", request, 0.0) from exc
                raise
        finally:
            watch.close()

    def stream(self, request: ChatRequest) -> AsyncIterator[StreamDelta]:
        watch = self._watch(request, self._first_token_timeout, "first_token")
        if watch is None:
            return self.inner.stream(request)
        return self._watched(request, watch)

    async def _watched(self, request: ChatRequest, watch: _Watch) -> AsyncIterator[StreamDelta]:
        try:
            async with closing(self.inner.stream(request)) as deltas:
                while True:
                    expired = watch.waiting()
                    if expired is not None:
                        raise self._error(expired, request, 0.0)
                    since = watch.since or 0.0
                    try:
                        delta = await anext(deltas)
                    except StopAsyncIteration:
                        return
                    except asyncio.CancelledError:
                        if watch.fired() and watch.expired is not None:
                            waited = self._clock.monotonic() - since
                            raise self._error(watch.expired, request, waited) from None
                        raise
                    except RequestTimeoutError as exc:
                        if self._callers_deadline(exc, request):
                            raise self._error("deadline", request, 0.0) from exc
                        raise
                    finally:
                        watch.since = None
                    if not watch.seen_text and (delta.text or delta.tool_calls):
                        watch.seen_text = True
                    yield delta
        finally:
            watch.close()

    def _watch(self, request: ChatRequest, first: float | None, first_kind: Limit) -> _Watch | None:
        """The watch for one call or stream (None: no limit applies, so no timer runs)."""
        idle = self._idle_timeout if first_kind == "first_token" else None
        deadline = request.deadline
        if first is None and idle is None and deadline is None:
            return None
        first_by = None if first is None else self._clock.monotonic() + first
        return _Watch(self._clock, first_by=first_by, first_kind=first_kind, idle=idle, deadline=deadline)

    def _callers_deadline(self, error: RequestTimeoutError, request: ChatRequest) -> bool:
        """An inner timeout that is really the caller's deadline: the adapter's own timer, set to the same
        deadline, may fire first."""
        if isinstance(error, DeadlineExceededError) or request.deadline is None:
            return False
        return self._clock.monotonic() >= request.deadline

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
