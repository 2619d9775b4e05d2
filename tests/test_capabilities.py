"""Capabilities drive selection: the catalogue and ``capabilities:`` say what each configured model can do,
and a request that needs tools, images or a JSON schema never reaches a model without them (FakeUpstream
counts what arrived)."""

from __future__ import annotations

from collections.abc import Iterator

import openai
import pytest

from model_orchestrator import Orchestrator
from model_orchestrator.config.loader import parse_config
from model_orchestrator.core.errors import CapabilityNotSupportedError
from model_orchestrator.core.messages import ImagePart, Message, Role, TextPart
from model_orchestrator.core.request import ChatRequest
from model_orchestrator.core.tools import JsonSchemaFormat, ToolCall, ToolDefinition, assemble_tool_calls
from model_orchestrator.gateway import Gateway, GatewaySettings
from model_orchestrator.testing import FakeUpstream, Reply
from tests.gateway_helpers import MASTER

ENV = {"K": "key"}
IMAGE = ChatRequest(
    messages=(Message(Role.USER, (TextPart("What is this?"), ImagePart("https://example.test/cat.png"))),)
)
SCHEMA = JsonSchemaFormat("animal", {"type": "object", "properties": {"name": {"type": "string"}}})


@pytest.fixture
def upstream() -> Iterator[FakeUpstream]:
    with FakeUpstream() as up:
        yield up


def config(up: FakeUpstream) -> str:
    """``seeing`` is a catalogue model under a config name; ``blind`` a model nobody lists; ``declared``
    that same unknown model with ``capabilities:``; ``claude`` an unknown model of a wire that has them."""
    base = f"api_base: '{up.openai_base}', api_key_env: K"
    return f"""
models:
  - {{name: seeing, provider: openai, model: gpt-4o-mini, {base}}}
  - {{name: blind, provider: openai, model: my-text-model, {base}}}
  - {{name: declared, provider: openai, model: my-vl-model, {base},
     capabilities: [text, vision, json_schema]}}
  - {{name: claude, provider: anthropic, model: claude-next, api_base: '{up.url}', api_key_env: K}}
strategies:
  - {{name: safe, type: fallback, chain: [blind, seeing]}}
  - {{name: all-blind, type: fallback, chain: [blind]}}
  - {{name: ladder, type: cascade, tiers: [blind, seeing], threshold: 0.5}}
  - {{name: vote, type: ensemble, members: [blind, seeing, declared]}}
"""


async def test_capabilities_come_from_the_catalogue_by_model_id_the_wire_or_config(
    upstream: FakeUpstream,
) -> None:
    async with Orchestrator(parse_config(config(upstream)), env=ENV) as orch:
        caps = {i.name: i.capabilities for i in orch.models()}
    assert {"vision", "tools", "json_schema"} <= caps["seeing"]  # gpt-4o-mini's row, under a config name
    assert caps["blind"] == {"text", "tools", "json"}  # an unknown OpenAI-compatible model
    assert caps["declared"] == {"text", "vision", "json_schema"}  # config overrides
    assert {"vision", "tools", "json_schema"} <= caps["claude"]
    assert "json_schema" in caps["gemini-2.5-flash"] and "json_schema" not in caps["deepseek-chat"]


async def test_a_fallback_skips_a_member_without_vision_and_says_why(upstream: FakeUpstream) -> None:
    upstream.script(Reply("a cat"))
    async with Orchestrator(parse_config(config(upstream)), env=ENV) as orch:
        result = await orch.complete(IMAGE, model="safe")
    assert result.response == "a cat" and result.model_used == "seeing"
    assert [r.json["model"] for r in upstream.requests] == ["gpt-4o-mini"]
    steps = result.metadata["explanation"]["steps"]  # type: ignore[index]
    assert steps[0]["model"] == "blind" and steps[0]["outcome"] == "skipped"
    assert steps[0]["reason"] == "lacks vision (it has: json, text, tools)"


