"""Every strategy's run lands in the ledger attempt by attempt, priced as price x reported tokens: a
failed first fallback member, every ensemble member, a race's cancelled loser (estimated and flagged)."""

from __future__ import annotations

import csv
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from model_orchestrator import Orchestrator
from model_orchestrator.config.loader import parse_config
from model_orchestrator.core.pricing import Price
from model_orchestrator.core.usage import Usage
from model_orchestrator.testing import FakeUpstream, Fault, Reply
from tests.ledger_db import DATABASES, url_for

PRICES = {"a": Price(1.0, 2.0), "b": Price(3.0, 4.0), "c": Price(5.0, 6.0)}


def _cost(model: str, prompt: int, completion: int) -> float:
    return PRICES[model].cost_of(Usage(prompt, completion))


@pytest.fixture(params=DATABASES)
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return url_for(request.param, tmp_path)


@pytest.fixture
async def servers() -> AsyncIterator[dict[str, FakeUpstream]]:
    """One fake upstream per model, so each model's script is its own whatever the arrival order."""
    ups = {name: FakeUpstream() for name in PRICES}
    for up in ups.values():
        up.start()
    try:
        yield ups
    finally:
        for up in ups.values():
            up.stop()


def _orchestrator(servers: dict[str, FakeUpstream], url: str) -> Orchestrator:
    rows = "\n".join(
        f"  - {{name: {n}, provider: openai, model: m-{n}, api_base: '{up.openai_base}', api_key_env: K, "
        f"price: {{input: {PRICES[n].input}, output: {PRICES[n].output}}}}}"
        for n, up in servers.items()
    )
    config = parse_config(f"models:\n{rows}\nledger: {{url: '{url}'}}\n")
    return Orchestrator(config, env={"K": "sk-secret-never-stored"})


async def test_each_strategy_attempt_by_attempt_with_exact_costs(
    servers: dict[str, FakeUpstream], url: str, tmp_path: Path
) -> None:
    a, b, c = servers["a"], servers["b"], servers["c"]
    a.script(Reply("single", usage=(100, 10)))  # single
    a.script(Fault.status(400, "bad request"))  # fallback: a fails (not retried), b answers
    b.script(Reply("fallback", usage=(200, 20)))
    for up, usage in ((a, (30, 3)), (b, (40, 4)), (c, (50, 5))):  # ensemble of three
        up.script(Reply("Paris", usage=usage))
    a.script(Reply("quick", usage=(60, 6)))  # race: a wins, c is cancelled mid-call
    c.script(Reply("too late", usage=(70, 7), latency=5))
    async with _orchestrator(servers, url) as orch:
        await orch.complete("q", model="a")
        await orch.complete("q", strategy="fallback", members=["a", "b"])
        await orch.complete("q", strategy="ensemble", members=["a", "b", "c"], extractor="text")
        raced = await orch.complete("q", strategy="race", members=["a", "c"])
        report = await orch.costs_report(by="model")
        export = tmp_path / "attempts.csv"
        await orch.costs_export(export)
    assert raced.response == "quick"
    rows = list(csv.DictReader(export.open(encoding="utf-8")))
    by_model: dict[str, list[dict[str, str]]] = {}
    for row in rows:
        by_model.setdefault(row["model"], []).append(row)
    assert [r["status"] for r in by_model["a"]] == ["ok", "failed", "ok", "ok"]
    assert [r["status"] for r in by_model["b"]] == ["ok", "ok"]
    assert sorted(r["status"] for r in by_model["c"]) == ["cancelled", "ok"]
    assert by_model["a"][1]["error_type"] == "BadRequestError" and by_model["a"][1]["cost"] == "0"
    expected = {
        "a": _cost("a", 100, 10) + _cost("a", 30, 3) + _cost("a", 60, 6),
        "b": _cost("b", 200, 20) + _cost("b", 40, 4),
    }
    cancelled = next(r for r in by_model["c"] if r["status"] == "cancelled")
    assert cancelled["usage_estimated"] == "true"  # nothing reported: the prompt estimate, flagged
    estimated = _cost("c", int(cancelled["input_tokens"]), int(cancelled["output_tokens"]))
    assert float(cancelled["cost"]) == pytest.approx(estimated)
    expected["c"] = _cost("c", 50, 5) + estimated
    costs = {row.group: row.totals.cost for row in report.rows}
    assert costs == pytest.approx(expected)
    assert {row.group: row.totals.attempts for row in report.rows} == {"a": 4, "b": 2, "c": 2}
    assert report.total.requests == 4 and report.total.unpriced == 0
    strategies = {r["request_id"]: r["strategy"] for r in rows}
    assert sorted(set(strategies.values())) == ["ensemble", "fallback", "race", "single"]


async def test_cached_reasoning_and_cache_write_tokens_are_priced_at_their_own_rates(tmp_path: Path) -> None:
    async with FakeUpstream() as up:
        up.script(Reply("ok", usage=(1000, 500), cached_tokens=800, reasoning_tokens=300))
        config = parse_config(
            f"""
models:
  - {{name: r, provider: openai, model: m-r, api_base: '{up.openai_base}', api_key_env: K,
     price: {{input: 2.0, output: 8.0, cached_input: 0.5, reasoning: 10.0}}}}
ledger: {{url: '{url_for("sqlite", tmp_path)}'}}
"""
        )
        async with Orchestrator(config, env={"K": "k"}) as orch:
            result = await orch.complete("q", model="r")
            report = await orch.costs_report()
    expected = (200 * 2.0 + 800 * 0.5 + 200 * 8.0 + 300 * 10.0) / 1e6
    assert result.cost == pytest.approx(expected)
    [row] = report.rows
    assert (row.totals.cached_input_tokens, row.totals.reasoning_tokens) == (800, 300)
    assert row.totals.cost == pytest.approx(expected)
    priced = Price(3.0, 15.0, cached_input=0.3, cache_write=3.75)
    written = Usage(input_tokens=2112, output_tokens=9, cached_input_tokens=2000, cache_write_tokens=100)
    assert priced.cost_of(written) == pytest.approx((12 * 3.0 + 2000 * 0.3 + 100 * 3.75 + 9 * 15.0) / 1e6)


async def test_unknown_prices_are_recorded_as_unknown_never_zero(tmp_path: Path) -> None:
    async with FakeUpstream() as up:
        up.script(Reply("ok", usage=(10, 10)))
        config = parse_config(
            f"""
models:
  - {{name: mystery, provider: openai, model: no-such-model-anywhere, api_base: '{up.openai_base}',
     api_key_env: K}}
ledger: {{url: '{url_for("sqlite", tmp_path)}'}}
"""
        )
        async with Orchestrator(config, env={"K": "k"}) as orch:
            result = await orch.complete("q", model="mystery")
            report = await orch.costs_report()
            stats = await orch.costs_stats()
    assert result.cost is None
    assert report.total.unpriced == 1 and report.total.cost == 0.0
    assert stats.to_dict()["unpriced_attempts"] == 1
