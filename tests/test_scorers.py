"""Scorers: parsing self-reported confidence (exhaustively), token probabilities, agreement, validators."""

from __future__ import annotations

import math

import pytest

from model_orchestrator.core.errors import BadRequestError, ServerError
from model_orchestrator.core.messages import Message, Role
from model_orchestrator.core.pricing import FREE, Price
from model_orchestrator.core.profile import ModelProfile
from model_orchestrator.core.request import ChatRequest, ResponseFormat
from model_orchestrator.core.request_scope import RequestScope, request_scope
from model_orchestrator.core.response import Completion, TokenLogprob
from model_orchestrator.core.usage import Usage
from model_orchestrator.strategies.member import Member
from model_orchestrator.strategies.scorers import (
    JSON_INSTRUCTION,
    LINE_INSTRUCTION,
    AgreementScorer,
    LogprobScorer,
    SelfReportedScorer,
    ValidatorScorer,
    agreement,
    confidence_value,
    normalise,
    parse_self_report,
    token_probability,
    with_instruction,
)
from model_orchestrator.testing import FunctionModel, ScriptedModel

REQUEST = ChatRequest.from_prompt("What is the capital of France?", system="Be brief.")


def answer(text: str, logprobs: tuple[TokenLogprob, ...] | None = None) -> Completion:
    return Completion(text, "m", "p", "m@p", Usage(10, 5), logprobs=logprobs)


def member(model: object = None, price: Price | None = None) -> Member:
    inner = model if model is not None else ScriptedModel([])
    return Member(inner, ModelProfile(name="m", price=price))  # type: ignore[arg-type]


# --- self-reported confidence: the seed's regexes and the wider forms --------------------------------


@pytest.mark.parametrize(
    ("text", "confidence"),
    [
        ("Paris.\nConfidence: 85%", 0.85),
        ("Paris.\nconfidence: 85", 0.85),
        ("Paris.\nConfidence 85%", 0.85),
        ("Paris.\nConfidence:85", 0.85),
        ("Paris (confidence: 0.85)", 0.85),
        ("Paris (Confidence: 85)", 0.85),
        ("Paris (confidence 85%)", 0.85),
        ("Paris.\nConfidence: 0.9", 0.9),
        ("Paris.\nConfidence: 1", 1.0),
        ("Paris.\nConfidence: 1%", 0.01),
        ("Paris.\nConfidence: 0", 0.0),
        ("Paris.\nConfidence: 72.5%", 0.725),
        ("Paris.\nConfidence level: 85%", 0.85),
        ("Paris.\nConfidence score: 0.7", 0.7),
        ("Paris.\nConfidence rating = 60", 0.6),
        ("Paris.\nMy confidence is 90%.", 0.9),
        ("Paris.\nConfidence is about 80 percent", 0.8),
        ("Paris.\n**Confidence:** 85%", 0.85),
        ("Paris.\n**Confidence**: 85%", 0.85),
        ("Paris.\n_Confidence_: 40%", 0.4),
        ("Paris.\nConfidence: 8/10", 0.8),
        ("Paris.\nConfidence: 8 / 10", 0.8),
        ("Paris.\nConfidence: 85/100", 0.85),
        ("Paris.\nConfidence: 7 out of 10", 0.7),
        ("Paris.\nCONFIDENCE: 95%", 0.95),
        ("I am 85% confident the answer is Paris.", 0.85),
        ("I'm 90% sure it is Paris.", 0.9),
        ("Paris, 75 percent certain.", 0.75),
        ("Paris, with 95% confidence.", 0.95),
        ("Paris.\nConfidence level: high", 0.9),
        ("Paris.\nConfidence level: medium", 0.6),
        ("Paris.\nConfidence: moderate", 0.6),
        ("Paris.\nConfidence: low", 0.3),
        ("Paris.\nConfidence: very high", 0.95),
        ("Paris.\nConfidence level: Very Low", 0.1),
        ("I have high confidence that it is Paris.", 0.9),
        ("Low confidence: maybe Paris.", 0.3),
        ("Paris.\nConfidence: 150%", 1.0),
    ],
)
def test_self_report_forms(text: str, confidence: float) -> None:
    assert parse_self_report(text).confidence == pytest.approx(confidence)


