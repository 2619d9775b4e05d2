"""The façade end to end over FakeUpstream: each wire format, streaming, events, prices, sync API."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from model_orchestrator import Orchestrator, run_orchestration
from model_orchestrator.config.loader import parse_config
from model_orchestrator.core.errors import CoolingDownError, RateLimitedError
from model_orchestrator.core.events import (
    AttemptFailed,
    AttemptSucceeded,
    CooldownStarted,
    RecordingSink,
    RetryScheduled,
)
from model_orchestrator.testing import FakeClock, FakeUpstream, Fault, Reply

ENV = {"K1": "key-one", "K2": "key-two", "K3": "key-three"}


@pytest.fixture
def upstream() -> Iterator[FakeUpstream]:
    with FakeUpstream() as up:
        yield up


def config_text(up: FakeUpstream) -> str:
    rows = [
        ("o", "openai", "gpt-4o-mini", up.openai_base, "K1"),
        ("a", "anthropic", "claude-haiku-4-5", up.url, "K2"),
        ("g", "gemini", "gemini-2.5-flash", up.url, "K3"),
    ]
    lines = [
        f"  - {{name: {n}, provider: {p}, model: {m}, api_base: '{base}', api_key_env: {k}}}"
        for n, p, m, base, k in rows
    ]
    return "models:\n" + "\n".join(lines) + "\n"


@pytest.mark.parametrize(
    ("name", "price_in", "price_out"), [("o", 0.15, 0.6), ("a", 1.0, 5.0), ("g", 0.3, 2.5)]
)
async def test_each_wire_format_answers_and_is_priced(
    upstream: FakeUpstream, name: str, price_in: float, price_out: float
) -> None:
    upstream.script(Reply("Paris", usage=(2000, 1000)))
    async with Orchestrator(parse_config(config_text(upstream)), env=ENV) as orch:
        result = await orch.complete("Capital of France?", model=name, max_tokens=10)
    assert result.response == "Paris" and result.model_used == name
    assert (result.input_tokens, result.output_tokens) == (2000, 1000)
    assert result.cost == pytest.approx((2000 * price_in + 1000 * price_out) / 1e6)


@pytest.mark.parametrize("name", ["o", "a", "g"])
async def test_streaming_matches_complete(upstream: FakeUpstream, name: str) -> None:
    upstream.script(Reply("one two three four", chunk_size=4), Reply("one two three four"))
    async with Orchestrator(parse_config(config_text(upstream)), env=ENV) as orch:
        deltas = [d async for d in orch.stream("count", model=name)]
        whole = await orch.complete("count", model=name)
    assert "".join(d.text for d in deltas) == whole.response
    assert deltas[-1].usage is not None and deltas[-1].usage.output_tokens > 0


async def test_a_429_is_retried_after_its_retry_after_and_every_attempt_is_reported(
    upstream: FakeUpstream,
) -> None:
    upstream.script(Fault.rate_limited(retry_after=7), Reply("ok"))
    sink, clock = RecordingSink(), FakeClock()
    async with Orchestrator(parse_config(config_text(upstream)), env=ENV, clock=clock) as orch:
        orch.events.subscribe(sink)
        result = await orch.complete("hi", model="o")
    assert result.response == "ok" and result.metadata["attempts"] == 2
    assert clock.sleeps and max(clock.sleeps) == pytest.approx(7)
    failed, succeeded = sink.of_type(AttemptFailed), sink.of_type(AttemptSucceeded)
    assert len(failed) == 1 and len(succeeded) == 1
    assert isinstance(failed[0], AttemptFailed) and failed[0].status_code == 429
    assert len(sink.of_type(RetryScheduled)) == 1 and len(sink.of_type(CooldownStarted)) == 1


async def test_a_long_retry_after_is_not_waited_for_but_cools_the_deployment(upstream: FakeUpstream) -> None:
    upstream.script(Fault.rate_limited(retry_after=120))
    async with Orchestrator(parse_config(config_text(upstream)), env=ENV, clock=FakeClock()) as orch:
        with pytest.raises(RateLimitedError) as first:
            await orch.complete("hi", model="o")
        assert first.value.retry_after == pytest.approx(120)
        with pytest.raises(CoolingDownError):
            await orch.complete("hi", model="o")
    assert len(upstream.requests) == 1  # the second call never reached the upstream


def test_run_orchestration_sync(
    upstream: FakeUpstream, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "orchestrator.yaml"
    path.write_text(config_text(upstream))
    for key, value in ENV.items():
        monkeypatch.setenv(key, value)
    upstream.script(Reply("Docker packages apps in containers."))
    result = run_orchestration(prompt="Explain Docker", model="o", config=path)
    assert result.response.startswith("Docker") and result.model_used == "o" and result.cost is not None


async def test_options_reach_the_wire(upstream: FakeUpstream) -> None:
    async with Orchestrator(parse_config(config_text(upstream)), env=ENV) as orch:
        await orch.complete("hi", model="o", system="be brief", max_tokens=12, temperature=0.2, json=True)
    body = upstream.requests[-1].json
    assert body["messages"][0] == {"role": "system", "content": "be brief"}
    assert body["temperature"] == 0.2 and body["response_format"] == {"type": "json_object"}
    assert body.get("max_completion_tokens", body.get("max_tokens")) == 12


async def test_a_single_model_under_max_cost_is_refused_before_any_call(upstream: FakeUpstream) -> None:
    from model_orchestrator.core.errors import BudgetExceededError

    async with Orchestrator(parse_config(config_text(upstream)), env=ENV) as orch:
        with pytest.raises(BudgetExceededError, match="nothing was sent"):
            await orch.complete("hi " * 400, model="a", max_tokens=1000, max_cost=0.000001)
        result = await orch.complete("hi", model="a", max_tokens=10, max_cost=1.0)
    assert result.response == "ok" and len(upstream.requests) == 1
