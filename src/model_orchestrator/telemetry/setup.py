"""Turning telemetry on: where traces go, and the ``Telemetry`` the façade subscribes to its event bus.

Tracing is on only when an OTLP endpoint is known (``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``, then
``OTEL_EXPORTER_OTLP_ENDPOINT``, then ``telemetry.otlp_endpoint`` in the config); otherwise no sink is
subscribed and OpenTelemetry is never imported, so an unconfigured run pays nothing for it. The exporter is
OTLP over HTTP/protobuf with a batching processor (spans leave on a background thread, never in the call
path); closing waits at most ``EXIT_TIMEOUT`` for the last spans, and a collector that is down costs one
warning, not the SDK's retries (``export``). Structured event logs are always subscribed (a disabled
logger costs one level check per event); metrics are built on first request. Not the spans themselves
(``tracing``) nor the log format (``logs``).
"""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, TextIO

from model_orchestrator.core.errors import ConfigError
from model_orchestrator.core.events import EventBus
from model_orchestrator.telemetry.logs import LogSink

if TYPE_CHECKING:
    from opentelemetry.sdk.trace.export import SpanExporter

    from model_orchestrator.telemetry.metrics import MetricsSink
    from model_orchestrator.telemetry.tracing import TracingSink

_TRACES_PATH = "/v1/traces"
# How long closing waits for the last spans to reach the collector. One-shot commands export only then,
# so this is what a collector that is down adds to each of them.
EXIT_TIMEOUT = 1.0
_log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class TracingSettings:
    """The config's ``telemetry:`` block as far as tracing is concerned (see ``config.schema``)."""

    enabled: bool = True
    otlp_endpoint: str | None = None
    service_name: str = "model-orchestrator"
    project_name: str | None = None
    record_content: bool = False


class _StderrWarnings(logging.StreamHandler[TextIO]):
    """``warning: MESSAGE`` lines on whatever ``sys.stderr`` is when a record arrives."""

    def __init__(self) -> None:
        logging.Handler.__init__(self, logging.WARNING)
        self.setFormatter(logging.Formatter("warning: %(message)s"))

    @property
    def stream(self) -> TextIO:  # type: ignore[override]
        return sys.stderr


def show_warnings() -> None:
    """Print telemetry's warnings on stderr even when logging is not configured (the CLI's default):
    tracing that loses spans, or cannot start, must not fail silently. Idempotent."""
    logger = logging.getLogger(__name__.rpartition(".")[0])
    if not any(isinstance(h, _StderrWarnings) for h in logger.handlers):
        logger.addHandler(_StderrWarnings())


def traces_endpoint(settings: TracingSettings, env: Mapping[str, str]) -> str | None:
    """The OTLP/HTTP traces URL to export to, or None when tracing is off.

    The environment wins over the file (so a deployment can redirect traces without editing it), and the
    standard switches ``OTEL_SDK_DISABLED=true`` and ``OTEL_TRACES_EXPORTER=none`` turn tracing off.
    A base URL gets ``/v1/traces`` appended, as the OTLP specification says for the generic variable.
    """
    if not settings.enabled or env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return None
    if env.get("OTEL_TRACES_EXPORTER", "").strip().lower() == "none":
        return None
    signal = env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "").strip()
    if signal:
        return signal
    base = env.get("OTEL_EXPORTER_OTLP_ENDPOINT", "").strip() or settings.otlp_endpoint
    if not base:
        return None
    base = base.rstrip("/")
    return base if base.endswith(_TRACES_PATH) else base + _TRACES_PATH


