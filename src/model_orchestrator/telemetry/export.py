"""How spans leave the process: a collector that is down costs one clear warning and a bounded wait.

The OpenTelemetry SDK's OTLP exporter retries a refused connection with backoff for up to ten seconds
and logs each retry, and its batching processor ignores ``force_flush``'s timeout: with the collector
down, every one-shot command used to stall about eight seconds at exit and print four SDK lines.
``ReportingExporter`` wraps the exporter: what the SDK logs while it exports for us is dropped, and the
first loss is reported once, in our words, naming the endpoint. ``SpanPipeline`` owns the provider and
closes it on a daemon thread, waiting at most the given timeout; past it, the exporter is told to stop
retrying and what was still queued is dropped (and reported). Nothing waits for the SDK at interpreter
exit (the provider is built without its ``atexit`` shutdown), so ``close`` is the only wait there is.
Imported only when tracing is configured (it imports the OpenTelemetry SDK).
"""

from __future__ import annotations

import atexit
import logging
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from urllib.parse import urlsplit, urlunsplit

from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

_log = logging.getLogger(__name__)
_quiet = threading.local()  # set on a thread while it runs our exporter: the SDK's records there are ours


class _QuietWhileExporting(logging.Filter):
    """Drops the SDK exporter's records emitted on a thread that is exporting for us (other exporters
    in the process, on their own threads, keep logging as before)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not getattr(_quiet, "active", False)


_FILTER = _QuietWhileExporting()


@contextmanager
def _quiet_sdk() -> Iterator[None]:
    previous = getattr(_quiet, "active", False)
    _quiet.active = True
    try:
        yield
    finally:
        _quiet.active = previous


def shown_endpoint(url: str) -> str:
    """``url`` without user info, query or fragment: safe to print (an env URL may carry a secret)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


class ReportingExporter(SpanExporter):
    """Forwards to ``inner`` (the SDK's OTLP exporter); the first lost batch is one warning of ours."""

    def __init__(self, inner: SpanExporter, endpoint: str) -> None:
        self._inner = inner
        self._endpoint = shown_endpoint(endpoint)
        self._lock = threading.Lock()
        self._warned = False
        self.exported = 0
        self.dropped = 0
        logger = logging.getLogger(type(inner).__module__)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        with _quiet_sdk():
            result = self._inner.export(spans)
        if result is SpanExportResult.SUCCESS:
            self.exported += len(spans)
        else:
            self.dropped += len(spans)
            self.warn_once(f"did not accept a batch of {len(spans)}")
        return result

    def shutdown(self) -> None:
        with _quiet_sdk():
            self._inner.shutdown()

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        with _quiet_sdk():
            return self._inner.force_flush(timeout_millis)

    def abort(self) -> None:
        """Stop retrying now (a batch in the middle of its backoff gives up)."""
        self.shutdown()

    def warn_once(self, what_happened: str) -> None:
        """Log, once per exporter, that spans are being lost and what to do about it."""
        with self._lock:
            if self._warned:
                return
            self._warned = True
        _log.warning(
            "tracing: spans dropped: the OTLP collector at %s %s; start the collector, or unset "
            "OTEL_EXPORTER_OTLP_ENDPOINT (or telemetry.otlp_endpoint) to turn tracing off",
            self._endpoint,
            what_happened,
        )


class SpanPipeline:
    """A private ``TracerProvider`` and the exporter it batches to; what ``TracingSink`` owns.

    Built with ``shutdown_on_exit=False``; if nobody closes it, interpreter exit closes it with
    ``exit_timeout`` (the SDK's own exit hook would wait for every retry).
    """

    def __init__(
        self, provider: TracerProvider, exporter: ReportingExporter | None = None, *, exit_timeout: float
    ) -> None:
        self.provider = provider
        self.exporter = exporter
        self.closing: threading.Thread | None = None
        self._exit_timeout = exit_timeout
        atexit.register(self._close_at_exit)

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        """Export every finished span now (blocking)."""
        return self.provider.force_flush(timeout_millis)

    def shutdown(self) -> None:
        """Export what is queued, then stop the provider (blocking, unbounded: prefer ``close``)."""
        self.provider.shutdown()

    def close(self, timeout: float) -> bool:
        """Export what is queued and stop, waiting at most ``timeout`` seconds; True when nothing was lost.

        The export runs on a daemon thread (``closing``) that the process never waits for; when the
        timeout passes first, the exporter stops retrying and the loss is reported (once).
        """
        atexit.unregister(self._close_at_exit)
        if self.closing is not None:
            return self.exporter is None or self.exporter.dropped == 0
        finished = threading.Event()

        def finish() -> None:
            try:
                self.provider.force_flush(int(timeout * 1000))
                self.provider.shutdown()
            finally:
                finished.set()

        self.closing = threading.Thread(target=finish, name="orchestrator-tracing-close", daemon=True)
        self.closing.start()
        if finished.wait(timeout):
            return self.exporter is None or self.exporter.dropped == 0
        if self.exporter is not None:
            self.exporter.warn_once(f"did not take the last spans within {timeout:g} s")
            self.exporter.abort()
        return False

    def _close_at_exit(self) -> None:
        self.close(self._exit_timeout)
