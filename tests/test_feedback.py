"""Outcome labels in the ledger (SQLite and PostgreSQL): ``orch.feedback`` on answered requests, clear
errors for unknown ids, bad scores and other keys' requests, cascade and validation verdicts recorded
as labels, and prompts stored only when ``ledger.store_prompts`` is on (unlabelled ones forgotten)."""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from model_orchestrator import Orchestrator
from model_orchestrator.config.loader import parse_config
from model_orchestrator.core.errors import ConfigError, ContentFilteredError
from model_orchestrator.core.request import ChatRequest
from model_orchestrator.ledger.feedback import InvalidFeedbackError, UnknownRequestError
from model_orchestrator.testing import FakeClock, FakeUpstream, Fault, Reply
from tests.ledger_db import DATABASES, url_for

DAY = 86400.0


@pytest.fixture(params=DATABASES)
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return url_for(request.param, tmp_path)


@pytest.fixture
async def upstream() -> AsyncIterator[FakeUpstream]:
    up = FakeUpstream().start()
    try:
        yield up
    finally:
        up.stop()


def orchestrator(
    up: FakeUpstream, url: str, ledger: str = "", clock: FakeClock | None = None
) -> Orchestrator:
    """A weak model (tier 1), a strong one (tier 3), a cascade and a validated strategy over them."""
    base = up.openai_base
    config = parse_config(
        f"""
models:
  - {{name: weak, provider: openai, model: m-weak, api_base: "{base}", api_key_env: K, tier: 1,
      retry: {{max_attempts: 1}}}}
  - {{name: strong, provider: openai, model: m-strong, api_base: "{base}", api_key_env: K, tier: 3}}
strategies:
  - {{name: climb, type: cascade, tiers: [weak, strong], threshold: 0.7}}
  - {{name: checked, type: validated, model: weak, fallback: strong, validators: [json]}}
ledger: {{url: "{url}"{ledger}}}
"""
    )
    return Orchestrator(config, env={"K": "sk-never-stored"}, clock=clock)


async def test_feedback_labels_an_answered_request_with_its_model_and_tier(
    upstream: FakeUpstream, url: str
) -> None:
    upstream.script(Reply("Paris"))
    async with orchestrator(upstream, url) as orch:
        result = await orch.complete("Capital of France?", model="strong")
        request_id = str(result.metadata["request_id"])
        receipt = await orch.feedback(request_id, 0.75)
        again = await orch.feedback(request_id, True)
        labelled = await orch.ledger.labelled_requests()
    assert receipt.request_id == request_id and receipt.model == "strong" and receipt.score == 0.75
    assert again.score == 1.0 and again.label_id != receipt.label_id
    (request,) = labelled
    assert request.request_id == request_id
    assert [(label.source, label.model, label.tier, label.score) for label in request.labels] == [
        ("feedback", "strong", 3, 0.75),
        ("feedback", "strong", 3, 1.0),
    ]
    assert request.prompt is None  # store_prompts is off by default: no text in the ledger


@pytest.mark.parametrize("score", [1.5, -0.01, math.nan, math.inf, "0.5"])
async def test_a_score_off_the_scale_is_refused_with_the_scale(
    upstream: FakeUpstream, url: str, score: object
) -> None:
    upstream.script(Reply("ok"))
    async with orchestrator(upstream, url) as orch:
        result = await orch.complete("hi", model="weak")
        with pytest.raises(InvalidFeedbackError, match=r"from 0 .* to 1") as caught:
            await orch.feedback(str(result.metadata["request_id"]), score)  # type: ignore[arg-type]
        assert await orch.ledger.labelled_requests() == []
    assert caught.value.status_code == 422 and caught.value.param == "score"


