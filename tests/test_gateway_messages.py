"""``/v1/messages`` and ``/v1/messages/count_tokens`` with the official ``anthropic`` SDK as the client, in
front of FakeUpstreams speaking each wire format (cross-format both ways): messages, streaming, a tool
loop, images, errors in the Messages format, keys, budgets' headers and metrics."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import anthropic
import pytest

from model_orchestrator.config.loader import parse_config
from model_orchestrator.core.messages import Role, TextPart
from model_orchestrator.core.tools import ToolCall
from model_orchestrator.gateway import Gateway, GatewaySettings
from model_orchestrator.gateway.errors import GatewayError
from model_orchestrator.gateway.messages_convert import chat_messages
from model_orchestrator.orchestrator import Orchestrator
from model_orchestrator.testing import FakeUpstream, Fault, Reply
from model_orchestrator.wire.messages import MessagesRequest
from tests.gateway_helpers import MASTER

WEATHER: dict[str, Any] = {
    "name": "get_weather",
    "description": "The current weather in a city",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}
ASK = [{"role": "user", "content": "Weather in Paris?"}]
CALL = ToolCall("call_paris", "get_weather", '{"city":"Paris"}')
PIXEL = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
INLINE_IMAGE = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PIXEL}}
# One model per upstream wire format, all on one FakeUpstream (it answers each format on its own paths).
FORMATS = ["chat", "messages", "generate"]


def _config(up: FakeUpstream) -> str:
    caps = "capabilities: [text, vision, tools, json, json_schema], price: {input: 1000, output: 2000}"
    return f"""
models:
  - {{name: chat, provider: openai, model: m-chat, api_base: '{up.openai_base}', api_key_env: UP_KEY, {caps}}}
  - {{name: messages, provider: anthropic, model: m-msg, api_base: '{up.url}', api_key_env: UP_KEY, {caps}}}
  - {{name: generate, provider: gemini, model: m-gen, api_base: '{up.url}', api_key_env: UP_KEY, {caps}}}
strategies:
  - {{name: safe, type: fallback, chain: [chat, messages]}}
resilience:
  retry: {{max_attempts: 1}}
  breaker: {{failure_threshold: 1000}}
