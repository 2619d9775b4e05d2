"""``GeminiModel`` against FakeUpstream: a real local server speaking generateContent."""

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
from model_orchestrator.core.request import ChatRequest, ResponseFormat
from model_orchestrator.core.response import FinishReason, StreamDelta
from model_orchestrator.core.usage import Usage
from model_orchestrator.providers.gemini import GeminiModel
from model_orchestrator.providers.http import HttpTransport
from model_orchestrator.testing.fake_upstream import FakeUpstream, Fault, Reply
from model_orchestrator.testing.fake_upstream.gemini import GeminiFormat

KEY = "AIzaSyTest0123456789abcdefghijklmnop"
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
def model(upstream: FakeUpstream, transport: HttpTransport) -> GeminiModel:
    return GeminiModel(
        name="gem", model_id="gemini-test", api_key=KEY, transport=transport, api_base=upstream.url
    )


async def collect(model: GeminiModel, request: ChatRequest = REQUEST) -> list[StreamDelta]:
    return [delta async for delta in model.stream(request)]


async def call(model: GeminiModel, mode: str) -> None:
    if mode == "complete":
        await model.complete(REQUEST)
    else:
        await collect(model)


async def test_complete_sends_generate_content_and_reads_answer(
    model: GeminiModel, upstream: FakeUpstream
) -> None:
    upstream.script(Reply("Paris.", usage=(30, 12), cached_tokens=10, reasoning_tokens=9))
    result = await model.complete(REQUEST.with_options(max_tokens=64, response_format=ResponseFormat.JSON))
    assert isinstance(model, ChatModel)
    assert result.text == "Paris."
    assert result.model == "gemini-test"
    assert (result.provider, result.deployment) == ("gemini", f"gem@{upstream.url.removeprefix('http://')}")
    assert result.usage == Usage(
        input_tokens=30, output_tokens=12, cached_input_tokens=10, reasoning_tokens=9
    )
    assert result.finish_reason is FinishReason.STOP
    [sent] = upstream.requests
    assert sent.path == "/v1beta/models/gemini-test:generateContent"
    assert sent.query == {}  # the key never travels in the URL
    assert sent.headers["x-goog-api-key"] == KEY
    assert sent.json["systemInstruction"] == {"parts": [{"text": "Answer briefly."}]}
    assert sent.json["generationConfig"] == {"maxOutputTokens": 64, "responseMimeType": "application/json"}


async def test_logprobs_when_asked(model: GeminiModel, upstream: FakeUpstream) -> None:
    upstream.script(Reply("Paris is big", chunk_size=4), Reply("Paris is big", chunk_size=4))
    asked = REQUEST.with_options(logprobs=True, top_logprobs=2)
    result = await model.complete(asked)
    assert result.logprobs is not None
    assert [lp.token for lp in result.logprobs] == ["Pari", "s is", " big"]
    assert len(result.logprobs[0].top) == 2
    assert upstream.requests[-1].json["generationConfig"] == {"responseLogprobs": True, "logprobs": 2}
    streamed = [lp.token for d in await collect(model, asked) for lp in d.logprobs]
    assert streamed == ["Pari", "s is", " big"]


async def test_finish_reasons(model: GeminiModel, upstream: FakeUpstream) -> None:
    upstream.script(Reply("Once", finish_reason="length"), Reply("", finish_reason="content_filter"))
    assert (await model.complete(REQUEST)).finish_reason is FinishReason.LENGTH
    assert (await model.complete(REQUEST)).finish_reason is FinishReason.CONTENT_FILTER


