"""``Orchestrator.validate`` (behind the MCP ``orchestrator_validate`` tool): judge choice, validators,
request events and cost, errors; in process against FakeUpstream."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from model_orchestrator.config.loader import parse_config
from model_orchestrator.core.errors import ConfigError, ModelNotFoundError
from model_orchestrator.core.events import RecordingSink, RequestFinished, RequestStarted
from model_orchestrator.orchestrator import Orchestrator
from model_orchestrator.testing import FakeUpstream, Reply

VERDICT = '{"pass": false, "issues": ["a", "b", "c", "d"], "confidence": 0.95}'


@pytest.fixture
def upstream() -> Iterator[FakeUpstream]:
    with FakeUpstream() as up:
        yield up


def _orchestrator(upstream: FakeUpstream, extra: str = "") -> Orchestrator:
    base = upstream.openai_base
    config = parse_config(
        "models:\n"
        f"  - {{name: cheap, provider: openai, model: m-cheap, api_base: '{base}', api_key_env: K,"
        " price: {input: 1.0, output: 1.0}, tier: 3}\n"
        f"  - {{name: pricey, provider: openai, model: m-pricey, api_base: '{base}', api_key_env: K,"
        " price: {input: 5.0, output: 10.0}, tier: 3}\n"
        f"  - {{name: small, provider: openai, model: m-small, api_base: '{base}', api_key_env: K,"
        " price: {input: 0.1, output: 0.1}, tier: 1}\n"
        f"  - {{name: keyless, provider: openai, model: m-x, api_base: '{base}', api_key_env: MISSING,"
        " price: {input: 50, output: 50}, tier: 5}\n" + extra
    )
    return Orchestrator(config, env={"K": "secret"})


def test_the_default_judge_is_the_strongest_usable_model_unless_config_names_one(
    upstream: FakeUpstream,
) -> None:
    # Same tier: the pricier model is taken as the stronger; the keyless tier-5 model is not usable.
    assert _orchestrator(upstream).default_judge() == "pricey"
    assert _orchestrator(upstream, "validation: {judge: small}\n").default_judge() == "small"


async def test_the_judge_call_is_a_request_with_events_and_cost(upstream: FakeUpstream) -> None:
    orch = _orchestrator(upstream)
    sink = RecordingSink()
    orch.events.subscribe(sink)
    upstream.script(Reply(VERDICT, usage=(1000, 100)))
    async with orch:
        verdict = await orch.validate("Sort a list", "sorted(xs)")
    assert verdict.to_dict() == {
        "pass": False,
        "issues": ["a", "b", "c"],
        "confidence": 0.95,
        "escalate": True,
        "checked_by": ["judge:pricey"],
    }
    (started,) = sink.of_type(RequestStarted)
    (finished,) = sink.of_type(RequestFinished)
    assert isinstance(started, RequestStarted) and isinstance(finished, RequestFinished)
    assert started.strategy == finished.strategy == "validate" and finished.ok
    assert finished.model_used == "pricey"
    assert (finished.input_tokens, finished.output_tokens) == (1000, 100)
    assert finished.cost == pytest.approx(1000 * 5.0 / 1e6 + 100 * 10.0 / 1e6)
    assert upstream.requests[0].json["temperature"] == 0.0


async def test_a_failing_validator_decides_without_the_judge(upstream: FakeUpstream) -> None:
    async with _orchestrator(upstream) as orch:
        verdict = await orch.validate("Return JSON", "not json at all", validators=["json"], judge="small")
    assert not verdict.passed and verdict.escalate and verdict.checked_by == ("json_schema",)
    assert upstream.requests == []


async def test_a_low_confidence_pass_escalates_under_the_configured_threshold(upstream: FakeUpstream) -> None:
    upstream.script(Reply('{"pass": true, "issues": [], "confidence": 0.8}'))
    async with _orchestrator(upstream, "validation: {threshold: 0.9}\n") as orch:
        verdict = await orch.validate("t", "o", judge="cheap")
    assert verdict.passed and verdict.escalate


async def test_bad_judge_or_validator_names_fail_before_any_request(upstream: FakeUpstream) -> None:
    orch = _orchestrator(upstream)
    sink = RecordingSink()
    orch.events.subscribe(sink)
    async with orch:
        with pytest.raises(ModelNotFoundError, match="did you mean 'small'"):
            await orch.validate("t", "o", judge="smal")
        with pytest.raises(ConfigError, match="unknown validator 'yaml'"):
            await orch.validate("t", "o", validators=["yaml"])
    assert sink.events == [] and upstream.requests == []