@pytest.mark.parametrize(
    "text",
    [
        "Paris.",
        "",
        "Confidence intervals are a statistics topic.",
        "Write `Confidence: N%` at the end.",
        "I am confident it is Paris.",
        "The answer is 85%.",
    ],
)
def test_no_self_report_is_none(text: str) -> None:
    report = parse_self_report(text)
    assert report.confidence is None and report.text is None


def test_the_last_statement_wins() -> None:
    text = "Earlier I was at confidence: 20%.\nParis.\nConfidence: 90%"
    assert parse_self_report(text).confidence == pytest.approx(0.9)


@pytest.mark.parametrize(
    ("text", "stripped"),
    [
        ("Paris.\nConfidence: 85%", "Paris."),
        ("Paris.\n\nConfidence: 85%\n\n", "Paris."),
        ("Paris.\n**Confidence:** 85%", "Paris."),
        ("Paris.\n(Confidence: 85%)", "Paris."),
        ("The answer is Paris. Confidence: 85%", "The answer is Paris."),
        ("The answer is Paris (confidence: 0.85)", "The answer is Paris"),
        ("Line one\nLine two\nConfidence level: high", "Line one\nLine two"),
        ("Paris - confidence: 80%", "Paris"),
    ],
)
def test_trailing_statement_is_stripped(text: str, stripped: str) -> None:
    assert parse_self_report(text).text == stripped


def test_statement_inside_the_answer_leaves_the_text_alone() -> None:
    report = parse_self_report("I am 85% confident it is Paris.\nIt has been the capital since 508.")
    assert report.confidence == pytest.approx(0.85)
    assert report.text is None


def test_answer_that_is_only_a_statement_keeps_its_text() -> None:
    assert parse_self_report("Confidence: 85%").text is None


@pytest.mark.parametrize(
    ("text", "confidence", "answer_text"),
    [
        ('{"answer": "Paris", "confidence": 85}', 0.85, "Paris"),
        ('{"answer": "Paris", "confidence": 0.85}', 0.85, "Paris"),
        ('{"answer": "Paris", "confidence": "85%"}', 0.85, "Paris"),
        ('{"answer": "Paris", "confidence": "high"}', 0.9, "Paris"),
        ('{"confidence": 70}', 0.7, None),
        ('```json\n{"answer": "Paris", "confidence": 90}\n```', 0.9, "Paris"),
        ('```\n{"answer": "Paris", "confidence": 90}\n```', 0.9, "Paris"),
        ('Here you go: {"answer": "Paris", "confidence": 60} - hope it helps', 0.6, "Paris"),
        ('{"answer": {"city": "Paris"}, "confidence": 80}', 0.8, '{"city": "Paris"}'),
        ('{"answer": 4, "confidence": 100}', 1.0, "4"),
        ('{"answer": "Paris", "confidence": true}', None, "Paris"),
        ('{"answer": "Paris", "confidence": null}', None, "Paris"),
        ('{"answer": "Paris", "confidence": "unsure"}', None, "Paris"),
    ],
)
def test_json_self_report(text: str, confidence: float | None, answer_text: str | None) -> None:
    report = parse_self_report(text)
    assert report.confidence == (None if confidence is None else pytest.approx(confidence))
    assert report.text == answer_text


def test_json_without_confidence_falls_back_to_text_forms() -> None:
    report = parse_self_report('{"answer": "Paris"}\nConfidence: 70%')
    assert report.confidence == pytest.approx(0.7)


def test_broken_json_falls_back_to_text_forms() -> None:
    assert parse_self_report('{"answer": "Paris", "confidence": 9').confidence == pytest.approx(0.09)


@pytest.mark.parametrize(
    ("number", "scale", "expected"),
    [
        (0.5, None, 0.5),
        (1.0, None, 1.0),
        (50, None, 0.5),
        (50, "%", 0.5),
        (0.5, "%", 0.005),
        (7, "/10", 0.7),
        (7, "out of 10", 0.7),
        (70, "/ 100", 0.7),
        (-5, None, 0.0),
        (250, None, 1.0),
    ],
)
def test_confidence_value_scales(number: float, scale: str | None, expected: float) -> None:
    assert confidence_value(number, scale) == pytest.approx(expected)


# --- preparing the request ----------------------------------------------------------------------------


