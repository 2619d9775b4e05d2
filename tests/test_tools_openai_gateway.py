"""Tools, images and JSON schemas through the gateway's ``/v1/chat/completions``, with the official
``openai`` SDK as the client (it parses every answer with its own types) and a FakeUpstream speaking the
OpenAI format behind it."""

from __future__ import annotations

import json
from typing import Any

import aiohttp
import openai
import pytest
from pydantic import BaseModel

from model_orchestrator.core.tools import ToolCall
from model_orchestrator.testing import FakeUpstream, Fault, Reply
from tests.gateway_helpers import MASTER, USER, live_gateway

WEATHER: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The current weather in a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
            "additionalProperties": False,
        },
        "strict": True,
    },
}
ASK = [{"role": "user", "content": "Weather in Paris and Lyon?"}]
CALLS = (
    ToolCall("call_paris", "get_weather", '{"city":"Paris"}'),
    ToolCall("call_lyon", "get_weather", '{"city":"Lyon"}'),
)
PIXEL = (
    "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9a"
    "wAAAABJRU5ErkJggg=="
)


class City(BaseModel):
    name: str
    population: int


async def test_tools_and_parallel_tool_calls_round_trip_in_openai_shapes() -> None:
    async with FakeUpstream() as up, live_gateway(up) as live:
        up.script(Reply("", tool_calls=CALLS, finish_reason="tool_calls", usage=(30, 12), cached_tokens=16))
        answer = await live.client().chat.completions.create(
            model="a", messages=ASK, tools=[WEATHER], tool_choice="required", parallel_tool_calls=True
        )
        sent = up.requests[0].json
        assert sent["tools"] == [WEATHER]
        assert sent["tool_choice"] == "required" and sent["parallel_tool_calls"] is True
        choice = answer.choices[0]
        assert choice.finish_reason == "tool_calls"
        assert choice.message.content is None
        calls = choice.message.tool_calls or []
        assert [(c.id, c.type, c.function.name, c.function.arguments) for c in calls] == [
            ("call_paris", "function", "get_weather", '{"city":"Paris"}'),
            ("call_lyon", "function", "get_weather", '{"city":"Lyon"}'),
        ]
        assert answer.usage is not None and answer.usage.prompt_tokens_details is not None
        assert answer.usage.prompt_tokens_details.cached_tokens == 16


