"""Tools, images and JSON schemas through ``OpenAICompatibleModel`` against ``FakeUpstream``, both ways,
streamed and not: what goes on the wire, and what comes back into core types."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from model_orchestrator.core.errors import RequestTimeoutError
from model_orchestrator.core.messages import ImagePart, Message, Role, TextPart
from model_orchestrator.core.rate_limits import RateLimitSnapshot
from model_orchestrator.core.request import ChatRequest
from model_orchestrator.core.response import Completion, FinishReason, StreamDelta
from model_orchestrator.core.tools import (
    JsonSchemaFormat,
    ToolCall,
    ToolCallDelta,
    ToolChoice,
    ToolDefinition,
    assemble_tool_calls,
)
from model_orchestrator.providers.http import HttpTransport
from model_orchestrator.providers.openai_compatible import OpenAICompatibleModel
from model_orchestrator.providers.openai_compatible.convert import (
    StreamDecoder,
    decode_completion,
    encode_request,
)
from model_orchestrator.providers.openai_compatible.endpoints import TokenField
from model_orchestrator.resilience.timeout import TimeoutModel
from model_orchestrator.testing import FakeClock, FakeUpstream, Reply

WEATHER = ToolDefinition(
    "get_weather",
    "The current weather in a city",
    {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    strict=True,
)
TIME = ToolDefinition("get_time")
CALLS = (
    ToolCall("call_1", "get_weather", '{"city": "Paris"}'),
    ToolCall("call_2", "get_weather", '{"city": "Lyon, with a long name to stream in pieces"}'),
)
SCHEMA = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "population": {"type": "integer"}},
    "required": ["city", "population"],
    "additionalProperties": False,
}
PIXEL = (
    "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9a"
    "wAAAABJRU5ErkJggg=="
)


@pytest.fixture
def upstream() -> Iterator[FakeUpstream]:
    with FakeUpstream() as up:
        yield up


@pytest.fixture
async def model(upstream: FakeUpstream) -> AsyncIterator[OpenAICompatibleModel]:
    transport = HttpTransport()
    yield OpenAICompatibleModel(
        name="fast", model_id="gpt-4o-mini", api_base=upstream.openai_base, api_key="k", transport=transport
    )
    await transport.aclose()


def _tool_request(**options: Any) -> ChatRequest:
    return ChatRequest.from_prompt("Weather in Paris and Lyon?", tools=(WEATHER, TIME), **options)


def _sent(upstream: FakeUpstream) -> dict[str, Any]:
    body = upstream.requests[-1].json
    assert isinstance(body, dict)
    return body


async def test_tools_choice_and_parallel_calls_go_on_the_wire_as_openai_documents(
    upstream: FakeUpstream, model: OpenAICompatibleModel
) -> None:
    request = _tool_request(tool_choice=ToolChoice.function("get_weather"), parallel_tool_calls=False)
    await model.complete(request)
    sent = _sent(upstream)
    assert sent["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "The current weather in a city",
                "parameters": dict(WEATHER.parameters),
                "strict": True,
            },
        },
        {"type": "function", "function": {"name": "get_time"}},
    ]
    assert sent["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}
    assert sent["parallel_tool_calls"] is False


@pytest.mark.parametrize("mode", ["auto", "none", "required"])
async def test_tool_choice_modes_are_plain_strings(
    upstream: FakeUpstream, model: OpenAICompatibleModel, mode: str
) -> None:
    await model.complete(_tool_request(tool_choice=ToolChoice(mode)))  # type: ignore[arg-type]
    assert _sent(upstream)["tool_choice"] == mode
    assert "parallel_tool_calls" not in _sent(upstream)


async def test_a_plain_request_carries_no_tool_fields(
    upstream: FakeUpstream, model: OpenAICompatibleModel
) -> None:
    await model.complete(ChatRequest.from_prompt("hi"))
    sent = _sent(upstream)
    assert sent["messages"] == [{"role": "user", "content": "hi"}]
    assert not {"tools", "tool_choice", "parallel_tool_calls", "response_format"} & set(sent)


async def test_tool_calls_come_back_whole(upstream: FakeUpstream, model: OpenAICompatibleModel) -> None:
    upstream.script(Reply("", tool_calls=CALLS, finish_reason="tool_calls"))
    completion = await model.complete(_tool_request())
    assert completion.tool_calls == CALLS
    assert completion.text == ""
    assert completion.finish_reason is FinishReason.TOOL_CALLS
    assert completion.tool_calls[1].parsed_arguments() == {
        "city": "Lyon, with a long name to stream in pieces"
    }


async def test_a_forced_call_answered_with_stop_still_finishes_with_tool_calls(
    upstream: FakeUpstream, model: OpenAICompatibleModel
) -> None:
    # OpenAI answers a named tool_choice with finish_reason "stop" beside the call.
    upstream.script(Reply("", tool_calls=CALLS[:1], finish_reason="stop"))
    completion = await model.complete(_tool_request(tool_choice=ToolChoice.function("get_weather")))
    assert completion.finish_reason is FinishReason.TOOL_CALLS
    assert completion.tool_calls == CALLS[:1]


async def test_streamed_tool_calls_arrive_in_pieces_and_assemble_to_the_whole_calls(
    upstream: FakeUpstream, model: OpenAICompatibleModel
) -> None:
    upstream.script(Reply("Let me check.", tool_calls=CALLS, finish_reason="tool_calls", chunk_size=5))
    deltas = [d async for d in model.stream(_tool_request())]
    pieces = [p for d in deltas for p in d.tool_calls]
    assert len(pieces) > len(CALLS)  # really streamed in pieces, not whole
    assert [p.index for p in pieces if p.id] == [0, 1]
    assert all(p.id is None and p.name is None for p in pieces if not p.name)
    assert assemble_tool_calls(pieces) == CALLS
    assert "".join(d.text for d in deltas) == "Let me check."
    assert deltas[-1].finish_reason is FinishReason.TOOL_CALLS
    assert deltas[-1].usage is not None and not deltas[-1].usage.estimated


async def test_tool_loop_history_is_sent_as_assistant_tool_calls_and_tool_messages(
    upstream: FakeUpstream, model: OpenAICompatibleModel
) -> None:
    request = ChatRequest(
        messages=(
            Message.user("Weather in Paris?"),
            Message.assistant("", CALLS[:1]),
            Message.tool_result("call_1", '{"temp": 21}'),
        ),
        tools=(WEATHER,),
    )
    await model.complete(request)
    assert _sent(upstream)["messages"] == [
        {"role": "user", "content": "Weather in Paris?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                }
            ],
        },
        {"role": "tool", "content": '{"temp": 21}', "tool_call_id": "call_1"},
    ]


async def test_images_are_sent_as_image_url_parts_with_their_detail(
    upstream: FakeUpstream, model: OpenAICompatibleModel
) -> None:
    parts = (
        TextPart("What is in these?"),
        ImagePart("https://example.test/cat.png", "low"),
        ImagePart(PIXEL),
    )
    request = ChatRequest(messages=(Message(Role.USER, parts),))
    await model.complete(request)
    assert _sent(upstream)["messages"][0]["content"] == [
        {"type": "text", "text": "What is in these?"},
        {"type": "image_url", "image_url": {"url": "https://example.test/cat.png", "detail": "low"}},
        {"type": "image_url", "image_url": {"url": PIXEL}},
    ]


@pytest.mark.parametrize("stream", [False, True])
async def test_json_schema_is_sent_whole_and_the_answer_matches_it(
    upstream: FakeUpstream, model: OpenAICompatibleModel, stream: bool
) -> None:
    schema = JsonSchemaFormat("city", SCHEMA, strict=True, description="A city and its population")
    request = ChatRequest.from_prompt("Largest city of France?", json_schema=schema)
    if stream:
        text = "".join([d.text async for d in model.stream(request)])
    else:
        text = (await model.complete(request)).text
    assert _sent(upstream)["response_format"] == {
        "type": "json_schema",
        "json_schema": {
            "name": "city",
            "schema": SCHEMA,
            "strict": True,
            "description": "A city and its population",
        },
    }
    answer = json.loads(text)
    assert set(answer) == {"city", "population"} and isinstance(answer["population"], int)


def test_encoding_a_plain_request_is_unchanged_by_tool_support() -> None:
    body = encode_request(
        ChatRequest.from_prompt("hi", system="sys"),
        model_id="m",
        stream=False,
        token_field=TokenField.MAX_TOKENS,
    )
    assert json.loads(body) == {
        "model": "m",
        "messages": [{"role": "system", "content": "sys"}, {"role": "user", "content": "hi"}],
    }


class _StallsAfterAToolCallPiece:
    """Streams the first piece of a tool call, then stalls until cancelled."""

    name = "stalling"

    async def complete(self, request: ChatRequest) -> Completion:
        raise AssertionError("the timeout under test only streams from this double")

    async def stream(self, request: ChatRequest) -> AsyncIterator[StreamDelta]:
        yield StreamDelta(tool_calls=(ToolCallDelta(0, "call_1", "get_weather", '{"ci'),))
        await asyncio.Event().wait()

    async def aclose(self) -> None:
        return None


async def test_after_a_tool_call_piece_a_stalled_stream_hits_the_idle_timeout() -> None:
    """A tool-call piece is the stream's first token: from there the idle timeout applies, not what is
    left of the first-token timeout (a long call would otherwise be cut short)."""
    clock = FakeClock()
    inner = _StallsAfterAToolCallPiece()
    model = TimeoutModel(
        inner, deployment="d", clock=clock, timeout=30.0, first_token_timeout=3.0, idle_timeout=1.5
    )
    seen: list[StreamDelta] = []
    with pytest.raises(RequestTimeoutError, match="idle"):
        async for delta in model.stream(_tool_request()):
            seen.append(delta)
    assert len(seen) == 1 and clock.sleeps == [1.5]


def test_calls_from_a_server_that_sends_no_ids_get_ids_so_they_can_be_answered() -> None:
    request = _tool_request()
    body = json.dumps(
        {
            "choices": [
                {
                    "message": {"role": "assistant", "tool_calls": [{"function": {"name": "get_time"}}]},
                    "finish_reason": "tool_calls",
                }
            ]
        }
    ).encode()
    completion = decode_completion(
        body,
        request,
        model_id="m",
        provider="p",
        deployment="d",
        latency=0.0,
        rate_limits=RateLimitSnapshot(),
    )
    assert completion.tool_calls == (ToolCall("call_0", "get_time", "{}"),)
    decoder = StreamDecoder(request, "m")
    pieces = [
        {"index": 0, "function": {"name": "get_time", "arguments": ""}},
        {"index": 0, "function": {"arguments": "{}"}},
        {"index": 1, "function": {"name": "get_weather", "arguments": "{}"}},
    ]
    deltas = [decoder.feed(None, json.dumps({"choices": [{"delta": {"tool_calls": [p]}}]})) for p in pieces]
    assert [d.tool_calls[0].id for d in deltas if d is not None] == ["call_0", None, "call_1"]
