"""Strategies and health from the installed command: config-named strategies, --strategy with --chain,
budgets, health state, and bad combinations of options."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from model_orchestrator.testing import FakeUpstream, Fault, Reply
from tests.cli_helpers import run_cli

pytestmark = pytest.mark.subprocess


@pytest.fixture
def upstreams() -> Iterator[tuple[FakeUpstream, FakeUpstream]]:
    with FakeUpstream() as first, FakeUpstream() as second:
        yield first, second


@pytest.fixture
def config(tmp_path: Path, upstreams: tuple[FakeUpstream, FakeUpstream]) -> Path:
    first, second = upstreams
    path = tmp_path / "orchestrator.yaml"
    path.write_text(
        "models:\n"
        f"  - {{name: cheap, provider: openai, model: c, api_base: '{first.openai_base}',"
        " price: {input: 1, output: 1}, tier: 1}\n"
        f"  - {{name: strong, provider: openai, model: s, api_base: '{second.openai_base}',"
        " price: {input: 10, output: 10}, tier: 3}\n"
        "strategies:\n"
        "  - {name: safe, type: fallback, chain: [cheap, strong]}\n"
        "  - {name: vote2, type: ensemble, members: [cheap, strong], extractor: number}\n"
        "resilience:\n"
        "  retry: {max_attempts: 1}\n"
    )
    return path


def test_a_configured_strategy_is_used_by_name(
    config: Path, upstreams: tuple[FakeUpstream, FakeUpstream]
) -> None:
    first, second = upstreams
    first.script(Fault.server_error(500))
    second.script(Reply("from strong", usage=(100, 10)))
    result = run_cli("--config", str(config), "run", "-p", "hi", "-m", "safe", "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["response"] == "from strong" and data["model_used"] == "strong"
    assert data["strategy"] == "fallback" and data["fallback_chain"] == ["cheap", "strong"]
    steps = data["metadata"]["explanation"]["steps"]
    assert [s["outcome"] for s in steps] == ["error", "ok"]
    assert data["cost"] == pytest.approx(110 * 10 / 1e6)


def test_inline_strategy_with_chain_and_ensemble_votes(
    config: Path, upstreams: tuple[FakeUpstream, FakeUpstream]
) -> None:
    first, second = upstreams
    first.script(Reply("The answer is 42."))
    second.script(Reply("42"))
    result = run_cli(
        "--config",
        str(config),
        "run",
        "-p",
        "6*7?",
        "--strategy",
        "ensemble",
        "--chain",
        "cheap,strong",
        "--extractor",
        "number",
        "--json",
    )
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["ensemble_models"] == ["cheap", "strong"] and data["confidence"] == 1.0
    assert len(first.requests) == 1 and len(second.requests) == 1


def test_max_cost_refuses_before_any_call(config: Path, upstreams: tuple[FakeUpstream, FakeUpstream]) -> None:
    result = run_cli(
        "--config", str(config), "run", "-p", "hi " * 200, "-m", "safe", "--max-cost", "0.0000001"
    )
    assert result.returncode == 1
    assert "BudgetExceededError" in result.stderr
    assert all(not up.requests for up in upstreams)


def test_strategy_options_without_a_strategy_are_bad_input(config: Path) -> None:
    result = run_cli("--config", str(config), "run", "-p", "hi", "-m", "cheap", "--threshold", "0.5")
    assert result.returncode == 2 and "--strategy" in result.stderr


def test_models_lists_configured_strategies(config: Path) -> None:
    listed = json.loads(run_cli("--config", str(config), "models", "--json").stdout)
    kinds = {m["name"]: (m["provider"], m["model"]) for m in listed}
    assert kinds["safe"] == ("strategy", "fallback") and kinds["vote2"] == ("strategy", "ensemble")


def test_health_reports_each_deployment_and_fails_when_one_is_down(
    config: Path, upstreams: tuple[FakeUpstream, FakeUpstream]
) -> None:
    healthy = run_cli("--config", str(config), "health", "--json")
    assert healthy.returncode == 0, healthy.stderr
    states = {s["name"]: s for s in json.loads(healthy.stdout)}
    assert states["cheap"]["healthy"] is True and states["strong"]["healthy"] is True
    assert states["cheap"]["breaker_state"] == "closed"
    assert any(r.path.endswith("/models") for r in upstreams[0].requests)
    upstreams[1].fail_probes(Fault.server_error(503))
    down = run_cli("--config", str(config), "health")
    assert down.returncode == 1
    assert "strong" in down.stdout and "NO" in down.stdout
