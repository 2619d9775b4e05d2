"""The admin services beside the answering API (costs, keys, deployment health, routing, validation):
built from a ``Runtime`` with what they need, reachable as the façade's attributes, and the documented
façade methods answering through them (FakeUpstream, the SQLite ledger)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

import model_orchestrator
from model_orchestrator import Orchestrator
from model_orchestrator.config.loader import parse_config
from model_orchestrator.core.errors import ConfigError
from model_orchestrator.orchestrator.costs_service import CostsService
from model_orchestrator.orchestrator.runtime import Runtime
from model_orchestrator.testing import FakeUpstream, Reply

SOURCE = Path(model_orchestrator.__file__).parent


@pytest.fixture
def upstream() -> Iterator[FakeUpstream]:
    with FakeUpstream() as up:
        yield up


def config_text(up: FakeUpstream, ledger: str) -> str:
    rows = (("weak", 1, 0.1), ("strong", 3, 5.0))
    models = "".join(
        f"  - {{name: {n}, provider: openai, model: m-{n}, api_base: '{up.openai_base}', api_key_env: K, "
        f"tier: {tier}, price: {{input: {p}, output: {p}}}}}\n"
        for n, tier, p in rows
    )
    return f"models:\n{models}{ledger}"


async def test_the_services_answer_as_the_documented_methods_do(
    upstream: FakeUpstream, tmp_path: Path
) -> None:
    ledger = f"ledger: {{url: 'sqlite+aiosqlite:///{tmp_path / 'l.sqlite3'}'}}\n"
    upstream.script(Reply("4", usage=(100, 10)))
    async with Orchestrator(parse_config(config_text(upstream, ledger)), env={"K": "k"}) as orch:
        answer = await orch.complete("2+2?", model="weak")
        stats, report = await orch.costs.stats(), await orch.costs.report(by="model")
        assert stats.totals == (await orch.costs_stats()).totals and stats.totals.cost == answer.cost
        assert [r.group for r in report.rows] == ["weak"]
        assert await orch.keys.store() is not None
        receipt = await orch.routing.feedback(str(answer.metadata["request_id"]), 1.0)
        assert (receipt.model, receipt.score) == ("weak", 1.0)
        assert orch.routing.tier_of("weak") == 1 and orch.routing.tier_of("gone") is None
        decision = await orch.routing.route("Rename a variable")
        assert decision.model == (await orch.route("Rename a variable")).model
        health = await orch.deployment_health.check(probe=False)
        assert [h.name for h in health] == [h.name for h in await orch.health(probe=False)]
        assert orch.validation.default_judge() == orch.default_judge() == "strong"


async def test_a_costs_service_needs_only_the_ledger_and_a_clock(
    upstream: FakeUpstream, tmp_path: Path
) -> None:
    ledger = f"ledger: {{url: 'sqlite+aiosqlite:///{tmp_path / 'l.sqlite3'}'}}\n"
    runtime = Runtime.build(parse_config(config_text(upstream, ledger)), env={"K": "k"})
    upstream.script(Reply("4", usage=(100, 10)))
    await Orchestrator(runtime=runtime).complete("2+2?", model="strong")
    costs = CostsService(runtime.require_ledger, runtime.clock)
    assert (await costs.stats()).totals.cost == pytest.approx(110 * 5.0 / 1e6)
    await runtime.aclose()


async def test_with_the_ledger_off_costs_say_how_to_turn_it_on_and_there_are_no_keys(
    upstream: FakeUpstream,
) -> None:
    config = parse_config(config_text(upstream, "ledger: {enabled: false}\n"))
    async with Orchestrator(config, env={"K": "k"}) as orch:
        with pytest.raises(ConfigError, match=r"ledger\.enabled: false"):
            await orch.costs.report()
        with pytest.raises(ConfigError, match=r"ledger\.enabled: false"):
            await orch.routing.feedback("abc", 1.0)
        assert await orch.keys.store() is None


def test_nothing_reaches_into_the_facade_s_private_attributes() -> None:
    reach = re.compile(r"\b(?:orch|orchestrator|self\._orch|self\.orch)\._[a-z]")
    offenders = [
        f"{path.relative_to(SOURCE)}:{number}"
        for path in SOURCE.rglob("*.py")
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if reach.search(line)
    ]
    assert offenders == []
