"""Circuit breaker: stop calling a deployment that keeps failing, then test it with a few probe calls.

Owns the breaker policy, its state (a frozen value of plain fields kept in a ``StateStore`` under
``breaker:<deployment>``), the pure transition functions ``allow`` / ``record_success`` /
``record_failure`` / ``release``, and ``CircuitBreakerModel``, the ``ChatModel`` wrapper that applies
them (counting what ``failure_rule`` says counts) and reports every transition as an event and a log
line. It does not retry (the retry wrapper above does), never waits out the reset timeout (an open
circuit is skipped at once with ``CircuitOpenError`` so a strategy moves on) and leaves 429s to the
cooldown below it.

closed --N consecutive failures, or failure rate >= R over the window--> open
open --reset_timeout passed, next call--> half_open (that call is a probe; up to K run at once)
half_open --K probe successes--> closed;  half_open --a probe fails--> open (the timeout starts again)
"""

from __future__ import annotations

import logging
import math
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from typing import Literal

from model_orchestrator.core.clock import Clock
from model_orchestrator.core.errors import CircuitOpenError, ConfigError
from model_orchestrator.core.events import CircuitClosed, CircuitHalfOpened, CircuitOpened, EventBus
from model_orchestrator.core.frozen import quick_init
from model_orchestrator.core.model import ChatModel
from model_orchestrator.core.request import ChatRequest
from model_orchestrator.core.response import Completion, StreamDelta
from model_orchestrator.core.stream_start import start_stream
from model_orchestrator.core.wrapper import WrapperModel
from model_orchestrator.resilience.empty_answer import empty_answer_error, is_empty
from model_orchestrator.resilience.failure_rule import counts_as_failure
from model_orchestrator.resilience.state_store import StateStore

_log = logging.getLogger(__name__)

CircuitName = Literal["closed", "open", "half_open"]


@dataclass(frozen=True, slots=True)
class BreakerPolicy:
    """When to open, how long to stay open, how many probes to let through when half-open.

    Opens after ``failure_threshold`` consecutive counted failures, or when at least ``min_calls`` calls
    in the last ``window_seconds`` failed at a rate of ``failure_rate`` or more. The window is kept as
    ``window_buckets`` counters, so it slides in steps of ``window_seconds / window_buckets``.
    ``half_open_probes`` calls may be in flight at once while half-open; that many successes close.
    """

    failure_threshold: int = 5
    failure_rate: float = 0.5
    window_seconds: float = 60.0
    min_calls: int = 10
    reset_timeout: float = 30.0
    half_open_probes: int = 1
    window_buckets: int = 12

    def __post_init__(self) -> None:
        counts = (self.failure_threshold, self.min_calls, self.half_open_probes, self.window_buckets)
        if min(counts) < 1:
            raise ConfigError(
                "circuit breaker: failure_threshold, min_calls, half_open_probes and window_buckets "
                "must be at least 1"
            )
        if not 0 < self.failure_rate <= 1 or self.window_seconds <= 0 or self.reset_timeout <= 0:
            raise ConfigError(
                "circuit breaker: failure_rate must be in (0, 1], window_seconds and reset_timeout above 0"
            )

    @property
    def bucket_seconds(self) -> float:
        """The width of one window counter."""
        return self.window_seconds / self.window_buckets


@quick_init
@dataclass(frozen=True, slots=True)
class BreakerState:
    """One deployment's breaker, as stored. Times are on the store's timebase
    (``StateStore.now``: monotonic in one process, wall time in a shared store).

    ``window`` holds ``(bucket_start, successes, failures)`` counters, oldest first.
    ``probe_started_at`` is when the latest half-open probe was let through.
    """

    state: CircuitName = "closed"
    consecutive_failures: int = 0
    window: tuple[tuple[float, int, int], ...] = ()
    opened_at: float | None = None
    half_open_in_flight: int = 0
    half_open_successes: int = 0
    probe_started_at: float | None = None


CLOSED = BreakerState()


def allow(
    state: BreakerState | None, policy: BreakerPolicy, now: float
) -> tuple[BreakerState, bool, float | None]:
    """Whether a call may go out now: ``(new_state, allowed, retry_after)``.

    ``retry_after`` is the rest of the open time when refused (None when unknown: probes in flight).
    A call allowed while the new state is half-open is a probe; report its outcome with ``probe=True``.
    """
    state = state or CLOSED
    if state.state == "closed":
        return state, True, None
    if state.state == "open":
        remaining = _open_remaining(state, policy, now)
        if remaining > 0:
            return state, False, remaining
        probing = replace(
            state, state="half_open", half_open_in_flight=1, half_open_successes=0, probe_started_at=now
        )
        return probing, True, None
    if state.half_open_in_flight < policy.half_open_probes:
        in_flight = state.half_open_in_flight + 1
        return replace(state, half_open_in_flight=in_flight, probe_started_at=now), True, None
    if _probes_lost(state, policy, now):
        # The probe slots have been taken for a whole reset timeout: assume their owners died (a crash, or a
        # cancelled store update) and let one more through rather than staying half-open forever.
        return replace(state, probe_started_at=now), True, None
    return state, False, None


