"""Reading OpenAI-compatible answers field by field: malformed payloads, lenient extras, logprobs when asked.

The adapter runs over ``MockTransport`` so each test hands it exactly the bytes it names.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from model_orchestrator.core.errors import ProviderError, RateLimitedError, ServerError
from model_orchestrator.core.request import ChatRequest
from model_orchestrator.core.response import Completion, StreamDelta
from model_orchestrator.core.usage import Usage
from model_orchestrator.providers.openai_compatible import OpenAICompatibleModel
from model_orchestrator.testing import MockRequest, MockResponse, MockTransport, Reply, wire_handler

KEY = "sk-decoding-test-key"
PROMPT = ChatRequest.from_prompt("What is the capital of France?")
HEAD = {"id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "m-2024"}


def _model(transport: MockTransport) -> OpenAICompatibleModel:
    return OpenAICompatibleModel(
        name="fast", model_id="m", api_base="http://upstream/v1", api_key=KEY, transport=transport
    )


def _body(**choice: Any) -> dict[str, Any]:
    message = choice.pop("message", {"role": "assistant", "content": "Paris."})
    return {**HEAD, "choices": [{"index": 0, "message": message, "finish_reason": "stop", **choice}]}


def _answering(payload: Any) -> MockTransport:
    return MockTransport(lambda request: MockResponse(200, body=json.dumps(payload).encode()))


def _streaming(*events: Any) -> MockTransport:
    frames = [f"data: {e if isinstance(e, str) else json.dumps(e)}\n\n".encode() for e in events]
    return MockTransport(lambda request: MockResponse(200, {"content-type": "text/event-stream"}, frames))


def _chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> dict[str, Any]:
    choice = {"index": 0, "delta": delta, "finish_reason": finish}
    return {**HEAD, "object": "chat.completion.chunk", "choices": [choice], **extra}


async def _complete(transport: MockTransport, request: ChatRequest = PROMPT) -> Completion:
    return await _model(transport).complete(request)


async def _stream(transport: MockTransport, request: ChatRequest = PROMPT) -> list[StreamDelta]:
    return [delta async for delta in _model(transport).stream(request)]


async def _fails(transport: MockTransport, *, stream: bool) -> ProviderError:
    with pytest.raises(ProviderError) as caught:
        await (_stream(transport) if stream else _complete(transport))
    return caught.value


@pytest.mark.parametrize(
    ("payload", "named"),
    [
        ([1, 2], "it is not an object"),
        ({**HEAD, "choices": {"index": 0}}, "choices is not a list"),
        (_body(message={"content": 42}), "content is not a string"),
        (_body(finish_reason=7), "finish_reason is not a string"),
        ({**_body(), "usage": {"prompt_tokens": "many"}}, "prompt_tokens is not an integer"),
        (_body(message={"content": "", "tool_calls": [{"id": 3}]}), "a tool call's id is not a string"),
    ],
)
async def test_a_body_with_a_field_of_the_wrong_type_is_a_retryable_502_naming_it(
    payload: Any, named: str
) -> None:
    error = await _fails(_answering(payload), stream=False)
    assert isinstance(error, ServerError) and error.retryable and error.status_code == 502
    assert f"the response body is not a chat completion: {named}" in str(error)
    assert error.deployment == "fast@upstream"


@pytest.mark.parametrize(
    ("event", "named"),
    [
        ("{not json", "not JSON"),
        ('"text"', "it is not an object"),
        (_chunk({"content": ["a"]}), "content is not a string"),
        ({**_chunk({}), "choices": [3]}, "choices[0] is not an object"),
        ({**_chunk({}), "choices": {"index": 0}}, "choices is not a list"),
        ({**_chunk({}), "choices": [{"delta": "Par"}]}, "delta is not an object"),
        (_chunk({}, finish=7), "finish_reason is not a string"),  # type: ignore[arg-type]
        (_chunk({}, model=["m"]), "model is not a string"),
        (_chunk({}, x_groq=[]), "x_groq is not an object"),
        (_chunk({"tool_calls": [{"index": "first"}]}), "a tool call piece's index is not an integer"),
    ],
)
async def test_a_malformed_stream_event_is_a_retryable_502_naming_the_problem(event: Any, named: str) -> None:
    error = await _fails(_streaming(_chunk({"content": "Par"}), event, "[DONE]"), stream=True)
    assert isinstance(error, ServerError) and error.retryable and error.status_code == 502
    assert f"a stream event is not a chat completion chunk: {named}" in str(error)


async def test_an_error_in_the_stream_is_the_upstream_error_whatever_its_shape() -> None:
    as_text = await _fails(_streaming(_chunk({"content": "Par"}), {"error": "model overloaded"}), stream=True)
    assert isinstance(as_text, ServerError) and as_text.status_code == 500
    assert "HTTP 500: model overloaded" in str(as_text)
    limited = {"error": {"message": "slow down", "type": "rate_limit_exceeded", "code": None}}
    as_object = await _fails(_streaming(limited), stream=True)
    assert isinstance(as_object, RateLimitedError) and "slow down" in str(as_object)


async def test_fields_the_adapter_does_not_read_are_not_checked_and_whole_floats_count() -> None:
    payload = {
        **_body(),
        "created": "yesterday",
        "system_fingerprint": 5,
        "usage": {"prompt_tokens": 12.0, "completion_tokens": 2, "total_tokens": None},
    }
    completion = await _complete(_answering(payload))
    assert (completion.text, completion.model, completion.response_id) == ("Paris.", "m-2024", "chatcmpl-1")
    assert completion.usage == Usage(input_tokens=12, output_tokens=2)


async def test_a_null_choices_on_the_usage_chunk_ends_the_stream_normally() -> None:
    usage = {"prompt_tokens": 9, "completion_tokens": 1}
    last = {**HEAD, "choices": None, "usage": usage}
    deltas = await _stream(_streaming(_chunk({"content": "Paris."}), _chunk({}, "stop"), last))
    assert [d.text for d in deltas] == ["Paris.", ""]
    assert deltas[-1].usage == Usage(input_tokens=9, output_tokens=1)


async def test_usage_in_groqs_x_groq_is_read_from_the_last_chunk_and_a_null_model_keeps_the_last() -> None:
    last = {
        **_chunk({}, "stop", model=None),
        "x_groq": {"usage": {"prompt_tokens": 9, "completion_tokens": 1}},
    }
    deltas = await _stream(_streaming(_chunk({"content": "Paris."}), last))
    assert deltas[-1].usage == Usage(input_tokens=9, output_tokens=1)
    assert deltas[-1].model == "m-2024"


@pytest.mark.parametrize("stream", [False, True])
async def test_logprobs_are_read_only_when_the_request_asked_for_them(stream: bool) -> None:
    # FakeUpstream's script sends logprobs whether asked or not; real servers send them only when asked.
    transport = MockTransport(wire_handler(Reply("Paris is big."), Reply("Paris is big.")))
    asked = PROMPT.with_options(logprobs=True)
    if stream:
        unasked_logprobs = [lp for d in await _stream(transport) for lp in d.logprobs]
        asked_logprobs = [lp.token for d in await _stream(transport, asked) for lp in d.logprobs]
        assert unasked_logprobs == []
        assert "".join(asked_logprobs) == "Paris is big." and len(asked_logprobs) > 1
    else:
        assert (await _complete(transport)).logprobs is None
        answer = await _complete(transport, asked)
        assert answer.logprobs is not None
        assert "".join(lp.token for lp in answer.logprobs) == "Paris is big."
    assert [_asked(r) for r in transport.requests] == [False, True]


async def test_a_logprob_that_is_not_a_number_is_a_502_when_logprobs_were_asked() -> None:
    entry = {"token": "Paris.", "logprob": True, "top_logprobs": []}
    payload = _body(logprobs={"content": [entry]})
    assert (await _complete(_answering(payload))).text == "Paris."
    with pytest.raises(ServerError, match="a logprobs entry is not"):
        await _complete(_answering(payload), PROMPT.with_options(logprobs=True))


def _asked(request: MockRequest) -> bool:
    return bool(request.json().get("logprobs"))