async def test_unknown_ids_failed_requests_and_other_keys_requests_are_refused(
    upstream: FakeUpstream, url: str
) -> None:
    upstream.script(Reply("ok"), Fault.content_filter())
    async with orchestrator(upstream, url) as orch:
        mine = await orch.complete(ChatRequest.from_prompt("hi", api_key_id="key-a"), model="weak")
        with pytest.raises(ContentFilteredError):
            await orch.complete(ChatRequest.from_prompt("hi", request_id="failed-1"), model="weak")
        mine_id = str(mine.metadata["request_id"])
        with pytest.raises(UnknownRequestError, match=r"no request 'nope' in the ledger") as unknown:
            await orch.feedback("nope", 1.0)
        with pytest.raises(UnknownRequestError):
            await orch.feedback(mine_id, 1.0, api_key_id="key-b")
        with pytest.raises(UnknownRequestError):
            await orch.feedback("", 1.0)
        with pytest.raises(InvalidFeedbackError, match="failed, so it has no answer") as failed:
            await orch.feedback("failed-1", 0.0)
        receipt = await orch.feedback(mine_id, 0.0, api_key_id="key-a")
    assert unknown.value.status_code == 404
    assert failed.value.param == "request_id"
    assert receipt.score == 0.0


async def test_cascade_escalations_and_validation_verdicts_become_labels(
    upstream: FakeUpstream, url: str
) -> None:
    upstream.script(
        Reply("Lyon\nConfidence: 20%"),  # cascade: weak is unsure, so it escalates
        Reply("Paris\nConfidence: 90%"),
        Reply("not json"),  # validated: weak fails the json validator, strong answers
        Reply('{"capital": "Paris"}'),
    )
    async with orchestrator(upstream, url) as orch:
        climbed = await orch.complete("Capital of France?", model="climb")
        checked = await orch.complete("Capital of France, as JSON", model="checked")
        labelled = {r.request_id: r for r in await orch.ledger.labelled_requests()}
    assert climbed.model_used == "strong" and checked.model_used == "strong"
    cascade = labelled[str(climbed.metadata["request_id"])].labels
    assert [(x.source, x.model, x.tier, x.score) for x in cascade] == [
        ("cascade", "weak", 1, pytest.approx(0.2)),
        ("cascade", "strong", 3, pytest.approx(0.9)),
    ]
    validation = labelled[str(checked.metadata["request_id"])].labels
    assert [(x.source, x.model, x.score) for x in validation] == [
        ("validation", "weak", 0.0),
        ("validation", "strong", 1.0),
    ]


async def test_prompts_are_stored_only_when_opted_in_and_unlabelled_ones_expire(
    upstream: FakeUpstream, url: str
) -> None:
    upstream.script(Reply("a"), Reply("b"))
    async with orchestrator(upstream, url) as orch:
        await orch.complete("not kept", model="weak")
        await orch.ledger.flush()
        assert await _prompts(orch) == []

    clock = FakeClock(wall_start=1_800_000_000.0)
    opted_in = ", store_prompts: true, prompt_retention_days: 2"
    upstream.script(Reply("a"), Reply("b"), Reply("c"))
    async with orchestrator(upstream, url, opted_in, clock) as orch:
        system = [("system", "be brief")]
        labelled = await orch.complete(_conversation(system, "first turn", "What is 2+2?"), model="weak")
        await orch.complete("never labelled", model="weak")
        await orch.feedback(str(labelled.metadata["request_id"]), 1.0)
        clock.advance(3 * DAY)
        await orch.complete("recent", model="weak")
        labelled_requests = await orch.ledger.labelled_requests()  # prunes expired, unlabelled prompts
        kept = await _prompts(orch)
    assert labelled_requests[0].prompt == "What is 2+2?"  # the router's input: the last user message
    assert sorted(kept) == ["What is 2+2?", "recent"]


def _conversation(system: list[tuple[str, str]], *users: str) -> ChatRequest:
    from model_orchestrator.core.messages import Message

    messages = [Message.system(text) for _, text in system]
    for text in users:
        messages += [Message.user(text), Message.assistant("ok")]
    return ChatRequest(messages=tuple(messages[:-1]))


async def _prompts(orch: Orchestrator) -> list[str]:
    store = await orch.ledger.store()
    async with store.engine.connect() as conn:
        rows = (await conn.execute(sa.text("SELECT prompt FROM request_prompts"))).all()
    return [row[0] for row in rows]


async def test_feedback_without_the_ledger_says_how_to_turn_it_on() -> None:
    config = parse_config("ledger: {enabled: false}")
    async with Orchestrator(config, env={}) as orch:
        with pytest.raises(ConfigError, match=r"ledger.enabled: false"):
            await orch.feedback("any", 1.0)
