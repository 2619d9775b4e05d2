"""``AnthropicModel`` against FakeUpstream: a real local server speaking the Messages API."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

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
from model_orchestrator.core.request import ChatRequest
from model_orchestrator.core.response import Completion, FinishReason, StreamDelta
from model_orchestrator.core.usage import Usage
from model_orchestrator.providers.anthropic import AnthropicModel
from model_orchestrator.providers.http import HttpTransport, Timeouts
from model_orchestrator.testing.fake_upstream import FakeUpstream, Fault, Reply

KEY = "sk-ant-test-0123456789abcdef"
REQUEST = ChatRequest.from_prompt("What is the capital of France?", system="Answer briefly.")


@pytest.fixture
async def upstream() -> AsyncIterator[FakeUpstream]:
    async with FakeUpstream() as up:
        yield up


@pytest.fixture
async def transport() -> AsyncIterator[HttpTransport]:
    shared = HttpTransport()
    yield shared
    await shared.aclose()


@pytest.fixture
def model(upstream: FakeUpstream, transport: HttpTransport) -> AnthropicModel:
    return AnthropicModel(
        name="claude", model_id="claude-test", api_key=KEY, transport=transport, api_base=upstream.url
    )


async def collect(model: AnthropicModel, request: ChatRequest = REQUEST) -> list[StreamDelta]:
    return [delta async for delta in model.stream(request)]


async def call(model: AnthropicModel, mode: str) -> None:
    if mode == "complete":
        await model.complete(REQUEST)
    else:
        await collect(model)


async def test_complete_sends_messages_api_request_and_reads_answer(
    model: AnthropicModel, upstream: FakeUpstream
) -> None:
    upstream.script(Reply("Paris.", usage=(30, 3), cached_tokens=10))
    result = await model.complete(REQUEST)
    assert isinstance(model, ChatModel)
    assert result.text == "Paris."
    assert result.model == "claude-test"
    assert (result.provider, result.deployment) == (
        "anthropic",
        f"claude@{upstream.url.removeprefix('http://')}",
    )
    assert result.usage == Usage(input_tokens=30, output_tokens=3, cached_input_tokens=10)
    assert result.finish_reason is FinishReason.STOP
    [sent] = upstream.requests
    assert sent.path == "/v1/messages"
    assert sent.headers["x-api-key"] == KEY
    assert sent.headers["anthropic-version"] == "2023-06-01"
    assert sent.headers["content-type"] == "application/json"
    assert sent.json["system"] == "Answer briefly."
    assert sent.json["max_tokens"] == 4096
    assert sent.json["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "What is the capital of France?"}]}
    ]


async def test_length_and_refusal_finish_reasons(model: AnthropicModel, upstream: FakeUpstream) -> None:
    upstream.script(Reply("Once upon", finish_reason="length"), Reply("", finish_reason="content_filter"))
    assert (await model.complete(REQUEST)).finish_reason is FinishReason.LENGTH
    refused = await model.complete(REQUEST.with_options(max_tokens=50))
    assert refused.finish_reason is FinishReason.CONTENT_FILTER
    assert upstream.requests[-1].json["max_tokens"] == 50


async def test_rate_limit_headers_reach_the_completion(model: AnthropicModel, upstream: FakeUpstream) -> None:
    headers = {
        "anthropic-ratelimit-requests-limit": "50",
        "anthropic-ratelimit-requests-remaining": "49",
        "anthropic-ratelimit-tokens-limit": "40000",
        "anthropic-ratelimit-tokens-remaining": "39000",
    }
    upstream.script(Reply("ok", headers=headers), Reply("ok", headers=headers))
    result = await model.complete(REQUEST)
    assert (result.rate_limits.limit_requests, result.rate_limits.remaining_requests) == (50, 49)
    assert result.rate_limits.remaining_tokens == 39000
    final = (await collect(model))[-1]
    assert final.rate_limits is not None and final.rate_limits.remaining_requests == 49


async def test_stream_joins_to_the_complete_text_with_usage_at_the_end(
    model: AnthropicModel, upstream: FakeUpstream
) -> None:
    reply = Reply("The capital of France is Paris.", chunk_size=5, usage=(21, 8))
    upstream.script(reply, reply)
    whole = await model.complete(REQUEST)
    deltas = await collect(model)
    assert "".join(d.text for d in deltas) == whole.text
    assert len([d for d in deltas if d.text]) == 7
    assert all(d.usage is None and d.finish_reason is None for d in deltas[:-1])
    assert deltas[-1].finish_reason is FinishReason.STOP
    assert deltas[-1].usage == whole.usage == Usage(input_tokens=21, output_tokens=8)
    assert upstream.requests[-1].json["stream"] is True


ERROR_CASES = [
    (Fault.rate_limited(retry_after=2), RateLimitedError, 429, True),
    (Fault.server_error(500), ServerError, 500, True),
    (Fault.overloaded(), ServerError, 529, True),
    (Fault.context_length(), ContextWindowExceededError, 400, False),
    (
        Fault.status(413, "Request exceeds the maximum allowed number of bytes."),
        ContextWindowExceededError,
        413,
        False,
    ),
    (Fault.auth(), AuthenticationError, 401, False),
    (Fault.status(403, "not allowed"), AuthenticationError, 403, False),
    (Fault.status(404, "model: claude-nope"), BadRequestError, 404, False),
    (Fault.content_filter(), ContentFilteredError, 400, False),
    (Fault.malformed_json(), ServerError, None, True),
    (Fault.reset(), UpstreamConnectionError, None, True),
]


@pytest.mark.parametrize("mode", ["complete", "stream"])
@pytest.mark.parametrize(("fault", "error_class", "status", "retryable"), ERROR_CASES)
async def test_every_failure_becomes_a_hierarchy_error(
    model: AnthropicModel,
    upstream: FakeUpstream,
    mode: str,
    fault: Fault,
    error_class: type[ProviderError],
    status: int | None,
    retryable: bool,
) -> None:
    upstream.script(fault)
    with pytest.raises(error_class) as caught:
        await call(model, mode)
    error = caught.value
    assert type(error) is error_class
    if status is not None:
        assert error.status_code == status
    assert error.retryable is retryable
    assert (error.provider, error.deployment) == ("anthropic", model.deployment)
    assert KEY not in f"{error} {error!r} {error.to_dict()}"


@pytest.mark.parametrize("mode", ["complete", "stream"])
async def test_rate_limit_fault_gives_retry_after(
    model: AnthropicModel, upstream: FakeUpstream, mode: str
) -> None:
    upstream.script(Fault.rate_limited(retry_after=2.5))
    with pytest.raises(RateLimitedError) as caught:
        await call(model, mode)
    assert caught.value.retry_after == 2.5


async def test_upstream_text_echoing_the_key_is_redacted(
    model: AnthropicModel, upstream: FakeUpstream
) -> None:
    upstream.script(Fault.status(400, f"malformed header x-api-key: {KEY}"))
    with pytest.raises(BadRequestError) as caught:
        await model.complete(REQUEST)
    assert KEY not in f"{caught.value} {caught.value!r}"
    assert "[REDACTED]" in str(caught.value)
    assert KEY not in repr(model)


@pytest.mark.parametrize("after_chunks", [2, 4])
async def test_truncated_stream_is_a_retryable_error(
    model: AnthropicModel, upstream: FakeUpstream, after_chunks: int
) -> None:
    upstream.default_reply = Reply("a long enough answer to stream in pieces", chunk_size=4)
    upstream.script(Fault.truncated_stream(after_chunks=after_chunks))
    with pytest.raises(ProviderError) as caught:
        await collect(model)
    assert caught.value.retryable
    assert isinstance(caught.value, UpstreamConnectionError | ServerError)
    assert caught.value.deployment == model.deployment


async def test_truncated_body_is_a_retryable_error(model: AnthropicModel, upstream: FakeUpstream) -> None:
    upstream.script(Fault.truncated_stream())
    with pytest.raises(ProviderError) as caught:
        await model.complete(REQUEST)
    assert caught.value.retryable


async def test_deadline_bounds_a_hanging_upstream(model: AnthropicModel, upstream: FakeUpstream) -> None:
    upstream.script(Fault.hang(5))
    with pytest.raises(RequestTimeoutError) as caught:
        await model.complete(REQUEST.with_options(deadline=time.monotonic() + 0.2))
    # Cut by the deadline: the fake saw the client hang up instead of finishing its 5 s hang.
    assert (await upstream.await_finished(1))[0].disconnected
    assert (caught.value.provider, caught.value.deployment) == ("anthropic", model.deployment)


async def test_passed_deadline_sends_nothing(model: AnthropicModel, upstream: FakeUpstream) -> None:
    with pytest.raises(RequestTimeoutError):
        await collect(model, REQUEST.with_options(deadline=time.monotonic() - 1))
    assert upstream.requests == []


async def test_read_timeout(upstream: FakeUpstream, transport: HttpTransport) -> None:
    quick = AnthropicModel(
        name="c",
        model_id="m",
        api_key=KEY,
        transport=transport,
        api_base=upstream.url,
        timeouts=Timeouts(connect=1.0, read=0.2),
    )
    upstream.script(Fault.hang(5))
    with pytest.raises(RequestTimeoutError):
        await quick.complete(REQUEST)


async def test_no_key_sends_no_key_header_and_aclose_leaves_transport_open(
    upstream: FakeUpstream, transport: HttpTransport
) -> None:
    keyless = AnthropicModel(
        name="proxy",
        model_id="m",
        api_key=None,
        transport=transport,
        api_base=upstream.url + "/v1/",
        deployment="proxy-1",
        default_max_tokens=77,
    )
    await keyless.aclose()
    result = await keyless.complete(REQUEST)  # the shared transport still works
    assert isinstance(result, Completion) and result.deployment == "proxy-1"
    [sent] = upstream.requests
    assert "x-api-key" not in sent.headers
    assert sent.json["max_tokens"] == 77


def test_default_endpoint_and_deployment(transport: HttpTransport) -> None:
    model = AnthropicModel(name="strong", model_id="claude-x", api_key=KEY, transport=transport)
    assert model.deployment == "strong@api.anthropic.com"
    assert model.name == "strong"
