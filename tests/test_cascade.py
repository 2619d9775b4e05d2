"""CascadeModel: escalate exactly when the score is below the threshold; final tier answers; budgets hold."""

from __future__ import annotations

import math

import pytest

from model_orchestrator.core.errors import (
    AllModelsFailedError,
    BudgetExceededError,
    ConfigError,
    CoolingDownError,
    DeadlineExceededError,
    ServerError,
)
from model_orchestrator.core.events import EventBus, FallbackTriggered, RecordingSink
from model_orchestrator.core.model import ChatModel
from model_orchestrator.core.observed import ObservedModel
from model_orchestrator.core.pricing import FREE, Price
from model_orchestrator.core.profile import ModelProfile
from model_orchestrator.core.request import ChatRequest
from model_orchestrator.core.request_scope import RequestScope, request_scope
from model_orchestrator.core.response import Completion, TokenLogprob
from model_orchestrator.core.usage import Usage
from model_orchestrator.providers.local import LocalModel
from model_orchestrator.strategies.cascade import CascadeModel
from model_orchestrator.strategies.member import Member
from model_orchestrator.strategies.scorers import (
    AgreementScorer,
    LogprobScorer,
    Scorer,
    SelfReportedScorer,
    ValidatorScorer,
    token_probability,
)
from model_orchestrator.testing import FakeClock, ScriptedModel

PRICE = Price(1.0, 2.0)
REQUEST = ChatRequest.from_prompt("What is the capital of France?", request_id="req-7")


class Harness:
    def __init__(self) -> None:
        self.clock = FakeClock()
        self.bus = EventBus()
        self.sink = RecordingSink()
        self.bus.subscribe(self.sink)

    def member(self, inner: ChatModel, name: str, *, price: Price | None = PRICE) -> Member:
        observed = ObservedModel(
            inner,
            name=name,
            provider="test",
            deployment=f"{name}@test",
            price=price,
            bus=self.bus,
            clock=self.clock,
        )
        return Member(observed, ModelProfile(name=name, price=price))

    def cascade(
        self, *tiers: Member, scorer: Scorer, threshold: float = 0.7, **options: object
    ) -> CascadeModel:
        return CascadeModel(
            tiers,
            scorer=scorer,
            threshold=threshold,
            clock=self.clock,
            bus=self.bus,
            **options,  # type: ignore[arg-type]
        )

    def moves(self) -> list[FallbackTriggered]:
        return [e for e in self.sink.events if isinstance(e, FallbackTriggered)]


@pytest.fixture
def h() -> Harness:
    return Harness()


def scripted(name: str, *entries: str | Completion | BaseException) -> ScriptedModel:
    return ScriptedModel(entries, name=name)


def by_model(confidences: dict[str, float]) -> ValidatorScorer:
    async def validator(request: ChatRequest, completion: Completion) -> float:
        return confidences[completion.model]

    return ValidatorScorer(validator, source="fixed")


@pytest.mark.parametrize(
    ("threshold", "escalates"),
    [(0.5, False), (0.64, False), (0.65, False), (0.6500001, True), (0.66, True), (0.9, True)],
)
async def test_escalates_exactly_when_the_score_is_below_the_threshold(
    h: Harness, threshold: float, escalates: bool
) -> None:
    cheap, strong = scripted("cheap", "Lyon"), scripted("strong", "Paris")
    cascade = h.cascade(
        h.member(cheap, "cheap"),
        h.member(strong, "strong"),
        scorer=by_model({"cheap": 0.65, "strong": 0.95}),
        threshold=threshold,
    )
    completion = await cascade.complete(REQUEST)

    assert len(strong.requests) == int(escalates)
    assert completion.model == ("strong" if escalates else "cheap")
    assert len(h.moves()) == int(escalates)
    assert completion.explanation is not None
    assert [s.confidence for s in completion.explanation.steps] == ([0.65, 0.95] if escalates else [0.65])
    assert dict(completion.explanation.facts)["escalations"] == int(escalates)


