"""Reports and exports: grouping by period and dimension, windows and categories, stats, a CSV export
that reads back to the same totals, JSON export, the chart."""

from __future__ import annotations

import asyncio
import csv
import datetime as dt
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from model_orchestrator import Orchestrator
from model_orchestrator.config.loader import parse_config
from model_orchestrator.core.errors import BudgetExceededError, OrchestratorError
from model_orchestrator.core.events import (
    AttemptFailed,
    AttemptSucceeded,
    Event,
    RequestFinished,
    RequestStarted,
)
from model_orchestrator.core.usage import Usage
from model_orchestrator.ledger.export import plain_number, read_csv_totals
from model_orchestrator.ledger.ledger import Ledger
from model_orchestrator.ledger.query import CostQuery, cost_query, parse_time
from model_orchestrator.ledger.settings import LedgerSettings, sqlite_url
from model_orchestrator.testing import FakeUpstream, Fault, Reply
from tests.ledger_db import DATABASES, url_for

MON = dt.datetime(2026, 11, 16, 12, tzinfo=dt.UTC).timestamp()  # a Monday (ISO week 47)
DAY = 86_400.0


def _request(
    rid: str, at: float, *, strategy: str, category: str | None, key: str | None, ok: bool
) -> list[Event]:
    return [
        RequestStarted(
            request_id=rid,
            timestamp=at,
            requested=strategy,
            strategy=strategy,
            category=category,
            api_key_id=key,
        ),
        RequestFinished(
            request_id=rid, timestamp=at + 1, requested=strategy, strategy=strategy, ok=ok, latency=1.0
        ),
    ]


def _ok(rid: str, n: int, at: float, model: str, usage: Usage, cost: float | None) -> AttemptSucceeded:
    return AttemptSucceeded(
        request_id=rid,
        timestamp=at,
        attempt_id=f"{rid}-{n}",
        model=model,
        provider=f"p-{model}",
        deployment=f"{model}@x",
        usage=usage,
        cost=cost,
        latency=0.1 * (n + 1),
    )


def _failed(rid: str, n: int, at: float, model: str, *, cancelled: bool = False) -> AttemptFailed:
    return AttemptFailed(
        request_id=rid,
        timestamp=at,
        attempt_id=f"{rid}-{n}",
        model=model,
        provider=f"p-{model}",
        deployment=f"{model}@x",
        error_type="ServerError",
        error_message="x",
        status_code=500,
        retryable=True,
        latency=0.2,
        usage=Usage(7, 0, estimated=cancelled),
        cost=7e-6 if cancelled else 0.0,
        cancelled=cancelled,
    )


def _history() -> list[Event]:
    events: list[Event] = []
    events += _request("r1", MON, strategy="single", category="docs", key="team-a", ok=True)
    events += [_ok("r1", 0, MON, "fast", Usage(100, 10, cached_input_tokens=60), 0.000123)]
    events += _request("r2", MON + DAY, strategy="fallback", category="code", key="team-b", ok=True)
    events += [_failed("r2", 0, MON + DAY, "fast"), _ok("r2", 1, MON + DAY, "strong", Usage(200, 50), 0.0041)]
    events += _request("r3", MON + 7 * DAY, strategy="race", category="docs", key="team-a", ok=True)
    events += [
        _ok("r3", 0, MON + 7 * DAY, "fast", Usage(30, 3), 1.5e-05),
        _failed("r3", 1, MON + 7 * DAY, "strong", cancelled=True),
    ]
    events += _request("r4", MON + 20 * DAY, strategy="single", category=None, key=None, ok=False)
    events += [_ok("r4", 0, MON + 20 * DAY, "mystery", Usage(5, 5), None)]
    return events


@pytest.fixture(params=DATABASES)
async def ledger(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Ledger]:
    led = Ledger(LedgerSettings(url_for(request.param, tmp_path)))
    for event in _history():
        led.recorder.handle(event)
    try:
        yield led
    finally:
        await led.aclose()


async def test_daily_weekly_monthly_and_every_dimension(ledger: Ledger) -> None:
    daily = await ledger.report(CostQuery(period="daily"))
    assert [(r.period, r.group) for r in daily.rows] == [
        ("2026-11-16", "fast"),
        ("2026-11-17", "strong"),
        ("2026-11-17", "fast"),
        ("2026-11-23", "fast"),
        ("2026-11-23", "strong"),
        ("2026-12-06", "mystery"),
    ]
    weekly = await ledger.report(CostQuery(period="weekly"))
    assert {(r.period, r.group): r.totals.attempts for r in weekly.rows} == {
        ("2026-W47", "strong"): 1,
        ("2026-W47", "fast"): 2,
        ("2026-W48", "fast"): 1,
        ("2026-W48", "strong"): 1,
        ("2026-W49", "mystery"): 1,
    }
    monthly = await ledger.report(CostQuery(period="monthly", by="strategy"))
    assert {(r.period, r.group) for r in monthly.rows} == {
        ("2026-11", "single"),
        ("2026-11", "fallback"),
        ("2026-11", "race"),
        ("2026-12", "single"),
    }
    by_key = await ledger.report(CostQuery(period="monthly", by="key"))
    assert {r.group for r in by_key.rows} == {"team-a", "team-b", "(none)"}
    total = daily.total
    assert (total.attempts, total.failed, total.cancelled, total.requests) == (6, 1, 1, 4)
    assert total.cost == pytest.approx(0.000123 + 0.0041 + 1.5e-05 + 7e-6)
    assert (total.unpriced, total.estimated, total.cached_input_tokens) == (1, 1, 60)