async def test_a_named_tool_choice_reaches_the_upstream() -> None:
    async with FakeUpstream() as up, live_gateway(up) as live:
        up.script(Reply("", tool_calls=CALLS[:1], finish_reason="stop"))
        answer = await live.client().chat.completions.create(
            model="a",
            messages=ASK,
            tools=[WEATHER],
            tool_choice={"type": "function", "function": {"name": "get_weather"}},
        )
        assert up.requests[0].json["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}
        assert answer.choices[0].finish_reason == "tool_calls"


async def test_tools_sharing_a_name_are_passed_on_as_sent() -> None:
    # Whether names must differ is the upstream's rule (JSON Schema, so the OpenAPI document, cannot say it).
    other = {"type": "function", "function": {"name": "get_weather", "description": "Tomorrow's weather"}}
    async with FakeUpstream() as up, live_gateway(up) as live:
        await live.client().chat.completions.create(model="a", messages=ASK, tools=[WEATHER, other])
        sent = up.requests[0].json["tools"]
    assert [t["function"]["name"] for t in sent] == ["get_weather", "get_weather"]
    assert sent[1]["function"]["description"] == "Tomorrow's weather"


async def test_streamed_tool_calls_arrive_as_openai_deltas() -> None:
    async with FakeUpstream() as up, live_gateway(up) as live:
        up.script(Reply("", tool_calls=CALLS, finish_reason="tool_calls", chunk_size=4, cached_tokens=8))
        stream = await live.client().chat.completions.create(
            model="a", messages=ASK, tools=[WEATHER], stream=True, stream_options={"include_usage": True}
        )
        pieces, finishes, usage = [], [], None
        async for chunk in stream:
            usage = chunk.usage or usage
            for choice in chunk.choices:
                pieces.extend(choice.delta.tool_calls or [])
                if choice.finish_reason:
                    finishes.append(choice.finish_reason)
        firsts = [p for p in pieces if p.id]
        assert [(p.index, p.id, p.type, p.function and p.function.name) for p in firsts] == [
            (0, "call_paris", "function", "get_weather"),
            (1, "call_lyon", "function", "get_weather"),
        ]
        assert len(pieces) > len(firsts)  # arguments really came in several pieces
        for index, call in enumerate(CALLS):
            text = "".join((p.function.arguments or "") for p in pieces if p.index == index and p.function)
            assert text == call.arguments
        assert finishes == ["tool_calls"]
        assert usage is not None and usage.prompt_tokens_details is not None
        assert usage.prompt_tokens_details.cached_tokens == 8


async def test_the_sdk_stream_helper_assembles_and_parses_streamed_tool_calls() -> None:
    async with FakeUpstream() as up, live_gateway(up) as live:
        up.script(Reply("", tool_calls=CALLS, finish_reason="tool_calls", chunk_size=3))
        async with live.client().chat.completions.stream(model="a", messages=ASK, tools=[WEATHER]) as stream:
            final = await stream.get_final_completion()
        calls = final.choices[0].message.tool_calls or []
        assert [(c.id, c.function.name, c.function.parsed_arguments) for c in calls] == [
            ("call_paris", "get_weather", {"city": "Paris"}),
            ("call_lyon", "get_weather", {"city": "Lyon"}),
        ]
        assert final.choices[0].finish_reason == "tool_calls"


async def test_images_reach_the_upstream_as_image_url_parts() -> None:
    content = [
        {"type": "text", "text": "What is in these images?"},
        {"type": "image_url", "image_url": {"url": "https://example.test/cat.png", "detail": "high"}},
        {"type": "image_url", "image_url": {"url": PIXEL}},
    ]
    async with FakeUpstream() as up, live_gateway(up) as live:
        up.script(Reply("A cat and a pixel."))
        answer = await live.client().chat.completions.create(
            model="a", messages=[{"role": "user", "content": content}]
        )
        assert answer.choices[0].message.content == "A cat and a pixel."
        assert up.requests[0].json["messages"] == [{"role": "user", "content": content}]


async def test_json_schema_answers_parse_with_the_sdk() -> None:
    async with FakeUpstream() as up, live_gateway(up) as live:
        up.script(Reply('{"name":"Paris","population":2100000}'))
        parsed = await live.client().chat.completions.parse(
            model="a", messages=[{"role": "user", "content": "Largest city of France?"}], response_format=City
        )
        assert parsed.choices[0].message.parsed == City(name="Paris", population=2100000)
        response_format = up.requests[0].json["response_format"]
        assert response_format["type"] == "json_schema"
        spec = response_format["json_schema"]
        assert spec["name"] == "City" and spec["strict"] is True
        assert spec["schema"]["required"] == ["name", "population"]


async def test_json_schema_streams_too() -> None:
    async with FakeUpstream() as up, live_gateway(up) as live:
        async with live.client().chat.completions.stream(
            model="a", messages=[{"role": "user", "content": "Largest city of France?"}], response_format=City
        ) as stream:
            final = await stream.get_final_completion()
        # The fake, asked for a schema, answers with a value matching it.
        assert isinstance(final.choices[0].message.parsed, City)


async def test_a_tool_loop_through_a_fallback_whose_first_member_fails() -> None:
    async with FakeUpstream() as up, live_gateway(up) as live:
        client = live.client()
        up.script(Fault.server_error(500), Reply("", tool_calls=CALLS[:1], finish_reason="tool_calls"))
        first = await client.chat.completions.with_raw_response.create(
            model="safe", messages=ASK, tools=[WEATHER]
        )
        assert first.headers["x-orchestrator-model-used"] == "b"
        message = first.parse().choices[0].message
        assert message.tool_calls and message.tool_calls[0].id == "call_paris"

        history = [
            *ASK,
            message.model_dump(exclude_none=True),
            {"role": "tool", "tool_call_id": "call_paris", "content": '{"temp_c": 21}'},
        ]
        up.script(Fault.server_error(503), Reply("21 °C in Paris."))
        stream = await client.chat.completions.create(
            model="safe", messages=history, tools=[WEATHER], stream=True
        )
        text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
        assert text == "21 °C in Paris."

        assert [r.json["model"] for r in up.requests] == ["m-a", "m-b", "m-a", "m-b"]
        for turn in up.requests[2:]:  # both members saw the whole loop
            assert turn.json["messages"][1:] == [
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": "call_paris",
                            "type": "function",
                            "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
                        }
                    ],
                },
                {"role": "tool", "content": '{"temp_c": 21}', "tool_call_id": "call_paris"},
            ]


async def test_streamed_tool_calls_through_a_fallback_come_from_the_member_that_answered() -> None:
    async with FakeUpstream() as up, live_gateway(up) as live:
        up.script(
            Fault.server_error(503), Reply("", tool_calls=CALLS, finish_reason="tool_calls", chunk_size=5)
        )
        async with live.client().chat.completions.stream(
            model="safe", messages=ASK, tools=[WEATHER]
        ) as stream:
            final = await stream.get_final_completion()
        calls = final.choices[0].message.tool_calls or []
        assert [(c.id, c.function.arguments) for c in calls] == [(c.id, c.arguments) for c in CALLS]
        assert final.choices[0].finish_reason == "tool_calls"
        assert [r.json["model"] for r in up.requests] == ["m-a", "m-b"]


