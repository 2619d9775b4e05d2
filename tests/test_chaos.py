"""The chaos suite: 1,000 requests at concurrency 50 through a fallback chain where two of three
deployments misbehave (benchmarks/chaos.py drives it and prints the figures)."""

from __future__ import annotations

import asyncio
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

from model_orchestrator.config.loader import parse_config
from model_orchestrator.core.errors import AllModelsFailedError, CircuitOpenError, ServerError
from model_orchestrator.core.events import (
    AttemptFailed,
    CircuitClosed,
    CircuitOpened,
    RecordingSink,
    RetryScheduled,
)
from model_orchestrator.orchestrator import Orchestrator
from model_orchestrator.testing import FakeClock, FakeUpstream, Fault

pytestmark = pytest.mark.slow

# A request that passed the cooldown check just before the 429 came back may still reach the upstream
# a moment later; anything arriving after this much of the window is a cooldown violation.
IN_FLIGHT_GRACE = 0.1


def _load_chaos() -> ModuleType:
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "chaos.py"
    spec = importlib.util.spec_from_file_location("chaos_benchmark", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


chaos = _load_chaos()


@pytest.fixture(scope="module")
def outcome() -> object:
    return asyncio.run(chaos.run_chaos(requests=1000, concurrency=50, seed=11))


def test_every_request_succeeds_while_one_deployment_is_healthy(outcome: object) -> None:
    assert outcome.errors == []  # type: ignore[attr-defined]
    assert outcome.success_rate == 1.0  # type: ignore[attr-defined]
    figures = outcome.figures()  # type: ignore[attr-defined]
    print("chaos figures:", figures)
    assert figures["attempts_per_request"] < 2.0


def test_no_request_reaches_a_deployment_inside_its_retry_after_window(outcome: object) -> None:
    records = outcome.records["flaky"]  # type: ignore[attr-defined]
    script = chaos.flaky_script(__import__("random").Random(11), 2000)
    rate_limited = [
        r
        for r, item in zip(records, script, strict=False)
        if isinstance(item, Fault) and item.kind == "rate_limit"
    ]
    assert rate_limited, "the run must have hit at least one 429"
    for limited in rate_limited:
        assert limited.finished is not None
        window = (limited.finished + IN_FLIGHT_GRACE, limited.finished + chaos.RETRY_AFTER)
        early = [r for r in records if window[0] < r.started < window[1]]
        assert not early, f"{len(early)} request(s) reached flaky during its retry-after window"


def test_configured_rpm_is_never_exceeded_over_any_60s_window(outcome: object) -> None:
    starts = sorted(r.started for r in outcome.records["flaky"])  # type: ignore[attr-defined]
    for i, start in enumerate(starts):
        in_window = sum(1 for s in starts[i:] if s < start + 60.0)
        assert in_window <= chaos.FLAKY_RPM


def _breaker_config(up: FakeUpstream) -> str:
    return f"""
models:
  - {{name: b, provider: openai, model: m, api_base: "{up.openai_base}"}}
resilience:
  retry: {{max_attempts: 1}}
  breaker: {{failure_threshold: 3, reset_timeout: 0.2}}
  cooldown: {{default_seconds: 0}}
"""


async def test_breaker_opens_within_n_failures_and_closes_after_the_fault_clears() -> None:
    with FakeUpstream() as up:
        up.script(*[Fault.server_error(500)] * 3)
        sink, clock = RecordingSink(), FakeClock()
        async with Orchestrator(parse_config(_breaker_config(up)), env={}, clock=clock) as orch:
            orch.events.subscribe(sink)
            for _ in range(3):
                with pytest.raises(ServerError):
                    await orch.complete("hi", model="b")
            assert len(sink.of_type(CircuitOpened)) == 1
            clock.advance(0.19)  # still inside the 0.2 s reset timeout
            with pytest.raises(CircuitOpenError):
                await orch.complete("hi", model="b")
            assert len(up.requests) == 3  # the open circuit made no call
            clock.advance(0.02)
            result = await orch.complete("hi", model="b")
    assert result.response == "ok"
    opened, closed = sink.of_type(CircuitOpened), sink.of_type(CircuitClosed)
    assert len(closed) == 1 and closed[0].timestamp - opened[0].timestamp >= 0.2


async def test_when_every_deployment_fails_one_error_lists_every_attempt_within_the_deadline() -> None:
    with FakeUpstream() as a, FakeUpstream() as b, FakeUpstream() as c:
        a.script(Fault.server_error(500))
        b.script(Fault.hang(30))
        c.script(Fault.reset())
        config = parse_config(f"""
models:
  - {{name: a, provider: openai, model: m, api_base: "{a.openai_base}"}}
  - {{name: b, provider: openai, model: m, api_base: "{b.openai_base}", timeout: 0.3}}
  - {{name: c, provider: openai, model: m, api_base: "{c.openai_base}"}}
resilience:
  retry: {{max_attempts: 1}}
""")
        async with Orchestrator(config, env={}) as orch:
            with pytest.raises(AllModelsFailedError) as info:
                await orch.complete("hi", model="fallback:a,b,c", timeout=5.0)
        # b was cut by its own 0.3 s timeout (the fake saw the hang-up), not by the 30 s hang, and the
        # error is every member's, not the 5 s deadline's.
        [hung] = await b.await_finished(1)
    assert hung.disconnected
    kinds = [type(e).__name__ for e in info.value.errors]
    assert kinds == ["ServerError", "RequestTimeoutError", "UpstreamConnectionError"]


def test_a_429_with_somewhere_else_to_go_never_makes_a_request_wait() -> None:
    # Through the gateway: fallback a,b,c where a answers every call with 429 and retry-after 3 s.
    limited = asyncio.run(chaos.run_rate_limited_fallback(requests=200, concurrency=20))
    assert limited.errors == []
    assert limited.answered_by == {"from b": 200}
    # Nobody waited out a's retry-after: no retry or cooldown wait was ever scheduled, each call that
    # reached a got its 429 and went on to b, and c was never needed.
    assert [e for e in limited.events if isinstance(e, RetryScheduled)] == []
    failed_on_a = [e for e in limited.events if isinstance(e, AttemptFailed) and e.model == "a"]
    assert len(failed_on_a) == len(limited.records["a"]) >= 1
    assert len(limited.records["b"]) == 200 and limited.records["c"] == []
