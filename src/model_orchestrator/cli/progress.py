"""Live progress of multi-model runs on a terminal: which member is running, done, failed, skipped.

Listens to the façade's event bus only; rendered with rich on stderr so stdout stays the answer.
"""

from __future__ import annotations

from types import TracebackType
from typing import Any

from model_orchestrator.core.events import (
    AttemptFailed,
    AttemptStarted,
    AttemptSucceeded,
    CircuitOpened,
    CooldownStarted,
    Event,
    EventBus,
    FallbackTriggered,
    RetryScheduled,
)
from model_orchestrator.core.money import usd


class ProgressView:
    """A table of attempts that updates as events arrive (use as a context manager)."""

    def __init__(self, bus: EventBus, console: Any = None) -> None:
        """``console`` is a rich Console (default: stderr)."""
        from rich.console import Console
        from rich.live import Live

        self._bus = bus
        self._rows: dict[str, list[str]] = {}
        self._notes: list[str] = []
        self._console = console or Console(stderr=True)
        self._live = Live(self._render(), console=self._console, refresh_per_second=8, transient=True)
        self._unsubscribe: Any = None

    def __enter__(self) -> ProgressView:
        self._unsubscribe = self._bus.subscribe(self)
        self._live.__enter__()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._live.__exit__(exc_type, exc, tb)
        if self._unsubscribe is not None:
            self._unsubscribe()

    def handle(self, event: Event) -> None:
        """Update the table from one event."""
        if isinstance(event, AttemptStarted):
            self._rows[event.attempt_id] = [event.model, "running", ""]
        elif isinstance(event, AttemptSucceeded):
            cost = "?" if event.cost is None else usd(event.cost)
            self._rows[event.attempt_id] = [event.model, "done", f"{event.latency:.2f}s {cost}"]
        elif isinstance(event, AttemptFailed):
            state = "cancelled" if event.cancelled else "failed"
            self._rows[event.attempt_id] = [event.model, state, event.error_type]
        elif isinstance(event, FallbackTriggered):
            self._notes.append(f"fallback {event.from_model} -> {event.to_model}: {event.reason}")
        elif isinstance(event, RetryScheduled):
            self._notes.append(f"retry {event.model} in {event.delay:.1f}s ({event.error_type})")
        elif isinstance(event, CircuitOpened | CooldownStarted):
            self._notes.append(f"{type(event).__name__}: {event.deployment}")
        self._live.update(self._render())

    def snapshot(self) -> str:
        """The current table as plain text."""
        with self._console.capture() as captured:
            self._console.print(self._render())
        return str(captured.get())

    def _render(self) -> Any:
        from rich.console import Group
        from rich.table import Table

        table = Table(show_header=True, header_style="bold", box=None)
        for column in ("model", "state", "detail"):
            table.add_column(column)
        for row in self._rows.values():
            table.add_row(*row)
        return Group(table, *self._notes[-5:])