def record_success(
    state: BreakerState | None, policy: BreakerPolicy, now: float, *, probe: bool = False
) -> BreakerState:
    """The state after a call succeeded. Outcomes of calls let in before the circuit opened are ignored."""
    state = state or CLOSED
    if state.state == "closed":
        # Built whole rather than with ``replace``: every successful call makes one.
        return BreakerState(
            state="closed",
            consecutive_failures=0,
            window=_counted(state.window, policy, now, ok=True),
            opened_at=state.opened_at,
            half_open_in_flight=state.half_open_in_flight,
            half_open_successes=state.half_open_successes,
            probe_started_at=state.probe_started_at,
        )
    if state.state == "half_open" and probe:
        successes = state.half_open_successes + 1
        if successes >= policy.half_open_probes:
            return CLOSED
        in_flight = max(0, state.half_open_in_flight - 1)
        return replace(state, half_open_in_flight=in_flight, half_open_successes=successes)
    return state


def record_failure(
    state: BreakerState | None, policy: BreakerPolicy, now: float, *, probe: bool = False
) -> BreakerState:
    """The state after a counted failure: may open (closed) or re-open (a half-open probe failed)."""
    state = state or CLOSED
    if state.state == "closed":
        failed = replace(
            state,
            consecutive_failures=state.consecutive_failures + 1,
            window=_counted(state.window, policy, now, ok=False),
        )
        if failed.consecutive_failures >= policy.failure_threshold or _rate_tripped(failed, policy, now):
            return _opened(failed, now)
        return failed
    if state.state == "half_open" and probe:
        return _opened(replace(state, consecutive_failures=state.consecutive_failures + 1), now)
    return state


def release(state: BreakerState | None, *, probe: bool) -> BreakerState:
    """The state after a call whose outcome says nothing about the deployment (frees its probe slot)."""
    state = state or CLOSED
    if state.state == "half_open" and probe:
        return replace(state, half_open_in_flight=max(0, state.half_open_in_flight - 1))
    return state


def window_counts(state: BreakerState, policy: BreakerPolicy, now: float) -> tuple[int, int]:
    """``(calls, failures)`` counted in the window ending at ``now``."""
    live = _live(state.window, policy, now)
    return sum(ok + failed for _, ok, failed in live), sum(failed for _, _, failed in live)


def breaker_key(deployment: str) -> str:
    """The store key of ``deployment``'s breaker."""
    return f"breaker:{deployment}"


async def breaker_state(store: StateStore, deployment: str) -> BreakerState:
    """``deployment``'s stored breaker (closed when it has none yet), for inspection."""
    value = await store.get(breaker_key(deployment))
    return value if isinstance(value, BreakerState) else CLOSED


