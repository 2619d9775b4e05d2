"""Structured logs: ``LogSink`` records what operators act on; ``configure_logging`` prints them as JSON.

Records go to the ``model_orchestrator.events`` logger with an ``event`` name and flat fields: provider
switches (a strategy moving to the next model), breaker transitions, cooldowns, retries and budget
warnings. The library never installs a handler (the application decides where logs go); the CLI does with
``-v`` / ``--log-json``. Prompts, answers and keys never appear: events carry none of them here.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import IO

from model_orchestrator.core.events import (
    BudgetWarning,
    CircuitClosed,
    CircuitHalfOpened,
    CircuitOpened,
    CooldownStarted,
    Event,
    FallbackTriggered,
    RetryScheduled,
)
from model_orchestrator.telemetry.attributes import event_fields

LOGGER_NAME = "model_orchestrator.events"


def _switch(e: FallbackTriggered) -> str:
    return f"{e.strategy}: switching from {e.from_model} to {e.to_model} ({e.reason})"


def _opened(e: CircuitOpened) -> str:
    return f"circuit opened for {e.deployment} after {e.failures} failures; skipped for {e.reset_after:g}s"


def _cooldown(e: CooldownStarted) -> str:
    return f"{e.deployment} cooling down for {e.seconds:g}s ({e.reason})"


def _retry(e: RetryScheduled) -> str:
    return f"{e.model}: {e.error_type}; retry {e.attempt} of {e.max_attempts} in {e.delay:.3f}s"


def _budget(e: BudgetWarning) -> str:
    return f"budget {e.budget}: {e.fraction:.0%} of {e.limit:g} {e.unit} used or held ({e.period_key})"


# event class -> (event name, level, message)
_RECORDS: dict[type[Event], tuple[str, int, object]] = {
    FallbackTriggered: ("provider_switch", logging.INFO, _switch),
    CircuitOpened: ("breaker_opened", logging.WARNING, _opened),
    CircuitHalfOpened: ("breaker_half_opened", logging.INFO, "circuit half-open: probing"),
    CircuitClosed: ("breaker_closed", logging.INFO, "circuit closed: back in service"),
    CooldownStarted: ("cooldown_started", logging.INFO, _cooldown),
    RetryScheduled: ("retry_scheduled", logging.INFO, _retry),
    BudgetWarning: ("budget_warning", logging.WARNING, _budget),
}


class LogSink:
    """An ``EventSink`` writing one structured record per operational event."""

    def __init__(self, logger: logging.Logger | None = None) -> None:
        self._logger = logger or logging.getLogger(LOGGER_NAME)

    def handle(self, event: Event) -> None:
        spec = _RECORDS.get(type(event))
        if spec is None:
            return
        name, level, message = spec
        if not self._logger.isEnabledFor(level):
            return
        text = str(message(event)) if callable(message) else str(message)
        fields: dict[str, object] = {"event": name, "request_id": event.request_id or None}
        fields.update(event_fields(event))
        self._logger.log(level, text, extra={"structured": fields})


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (UTC ISO 8601), level, logger, message and any structured fields."""

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        structured = getattr(record, "structured", None)
        if isinstance(structured, Mapping):
            data.update({k: v for k, v in structured.items() if k not in data and v is not None})
        if record.exc_info:
            data["exception"] = self.formatException(record.exc_info)
        return json.dumps(data, default=str, ensure_ascii=False)


class _OurHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Marks the handler ``configure_logging`` installed, so calling it again replaces it."""


def configure_logging(
    *, json_lines: bool = False, level: int = logging.INFO, stream: IO[str] | None = None
) -> logging.Handler:
    """Send log records at ``level`` and above to ``stream`` (stderr): JSON lines or readable text."""
    handler = _OurHandler(stream or sys.stderr)
    if json_lines:
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _OurHandler)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    return handler