def test_self_reported_prepare_appends_the_line_instruction_to_the_last_user_message() -> None:
    prepared = SelfReportedScorer().prepare(REQUEST)
    assert len(prepared.messages) == len(REQUEST.messages)
    assert prepared.messages[-1].text == "What is the capital of France?\n\n" + LINE_INSTRUCTION
    assert prepared.messages[0] == REQUEST.messages[0]
    assert REQUEST.messages[-1].text == "What is the capital of France?"  # the original is untouched


def test_self_reported_prepare_asks_json_requests_for_json() -> None:
    prepared = SelfReportedScorer().prepare(REQUEST.with_options(response_format=ResponseFormat.JSON))
    assert prepared.messages[-1].text.endswith(JSON_INSTRUCTION)


def test_instruction_goes_to_the_last_user_message_even_after_an_assistant_turn() -> None:
    request = ChatRequest(messages=(Message.user("q"), Message.assistant("prefill")))
    prepared = with_instruction(request, "say it")
    assert [m.text for m in prepared.messages] == ["q\n\nsay it", "prefill"]


def test_instruction_becomes_a_user_message_when_there_is_none() -> None:
    prepared = with_instruction(ChatRequest(messages=(Message.system("sys"),)), "say it")
    assert prepared.messages[-1].role is Role.USER and prepared.messages[-1].text == "say it"


def test_logprob_prepare_asks_for_logprobs_once() -> None:
    prepared = LogprobScorer().prepare(REQUEST)
    assert prepared.logprobs is True
    assert LogprobScorer().prepare(prepared) is prepared


@pytest.mark.parametrize("scorer", [AgreementScorer(), ValidatorScorer(lambda r, c: _const(1.0))])
def test_other_scorers_leave_the_request_alone(scorer: AgreementScorer | ValidatorScorer) -> None:
    assert scorer.prepare(REQUEST) is REQUEST


async def _const(value: float) -> float:
    return value


# --- scoring ------------------------------------------------------------------------------------------

LOGPROBS = (TokenLogprob("Par", math.log(0.9)), TokenLogprob("is", math.log(0.5)), TokenLogprob(".", 0.0))


def test_token_probability_mean_and_min() -> None:
    assert token_probability(LOGPROBS, "mean") == pytest.approx((0.9 + 0.5 + 1.0) / 3)
    assert token_probability(LOGPROBS, "min") == pytest.approx(0.5)
    assert token_probability((), "mean") is None


def test_positive_logprob_rounding_never_gives_a_probability_above_one() -> None:
    assert token_probability((TokenLogprob("a", 1e-9),), "min") == 1.0


async def test_logprob_scorer_scores_and_reports_its_source() -> None:
    score = await LogprobScorer("min").score(REQUEST, answer("Paris.", LOGPROBS), member())
    assert score.confidence == pytest.approx(0.5)
    assert score.source == "logprobs:min" and score.text is None


async def test_logprob_scorer_without_logprobs_is_none() -> None:
    score = await LogprobScorer().score(REQUEST, answer("Paris."), member())
    assert score.confidence is None and score.source == "logprobs:mean"


def test_logprob_scorer_rejects_unknown_modes() -> None:
    with pytest.raises(ValueError, match="mean"):
        LogprobScorer("median")  # type: ignore[arg-type]


async def test_self_reported_scorer_strips_the_statement() -> None:
    score = await SelfReportedScorer().score(REQUEST, answer("Paris.\nConfidence: 85%"), member())
    assert score.confidence == pytest.approx(0.85)
    assert (score.source, score.text) == ("self_reported", "Paris.")


def test_normalise_ignores_case_spacing_and_final_punctuation() -> None:
    assert normalise("  The   Capital is PARIS. ") == "the capital is paris"
    assert normalise(" .! ") is None


@pytest.mark.parametrize(
    ("samples", "expected"),
    [(["paris", "PARIS."], 1.0), (["paris", "Lyon"], 0.5), (["Lyon", "Nice"], 0.0), ([], None)],
)
def test_agreement_share(samples: list[str], expected: float | None) -> None:
    assert agreement("Paris", samples) == expected