"""


@contextlib.asynccontextmanager
async def served(up: FakeUpstream) -> AsyncIterator[tuple[Gateway, anthropic.AsyncAnthropic]]:
    orch = Orchestrator(parse_config(_config(up)), env={"UP_KEY": "upstream-secret"})
    gateway = Gateway(orch, GatewaySettings(port=0, auth=True, master_key=MASTER))
    await gateway.start()
    client = anthropic.AsyncAnthropic(base_url=gateway.url, api_key=MASTER, max_retries=0, timeout=20)
    try:
        yield gateway, client
    finally:
        await client.close()
        await gateway.stop()


def _sent_texts(up: FakeUpstream) -> str:
    """Everything the upstream was sent, as text (to find a prompt or a tool result in any format)."""
    return json.dumps(up.requests[-1].json)


@pytest.mark.parametrize("model", FORMATS)
async def test_a_message_comes_back_in_the_messages_format(model: str) -> None:
    async with FakeUpstream() as up, served(up) as (_, client):
        up.script(Reply("Paris.", usage=(12, 3)))
        raw = await client.messages.with_raw_response.create(
            model=model,
            max_tokens=64,
            system=[{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}],
            messages=[{"role": "user", "content": "Capital of France?"}],
            stop_sequences=["END"],
            metadata={"user_id": "u-1"},
            extra_headers={"anthropic-beta": "prompt-caching-2024-07-31"},
            extra_body={"temperature": 0.2, "top_p": 0.9},  # older clients and agents still send them
        )
        message = await raw.parse()
        assert raw.headers["x-orchestrator-model-used"] == model
        assert "x-orchestrator-request-id" in raw.headers
    assert message.type == "message" and message.role == "assistant" and message.model == model
    assert [(b.type, getattr(b, "text", None)) for b in message.content] == [("text", "Paris.")]
    assert message.stop_reason == "end_turn"
    assert (message.usage.input_tokens, message.usage.output_tokens) == (12, 3)
    assert message.id.startswith("msg_")
    sent = _sent_texts(up)
    assert "Be brief." in sent and "Capital of France?" in sent and "END" in sent and "0.2" in sent


async def test_cache_reads_and_writes_are_reported_apart_from_input_tokens() -> None:
    async with FakeUpstream() as up, served(up) as (_, client):
        up.script(Reply("ok", usage=(100, 2), cached_tokens=60, cache_write_tokens=30))
        message = await client.messages.create(model="messages", max_tokens=16, messages=ASK)
    usage = message.usage
    assert (usage.input_tokens, usage.output_tokens) == (10, 2)
    assert (usage.cache_read_input_tokens, usage.cache_creation_input_tokens) == (60, 30)


@pytest.mark.parametrize("model", FORMATS)
async def test_the_sdk_stream_helper_assembles_the_message(model: str) -> None:
    async with FakeUpstream() as up, served(up) as (_, client):
        up.script(Reply("The capital of France is Paris.", chunk_size=5, usage=(9, 7)))
        async with client.messages.stream(model=model, max_tokens=64, messages=ASK) as stream:
            pieces = [text async for text in stream.text_stream]
            final = await stream.get_final_message()
    assert len(pieces) > 1 and "".join(pieces) == "The capital of France is Paris."
    assert [b.type for b in final.content] == ["text"]
    assert final.stop_reason == "end_turn"
    assert (final.usage.input_tokens, final.usage.output_tokens) == (9, 7)


async def test_the_event_sequence_is_the_formats() -> None:
    async with FakeUpstream() as up, served(up) as (gateway, _):
        up.script(Reply("Hi there", tool_calls=(CALL,), finish_reason="tool_calls", chunk_size=4))
        body = {"model": "chat", "max_tokens": 32, "messages": ASK, "tools": [WEATHER], "stream": True}
        async with aiohttp.ClientSession() as session:
            answer = await session.post(
                f"{gateway.url}/v1/messages", json=body, headers={"x-api-key": MASTER}
            )
            text = await answer.text()
    events = [line.removeprefix("event: ") for line in text.splitlines() if line.startswith("event: ")]
    datas = [json.loads(line[6:]) for line in text.splitlines() if line.startswith("data: ")]
    assert [d["type"] for d in datas] == events
    assert events[:2] == ["message_start", "ping"]
    assert events[-2:] == ["message_delta", "message_stop"]
    starts = [d for d in datas if d["type"] == "content_block_start"]
    assert [(s["index"], s["content_block"]["type"]) for s in starts] == [(0, "text"), (1, "tool_use")]
    assert starts[1]["content_block"]["id"] == "call_paris"
    stops = [d["index"] for d in datas if d["type"] == "content_block_stop"]
    assert stops == [0, 1]
    deltas = [d["delta"] for d in datas if d["type"] == "content_block_delta"]
    partial = "".join(d["partial_json"] for d in deltas if d["type"] == "input_json_delta")
    assert json.loads(partial) == {"city": "Paris"}
    assert datas[-2]["delta"]["stop_reason"] == "tool_use"
    assert datas[-2]["orchestrator"]["model_used"] == "chat"


@pytest.mark.parametrize("model", FORMATS)
@pytest.mark.parametrize("stream", [False, True])
async def test_a_tool_loop_call_result_answer(model: str, stream: bool) -> None:
    async with FakeUpstream() as up, served(up) as (_, client):
        up.script(
            Reply("Let me check.", tool_calls=(CALL,), finish_reason="tool_calls", chunk_size=3),
            Reply("Sunny in Paris."),
        )
        kwargs: dict[str, Any] = {"model": model, "max_tokens": 64, "tools": [WEATHER]}
        if stream:
            async with client.messages.stream(messages=ASK, **kwargs) as events:
                first = await events.get_final_message()
        else:
            first = await client.messages.create(messages=ASK, tool_choice={"type": "auto"}, **kwargs)
        assert first.stop_reason == "tool_use"
        uses = [b for b in first.content if b.type == "tool_use"]
        assert [(u.name, u.input) for u in uses] == [("get_weather", {"city": "Paris"})]
        assert uses[0].id  # the upstream's id (a format without call ids gets one made up)
        turns = [
            *ASK,
            {"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in first.content]},
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": uses[0].id, "content": "22 C, sunny"}],
            },
        ]
        second = await client.messages.create(messages=turns, **kwargs)
    assert [getattr(b, "text", None) for b in second.content] == ["Sunny in Paris."]
    sent = _sent_texts(up)
    assert "22 C, sunny" in sent and "get_weather" in sent


async def test_tool_choice_any_forces_a_call_upstream() -> None:
    async with FakeUpstream() as up, served(up) as (_, client):
        up.script(Reply("", tool_calls=(CALL,), finish_reason="tool_calls"))
        await client.messages.create(
            model="chat",
            max_tokens=16,
            messages=ASK,
            tools=[WEATHER],
            tool_choice={"type": "tool", "name": "get_weather", "disable_parallel_tool_use": True},
        )
        sent = up.requests[-1].json
    assert sent["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}
    assert sent["parallel_tool_calls"] is False


@pytest.mark.parametrize("model", ["chat", "messages"])
async def test_tools_sharing_a_name_are_passed_on_as_sent(model: str) -> None:
    # Whether names must differ is the upstream's rule (JSON Schema, so the OpenAPI document, cannot say it).
    other = {**WEATHER, "description": "Tomorrow's weather"}
    async with FakeUpstream() as up, served(up) as (_, client):
        await client.messages.create(model=model, max_tokens=16, messages=ASK, tools=[WEATHER, other])
    assert _sent_texts(up).count('"get_weather"') == 2
    assert "Tomorrow's weather" in _sent_texts(up)


@pytest.mark.parametrize("model", ["chat", "messages"])
async def test_images_by_data_and_by_url_reach_the_upstream(model: str) -> None:
    async with FakeUpstream() as up, served(up) as (_, client):
        up.script(Reply("Two pictures."))
        await client.messages.create(
            model=model,
            max_tokens=16,
            messages=[
                {
                    "role": "user",
                    "content": [
                        {
                            "type": "image",
                            "source": {"type": "base64", "media_type": "image/png", "data": PIXEL},
                        },
                        {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.png"}},
                        {"type": "text", "text": "What are these?"},
                    ],
                }
            ],
        )
    sent = _sent_texts(up)
    assert PIXEL in sent and "https://example.com/cat.png" in sent


async def test_a_bad_key_is_an_authentication_error_in_the_formats_shape() -> None:
    async with FakeUpstream() as up, served(up) as (gateway, _):
        client = anthropic.AsyncAnthropic(base_url=gateway.url, api_key="wrong", max_retries=0)
        with pytest.raises(anthropic.AuthenticationError) as caught:
            await client.messages.create(model="chat", max_tokens=16, messages=ASK)
        await client.close()
    body: Any = caught.value.body
    assert body["type"] == "error" and body["error"]["type"] == "authentication_error"
    assert body["error"]["message"]
    assert up.requests == []


async def test_a_bearer_key_is_accepted_too() -> None:
    async with FakeUpstream() as up, served(up) as (gateway, _):
        up.script(Reply("ok"))
        client = anthropic.AsyncAnthropic(base_url=gateway.url, auth_token=MASTER, max_retries=0)
        message = await client.messages.create(model="chat", max_tokens=16, messages=ASK)
        await client.close()
    assert message.content[0].type == "text"


async def test_errors_have_the_formats_types_and_statuses() -> None:
    async with FakeUpstream() as up, served(up) as (_, client):
        with pytest.raises(anthropic.NotFoundError) as missing:
            await client.messages.create(model="nope", max_tokens=16, messages=ASK)
        with pytest.raises(anthropic.BadRequestError) as unsupported:
            await client.messages.create(
                model="chat", max_tokens=16, messages=ASK, extra_body={"thinking": {"type": "enabled"}}
            )
        up.script(Fault.server_error(500), Fault.server_error(500))
        with pytest.raises(anthropic.InternalServerError) as failed:
            await client.messages.create(model="safe", max_tokens=16, messages=ASK)
    assert missing.value.body["error"]["type"] == "not_found_error"  # type: ignore[index]
    assert unsupported.value.body["error"] == {  # type: ignore[index]
        "type": "invalid_request_error",
        "message": "thinking is not supported by this gateway",
    }
    assert failed.value.status_code == 503
    assert failed.value.body["error"]["type"] == "overloaded_error"  # type: ignore[index]


async def test_a_failure_after_the_first_text_ends_the_stream_with_an_error_event() -> None:
    async with FakeUpstream() as up, served(up) as (_, client):
        up.script(Fault.truncated_stream(after_chunks=2))
        with pytest.raises(anthropic.APIStatusError) as caught:
            async with client.messages.stream(model="chat", max_tokens=16, messages=ASK) as stream:
                async for _ in stream.text_stream:
                    pass
    assert caught.value.body["error"]["type"] in {"api_error", "overloaded_error"}  # type: ignore[index]


async def test_count_tokens_is_the_projects_estimate() -> None:
    async with FakeUpstream() as up, served(up) as (_, client):
        plain = await client.messages.count_tokens(model="messages", messages=ASK)
        with_tools = await client.messages.count_tokens(
            model="messages", messages=ASK, system="You are terse.", tools=[WEATHER]
        )
    assert plain.input_tokens > 0
    assert with_tools.input_tokens > plain.input_tokens
    assert up.requests == []  # an estimate: nothing was sent upstream


async def test_a_virtual_key_is_held_to_its_models_on_messages_too() -> None:
    async with FakeUpstream() as up, served(up) as (gateway, _):
        store = await gateway.orch.virtual_keys()
        assert store is not None
        _, secret = await store.create(models=("chat",))
        up.script(Reply("ok"))
        client = anthropic.AsyncAnthropic(base_url=gateway.url, api_key=secret, max_retries=0)
        allowed = await client.messages.create(model="chat", max_tokens=16, messages=ASK)
        with pytest.raises(anthropic.PermissionDeniedError) as refused:
            await client.messages.create(model="messages", max_tokens=16, messages=ASK)
        with pytest.raises(anthropic.PermissionDeniedError):
            await client.messages.count_tokens(model="messages", messages=ASK)
        await client.close()
    assert allowed.content[0].type == "text"
    assert refused.value.body["error"]["type"] == "permission_error"  # type: ignore[index]
    assert "orchestrator" in allowed.model_extra  # type: ignore[operator]


async def test_metrics_count_the_messages_route() -> None:
    async with FakeUpstream() as up, served(up) as (gateway, client):
        up.script(Reply("ok"))
        await client.messages.create(model="chat", max_tokens=16, messages=ASK)
        async with aiohttp.ClientSession() as session:
            answer = await session.get(
                f"{gateway.url}/metrics", headers={"authorization": f"Bearer {MASTER}"}
            )
            text = await answer.text()
    assert 'route="/v1/messages",status="200"' in text


async def test_the_openapi_document_describes_both_routes() -> None:
    async with FakeUpstream() as up, served(up) as (gateway, _), aiohttp.ClientSession() as session:
        answer = await session.get(f"{gateway.url}/openapi.json", headers={"x-api-key": MASTER})
        document = await answer.json()
    post = document["paths"]["/v1/messages"]["post"]
    assert post["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith("/MessagesRequest")
    assert "max_tokens" in document["components"]["schemas"]["MessagesRequest"]["required"]
    assert "/v1/messages/count_tokens" in document["paths"]
    # Each format's parts have their own components: the chat route's ToolParam is still the chat one.
    schemas = document["components"]["schemas"]
    assert "function" in schemas["ToolParam"]["properties"]
    assert "input_schema" in schemas["MessagesToolParam"]["properties"]


async def test_a_keys_budget_is_charged_and_enforced_on_messages() -> None:
    async with FakeUpstream() as up, served(up) as (gateway, _):
        # 12 * $0.001 + 3 * $0.002 = $0.018 a request at these prices: the third would overrun $0.05.
        store = await gateway.orch.virtual_keys()
        assert store is not None
        _, secret = await store.create(budget_usd=0.05)
        up.default_reply = Reply("Paris", usage=(12, 3))
        client = anthropic.AsyncAnthropic(base_url=gateway.url, api_key=secret, max_retries=0)
        for _ in range(2):
            await client.messages.create(model="chat", max_tokens=3, messages=ASK)
        with pytest.raises(anthropic.RateLimitError) as caught:
            await client.messages.create(model="chat", max_tokens=3, messages=ASK)
        await client.close()
    assert caught.value.body["error"]["type"] == "rate_limit_error"  # type: ignore[index]
    assert caught.value.response.headers["x-should-retry"] == "false"
    assert len(up.requests) == 2


async def test_a_tool_loop_through_a_fallback_whose_first_member_fails() -> None:
    async with FakeUpstream() as up, served(up) as (_, client):
        up.script(
            Fault.server_error(500),
            Reply("", tool_calls=(CALL,), finish_reason="tool_calls"),
            Fault.server_error(500),
            Reply("Sunny in Paris."),
        )
        raw = await client.messages.with_raw_response.create(
            model="safe", max_tokens=64, messages=ASK, tools=[WEATHER]
        )
        first = await raw.parse()
        use = next(b for b in first.content if b.type == "tool_use")
        turns = [
            *ASK,
            {"role": "assistant", "content": [use.model_dump(exclude_none=True)]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": use.id, "content": "22 C"}]},
        ]
        second = await client.messages.create(model="safe", max_tokens=64, messages=turns, tools=[WEATHER])
        formats = [r.path for r in up.requests]
    assert raw.headers["x-orchestrator-model-used"] == "messages"
    assert first.stop_reason == "tool_use" and use.input == {"city": "Paris"}
    assert [getattr(b, "text", None) for b in second.content] == ["Sunny in Paris."]
    assert formats == ["/v1/chat/completions", "/v1/messages"] * 2  # each turn fell back across formats
    assert "22 C" in _sent_texts(up)


async def test_an_answer_cut_at_max_tokens_says_so() -> None:
    async with FakeUpstream() as up, served(up) as (_, client):
        up.script(Reply("Paris is the", finish_reason="length"))
        message = await client.messages.create(model="messages", max_tokens=3, messages=ASK)
    assert message.stop_reason == "max_tokens"


def test_blocks_become_core_messages_in_order() -> None:
    body = MessagesRequest.model_validate(
        {
            "model": "m",
            "max_tokens": 10,
            "system": [{"type": "text", "text": "Rules.", "cache_control": {"type": "ephemeral"}}],
            "messages": [
                {"role": "user", "content": "Weather?"},
                {
                    "role": "assistant",
                    "content": [
                        {"type": "text", "text": "Checking."},
                        {"type": "tool_use", "id": "t1", "name": "get_weather", "input": {"city": "Paris"}},
                    ],
                },
                {
                    "role": "user",
                    "content": [
                        {"type": "tool_result", "tool_use_id": "t1", "content": "down", "is_error": True},
                        {"type": "text", "text": "And now?"},
                    ],
                },
            ],
        }
    )
    system, ask, call, result, follow_up = chat_messages(body)
    assert system.role is Role.SYSTEM and system.parts == (TextPart("Rules.", cache_breakpoint=True),)
    assert ask.text == "Weather?"
    assert call.text == "Checking." and call.tool_calls == (
        ToolCall("t1", "get_weather", '{"city":"Paris"}'),
    )
    assert (result.role, result.tool_call_id, result.text) == (Role.TOOL, "t1", "Error: down")
    assert (follow_up.role, follow_up.text) == (Role.USER, "And now?")


@pytest.mark.parametrize(
    ("turn", "message"),
    [
        ({"role": "assistant", "content": [INLINE_IMAGE]}, "Images are accepted in user turns only"),
        (
            {"role": "user", "content": [{"type": "tool_use", "id": "t", "name": "f", "input": {}}]},
            "tool_use blocks belong to assistant turns",
        ),
        (
            {"role": "assistant", "content": [{"type": "tool_result", "tool_use_id": "t"}]},
            "tool_result blocks belong to user turns",
        ),
    ],
)
def test_blocks_in_the_wrong_turn_are_refused(turn: dict[str, Any], message: str) -> None:
    body = MessagesRequest.model_validate({"model": "m", "max_tokens": 10, "messages": [turn]})
    with pytest.raises(GatewayError) as refused:
        chat_messages(body)
    assert refused.value.message == message and refused.value.param == "messages.0.content.0"