async def test_stream_joins_to_the_complete_text_with_usage_at_the_end(
    model: GeminiModel, upstream: FakeUpstream
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
    assert deltas[-1].model == "gemini-test"
    sent = upstream.requests[-1]
    assert sent.path == "/v1beta/models/gemini-test:streamGenerateContent"
    assert sent.query == {"alt": "sse"}
    assert sent.headers["x-goog-api-key"] == KEY


async def test_rate_limit_headers_reach_the_completion(model: GeminiModel, upstream: FakeUpstream) -> None:
    # Gemini itself sends none; a gateway in front of it may.
    headers = {"x-ratelimit-limit-requests": "60", "x-ratelimit-remaining-requests": "59"}
    upstream.script(Reply("ok", headers=headers), Reply("ok", headers=headers))
    assert (await model.complete(REQUEST)).rate_limits.remaining_requests == 59
    final = (await collect(model))[-1]
    assert final.rate_limits is not None and final.rate_limits.limit_requests == 60


ERROR_CASES = [
    (Fault.rate_limited(retry_after=2), RateLimitedError, 429, True),
    (Fault.server_error(500), ServerError, 500, True),
    (Fault.overloaded(), ServerError, 503, True),
    (Fault.context_length(), ContextWindowExceededError, 400, False),
    (Fault.auth(), AuthenticationError, 401, False),
    (Fault.status(403, "Permission denied on resource project"), AuthenticationError, 403, False),
    (Fault.status(404, "models/gemini-nope is not found"), BadRequestError, 404, False),
    (Fault.content_filter(), ContentFilteredError, 400, False),
    (Fault.malformed_json(), ServerError, None, True),
    (Fault.reset(), UpstreamConnectionError, None, True),
]


@pytest.mark.parametrize("mode", ["complete", "stream"])
@pytest.mark.parametrize(("fault", "error_class", "status", "retryable"), ERROR_CASES)
async def test_every_failure_becomes_a_hierarchy_error(
    model: GeminiModel,
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
    assert (error.provider, error.deployment) == ("gemini", model.deployment)
    assert KEY not in f"{error} {error!r} {error.to_dict()}"


@pytest.mark.parametrize("mode", ["complete", "stream"])
async def test_retry_after_from_header_or_retry_info(transport: HttpTransport, mode: str) -> None:
    async with FakeUpstream(formats=[GeminiFormat(retry_delay=7)]) as up:
        model = GeminiModel(name="g", model_id="m", api_key=KEY, transport=transport, api_base=up.url)
        up.script(Fault.rate_limited(retry_after=None), Fault.rate_limited(retry_after=3))
        with pytest.raises(RateLimitedError) as from_body:
            await call(model, mode)
        with pytest.raises(RateLimitedError) as from_header:
            await call(model, mode)
    assert from_body.value.retry_after == 7.0
    assert from_header.value.retry_after == 3.0


async def test_upstream_text_echoing_the_key_is_redacted(model: GeminiModel, upstream: FakeUpstream) -> None:
    upstream.script(Fault.status(400, f"API key {KEY} is malformed"))
    with pytest.raises(BadRequestError) as caught:
        await model.complete(REQUEST)
    assert KEY not in f"{caught.value} {caught.value!r}"
    assert "[REDACTED]" in str(caught.value)
    assert KEY not in repr(model)


@pytest.mark.parametrize("after_chunks", [1, 3])
async def test_truncated_stream_is_a_retryable_error(
    model: GeminiModel, upstream: FakeUpstream, after_chunks: int
) -> None:
    upstream.default_reply = Reply("a long enough answer to stream in pieces", chunk_size=4)
    upstream.script(Fault.truncated_stream(after_chunks=after_chunks))
    with pytest.raises(ProviderError) as caught:
        await collect(model)
    assert caught.value.retryable
    assert isinstance(caught.value, UpstreamConnectionError | ServerError)
    assert caught.value.deployment == model.deployment


async def test_truncated_body_is_a_retryable_error(model: GeminiModel, upstream: FakeUpstream) -> None:
    upstream.script(Fault.truncated_stream())
    with pytest.raises(ProviderError) as caught:
        await model.complete(REQUEST)
    assert caught.value.retryable


async def test_deadline_bounds_a_hanging_upstream(model: GeminiModel, upstream: FakeUpstream) -> None:
    upstream.script(Fault.hang(5))
    with pytest.raises(RequestTimeoutError) as caught:
        await collect(model, REQUEST.with_options(deadline=time.monotonic() + 0.2))
    # Cut by the deadline: the fake saw the client hang up instead of finishing its 5 s hang.
    assert (await upstream.await_finished(1))[0].disconnected
    assert (caught.value.provider, caught.value.deployment) == ("gemini", model.deployment)


async def test_model_id_prefix_no_key_and_aclose(upstream: FakeUpstream, transport: HttpTransport) -> None:
    keyless = GeminiModel(
        name="proxy",
        model_id="models/gemini-x",
        api_key=None,
        transport=transport,
        api_base=upstream.url + "/v1beta/",
        deployment="proxy-1",
    )
    await keyless.aclose()
    result = await keyless.complete(REQUEST)  # the shared transport still works
    assert result.deployment == "proxy-1"
    [sent] = upstream.requests
    assert sent.path == "/v1beta/models/gemini-x:generateContent"
    assert "x-goog-api-key" not in sent.headers


def test_default_endpoint_and_deployment(transport: HttpTransport) -> None:
    model = GeminiModel(name="cheap", model_id="gemini-x", api_key=KEY, transport=transport)
    assert model.deployment == "cheap@generativelanguage.googleapis.com"
    assert model.name == "cheap"
