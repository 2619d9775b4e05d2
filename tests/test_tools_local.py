"""The embedded model and tools, images and JSON schemas: a schema is enforced by a llama.cpp grammar
(checked on the real model); tools and images are refused before anything is generated."""

from __future__ import annotations

import json

import jsonschema
import pytest

from model_orchestrator.core.errors import CapabilityNotSupportedError
from model_orchestrator.core.messages import ImagePart, Message, Role, TextPart
from model_orchestrator.core.request import ChatRequest
from model_orchestrator.core.response import FinishReason
from model_orchestrator.core.tools import JsonSchemaFormat, ToolCall, ToolDefinition
from model_orchestrator.providers.local import LocalModel

CAPITAL = JsonSchemaFormat(
    "capital",
    {
        "type": "object",
        "properties": {
            "city": {"type": "string", "maxLength": 20},
            "country": {"type": "string", "enum": ["France", "Italy", "Spain"]},
        },
        "required": ["city", "country"],
        "additionalProperties": False,
    },
)
QUESTION = ChatRequest.from_prompt("What is the capital of France?", json_schema=CAPITAL, max_tokens=64)


@pytest.mark.local_model
async def test_a_json_schema_answer_parses_and_validates() -> None:
    result = await LocalModel().complete(QUESTION)
    answer = json.loads(result.text)
    jsonschema.validate(answer, dict(CAPITAL.schema))
    assert result.finish_reason is FinishReason.STOP


@pytest.mark.local_model
async def test_a_streamed_json_schema_answer_is_the_same_answer() -> None:
    model = LocalModel()
    whole = await model.complete(QUESTION)
    streamed = "".join([delta.text async for delta in model.stream(QUESTION)])
    assert streamed == whole.text
    jsonschema.validate(json.loads(streamed), dict(CAPITAL.schema))


@pytest.mark.local_model
async def test_a_schema_llama_cpp_cannot_express_is_refused_naming_json_schema() -> None:
    schema = JsonSchemaFormat("odd", {"$ref": "https://example.com/remote.json"})
    with pytest.raises(CapabilityNotSupportedError, match="simplify the schema") as caught:
        await LocalModel().complete(ChatRequest.from_prompt("hi", json_schema=schema))
    assert caught.value.capability == "json_schema"


@pytest.mark.parametrize(
    ("request_", "capability"),
    [
        (ChatRequest.from_prompt("hi", tools=(ToolDefinition("get_time"),)), "tools"),
        (
            ChatRequest(
                messages=(Message.user("hi"), Message.assistant("", (ToolCall("c1", "get_time"),))),
            ),
            "tools",
        ),
        (
            ChatRequest(
                messages=(Message(Role.USER, (TextPart("what is it?"), ImagePart("https://x.test/a.png"))),)
            ),
            "vision",
        ),
    ],
)
async def test_tools_and_images_are_refused_before_generating(request_: ChatRequest, capability: str) -> None:
    # A model path that does not exist: reaching the engine would fail with ConfigError instead.
    model = LocalModel(model_path="/nonexistent/model.gguf")
    with pytest.raises(CapabilityNotSupportedError, match="nothing was sent") as caught:
        await model.complete(request_)
    assert caught.value.capability == capability
    assert (caught.value.provider, caught.value.status_code) == ("local", 400)
    with pytest.raises(CapabilityNotSupportedError):
        [delta async for delta in model.stream(request_)]
