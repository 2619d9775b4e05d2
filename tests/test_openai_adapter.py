"""``OpenAICompatibleModel`` end to end against ``FakeUpstream``: mapping, streaming, every error class."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any

import pytest

from model_orchestrator.core.errors import (
    AuthenticationError,
    BadRequestError,
    ContentFilteredError,
    ContextWindowExceededError,
    ProviderError,
    RateLimitedError,
    RequestTimeoutError,
    ServerError,
    UpstreamConnectionError,
)
from model_orchestrator.core.model import ChatModel
from model_orchestrator.core.rate_limits import RateLimitSnapshot
from model_orchestrator.core.request import ChatRequest, ResponseFormat
from model_orchestrator.core.response import FinishReason, StreamDelta
from model_orchestrator.providers.http import HttpTransport, Timeouts
from model_orchestrator.providers.openai_compatible import ENDPOINTS, OpenAICompatibleModel
from model_orchestrator.providers.openai_compatible.convert import decode_error
from model_orchestrator.testing import FakeUpstream, Fault, Reply
from model_orchestrator.testing.fake_upstream.openai import OpenAIFormat

KEY = "sk-test-SECRET-0123456789"
PROMPT = ChatRequest.from_prompt("What is the capital of France?", system="Be brief.")


@pytest.fixture
def upstream() -> Iterator[FakeUpstream]:
    with FakeUpstream() as up:
        yield up


@pytest.fixture
async def transport() -> AsyncIterator[HttpTransport]:
    transport = HttpTransport()
    yield transport
    await transport.aclose()


def _model(up: FakeUpstream, transport: HttpTransport, **options: Any) -> OpenAICompatibleModel:
    settings: dict[str, Any] = {
        "name": "fast",
        "model_id": "gpt-4o-mini",
        "api_base": up.openai_base,
        "api_key": KEY,
        "transport": transport,
    }
    settings.update(options)
    return OpenAICompatibleModel(**settings)


async def _collect(model: OpenAICompatibleModel, request: ChatRequest = PROMPT) -> list[StreamDelta]:
    return [delta async for delta in model.stream(request)]


# --- success ---------------------------------------------------------------------------------------


async def test_complete_maps_the_whole_answer(upstream: FakeUpstream, transport: HttpTransport) -> None:
    headers = {"x-ratelimit-remaining-requests": "41", "x-ratelimit-reset-tokens": "20ms"}
    upstream.script(
        Reply(
            "Paris.",
            usage=(20, 2),
            cached_tokens=8,
            reasoning_tokens=1,
            headers=headers,
            model="gpt-4o-mini-2024",
        )
    )
    model = _model(upstream, transport)
    completion = await model.complete(PROMPT.with_options(logprobs=True))
    assert isinstance(model, ChatModel)
    assert completion.text == "Paris."
    assert completion.model == "gpt-4o-mini-2024"
    assert (completion.provider, completion.deployment) == ("openai", f"fast@{upstream.url[7:]}")
    usage = completion.usage
    assert (usage.input_tokens, usage.output_tokens, usage.cached_input_tokens, usage.reasoning_tokens) == (
        20,
        2,
        8,
        1,
    )
    assert not usage.estimated
    assert completion.finish_reason is FinishReason.STOP
    assert completion.latency > 0
    assert completion.response_id and completion.response_id.startswith("chatcmpl-")
    assert completion.rate_limits.remaining_requests == 41
    assert completion.rate_limits.reset_tokens_after == pytest.approx(0.02)
    assert completion.logprobs is not None
    assert completion.logprobs[0].token == "Paris."
    assert completion.logprobs[0].top[1] == ("PARIS.~", -3.5)


async def test_request_fields_are_mapped(upstream: FakeUpstream, transport: HttpTransport) -> None:
    request = PROMPT.with_options(
        max_tokens=50,
        temperature=0.2,
        top_p=0.9,
        stop=("\n\n",),
        response_format=ResponseFormat.JSON,
        logprobs=True,
        top_logprobs=3,
    )
    await _model(upstream, transport).complete(request)
    sent = upstream.requests[0].json
    assert sent == {
        "model": "gpt-4o-mini",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "What is the capital of France?"},
        ],
        "max_completion_tokens": 50,
        "temperature": 0.2,
        "top_p": 0.9,
        "stop": ["\n\n"],
        "response_format": {"type": "json_object"},
        "logprobs": True,
        "top_logprobs": 3,
    }


async def test_minimal_request_sends_no_optional_fields(
    upstream: FakeUpstream, transport: HttpTransport
) -> None:
    await _model(upstream, transport).complete(ChatRequest.from_prompt("hi"))
    assert set(upstream.requests[0].json) == {"model", "messages"}


@pytest.mark.parametrize(
    ("provider", "model_id", "field"),
    [
        ("openai", "gpt-4o-mini", "max_completion_tokens"),
        ("groq", "llama-3.1-8b-instant", "max_tokens"),
        ("vllm", "Qwen/Qwen2.5-7B", "max_tokens"),
        ("some-gateway", "anything", "max_tokens"),
        ("together", "o3-mini", "max_completion_tokens"),
    ],
)
async def test_output_token_field_per_endpoint_and_model(
    upstream: FakeUpstream, transport: HttpTransport, provider: str, model_id: str, field: str
) -> None:
    model = _model(upstream, transport, provider=provider, model_id=model_id)
    await model.complete(PROMPT.with_options(max_tokens=7))
    assert upstream.requests[0].json[field] == 7


async def test_bearer_key_and_extra_headers(upstream: FakeUpstream, transport: HttpTransport) -> None:
    await _model(upstream, transport, extra_headers={"HTTP-Referer": "https://example.test"}).complete(PROMPT)
    headers = upstream.requests[0].headers
    assert headers["authorization"] == f"Bearer {KEY}"
    assert headers["http-referer"] == "https://example.test"
    assert "api-key" not in headers


async def test_local_server_without_key_sends_no_auth(
    upstream: FakeUpstream, transport: HttpTransport
) -> None:
    await _model(upstream, transport, provider="ollama", api_key=None).complete(PROMPT)
    assert "authorization" not in upstream.requests[0].headers


async def test_azure_url_and_api_key_header(upstream: FakeUpstream, transport: HttpTransport) -> None:
    model = _model(
        upstream,
        transport,
        provider="azure",
        model_id="prod-gpt4o",
        api_base=upstream.url + "/",
        api_version="2024-10-21",
    )
    completion = await model.complete(PROMPT)
    [record] = upstream.requests
    assert record.path == "/openai/deployments/prod-gpt4o/chat/completions"
    assert record.query == {"api-version": "2024-10-21"}
    assert record.headers["api-key"] == KEY
    assert "authorization" not in record.headers
    assert completion.model == "prod-gpt4o"


async def test_azure_row_supplies_a_default_api_version(
    upstream: FakeUpstream, transport: HttpTransport
) -> None:
    await _model(upstream, transport, provider="azure", api_base=upstream.url).complete(PROMPT)
    assert upstream.requests[0].query == {"api-version": ENDPOINTS["azure"].api_version}


def test_endpoint_rows_name_their_key_variables() -> None:
    keys = {name: row.key_env for name, row in ENDPOINTS.items()}
    assert keys["openai"] == "OPENAI_API_KEY"
    assert keys["groq"] == "GROQ_API_KEY"
    assert keys["azure"] == "AZURE_OPENAI_API_KEY"
    assert all(keys[local] is None for local in ("vllm", "llamacpp", "ollama", "lmstudio"))
    assert ENDPOINTS["ollama"].api_base == "http://localhost:11434/v1"


# --- streaming -------------------------------------------------------------------------------------


async def test_stream_joins_to_the_complete_text(upstream: FakeUpstream, transport: HttpTransport) -> None:
    text = "The capital of France is Paris, on the Seine."
    upstream.script(Reply(text, usage=(20, 11)), Reply(text, chunk_size=4, usage=(20, 11)))
    model = _model(upstream, transport)
    completion = await model.complete(PROMPT)
    deltas = await _collect(model, PROMPT.with_options(logprobs=True))
    assert "".join(d.text for d in deltas) == completion.text == text
    assert len(deltas) == 13  # 12 pieces of 4 characters, then the closing delta
    final = deltas[-1]
    assert final.text == "" and final.finish_reason is FinishReason.STOP
    assert final.usage is not None and (final.usage.input_tokens, final.usage.output_tokens) == (20, 11)
    assert final.rate_limits is not None
    assert all(d.finish_reason is None and d.usage is None for d in deltas[:-1])
    assert deltas[0].logprobs and deltas[0].logprobs[0].token == "The "
    sent = upstream.requests[1].json
    assert sent["stream"] is True and sent["stream_options"] == {"include_usage": True}


async def test_mistral_stream_omits_stream_options(upstream: FakeUpstream, transport: HttpTransport) -> None:
    await _collect(_model(upstream, transport, provider="mistral"))
    assert "stream_options" not in upstream.requests[0].json


async def test_stream_length_finish(upstream: FakeUpstream, transport: HttpTransport) -> None:
    upstream.script(Reply("cut", finish_reason="length"))
    deltas = await _collect(_model(upstream, transport))
    assert deltas[-1].finish_reason is FinishReason.LENGTH


# --- errors --------------------------------------------------------------------------------------


def _http_date(seconds_from_now: float) -> str:
    return format_datetime(datetime.fromtimestamp(time.time() + seconds_from_now, UTC), usegmt=True)


async def _fails(model: OpenAICompatibleModel, stream: bool = False) -> ProviderError:
    with pytest.raises(ProviderError) as caught:
        if stream:
            await _collect(model)
        else:
            await model.complete(PROMPT)
    error = caught.value
    assert (error.provider, error.deployment) == ("openai", model.deployment)
    assert KEY not in str(error) and KEY not in repr(error)
    return error


@pytest.mark.parametrize("stream", [False, True])
async def test_429_with_retry_after_seconds(
    upstream: FakeUpstream, transport: HttpTransport, stream: bool
) -> None:
    upstream.script(Fault.rate_limited(retry_after=2))
    error = await _fails(_model(upstream, transport), stream)
    assert isinstance(error, RateLimitedError)
    assert (error.status_code, error.retryable, error.retry_after) == (429, True, 2.0)


async def test_429_with_retry_after_http_date(upstream: FakeUpstream, transport: HttpTransport) -> None:
    upstream.script(Fault.rate_limited(headers={"retry-after": _http_date(30)}))
    error = await _fails(_model(upstream, transport))
    assert isinstance(error, RateLimitedError)
    assert error.retry_after is not None and 25 <= error.retry_after <= 30


async def test_429_with_retry_after_ms(upstream: FakeUpstream, transport: HttpTransport) -> None:
    upstream.script(Fault.rate_limited(retry_after=None, headers={"retry-after-ms": "1500"}))
    error = await _fails(_model(upstream, transport))
    assert error.retry_after == 1.5


async def test_429_without_retry_after_waits_for_the_longest_exhausted_reset(
    upstream: FakeUpstream, transport: HttpTransport
) -> None:
    resets = {
        "x-ratelimit-remaining-tokens": "0",
        "x-ratelimit-reset-tokens": "3.5s",
        "x-ratelimit-reset-requests": "1m0s",
        "x-ratelimit-remaining-requests": "12",
    }
    upstream.script(Fault.rate_limited(retry_after=None, headers=resets))
    error = await _fails(_model(upstream, transport))
    assert error.retry_after == 3.5


def test_insufficient_quota_is_not_retryable() -> None:
    body = b'{"error": {"message": "You exceeded your current quota", "type": "insufficient_quota", '
    body += b'"code": "insufficient_quota"}}'
    error = decode_error(429, body, RateLimitSnapshot())
    assert isinstance(error, RateLimitedError) and not error.retryable


@pytest.mark.parametrize(
    ("fault", "expected", "status", "retryable"),
    [
        (Fault.server_error(500), ServerError, 500, True),
        (Fault.server_error(503), ServerError, 503, True),
        (Fault.overloaded(), ServerError, 503, True),
        (Fault.auth(), AuthenticationError, 401, False),
        (Fault.status(400, "Invalid value for 'temperature'"), BadRequestError, 400, False),
        (Fault.status(404, "The model `gpt-9` does not exist"), BadRequestError, 404, False),
        (Fault.context_length(), ContextWindowExceededError, 400, False),
        (Fault.content_filter(), ContentFilteredError, 400, False),
    ],
)
@pytest.mark.parametrize("stream", [False, True])
async def test_status_errors(
    upstream: FakeUpstream,
    transport: HttpTransport,
    fault: Fault,
    expected: type[ProviderError],
    status: int,
    retryable: bool,
    stream: bool,
) -> None:
    upstream.script(fault)
    error = await _fails(_model(upstream, transport), stream)
    assert type(error) is expected
    assert (error.status_code, error.retryable) == (status, retryable)


@pytest.mark.parametrize(
    "message",
    [
        "This model's maximum context length is 8192 tokens. However, you requested 9000 tokens.",
        "Prompt contains 40000 tokens, too large for model with 32768 maximum context length",
        "the request exceeds the available context size, try increasing it",
    ],
)
async def test_context_length_messages_without_code(
    upstream: FakeUpstream, transport: HttpTransport, message: str
) -> None:
    upstream.script(Fault.status(400, message))
    assert isinstance(await _fails(_model(upstream, transport)), ContextWindowExceededError)


async def test_blocked_answer_with_content_filter_finish(
    upstream: FakeUpstream, transport: HttpTransport
) -> None:
    upstream.script(Reply("", finish_reason="content_filter"), Reply("", finish_reason="content_filter"))
    model = _model(upstream, transport)
    assert isinstance(await _fails(model), ContentFilteredError)
    assert isinstance(await _fails(model, stream=True), ContentFilteredError)


async def test_partial_answer_with_content_filter_finish_is_returned(
    upstream: FakeUpstream, transport: HttpTransport
) -> None:
    upstream.script(Reply("Here is", finish_reason="content_filter"))
    completion = await _model(upstream, transport).complete(PROMPT)
    assert completion.finish_reason is FinishReason.CONTENT_FILTER


@pytest.mark.parametrize("stream", [False, True])
async def test_malformed_json_is_a_server_error(
    upstream: FakeUpstream, transport: HttpTransport, stream: bool
) -> None:
    upstream.script(Fault.malformed_json())
    error = await _fails(_model(upstream, transport), stream)
    assert isinstance(error, ServerError) and error.retryable
    assert error.__cause__ is not None


@pytest.mark.parametrize("after_chunks", [0, 2, 4])
async def test_truncated_stream_is_retryable(
    upstream: FakeUpstream, transport: HttpTransport, after_chunks: int
) -> None:
    upstream.script(Fault.truncated_stream(after_chunks=after_chunks))
    error = await _fails(_model(upstream, transport), stream=True)
    assert isinstance(error, UpstreamConnectionError) and error.retryable


@pytest.mark.parametrize("stream", [False, True])
async def test_connection_reset(upstream: FakeUpstream, transport: HttpTransport, stream: bool) -> None:
    upstream.script(Fault.reset())
    error = await _fails(_model(upstream, transport), stream)
    assert isinstance(error, UpstreamConnectionError) and error.retryable


@pytest.mark.parametrize("stream", [False, True])
async def test_hang_times_out(upstream: FakeUpstream, transport: HttpTransport, stream: bool) -> None:
    upstream.script(Fault.hang(5))
    model = _model(upstream, transport, timeouts=Timeouts(read=0.2, stall=0.2))
    error = await _fails(model, stream)
    assert isinstance(error, RequestTimeoutError) and error.retryable


@pytest.mark.parametrize("stream", [False, True])
async def test_passed_deadline_sends_nothing(
    upstream: FakeUpstream, transport: HttpTransport, stream: bool
) -> None:
    model = _model(upstream, transport)
    with pytest.raises(RequestTimeoutError) as caught:
        if stream:
            await _collect(model, PROMPT.with_options(deadline=time.monotonic() - 0.1))
        else:
            await model.complete(PROMPT.with_options(deadline=time.monotonic() - 0.1))
    assert caught.value.deployment == model.deployment
    assert upstream.requests == []


async def test_key_echoed_by_the_upstream_is_redacted(
    upstream: FakeUpstream, transport: HttpTransport
) -> None:
    upstream.script(Fault.status(401, f"Incorrect API key provided: {KEY}."))
    model = _model(upstream, transport)
    error = await _fails(model)
    assert "[REDACTED]" in str(error)
    assert KEY not in repr(model) and KEY not in str(error.to_dict())


async def test_cancelling_a_hanging_call_disconnects_upstream(
    upstream: FakeUpstream, transport: HttpTransport
) -> None:
    upstream.script(Fault.hang(30))
    task = asyncio.create_task(_model(upstream, transport).complete(PROMPT))
    await upstream.await_started(1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    [record] = await upstream.await_finished(1)
    assert record.disconnected


async def test_abandoning_a_stream_disconnects_upstream(
    upstream: FakeUpstream, transport: HttpTransport
) -> None:
    upstream.script(Reply("y" * 300, chunk_size=1, chunk_delay=0.01))
    stream = _model(upstream, transport).stream(PROMPT)
    first = await anext(stream)
    await stream.aclose()  # type: ignore[attr-defined]
    assert first.text == "y"
    [record] = await upstream.await_finished(1)
    assert record.disconnected


class _NoChoices(OpenAIFormat):
    def reply_body(self, reply: Reply, model: str, prompt_tokens: int) -> dict[str, Any]:
        return {"id": "x", "object": "chat.completion", "model": model, "choices": []}


class _NoUsage(OpenAIFormat):
    def reply_body(self, reply: Reply, model: str, prompt_tokens: int) -> dict[str, Any]:
        body = super().reply_body(reply, model, prompt_tokens)
        del body["usage"]
        return body

    def stream_frames(self, reply: Reply, model: str, prompt_tokens: int) -> list[bytes]:
        frames = super().stream_frames(reply, model, prompt_tokens)
        return frames[:-2] + frames[-1:]  # drop the usage chunk


class _ErrorMidStream(OpenAIFormat):
    def stream_frames(self, reply: Reply, model: str, prompt_tokens: int) -> list[bytes]:
        error = (
            b'{"error": {"message": "Rate limit reached", "type": "tokens", "code": "rate_limit_exceeded"}}'
        )
        return [*super().stream_frames(reply, model, prompt_tokens)[:2], b"data: " + error + b"\n\n"]


async def test_error_inside_a_stream_is_classified(transport: HttpTransport) -> None:
    async with FakeUpstream(formats=[_ErrorMidStream()]) as up:
        error = await _fails(_model(up, transport), stream=True)
    assert isinstance(error, RateLimitedError) and error.retryable


async def test_empty_choices_is_a_server_error(transport: HttpTransport) -> None:
    async with FakeUpstream(formats=[_NoChoices()]) as up:
        error = await _fails(_model(up, transport))
    assert isinstance(error, ServerError) and error.retryable


async def test_missing_usage_is_estimated(transport: HttpTransport) -> None:
    async with FakeUpstream(formats=[_NoUsage()], default_reply=Reply("Paris is the capital.")) as up:
        model = _model(up, transport)
        completion = await model.complete(PROMPT)
        deltas = await _collect(model)
    assert completion.usage.estimated and completion.usage.output_tokens > 0
    assert deltas[-1].usage is not None and deltas[-1].usage.estimated


async def test_aclose_leaves_the_shared_transport_open(
    upstream: FakeUpstream, transport: HttpTransport
) -> None:
    model = _model(upstream, transport)
    await model.complete(PROMPT)
    await model.aclose()
    assert (await model.complete(PROMPT)).text == "ok"