@pytest.mark.parametrize("streamed", [False, True], ids=["complete", "stream"])
async def test_a_single_model_without_vision_refuses_before_any_upstream_call(
    upstream: FakeUpstream, streamed: bool
) -> None:
    async with Orchestrator(parse_config(config(upstream)), env=ENV) as orch:
        with pytest.raises(CapabilityNotSupportedError) as raised:
            if streamed:
                async for _ in orch.stream(IMAGE, model="blind"):
                    pass
            else:
                await orch.complete(IMAGE, model="blind")
    assert upstream.requests == []
    error = raised.value
    assert error.capability == "vision" and error.status_code == 400
    assert "model 'blind' lacks vision" in error.message
    assert "Configured models that have vision: seeing, declared, claude" in error.message


async def test_a_json_schema_request_is_refused_by_a_model_that_cannot_hold_to_it(
    upstream: FakeUpstream,
) -> None:
    upstream.script(Reply('{"name": "cat"}'))
    async with Orchestrator(parse_config(config(upstream)), env=ENV) as orch:
        with pytest.raises(CapabilityNotSupportedError, match="lacks json_schema"):
            await orch.complete("Name an animal.", model="blind", json_schema=SCHEMA)
        assert upstream.requests == []
        result = await orch.complete("Name an animal.", model="declared", json_schema=SCHEMA)
    assert result.response == '{"name": "cat"}'
    assert upstream.requests[0].json["response_format"]["type"] == "json_schema"


async def test_tools_are_assumed_for_an_unknown_openai_compatible_model(upstream: FakeUpstream) -> None:
    upstream.script(Reply("no call needed"))
    tool = ToolDefinition("lookup", "Look a word up.", {"type": "object"})
    async with Orchestrator(parse_config(config(upstream)), env=ENV) as orch:
        result = await orch.complete("Define cat.", model="blind", tools=(tool,))
    assert result.response == "no call needed"
    assert upstream.requests[0].json["tools"][0]["function"]["name"] == "lookup"


@pytest.mark.parametrize("name", ["all-blind", "fallback:blind,blind"])
async def test_when_every_member_lacks_the_capability_one_clear_error_comes_before_any_call(
    upstream: FakeUpstream, name: str
) -> None:
    async with Orchestrator(parse_config(config(upstream)), env=ENV) as orch:
        with pytest.raises(CapabilityNotSupportedError) as raised:
            await orch.complete(IMAGE, model=name)
    assert upstream.requests == []
    assert raised.value.capability == "vision"
    assert "can take this request, which needs vision: blind lacks vision" in raised.value.message


async def test_a_cascade_and_an_ensemble_leave_out_members_without_vision(upstream: FakeUpstream) -> None:
    upstream.script(Reply("a cat"), Reply("a cat"), Reply("a cat"))
    async with Orchestrator(parse_config(config(upstream)), env=ENV) as orch:
        cascade = await orch.complete(IMAGE, model="ladder")
        vote = await orch.complete(IMAGE, model="vote")
    assert cascade.model_used == "seeing"
    cascade_steps = cascade.metadata["explanation"]["steps"]  # type: ignore[index]
    assert (cascade_steps[0]["model"], cascade_steps[0]["outcome"]) == ("blind", "skipped")
    vote_steps = {s["model"]: s for s in vote.metadata["explanation"]["steps"]}  # type: ignore[index]
    assert vote_steps["blind"]["outcome"] == "skipped" and "lacks vision" in vote_steps["blind"]["reason"]
    assert len(upstream.requests) == 3  # seeing (cascade), then seeing and declared (ensemble)


@pytest.mark.parametrize("strategy", ["route", "cheapest"])
async def test_routing_leaves_out_models_without_the_capability(
    upstream: FakeUpstream, strategy: str
) -> None:
    upstream.script(Reply("a cat"))
    async with Orchestrator(parse_config(config(upstream)), env=ENV) as orch:
        result = await orch.complete(IMAGE, strategy=strategy, members=["blind", "declared"])
        with pytest.raises(CapabilityNotSupportedError, match="blind lacks vision"):
            await orch.complete(IMAGE, strategy=strategy, members=["blind"])
    assert result.model_used == "declared" and len(upstream.requests) == 1
    steps = {s["model"]: s for s in result.metadata["explanation"]["steps"]}  # type: ignore[index]
    assert steps["blind"]["outcome"] == "skipped" and "lacks vision" in steps["blind"]["reason"]


