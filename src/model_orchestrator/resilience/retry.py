"""Retrying one deployment: ``RetryPolicy`` (pure backoff and retry decisions) and ``RetryingModel``.

Owns which failures are retried (retryable ``ProviderError``s only; never a skipped deployment, the
caller's own deadline, or a 400/401/403/404; and when the request has somewhere else to go,
``request.has_fallback``, never a timeout, 429 or overload: those go to the next option at once and the
cooldown keeps later requests off this deployment), how long to wait (exponential backoff with jitter
and a cap, but never less than the LATEST error's ``retry_after`` or the cooldown the layers inside
recorded for this deployment in the request's ``RequestScope``), and when to give up (attempts per call,
the request deadline, the request's shared attempt budget of failed attempts, a ``retry_after`` or
cooldown too long to wait here). Empty answers (``empty_answer.is_empty``) and streams that end without
text or a tool call count as retryable failures unless ``retry_on_empty`` is off.
Every failed upstream attempt is charged to the request's attempt budget (``ObservedModel`` charges
errors, this layer empty answers); a first attempt never needs budget, only a retry does. It does not decide
cooldowns or circuits (the wrappers inside it do) or fall back to other models (strategies do).

The waits and stops are small tenacity policy objects (``_BackoffOrRetryAfter``, ``_StopAtDeadline``,
...) combined with ``|``, built once per wrapper and read from tenacity's ``RetryCallState`` (the request
is its ``args[0]``). The loop is ours, not ``AsyncRetrying.__call__``: that keeps each call's iteration
state on the retrying object itself, so it cannot be shared by concurrent calls and would have to be built
per call (a third of this layer's cost); ours builds no state at all until a first failure. Sleeps are on
the injected clock.
"""

from __future__ import annotations

import logging
import random
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from dataclasses import dataclass
from functools import partial
from typing import Any, Literal, TypeVar

from tenacity import AsyncRetrying, RetryCallState
from tenacity.stop import stop_after_attempt, stop_base
from tenacity.wait import wait_base

from model_orchestrator.core.clock import Clock, SystemClock
from model_orchestrator.core.errors import (
    DeadlineExceededError,
    DeploymentUnavailableError,
    ProviderError,
    RateLimitedError,
    RequestTimeoutError,
    ServerError,
)
from model_orchestrator.core.events import EventBus, RetryScheduled
from model_orchestrator.core.model import ChatModel
from model_orchestrator.core.request import ChatRequest
from model_orchestrator.core.request_scope import RequestScope, current_scope, request_scope
from model_orchestrator.core.response import Completion, StreamDelta
from model_orchestrator.core.stream_start import DeferredStream, StartedStream, start_stream
from model_orchestrator.core.wrapper import WrapperModel
from model_orchestrator.resilience.cooldown import OVERLOAD_STATUSES
from model_orchestrator.resilience.empty_answer import empty_answer_error, is_empty

_log = logging.getLogger(__name__)

