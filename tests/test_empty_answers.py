"""Empty answers: one rule (``resilience.empty_answer``) read by breaker and retry, and the per-model
``retry_on_empty`` setting, through the stack the config builds over a real fake upstream."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from model_orchestrator.config.loader import parse_config
from model_orchestrator.core.errors import AllModelsFailedError, ConfigError, OrchestratorError, ServerError
from model_orchestrator.orchestrator import Orchestrator
from model_orchestrator.testing import FakeClock, FakeUpstream, Reply

ENV = {"K1": "key-one"}
EMPTY = Reply("  ", usage=(3, 1))


@pytest.fixture
def upstream() -> Iterator[FakeUpstream]:
    with FakeUpstream() as up:
        yield up


def config(up: FakeUpstream, model_block: str = "", defaults: str = "") -> str:
    text = (
        "models:\n"
        f"  - {{name: o, provider: openai, model: gpt-4o-mini, api_base: '{up.openai_base}', "
        f"api_key_env: K1{model_block}}}\n"
    )
    return text + (f"resilience:\n  retry: {{{defaults}}}\n" if defaults else "")


async def test_an_empty_answer_is_retried_and_then_an_error_by_default(upstream: FakeUpstream) -> None:
    upstream.script(EMPTY, EMPTY, EMPTY)
    async with Orchestrator(parse_config(config(upstream)), env=ENV, clock=FakeClock()) as orch:
        with pytest.raises(OrchestratorError) as caught:
            await orch.complete("hi", model="o")
    error = caught.value
    cause = error.errors[-1] if isinstance(error, AllModelsFailedError) else error
    assert isinstance(cause, ServerError) and "empty answer" in cause.message
    assert len(upstream.requests) == 3


@pytest.mark.parametrize(
    ("model_block", "defaults"),
    [(", retry: {retry_on_empty: false}", ""), ("", "retry_on_empty: false")],
    ids=["per-model", "resilience-default"],
)
async def test_retry_on_empty_false_returns_the_empty_answer_once(
    upstream: FakeUpstream, model_block: str, defaults: str
) -> None:
    upstream.script(*[EMPTY] * 7)
    text = config(upstream, model_block, defaults)
    async with Orchestrator(parse_config(text), env=ENV, clock=FakeClock()) as orch:
        # The breaker opens after 5 consecutive failures; with the setting off none of these is one.
        for _ in range(6):
            result = await orch.complete("hi", model="o")
            assert result.response == "  "
        deltas = [d async for d in orch.stream("hi", model="o")]
    assert "".join(d.text for d in deltas) == "  "
    assert len(upstream.requests) == 7


def test_retry_on_empty_must_be_a_boolean(upstream: FakeUpstream) -> None:
    with pytest.raises(ConfigError, match="retry_on_empty"):
        parse_config(config(upstream, ", retry: {retry_on_empty: sometimes}"))
