"""Core shapes for tools, images and JSON-schema answers: provider-neutral and immutable."""

from __future__ import annotations

import dataclasses

import pytest

from model_orchestrator.core.errors import InvalidRequestError
from model_orchestrator.core.messages import ImagePart, Message, Role, TextPart
from model_orchestrator.core.request import ChatRequest, ResponseFormat
from model_orchestrator.core.tools import (
    JsonSchemaFormat,
    ToolCall,
    ToolCallDelta,
    ToolChoice,
    ToolDefinition,
    assemble_tool_calls,
)

WEATHER = ToolDefinition(
    "get_weather", "Weather for a city", {"type": "object", "properties": {"city": {"type": "string"}}}
)


def test_a_request_names_the_capabilities_it_needs() -> None:
    plain = ChatRequest.from_prompt("hi")
    assert plain.required_capabilities == frozenset()
    with_tools = ChatRequest.from_prompt("weather?", tools=(WEATHER,))
    assert with_tools.required_capabilities == {"tools"}
    image = Message(Role.USER, (TextPart("what is this?"), ImagePart("https://example.test/cat.png")))
    assert ChatRequest((image,)).required_capabilities == {"vision"}
    schema = ChatRequest.from_prompt("x", json_schema=JsonSchemaFormat("answer", {"type": "object"}))
    assert schema.required_capabilities == {"json_schema"}
    assert schema.response_format is ResponseFormat.JSON


def test_a_conversation_with_tool_turns_needs_tools_even_without_definitions() -> None:
    call = ToolCall("call_1", "get_weather", '{"city": "Paris"}')
    turns = (Message.user("weather?"), Message.assistant("", (call,)), Message.tool_result("call_1", "18C"))
    assert ChatRequest(turns).required_capabilities == {"tools"}
    assert turns[1].parts == ()
    assert turns[2].role is Role.TOOL and turns[2].tool_call_id == "call_1"


def test_tool_choice_must_name_an_offered_tool() -> None:
    with pytest.raises(InvalidRequestError, match="not among the tools"):
        ChatRequest.from_prompt("x", tools=(WEATHER,), tool_choice=ToolChoice.function("other"))
    with pytest.raises(InvalidRequestError):
        ToolChoice("function")
    assert ChatRequest.from_prompt("x", tools=(WEATHER,), tool_choice=ToolChoice.function("get_weather"))


def test_equal_calls_have_equal_canonical_arguments() -> None:
    a = ToolCall("1", "f", '{"b": 2, "a": [1, {"y": 1, "x": 0}]}')
    b = ToolCall("2", "f", '{"a":[1,{"x":0,"y":1}],"b":2}')
    assert a.canonical_arguments() == b.canonical_arguments()
    assert ToolCall("3", "f", "not json").canonical_arguments() == "not json"
    with pytest.raises(InvalidRequestError, match="not JSON"):
        ToolCall("3", "f", "not json").parsed_arguments()
    with pytest.raises(InvalidRequestError, match="not a JSON object"):
        ToolCall("3", "f", "[1]").parsed_arguments()
    assert a.parsed_arguments()["b"] == 2


def test_streamed_pieces_join_into_whole_calls_in_index_order() -> None:
    pieces = [
        ToolCallDelta(1, "c2", "lookup"),
        ToolCallDelta(0, "c1", "get_weather", '{"ci'),
        ToolCallDelta(1, arguments='{"q": "x"}'),
        ToolCallDelta(0, arguments='ty": "Paris"}'),
    ]
    calls = assemble_tool_calls(pieces)
    assert calls == (
        ToolCall("c1", "get_weather", '{"city": "Paris"}'),
        ToolCall("c2", "lookup", '{"q": "x"}'),
    )


def test_image_data_urls_split_into_media_type_and_data() -> None:
    assert ImagePart("data:image/png;base64,iVBOR").data() == ("image/png", "iVBOR")
    assert not ImagePart("https://example.test/a.png").is_data
    with pytest.raises(ValueError, match="base64 data URL"):
        ImagePart("https://example.test/a.png").data()
    with pytest.raises(ValueError, match="base64 data URL"):
        ImagePart("data:text/plain,hello").data()


def test_the_shapes_are_immutable() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        WEATHER.name = "x"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        ToolCall("1", "f").arguments = "{}"  # type: ignore[misc]
