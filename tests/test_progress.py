"""The live progress view of multi-model runs: rows follow attempt events, notes follow switches."""

from __future__ import annotations

import io

from rich.console import Console

from model_orchestrator.cli.progress import ProgressView
from model_orchestrator.core.events import (
    AttemptFailed,
    AttemptStarted,
    AttemptSucceeded,
    EventBus,
    FallbackTriggered,
)
from model_orchestrator.core.usage import Usage


def test_rows_follow_attempts_and_notes_follow_fallbacks() -> None:
    bus = EventBus()
    view = ProgressView(bus, console=Console(file=io.StringIO(), width=120))
    with view:
        bus.emit(AttemptStarted("r", 0.0, "a1", "cheap", "p", "cheap@x"))
        bus.emit(AttemptStarted("r", 0.0, "a2", "race-b", "p", "b@x"))
        assert "running" in view.snapshot()
        bus.emit(
            AttemptFailed("r", 0.0, "a1", "cheap", "p", "cheap@x", "ServerError", "boom", 500, True, 0.1)
        )
        bus.emit(FallbackTriggered("r", 0.0, "fallback", "cheap", "strong", "ServerError"))
        bus.emit(AttemptSucceeded("r", 0.0, "a2", "race-b", "p", "b@x", Usage(1, 1), 0.0012, 0.25))
        text = view.snapshot()
    assert "cheap" in text and "failed" in text and "ServerError" in text
    assert "race-b" in text and "done" in text and "$0.0012 " in text
    assert "fallback cheap -> strong" in text
    bus.emit(AttemptStarted("r", 0.0, "a3", "later", "p", "l@x"))
    assert "later" not in view.snapshot()  # unsubscribed on exit
