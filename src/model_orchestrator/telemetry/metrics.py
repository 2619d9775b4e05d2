"""``MetricsSink``: Prometheus counters and histograms from the call path's events.

Owns the series (requests, latency, attempts, tokens, cost, errors by type, breaker state per deployment,
retries, fallbacks, cooldowns, budget warnings) in a private ``CollectorRegistry`` (no process-global
state: two orchestrators never mix their numbers) and their text exposition. Not serving them over HTTP
(the gateway's ``/metrics`` does). Needs the ``metrics`` extra (prometheus_client), imported only here.
Labels are bounded whatever callers send: model names can be invented by anyone who can send a request
(``provider:model-id``), so each label keeps its first ``MAX_LABEL_VALUES`` distinct values (plus any
``known`` up front, such as configured names) and counts every later one, or any value longer than
``MAX_LABEL_CHARS``, under ``other``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

from model_orchestrator.core.events import (
    AttemptFailed,
    AttemptSucceeded,
    BudgetWarning,
    CircuitClosed,
    CircuitHalfOpened,
    CircuitOpened,
    CooldownStarted,
    Event,
    FallbackTriggered,
    RequestFinished,
    RetryScheduled,
    StateStoreRecovered,
    StateStoreUnavailable,
)

# Seconds: LLM calls take from tens of milliseconds (cache, local) to minutes (long generations).
_LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0)
_BREAKER_VALUES: dict[type[Event], float] = {CircuitClosed: 0, CircuitHalfOpened: 1, CircuitOpened: 2}

CONTENT_TYPE = CONTENT_TYPE_LATEST
MAX_LABEL_VALUES = 100
MAX_LABEL_CHARS = 200
OTHER = "other"


class LabelValues:
    """One label's admitted values: the known ones, then the first ``limit`` new ones; the rest ``other``."""

    def __init__(self, known: Iterable[str] = (), limit: int = MAX_LABEL_VALUES) -> None:
        self._known = frozenset(known)
        self._admitted: set[str] = set()
        self._limit = limit

    def __call__(self, value: str) -> str:
        """``value`` when admitted (now or before), else ``other``."""
        if value in self._known or value in self._admitted:
            return value
        if len(value) > MAX_LABEL_CHARS or len(self._admitted) >= self._limit:
            return OTHER
        self._admitted.add(value)
        return value


_SERIES_CACHE = 1024


@dataclass(frozen=True, slots=True)
class _AttemptSeries:
    """The labelled series one (model, provider, outcome) of attempts counts in."""

    attempts: Any
    seconds: Any
    input_tokens: Any
    output_tokens: Any
    unpriced: Any
    cost: Any