def test_agreement_with_a_custom_extractor_and_an_unreadable_answer() -> None:
    first_word = lambda text: text.split()[0].strip(",.!").lower() if text.split() else None  # noqa: E731
    assert agreement("Paris, of course", ["paris!", "Lyon is it"], first_word) == 0.5
    assert agreement("", ["Paris"], first_word) is None


async def test_agreement_scorer_samples_the_same_member_at_a_temperature() -> None:
    model = ScriptedModel(["Paris", "Lyon", "paris."])
    score = await AgreementScorer(samples=3, temperature=0.9).score(REQUEST, answer("Paris"), member(model))
    assert score.confidence == pytest.approx(2 / 3)
    assert score.source == "agreement" and len(score.samples) == 3
    assert all(r.temperature == 0.9 for r in model.requests)


async def test_agreement_scorer_leaves_failed_samples_out() -> None:
    model = ScriptedModel(["Paris", ServerError("boom")])
    score = await AgreementScorer(samples=2).score(REQUEST, answer("Paris"), member(model))
    assert score.confidence == 1.0 and len(score.samples) == 1


async def test_agreement_scorer_with_every_sample_failing_is_none() -> None:
    model = ScriptedModel([ServerError("a"), ServerError("b")])
    score = await AgreementScorer(samples=2).score(REQUEST, answer("Paris"), member(model))
    assert score.confidence is None and score.samples == ()


async def test_agreement_scorer_does_not_hide_bugs() -> None:
    model = FunctionModel(lambda r: (_ for _ in ()).throw(KeyError("bug")))
    with pytest.raises(KeyError):
        await AgreementScorer(samples=1).score(REQUEST, answer("Paris"), member(model))


async def test_agreement_scorer_only_samples_what_the_budget_pays_for() -> None:
    model = ScriptedModel([], default="Paris")
    priced = member(model, price=Price(1_000.0, 1_000.0))
    estimate = priced.profile.estimate_cost(REQUEST.with_options(temperature=0.7))
    assert estimate is not None
    scope = RequestScope("r", max_cost=estimate * 2.5)
    with request_scope(scope):
        score = await AgreementScorer(samples=5).score(REQUEST, answer("Paris"), priced)
    assert len(model.requests) == 2 and score.confidence == 1.0
    with request_scope(RequestScope("r", max_cost=estimate / 2)):
        score = await AgreementScorer(samples=5).score(REQUEST, answer("Paris"), priced)
    assert len(model.requests) == 2 and score.confidence is None


async def test_agreement_scorer_never_samples_an_unpriced_member_under_a_cap() -> None:
    model = ScriptedModel([], default="Paris")
    with request_scope(RequestScope("r", max_cost=10.0)):
        score = await AgreementScorer().score(REQUEST, answer("Paris"), member(model))
    assert model.requests == [] and score.confidence is None


async def test_agreement_scorer_samples_a_free_member_even_with_the_budget_spent() -> None:
    model = ScriptedModel([], default="Paris")
    scope = RequestScope("r", max_cost=0.001)
    scope.record_cost("earlier", 0.002)
    with request_scope(scope):
        score = await AgreementScorer(samples=2).score(REQUEST, answer("Paris"), member(model, price=FREE))
    assert len(model.requests) == 2 and score.confidence == 1.0


def test_agreement_scorer_needs_a_sample() -> None:
    with pytest.raises(ValueError, match="at least one"):
        AgreementScorer(samples=0)


@pytest.mark.parametrize(("value", "expected"), [(0.4, 0.4), (1.7, 1.0), (-0.2, 0.0)])
async def test_validator_scorer_clamps(value: float, expected: float) -> None:
    seen: list[tuple[ChatRequest, Completion]] = []

    async def validator(request: ChatRequest, completion: Completion) -> float:
        seen.append((request, completion))
        return value

    score = await ValidatorScorer(validator, source="tests").score(REQUEST, answer("Paris"), member())
    assert (score.confidence, score.source) == (expected, "tests")
    assert seen[0][1].text == "Paris"


async def test_validator_scorer_turns_a_failing_validator_into_no_confidence() -> None:
    async def validator(request: ChatRequest, completion: Completion) -> float:
        raise BadRequestError("judge refused")

    score = await ValidatorScorer(validator).score(REQUEST, answer("Paris"), member())
    assert score.confidence is None and score.source == "validator"
