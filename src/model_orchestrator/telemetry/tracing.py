"""``TracingSink``: OpenTelemetry spans, in OpenInference conventions, built from the call path's events.

One trace per orchestration (seed 001): a root ``orchestration`` span (CHAIN) from ``RequestStarted`` to
``RequestFinished``; a ``model_call`` child (LLM) per upstream attempt; a ``routing_decision`` child when a
router decided; a ``result_aggregation`` child from the strategy's explanation. Retries, fallbacks,
cooldowns and breaker transitions become span events on the root. Spans carry the events' own wall-clock
times, so the tree shows when things happened even though it is built by listening.

State is per sink instance (open requests and attempts, each deployment's last breaker state); events of
many requests interleave freely. Events arrive on one thread at a time, as the event bus delivers them.
Imported only when tracing is configured (it imports the OpenTelemetry API).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import Span, Status, StatusCode, Tracer

from model_orchestrator.core.events import (
    AttemptFailed,
    AttemptStarted,
    AttemptSucceeded,
    BudgetWarning,
    CircuitClosed,
    CircuitHalfOpened,
    CircuitOpened,
    CooldownStarted,
    Event,
    FallbackTriggered,
    RequestFinished,
    RequestStarted,
    RetryScheduled,
)
from model_orchestrator.telemetry import conventions as c
from model_orchestrator.telemetry.attributes import (
    aggregation_attributes,
    attempt_attributes,
    event_fields,
    finish_attributes,
    outcome_attributes,
    request_attributes,
)

# Span events on the root, by event class; their fields become the span event's attributes.
_ROOT_EVENTS: dict[type[Event], str] = {
    RetryScheduled: "retry_scheduled",
    FallbackTriggered: "fallback_triggered",
    CooldownStarted: "cooldown_started",
    CircuitOpened: "circuit_opened",
    CircuitHalfOpened: "circuit_half_opened",
    CircuitClosed: "circuit_closed",
    BudgetWarning: "budget_warning",
}
_BREAKER_STATES: dict[type[Event], str] = {
    CircuitOpened: "open",
    CircuitHalfOpened: "half_open",
    CircuitClosed: "closed",
}
# The router's decision event, matched by class name until it is part of ``core.events``.
_ROUTING_EVENT = "RoutingDecided"


def nanoseconds(seconds: float) -> int:
    """Wall-clock seconds (events' timestamps) as OpenTelemetry's integer nanoseconds."""
    return int(seconds * 1_000_000_000)


class TracerOwner(Protocol):
    """What the sink needs of the provider it owns (``export.SpanPipeline``: the SDK's provider and
    exporter)."""

    def force_flush(self, timeout_millis: int = ...) -> bool: ...

    def shutdown(self) -> None: ...

    def close(self, timeout: float) -> bool: ...


@dataclass(slots=True)
class _Trace:
    """One open orchestration: its root span and how many attempts each deployment had so far."""

    root: Span
    context: Context
    attempts: Counter[str] = field(default_factory=Counter)


class TracingSink:
    """An ``EventSink`` that turns events into spans on ``tracer``.

    ``record_content`` adds explanation reasons, vote keys and structured facts (which may quote answers)
    to the aggregation span; prompts and answers themselves arrive in events only when the façade was told
    to record content. ``flush`` and ``shutdown`` act on ``provider`` when the sink owns one.
    """

    def __init__(
        self, tracer: Tracer, *, provider: TracerOwner | None = None, record_content: bool = False
    ) -> None:
        self._tracer = tracer
        self._provider = provider
        self._record_content = record_content
        self._traces: dict[str, _Trace] = {}
        self._attempts: dict[str, Span] = {}
        self._breakers: dict[str, str] = {}
        self._handlers: dict[type[Event], Callable[[Any], None]] = {
            RequestStarted: self._request_started,
            RequestFinished: self._request_finished,
            AttemptStarted: self._attempt_started,
            AttemptSucceeded: self._attempt_ended,
            AttemptFailed: self._attempt_ended,
        }

    def handle(self, event: Event) -> None:
        handler = self._handlers.get(type(event))
        if handler is not None:
            handler(event)
            return
        state = _BREAKER_STATES.get(type(event))
        if state is not None:
            self._breakers[getattr(event, "deployment", "")] = state
        name = _ROOT_EVENTS.get(type(event))
        if name is not None:
            self._root_event(event, name)
        elif type(event).__name__ == _ROUTING_EVENT:
            self._routing_decided(event)

    @property
    def open_requests(self) -> int:
        """Orchestrations started and not yet finished (0 once every request ended)."""
        return len(self._traces)

    def flush(self, timeout_millis: int = 30_000) -> bool:
        """Export every finished span now (blocking); True when the provider confirmed it."""
        return self._provider.force_flush(timeout_millis) if self._provider is not None else True

    def shutdown(self) -> None:
        """Flush and stop the owned provider (its exporter threads); the sink records nothing after."""
        if self._provider is not None:
            self._provider.shutdown()

    def close(self, timeout: float) -> bool:
        """``shutdown`` waiting at most ``timeout`` seconds (a collector that is down never stalls an
        exit); True when every span was exported."""
        return self._provider.close(timeout) if self._provider is not None else True

    def _request_started(self, event: RequestStarted) -> None:
        root = self._tracer.start_span(
            c.ROOT_SPAN,
            context=Context(),  # always a new trace: never a child of whatever span is current
            attributes=request_attributes(event),
            start_time=nanoseconds(event.timestamp),
        )
        self._traces[event.request_id] = _Trace(root, trace.set_span_in_context(root))

    def _request_finished(self, event: RequestFinished) -> None:
        open_trace = self._traces.pop(event.request_id, None)
        if open_trace is None:
            return
        end = nanoseconds(event.timestamp)
        if event.explanation is not None:
            attributes = aggregation_attributes(event.explanation, record_content=self._record_content)
            span = self._tracer.start_span(
                c.AGGREGATION_SPAN, context=open_trace.context, attributes=attributes, start_time=end
            )
            span.set_status(Status(StatusCode.OK))
            span.end(end_time=end)
        root = open_trace.root
        root.set_attributes(finish_attributes(event))
        root.set_status(Status(StatusCode.OK) if event.ok else Status(StatusCode.ERROR, event.error_type))
        root.end(end_time=end)

    def _attempt_started(self, event: AttemptStarted) -> None:
        open_trace = self._traces.get(event.request_id)
        retry_number = 0
        if open_trace is not None:
            retry_number = open_trace.attempts[event.deployment]
            open_trace.attempts[event.deployment] += 1
        breaker = self._breakers.get(event.deployment, "closed")
        self._attempts[event.attempt_id] = self._tracer.start_span(
            c.MODEL_CALL_SPAN,
            # An attempt outside any orchestration (a model called directly) is a trace of its own.
            context=open_trace.context if open_trace is not None else Context(),
            kind=trace.SpanKind.CLIENT,
            attributes=attempt_attributes(event, retry_number, breaker),
            start_time=nanoseconds(event.timestamp),
        )

    def _attempt_ended(self, event: AttemptSucceeded | AttemptFailed) -> None:
        span = self._attempts.pop(event.attempt_id, None)
        if span is None:
            return
        span.set_attributes(outcome_attributes(event))
        if isinstance(event, AttemptSucceeded):
            span.set_status(Status(StatusCode.OK))
        elif not event.cancelled:
            # A cancelled race loser is not an error: its status stays unset, ``orchestrator.cancelled``.
            span.set_status(Status(StatusCode.ERROR, event.error_type))
        span.end(end_time=nanoseconds(event.timestamp))

    def _root_event(self, event: Event, name: str) -> None:
        open_trace = self._traces.get(event.request_id)
        if open_trace is not None:
            open_trace.root.add_event(name, event_fields(event), timestamp=nanoseconds(event.timestamp))

    def _routing_decided(self, event: Event) -> None:
        open_trace = self._traces.get(event.request_id)
        if open_trace is None:
            return
        at = nanoseconds(event.timestamp)
        attributes = {c.SPAN_KIND: c.KIND_CHAIN, **event_fields(event, c.ROUTING_PREFIX)}
        span = self._tracer.start_span(
            c.ROUTING_SPAN, context=open_trace.context, attributes=attributes, start_time=at
        )
        span.set_status(Status(StatusCode.OK))
        span.end(end_time=at)