async def test_category_and_time_window(ledger: Ledger) -> None:
    docs = await ledger.report(cost_query("daily", "provider", "docs"))
    assert {r.group for r in docs.rows} == {"p-fast", "p-strong"} and docs.total.requests == 2
    window = await ledger.report(cost_query("daily", "model", None, "2026-11-17", "2026-11-23"))
    assert {r.period for r in window.rows} == {"2026-11-17", "2026-11-23"}  # until = through that day
    assert parse_time("2026-11-17T00:00") == parse_time("2026-11-17")


async def test_stats(ledger: Ledger) -> None:
    stats = await ledger.stats(CostQuery())
    data = stats.to_dict()
    assert (stats.requests.ok, stats.requests.failed, stats.requests.total) == (3, 1, 4)
    assert data["unpriced_attempts"] == 1 and data["top_models"][0]["model"] == "strong"
    assert stats.latency_p95 == pytest.approx(0.2) and data["ledger"]["schema_version"] >= 3


async def test_stats_requests_add_up_however_they_ended(tmp_path: Path) -> None:
    """ok + failed + cancelled + unfinished = requests, counting the ones that made no attempt (refused
    by a budget) and the one still running; a race's cancelled loser is an attempt, not a request."""
    async with (
        FakeUpstream(default_reply=Reply("Paris", usage=(1000, 200))) as fast,
        FakeUpstream(default_reply=Reply("late", latency=30.0)) as slow,
    ):
        models = "".join(
            f"  - {{name: {n}, provider: openai, model: m-{n}, api_base: '{up.openai_base}', api_key_env: K,"
            " price: {input: 1.0, output: 2.0}}\n"
            for n, up in (("fast", fast), ("slow", slow))
        )
        ledger_url = sqlite_url(tmp_path / "ledger.sqlite3")
        config = parse_config(f"models:\n{models}ledger: {{url: '{ledger_url}'}}\n")
        async with Orchestrator(config, env={"K": "key"}) as orch:
            await orch.complete("Capital of France?", model="fast")
            # The winner waits until the loser's request is on the wire, so the loser is an attempt.
            fast.script(Reply("Paris", usage=(1000, 200), latency=0.5))
            await orch.complete("Capital of France?", strategy="race", members=["fast", "slow"])
            with pytest.raises(BudgetExceededError):
                await orch.complete("Capital of France?", model="fast", max_cost=1e-9)
            fast.script(*[Fault.server_error(400)])
            with pytest.raises(OrchestratorError):
                await orch.complete("Capital of France?", model="fast")
            stream = orch.stream("Capital of France?", model="fast")
            async for _ in stream:
                break
            await stream.aclose()  # the caller walked away
            running = asyncio.create_task(orch.complete("Capital of France?", model="slow"))
            await slow.await_started(2)

            during = await orch.costs_stats()
            running.cancel()
            with pytest.raises(asyncio.CancelledError):
                await running
            after = await orch.costs_stats()

    assert (during.totals.attempts, during.totals.cancelled) == (5, 2)  # the race loser, the stream
    r = during.requests
    assert (r.ok, r.failed, r.cancelled, r.unfinished, r.total) == (2, 2, 1, 1, 6)
    data = during.to_dict()
    assert (
        data["requests"]
        == 6
        == sum(data[f"requests_{k}"] for k in ("ok", "failed", "cancelled", "unfinished"))
    )
    r = after.requests
    assert (r.ok, r.failed, r.cancelled, r.unfinished, r.total) == (2, 2, 2, 0, 6)


async def test_csv_export_reads_back_to_the_same_totals(ledger: Ledger, tmp_path: Path) -> None:
    path = tmp_path / "out" / "attempts.csv"
    count = await ledger.export(CostQuery(), path, "csv")
    report = await ledger.report(CostQuery())
    back = read_csv_totals(path)
    assert count == 6
    for field in (
        "attempts",
        "failed",
        "cancelled",
        "input_tokens",
        "output_tokens",
        "cached_input_tokens",
        "estimated",
        "unpriced",
    ):
        assert getattr(back, field) == getattr(report.total, field), field
    assert back.cost == pytest.approx(report.total.cost, abs=1e-15)
    text = path.read_text(encoding="utf-8")
    assert "e-0" not in text and "E-0" not in text  # plain decimals for spreadsheets
    rows = list(csv.DictReader(text.splitlines()))
    assert rows[0]["time"] == "2026-11-16T12:00:00.000+00:00"
    assert all(dt.datetime.fromisoformat(r["time"]).tzinfo is not None for r in rows)
    assert next(r for r in rows if r["model"] == "mystery")["cost"] == ""  # unknown, not 0


async def test_json_export_and_filters(ledger: Ledger, tmp_path: Path) -> None:
    path = tmp_path / "docs.json"
    count = await ledger.export(cost_query(None, "model", "docs"), path, "json")
    rows = json.loads(path.read_text(encoding="utf-8"))
    assert count == len(rows) == 3 and {r["category"] for r in rows} == {"docs"}
    assert rows[0]["usage_estimated"] is False and isinstance(rows[0]["cost"], float)


async def test_chart_is_drawn(ledger: Ledger, tmp_path: Path) -> None:
    from model_orchestrator.ledger.chart import draw_spend_chart

    path = tmp_path / "spend.png"
    draw_spend_chart(await ledger.report(CostQuery(period="weekly")), path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plain_numbers() -> None:
    assert [plain_number(v) for v in (1.5e-05, 0.1, 3.0, 1e-10, 123.456)] == [
        "0.000015",
        "0.1",
        "3",
        "0.0000000001",
        "123.456",
    ]
    assert float(plain_number(0.1 + 0.2)) == 0.1 + 0.2