async def test_three_tiers_climb_until_one_is_confident(h: Harness) -> None:
    cascade = h.cascade(
        h.member(scripted("t1", "Lyon"), "t1"),
        h.member(scripted("t2", "Paris"), "t2"),
        h.member(scripted("t3", "never"), "t3"),
        scorer=by_model({"t1": 0.2, "t2": 0.8}),
        threshold=0.7,
        name="tiers",
    )
    completion = await cascade.complete(REQUEST)

    assert completion.text == "Paris" and completion.model == "t2"
    explanation = completion.explanation
    assert explanation is not None and explanation.strategy == "cascade"
    assert [(s.model, s.outcome, s.confidence) for s in explanation.steps] == [
        ("t1", "rejected", 0.2),
        ("t2", "ok", 0.8),
    ]
    assert (explanation.confidence, explanation.confidence_source) == (0.8, "fixed")
    assert explanation.reason == "t2 scored 0.800 >= threshold 0.7"
    (move,) = h.moves()
    assert (move.strategy, move.from_model, move.to_model, move.request_id) == ("tiers", "t1", "t2", "req-7")
    assert move.reason == "rejected: confidence 0.200 is below the threshold 0.7"
    assert completion.usage.output_tokens == 1 + 2  # Lyon and Paris were both paid for


async def test_the_final_tier_answers_whatever_its_score(h: Harness) -> None:
    cascade = h.cascade(
        h.member(scripted("t1", "Lyon"), "t1"),
        h.member(scripted("t2", "Nice"), "t2"),
        scorer=by_model({"t1": 0.3, "t2": 0.1}),
    )
    completion = await cascade.complete(REQUEST)

    assert completion.text == "Nice" and completion.model == "t2"
    assert completion.explanation is not None
    assert completion.explanation.reason == "t2 is the final tier, which answers whatever its score"
    assert completion.explanation.confidence == 0.1


async def test_a_failing_final_tier_returns_the_best_earlier_answer(h: Harness) -> None:
    cascade = h.cascade(
        h.member(scripted("t1", "Lyon"), "t1"),
        h.member(scripted("t2", "Paris"), "t2"),
        h.member(scripted("t3", ServerError("boom")), "t3"),
        scorer=by_model({"t1": 0.3, "t2": 0.5}),
    )
    completion = await cascade.complete(REQUEST)

    assert completion.text == "Paris" and completion.model == "t2"
    assert completion.explanation is not None
    assert (
        completion.explanation.reason == "the final tier gave no answer; returning the best earlier one (t2)"
    )
    assert [s.outcome for s in completion.explanation.steps] == ["rejected", "rejected", "error"]


async def test_an_erroring_tier_escalates(h: Harness) -> None:
    cascade = h.cascade(
        h.member(scripted("t1", ServerError("boom")), "t1"),
        h.member(scripted("t2", "Paris"), "t2"),
        scorer=by_model({"t2": 0.9}),
    )
    completion = await cascade.complete(REQUEST)
    assert completion.model == "t2" and h.moves()[0].reason == "error: boom"


async def test_every_tier_failing_raises_all_models_failed(h: Harness) -> None:
    cascade = h.cascade(
        h.member(scripted("t1", ServerError("one")), "t1"),
        h.member(scripted("t2", ServerError("two")), "t2"),
        scorer=by_model({}),
    )
    with pytest.raises(AllModelsFailedError) as caught:
        await cascade.complete(REQUEST)
    assert [e.message for e in caught.value.errors] == ["one", "two"]


def test_configuration_mistakes_are_config_errors(h: Harness) -> None:
    with pytest.raises(ConfigError, match="at least one tier"):
        h.cascade(scorer=by_model({}))
    with pytest.raises(ConfigError, match="between 0 and 1"):
        h.cascade(h.member(scripted("t1"), "t1"), scorer=by_model({}), threshold=70)


# --- budgets ----------------------------------------------------------------------------------------------


async def test_escalation_stops_when_the_next_tier_is_unaffordable(h: Harness) -> None:
    strong = scripted("strong", "never")
    cascade = h.cascade(
        h.member(scripted("cheap", "Lyon"), "cheap"),
        h.member(strong, "strong", price=Price(1_000.0, 1_000.0)),
        scorer=by_model({"cheap": 0.3}),
    )
    with request_scope(RequestScope("req-7", max_cost=0.01)) as scope:
        completion = await cascade.complete(REQUEST.with_options(max_cost=0.01))

    assert strong.requests == [] and completion.text == "Lyon"
    assert 0 < scope.spent <= 0.01
    assert completion.explanation is not None
    assert completion.explanation.reason is not None
    assert completion.explanation.reason.startswith("stopped escalating before strong: estimated cost $")
    assert [s.outcome for s in completion.explanation.steps] == ["rejected", "skipped"]


