"""Typed run options: a misspelt option is a ``TypeError`` naming the closest one, never silently ignored,
and the options reach the request and the wire (FakeUpstream)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from model_orchestrator import Orchestrator
from model_orchestrator.config.loader import parse_config
from model_orchestrator.core.messages import Message
from model_orchestrator.testing import FakeClock, FakeUpstream, Reply


@pytest.fixture
def upstream() -> Iterator[FakeUpstream]:
    with FakeUpstream() as up:
        yield up


@pytest.fixture
async def orch(upstream: FakeUpstream) -> AsyncIterator[Orchestrator]:
    base = upstream.openai_base
    text = f"models:\n  - {{name: o, provider: openai, model: m, api_base: '{base}', api_key_env: K}}\n"
    async with Orchestrator(parse_config(text), env={"K": "key"}, clock=FakeClock(start=100.0)) as o:
        yield o


def loose(options: dict[str, Any]) -> Any:
    """Options as an untyped caller (the CLI, a dict from elsewhere) passes them; a type checker would
    already refuse these names at a typed call site."""
    return options


async def test_a_misspelt_option_is_refused_before_any_call_even_when_none(
    upstream: FakeUpstream, orch: Orchestrator
) -> None:
    with pytest.raises(TypeError, match=r"unknown run option 'max_token' \(did you mean 'max_tokens'\?\)"):
        await orch.complete("hi", model="o", **loose({"max_token": None}))
    with pytest.raises(TypeError, match=r"'treshold'.*did you mean 'threshold'"):
        orch.stream("hi", strategy="fallback", members=["o"], **loose({"treshold": 0.5}))
    with pytest.raises(TypeError, match="did you mean 'temperature'"):
        orch.request("hi", **loose({"temprature": 0.1}))
    assert upstream.requests == []


async def test_a_strategy_option_does_not_shape_a_request(orch: Orchestrator) -> None:
    with pytest.raises(TypeError, match="'threshold' configures a strategy"):
        orch.request("hi", **loose({"threshold": 0.5}))


async def test_a_system_prompt_beside_messages_is_refused(orch: Orchestrator) -> None:
    with pytest.raises(TypeError, match="system= is for a text prompt"):
        orch.request([Message.user("hi")], system="be brief")


async def test_the_options_become_the_request(orch: Orchestrator) -> None:
    request = orch.request(
        "hi",
        system="be brief",
        stop=["END"],
        tags=["a", "b"],
        timeout=5,
        json=True,
        request_id="r1",
        max_cost=0.5,
    )
    assert request.system_text == "be brief" and (request.stop, request.tags) == (("END",), ("a", "b"))
    assert request.deadline == 105.0 and request.response_format.value == "json"
    assert (request.request_id, request.max_cost) == ("r1", 0.5)
    assert orch.request("hi").request_id  # a fresh id by default


async def test_stop_reaches_the_wire(upstream: FakeUpstream, orch: Orchestrator) -> None:
    upstream.script(Reply("ok"))
    await orch.complete("hi", model="o", stop=["END", "STOP"], max_tokens=7)
    body = upstream.requests[-1].json
    assert body["stop"] == ["END", "STOP"]
    assert body.get("max_completion_tokens", body.get("max_tokens")) == 7