def configure_tracing(settings: TracingSettings, env: Mapping[str, str]) -> TracingSink | None:
    """A sink exporting to the configured OTLP endpoint, or None (nothing to subscribe) when there is none.

    Headers (e.g. a collector's API key) come from ``OTEL_EXPORTER_OTLP_TRACES_HEADERS`` /
    ``OTEL_EXPORTER_OTLP_HEADERS`` and go to the exporter only, never into a span.
    """
    endpoint = traces_endpoint(settings, env)
    if endpoint is None:
        return None
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.util.re import parse_env_headers
    except ImportError:
        # OTEL_* variables are often set machine-wide for other programs: warn, never fail the request.
        _log.warning(
            "an OTLP endpoint is set but tracing is not installed (pip install 'model-orchestrator[tracing]')"
        )
        return None

    from model_orchestrator.telemetry.export import ReportingExporter

    raw = env.get("OTEL_EXPORTER_OTLP_TRACES_HEADERS") or env.get("OTEL_EXPORTER_OTLP_HEADERS") or ""
    exporter = OTLPSpanExporter(endpoint=endpoint, headers=parse_env_headers(raw, liberal=True))
    return tracing_sink(ReportingExporter(exporter, endpoint), settings)


def _version() -> str:
    # The distribution's metadata, not ``model_orchestrator.__version__``: telemetry must not import the
    # package root (it would pull the façade above it into this layer).
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("model-orchestrator")
    except PackageNotFoundError:
        return "unknown"


def tracing_sink(exporter: SpanExporter, settings: TracingSettings, *, batch: bool = True) -> TracingSink:
    """A sink over a private ``TracerProvider`` (the global one is left alone) exporting to ``exporter``.

    ``batch=False`` exports each span as it ends (tests and benchmarks with an in-memory exporter).
    """
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor

    from model_orchestrator.telemetry.conventions import PROJECT_NAME
    from model_orchestrator.telemetry.export import ReportingExporter, SpanPipeline
    from model_orchestrator.telemetry.tracing import TracingSink

    attributes: dict[str, str] = {"service.name": settings.service_name, "service.version": _version()}
    if settings.project_name:
        attributes[PROJECT_NAME] = settings.project_name
    provider = TracerProvider(resource=Resource.create(attributes), shutdown_on_exit=False)
    provider.add_span_processor(BatchSpanProcessor(exporter) if batch else SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("model_orchestrator", _version())
    reporting = exporter if isinstance(exporter, ReportingExporter) else None
    pipeline = SpanPipeline(provider, reporting, exit_timeout=EXIT_TIMEOUT)
    return TracingSink(tracer, provider=pipeline, record_content=settings.record_content)


class Telemetry:
    """What the façade subscribes: the tracing sink when configured, event logs always, metrics on demand."""

    def __init__(self, bus: EventBus, tracing: TracingSink | None = None) -> None:
        self._bus = bus
        self.tracing = tracing
        self._metrics: MetricsSink | None = None
        if tracing is not None:
            bus.subscribe(tracing)
        bus.subscribe(LogSink())

    @classmethod
    def attach(cls, bus: EventBus, settings: TracingSettings, env: Mapping[str, str]) -> Telemetry:
        """Subscribe telemetry to ``bus`` as ``settings`` and the environment ``env`` ask."""
        return cls(bus, configure_tracing(settings, env))

    def metrics(self, known_models: Iterable[str] = ()) -> MetricsSink:
        """The metrics sink, built and subscribed on the first call (needs the ``metrics`` extra).

        ``known_models`` (configured and catalogue names) always keep their own label values, however many
        invented names callers send (``MetricsSink``'s label budget)."""
        if self._metrics is None:
            try:
                from model_orchestrator.telemetry.metrics import MetricsSink
            except ImportError as exc:
                raise ConfigError(
                    "metrics need prometheus_client: pip install 'model-orchestrator[metrics]'"
                ) from exc
            self._metrics = MetricsSink(known_models=known_models)
            self._bus.subscribe(self._metrics)
        return self._metrics

    async def aclose(self, timeout: float = EXIT_TIMEOUT) -> bool:
        """Send the last spans and stop tracing, waiting at most ``timeout`` seconds; True when no span
        was lost. The export itself runs on a daemon thread that nothing waits for past the timeout."""
        if self.tracing is None:
            return True
        return await asyncio.to_thread(self.tracing.close, timeout)
