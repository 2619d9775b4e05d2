"""``FakeUpstream``: scripting, recording, faults, and that its OpenAI format satisfies the official SDK."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from model_orchestrator.testing import FakeUpstream, Fault, Reply
from model_orchestrator.testing.fake_upstream import available_formats

MESSAGES = [{"role": "user", "content": "What is the capital of France?"}]


@pytest.fixture
def upstream() -> Iterator[FakeUpstream]:
    with FakeUpstream() as up:
        yield up


@pytest.fixture
def client(upstream: FakeUpstream) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=upstream.url, timeout=5) as http:
        yield http


def _post(client: httpx.Client, body: dict[str, Any], path: str = "/v1/chat/completions") -> httpx.Response:
    return client.post(path, json=body)


def _chat(stream: bool = False, **extra: Any) -> dict[str, Any]:
    return {"model": "gpt-4o-mini", "messages": MESSAGES, "stream": stream, **extra}


def test_openai_format_is_always_available() -> None:
    assert "openai" in [f.name for f in available_formats()]


def test_official_sdk_reads_a_reply(upstream: FakeUpstream) -> None:
    upstream.script(Reply("Paris", usage=(12, 3), cached_tokens=4, reasoning_tokens=1))
    sdk = openai.OpenAI(base_url=upstream.openai_base, api_key="sk-test", max_retries=0)
    answer = sdk.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)  # type: ignore[arg-type]
    assert answer.choices[0].message.content == "Paris"
    assert answer.model == "gpt-4o-mini"
    assert answer.usage is not None
    assert (answer.usage.prompt_tokens, answer.usage.completion_tokens) == (12, 3)
    assert answer.usage.prompt_tokens_details and answer.usage.prompt_tokens_details.cached_tokens == 4
    sdk.close()


def test_official_sdk_reads_a_stream(upstream: FakeUpstream) -> None:
    upstream.script(Reply("The capital is Paris.", chunk_size=5))
    sdk = openai.OpenAI(base_url=upstream.openai_base, api_key="sk-test", max_retries=0)
    chunks = list(
        sdk.chat.completions.create(  # type: ignore[call-overload]
            model="gpt-4o-mini",
            messages=MESSAGES,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "The capital is Paris."
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 6
    sdk.close()


def test_script_is_consumed_in_order_then_default_reply(upstream: FakeUpstream, client: httpx.Client) -> None:
    upstream.default_reply = Reply("fallback")
    upstream.script(Reply("first"), Fault.server_error(502))
    assert _post(client, _chat()).json()["choices"][0]["message"]["content"] == "first"
    assert _post(client, _chat()).status_code == 502
    assert _post(client, _chat()).json()["choices"][0]["message"]["content"] == "fallback"


def test_requests_are_recorded(upstream: FakeUpstream, client: httpx.Client) -> None:
    client.post("/v1/chat/completions?x=1", json=_chat(), headers={"Authorization": "Bearer k"})
    [record] = upstream.wait_finished(1)
    assert (record.method, record.path, record.query) == ("POST", "/v1/chat/completions", {"x": "1"})
    assert record.headers["authorization"] == "Bearer k"
    assert record.json == _chat()
    assert record.finished is not None and record.finished >= record.started
    assert not record.disconnected


def test_azure_path_echoes_the_deployment(upstream: FakeUpstream, client: httpx.Client) -> None:
    response = client.post(
        "/openai/deployments/my-gpt/chat/completions",
        params={"api-version": "2024-10-21"},
        json={"messages": MESSAGES},
    )
    assert response.json()["model"] == "my-gpt"
    assert upstream.requests[0].query == {"api-version": "2024-10-21"}


def test_latency_delays_the_answer(upstream: FakeUpstream, client: httpx.Client) -> None:
    upstream.script(Reply("slow", latency=0.05))
    _post(client, _chat())
    [record] = upstream.wait_finished(1)
    assert record.finished is not None and record.finished - record.started >= 0.05


def test_stream_frames_end_with_finish_usage_and_done(client: httpx.Client, upstream: FakeUpstream) -> None:
    upstream.script(Reply("abcdefgh", chunk_size=3))
    frames = [f for f in _post(client, _chat(stream=True)).text.split("\n\n") if f]
    assert frames[-1] == "data: [DONE]"
    payloads = [json.loads(f.removeprefix("data: ")) for f in frames[:-1]]
    assert [p["choices"][0]["delta"].get("content") for p in payloads[1:4]] == ["abc", "def", "gh"]
    assert payloads[-2]["choices"][0]["finish_reason"] == "stop"
    assert payloads[-1]["choices"] == [] and payloads[-1]["usage"]["completion_tokens"] == 2


def test_rate_limited_sends_retry_after_and_openai_headers(
    upstream: FakeUpstream, client: httpx.Client
) -> None:
    upstream.script(
        Fault.rate_limited(retry_after=2), Fault.rate_limited(None, headers={"retry-after-ms": "250"})
    )
    first = _post(client, _chat())
    assert first.status_code == 429
    assert first.headers["retry-after"] == "2"
    assert first.headers["x-ratelimit-remaining-requests"] == "0"
    assert first.headers["x-ratelimit-reset-requests"] == "2s"
    assert first.json()["error"]["code"] == "rate_limit_exceeded"
    second = _post(client, _chat())
    assert "retry-after" not in second.headers
    assert second.headers["retry-after-ms"] == "250"


@pytest.mark.parametrize(
    ("fault", "status", "code"),
    [
        (Fault.server_error(), 500, None),
        (Fault.overloaded(), 503, "overloaded"),
        (Fault.context_length(), 400, "context_length_exceeded"),
        (Fault.auth(), 401, "invalid_api_key"),
        (Fault.content_filter(), 400, "content_filter"),
        (Fault.status(404, "The model `nope` does not exist"), 404, None),
        (Fault.status(403), 403, "invalid_api_key"),
        (Fault.status(429), 429, "rate_limit_exceeded"),
    ],
)
def test_error_faults_render_openai_error_bodies(
    upstream: FakeUpstream, client: httpx.Client, fault: Fault, status: int, code: str | None
) -> None:
    upstream.script(fault)
    response = _post(client, _chat())
    assert response.status_code == status
    error = response.json()["error"]
    assert error["code"] == code
    assert error["message"]


def test_malformed_json_is_unparseable(upstream: FakeUpstream, client: httpx.Client) -> None:
    upstream.script(Fault.malformed_json(), Fault.malformed_json())
    with pytest.raises(ValueError):
        _post(client, _chat()).json()
    stream_text = _post(client, _chat(stream=True)).text
    with pytest.raises(ValueError):
        json.loads(stream_text.strip().removeprefix("data: "))


def test_reset_and_truncation_drop_the_connection(upstream: FakeUpstream, client: httpx.Client) -> None:
    upstream.script(Fault.reset(), Fault.truncated_stream(after_chunks=1))
    with pytest.raises(httpx.RemoteProtocolError):
        _post(client, _chat())
    with pytest.raises(httpx.RemoteProtocolError):
        _post(client, _chat(stream=True))
    records = upstream.wait_finished(2)
    assert not any(r.disconnected for r in records)  # the server dropped them, the client did not


def test_unknown_path_and_non_json_body(upstream: FakeUpstream, client: httpx.Client) -> None:
    assert client.get("/nowhere").status_code == 404
    response = client.post("/v1/chat/completions", content=b"not json")
    assert response.status_code == 400
    assert upstream.requests[-1].json is None


def test_wait_finished_times_out_when_nothing_arrives(upstream: FakeUpstream) -> None:
    with pytest.raises(TimeoutError, match="0 of 1"):
        upstream.wait_finished(1, timeout=0.01)


def test_url_needs_a_running_server() -> None:
    up = FakeUpstream()
    with pytest.raises(RuntimeError, match="not running"):
        _ = up.url
    up.stop()


def test_reply_validates_chunk_size_and_derives_usage() -> None:
    with pytest.raises(ValueError, match="chunk_size"):
        Reply("x", chunk_size=0)
    assert Reply("12345678").usage_for(7) == (7, 2)
    assert Reply("", usage=(1, 2)).usage_for(7) == (1, 2)
    assert Reply("").chunks() == [""]


async def test_async_context_manager_serves_too() -> None:
    async with FakeUpstream() as up, httpx.AsyncClient(base_url=up.url) as http:
        response = await http.post("/v1/chat/completions", json=_chat())
    assert response.json()["choices"][0]["message"]["content"] == "ok"
