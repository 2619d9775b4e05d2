"""``/v1/responses`` (stateless) with the official ``openai`` SDK's ``client.responses`` as the client, in
front of FakeUpstreams speaking the Chat Completions and the Messages formats (and Gemini's, for text):
text, items, images, a tool loop, JSON schemas, typed stream events, and clear refusals of what needs
server-side state."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import openai
import pytest
from pydantic import BaseModel

from model_orchestrator.config.loader import parse_config
from model_orchestrator.core.messages import Role
from model_orchestrator.core.tools import ToolCall
from model_orchestrator.gateway import Gateway, GatewaySettings
from model_orchestrator.gateway.responses_convert import chat_messages
from model_orchestrator.orchestrator import Orchestrator
from model_orchestrator.testing import FakeUpstream, Fault, Reply
from model_orchestrator.wire.responses import ResponsesRequest
from tests.gateway_helpers import MASTER

WEATHER: dict[str, Any] = {
    "type": "function",
    "name": "get_weather",
    "description": "The current weather in a city",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
        "additionalProperties": False,
    },
    "strict": True,
}
CALL = ToolCall("call_paris", "get_weather", '{"city":"Paris"}')
PIXEL = (
    "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9a"
    "wAAAABJRU5ErkJggg=="
)
FORMATS = ["chat", "messages"]


class City(BaseModel):
    name: str
    population: int


def _config(up: FakeUpstream) -> str:
    caps = "capabilities: [text, vision, tools, json, json_schema], price: {input: 1000, output: 2000}"
    return f"""
models:
  - {{name: chat, provider: openai, model: m-chat, api_base: '{up.openai_base}', api_key_env: UP_KEY, {caps}}}
  - {{name: messages, provider: anthropic, model: m-msg, api_base: '{up.url}', api_key_env: UP_KEY, {caps}}}
  - {{name: generate, provider: gemini, model: m-gen, api_base: '{up.url}', api_key_env: UP_KEY, {caps}}}
resilience:
  retry: {{max_attempts: 1}}
