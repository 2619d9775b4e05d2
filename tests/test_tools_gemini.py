"""Tools, images and JSON schemas through ``GeminiModel`` against FakeUpstream.

Each test asserts the generateContent shapes that reached the fake and the core shapes that came back,
streamed and not.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest

from model_orchestrator.core.errors import CapabilityNotSupportedError, InvalidRequestError
from model_orchestrator.core.messages import ImagePart, Message, Role, TextPart
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
from model_orchestrator.providers.gemini import GeminiModel
from model_orchestrator.providers.http import HttpTransport
from model_orchestrator.testing.fake_upstream import FakeUpstream, Reply

WEATHER = ToolDefinition(
    "get_weather",
    "The weather in a city.",
    {
        "type": "object",
        "properties": {"city": {"type": "string"}, "unit": {"type": ["string", "null"], "enum": ["C", "F"]}},
        "required": ["city"],
        "additionalProperties": False,
    },
)
CLOCK = ToolDefinition("get_time", parameters={"type": "object", "properties": {}})
ASK = ChatRequest.from_prompt("Weather in Paris and Rome?", tools=(WEATHER, CLOCK))
SCRIPTED = (
    ToolCall("ignored-1", "get_weather", '{"city":"Paris"}'),
    ToolCall("ignored-2", "get_weather", '{"city":"Rome"}'),
)
CITY = JsonSchemaFormat(
    "city_answer",
    {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "properties": {"city": {"$ref": "#/$defs/name"}, "population": {"type": "integer"}},
        "required": ["city"],
        "$defs": {"name": {"type": "string", "description": "A city name"}},
    },
)


@pytest.fixture
async def upstream() -> AsyncIterator[FakeUpstream]:
    async with FakeUpstream() as up:
        yield up


@pytest.fixture
async def model(upstream: FakeUpstream) -> AsyncIterator[GeminiModel]:
    transport = HttpTransport()
    yield GeminiModel(
        name="gemini", model_id="gemini-test", api_key="AIza-test", transport=transport, api_base=upstream.url
    )
    await transport.aclose()


async def answer(model: GeminiModel, request: ChatRequest, mode: str) -> Completion:
    """The completion, whole or joined from the stream the way a caller would."""
    if mode == "complete":
        return await model.complete(request)
    deltas: list[StreamDelta] = [d async for d in model.stream(request)]
    last = deltas[-1]
    assert last.finish_reason is not None and last.usage is not None
    return Completion(
        text="".join(d.text for d in deltas),
        model=last.model or "",
        provider="gemini",
        deployment="",
        usage=last.usage,
        finish_reason=last.finish_reason,
        tool_calls=assemble_tool_calls([piece for d in deltas for piece in d.tool_calls]),
    )


@pytest.mark.parametrize("mode", ["complete", "stream"])
async def test_function_calls_come_back_as_tool_calls_with_stable_ids(
    model: GeminiModel, upstream: FakeUpstream, mode: str
) -> None:
    upstream.script(*[Reply("Checking.", tool_calls=SCRIPTED, finish_reason="tool_calls")] * 2)
    first = await answer(model, ASK, mode)
    again = await answer(model, ASK, "stream" if mode == "complete" else "complete")
    assert first.text == "Checking."
    assert [(c.name, c.arguments) for c in first.tool_calls] == [
        ("get_weather", '{"city":"Paris"}'),
        ("get_weather", '{"city":"Rome"}'),
    ]
    assert first.finish_reason is FinishReason.TOOL_CALLS
    ids = [c.id for c in first.tool_calls]
    assert all(i.startswith("call_") for i in ids) and len(set(ids)) == 2
    assert [c.id for c in again.tool_calls] == ids  # streamed or not, the same answer has the same ids
    sent = upstream.requests[0].json
    assert sent["tools"] == [
        {
            "functionDeclarations": [
                {
                    "name": "get_weather",
                    "description": "The weather in a city.",
                    "parameters": {
                        "type": "OBJECT",
                        "properties": {
                            "city": {"type": "STRING"},
                            "unit": {"type": "STRING", "nullable": True, "enum": ["C", "F"]},
                        },
                        "required": ["city"],
                    },
                },
                {"name": "get_time"},
            ]
        }
    ]
    assert "toolConfig" not in sent


@pytest.mark.parametrize(
    ("choice", "config"),
    [
        (ToolChoice("auto"), {"mode": "AUTO"}),
        (ToolChoice("required"), {"mode": "ANY"}),
        (ToolChoice("none"), {"mode": "NONE"}),
        (ToolChoice.function("get_time"), {"mode": "ANY", "allowedFunctionNames": ["get_time"]}),
    ],
)
async def test_tool_choice_becomes_the_function_calling_config(
    model: GeminiModel, upstream: FakeUpstream, choice: ToolChoice, config: dict[str, object]
) -> None:
    await model.complete(ASK.with_options(tool_choice=choice))
    assert upstream.requests[-1].json["toolConfig"] == {"functionCallingConfig": config}


@pytest.mark.parametrize("mode", ["complete", "stream"])
async def test_without_parallel_calls_only_the_first_call_is_returned(
    model: GeminiModel, upstream: FakeUpstream, mode: str
) -> None:
    upstream.script(Reply("", tool_calls=SCRIPTED, finish_reason="tool_calls"))
    result = await answer(model, ASK.with_options(parallel_tool_calls=False), mode)
    assert [c.arguments for c in result.tool_calls] == ['{"city":"Paris"}']


@pytest.mark.parametrize("mode", ["complete", "stream"])
async def test_a_tool_loop_sends_function_calls_and_named_function_responses(
    model: GeminiModel, upstream: FakeUpstream, mode: str
) -> None:
    upstream.script(Reply("Paris 18C, Rome 24C."))
    conversation = (
        Message.user("Weather in Paris and Rome?"),
        Message.assistant("", (ToolCall("a", "get_weather", '{"city":"Paris"}'), ToolCall("b", "get_time"))),
        Message.tool_result("a", '{"celsius": 18}'),
        Message.tool_result("b", "noon"),
    )
    result = await answer(model, ChatRequest(messages=conversation, tools=(WEATHER, CLOCK)), mode)
    assert result.text == "Paris 18C, Rome 24C." and result.finish_reason is FinishReason.STOP
    assert upstream.requests[-1].json["contents"] == [
        {"role": "user", "parts": [{"text": "Weather in Paris and Rome?"}]},
        {
            "role": "model",
            "parts": [
                {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}},
                {"functionCall": {"name": "get_time", "args": {}}},
            ],
        },
        {
            "role": "user",
            "parts": [
                {"functionResponse": {"name": "get_weather", "response": {"celsius": 18}}},
                {"functionResponse": {"name": "get_time", "response": {"output": "noon"}}},
            ],
        },
    ]


@pytest.mark.parametrize(("model_id", "signed"), [("gemini-3-flash", True), ("gemini-2.5-pro", False)])
async def test_gemini_3_gets_the_documented_sentinel_on_each_replayed_turns_first_call(
    upstream: FakeUpstream, model_id: str, signed: bool
) -> None:
    transport = HttpTransport()
    model = GeminiModel(name="g", model_id=model_id, api_key="k", transport=transport, api_base=upstream.url)
    calls = (ToolCall("a", "get_time"), ToolCall("b", "get_time"))
    conversation = (
        Message.user("Time twice?"),
        Message.assistant("", calls),
        Message.tool_result("a", "noon"),
        Message.tool_result("b", "noon"),
    )
    await model.complete(ChatRequest(messages=conversation, tools=(CLOCK,)))
    await transport.aclose()
    parts = upstream.requests[-1].json["contents"][1]["parts"]
    expected = {"thoughtSignature": "skip_thought_signature_validator"} if signed else {}
    assert parts == [
        {"functionCall": {"name": "get_time", "args": {}}, **expected},
        {"functionCall": {"name": "get_time", "args": {}}},
    ]


async def test_a_tool_result_for_an_unknown_call_is_refused_before_sending(
    model: GeminiModel, upstream: FakeUpstream
) -> None:
    request = ChatRequest(messages=(Message.user("hi"), Message.tool_result("nope", "42")), tools=(CLOCK,))
    with pytest.raises(InvalidRequestError, match="needs the function's name"):
        await model.complete(request)
    assert upstream.requests == []


async def test_an_image_in_a_tool_result_is_refused_not_dropped(
    model: GeminiModel, upstream: FakeUpstream
) -> None:
    result = Message(Role.TOOL, (TextPart("see"), ImagePart("https://x.test/a.png")), tool_call_id="a")
    conversation = (Message.user("Look"), Message.assistant("", (ToolCall("a", "get_time"),)), result)
    with pytest.raises(InvalidRequestError, match="send the image in a user message") as caught:
        await model.complete(ChatRequest(messages=conversation, tools=(CLOCK,)))
    assert caught.value.deployment == model.deployment
    assert upstream.requests == []


async def test_images_become_inline_data_and_file_data(model: GeminiModel, upstream: FakeUpstream) -> None:
    parts = (TextPart("What are these?"), ImagePart("data:image/png;base64,iVBORw0KGgo="))
    urls = (ImagePart("https://example.com/cat.jpg?size=2"), ImagePart("https://example.com/image"))
    await model.complete(ChatRequest(messages=(Message(Role.USER, parts + urls),)))
    assert upstream.requests[-1].json["contents"][0]["parts"] == [
        {"text": "What are these?"},
        {"inlineData": {"mimeType": "image/png", "data": "iVBORw0KGgo="}},
        {"fileData": {"mimeType": "image/jpeg", "fileUri": "https://example.com/cat.jpg?size=2"}},
        {"fileData": {"fileUri": "https://example.com/image"}},
    ]


@pytest.mark.parametrize("mode", ["complete", "stream"])
async def test_a_json_schema_becomes_the_response_schema(
    model: GeminiModel, upstream: FakeUpstream, mode: str
) -> None:
    upstream.script(Reply('{"city": "Paris"}', usage=(40, 6), cached_tokens=32))
    result = await answer(model, ChatRequest.from_prompt("Capital of France?", json_schema=CITY), mode)
    assert json.loads(result.text) == {"city": "Paris"}
    assert result.usage == Usage(input_tokens=40, output_tokens=6, cached_input_tokens=32)
    config = upstream.requests[-1].json["generationConfig"]
    assert config["responseMimeType"] == "application/json"
    assert config["responseSchema"] == {
        "type": "OBJECT",
        "properties": {
            "city": {"type": "STRING", "description": "A city name"},
            "population": {"type": "INTEGER"},
        },
        "required": ["city"],
    }


@pytest.mark.parametrize(
    ("schema", "named"),
    [
        ({"type": "object", "properties": {"a": {"allOf": [{"type": "string"}]}}}, "'allOf'"),
        (
            {"type": "object", "properties": {"n": {"enum": [1, 2]}}},
            "enum of values that are not all strings",
        ),
        ({"type": ["string", "integer"]}, "the type"),
        (
            {"$ref": "#/$defs/node", "$defs": {"node": {"properties": {"next": {"$ref": "#/$defs/node"}}}}},
            "recursive",
        ),
        ({"type": "object", "additionalProperties": {"type": "string"}}, "'additionalProperties'"),
    ],
)
async def test_a_schema_outside_the_gemini_subset_is_refused_naming_the_keyword(
    model: GeminiModel, upstream: FakeUpstream, schema: dict[str, object], named: str
) -> None:
    request = ChatRequest.from_prompt("x", json_schema=JsonSchemaFormat("shape", schema))
    with pytest.raises(CapabilityNotSupportedError, match=named) as caught:
        await model.complete(request)
    assert caught.value.capability == "json_schema"
    assert (caught.value.provider, caught.value.deployment) == ("gemini", model.deployment)
    assert upstream.requests == []
