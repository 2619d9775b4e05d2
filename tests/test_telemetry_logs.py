"""Structured logs: JSON lines for provider switches, breaker transitions, retries and budget warnings, from
real runs through the façade and from the ``orchestrator --log-json`` command; never a key."""

from __future__ import annotations

import io
import json
import logging
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from model_orchestrator import Orchestrator
from model_orchestrator.config.loader import parse_config
from model_orchestrator.core.events import BudgetWarning, EventBus
from model_orchestrator.telemetry.logs import JsonFormatter, LogSink, configure_logging
from model_orchestrator.testing import FakeClock, FakeUpstream, Fault, Reply
from tests.cli_helpers import run_cli

SECRET = "sk-test-NEVER-LOGGED-5a0b9e"
BREAKER = "resilience: {retry: {max_attempts: 2}, breaker: {failure_threshold: 2}}\n"


@pytest.fixture
def log_stream() -> Iterator[io.StringIO]:
    root = logging.getLogger()
    level = root.level
    stream = io.StringIO()
    handler = configure_logging(json_lines=True, level=logging.INFO, stream=stream)
    yield stream
    root.removeHandler(handler)
    root.setLevel(level)


def records(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]


def config(up: FakeUpstream, extra: str = "") -> str:
    rows = "\n".join(
        f"  - {{name: {n}, provider: openai, model: m-{n}, api_base: '{up.openai_base}', api_key_env: K}}"
        for n in ("a", "b")
    )
    return f"models:\n{rows}\n{extra}"


async def test_a_fallback_run_logs_the_retry_the_breaker_and_the_switch_as_json(
    log_stream: io.StringIO,
) -> None:
    with FakeUpstream() as up:
        # a answers 500 twice (one retry, then the breaker opens), echoing the key as some vendors do
        up.script(Fault.status(500, f"failed for key {SECRET}"), Fault.server_error(), Reply("from b"))
        async with Orchestrator(
            parse_config(config(up, BREAKER)), env={"K": SECRET}, clock=FakeClock()
        ) as orch:
            result = await orch.complete("hi", strategy="fallback", members=["a", "b"])
    assert result.model_used == "b"
    found = records(log_stream)
    assert all({"time", "level", "logger", "message"} <= set(r) for r in found)
    events = {str(r["event"]): r for r in found if "event" in r}
    assert {"retry_scheduled", "breaker_opened", "provider_switch"} <= set(events)
    switch = events["provider_switch"]
    assert (switch["from_model"], switch["to_model"], switch["level"]) == ("a", "b", "INFO")
    assert switch["request_id"] == result.metadata["request_id"]
    opened = events["breaker_opened"]
    assert str(opened["deployment"]).startswith("a@") and opened["level"] == "WARNING"
    assert opened["failures"] == 2 and opened["logger"] == "model_orchestrator.events"
    assert SECRET not in log_stream.getvalue()


def test_budget_warnings_are_warnings_with_their_numbers(log_stream: io.StringIO) -> None:
    bus = EventBus()
    bus.subscribe(LogSink())
    bus.emit(BudgetWarning("", 0.0, "monthly", "usd", "2026-11", 41.0, 50.0, 0.82))
    (record,) = records(log_stream)
    assert record["event"] == "budget_warning" and record["level"] == "WARNING"
    assert (record["budget"], record["used"], record["limit"], record["fraction"]) == (
        "monthly",
        41.0,
        50.0,
        0.82,
    )
    assert record["message"] == "budget monthly: 82% of 50 usd used or held (2026-11)"
    assert "request_id" not in record  # not tied to one request


def test_nothing_is_formatted_when_the_level_is_off() -> None:
    stream = io.StringIO()
    logger = logging.getLogger("tests.telemetry.silent")
    logger.addHandler(logging.StreamHandler(stream))
    logger.setLevel(logging.ERROR)
    LogSink(logger).handle(BudgetWarning("", 0.0, "daily", "usd", "2026-11-22", 1.0, 2.0, 0.5))
    assert stream.getvalue() == ""


def test_the_json_formatter_keeps_exceptions() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        record = logging.LogRecord("x", logging.ERROR, "f", 1, "failed", (), sys.exc_info())
    data = json.loads(JsonFormatter().format(record))
    assert data["message"] == "failed" and "ValueError: boom" in str(data["exception"])


@pytest.mark.subprocess
def test_the_command_logs_json_lines_with_log_json(tmp_path: Path) -> None:
    with FakeUpstream() as up:
        up.script(Fault.auth(), Reply("from b"))
        path = tmp_path / "orchestrator.yaml"
        path.write_text(config(up))
        result = run_cli(
            "--log-json",
            "--config",
            str(path),
            "run",
            "-p",
            "hi",
            "--strategy",
            "fallback",
            "--chain",
            "a,b",
            "--quiet",
            env={"K": SECRET},
        )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("from b")
    lines = [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]
    assert any(r.get("event") == "provider_switch" and r.get("to_model") == "b" for r in lines), result.stderr
    assert SECRET not in result.stderr + result.stdout
