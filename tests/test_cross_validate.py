"""CrossValidateModel (seed 000): two models in parallel; agreement returns, disagreement asks a third."""

from __future__ import annotations

import asyncio

import pytest

from model_orchestrator.core.errors import AllModelsFailedError, ServerError
from model_orchestrator.core.events import EventBus, FallbackTriggered, RecordingSink
from model_orchestrator.core.profile import ModelProfile
from model_orchestrator.core.request import ChatRequest
from model_orchestrator.core.response import Completion
from model_orchestrator.core.usage import Usage
from model_orchestrator.strategies.cross_validate import Answer, CrossValidateModel, judge
from model_orchestrator.strategies.extractors import number
from model_orchestrator.strategies.member import Member
from model_orchestrator.testing import FakeClock, FunctionModel, ScriptedModel

QUESTION = ChatRequest.from_prompt("What is the capital of Australia?", request_id="q-1")


def scripted(name: str, *answers: str | BaseException | Completion) -> Member:
    return Member(ScriptedModel(answers, name=name), ModelProfile(name))


def requests_of(member: Member) -> list[ChatRequest]:
    assert isinstance(member.model, ScriptedModel)
    return member.model.requests


def validator(
    first: Member, second: Member, tiebreaker: Member, **options: object
) -> tuple[CrossValidateModel, RecordingSink]:
    bus, sink = EventBus(), RecordingSink()
    bus.subscribe(sink)
    model = CrossValidateModel(first, second, tiebreaker, clock=FakeClock(), bus=bus, **options)  # type: ignore[arg-type]
    return model, sink


# --- the pure judgement --------------------------------------------------------------------------------


def answer(name: str, extracted: str | None) -> Answer:
    return Answer(scripted(name), Completion(extracted or "?", name, "p", name, Usage()), extracted)


@pytest.mark.parametrize(
    ("a", "b", "tie", "chosen", "confidence", "agreed"),
    [
        ("paris", "paris", None, 0, 1.0, True),
        ("paris", "lyon", "lyon", 2, 2 / 3, False),
        ("paris", "lyon", "paris", 2, 2 / 3, False),
        ("paris", "lyon", "nice", 2, 1 / 3, False),
        ("paris", "lyon", None, 0, 0.5, False),
        (None, None, "paris", 2, 1 / 3, False),  # unreadable answers never agree
    ],
)
def test_judge(
    a: str | None, b: str | None, tie: str | None, chosen: int, confidence: float, agreed: bool
) -> None:
    tiebreak = answer("t", tie) if tie is not None else None

    verdict = judge([answer("a", a), answer("b", b)], tiebreak)

    assert (verdict.chosen, verdict.agreed) == (chosen, agreed)
    assert verdict.confidence == pytest.approx(confidence)


# --- the strategy --------------------------------------------------------------------------------------


async def test_agreement_returns_without_asking_the_tiebreaker() -> None:
    tiebreaker = scripted("judge")
    model, sink = validator(scripted("a", "Canberra."), scripted("b", "canberra"), tiebreaker)

    completion = await model.complete(QUESTION)

    assert completion.text == "Canberra." and completion.model == "a"
    explanation = completion.explanation
    assert explanation is not None and explanation.strategy == "cross-validate"
    assert (explanation.confidence, explanation.confidence_source) == (1.0, "agreement")
    facts = dict(explanation.facts)
    assert facts["agreed"] is True and facts["tiebreaker_used"] is False
    assert facts["answers"] == {"a": "canberra", "b": "canberra"}
    assert requests_of(tiebreaker) == [] and sink.events == []