async def test_tool_calls_stream_from_their_first_piece() -> None:
    # The upstream drops the connection after the first tool-call pieces: the client has them already
    # (they were streamed on, not held back until the call was whole), then the stream's error event.
    async with (
        FakeUpstream(default_reply=Reply("", tool_calls=CALLS, chunk_size=3)) as up,
        live_gateway(up) as live,
    ):
        up.script(Fault.truncated_stream(after_chunks=3))
        stream = await live.client().chat.completions.create(
            model="a", messages=ASK, tools=[WEATHER], stream=True
        )
        pieces = []
        with pytest.raises(openai.APIError):
            async for chunk in stream:
                pieces.extend(p for c in chunk.choices for p in c.delta.tool_calls or [])
        assert pieces and pieces[0].id == "call_paris"


@pytest.mark.parametrize(
    "extra", [{"tool_choice": "none"}, {"tool_choice": "auto", "parallel_tool_calls": True}]
)
async def test_tool_options_without_tools_have_nothing_to_act_on(extra: dict[str, Any]) -> None:
    async with FakeUpstream() as up, live_gateway(up) as live:
        answer = await live.client().chat.completions.create(model="a", messages=USER, **extra)
        assert answer.choices[0].message.content == "ok"
        assert not {"tools", "tool_choice", "parallel_tool_calls"} & set(up.requests[0].json)


@pytest.mark.parametrize(
    ("extra", "param", "phrase"),
    [
        ({"functions": [{"name": "f"}]}, "functions", "send tools and tool_choice instead"),
        ({"tool_choice": "required"}, "tool_choice", "forces a tool call, so it needs tools"),
        (
            {"tools": [], "tool_choice": {"type": "function", "function": {"name": "get_weather"}}},
            "tool_choice",
            "forces a tool call, so it needs tools",
        ),
        (
            {"tools": [WEATHER], "tool_choice": {"type": "function", "function": {"name": "nope"}}},
            "tool_choice",
            "not among the tools",
        ),
        (
            {"tools": [{"type": "function", "function": {"name": "has space"}}]},
            "tools.0.function.name",
            "letters, digits",
        ),
        ({"response_format": {"type": "json_schema"}}, "response_format", "needs a json_schema object"),
        (
            {"response_format": {"type": "text", "json_schema": {"name": "x"}}},
            "response_format.json_schema",
            "takes no json_schema",
        ),
        (
            {"messages": [*USER, {"role": "tool", "content": "21"}]},
            "messages.1.tool_call_id",
            "needs the tool_call_id",
        ),
        (
            {"messages": [{"role": "user", "content": "x", "tool_call_id": "c"}]},
            "messages.0.tool_call_id",
            "belongs to tool messages",
        ),
        (
            {
                "messages": [
                    {
                        "role": "user",
                        "content": [{"type": "image_url", "image_url": {"url": "file:///etc/x"}}],
                    }
                ]
            },
            "messages.0.content.0.image_url.url",
            "http(s) or a base64 data: URL",
        ),
        (
            {
                "messages": [
                    {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:x"}}]}
                ]
            },
            "messages.0.content.0.image_url.url",
            "data:<media type>;base64",
        ),
        (
            {
                "messages": [
                    {"role": "system", "content": [{"type": "image_url", "image_url": {"url": PIXEL}}]}
                ]
            },
            "messages.0.content.0",
            "user messages only",
        ),
        (
            {"messages": [{"role": "user", "content": [{"type": "input_image", "file_id": "file-1"}]}]},
            "messages.0.content.0",
            "send image_url",
        ),
    ],
)
async def test_what_cannot_be_carried_is_refused_with_a_clear_400(
    extra: dict[str, Any], param: str, phrase: str
) -> None:
    async with FakeUpstream() as up, live_gateway(up) as live, aiohttp.ClientSession() as session:
        body = {"model": "a", "messages": USER, **extra}
        async with session.post(
            f"{live.url}/v1/chat/completions", json=body, headers={"authorization": f"Bearer {MASTER}"}
        ) as response:
            assert response.status == 400
            error = (await response.json())["error"]
        assert error["param"] == param
        assert phrase in error["message"]
        assert up.requests == []  # nothing was sent upstream


async def test_the_openapi_document_describes_tools_images_and_json_schema() -> None:
    async with FakeUpstream() as up, live_gateway(up) as live:
        document = await _get_json(f"{live.url}/openapi.json")
    schemas = document["components"]["schemas"]
    request = schemas["ChatRequestBody"]["properties"]
    assert {"tools", "tool_choice", "parallel_tool_calls"} <= set(request)
    # A named choice must name one of the tools, which JSON Schema cannot say: described, not listed.
    assert "NamedToolChoice" not in json.dumps(request["tool_choice"]["anyOf"])
    assert "NamedToolChoice" in request["tool_choice"]["description"]
    assert schemas["ContentPart"]["properties"]["type"]["enum"] == ["text", "image_url"]
    assert "json_schema" in schemas["ResponseFormatParam"]["properties"]["type"]["enum"]
    assert "schema" in schemas["JsonSchemaParam"]["properties"]
    assert "tool_calls" in schemas["ResponseMessage"]["properties"]


async def _get_json(url: str) -> Any:
    headers = {"authorization": f"Bearer {MASTER}"}
    async with aiohttp.ClientSession() as session, session.get(url, headers=headers) as response:
        return json.loads(await response.text())
