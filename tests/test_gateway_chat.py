"""The gateway with the official SDK as the client: chat, streaming, strategies as models, errors, limits."""

from __future__ import annotations

import asyncio
import json

import aiohttp
import openai
import pytest

from model_orchestrator.gateway import Limits
from model_orchestrator.testing import FakeUpstream, Fault, Reply
from tests.gateway_helpers import MASTER, USER, live_gateway


async def test_chat_completion_with_metadata_headers_and_explanation() -> None:
    async with FakeUpstream() as up, live_gateway(up) as live:
        up.script(Reply("Paris", usage=(12, 3)))
        raw = await live.client().chat.completions.with_raw_response.create(model="a", messages=USER)
        answer = raw.parse()
        assert answer.choices[0].message.content == "Paris"
        assert answer.choices[0].finish_reason == "stop"
        assert (answer.usage.prompt_tokens, answer.usage.completion_tokens) == (12, 3)
        assert raw.headers["x-orchestrator-model-used"] == "a"
        assert raw.headers["x-orchestrator-strategy"] == "single"
        assert float(raw.headers["x-orchestrator-cost"]) == pytest.approx(12 * 1000e-6 + 3 * 2000e-6)
        request_id = raw.headers["x-orchestrator-request-id"]
        assert answer.id == f"chatcmpl-{request_id}"
        meta = answer.model_extra["orchestrator"]
        assert meta["request_id"] == request_id and meta["model_used"] == "a"
        # The upstream got the request with the upstream key, not the caller's.
        assert up.requests[0].headers["authorization"] == "Bearer upstream-secret"


async def test_request_options_reach_the_upstream() -> None:
    async with FakeUpstream() as up, live_gateway(up) as live:
        await live.client().chat.completions.create(
            model="a",
            messages=[{"role": "developer", "content": "Be brief."}, *USER],
            max_tokens=7,
            temperature=0.3,
            stop=["\n"],
            response_format={"type": "json_object"},
        )
        sent = up.requests[0].json
        assert sent.get("max_completion_tokens", sent.get("max_tokens")) == 7
        assert sent["temperature"] == 0.3 and sent["stop"] == ["\n"]
        assert sent["messages"][0] == {"role": "system", "content": "Be brief."}
        assert sent["response_format"] == {"type": "json_object"}


@pytest.mark.parametrize("model", ["fallback:a,b", "safe"])
async def test_strategy_names_work_as_models(model: str) -> None:
    async with FakeUpstream() as up, live_gateway(up) as live:
        up.script(Fault.server_error(500), Reply("from b"))
        raw = await live.client().chat.completions.with_raw_response.create(model=model, messages=USER)
        answer = raw.parse()
        assert answer.choices[0].message.content == "from b"
        assert raw.headers["x-orchestrator-model-used"] == "b"
        assert raw.headers["x-orchestrator-strategy"] == "fallback"
        meta = answer.model_extra["orchestrator"]
        assert meta["fallback_chain"] == ["a", "b"]
        assert [s["outcome"] for s in meta["explanation"]["steps"]] == ["error", "ok"]


async def test_inline_ensemble_lists_its_members() -> None:
    async with FakeUpstream() as up, live_gateway(up) as live:
        up.default_reply = Reply("Paris")
        answer = await live.client().chat.completions.create(model="ensemble:a,b", messages=USER)
        assert answer.choices[0].message.content == "Paris"
        assert sorted(answer.model_extra["orchestrator"]["ensemble_models"]) == ["a", "b"]


async def test_stream_with_usage_and_metadata() -> None:
    async with FakeUpstream() as up, live_gateway(up) as live:
        up.script(Reply("The capital is Paris.", usage=(9, 5), chunk_size=4))
        stream = await live.client().chat.completions.create(
            model="a", messages=USER, stream=True, stream_options={"include_usage": True}
        )
        chunks = [c async for c in stream]
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        assert text == "The capital is Paris."
        finish = [c for c in chunks if c.choices and c.choices[0].finish_reason]
        assert finish[-1].choices[0].finish_reason == "stop"
        meta = finish[-1].model_extra["orchestrator"]
        assert meta["model_used"] == "a" and meta["cost"] == pytest.approx(9 * 1000e-6 + 5 * 2000e-6)
        assert chunks[-1].choices == [] and chunks[-1].usage is not None
        assert (chunks[-1].usage.prompt_tokens, chunks[-1].usage.completion_tokens) == (9, 5)


async def test_stream_falls_back_transparently_before_the_first_token() -> None:
    async with FakeUpstream() as up, live_gateway(up) as live:
        up.script(Fault.server_error(503), Reply("from b", chunk_size=2))
        stream = await live.client().chat.completions.create(model="safe", messages=USER, stream=True)
        chunks = [c async for c in stream]
        assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "from b"
        meta = chunks[-1].model_extra["orchestrator"]
        assert meta["model_used"] == "b"
        assert [s["outcome"] for s in meta["explanation"]["steps"]] == ["error", "ok"]


async def test_stream_failing_after_tokens_ends_with_an_error_event() -> None:
    async with FakeUpstream() as up, live_gateway(up) as live:
        up.script(Fault.truncated_stream(after_chunks=2))
        stream = await live.client().chat.completions.create(model="safe", messages=USER, stream=True)
        received = []
        with pytest.raises(openai.APIError) as caught:
            async for chunk in stream:
                received.append(chunk)
        assert any(c.choices and c.choices[0].delta.content for c in received)  # text was sent first
        assert "cut off" in caught.value.message
        assert len(up.requests) == 1  # never mixed with another model's answer