async def test_an_unaffordable_cheap_tier_is_skipped_for_an_affordable_later_one(h: Harness) -> None:
    dear = scripted("dear", "never")
    cascade = h.cascade(
        h.member(dear, "dear", price=Price(1_000.0, 1_000.0)),
        h.member(scripted("local", "Paris"), "local", price=FREE),
        scorer=by_model({"local": 0.2}),
    )
    completion = await cascade.complete(REQUEST.with_options(max_cost=0.0))
    assert dear.requests == [] and completion.model == "local"


async def test_no_affordable_tier_fails_before_any_call(h: Harness) -> None:
    cheap = scripted("cheap", "never")
    cascade = h.cascade(h.member(cheap, "cheap"), scorer=by_model({}))
    with pytest.raises(BudgetExceededError, match="nothing was sent"):
        await cascade.complete(REQUEST.with_options(max_cost=1e-9))
    assert cheap.requests == [] and h.sink.events == []


async def test_agreement_samples_are_counted_in_usage_and_cost(h: Harness) -> None:
    cheap = ScriptedModel([], name="cheap", default="Paris")
    cascade = h.cascade(
        h.member(cheap, "cheap"), h.member(scripted("strong"), "strong"), scorer=AgreementScorer(2)
    )
    with request_scope(RequestScope("req-7")) as scope:
        completion = await cascade.complete(REQUEST)

    assert len(cheap.requests) == 3 and completion.model == "cheap"
    assert completion.explanation is not None and completion.explanation.confidence == 1.0
    assert completion.usage.output_tokens == 3 * 2
    assert completion.cost == pytest.approx(scope.spent)


# --- scorers in a cascade ---------------------------------------------------------------------------------


async def test_self_reported_confidence_is_asked_for_and_stripped(h: Harness) -> None:
    cheap = scripted("cheap", "Lyon, I think.\nConfidence: 35%")
    strong = scripted("strong", "Paris.\nConfidence: 95%")
    cascade = h.cascade(h.member(cheap, "cheap"), h.member(strong, "strong"), scorer=SelfReportedScorer())
    completion = await cascade.complete(REQUEST)

    assert completion.text == "Paris."
    assert "Confidence: N%" in cheap.requests[0].messages[-1].text
    assert completion.explanation is not None
    assert [s.confidence for s in completion.explanation.steps] == [pytest.approx(0.35), pytest.approx(0.95)]


def logprob_answer(text: str, probabilities: list[float]) -> Completion:
    tokens = tuple(TokenLogprob(f"t{i}", math.log(p)) for i, p in enumerate(probabilities))
    return Completion(text, "cheap", "test", "cheap", Usage(10, len(tokens)), logprobs=tokens)


@pytest.mark.parametrize(("probabilities", "escalates"), [([0.9, 0.8, 0.7], False), ([0.9, 0.5, 0.3], True)])
async def test_logprob_scorer_decides_on_token_probabilities(
    h: Harness, probabilities: list[float], escalates: bool
) -> None:
    cheap = scripted("cheap", logprob_answer("Paris", probabilities))
    strong = scripted("strong", "Paris!")
    cascade = h.cascade(
        h.member(cheap, "cheap"), h.member(strong, "strong"), scorer=LogprobScorer(), threshold=0.7
    )
    completion = await cascade.complete(REQUEST)

    assert cheap.requests[0].logprobs is True
    assert len(strong.requests) == int(escalates)
    assert completion.explanation is not None
    assert completion.explanation.steps[0].confidence == pytest.approx(sum(probabilities) / 3)
    assert completion.explanation.steps[0].outcome == ("rejected" if escalates else "ok")


async def test_missing_logprobs_count_as_not_confident(h: Harness) -> None:
    strong = scripted("strong", "Paris")
    cascade = h.cascade(
        h.member(scripted("cheap", "Paris"), "cheap"), h.member(strong, "strong"), scorer=LogprobScorer()
    )
    completion = await cascade.complete(REQUEST)
    assert completion.model == "strong"
    assert completion.explanation is not None and completion.explanation.steps[0].reason == (
        "confidence unknown is below the threshold 0.7"
    )


# --- availability, deadlines, streaming -------------------------------------------------------------------


async def test_every_tier_cooling_down_waits_for_the_earliest_reset(h: Harness) -> None:
    t1 = Member(
        scripted("t1", CoolingDownError("cooling", retry_after=3.0), "Paris"), ModelProfile("t1", PRICE)
    )
    t2 = Member(scripted("t2", CoolingDownError("cooling", retry_after=8.0)), ModelProfile("t2", PRICE))
    completion = await h.cascade(t1, t2, scorer=by_model({"t1": 0.9})).complete(REQUEST)

    assert h.clock.sleeps == [3.0] and completion.model == "t1"
    assert completion.explanation is not None
    assert dict(completion.explanation.facts)["waited_for_cooldown"] == 3.0


