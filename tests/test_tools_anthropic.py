"""Tools, images, cache breakpoints and JSON schemas through ``AnthropicModel`` against FakeUpstream.

Each test asserts the Messages-API shapes that reached the fake and the core shapes that came back,
streamed and not.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest

from model_orchestrator.core.errors import CapabilityNotSupportedError, InvalidRequestError
from model_orchestrator.core.events import AttemptSucceeded, EventBus, RecordingSink
from model_orchestrator.core.messages import ImagePart, Message, Role, TextPart
from model_orchestrator.core.observed import ObservedModel
from model_orchestrator.core.pricing import Price
from model_orchestrator.core.request import ChatRequest
from model_orchestrator.core.response import Completion, FinishReason, StreamDelta
from model_orchestrator.core.tools import (
    JsonSchemaFormat,
    ToolCall,
    ToolChoice,
    ToolDefinition,
    assemble_tool_calls,
)
from model_orchestrator.core.usage import Usage
from model_orchestrator.providers.anthropic import AnthropicModel
from model_orchestrator.providers.http import HttpTransport
from model_orchestrator.testing.fake_upstream import FakeUpstream, Reply

WEATHER = ToolDefinition(
    "get_weather",
    "The weather in a city.",
    {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
)
CLOCK = ToolDefinition("get_time")
ASK = ChatRequest.from_prompt("Weather in Paris and Rome?", tools=(WEATHER, CLOCK))
CALLS = (
    ToolCall("toolu_01", "get_weather", '{"city":"Paris"}'),
    ToolCall("toolu_02", "get_weather", '{"city":"Rome"}'),
)
CITY = JsonSchemaFormat(
    "city_answer",
    {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
)
PNG = "data:image/png;base64,iVBORw0KGgo="


@pytest.fixture
async def upstream() -> AsyncIterator[FakeUpstream]:
    async with FakeUpstream() as up:
        yield up


@pytest.fixture
async def model(upstream: FakeUpstream) -> AsyncIterator[AnthropicModel]:
    transport = HttpTransport()
    yield AnthropicModel(
        name="claude",
        model_id="claude-test",
        api_key="sk-ant-test",
        transport=transport,
        api_base=upstream.url,
    )
    await transport.aclose()


async def answer(model: AnthropicModel, request: ChatRequest, mode: str) -> Completion:
    """The completion, whole or joined from the stream the way a caller would."""
    if mode == "complete":
        return await model.complete(request)
    deltas: list[StreamDelta] = [d async for d in model.stream(request)]
    last = deltas[-1]
    assert last.finish_reason is not None and last.usage is not None
    pieces = [piece for d in deltas for piece in d.tool_calls]
    return Completion(
        text="".join(d.text for d in deltas),
        model=last.model or "",
        provider="anthropic",
        deployment="",
        usage=last.usage,
        finish_reason=last.finish_reason,
        tool_calls=assemble_tool_calls(pieces),
    )


@pytest.mark.parametrize("mode", ["complete", "stream"])
async def test_tool_calls_come_back_as_core_calls(
    model: AnthropicModel, upstream: FakeUpstream, mode: str
) -> None:
    upstream.script(Reply("Checking.", tool_calls=CALLS, finish_reason="tool_calls", chunk_size=5))
    result = await answer(model, ASK, mode)
    assert result.text == "Checking."
    assert result.tool_calls == CALLS
    assert result.finish_reason is FinishReason.TOOL_CALLS
    sent = upstream.requests[-1].json
    assert sent["tools"] == [
        {
            "name": "get_weather",
            "description": "The weather in a city.",
            "input_schema": {
                "type": "object",
                "properties": {"city": {"type": "string"}},
                "required": ["city"],
            },
        },
        {"name": "get_time", "input_schema": {"type": "object", "properties": {}}},
    ]
    assert "tool_choice" not in sent


async def test_streamed_tool_calls_arrive_in_pieces_with_id_and_name_first(
    model: AnthropicModel, upstream: FakeUpstream
) -> None:
    upstream.script(Reply("", tool_calls=CALLS[:1], finish_reason="tool_calls", chunk_size=4))
    pieces = [p for d in [d async for d in model.stream(ASK)] for p in d.tool_calls]
    assert (pieces[0].index, pieces[0].id, pieces[0].name, pieces[0].arguments) == (
        0,
        "toolu_01",
        "get_weather",
        "",
    )
    assert [p.arguments for p in pieces[1:]] == ['{"ci', 'ty":', '"Par', 'is"}']
    assert all(p.id is None and p.index == 0 for p in pieces[1:])


@pytest.mark.parametrize(
    ("choice", "parallel", "wire"),
    [
        (ToolChoice("auto"), None, {"type": "auto"}),
        (ToolChoice("required"), None, {"type": "any"}),
        (ToolChoice.function("get_weather"), None, {"type": "tool", "name": "get_weather"}),
        (ToolChoice("none"), None, {"type": "none"}),
        (None, False, {"type": "auto", "disable_parallel_tool_use": True}),
        (ToolChoice("required"), False, {"type": "any", "disable_parallel_tool_use": True}),
        (ToolChoice("none"), False, {"type": "none"}),
    ],
)
async def test_tool_choice_and_parallel_calls_map_to_anthropic_tool_choice(
    model: AnthropicModel,
    upstream: FakeUpstream,
    choice: ToolChoice | None,
    parallel: bool | None,
    wire: dict[str, object],
) -> None:
    upstream.script(Reply("ok"))
    await model.complete(ASK.with_options(tool_choice=choice, parallel_tool_calls=parallel))
    assert upstream.requests[-1].json["tool_choice"] == wire


@pytest.mark.parametrize("mode", ["complete", "stream"])
async def test_a_tool_loop_sends_tool_use_and_merged_tool_results(
    model: AnthropicModel, upstream: FakeUpstream, mode: str
) -> None:
    upstream.script(Reply("Paris 18C, Rome 24C.", chunk_size=6))
    conversation = (
        Message.user("Weather in Paris and Rome?"),
        Message.assistant("Checking.", CALLS),
        Message.tool_result("toolu_01", "18C"),
        Message.tool_result("toolu_02", "24C"),
    )
    result = await answer(model, ChatRequest(messages=conversation, tools=(WEATHER,)), mode)
    assert result.text == "Paris 18C, Rome 24C."
    assert result.finish_reason is FinishReason.STOP and result.tool_calls == ()
    assert upstream.requests[-1].json["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "Weather in Paris and Rome?"}]},
        {
            "role": "assistant",
            "content": [
                {"type": "text", "text": "Checking."},
                {"type": "tool_use", "id": "toolu_01", "name": "get_weather", "input": {"city": "Paris"}},
                {"type": "tool_use", "id": "toolu_02", "name": "get_weather", "input": {"city": "Rome"}},
            ],
        },
        {
            "role": "user",
            "content": [
                {
                    "type": "tool_result",
                    "tool_use_id": "toolu_01",
                    "content": [{"type": "text", "text": "18C"}],
                },
                {
                    "type": "tool_result",
                    "tool_use_id": "toolu_02",
                    "content": [{"type": "text", "text": "24C"}],
                },
            ],
        },
    ]


async def test_images_and_cache_breakpoints_become_blocks(
    model: AnthropicModel, upstream: FakeUpstream
) -> None:
    upstream.script(Reply("A cat."))
    messages = (
        Message(Role.SYSTEM, (TextPart("You describe images.", cache_breakpoint=True),)),
        Message(
            Role.USER,
            (
                TextPart("What are these?"),
                ImagePart(PNG),
                ImagePart("https://example.com/cat.jpg", cache_breakpoint=True),
            ),
        ),
    )
    await model.complete(ChatRequest(messages=messages))
    sent = upstream.requests[-1].json
    assert sent["system"] == [
        {"type": "text", "text": "You describe images.", "cache_control": {"type": "ephemeral"}}
    ]
    assert sent["messages"][0]["content"] == [
        {"type": "text", "text": "What are these?"},
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}},
        {
            "type": "image",
            "source": {"type": "url", "url": "https://example.com/cat.jpg"},
            "cache_control": {"type": "ephemeral"},
        },
    ]


async def test_an_image_type_anthropic_cannot_read_is_refused_before_sending(
    model: AnthropicModel, upstream: FakeUpstream
) -> None:
    request = ChatRequest(messages=(Message(Role.USER, (ImagePart("data:image/bmp;base64,Qk0="),)),))
    with pytest.raises(InvalidRequestError, match="JPEG, PNG, GIF or WebP"):
        await model.complete(request)
    assert upstream.requests == []


@pytest.mark.parametrize("mode", ["complete", "stream"])
async def test_a_json_schema_is_answered_through_a_forced_tool(
    model: AnthropicModel, upstream: FakeUpstream, mode: str
) -> None:
    upstream.script(Reply('{"city": "Paris"}', chunk_size=4))
    request = ChatRequest.from_prompt("Capital of France?", system="Be brief.", json_schema=CITY)
    result = await answer(model, request, mode)
    assert json.loads(result.text) == {"city": "Paris"}
    assert result.tool_calls == () and result.finish_reason is FinishReason.STOP
    sent = upstream.requests[-1].json
    assert sent["tools"] == [
        {
            "name": "city_answer",
            "description": "Give your answer: the input of this tool is the whole answer, "
            "matching its schema.",
            "input_schema": dict(CITY.schema),
        }
    ]
    assert sent["tool_choice"] == {"type": "tool", "name": "city_answer"}
    assert sent["system"] == "Be brief."  # no JSON instruction: the tool carries the shape


async def test_a_json_schema_beside_tools_lets_the_model_call_either(
    model: AnthropicModel, upstream: FakeUpstream
) -> None:
    upstream.script(Reply("", tool_calls=CALLS[:1], finish_reason="tool_calls"))
    result = await model.complete(ASK.with_options(json_schema=CITY))
    assert result.tool_calls == CALLS[:1] and result.finish_reason is FinishReason.TOOL_CALLS
    sent = upstream.requests[-1].json
    assert [t["name"] for t in sent["tools"]] == ["get_weather", "get_time", "city_answer"]
    assert sent["tool_choice"] == {"type": "any"}


async def test_a_schema_that_is_not_an_object_is_refused_before_sending(
    model: AnthropicModel, upstream: FakeUpstream
) -> None:
    request = ChatRequest.from_prompt(
        "List cities", json_schema=JsonSchemaFormat("cities", {"type": "array"})
    )
    with pytest.raises(CapabilityNotSupportedError, match="wrap it in an object") as caught:
        await model.complete(request)
    assert caught.value.capability == "json_schema"
    assert (caught.value.provider, caught.value.deployment) == ("anthropic", model.deployment)
    assert upstream.requests == []


@pytest.mark.parametrize("mode", ["complete", "stream"])
async def test_cache_reads_and_writes_are_reported_and_priced(
    model: AnthropicModel, upstream: FakeUpstream, mode: str
) -> None:
    upstream.script(Reply("ok", usage=(1000, 100), cached_tokens=600, cache_write_tokens=300))
    price = Price(input=3.0, output=15.0, cached_input=0.3, cache_write=3.75)
    bus, sink = EventBus(), RecordingSink()
    bus.subscribe(sink)
    observed = ObservedModel(model, name="claude", provider="anthropic", deployment="d", price=price, bus=bus)
    request = ChatRequest.from_prompt("hi")
    if mode == "complete":
        result = await observed.complete(request)
        assert result.cost == pytest.approx(EXPECTED_COST)
    else:
        assert [d async for d in observed.stream(request)][-1].usage == CACHED_USAGE
    [attempt] = sink.of_type(AttemptSucceeded)
    assert isinstance(attempt, AttemptSucceeded)
    assert attempt.usage == CACHED_USAGE
    assert attempt.cost == pytest.approx(EXPECTED_COST)


CACHED_USAGE = Usage(input_tokens=1000, output_tokens=100, cached_input_tokens=600, cache_write_tokens=300)
# 100 plain input tokens at 3, 600 cache reads at 0.3, 300 cache writes at 3.75, 100 output at 15 (USD/M)
EXPECTED_COST = (100 * 3 + 600 * 0.3 + 300 * 3.75 + 100 * 15) / 1e6
