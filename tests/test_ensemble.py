"""EnsembleModel: members run concurrently (wall time ~ slowest member, through real HTTP), partial failures
degrade gracefully, total failure lists every error, samples vary, and the result explains itself."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator

import pytest

from model_orchestrator.core.errors import (
    AllModelsFailedError,
    BudgetExceededError,
    CircuitOpenError,
    ConfigError,
    RateLimitedError,
    ServerError,
)
from model_orchestrator.core.events import AttemptStarted, AttemptSucceeded, EventBus, RecordingSink
from model_orchestrator.core.observed import ObservedModel
from model_orchestrator.core.pricing import FREE, Price
from model_orchestrator.core.profile import ModelProfile
from model_orchestrator.core.request import ChatRequest
from model_orchestrator.core.request_scope import RequestScope, request_scope
from model_orchestrator.core.response import Completion
from model_orchestrator.core.usage import Usage
from model_orchestrator.providers.http import HttpTransport
from model_orchestrator.providers.openai_compatible import OpenAICompatibleModel
from model_orchestrator.strategies.aggregators import SynthesizeAggregator, VoteAggregator
from model_orchestrator.strategies.ensemble import DEFAULT_SAMPLE_TEMPERATURE, EnsembleModel
from model_orchestrator.strategies.extractors import choice_letter, number, short_text
from model_orchestrator.strategies.member import Member
from model_orchestrator.testing import FakeClock, FakeUpstream, FunctionModel, Reply, ScriptedModel

PRICE = Price(input=1.0, output=2.0)  # USD per million tokens
QUESTION = ChatRequest.from_prompt("Which city is the capital of Australia? A) Sydney B) Canberra C) Perth")


def scripted(name: str, *answers: str | BaseException | Completion, price: Price | None = PRICE) -> Member:
    return Member(ScriptedModel(answers, name=name), ModelProfile(name, price=price))


def ensemble(members: list[Member], **options: object) -> EnsembleModel:
    options.setdefault("aggregator", VoteAggregator(choice_letter()))
    return EnsembleModel(members, clock=FakeClock(), bus=EventBus(), **options)  # type: ignore[arg-type]


# --- through real HTTP: concurrency ------------------------------------------------------------------


@pytest.fixture
async def transport() -> AsyncIterator[HttpTransport]:
    transport = HttpTransport()
    yield transport
    await transport.aclose()


def http_member(up: FakeUpstream, transport: HttpTransport, name: str, bus: EventBus) -> Member:
    adapter = OpenAICompatibleModel(
        name=name, model_id="gpt-4o-mini", api_base=up.openai_base, api_key="k", transport=transport
    )
    observed = ObservedModel(
        adapter, name=name, provider="openai", deployment=adapter.deployment, price=PRICE, bus=bus
    )
    return Member(observed, ModelProfile(name, price=PRICE))


async def test_members_run_concurrently_and_the_ensemble_waits_for_each(transport: HttpTransport) -> None:
    latencies = {"fast": 0.05, "medium": 0.15, "slow": 0.30}
    answers = {"fast": "The answer is B", "medium": "B) Canberra", "slow": "Sydney, so A"}
    bus, sink = EventBus(), RecordingSink()
    bus.subscribe(sink)
    async with FakeUpstream() as a, FakeUpstream() as b, FakeUpstream() as c:
        ups = dict(zip(latencies, (a, b, c), strict=True))
        for name, up in ups.items():
            up.script(Reply(answers[name], latency=latencies[name], usage=(20, 4)))
        members = [http_member(ups[n], transport, n, bus) for n in latencies]
        model = EnsembleModel(members, aggregator=VoteAggregator(choice_letter()), clock=FakeClock(), bus=bus)

        completion = await model.complete(QUESTION)

    # Every call started before any answered: sent together, not one after another (which would
    # interleave started, answered, started, ...); and the vote waited for all three answers.
    attempts = [type(e) for e in sink.events if isinstance(e, AttemptStarted | AttemptSucceeded)]
    assert attempts == [AttemptStarted] * 3 + [AttemptSucceeded] * 3
    assert [len(up.requests) for up in ups.values()] == [1, 1, 1]
    assert completion.text == "The answer is B" and completion.model == "fast"
    assert completion.usage == Usage(60, 12)
    assert completion.cost == pytest.approx(3 * (20 * 1.0 + 4 * 2.0) / 1e6)


class _Clock:
    """The real clock (the timing test measures real time through FakeUpstream)."""

    def monotonic(self) -> float:
        return time.monotonic()

    def wall(self) -> float:
        return time.time()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


# --- explanation -------------------------------------------------------------------------------------


async def test_result_explains_members_answers_votes_confidence_and_cost() -> None:
    members = [
        scripted("fast", Completion("The answer is B", "x", "p", "d", Usage(10, 3), cost=0.01)),
        scripted("strong", Completion("B) Canberra", "y", "p", "d", Usage(12, 4), cost=0.05)),
        scripted("cheap", Completion("I'd say (A)", "z", "p", "d", Usage(9, 2), cost=0.001)),
    ]

    completion = await ensemble(members, name="vote3").complete(QUESTION)

    explanation = completion.explanation
    assert explanation is not None
    facts = dict(explanation.facts)
    assert explanation.strategy == "ensemble" and facts["name"] == "vote3"
    assert (explanation.chosen, completion.model, completion.text) == ("fast", "fast", "The answer is B")
    assert explanation.confidence == pytest.approx(2 / 3) and explanation.confidence_source == "agreement"
    assert facts["votes"] == {"B": 2, "A": 1} and facts["consensus"] is True
    assert facts["aggregator"] == "vote" and facts["extractor"] == "choice"
    assert (facts["answered"], facts["failed"], facts["abstentions"]) == (3, 0, [])
    steps = {s.model: s for s in explanation.steps}
    assert steps["cheap"].outcome == "rejected" and steps["cheap"].text == "I'd say (A)"
    assert (steps["strong"].cost, steps["strong"].input_tokens, steps["strong"].output_tokens) == (
        0.05,
        12,
        4,
    )
    assert completion.cost == pytest.approx(0.061)
    assert completion.usage == Usage(31, 9)
    assert "'B' won 2 of 3 votes (consensus)" in (explanation.reason or "")
    assert explanation.to_dict()["votes"] == {"B": 2, "A": 1}


# --- degradation -------------------------------------------------------------------------------------


async def test_partial_failure_uses_the_answers_that_came() -> None:
    members = [
        scripted("down", ServerError("boom", status_code=503)),
        scripted("open", CircuitOpenError("circuit open")),
        scripted("a", "B"),
        scripted("b", "The answer is B"),
    ]

    completion = await ensemble(members).complete(QUESTION)

    explanation = completion.explanation
    assert explanation is not None
    outcomes = [(s.model, s.outcome, s.error_type) for s in explanation.steps]
    assert outcomes == [
        ("down", "error", "ServerError"),
        ("open", "skipped", "CircuitOpenError"),
        ("a", "ok", None),
        ("b", "ok", None),
    ]
    facts = dict(explanation.facts)
    assert (facts["answered"], facts["failed"], facts["consensus"]) == (2, 2, True)
    assert explanation.confidence == 1.0  # agreement among the answers that came
    assert completion.text == "B"


async def test_total_failure_raises_with_every_error() -> None:
    members = [
        scripted("a", ServerError("a broke", status_code=500)),
        scripted("b", RateLimitedError("b limited", retry_after=3.0)),
        scripted("c", CircuitOpenError("c open", retry_after=9.0)),
    ]

    with pytest.raises(AllModelsFailedError) as caught:
        await ensemble(members).complete(QUESTION)

    error = caught.value
    assert [type(e).__name__ for e in error.errors] == ["ServerError", "RateLimitedError", "CircuitOpenError"]
    assert "0 of 3 members answered" in str(error) and "a broke" in str(error) and "b limited" in str(error)
    assert error.retryable and error.retry_after == 3.0


async def test_min_answers_raises_when_too_few_came() -> None:
    members = [scripted("a", "B"), scripted("b", ServerError("down")), scripted("c", ServerError("down"))]

    with pytest.raises(AllModelsFailedError, match="1 of 3 members answered, 2 needed"):
        await ensemble(members, min_answers=2).complete(QUESTION)


async def test_members_that_do_not_fit_context_or_budget_are_skipped_before_any_call() -> None:
    tiny = Member(ScriptedModel(["B"], name="tiny"), ModelProfile("tiny", price=PRICE, context_window=10))
    pricey = scripted("pricey", "B", price=Price(input=10_000.0, output=10_000.0))
    members = [scripted("a", "B"), tiny, pricey, scripted("b", "A")]

    with request_scope(RequestScope("r", max_cost=0.01)):
        completion = await ensemble(members).complete(QUESTION)

    explanation = completion.explanation
    assert explanation is not None
    skipped = {s.model: s.reason for s in explanation.steps if s.outcome == "skipped"}
    assert skipped["tiny"] == "context window too small"
    assert "exceeds the remaining budget" in (skipped["pricey"] or "")
    assert isinstance(tiny.model, ScriptedModel) and tiny.model.requests == []
    with request_scope(RequestScope("r", max_cost=1e-12)), pytest.raises(BudgetExceededError):
        await ensemble(members).complete(QUESTION)


# --- samples -----------------------------------------------------------------------------------------


async def test_samples_ask_one_member_n_times_with_distinct_seeds_and_a_temperature() -> None:
    answers = iter(["12", "The answer is 12.", "13"])
    model = FunctionModel(lambda request: next(answers), name="local")
    member = Member(model, ModelProfile("local", price=FREE))
    strategy = ensemble([member], aggregator=VoteAggregator(number()), samples=3, rng=random.Random(7))

    completion = await strategy.complete(ChatRequest.from_prompt("What is 7 + 5?"))

    seeds = [dict(r.metadata)["seed"] for r in model.requests]
    assert len(set(seeds)) == 3
    assert [dict(r.metadata)["sample"] for r in model.requests] == ["1", "2", "3"]
    assert {r.temperature for r in model.requests} == {DEFAULT_SAMPLE_TEMPERATURE}
    explanation = completion.explanation
    assert explanation is not None
    assert dict(explanation.facts)["votes"] == {"12": 2, "13": 1}
    assert dict(explanation.facts)["samples"] == 3
    assert [s.model for s in explanation.steps] == ["local"] * 3
    assert (explanation.steps[0].reason or "").startswith(f"sample 1 of 3 (seed {seeds[0]}")
    assert completion.text == "12"

    hot = ensemble([member], aggregator=VoteAggregator(number()), samples=2)
    model.requests.clear()
    answers = iter(["1", "1"])
    await hot.complete(ChatRequest.from_prompt("1?", temperature=1.2))
    assert {r.temperature for r in model.requests} == {1.2}


async def test_a_member_listed_twice_is_sampled_so_its_answers_can_differ() -> None:
    """``--ensemble-size 4`` over ``a,b`` lists each twice; the repeats get a temperature and seeds."""
    first = FunctionModel(lambda request: "12", name="a")
    second = FunctionModel(lambda request: "12", name="b")
    a, b = Member(first, ModelProfile("a", price=FREE)), Member(second, ModelProfile("b", price=FREE))
    strategy = ensemble([a, b, a, b], aggregator=VoteAggregator(number()), rng=random.Random(3))

    completion = await strategy.complete(ChatRequest.from_prompt("What is 7 + 5?"))

    requests = [*first.requests, *second.requests]
    assert len(requests) == 4 and len({dict(r.metadata)["seed"] for r in requests}) == 4
    assert {r.temperature for r in requests} == {DEFAULT_SAMPLE_TEMPERATURE}
    explanation = completion.explanation
    assert explanation is not None and [s.model for s in explanation.steps] == ["a", "b", "a", "b"]
    assert dict(explanation.facts)["ensemble_size"] == 4
    distinct = ensemble([a, b], aggregator=VoteAggregator(number()))
    first.requests.clear()
    await distinct.complete(ChatRequest.from_prompt("What is 7 + 5?"))
    assert first.requests[0].temperature is None and not first.requests[0].metadata


def test_bad_shapes_are_config_errors() -> None:
    one, two = scripted("a", "B"), scripted("b", "B")
    with pytest.raises(ConfigError):
        ensemble([])
    with pytest.raises(ConfigError, match="exactly one member"):
        ensemble([one, two], samples=3)
    with pytest.raises(ConfigError, match="min_answers"):
        ensemble([one, two], min_answers=3)


# --- synthesis, streaming -------------------------------------------------------------------------------


async def test_synthesized_answer_counts_the_writer_in_cost_and_steps() -> None:
    writer = scripted("writer", Completion("Canberra.", "w", "p", "w", Usage(50, 5), cost=0.2))
    members = [
        scripted("a", Completion("B", "a", "p", "a", Usage(10, 1), cost=0.01)),
        scripted("b", Completion("Canberra", "b", "p", "b", Usage(10, 1), cost=0.02)),
    ]

    completion = await ensemble(members, aggregator=SynthesizeAggregator(writer)).complete(QUESTION)

    explanation = completion.explanation
    assert explanation is not None
    assert (completion.text, completion.model, explanation.chosen) == ("Canberra.", "writer", "writer")
    assert completion.cost == pytest.approx(0.23)
    assert [s.model for s in explanation.steps] == ["a", "b", "writer"]
    assert explanation.steps[2].reason == "synthesizer"


async def test_stream_yields_the_aggregated_answer_as_one_delta() -> None:
    members = [scripted("a", "B"), scripted("b", "B")]

    deltas = [d async for d in ensemble(members).stream(QUESTION)]

    assert len(deltas) == 1
    assert deltas[0].text == "B" and deltas[0].usage is not None and deltas[0].explanation is not None


async def test_cancelling_the_ensemble_cancels_every_member() -> None:
    gate = asyncio.Event()

    async def never(request: ChatRequest) -> str:
        await gate.wait()
        return "B"

    slow = [Member(FunctionModel(never, name=n), ModelProfile(n)) for n in ("a", "b")]
    task = asyncio.create_task(ensemble(slow, aggregator=VoteAggregator(short_text())).complete(QUESTION))
    await asyncio.sleep(0.01)
    task.cancel()

    with pytest.raises(asyncio.CancelledError):
        await task
    assert all(isinstance(m.model, FunctionModel) and len(m.model.requests) == 1 for m in slow)


# --- the real embedded model ---------------------------------------------------------------------------


@pytest.mark.local_model
async def test_three_samples_of_the_embedded_model_vote_and_explain_themselves() -> None:
    from model_orchestrator.providers.local import LocalModel

    bus = EventBus()
    local = ObservedModel(
        LocalModel(), name="local", provider="local", deployment="local", price=FREE, bus=bus
    )
    member = Member(local, ModelProfile("local", price=FREE))
    strategy = EnsembleModel(
        [member],
        aggregator=VoteAggregator(number()),
        samples=3,
        clock=_Clock(),
        bus=bus,
        rng=random.Random(3),
    )
    request = ChatRequest.from_prompt("What is 2 + 3? Reply with just the number.", max_tokens=12)

    completion = await strategy.complete(request)

    explanation = completion.explanation
    assert explanation is not None
    facts = dict(explanation.facts)
    assert facts["answered"] == 3 and len(explanation.steps) == 3
    assert all(s.text is not None and s.output_tokens > 0 for s in explanation.steps)
    votes: dict[str, int] = facts["votes"]  # type: ignore[assignment]
    assert sum(votes.values()) == 3 - len(facts["abstentions"])  # type: ignore[arg-type]
    if votes:
        top = max(votes.values())
        assert explanation.confidence == pytest.approx(top / 3)
        assert number()(completion.text) in votes and votes[number()(completion.text) or ""] == top
    else:
        assert explanation.confidence == 0.0
    assert completion.usage.output_tokens == sum(s.output_tokens for s in explanation.steps)
    assert completion.cost == 0.0