async def test_a_passed_deadline_returns_the_best_answer_so_far(h: Harness) -> None:
    strong = scripted("strong", "never")

    async def slow(request: ChatRequest, completion: Completion) -> float:
        await h.clock.sleep(10)
        return 0.2

    cascade = h.cascade(
        h.member(scripted("cheap", "Lyon"), "cheap"), h.member(strong, "strong"), scorer=ValidatorScorer(slow)
    )
    completion = await cascade.complete(REQUEST.with_options(deadline=h.clock.monotonic() + 5))

    assert completion.text == "Lyon" and strong.requests == []
    assert completion.explanation is not None
    assert completion.explanation.reason == "the deadline passed; returning the best answer so far"


async def test_a_passed_deadline_with_no_answer_raises(h: Harness) -> None:
    cascade = h.cascade(h.member(scripted("cheap", "never"), "cheap"), scorer=by_model({}))
    with pytest.raises(DeadlineExceededError):
        await cascade.complete(REQUEST.with_options(deadline=h.clock.monotonic() - 1))


async def test_stream_yields_the_accepted_answer_in_one_piece(h: Harness) -> None:
    cascade = h.cascade(
        h.member(scripted("cheap", "Lyon"), "cheap"),
        h.member(scripted("strong", "Paris"), "strong"),
        scorer=by_model({"cheap": 0.1, "strong": 0.9}),
    )
    deltas = [d async for d in cascade.stream(REQUEST)]
    assert [d.text for d in deltas] == ["Paris"]
    assert deltas[0].finish_reason is not None and deltas[0].usage is not None
    assert deltas[0].explanation is not None and deltas[0].explanation.chosen == "strong"


# --- the embedded model, deciding on its real token probabilities --------------------------------------


@pytest.mark.local_model
async def test_local_model_cascade_decides_on_real_token_probabilities() -> None:
    h = Harness()
    local = LocalModel()
    try:
        request = ChatRequest.from_prompt("What is the capital of France?", max_tokens=16)
        prepared = LogprobScorer().prepare(request)
        # The first call after loading can differ in the last digits; measure once warm.
        await local.complete(prepared)
        warm = await local.complete(prepared)
        measured = token_probability(warm.logprobs or (), "mean")
        assert measured is not None and 0.0 < measured < 0.98

        for threshold, escalates in ((measured - 0.02, False), (measured + 0.02, True)):
            strong = ScriptedModel(["The capital of France is Paris."], name="strong")
            cascade = h.cascade(
                h.member(local, "local", price=FREE),
                h.member(strong, "strong"),
                scorer=LogprobScorer(),
                threshold=threshold,
            )
            completion = await cascade.complete(request)

            assert completion.explanation is not None
            first = completion.explanation.steps[0]
            assert first.model == "local" and first.confidence is not None
            assert first.confidence == pytest.approx(measured, abs=0.01)
            # The decision follows the score the cascade computed, and that is the one we expected.
            assert (len(strong.requests) == 1) is (first.confidence < threshold) is escalates
            assert completion.model == ("strong" if escalates else "local")
            if not escalates:
                assert completion.text == warm.text and completion.cost == 0.0
    finally:
        await local.aclose()


async def test_the_same_model_in_two_tiers_still_lets_the_final_tier_answer() -> None:
    from model_orchestrator.core.events import EventBus
    from model_orchestrator.core.profile import ModelProfile
    from model_orchestrator.strategies.cascade import CascadeModel
    from model_orchestrator.strategies.member import Member
    from model_orchestrator.strategies.scorers import ValidatorScorer
    from model_orchestrator.testing import FakeClock, ScriptedModel

    async def low(_request: object, _completion: object) -> float:
        return 0.1

    model = ScriptedModel(["first", "second"])
    tiers = [Member(model, ModelProfile("same")), Member(model, ModelProfile("same"))]
    cascade = CascadeModel(
        tiers, scorer=ValidatorScorer(low), threshold=0.5, clock=FakeClock(), bus=EventBus()
    )
    completion = await cascade.complete(ChatRequest.from_prompt("q"))
    assert completion.text == "second"
    assert completion.explanation is not None
    assert [s.outcome for s in completion.explanation.steps] == ["rejected", "ok"]