"""


@contextlib.asynccontextmanager
async def served(up: FakeUpstream, key: str | None = None) -> AsyncIterator[openai.AsyncOpenAI]:
    """The SDK on a gateway over ``up`` (``key``: a virtual key with that budget in USD, else the master)."""
    orch = Orchestrator(parse_config(_config(up)), env={"UP_KEY": "upstream-secret"})
    gateway = Gateway(orch, GatewaySettings(port=0, auth=True, master_key=MASTER))
    await gateway.start()
    secret = MASTER
    if key is not None:
        store = await orch.virtual_keys()
        assert store is not None
        _, secret = await store.create(budget_usd=float(key))
    client = openai.AsyncOpenAI(base_url=f"{gateway.url}/v1", api_key=secret, max_retries=0, timeout=20)
    try:
        yield client
    finally:
        await client.close()
        await gateway.stop()


def _sent(up: FakeUpstream) -> str:
    return json.dumps(up.requests[-1].json)


@pytest.mark.parametrize("model", [*FORMATS, "generate"])
async def test_text_in_text_out(model: str) -> None:
    async with FakeUpstream() as up, served(up) as client:
        up.script(Reply("Paris.", usage=(11, 2), cached_tokens=4))
        raw = await client.responses.with_raw_response.create(
            model=model, input="Capital of France?", instructions="Be brief.", max_output_tokens=50
        )
        response = raw.parse()
        assert raw.headers["x-orchestrator-model-used"] == model
    assert response.object == "response" and response.status == "completed" and response.model == model
    assert response.output_text == "Paris."
    assert response.id.startswith("resp_")
    assert response.usage is not None
    assert (response.usage.input_tokens, response.usage.output_tokens, response.usage.total_tokens) == (
        11,
        2,
        13,
    )
    assert response.usage.input_tokens_details.cached_tokens == 4
    sent = _sent(up)
    assert "Be brief." in sent and "Capital of France?" in sent and "50" in sent


@pytest.mark.parametrize("model", FORMATS)
async def test_message_items_with_images(model: str) -> None:
    async with FakeUpstream() as up, served(up) as client:
        up.script(Reply("A pixel."))
        response = await client.responses.create(
            model=model,
            input=[
                {"role": "developer", "content": "Describe images."},
                {
                    "type": "message",
                    "role": "user",
                    "content": [
                        {"type": "input_text", "text": "What is this?"},
                        {"type": "input_image", "image_url": PIXEL, "detail": "auto"},
                    ],
                },
            ],
        )
    assert response.output_text == "A pixel."
    sent = _sent(up)
    assert "Describe images." in sent and PIXEL.split(",")[1] in sent


async def test_tools_sharing_a_name_are_passed_on_as_sent() -> None:
    # Whether names must differ is the upstream's rule (JSON Schema, so the OpenAPI document, cannot say it).
    other = {**WEATHER, "description": "Tomorrow's weather"}
    async with FakeUpstream() as up, served(up) as client:
        await client.responses.create(model="chat", input="Weather?", tools=[WEATHER, other])
    assert _sent(up).count('"get_weather"') == 2
    assert "Tomorrow's weather" in _sent(up)


@pytest.mark.parametrize("model", FORMATS)
async def test_a_tool_loop_with_function_call_output(model: str) -> None:
    async with FakeUpstream() as up, served(up) as client:
        up.script(Reply("", tool_calls=(CALL,), finish_reason="tool_calls"), Reply("Sunny in Paris."))
        history: list[Any] = [{"role": "user", "content": "Weather in Paris?"}]
        first = await client.responses.create(model=model, input=history, tools=[WEATHER])
        calls = [item for item in first.output if item.type == "function_call"]
        assert [(c.call_id, c.name, json.loads(c.arguments)) for c in calls] == [
            ("call_paris", "get_weather", {"city": "Paris"})
        ]
        history += [item.model_dump(exclude_none=True) for item in first.output]
        history.append({"type": "function_call_output", "call_id": calls[0].call_id, "output": "22 C, sunny"})
        second = await client.responses.create(
            model=model, input=history, tools=[WEATHER], tool_choice="auto"
        )
    assert second.output_text == "Sunny in Paris."
    sent = _sent(up)
    assert "22 C, sunny" in sent and "call_paris" in sent


async def test_a_json_schema_text_format_reaches_the_upstream_and_parses() -> None:
    async with FakeUpstream() as up, served(up) as client:
        up.script(Reply('{"name":"Paris","population":2100000}'))
        parsed = await client.responses.parse(model="chat", input="Largest French city?", text_format=City)
        sent = up.requests[-1].json
    assert parsed.output_parsed == City(name="Paris", population=2100000)
    assert sent["response_format"]["type"] == "json_schema"
    assert sent["response_format"]["json_schema"]["name"] == "City"
    assert sent["response_format"]["json_schema"]["schema"]["required"] == ["name", "population"]


async def test_streamed_text_comes_as_typed_numbered_events() -> None:
    async with FakeUpstream() as up, served(up) as client:
        up.script(Reply("The capital is Paris.", chunk_size=4, usage=(8, 5)))
        stream = await client.responses.create(model="messages", input="Capital?", stream=True)
        events = [event async for event in stream]
    kinds = [e.type for e in events]
    assert kinds[:4] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
    ]
    assert kinds[-4:] == [
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert [e.sequence_number for e in events] == list(range(len(events)))
    deltas = [e.delta for e in events if e.type == "response.output_text.delta"]
    assert len(deltas) > 1 and "".join(deltas) == "The capital is Paris."
    final = events[-1].response  # type: ignore[union-attr]
    assert final.output_text == "The capital is Paris."
    assert final.usage is not None and final.usage.output_tokens == 5
    assert final.model_extra is not None and final.model_extra["orchestrator"]["model_used"] == "messages"


async def test_a_failure_after_the_first_text_ends_the_stream_with_response_failed() -> None:
    async with FakeUpstream() as up, served(up) as client:
        up.script(Fault.truncated_stream(after_chunks=2))
        stream = await client.responses.create(model="chat", input="Capital?", stream=True)
        events = [event async for event in stream]
    assert events[-1].type == "response.failed"
    failed = events[-1].response  # type: ignore[union-attr]
    assert failed.status == "failed" and failed.error is not None and failed.error.message
    assert not any(e.type == "response.completed" for e in events)


async def test_the_openapi_document_describes_the_route() -> None:
    async with FakeUpstream() as up, served(up) as client:
        root = str(client.base_url).removesuffix("/").removesuffix("/v1")
        async with httpx.AsyncClient() as http:
            answer = await http.get(f"{root}/openapi.json", headers={"authorization": f"Bearer {MASTER}"})
        document = answer.json()
    post = document["paths"]["/v1/responses"]["post"]
    assert post["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith("/ResponsesRequest")
    assert {"/v1/chat/completions", "/v1/messages", "/v1/responses"} <= set(document["paths"])


@pytest.mark.parametrize("model", FORMATS)
async def test_streamed_function_calls_and_the_sdk_stream_helper(model: str) -> None:
    async with FakeUpstream() as up, served(up) as client:
        up.script(Reply("", tool_calls=(CALL,), finish_reason="tool_calls", chunk_size=3))
        async with client.responses.stream(model=model, input="Weather?", tools=[WEATHER]) as stream:
            events = [event async for event in stream]
            final = await stream.get_final_response()
    pieces = [e.delta for e in events if e.type == "response.function_call_arguments.delta"]
    assert len(pieces) > 1 and json.loads("".join(pieces)) == {"city": "Paris"}
    done = [e for e in events if e.type == "response.function_call_arguments.done"]
    assert json.loads(done[0].arguments) == {"city": "Paris"}
    calls = [item for item in final.output if item.type == "function_call"]
    assert [(c.call_id, c.name, c.status) for c in calls] == [("call_paris", "get_weather", "completed")]


async def test_an_answer_cut_at_max_output_tokens_is_incomplete() -> None:
    async with FakeUpstream() as up, served(up) as client:
        up.script(Reply("Paris is", finish_reason="length"))
        response = await client.responses.create(model="chat", input="Capital?", max_output_tokens=2)
    assert response.status == "incomplete"
    assert (
        response.incomplete_details is not None and response.incomplete_details.reason == "max_output_tokens"
    )


@pytest.mark.parametrize(
    ("options", "param"),
    [
        ({"previous_response_id": "resp_123"}, "previous_response_id"),
        ({"store": True}, "store"),
        ({"background": True}, "background"),
        ({"tools": [{"type": "web_search"}]}, "tools.0.type"),
        ({"reasoning": {"effort": "low"}}, "reasoning"),
    ],
)
async def test_what_needs_server_state_or_built_in_tools_is_refused(
    options: dict[str, Any], param: str
) -> None:
    async with FakeUpstream() as up, served(up) as client:
        with pytest.raises(openai.BadRequestError) as refused:
            await client.responses.create(model="chat", input="hi", **options)
    assert refused.value.status_code == 400
    assert refused.value.param == param
    assert param.split(".")[0] in refused.value.message
    assert up.requests == []


async def test_a_bad_key_is_refused() -> None:
    async with FakeUpstream() as up, served(up) as client:
        bad = openai.AsyncOpenAI(base_url=str(client.base_url), api_key="wrong", max_retries=0)
        with pytest.raises(openai.AuthenticationError):
            await bad.responses.create(model="chat", input="hi")
        await bad.close()
    assert up.requests == []


async def test_a_keys_budget_is_charged_and_enforced_on_responses() -> None:
    async with FakeUpstream() as up, served(up, key="0.05") as client:
        # 12 * $0.001 + 3 * $0.002 = $0.018 a request at these prices: the third would overrun $0.05.
        # Each reserves about that much first (the estimate of this prompt, max_output_tokens=3).
        up.default_reply = Reply("Paris", usage=(12, 3))
        ask = "What is the capital of France?"
        for _ in range(2):
            await client.responses.create(model="chat", input=ask, max_output_tokens=3)
        with pytest.raises(openai.RateLimitError) as caught:
            await client.responses.create(model="chat", input=ask, max_output_tokens=3)
    assert caught.value.code == "insufficient_quota"
    assert caught.value.response.headers["x-should-retry"] == "false"
    assert len(up.requests) == 2


def test_function_call_items_join_the_assistant_turn_before_them() -> None:
    body = ResponsesRequest.model_validate(
        {
            "model": "m",
            "instructions": "Be brief.",
            "input": [
                {"role": "user", "content": "Weather?"},
                {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Hm."}]},
                {
                    "type": "function_call",
                    "call_id": "c1",
                    "name": "get_weather",
                    "arguments": '{"city":"Paris"}',
                },
                {
                    "type": "function_call",
                    "call_id": "c2",
                    "name": "get_weather",
                    "arguments": '{"city":"Lyon"}',
                },
                {"type": "function_call_output", "call_id": "c1", "output": "sunny"},
                {"type": "function_call_output", "call_id": "c2", "output": "rain"},
            ],
        }
    )
    system, ask, calls, paris, lyon = chat_messages(body)
    assert (system.role, system.text, ask.text) == (Role.SYSTEM, "Be brief.", "Weather?")
    assert calls.role is Role.ASSISTANT and calls.text == "Hm."
    assert [c.id for c in calls.tool_calls] == ["c1", "c2"]
    assert [(m.role, m.tool_call_id, m.text) for m in (paris, lyon)] == [
        (Role.TOOL, "c1", "sunny"),
        (Role.TOOL, "c2", "rain"),
    ]
