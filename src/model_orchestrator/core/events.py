"""Events the call path emits; the ledger and telemetry subscribe. Nothing in the call path imports them.

Event names are past tense. Sinks must not raise: the bus logs and swallows a sink's failure so an
observer can never break a request.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from model_orchestrator.core.explanation import Explanation
from model_orchestrator.core.frozen import quick_init
from model_orchestrator.core.messages import Message
from model_orchestrator.core.usage import Usage

_log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Event:
    """Base of all events: when (wall clock) and for which request."""

    request_id: str
    timestamp: float


@quick_init
@dataclass(frozen=True, slots=True)
class AttemptStarted(Event):
    """A call to one deployment began."""

    attempt_id: str
    model: str
    provider: str
    deployment: str
    estimated_input_tokens: int = 0


@quick_init
@dataclass(frozen=True, slots=True)
class AttemptSucceeded(Event):
    """A call to one deployment returned an answer."""

    attempt_id: str
    model: str
    provider: str
    deployment: str
    usage: Usage
    cost: float | None
    latency: float


@dataclass(frozen=True, slots=True)
class AttemptFailed(Event):
    """A call to one deployment failed or was cancelled; usage is whatever was reported or estimated."""

    attempt_id: str
    model: str
    provider: str
    deployment: str
    error_type: str
    error_message: str
    status_code: int | None
    retryable: bool
    latency: float
    usage: Usage = field(default_factory=Usage)
    cost: float | None = None
    cancelled: bool = False


class EventSink(Protocol):
    """Something that listens to events (ledger, telemetry, logs, tests)."""

    def handle(self, event: Event) -> None: ...


class EventBus:
    """Fans each event out to every subscribed sink, in subscription order."""

    def __init__(self) -> None:
        self._sinks: list[EventSink] = []

    def subscribe(self, sink: EventSink) -> Callable[[], None]:
        """Add ``sink``; returns a function that removes it again."""
        self._sinks.append(sink)
        return lambda: self._sinks.remove(sink)

    def emit(self, event: Event) -> None:
        """Deliver ``event`` to every sink; a failing sink is logged, never propagated."""
        for sink in self._sinks:
            try:
                sink.handle(event)
            except Exception:  # noqa: BLE001 - an observer must never break the call path
                _log.exception("event sink %r failed on %s", sink, type(event).__name__)


class RecordingSink:
    """A sink that keeps every event it sees (for tests and for ``--json`` explanations)."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    def handle(self, event: Event) -> None:
        self.events.append(event)

    def of_type(self, kind: type[Event]) -> list[Event]:
        """The recorded events of one type, in order."""
        return [e for e in self.events if isinstance(e, kind)]


@dataclass(frozen=True, slots=True)
class DeploymentEvent(Event):
    """Base of state changes of one deployment (not tied to one request: ``request_id`` may be empty)."""

    deployment: str


@dataclass(frozen=True, slots=True)
class CircuitOpened(DeploymentEvent):
    """The breaker opened: calls are skipped until ``reset_after`` seconds from now."""

    failures: int
    reset_after: float


@dataclass(frozen=True, slots=True)
class CircuitHalfOpened(DeploymentEvent):
    """The reset timeout passed: a few probe calls are let through."""


@dataclass(frozen=True, slots=True)
class CircuitClosed(DeploymentEvent):
    """Probe calls succeeded: the deployment is back in service."""


@dataclass(frozen=True, slots=True)
class CooldownStarted(DeploymentEvent):
    """A 429 or overload put the deployment in cooldown for ``seconds``."""

    seconds: float
    reason: str


@dataclass(frozen=True, slots=True)
class StateStoreUnavailable(Event):
    """The shared state store stopped answering. ``policy`` says what calls do until it is back:
    ``local`` (per-process state, limits divided by the replica count) or ``fail``."""

    error: str
    policy: str


@dataclass(frozen=True, slots=True)
class StateStoreRecovered(Event):
    """The shared state store answers again: state is shared across processes again."""


@dataclass(frozen=True, slots=True)
class RetryScheduled(Event):
    """A retryable failure will be retried after ``delay`` seconds (``attempt`` of ``max_attempts``)."""

    model: str
    attempt: int
    max_attempts: int
    delay: float
    error_type: str


@dataclass(frozen=True, slots=True)
class FallbackTriggered(Event):
    """A strategy moved on from one model to the next."""

    strategy: str
    from_model: str
    to_model: str
    reason: str


@dataclass(frozen=True, slots=True)
class HealthChecked(DeploymentEvent):
    """A health probe finished."""

    healthy: bool
    latency: float | None
    error: str | None = None


@dataclass(frozen=True, slots=True)
class RoutingDecided(Event):
    """A router chose a model for a request (``strategy``: the strategy routing, or ``route`` for a
    decision-only call). ``strong_score``/``threshold`` are None for routers that score tiers instead."""

    strategy: str
    router: str
    chosen: str | None
    tier: int
    reason: str
    strong_score: float | None = None
    threshold: float | None = None
    candidates: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class BudgetWarning(Event):
    """A budget or call quota passed its warning threshold (``fraction`` of ``limit`` used or held).

    ``unit`` is ``usd`` or ``calls``; ``period_key`` is the UTC day (``2026-11-22``) or month (``2026-11``).
    """

    budget: str
    unit: str
    period_key: str
    used: float
    limit: float
    fraction: float


@quick_init
@dataclass(frozen=True, slots=True)
class RequestStarted(Event):
    """The façade began serving a request (the root of its attempts)."""

    requested: str
    strategy: str
    category: str | None = None
    tags: tuple[str, ...] = ()
    api_key_id: str | None = None
    max_cost: float | None = None
    # The prompt, only when the config opts in to recording content (``telemetry.record_content``).
    messages: tuple[Message, ...] | None = None
    # The text a router reads (the last user message), only when the ledger keeps it for retraining
    # (``ledger.store_prompts``); never copied into traces or logs.
    prompt: str | None = None


@quick_init
@dataclass(frozen=True, slots=True)
class RequestFinished(Event):
    """The façade finished a request; ``cost`` covers every attempt (None when a price was unknown)."""

    requested: str
    strategy: str
    ok: bool
    latency: float
    model_used: str | None = None
    cost: float | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    attempts: int = 0
    error_type: str | None = None
    error_message: str | None = None
    explanation: Explanation | None = None
    category: str | None = None
    api_key_id: str | None = None
    # The answer, only when the config opts in to recording content (``telemetry.record_content``).
    response_text: str | None = None


@dataclass(frozen=True, slots=True)
class AnswerJudged(Event):
    """A strategy scored one model's answer: a cascade's confidence, a validation verdict.

    ``score`` is how good the answer was judged, 0 (wrong) to 1 (right); ``source`` is ``cascade`` or
    ``validation``; ``escalated`` tells whether the strategy moved on because of it. ``tier`` is the
    model's configured tier (None when unknown). The ledger keeps these as outcome labels that
    ``orchestrator train-router --from-ledger`` learns from; ``judgement_id`` makes recording idempotent.
    """

    judgement_id: str
    strategy: str
    source: str
    model: str
    score: float
    escalated: bool
    tier: int | None = None