class CircuitBreakerModel(WrapperModel):
    """Skips its deployment without a call while the circuit is open; counts the outcome of every call.

    An empty answer (``empty_answer.is_empty``: no visible text, no tool call) is a soft failure: counted,
    and raised as a retryable ``ServerError`` (502) so the layers above try again or move on. A stream that
    yields no text or tool call at all is the same; its empty leading deltas are held back until content
    arrives, so a consumer never sees a finished stream that then fails. ``empty_is_failure`` False (the
    model's ``retry_on_empty: false``) counts an empty answer as a success and returns it.
    """

    def __init__(
        self,
        inner: ChatModel,
        *,
        deployment: str,
        policy: BreakerPolicy,
        store: StateStore,
        clock: Clock,
        bus: EventBus,
        provider: str | None = None,
        empty_is_failure: bool = True,
    ) -> None:
        super().__init__(inner)
        self._deployment = deployment
        self._provider = provider
        self._empty_is_failure = empty_is_failure
        self._policy = policy
        self._store = store
        self._clock = clock
        self._bus = bus
        self._key = breaker_key(deployment)

    def __repr__(self) -> str:
        return f"CircuitBreakerModel({self.inner!r}, deployment={self._deployment!r})"

    async def complete(self, request: ChatRequest) -> Completion:
        probe = await self._admit(request)
        try:
            completion = await self.inner.complete(request)
        except BaseException as exc:
            await self._settle(request, probe, exc)
            raise
        if self._empty_is_failure and is_empty(completion):
            error = empty_answer_error(self._deployment, self._provider)
            await self._settle(request, probe, error)
            raise error
        await self._settle(request, probe, None)
        return completion

    async def stream(self, request: ChatRequest) -> AsyncIterator[StreamDelta]:
        probe = await self._admit(request)
        try:
            started = await start_stream(self.inner.stream(request))
        except BaseException as exc:
            await self._settle(request, probe, exc)
            raise
        async with started:
            if not started.has_content and self._empty_is_failure:
                error = empty_answer_error(self._deployment, self._provider)
                await self._settle(request, probe, error)
                raise error
            try:
                async for delta in started:
                    yield delta
            except BaseException as exc:
                await self._settle(request, probe, exc)
                raise
        await self._settle(request, probe, None)

    async def _admit(self, request: ChatRequest) -> bool:
        """Ask the store whether this call may go out; True when it is a half-open probe."""
        now = self._store.now(self._clock)

        def change(old: BreakerState | None) -> tuple[BreakerState, tuple[BreakerState, bool, float | None]]:
            new, allowed, retry_after = allow(old, self._policy, now)
            return new, (old or CLOSED, allowed, retry_after)

        old, allowed, retry_after = await self._store.update(self._key, change)
        if not allowed:
            raise self._open_error(old, retry_after)
        if old.state == "open":
            self._announce(request, "half_open", old)
        return old.state != "closed"

    async def _settle(self, request: ChatRequest, probe: bool, error: BaseException | None) -> None:
        now = self._store.now(self._clock)
        counted = error is not None and counts_as_failure(error)
        if not probe:
            # Outside a probe a success never changes the circuit's state (only its window), so nobody
            # waits for the write; an uncounted error changes nothing at all.
            if error is None:
                await self._store.record(self._key, lambda old: record_success(old, self._policy, now))
            if error is None or not counted:
                return

        def change(old: BreakerState | None) -> tuple[BreakerState, tuple[BreakerState, BreakerState]]:
            if error is None:
                new = record_success(old, self._policy, now, probe=probe)
            elif counted:
                new = record_failure(old, self._policy, now, probe=probe)
            else:
                new = release(old, probe=probe)
            return new, (old or CLOSED, new)

        old, new = await self._store.update(self._key, change)
        if new.state != old.state:
            self._announce(request, new.state, new)

    def _announce(self, request: ChatRequest, state: CircuitName, new: BreakerState) -> None:
        """Log a transition (opening is a WARNING: the deployment drops out of service) and emit its event."""
        request_id, wall, deployment = request.request_id or "", self._clock.wall(), self._deployment
        event: CircuitOpened | CircuitHalfOpened | CircuitClosed
        if state == "open":
            calls, failures = window_counts(new, self._policy, self._store.now(self._clock))
            count, reset = max(new.consecutive_failures, failures), self._policy.reset_timeout
            message = (
                "circuit opened for %s after %d failures (%d calls in the window); skipping it for %.1fs"
            )
            _log.warning(message, deployment, count, calls, reset)
            event = CircuitOpened(request_id, wall, deployment, failures=count, reset_after=reset)
        elif state == "half_open":
            _log.info("circuit half-open for %s: letting a probe call through", deployment)
            event = CircuitHalfOpened(request_id, wall, deployment)
        else:
            _log.info("circuit closed for %s: probe calls succeeded, back in service", deployment)
            event = CircuitClosed(request_id, wall, deployment)
        self._bus.emit(event)

    def _open_error(self, state: BreakerState, retry_after: float | None) -> CircuitOpenError:
        detail = (
            "is half-open and its probe calls are still running"
            if state.state == "half_open"
            else f"is open after repeated failures; it will be tried again in {retry_after or 0:.1f}s"
        )
        return CircuitOpenError(
            f"circuit for {self._deployment} {detail}; skipped without a call (use another model or wait)",
            retry_after=retry_after,
            provider=self._provider,
            deployment=self._deployment,
        )


def _open_remaining(state: BreakerState, policy: BreakerPolicy, now: float) -> float:
    opened = state.opened_at if state.opened_at is not None else -math.inf
    return opened + policy.reset_timeout - now


def _probes_lost(state: BreakerState, policy: BreakerPolicy, now: float) -> bool:
    started = state.probe_started_at
    return started is not None and now - started >= policy.reset_timeout


def _opened(state: BreakerState, now: float) -> BreakerState:
    return BreakerState("open", state.consecutive_failures, state.window, opened_at=now)


def _rate_tripped(state: BreakerState, policy: BreakerPolicy, now: float) -> bool:
    calls, failures = window_counts(state, policy, now)
    return calls >= policy.min_calls and failures >= policy.failure_rate * calls


def _live(
    window: tuple[tuple[float, int, int], ...], policy: BreakerPolicy, now: float
) -> tuple[tuple[float, int, int], ...]:
    """The counters whose bucket started within the last ``window_seconds``."""
    oldest = now - policy.window_seconds
    return tuple(bucket for bucket in window if bucket[0] > oldest)


def _counted(
    window: tuple[tuple[float, int, int], ...], policy: BreakerPolicy, now: float, *, ok: bool
) -> tuple[tuple[float, int, int], ...]:
    """``window`` with one more outcome counted in the bucket holding ``now`` (expired buckets dropped)."""
    start = math.floor(now / policy.bucket_seconds) * policy.bucket_seconds
    live = _live(window, policy, now)
    if live and live[-1][0] == start:
        _, successes, failures = live[-1]
        live = live[:-1]
    else:
        successes = failures = 0
    return (*live, (start, successes + ok, failures + (not ok)))