T = TypeVar("T")
Jitter = Literal["full", "equal", "none"]
_JITTERS = ("full", "equal", "none")
# Client errors a retry cannot fix, whatever a translator set ``retryable`` to.
_NEVER_RETRIED_STATUSES = frozenset({400, 401, 403, 404})
# Keeps ``multiplier ** n`` finite; the delay is capped long before this matters.
_MAX_EXPONENT = 64


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How one deployment call is retried.

    ``max_attempts`` counts every call of this deployment for one request (first try included).
    Delays grow ``base_delay * multiplier ** (retry - 1)`` up to ``max_delay``, then jitter:
    ``full`` draws from [0, delay], ``equal`` from [delay/2, delay], ``none`` keeps it.
    A provider's ``retry_after`` raises the wait to at least that; one longer than ``max_retry_after``
    is not waited for here (the error is raised so the strategy can fall back). ``retry_on_empty``: an
    empty answer is a retryable failure (and the breaker counts it); off, it is returned as the answer.
    """

    max_attempts: int = 3
    base_delay: float = 0.5
    max_delay: float = 8.0
    multiplier: float = 2.0
    jitter: Jitter = "full"
    max_retry_after: float = 10.0
    retry_on_empty: bool = True

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1 (1 means no retries)")
        if self.base_delay < 0 or self.max_delay < 0 or self.max_retry_after < 0:
            raise ValueError("delays must not be negative")
        if self.multiplier < 1:
            raise ValueError("multiplier must be at least 1, or delays would shrink")
        if self.jitter not in _JITTERS:
            raise ValueError(f"jitter must be one of {', '.join(_JITTERS)}, not {self.jitter!r}")

    def backoff(self, retry: int, rng: random.Random) -> float:
        """The jittered delay before retry number ``retry`` (1 = the first retry)."""
        exponent = min(max(retry - 1, 0), _MAX_EXPONENT)
        ceiling = min(self.max_delay, self.base_delay * self.multiplier**exponent)
        if self.jitter == "full":
            return rng.uniform(0.0, ceiling)
        if self.jitter == "equal":
            return ceiling / 2 + rng.uniform(0.0, ceiling / 2)
        return ceiling

    def delay_after(
        self, error: BaseException | None, retry: int, rng: random.Random, pause: float | None = None
    ) -> float:
        """Backoff, but never sooner than ``error``'s own ``retry_after`` or the deployment's ``pause``
        (seconds left of a cooldown it started)."""
        return max(self.backoff(retry, rng), _asked_wait(error, pause))

    def waits_too_long(self, error: BaseException | None, pause: float | None = None) -> bool:
        """True when ``error`` (or the deployment's ``pause``) asks for a longer wait than this layer
        waits."""
        return _asked_wait(error, pause) > self.max_retry_after


def _asked_wait(error: BaseException | None, pause: float | None) -> float:
    retry_after = getattr(error, "retry_after", None)
    return max(retry_after or 0.0, pause or 0.0)


def is_retryable(error: BaseException) -> bool:
    """Whether a failed attempt may be tried again on the same deployment."""
    if not isinstance(error, ProviderError) or not error.retryable:
        return False
    # Skipped deployments and the caller's own deadline: another try here cannot help.
    if isinstance(error, DeploymentUnavailableError | DeadlineExceededError):
        return False
    return error.status_code not in _NEVER_RETRIED_STATUSES


def moves_on(error: BaseException) -> bool:
    """Failures not retried here when the request has somewhere else to go: the deployment asked for a
    pause (429, 503/529 overload) or used up its whole timeout, so another deployment answers sooner."""
    if isinstance(error, RateLimitedError | RequestTimeoutError):
        return True
    return isinstance(error, ServerError) and error.status_code in OVERLOAD_STATUSES


def should_retry(error: BaseException, request: ChatRequest) -> bool:
    """Whether to try this deployment again for ``request`` (``is_retryable`` and, with somewhere else
    to go, not a failure that ``moves_on``)."""
    return is_retryable(error) and not (request.has_fallback and moves_on(error))


def _pause(deployment: str, clock: Clock) -> float | None:
    """Seconds left of a cooldown ``deployment`` started during this request (``CooldownModel``)."""
    scope = current_scope()
    return None if scope is None else scope.paused_for(deployment, clock.monotonic())


def _error(retry_state: RetryCallState) -> BaseException | None:
    outcome = retry_state.outcome
    return outcome.exception() if outcome is not None else None


class _BackoffOrRetryAfter(wait_base):
    """Wait: the policy's jittered backoff, raised to the latest error's ``retry_after`` and to the
    deployment's cooldown."""

    def __init__(self, policy: RetryPolicy, rng: random.Random, deployment: str, clock: Clock) -> None:
        self._policy = policy
        self._rng = rng
        self._deployment = deployment
        self._clock = clock

    def __call__(self, retry_state: RetryCallState) -> float:
        pause = _pause(self._deployment, self._clock)
        return self._policy.delay_after(_error(retry_state), retry_state.attempt_number, self._rng, pause)


class _StopAtDeadline(stop_base):
    """Stop when the next wait would reach the request's deadline (no sleep crosses it)."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock

    def __call__(self, retry_state: RetryCallState) -> bool:
        request: ChatRequest = retry_state.args[0]
        if request.deadline is None:
            return False
        return self._clock.monotonic() + (retry_state.upcoming_sleep or 0.0) >= request.deadline


class _StopWhenBudgetSpent(stop_base):
    """Stop when the request's failed attempts (all layers together) have used up its attempt budget."""

    def __init__(self, deployment: str) -> None:
        self._deployment = deployment

    def __call__(self, retry_state: RetryCallState) -> bool:
        scope = current_scope()
        if scope is None or scope.may_retry():
            return False
        _log.warning("not retrying %s: %s", self._deployment, scope.budget_used_up())
        return True


class _StopOnLongRetryAfter(stop_base):
    """Stop when the provider (or the deployment's cooldown) asks for a longer pause than this layer may
    wait."""

    def __init__(self, policy: RetryPolicy, deployment: str, clock: Clock) -> None:
        self._policy = policy
        self._deployment = deployment
        self._clock = clock

    def __call__(self, retry_state: RetryCallState) -> bool:
        pause = _pause(self._deployment, self._clock)
        return self._policy.waits_too_long(_error(retry_state), pause)


def _charge_empty(deployment: str, error: ServerError) -> ServerError:
    """Charge an empty answer to the request's attempt budget: ``ObservedModel`` charges every failed
    upstream call, but saw this one succeed."""
    scope = current_scope()
    if scope is not None:
        scope.record_failure(deployment, "EmptyAnswer")
    return error


class RetryingModel(WrapperModel):
    """Retries one deployment's retryable failures with backoff; see ``RetryPolicy``.

    Emits ``RetryScheduled`` before each pause. Streams are retried only until they produce visible
    text; a failure after that is raised, so output is never duplicated.
    """

    def __init__(
        self,
        inner: ChatModel,
        *,
        deployment: str,
        policy: RetryPolicy | None = None,
        clock: Clock | None = None,
        bus: EventBus | None = None,
        rng: random.Random | None = None,
    ) -> None:
        super().__init__(inner)
        self._deployment = deployment
        self._policy = policy = policy or RetryPolicy()
        self._clock = clock = clock or SystemClock()
        self._bus = bus or EventBus()
        # The policies, built once: tenacity's own objects, which read each call's RetryCallState.
        self._policies = AsyncRetrying(
            sleep=clock.sleep,
            wait=_BackoffOrRetryAfter(policy, rng or random.Random(), deployment, clock),
            stop=stop_after_attempt(policy.max_attempts)
            | _StopOnLongRetryAfter(policy, deployment, clock)
            | _StopAtDeadline(clock)
            | _StopWhenBudgetSpent(deployment),
            reraise=True,
        )

    def __repr__(self) -> str:
        return f"RetryingModel({self.inner!r}, deployment={self._deployment!r})"

    @property
    def policy(self) -> RetryPolicy:
        """The policy this wrapper applies."""
        return self._policy

    def complete(self, request: ChatRequest) -> Coroutine[Any, Any, Completion]:
        # Without the empty-answer check each attempt is the inner call itself: two frames fewer per call.
        attempt = self._complete_once if self._policy.retry_on_empty else self.inner.complete
        return self._retried(attempt, request)

    def stream(self, request: ChatRequest) -> AsyncIterator[StreamDelta]:
        # Retried until the stream has started; past its first text a failure is raised, not retried: the
        # caller already has output.
        return DeferredStream(partial(self._retried, self._start_stream, request))

    async def _retried(self, attempt: Callable[[ChatRequest], Awaitable[T]], request: ChatRequest) -> T:
        """``attempt(request)`` until it succeeds or a policy says stop (then its last error is raised)."""
        if current_scope() is None:  # called outside a request (directly, in tests): budget and pauses
            with request_scope(RequestScope(request.request_id or "")):
                return await self._attempts(attempt, request)
        return await self._attempts(attempt, request)

    async def _attempts(self, attempt: Callable[[ChatRequest], Awaitable[T]], request: ChatRequest) -> T:
        state: RetryCallState | None = None  # built at the first failure: a call that succeeds needs none
        policies = self._policies
        while True:
            try:
                return await attempt(request)
            except Exception as exc:
                if not should_retry(exc, request):
                    raise
                if state is None:
                    state = RetryCallState(policies, attempt, (request,), {})
                state.set_exception((type(exc), exc, exc.__traceback__))
                state.upcoming_sleep = delay = policies.wait(state)
                if policies.stop(state):
                    raise
                self._announce(request, state)
                state.idle_for += delay
                state.prepare_for_next_attempt()
            await self._clock.sleep(delay)

    async def _complete_once(self, request: ChatRequest) -> Completion:
        completion = await self.inner.complete(request)
        if self._policy.retry_on_empty and is_empty(completion):
            raise _charge_empty(self._deployment, empty_answer_error(self._deployment))
        return completion

    async def _start_stream(self, request: ChatRequest) -> StartedStream:
        """Start a stream and read it up to its first visible text or tool-call piece (failures so far are
        retryable); a tool call streams on from its first piece, as text does."""
        started = await start_stream(self.inner.stream(request))
        if not started.has_content and self._policy.retry_on_empty:
            await started.aclose()
            raise _charge_empty(self._deployment, empty_answer_error(self._deployment))
        return started

    def _announce(self, request: ChatRequest, state: RetryCallState) -> None:
        error = _error(state)
        delay = state.upcoming_sleep
        _log.info(
            "retrying %s in %.2fs after %s (attempt %d of %d failed)",
            self._deployment,
            delay,
            type(error).__name__,
            state.attempt_number,
            self._policy.max_attempts,
        )
        self._bus.emit(
            RetryScheduled(
                request_id=request.request_id or "",
                timestamp=self._clock.wall(),
                model=self._deployment,
                attempt=state.attempt_number,
                max_attempts=self._policy.max_attempts,
                delay=delay,
                error_type=type(error).__name__,
            )
        )