async def test_stream_error_event_is_the_last_frame_and_there_is_no_done() -> None:
    async with FakeUpstream() as up, live_gateway(up) as live, aiohttp.ClientSession() as http:
        up.script(Fault.truncated_stream(after_chunks=2))
        body = {"model": "a", "messages": USER, "stream": True}
        headers = {"authorization": f"Bearer {MASTER}"}
        async with http.post(f"{live.url}/v1/chat/completions", json=body, headers=headers) as response:
            assert response.status == 200
            frames = [f for f in (await response.text()).split("\n\n") if f]
        assert "[DONE]" not in frames[-1]
        assert json.loads(frames[-1].removeprefix("data: "))["error"]["type"] == "upstream_error"


async def test_stream_failing_before_any_token_is_an_http_error() -> None:
    async with FakeUpstream() as up, live_gateway(up) as live:
        up.script(Fault.server_error(500))
        with pytest.raises(openai.APIStatusError) as caught:
            await live.client().chat.completions.create(model="a", messages=USER, stream=True)
        assert caught.value.status_code == 502
        assert caught.value.response.headers["x-orchestrator-request-id"]


async def test_models_list_and_retrieve_include_strategies() -> None:
    async with FakeUpstream() as up, live_gateway(up) as live:
        client = live.client()
        ids = {m.id for m in (await client.models.list()).data}
        assert {"a", "b", "safe"} <= ids
        safe = await client.models.retrieve("safe")
        assert safe.owned_by == "strategy"
        with pytest.raises(openai.NotFoundError):
            await client.models.retrieve("no-such-model")


async def test_unknown_model_is_404_in_the_wire_error_format() -> None:
    async with FakeUpstream() as up, live_gateway(up) as live:
        with pytest.raises(openai.NotFoundError) as caught:
            await live.client().chat.completions.create(model="no-such-model", messages=USER)
        assert caught.value.code == "model_not_found" and caught.value.param == "model"
        assert caught.value.type == "invalid_request_error"


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"model": "a", "messages": []}, "messages"),
        ({"model": "a", "messages": [{"role": "function", "content": "x"}]}, "messages.0.role"),
        ({"model": "a", "messages": USER, "temperature": 9}, "temperature"),
        ({"model": "a", "messages": USER, "n": 2}, "n"),
        ({"model": "a", "messages": USER, "tools": [{"type": "function"}]}, "tools.0.function"),
        ({"messages": USER}, "model"),
    ],
)
async def test_invalid_bodies_are_400_with_the_param(body: dict[str, object], param: str) -> None:
    async with FakeUpstream() as up, live_gateway(up) as live:
        with pytest.raises(openai.BadRequestError) as caught:
            await live.client().post("/chat/completions", body=body, cast_to=object)
        assert caught.value.param == param
        assert up.requests == []


async def test_upstream_rate_limit_passes_retry_after_on() -> None:
    async with FakeUpstream() as up, live_gateway(up) as live:
        up.script(Fault.rate_limited(retry_after=7))
        with pytest.raises(openai.RateLimitError) as caught:
            await live.client().chat.completions.create(model="a", messages=USER)
        assert caught.value.response.headers["retry-after"] == "7"


async def test_limits_body_size_message_count_and_max_tokens() -> None:
    limits = Limits(max_body_bytes=2000, max_messages=3, max_tokens=100)
    async with FakeUpstream() as up, live_gateway(up, limits=limits) as live:
        client = live.client()
        with pytest.raises(openai.APIStatusError) as too_big:
            await client.chat.completions.create(
                model="a", messages=[{"role": "user", "content": "x" * 5000}]
            )
        assert too_big.value.status_code == 413 and too_big.value.code == "request_too_large"
        with pytest.raises(openai.BadRequestError) as too_many:
            await client.chat.completions.create(model="a", messages=USER * 4)
        assert too_many.value.code == "too_many_messages"
        with pytest.raises(openai.BadRequestError) as too_long:
            await client.chat.completions.create(model="a", messages=USER, max_tokens=101)
        assert too_long.value.param == "max_tokens"
        ok = await client.chat.completions.create(model="a", messages=USER * 3, max_tokens=100)
        assert ok.choices[0].message.content == "ok"
        assert len(up.requests) == 1


async def test_request_deadline_is_504() -> None:
    limits = Limits(request_timeout=0.3)
    async with FakeUpstream() as up, live_gateway(up, limits=limits) as live:
        up.script(Reply("late", latency=5))
        with pytest.raises(openai.APIStatusError) as caught:
            await live.client().chat.completions.create(model="a", messages=USER)
        assert caught.value.status_code == 504


async def test_graceful_shutdown_finishes_the_request_in_flight() -> None:
    async with FakeUpstream() as up:
        async with live_gateway(up) as live:
            up.script(Reply("finished", latency=0.4))
            pending = asyncio.create_task(live.client().chat.completions.create(model="a", messages=USER))
            await up.await_started(1)
            stop = asyncio.create_task(live.gateway.stop())
            answer = await pending
            await stop
        assert answer.choices[0].message.content == "finished"
        assert up.requests[0].disconnected is False


async def test_extension_field_caps_the_request_cost() -> None:
    async with FakeUpstream() as up, live_gateway(up) as live:
        with pytest.raises(openai.RateLimitError) as caught:
            await live.client().chat.completions.create(
                model="safe", messages=USER, extra_body={"orchestrator": {"max_cost": 1e-9}}
            )
        assert caught.value.code == "insufficient_quota"
        assert up.requests == []
        answer = await live.client().chat.completions.create(
            model="a", messages=USER, extra_body={"orchestrator": {"max_cost": 5.0, "category": "support"}}
        )
        assert answer.choices[0].message.content == "ok"
