"""CLI agents take one text prompt on stdin: tools, images and JSON schemas are refused with a clear
error before any process starts (the command below would leave a file behind if it ran)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from model_orchestrator.core.errors import CapabilityNotSupportedError
from model_orchestrator.core.messages import ImagePart, Message, Role, TextPart
from model_orchestrator.core.request import ChatRequest
from model_orchestrator.core.tools import JsonSchemaFormat, ToolDefinition
from model_orchestrator.providers.cli_agent import CliAgentModel

REQUESTS = [
    (ChatRequest.from_prompt("what time is it?", tools=(ToolDefinition("get_time"),)), "tools"),
    (ChatRequest(messages=(Message.user("hi"), Message.tool_result("call_1", "noon"))), "tools"),
    (
        ChatRequest(messages=(Message(Role.USER, (TextPart("what?"), ImagePart("https://x.test/a.png"))),)),
        "vision",
    ),
    (
        ChatRequest.from_prompt("hi", json_schema=JsonSchemaFormat("answer", {"type": "object"})),
        "json_schema",
    ),
]


def _agent(tmp_path: Path, output_format: str) -> tuple[CliAgentModel, Path]:
    marker = tmp_path / "ran"
    script = tmp_path / "agent.py"
    script.write_text(f"open({str(marker)!r}, 'w').close()\nprint('ok')\n")
    model = CliAgentModel(
        name="agent",
        command=[sys.executable, str(script)],
        output_format="json" if output_format == "json" else "text",
    )
    return model, marker


@pytest.mark.parametrize("output_format", ["text", "json"])
@pytest.mark.parametrize("mode", ["complete", "stream"])
@pytest.mark.parametrize(("request_", "capability"), REQUESTS)
async def test_capabilities_a_prompt_cannot_carry_are_refused_before_the_process_starts(
    tmp_path: Path, output_format: str, mode: str, request_: ChatRequest, capability: str
) -> None:
    model, marker = _agent(tmp_path, output_format)
    with pytest.raises(CapabilityNotSupportedError, match="takes one text prompt on stdin") as caught:
        if mode == "complete":
            await model.complete(request_)
        else:
            [delta async for delta in model.stream(request_)]
    assert caught.value.capability == capability
    assert (caught.value.provider, caught.value.deployment) == ("cli", "cli:agent")
    assert "Choose a model" in str(caught.value)
    assert not marker.exists()


async def test_a_plain_prompt_still_runs_the_command(tmp_path: Path) -> None:
    model, marker = _agent(tmp_path, "text")
    assert (await model.complete(ChatRequest.from_prompt("hi"))).text.strip() == "ok"
    assert marker.exists()
