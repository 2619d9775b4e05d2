"""CLI agents named from config (``provider: cli, preset: ...``) and as ``cli:NAME``, with their costs.

The agents are real subprocesses: the fake scripts in ``tests/fixtures/cli_agents`` read the prompt on
stdin and print each vendor's JSON shape.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import openai
import pytest

from model_orchestrator.config.loader import parse_config
from model_orchestrator.core.errors import BudgetExceededError, ConfigError, ModelNotFoundError
from model_orchestrator.core.events import AttemptSucceeded, Event
from model_orchestrator.gateway import Gateway, GatewaySettings
from model_orchestrator.orchestrator import Orchestrator
from tests.cli_helpers import run_cli

AGENTS = Path(__file__).parent / "fixtures" / "cli_agents"
PROMPT = "Name a prime number."


def agent(script: str) -> str:
    """The YAML argument list that runs a fake agent with this interpreter (no shell involved)."""
    return json.dumps([sys.executable, str(AGENTS / script)])


def config() -> str:
    """Three agents; the fakes find their call log through FAKE_AGENT_LOG in the inherited environment."""
    return f"""
models:
  - {{name: claude-agent, provider: cli, preset: claude, command: {agent("fake_claude.py")}}}
  - {{name: gemini-agent, provider: cli, preset: gemini, command: {agent("fake_gemini.py")},
      price: {{input: 1.0, output: 2.0}}}}
  - {{name: codex-agent, provider: cli, preset: codex, command: {agent("fake_codex.py")}}}
"""


@pytest.fixture
def log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "agent-calls.jsonl"
    monkeypatch.setenv("FAKE_AGENT_LOG", str(path))
    return path


def calls(log: Path) -> list[dict[str, object]]:
    if not log.exists():
        return []
    return [json.loads(line) for line in log.read_text().splitlines()]


async def test_the_cost_an_agent_reports_is_the_result_cost_and_in_the_ledger(
    log: Path, tmp_path: Path
) -> None:
    async with Orchestrator(parse_config(config()), env=dict(os.environ)) as orch:
        result = await orch.complete(PROMPT, model="claude-agent")
        exported = tmp_path / "attempts.json"
        await orch.costs_export(exported, fmt="json")
    assert result.response == f"claude says: {PROMPT}"
    assert result.cost == pytest.approx(0.0123) and result.metadata["price_known"] is True
    assert (result.input_tokens, result.output_tokens) == (2112, 30)  # cache reads and writes included
    (call,) = calls(log)
    assert call["prompt"] == PROMPT and PROMPT not in " ".join(call["argv"])  # type: ignore[arg-type]
    rows = json.loads(exported.read_text())
    (row,) = [r for r in rows if r["model"] == "claude-agent"]
    assert row["cost"] == pytest.approx(0.0123)


class Recorder:
    def __init__(self) -> None:
        self.events: list[Event] = []

    def handle(self, event: Event) -> None:
        self.events.append(event)


async def test_a_streamed_agent_answer_keeps_the_reported_cost(log: Path) -> None:
    recorder = Recorder()
    async with Orchestrator(parse_config(config()), env=dict(os.environ)) as orch:
        orch.events.subscribe(recorder)
        deltas = [d async for d in orch.stream(PROMPT, model="claude-agent")]
    assert "".join(d.text for d in deltas) == f"claude says: {PROMPT}"
    (succeeded,) = [e for e in recorder.events if isinstance(e, AttemptSucceeded)]
    assert succeeded.cost == pytest.approx(0.0123)


async def test_a_configured_price_costs_an_agent_that_reports_none(log: Path) -> None:
    async with Orchestrator(parse_config(config()), env=dict(os.environ)) as orch:
        priced = await orch.complete(PROMPT, model="gemini-agent")
        unpriced = await orch.complete(PROMPT, model="codex-agent")
    # gemini: 1000 prompt tokens at $1/M, 400 candidates + 100 thoughts at $2/M.
    assert priced.response == f"gemini says: {PROMPT}"
    assert priced.cost == pytest.approx((1000 * 1.0 + 500 * 2.0) / 1e6)
    assert unpriced.response == f"codex says: {PROMPT}" and unpriced.input_tokens == 2000
    assert unpriced.cost is None and unpriced.metadata["price_known"] is False


async def test_max_cost_plans_with_the_configured_price_before_running_anything(log: Path) -> None:
    async with Orchestrator(parse_config(config()), env=dict(os.environ)) as orch:
        with pytest.raises(BudgetExceededError, match="would cost about"):
            await orch.complete(PROMPT, model="gemini-agent", max_cost=0.000001)
        with pytest.raises(BudgetExceededError, match="has no known price"):
            await orch.complete(PROMPT, model="codex-agent", max_cost=1.0)
        within = await orch.complete(PROMPT, model="gemini-agent", max_cost=0.01)
    assert within.cost is not None and within.cost <= 0.01
    assert len(calls(log)) == 1  # only the call that fitted its cap ran


def test_a_preset_must_be_known_and_needs_provider_cli() -> None:
    with pytest.raises(ConfigError, match="unknown CLI agent preset 'claud'; presets: claude, codex, gemini"):
        parse_config("models:\n  - {name: a, provider: cli, preset: claud}\n")
    with pytest.raises(ConfigError, match="needs provider: cli"):
        parse_config("models:\n  - {name: a, provider: openai, model: m, preset: claude}\n")
    with pytest.raises(ConfigError, match=r"needs 'command'.* or 'preset' \(one of claude, codex, gemini\)"):
        parse_config("models:\n  - {name: a, provider: cli}\n")


async def test_an_unknown_cli_reference_lists_the_presets() -> None:
    async with Orchestrator(parse_config(""), env={}) as orch:
        with pytest.raises(ModelNotFoundError, match="presets are claude, codex, gemini"):
            await orch.complete(PROMPT, model="cli:anything-unknown")


@pytest.fixture
def path_with_fake_claude(tmp_path: Path) -> str:
    """A PATH whose first directory holds an executable ``claude`` (the fake, with a shebang)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    executable = bin_dir / "claude"
    executable.write_text(f"#!{sys.executable}\n" + (AGENTS / "fake_claude.py").read_text())
    executable.chmod(0o755)
    return f"{bin_dir}{os.pathsep}{os.environ['PATH']}"


