"""The ledger from config: the README's example, where the database is, URLs without passwords, budgets
that need the ledger, and guards only where a budget or quota applies."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from model_orchestrator import Orchestrator
from model_orchestrator.config.ledger import budget_rules, build_ledger
from model_orchestrator.config.loader import parse_config
from model_orchestrator.core.clock import SystemClock
from model_orchestrator.core.errors import BudgetExceededError, ConfigError, MissingCredentialsError
from model_orchestrator.core.request import ChatRequest
from model_orchestrator.ledger.settings import redact_url
from model_orchestrator.testing import FakeUpstream, Reply

README = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")


def test_the_readme_budgets_example_parses_into_rules() -> None:
    block = next(b for b in re.findall(r"```yaml\n(.*?)```", README, re.S) if b.startswith("budgets:"))
    config = parse_config(block, source="README")
    rules = budget_rules(config)
    request = ChatRequest.from_prompt("hi", category="orchestration", api_key_id="someone")
    names = {(limit.name, limit.period) for limit in rules.limits_for(request, "openai")}
    assert names == {
        ("global", "day"),
        ("global", "month"),
        ("category:orchestration", "day"),
        ("key:someone", "day"),
        ("provider:openai", "day"),
    }
    assert config.ledger.url == "sqlite:////var/lib/orchestrator/ledger.sqlite3"


def test_the_default_database_is_under_orchestrator_home_even_with_an_explicit_env() -> None:
    ledger = build_ledger(parse_config(""), {"SOME_KEY": "x"}, SystemClock())
    assert ledger is not None
    assert (
        ledger.settings.url == f"sqlite:///{Path(os.environ['ORCHESTRATOR_HOME']).resolve()}/ledger.sqlite3"
    )


def test_urls_never_hold_passwords_in_the_file() -> None:
    with pytest.raises(ConfigError, match="must not hold a password"):
        parse_config("ledger: {url: 'postgresql://u:hunter2@db/ledger'}")
    with pytest.raises(ConfigError, match="url or url_env, not both"):
        parse_config("ledger: {url: 'sqlite:///x', url_env: LEDGER_URL}")
    config = parse_config("ledger: {url_env: LEDGER_URL}")
    with pytest.raises(MissingCredentialsError, match="LEDGER_URL"):
        build_ledger(config, {}, SystemClock())
    ledger = build_ledger(config, {"LEDGER_URL": "postgresql://u:hunter2@db:5432/ledger"}, SystemClock())
    assert ledger is not None and ledger.settings.display_url == "postgresql://u:***@db:5432/ledger"
    assert redact_url("sqlite:////tmp/x.db") == "sqlite:////tmp/x.db"
    with pytest.raises(ConfigError, match="unsupported ledger database"):
        build_ledger(parse_config("ledger: {url: 'mysql://db/x'}"), {}, SystemClock())


def test_budgets_need_the_ledger_and_quotas_must_be_positive() -> None:
    with pytest.raises(ConfigError, match=r"ledger\.enabled: true"):
        build_ledger(parse_config("budgets: {daily_usd: 1}\nledger: {enabled: false}"), {}, SystemClock())
    assert build_ledger(parse_config("ledger: {enabled: false}"), {}, SystemClock()) is None
    with pytest.raises(ConfigError, match="at least 1 call"):
        parse_config("quotas: {calls_per_day: {openai: 0}}")


async def test_a_guard_is_in_front_only_when_a_budget_applies(tmp_path: Path) -> None:
    async with FakeUpstream(default_reply=Reply("ok", usage=(5, 5))) as up:
        base = (
            f"models:\n  - {{name: fast, provider: openai, model: m, api_base: '{up.openai_base}', "
            "api_key_env: K, price: {input: 1, output: 1}}\n"
            f"ledger: {{url: 'sqlite:///{tmp_path}/l.sqlite3'}}\n"
        )
        async with Orchestrator(parse_config(base + "budgets: {daily_usd: 0}\n"), env={"K": "k"}) as orch:
            with pytest.raises(BudgetExceededError, match="nothing was sent"):
                await orch.complete("hi", model="fast")
        assert up.requests == []
        async with Orchestrator(
            parse_config(base + "budgets: {per_request_usd: 1}\n"), env={"K": "k"}
        ) as orch:
            await orch.complete("hi", model="fast")  # no day/month budget: no reservation round trip
            assert await orch.ledger.budget_usage() == []
        assert len(up.requests) == 1
