"""Anthropic wire conversions, from fixtures shaped like https://docs.anthropic.com/en/api/messages."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from model_orchestrator.core.messages import Message
from model_orchestrator.core.request import ChatRequest, ResponseFormat
from model_orchestrator.core.response import Completion, FinishReason, StreamDelta
from model_orchestrator.core.usage import Usage
from model_orchestrator.providers.anthropic.convert import (
    JSON_INSTRUCTION,
    StreamDecoder,
    VendorError,
    decode_error,
    decode_message,
    encode_request,
    finish_reason_of,
)
from model_orchestrator.providers.sse import iter_sse

FIXTURES = Path(__file__).parent / "fixtures" / "anthropic"


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def encode(request: ChatRequest, *, stream: bool = False) -> dict[str, object]:
    body: dict[str, object] = json.loads(
        encode_request(request, model_id="claude-x", default_max_tokens=4096, stream=stream)
    )
    return body


def test_request_puts_system_on_top_and_requires_max_tokens() -> None:
    request = ChatRequest.from_prompt(
        "What is 2+2?", system="Be brief.", temperature=0.2, top_p=0.9, stop=("END",)
    )
    body = encode(request, stream=True)
    assert body == {
        "model": "claude-x",
        "max_tokens": 4096,
        "system": "Be brief.",
        "messages": [{"role": "user", "content": [{"type": "text", "text": "What is 2+2?"}]}],
        "temperature": 0.2,
        "top_p": 0.9,
        "stop_sequences": ["END"],
        "stream": True,
    }


def test_request_merges_same_role_turns_and_drops_empty_text() -> None:
    request = ChatRequest(
        messages=(
            Message.system("s1"),
            Message.user("a"),
            Message.user("b"),
            Message.assistant(""),
            Message.assistant("c"),
            Message.system("s2"),
            Message.user("d"),
        ),
        max_tokens=10,
    )
    body = encode(request)
    assert body["max_tokens"] == 10
    assert body["system"] == "s1\n\ns2"
    assert body["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]},
        {"role": "assistant", "content": [{"type": "text", "text": "c"}]},
        {"role": "user", "content": [{"type": "text", "text": "d"}]},
    ]
    assert "stream" not in body and "temperature" not in body


def test_json_format_adds_a_system_instruction() -> None:
    body = encode(ChatRequest.from_prompt("list", response_format=ResponseFormat.JSON))
    assert body["system"] == JSON_INSTRUCTION
    with_system = encode(ChatRequest.from_prompt("list", system="S", response_format=ResponseFormat.JSON))
    assert with_system["system"] == f"S\n\n{JSON_INSTRUCTION}"


def test_message_text_usage_and_finish() -> None:
    result = decode_message(fixture("message.json"), provider="anthropic", deployment="d", latency=0.5)
    assert isinstance(result, Completion)
    assert result.text == "The capital of France is Paris."
    assert result.model == "claude-sonnet-4-5-20250929"
    assert result.response_id == "msg_01XFDUDYJgAACzvnptvVoYEL"
    assert result.finish_reason is FinishReason.STOP
    assert (result.provider, result.deployment, result.latency) == ("anthropic", "d", 0.5)
    # input = 12 uncached + 100 cache writes + 2000 cache reads; cached = the reads; writes kept apart too.
    assert result.usage == Usage(
        input_tokens=2112, output_tokens=9, cached_input_tokens=2000, cache_write_tokens=100
    )


def test_refusal_is_a_content_filter_finish() -> None:
    result = decode_message(fixture("message_refusal.json"), provider="p", deployment="d", latency=0.0)
    assert isinstance(result, Completion)
    assert result.text == ""
    assert result.finish_reason is FinishReason.CONTENT_FILTER


@pytest.mark.parametrize(
    ("stop_reason", "expected"),
    [
        ("end_turn", FinishReason.STOP),
        ("stop_sequence", FinishReason.STOP),
        ("max_tokens", FinishReason.LENGTH),
        ("refusal", FinishReason.CONTENT_FILTER),
        ("tool_use", FinishReason.TOOL_CALLS),
        ("something_new", FinishReason.UNKNOWN),
        (None, FinishReason.UNKNOWN),
    ],
)
def test_finish_reasons(stop_reason: str | None, expected: FinishReason) -> None:
    assert finish_reason_of(stop_reason) is expected


def test_unreadable_message_is_a_server_side_error() -> None:
    result = decode_message(b"{not json", provider="p", deployment="d", latency=0.0)
    assert isinstance(result, VendorError)
    assert result.status == 502


@pytest.mark.parametrize(
    ("status", "name", "error_type", "context", "filtered"),
    [
        (429, "error_rate_limit.json", "rate_limit_error", False, False),
        (529, "error_overloaded.json", "overloaded_error", False, False),
        (400, "error_prompt_too_long.json", "invalid_request_error", True, False),
        (413, "error_request_too_large.json", "request_too_large", True, False),
        (401, "error_auth.json", "authentication_error", False, False),
        (400, "error_content_filter.json", "invalid_request_error", False, True),
    ],
)
def test_error_bodies(status: int, name: str, error_type: str, context: bool, filtered: bool) -> None:
    error = decode_error(status, fixture(name))
    assert error.status == status
    assert error.error_type == error_type
    assert error.message == json.loads(fixture(name))["error"]["message"]
    assert (error.context_exceeded, error.content_filtered) == (context, filtered)


def test_error_body_that_is_not_json_keeps_a_snippet() -> None:
    error = decode_error(502, b"<html>Bad gateway</html>")
    assert error.status == 502
    assert "Bad gateway" in error.message


async def _events(raw: bytes) -> list[StreamDelta | VendorError | None]:
    async def lines() -> AsyncIterator[bytes]:
        for line in raw.split(b"\n"):
            yield line

    decoder = StreamDecoder()
    out = [decoder.feed(event.data) async for event in iter_sse(lines())]
    out.append(decoder.end())
    return out


async def test_stream_events_become_text_deltas_then_a_final_delta() -> None:
    out = await _events(fixture("stream.sse"))
    deltas = [d for d in out if d is not None]
    assert all(isinstance(d, StreamDelta) for d in deltas)
    assert "".join(d.text for d in deltas if isinstance(d, StreamDelta)) == "Hello!"
    final = deltas[-1]
    assert isinstance(final, StreamDelta)
    assert final.finish_reason is FinishReason.LENGTH
    assert final.model == "claude-sonnet-4-5-20250929"
    assert final.usage == Usage(input_tokens=30, output_tokens=15, cached_input_tokens=5)
    assert out[-1] is None  # end() after message_stop: nothing missing


async def test_stream_error_event_is_classified_by_its_type() -> None:
    out = await _events(fixture("stream_error.sse"))
    errors = [d for d in out if isinstance(d, VendorError)]
    assert errors[0] == VendorError(529, "Overloaded", "overloaded_error")
    assert errors[-1].error_type == "incomplete_stream"  # the stream never reached message_stop


def test_stream_without_message_stop_is_incomplete() -> None:
    decoder = StreamDecoder()
    assert decoder.feed(
        '{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"x"}}'
    ) == StreamDelta(text="x")
    incomplete = decoder.end()
    assert isinstance(incomplete, VendorError)
    assert incomplete.status == 502


def test_stream_ignores_non_text_deltas_and_reads_late_input_usage() -> None:
    decoder = StreamDecoder()
    assert (
        decoder.feed(
            '{"type":"content_block_delta","index":0,"delta":{"type":"thinking_delta","thinking":"hmm"}}'
        )
        is None
    )
    decoder.feed(
        '{"type":"message_delta","delta":{"stop_reason":"end_turn"},'
        '"usage":{"input_tokens":40,"cache_read_input_tokens":null,"output_tokens":3}}'
    )
    final = decoder.feed('{"type":"message_stop"}')
    assert isinstance(final, StreamDelta)
    assert final.usage == Usage(input_tokens=40, output_tokens=3)
    assert final.finish_reason is FinishReason.STOP
