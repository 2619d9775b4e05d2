"""HTTP-level series of the gateway, added to the façade's metrics registry so ``/metrics`` shows both.

Owns ``orchestrator_gateway_http_requests_total{route,method,status}`` and
``orchestrator_gateway_http_request_duration_seconds{route}``: they count what never reaches the façade
too (401/403/429 refusals, bad bodies). Requests, latency, tokens, cost, errors and breaker states per
deployment come from the telemetry ``MetricsSink`` the façade keeps. Labels are bounded: route patterns,
methods and status codes. Without ``prometheus_client`` (the ``metrics`` extra) the gateway serves
everything but ``/metrics`` and says so once at startup (``http_metrics``).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from model_orchestrator.core.errors import ConfigError

if TYPE_CHECKING:
    from model_orchestrator.orchestrator import Orchestrator

_log = logging.getLogger(__name__)

# Seconds; the gateway's own work is sub-millisecond, a model call up to minutes.
_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)


class HttpMetrics:
    """Counts gateway responses by route, method and status, and their latency by route."""

    def __init__(self, registry: Any) -> None:
        from prometheus_client import Counter, Histogram

        self.responses = Counter(
            "orchestrator_gateway_http_requests",
            "Gateway HTTP responses",
            ["route", "method", "status"],
            registry=registry,
        )
        self.seconds = Histogram(
            "orchestrator_gateway_http_request_duration_seconds",
            "Gateway HTTP latency until the response handler returned (whole stream for SSE)",
            ["route"],
            buckets=_BUCKETS,
            registry=registry,
        )

        # The labelled children, looked up once per label set: prometheus_client's ``labels()`` validates
        # and locks on every call (9.6 µs a response for both series, 2.4 µs with the children kept).
        self._children: dict[tuple[str, str, int], tuple[Any, Any]] = {}

    def observe(self, route: str, method: str, status: int, seconds: float) -> None:
        """Count one response."""
        key = (route, method, status)
        children = self._children.get(key)
        if children is None:
            children = (self.responses.labels(route, method, str(status)), self.seconds.labels(route))
            self._children[key] = children
        children[0].inc()
        children[1].observe(seconds)


def http_metrics(orch: Orchestrator) -> HttpMetrics | None:
    """The gateway's series in ``orch``'s metrics registry; None (and one log line) when the metrics
    extra is not installed: metrics are optional, serving is not."""
    try:
        return HttpMetrics(orch.metrics_sink().registry)
    except ConfigError:
        _log.warning(
            "serving without /metrics: prometheus_client is not installed "
            "(pip install 'model-orchestrator[metrics]' to add it)"
        )
        return None