@pytest.mark.subprocess
def test_the_cli_shorthand_runs_the_preset_command(path_with_fake_claude: str, tmp_path: Path) -> None:
    log = tmp_path / "calls.jsonl"
    result = run_cli(
        "run",
        "-m",
        "cli:claude",
        "--prompt",
        PROMPT,
        "--json",
        env={"PATH": path_with_fake_claude, "FAKE_AGENT_LOG": str(log)},
    )
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["response"] == f"claude says: {PROMPT}" and data["model_used"] == "cli:claude"
    assert data["cost"] == pytest.approx(0.0123)
    (call,) = calls(log)
    assert call["argv"][1:] == ["-p", "--output-format", "json"]  # type: ignore[index]


@pytest.mark.subprocess
def test_an_unknown_cli_agent_exits_2_with_the_presets_and_no_traceback() -> None:
    result = run_cli("run", "-m", "cli:anything-unknown", "--prompt", PROMPT)
    assert result.returncode == 2
    assert "unknown CLI agent 'anything-unknown'" in result.stderr
    assert "claude, codex, gemini" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.subprocess
def test_a_bad_preset_in_the_config_file_exits_2(tmp_path: Path) -> None:
    path = tmp_path / "orchestrator.yaml"
    path.write_text("models:\n  - {name: a, provider: cli, preset: nope}\n")
    result = run_cli("--config", str(path), "run", "-m", "a", "--prompt", PROMPT)
    assert result.returncode == 2
    assert "unknown CLI agent preset 'nope'" in result.stderr and "Traceback" not in result.stderr


async def test_the_gateway_refuses_any_cli_agent_reference_with_403() -> None:
    """Known or unknown, a ``cli:`` reference would start an agent on the server's host: refused (see
    ``tests/security/test_host_agents.py``), with a message that says how to offer an agent instead."""
    orch = Orchestrator(parse_config(""), env={})
    gateway = Gateway(orch, GatewaySettings(port=0, auth=False))
    await gateway.start()
    client = openai.AsyncOpenAI(base_url=f"{gateway.url}/v1", api_key="unused", max_retries=0, timeout=20)
    try:
        with pytest.raises(openai.PermissionDeniedError) as caught:
            await client.chat.completions.create(
                model="cli:anything-unknown", messages=[{"role": "user", "content": PROMPT}]
            )
        assert "configure it as a model (provider: cli)" in caught.value.message
    finally:
        await client.close()
        await gateway.stop()