async def test_disagreement_asks_the_tiebreaker_with_both_answers() -> None:
    costs = {"a": 0.01, "b": 0.02, "judge": 0.03}

    def answered(name: str, text: str) -> Completion:
        return Completion(text, name, "p", name, Usage(10, 2), cost=costs[name])

    tiebreaker = scripted("judge", answered("judge", "Canberra"))
    model, sink = validator(
        scripted("a", answered("a", "Sydney")), scripted("b", answered("b", "Canberra")), tiebreaker
    )

    completion = await model.complete(QUESTION)

    prompt = requests_of(tiebreaker)[0].messages[-1].text
    assert "capital of Australia" in prompt
    assert "Model A says:\nSydney" in prompt and "Model B says:\nCanberra" in prompt
    assert "Which is correct?" in prompt
    assert requests_of(tiebreaker)[0].request_id == "q-1"
    assert completion.text == "Canberra" and completion.model == "judge"
    assert completion.cost == pytest.approx(0.06) and completion.usage == Usage(30, 6)
    explanation = completion.explanation
    assert explanation is not None
    assert explanation.confidence == pytest.approx(2 / 3)
    assert explanation.reason == "answers disagreed; the tiebreaker sided with b"
    assert [(s.model, s.outcome) for s in explanation.steps] == [
        ("a", "rejected"),
        ("b", "ok"),
        ("judge", "ok"),
    ]
    [moved] = sink.of_type(FallbackTriggered)
    assert isinstance(moved, FallbackTriggered)
    assert (moved.to_model, moved.reason) == ("judge", "the two answers disagree")


async def test_a_tiebreaker_siding_with_neither_gets_a_third() -> None:
    model, _ = validator(
        scripted("a", "12"), scripted("b", "The answer is 13"), scripted("t", "It is 14."), extractor=number()
    )

    completion = await model.complete(QUESTION)

    assert completion.text == "It is 14."
    assert completion.explanation is not None
    assert completion.explanation.confidence == pytest.approx(1 / 3)
    assert dict(completion.explanation.facts)["answers"] == {"a": "12", "b": "13", "t": "14"}


async def test_a_failing_tiebreaker_keeps_the_first_answer_at_half_confidence() -> None:
    model, _ = validator(
        scripted("a", "Sydney"), scripted("b", "Canberra"), scripted("t", ServerError("down"))
    )

    completion = await model.complete(QUESTION)

    assert completion.text == "Sydney"
    explanation = completion.explanation
    assert explanation is not None and explanation.confidence == 0.5
    assert [(s.model, s.outcome) for s in explanation.steps][-1] == ("t", "error")


async def test_the_tiebreaker_stands_in_for_a_failed_member() -> None:
    tiebreaker = scripted("t", "Canberra")
    model, _ = validator(scripted("a", ServerError("down")), scripted("b", "canberra!"), tiebreaker)

    completion = await model.complete(QUESTION)

    assert requests_of(tiebreaker)[0] is QUESTION  # asked the question itself, not to judge
    explanation = completion.explanation
    assert explanation is not None
    assert (completion.text, explanation.confidence) == ("canberra!", 1.0)
    assert [(s.model, s.outcome) for s in explanation.steps] == [("b", "ok"), ("t", "ok"), ("a", "error")]


async def test_an_answer_nobody_could_check_has_no_confidence() -> None:
    model, _ = validator(
        scripted("a", "Canberra"), scripted("b", ServerError("x")), scripted("t", ServerError("y"))
    )

    completion = await model.complete(QUESTION)

    explanation = completion.explanation
    assert explanation is not None
    assert (completion.text, explanation.confidence, explanation.confidence_source) == (
        "Canberra",
        None,
        None,
    )
    assert "unvalidated" in (explanation.reason or "")


async def test_both_failing_raises_with_both_errors_and_skips_the_tiebreaker() -> None:
    tiebreaker = scripted("t")
    model, _ = validator(
        scripted("a", ServerError("a down")), scripted("b", ServerError("b down")), tiebreaker
    )

    with pytest.raises(AllModelsFailedError) as caught:
        await model.complete(QUESTION)

    assert [e.message for e in caught.value.errors] == ["a down", "b down"]
    assert requests_of(tiebreaker) == []


async def test_the_pair_runs_concurrently_and_streams_one_delta() -> None:
    b_started = asyncio.Event()

    async def first(request: ChatRequest) -> str:
        # Would deadlock (and time out) if the second model were only called after the first.
        await asyncio.wait_for(b_started.wait(), timeout=2)
        return "Canberra"

    async def second(request: ChatRequest) -> str:
        b_started.set()
        return "Canberra"

    model, _ = validator(
        Member(FunctionModel(first, name="a"), ModelProfile("a")),
        Member(FunctionModel(second, name="b"), ModelProfile("b")),
        scripted("t"),
    )

    deltas = [d async for d in model.stream(QUESTION)]

    assert [d.text for d in deltas] == ["Canberra"]
    assert deltas[0].explanation is not None and deltas[0].usage is not None
