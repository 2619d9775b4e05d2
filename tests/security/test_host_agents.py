"""Attack: a caller of the gateway or the MCP server names ``cli:claude`` (or puts it in an inline
strategy) to run a coding agent on the server's host with the operator's account. No caller may, the
master key included; an agent the operator configured by name stays usable."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import openai
import pytest

from model_orchestrator.config.loader import parse_config
from model_orchestrator.gateway import Gateway, GatewaySettings
from model_orchestrator.orchestrator import Orchestrator
from model_orchestrator.testing import FakeUpstream
from tests.gateway_helpers import MASTER, USER, live_gateway
from tests.mcp_helpers import mcp_session, text_of, write_config

AGENT = Path(__file__).resolve().parents[1] / "fixtures" / "cli_agents" / "fake_claude.py"
CONFIGURED = f"""
  - {{name: my-agent, provider: cli, preset: claude, command: {json.dumps([sys.executable, str(AGENT)])}}}
"""


@pytest.mark.parametrize("model", ["cli:claude", "fallback:a,cli:claude", "cli:codex"])
async def test_the_gateway_refuses_cli_references_even_to_the_master_key(model: str) -> None:
    async with FakeUpstream() as up, live_gateway(up) as live:
        with pytest.raises(openai.PermissionDeniedError) as refused:
            await live.client().chat.completions.create(model=model, messages=USER)  # type: ignore[arg-type]
    assert "configure it as a model (provider: cli)" in str(refused.value)
    assert up.requests == []


async def test_an_agent_the_operator_configured_by_name_is_served() -> None:
    config = parse_config(f"models:\n{CONFIGURED}")
    async with Orchestrator(config, env={}) as orch:
        gateway = Gateway(orch, GatewaySettings(port=0, auth=True, master_key=MASTER))
        await gateway.start()
        try:
            client = openai.AsyncOpenAI(base_url=f"{gateway.url}/v1", api_key=MASTER, max_retries=0)
            async with client:
                answer = await client.chat.completions.create(model="my-agent", messages=USER)
        finally:
            await gateway.stop()
    assert (answer.choices[0].message.content or "").startswith("claude says:")


async def test_the_mcp_server_refuses_cli_references(tmp_path: Path) -> None:
    async with FakeUpstream() as up:
        config = write_config(tmp_path / "orchestrator.yaml", up)
        async with mcp_session(config, tmp_path) as session:
            result = await session.call_tool("orchestrator_execute", {"prompt": "hi", "model": "cli:claude"})
            members = await session.call_tool(
                "orchestrator_execute",
                {"prompt": "hi", "strategy": "fallback", "members": ["fast", "cli:claude"]},
            )
    assert result.is_error and "configure it as a model (provider: cli)" in text_of(result)
    assert members.is_error and "configure it as a model (provider: cli)" in text_of(members)
    assert up.requests == []