class MetricsSink:
    """An ``EventSink`` keeping Prometheus series; ``render()`` gives the text exposition format."""

    def __init__(
        self, registry: CollectorRegistry | None = None, *, known_models: Iterable[str] = ()
    ) -> None:
        """``known_models`` (configured names) are always their own label value, never ``other``."""
        self.registry = registry or CollectorRegistry(auto_describe=True)
        known = frozenset(known_models)
        # Model names share one budget wherever they appear (model, from_model, to_model).
        self._model = LabelValues(known)
        self._provider = LabelValues()
        self._deployment = LabelValues()
        self._strategy = LabelValues(known)
        self._error_type = LabelValues()
        self._budget_name = LabelValues()
        r = self.registry
        model = ["model", "provider"]
        self.requests = Counter(
            "orchestrator_requests", "Requests served", ["strategy", "outcome"], registry=r
        )
        self.request_seconds = Histogram(
            "orchestrator_request_duration_seconds",
            "Whole-request latency",
            ["strategy"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.attempts = Counter("orchestrator_attempts", "Upstream attempts", [*model, "outcome"], registry=r)
        self.attempt_seconds = Histogram(
            "orchestrator_attempt_duration_seconds",
            "Upstream attempt latency",
            model,
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.tokens = Counter(
            "orchestrator_tokens", "Tokens reported or estimated", [*model, "kind"], registry=r
        )
        self.cost = Counter("orchestrator_cost_usd", "USD spent (priced attempts)", model, registry=r)
        self.unpriced = Counter(
            "orchestrator_unpriced_attempts", "Attempts whose price is unknown", model, registry=r
        )
        self.errors = Counter("orchestrator_errors", "Failed attempts", [*model, "error_type"], registry=r)
        self.breaker = Gauge(
            "orchestrator_circuit_state",
            "Breaker state: 0 closed, 1 half-open, 2 open",
            ["deployment"],
            registry=r,
        )
        self.retries = Counter(
            "orchestrator_retries", "Retries scheduled", ["model", "error_type"], registry=r
        )
        self.fallbacks = Counter(
            "orchestrator_fallbacks", "Strategy moved on", ["strategy", "from_model", "to_model"], registry=r
        )
        self.cooldowns = Counter("orchestrator_cooldowns", "Cooldowns started", ["deployment"], registry=r)
        self.budget_warnings = Counter(
            "orchestrator_budget_warnings", "Budget warning thresholds passed", ["budget"], registry=r
        )
        self.state_outages = Counter(
            "orchestrator_state_store_unavailable",
            "Times the shared state store became unreachable",
            ["policy"],
            registry=r,
        )
        self.state_recoveries = Counter(
            "orchestrator_state_store_recovered", "Times the shared state store answered again", registry=r
        )
        self._handlers: dict[type[Event], Callable[[Any], None]] = {
            RequestFinished: self._request_finished,
            AttemptSucceeded: self._attempt_ended,
            AttemptFailed: self._attempt_ended,
            RetryScheduled: self._retry,
            FallbackTriggered: self._fallback,
            CooldownStarted: self._cooldown,
            BudgetWarning: self._budget,
            StateStoreUnavailable: self._state_outage,
            StateStoreRecovered: lambda _: self.state_recoveries.inc(),
        }
        self._series: dict[tuple[str, str, str], _AttemptSeries] = {}
        self._request_series: dict[tuple[str, bool], tuple[Any, Any]] = {}

    def handle(self, event: Event) -> None:
        handler = self._handlers.get(type(event))
        if handler is not None:
            handler(event)
        elif type(event) in _BREAKER_VALUES:
            deployment = self._deployment(getattr(event, "deployment", ""))
            self.breaker.labels(deployment).set(_BREAKER_VALUES[type(event)])

    def render(self) -> bytes:
        """Every series in the Prometheus text exposition format (``CONTENT_TYPE``)."""
        return generate_latest(self.registry)

    def _request_finished(self, event: RequestFinished) -> None:
        key = (event.strategy, event.ok)
        series = self._request_series.get(key)
        if series is None:
            strategy = self._strategy(event.strategy)
            series = (
                self.requests.labels(strategy, "ok" if event.ok else "error"),
                self.request_seconds.labels(strategy),
            )
            if len(self._request_series) < _SERIES_CACHE:
                self._request_series[key] = series
        series[0].inc()
        series[1].observe(event.latency)

    def _attempt_ended(self, event: AttemptSucceeded | AttemptFailed) -> None:
        outcome = "ok"
        if isinstance(event, AttemptFailed):
            outcome = "cancelled" if event.cancelled else "error"
            if not event.cancelled:
                labels = (self._model(event.model), self._provider(event.provider))
                self.errors.labels(*labels, self._error_type(event.error_type)).inc()
        series = self._attempt_series(event.model, event.provider, outcome)
        series.attempts.inc()
        series.seconds.observe(event.latency)
        series.input_tokens.inc(event.usage.input_tokens)
        series.output_tokens.inc(event.usage.output_tokens)
        if event.cost is None:
            series.unpriced.inc()
        else:
            series.cost.inc(event.cost)

    def _attempt_series(self, model: str, provider: str, outcome: str) -> _AttemptSeries:
        """The labelled series an attempt of ``model`` at ``provider`` counts in; looked up once per
        (model, provider, outcome) while the cache has room (labelling costs about 0.7 µs a series)."""
        key = (model, provider, outcome)
        series = self._series.get(key)
        if series is None:
            labels = (self._model(model), self._provider(provider))
            series = _AttemptSeries(
                attempts=self.attempts.labels(*labels, outcome),
                seconds=self.attempt_seconds.labels(*labels),
                input_tokens=self.tokens.labels(*labels, "input"),
                output_tokens=self.tokens.labels(*labels, "output"),
                unpriced=self.unpriced.labels(*labels),
                cost=self.cost.labels(*labels),
            )
            if len(self._series) < _SERIES_CACHE:  # raw names are anyone's to invent: the cache is bounded
                self._series[key] = series
        return series

    def _retry(self, event: RetryScheduled) -> None:
        self.retries.labels(self._model(event.model), self._error_type(event.error_type)).inc()

    def _fallback(self, event: FallbackTriggered) -> None:
        labels = (self._strategy(event.strategy), self._model(event.from_model), self._model(event.to_model))
        self.fallbacks.labels(*labels).inc()

    def _cooldown(self, event: CooldownStarted) -> None:
        self.cooldowns.labels(self._deployment(event.deployment)).inc()

    def _budget(self, event: BudgetWarning) -> None:
        self.budget_warnings.labels(self._budget_name(event.budget)).inc()

    def _state_outage(self, event: StateStoreUnavailable) -> None:
        self.state_outages.labels("fail" if event.policy == "fail" else "local").inc()
