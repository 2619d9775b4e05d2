"""``ObservedModel``: the wrapper every upstream attempt passes through.

It prices the reported usage, measures latency and emits ``AttemptStarted`` / ``AttemptSucceeded`` /
``AttemptFailed`` (cancelled included) so the ledger and telemetry see every attempt. It does not retry,
route or decide anything.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from model_orchestrator.core.clock import Clock, SystemClock
from model_orchestrator.core.errors import OrchestratorError
from model_orchestrator.core.events import AttemptFailed, AttemptStarted, AttemptSucceeded, EventBus
from model_orchestrator.core.ids import new_id
from model_orchestrator.core.model import ChatModel
from model_orchestrator.core.pricing import Price, cost_of
from model_orchestrator.core.request import ChatRequest
from model_orchestrator.core.request_scope import current_scope
from model_orchestrator.core.response import Completion, StreamDelta
from model_orchestrator.core.stream_start import closing
from model_orchestrator.core.tokens import estimate_message_tokens, estimate_tokens_for_chars
from model_orchestrator.core.usage import Usage
from model_orchestrator.core.wrapper import WrapperModel


class ObservedModel(WrapperModel):
    """Wraps one deployment's adapter: prices usage and reports every attempt to the event bus."""

    def __init__(
        self,
        inner: ChatModel,
        *,
        name: str,
        provider: str,
        deployment: str,
        price: Price | None,
        bus: EventBus,
        clock: Clock | None = None,
    ) -> None:
        super().__init__(inner)
        self._name = name
        self._provider = provider
        self._deployment = deployment
        self._price = price
        self._bus = bus
        self._clock = clock or SystemClock()

    @property
    def name(self) -> str:
        return self._name

    @property
    def price(self) -> Price | None:
        """The price this deployment's usage is charged at (None when unknown)."""
        return self._price

    async def complete(self, request: ChatRequest) -> Completion:
        attempt = self._start(request)
        started = self._clock.monotonic()
        try:
            completion = await self.inner.complete(request)
        except asyncio.CancelledError:
            # The request was sent: the provider may bill the prompt, so record it as estimated spend.
            self._failed(request, attempt, started, None, cancelled=True, usage=_estimate(request, 0, None))
            raise
        except OrchestratorError as exc:
            self._failed(request, attempt, started, exc)
            raise
        # A cost the provider itself reported (CLI agents do) is the truth; a price is the estimate of it.
        cost = completion.cost if completion.cost is not None else cost_of(completion.usage, self._price)
        completion = _priced(completion, cost, self._deployment)
        self._succeeded(request, attempt, completion.usage, cost, completion.latency)
        return completion

    async def stream(self, request: ChatRequest) -> AsyncIterator[StreamDelta]:
        attempt = self._start(request)
        started = self._clock.monotonic()
        chars = 0
        usage: Usage | None = None
        reported: float | None = None
        try:
            async with closing(self.inner.stream(request)) as deltas:
                async for delta in deltas:
                    chars += len(delta.text)
                    if delta.usage is not None:
                        usage = delta.usage
                    if delta.cost is not None:
                        reported = delta.cost
                    yield delta
        except (asyncio.CancelledError, GeneratorExit):
            self._failed(
                request, attempt, started, None, cancelled=True, usage=_estimate(request, chars, usage)
            )
            raise
        except OrchestratorError as exc:
            self._failed(request, attempt, started, exc, usage=_estimate(request, chars, usage))
            raise
        final = _estimate(request, chars, usage)
        cost = reported if reported is not None else cost_of(final, self._price)
        self._succeeded(request, attempt, final, cost, self._clock.monotonic() - started)

    def _start(self, request: ChatRequest) -> str:
        attempt = new_id()
        scope = current_scope()
        if scope is not None:
            scope.record_attempt()
        self._bus.emit(
            AttemptStarted(
                request_id=request.request_id or "",
                timestamp=self._clock.wall(),
                attempt_id=attempt,
                model=self._name,
                provider=self._provider,
                deployment=self._deployment,
                estimated_input_tokens=estimate_message_tokens(request.messages),
            )
        )
        return attempt

    def _succeeded(
        self, request: ChatRequest, attempt: str, usage: Usage, cost: float | None, latency: float
    ) -> None:
        scope = current_scope()
        if scope is not None:
            scope.record_cost(self._name, cost)
            scope.record_success(self._provider, self._deployment)
        self._bus.emit(
            AttemptSucceeded(
                request_id=request.request_id or "",
                timestamp=self._clock.wall(),
                attempt_id=attempt,
                model=self._name,
                provider=self._provider,
                deployment=self._deployment,
                usage=usage,
                cost=cost,
                latency=latency,
            )
        )

    def _failed(
        self,
        request: ChatRequest,
        attempt: str,
        started: float,
        error: OrchestratorError | None,
        *,
        cancelled: bool = False,
        usage: Usage | None = None,
    ) -> None:
        usage = usage or Usage()
        # No tokens reported or estimated means nothing billed, whatever the price.
        cost = cost_of(usage, self._price) if usage.total_tokens else 0.0
        _charge(self._name, cost)
        scope = current_scope()
        if scope is not None and error is not None:
            # A wasted call: it uses the request's attempt budget (a cancelled race loser does not).
            scope.record_failure(self._deployment, type(error).__name__)
        self._bus.emit(
            AttemptFailed(
                request_id=request.request_id or "",
                timestamp=self._clock.wall(),
                attempt_id=attempt,
                model=self._name,
                provider=self._provider,
                deployment=self._deployment,
                error_type="Cancelled" if error is None else type(error).__name__,
                error_message="cancelled by the caller" if error is None else error.message,
                status_code=None if error is None else error.status_code,
                retryable=False if error is None else error.retryable,
                latency=self._clock.monotonic() - started,
                usage=usage,
                cost=cost,
                cancelled=cancelled,
            )
        )


def _priced(completion: Completion, cost: float | None, deployment: str) -> Completion:
    """``completion`` with its cost and deployment; built whole rather than with ``replace`` (twice as fast,
    once per attempt): every field of ``Completion`` is listed, as the test of ``ObservedModel`` checks."""
    return Completion(
        text=completion.text,
        model=completion.model,
        provider=completion.provider,
        deployment=deployment,
        usage=completion.usage,
        cost=cost,
        latency=completion.latency,
        finish_reason=completion.finish_reason,
        logprobs=completion.logprobs,
        response_id=completion.response_id,
        rate_limits=completion.rate_limits,
        details=completion.details,
        explanation=completion.explanation,
        tool_calls=completion.tool_calls,
    )


def _charge(model: str, cost: float | None) -> None:
    scope = current_scope()
    if scope is not None:
        scope.record_cost(model, cost)


def _estimate(request: ChatRequest, output_chars: int, reported: Usage | None) -> Usage:
    """Reported usage when there is some; otherwise an estimate flagged as such."""
    if reported is not None:
        return reported
    return Usage(
        input_tokens=estimate_message_tokens(request.messages),
        output_tokens=estimate_tokens_for_chars(output_chars),
        estimated=True,
    )
