"""``RequestLifecycle``: the ``RequestStarted`` / ``RequestFinished`` events of one request.

The façade opens one per request (complete or stream); the ledger and telemetry build request rows and
root spans from these events. Content (messages, answer) is carried only when recording it was opted in.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from model_orchestrator.core.clock import Clock
from model_orchestrator.core.events import EventBus, RequestFinished, RequestStarted
from model_orchestrator.core.explanation import Explanation
from model_orchestrator.core.request import ChatRequest
from model_orchestrator.core.request_scope import RequestScope


@dataclass(slots=True)
class RequestLifecycle:
    """Emits one request's start and its end (success or failure, cancellation included)."""

    bus: EventBus
    clock: Clock
    request: ChatRequest
    requested: str
    strategy: str
    scope: RequestScope
    record_content: bool = False
    # The router's input text, set only when the ledger keeps prompts for retraining.
    prompt: str | None = None
    started: float = field(init=False, default=0.0)

    def start(self) -> None:
        """Emit ``RequestStarted`` and start the clock."""
        self.started = self.clock.monotonic()
        request = self.request
        self.bus.emit(
            RequestStarted(
                request_id=request.request_id or "",
                timestamp=self.clock.wall(),
                requested=self.requested,
                strategy=self.strategy,
                category=request.category,
                tags=request.tags,
                api_key_id=request.api_key_id,
                max_cost=request.max_cost,
                messages=request.messages if self.record_content else None,
                prompt=self.prompt,
            )
        )

    @property
    def elapsed(self) -> float:
        """Seconds since ``start``."""
        return self.clock.monotonic() - self.started

    def succeeded(
        self,
        *,
        model_used: str | None,
        cost: float | None,
        input_tokens: int,
        output_tokens: int,
        explanation: Explanation | None,
        response_text: str | None,
    ) -> None:
        """Emit a successful ``RequestFinished``."""
        self._finish(
            ok=True,
            model_used=model_used,
            cost=cost,
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            explanation=explanation,
            response_text=response_text if self.record_content else None,
        )

    def failed(self, error: BaseException) -> None:
        """Emit a failed ``RequestFinished`` with whatever the request had spent."""
        cancelled = isinstance(error, asyncio.CancelledError)
        self._finish(
            ok=False,
            cost=self.scope.total_cost,
            error_type="Cancelled" if cancelled else type(error).__name__,
            error_message=str(error)[:500],
        )

    def _finish(self, *, ok: bool, **fields: object) -> None:
        request = self.request
        self.bus.emit(
            RequestFinished(
                request_id=request.request_id or "",
                timestamp=self.clock.wall(),
                requested=self.requested,
                strategy=self.strategy,
                ok=ok,
                latency=self.elapsed,
                attempts=self.scope.attempts,
                category=request.category,
                api_key_id=request.api_key_id,
                **fields,  # type: ignore[arg-type]
            )
        )
