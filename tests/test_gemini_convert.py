"""Gemini wire conversions, from fixtures shaped like https://ai.google.dev/api/generate-content."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from model_orchestrator.core.messages import Message
from model_orchestrator.core.request import ChatRequest, ResponseFormat
from model_orchestrator.core.response import Completion, FinishReason, StreamDelta, TokenLogprob
from model_orchestrator.core.usage import Usage
from model_orchestrator.providers.gemini.convert import (
    StreamDecoder,
    VendorError,
    decode_error,
    decode_response,
    encode_request,
    finish_reason_of,
)
from model_orchestrator.providers.sse import iter_sse

FIXTURES = Path(__file__).parent / "fixtures" / "gemini"


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def encode(request: ChatRequest) -> dict[str, object]:
    body: dict[str, object] = json.loads(encode_request(request))
    return body


def test_request_roles_system_instruction_and_generation_config() -> None:
    request = ChatRequest(
        messages=(
            Message.system("Be brief."),
            Message.user("hi"),
            Message.assistant("hello"),
            Message.assistant(" there"),
            Message.user(""),
            Message.user("2+2?"),
        ),
        max_tokens=64,
        temperature=0.3,
        top_p=0.8,
        stop=("END",),
        response_format=ResponseFormat.JSON,
        logprobs=True,
        top_logprobs=3,
    )
    assert encode(request) == {
        "contents": [
            {"role": "user", "parts": [{"text": "hi"}]},
            {"role": "model", "parts": [{"text": "hello"}, {"text": " there"}]},
            {"role": "user", "parts": [{"text": "2+2?"}]},
        ],
        "systemInstruction": {"parts": [{"text": "Be brief."}]},
        "generationConfig": {
            "maxOutputTokens": 64,
            "temperature": 0.3,
            "topP": 0.8,
            "stopSequences": ["END"],
            "responseMimeType": "application/json",
            "responseLogprobs": True,
            "logprobs": 3,
        },
    }


def test_plain_request_sends_no_generation_config() -> None:
    plain = encode(ChatRequest.from_prompt("hi"))
    assert plain == {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}


def test_response_text_usage_logprobs() -> None:
    result = decode_response(
        fixture("response.json"), provider="gemini", deployment="d", latency=0.25, logprobs=True
    )
    assert isinstance(result, Completion)
    assert result.text == "The capital of France is Paris."  # the thought part is not the answer
    assert result.model == "gemini-2.5-flash"
    assert result.response_id == "mKdZaM2fH5qLz7IP5cGQwAc"
    assert result.finish_reason is FinishReason.STOP
    # thoughts (50) are output billed on top of the 9 candidate tokens; the prompt includes the cache.
    assert result.usage == Usage(
        input_tokens=120, output_tokens=59, cached_input_tokens=100, reasoning_tokens=50
    )
    assert result.logprobs == (
        TokenLogprob("The", -0.01, (("The", -0.01), ("Paris", -4.7))),
        TokenLogprob(" capital", -0.2, ((" capital", -0.2),)),
    )


def test_logprobs_are_read_only_when_asked() -> None:
    body = fixture("response.json")
    unasked = decode_response(body, provider="gemini", deployment="d", latency=0.0)
    assert isinstance(unasked, Completion) and unasked.logprobs is None
    decoder = StreamDecoder()
    delta = decoder.feed(body.decode())
    assert isinstance(delta, StreamDelta) and delta.logprobs == ()
    asked = StreamDecoder(logprobs=True).feed(body.decode())
    assert isinstance(asked, StreamDelta) and [lp.token for lp in asked.logprobs] == ["The", " capital"]


def test_max_tokens_finish_and_no_logprobs() -> None:
    result = decode_response(fixture("response_max_tokens.json"), provider="g", deployment="d", latency=0.0)
    assert isinstance(result, Completion)
    assert result.finish_reason is FinishReason.LENGTH
    assert result.logprobs is None
    assert result.usage == Usage(input_tokens=5, output_tokens=3)


def test_blocked_prompt_is_a_content_filter_error() -> None:
    result = decode_response(fixture("response_blocked.json"), provider="g", deployment="d", latency=0.0)
    assert isinstance(result, VendorError)
    assert result.content_filtered
    assert "SAFETY" in result.message


@pytest.mark.parametrize("body", [b"not json", b"{}", b'{"candidates": []}'])
def test_unreadable_response_is_a_server_side_error(body: bytes) -> None:
    result = decode_response(body, provider="g", deployment="d", latency=0.0)
    assert isinstance(result, VendorError)
    assert result.status == 502


@pytest.mark.parametrize(
    ("reason", "expected"),
    [
        ("STOP", FinishReason.STOP),
        ("MAX_TOKENS", FinishReason.LENGTH),
        ("SAFETY", FinishReason.CONTENT_FILTER),
        ("RECITATION", FinishReason.CONTENT_FILTER),
        ("PROHIBITED_CONTENT", FinishReason.CONTENT_FILTER),
        ("OTHER", FinishReason.UNKNOWN),
        (None, FinishReason.UNKNOWN),
    ],
)
def test_finish_reasons(reason: str | None, expected: FinishReason) -> None:
    assert finish_reason_of(reason) is expected


def test_rate_limit_error_reads_retry_info() -> None:
    error = decode_error(429, fixture("error_rate_limit.json"))
    assert error.status == 429
    assert error.error_status == "RESOURCE_EXHAUSTED"
    assert error.retry_after == 37.0
    assert not error.context_exceeded


def test_context_error() -> None:
    error = decode_error(400, fixture("error_context.json"))
    assert error.context_exceeded
    assert error.status == 400


def test_invalid_key_is_reported_as_401() -> None:
    error = decode_error(400, fixture("error_api_key_invalid.json"))
    assert error.status == 401
    assert error.message == "API key not valid. Please pass a valid API key."


def test_error_wrapped_in_a_list_and_non_json_errors() -> None:
    error = decode_error(503, fixture("error_overloaded_list.json"))
    assert (error.status, error.error_status) == (503, "UNAVAILABLE")
    raw = decode_error(500, b"upstream connect error")
    assert raw.status == 500 and "upstream connect error" in raw.message


async def _decode_stream(raw: bytes) -> tuple[list[StreamDelta | VendorError | None], StreamDecoder]:
    async def lines() -> AsyncIterator[bytes]:
        for line in raw.split(b"\n"):
            yield line

    decoder = StreamDecoder()
    return [decoder.feed(event.data) async for event in iter_sse(lines())], decoder


async def test_stream_chunks_then_final_delta_with_last_usage() -> None:
    out, decoder = await _decode_stream(fixture("stream.sse"))
    assert "".join(d.text for d in out if isinstance(d, StreamDelta)) == "Hello, world!"
    final = decoder.end()
    usage = Usage(input_tokens=7, output_tokens=4)
    assert final == StreamDelta(finish_reason=FinishReason.STOP, usage=usage, model="gemini-2.0-flash")


async def test_stream_cut_before_finish_is_incomplete() -> None:
    first_chunk = fixture("stream.sse").split(b"\n\n")[0] + b"\n\n"
    out, decoder = await _decode_stream(first_chunk)
    assert out == [StreamDelta(text="Hello")]
    incomplete = decoder.end()
    assert isinstance(incomplete, VendorError)
    assert incomplete.status == 502


def test_stream_blocked_or_error_chunks() -> None:
    decoder = StreamDecoder()
    blocked = decoder.feed(fixture("response_blocked.json").decode())
    assert isinstance(blocked, VendorError) and blocked.content_filtered
    error = decoder.feed('{"error": {"code": 503, "message": "overloaded", "status": "UNAVAILABLE"}}')
    assert isinstance(error, VendorError) and error.status == 503
    assert isinstance(decoder.feed("nope"), VendorError)