async def test_auto_routes_a_vision_request_past_the_models_without_vision(upstream: FakeUpstream) -> None:
    upstream.script(Reply("a cat"))
    async with Orchestrator(parse_config(config(upstream)), env=ENV) as orch:
        result = await orch.complete(IMAGE, model="auto")
    assert result.model_used in {"seeing", "declared", "claude"} and len(upstream.requests) == 1
    steps = {s["model"]: s for s in result.metadata["explanation"]["steps"]}  # type: ignore[index]
    embedded = steps["local/smollm2-135m"]  # auto's cheapest tier, which reads no images
    assert embedded["outcome"] == "skipped" and embedded["reason"] == "lacks vision"


async def test_the_gateway_answers_400_naming_the_models_that_can_see(upstream: FakeUpstream) -> None:
    orch = Orchestrator(parse_config(config(upstream)), env=ENV)
    gateway = Gateway(orch, GatewaySettings(port=0, auth=True, master_key=MASTER))
    await gateway.start()
    client = openai.AsyncOpenAI(base_url=f"{gateway.url}/v1", api_key=MASTER, max_retries=0, timeout=20)
    image = {"type": "image_url", "image_url": {"url": "https://example.test/cat.png"}}
    try:
        with pytest.raises(openai.BadRequestError) as raised:
            await client.chat.completions.create(
                model="blind",
                messages=[{"role": "user", "content": [{"type": "text", "text": "What is this?"}, image]}],
            )
    finally:
        await client.close()
        await gateway.stop()
    assert upstream.requests == []
    assert "model 'blind' lacks vision" in raised.value.message
    assert "Configured models that have vision: seeing, declared, claude" in raised.value.message


async def test_the_facade_carries_tools_out_and_tool_calls_back_whole_and_streamed(
    upstream: FakeUpstream,
) -> None:
    tool = ToolDefinition("lookup", "Look a word up.", {"type": "object"})
    call = ToolCall("call_1", "lookup", '{"word": "cat"}')
    reply = Reply("", tool_calls=(call,), finish_reason="tool_calls")
    upstream.script(reply, reply)
    async with Orchestrator(parse_config(config(upstream)), env=ENV) as orch:
        result = await orch.complete("Define cat.", model="safe", tools=(tool,))
        deltas = [d async for d in orch.stream("Define cat.", model="safe", tools=(tool,))]
    assert result.tool_calls == (call,)
    assert assemble_tool_calls([p for d in deltas for p in d.tool_calls]) == (call,)
    assert all(r.json["tools"][0]["function"]["name"] == "lookup" for r in upstream.requests)


async def test_with_no_model_named_an_image_goes_to_the_cheapest_default_that_can_see(
    upstream: FakeUpstream,
) -> None:
    base = f"api_base: '{upstream.openai_base}', api_key_env: K"
    yaml = f"""
models:
  - {{name: blind, provider: openai, model: my-text-model, tier: 0,
     price: {{input: 0.1, output: 0.1}}, {base}}}
  - {{name: seeing, provider: openai, model: gpt-4o-mini, tier: 1, {base}}}
"""
    upstream.script(Reply("a cat"))
    async with Orchestrator(parse_config(yaml), env=ENV) as orch:
        seen = await orch.complete(IMAGE)
        plain = await orch.complete("hello")
    assert seen.model_used == "seeing"
    assert [r.json["model"] for r in upstream.requests] == ["gpt-4o-mini"]
    assert plain.model_used != "seeing"  # text still goes to the cheapest default


async def test_the_gate_refuses_when_its_call_is_awaited_as_an_async_method_would() -> None:
    from model_orchestrator.core.profile import ModelProfile
    from model_orchestrator.strategies.capabilities import CapabilityGateModel
    from model_orchestrator.testing import ScriptedModel

    inner = ScriptedModel(["a cat"])
    gate = CapabilityGateModel(
        inner, ModelProfile(name="text", capabilities=frozenset({"text"})), lambda _: []
    )
    pending = gate.complete(IMAGE)  # nothing raised yet: a caller may gather it with others
    with pytest.raises(CapabilityNotSupportedError, match="lacks vision"):
        await pending
    seeing = CapabilityGateModel(
        inner, ModelProfile(name="eyes", capabilities=frozenset({"vision"})), lambda _: []
    )
    assert (await seeing.complete(IMAGE)).text == "a cat"
