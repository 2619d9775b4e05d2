"""Aggregators as pure decisions: votes, best-of by confidence, synthesis; no network, no clock."""

from __future__ import annotations

import itertools
import math
from collections import Counter

import pytest

from model_orchestrator.core.errors import ConfigError, ServerError
from model_orchestrator.core.profile import ModelProfile
from model_orchestrator.core.request import ChatRequest
from model_orchestrator.core.response import Completion, TokenLogprob
from model_orchestrator.core.usage import Usage
from model_orchestrator.strategies.aggregators import (
    BestAggregator,
    Candidate,
    SynthesizeAggregator,
    VoteAggregator,
    tally,
)
from model_orchestrator.strategies.extractors import (
    Extractor,
    choice_letter,
    json_field,
    number,
    regex,
    short_text,
)
from model_orchestrator.strategies.member import Member
from model_orchestrator.strategies.scorers import Score
from model_orchestrator.testing import FunctionModel, ScriptedModel

QUESTION = ChatRequest.from_prompt("What is the capital of Australia?")


def member(name: str) -> Member:
    return Member(ScriptedModel([], name=name), ModelProfile(name))


def candidate(name: str, text: str, *, probability: float | None = None, cost: float = 0.001) -> Candidate:
    logprobs = None if probability is None else (TokenLogprob("x", math.log(probability)),)
    completion = Completion(text, name, "p", name, Usage(10, 5), cost=cost, logprobs=logprobs)
    return Candidate(member(name), completion)


def candidates(*texts: str) -> list[Candidate]:
    return [candidate(f"m{i}", text) for i, text in enumerate(texts, 1)]


# --- tally: exhaustive over small electorates -------------------------------------------------------


@pytest.mark.parametrize("size", [1, 2, 3, 4])
def test_tally_invariants_hold_for_every_small_vote(size: int) -> None:
    for answers in itertools.product(["A", "B", None], repeat=size):
        counted = tally(answers)
        counts = Counter(a for a in answers if a is not None)
        assert sum(n for _, n in counted.votes) == size - len(counted.abstentions)
        assert counted.abstentions == tuple(i for i, a in enumerate(answers) if a is None)
        if not counts:
            assert (counted.winner, counted.agreement, counted.consensus) == (None, 0.0, False)
            continue
        top = max(counts.values())
        first_top = next(a for a in answers if a is not None and counts[a] == top)
        assert counted.winner == first_top
        assert counted.agreement == pytest.approx(top / size)
        assert counted.consensus == (top * 2 > size)
        assert set(counted.tied) == {a for a in counts if counts[a] == top}


def test_tally_breaks_ties_by_summed_confidence_then_order() -> None:
    answers = ["A", "B", "B", "A", None]

    assert tally(answers).winner == "A"
    assert tally(answers, tie_break="confidence", confidences=[0.2, 0.5, 0.4, 0.3, 0.9]).winner == "B"
    # Unknown confidences count as nothing; equal sums fall back to order.
    assert tally(answers, tie_break="confidence", confidences=[None, None, None, None, None]).winner == "A"


def test_tally_consensus_needs_a_strict_majority_of_answers_that_came() -> None:
    assert tally(["A", "A", None]).consensus is True  # 2 of 3
    assert tally(["A", "A", None, None]).consensus is False  # 2 of 4: abstentions count
    assert tally(["A", "B"]).consensus is False


# --- vote --------------------------------------------------------------------------------------------

EACH_EXTRACTOR: list[tuple[Extractor, tuple[str, str, str], str]] = [
    (choice_letter(), ("I think (B).", "The answer is C.", "**C** - Canberra"), "C"),
    (number(), ("roughly 1,250", "It is 1200.0", "About $1,200"), "1200"),
    (short_text(), ("Sydney", "Canberra.", "the canberra"), "canberra"),
    (
        json_field("answer"),
        ('{"answer": "x"}', '```json\n{"answer": "y"}\n```', 'Here: {"answer": "y"}'),
        "y",
    ),
    (regex(r"FINAL: (\w+)"), ("FINAL: no", "draft FINAL: yes", "FINAL: yes"), "yes"),
]


@pytest.mark.parametrize(("extractor", "texts", "winner"), EACH_EXTRACTOR)
async def test_vote_picks_the_majority_with_each_extractor(
    extractor: Extractor, texts: tuple[str, str, str], winner: str
) -> None:
    decision = await VoteAggregator(extractor).aggregate(QUESTION, candidates(*texts))

    facts = dict(decision.facts)
    votes = facts["votes"]
    assert isinstance(votes, dict) and votes[winner] == 2 and sum(votes.values()) == 3
    assert decision.chosen == 1  # the first member that voted for the winner
    assert decision.text == texts[1]  # its full text, not the extracted answer
    assert decision.confidence == pytest.approx(2 / 3)
    assert decision.confidence_source == "agreement"
    assert facts["consensus"] is True
    assert [v.outcome for v in decision.verdicts] == ["rejected", "ok", "ok"]


async def test_vote_reports_abstentions_and_plurality_without_consensus() -> None:
    decision = await VoteAggregator(choice_letter()).aggregate(
        QUESTION, candidates("Canberra", "The answer is B", "It's (A)", "Answer: B", "no idea")
    )

    facts = dict(decision.facts)
    assert facts["votes"] == {"B": 2, "A": 1}
    assert facts["abstentions"] == ["m1", "m5"]
    assert facts["consensus"] is False  # 2 of 5 answers that came
    assert decision.confidence == pytest.approx(2 / 5)
    assert "2 abstained" in decision.reason and "no majority" in decision.reason
    assert decision.verdicts[0].reason.startswith("abstained")
    assert decision.verdicts[2].reason.startswith("outvoted")


async def test_vote_tie_is_broken_by_confidence_when_asked() -> None:
    tied = [
        candidate("m1", "A", probability=0.3),
        candidate("m2", "B", probability=0.9),
    ]
    by_order = await VoteAggregator(choice_letter()).aggregate(QUESTION, tied)
    aggregator = VoteAggregator(choice_letter(), tie_break="confidence")
    by_confidence = await aggregator.aggregate(QUESTION, tied)

    assert by_order.text == "A" and "member order" in by_order.reason
    assert by_confidence.text == "B" and "confidence" in by_confidence.reason
    assert dict(by_confidence.facts)["tie"] == ["A", "B"]
    assert aggregator.prepare(QUESTION).logprobs is True
    assert VoteAggregator(number()).prepare(QUESTION) is QUESTION
    with pytest.raises(ConfigError):
        VoteAggregator(number(), tie_break="loudest")  # type: ignore[arg-type]


async def test_vote_with_every_answer_unreadable_returns_the_first_with_zero_confidence() -> None:
    decision = await VoteAggregator(number()).aggregate(QUESTION, candidates("no", "idea"))

    assert (decision.text, decision.chosen, decision.confidence) == ("no", 0, 0.0)
    assert dict(decision.facts)["votes"] == {}
    assert "no answer could be read" in decision.reason


# --- best --------------------------------------------------------------------------------------------


async def test_best_without_a_scorer_uses_token_probabilities_and_asks_for_them() -> None:
    aggregator = BestAggregator()
    offered = [
        candidate("m1", "Sydney", probability=0.4),
        candidate("m2", "Canberra", probability=0.8),
        candidate("m3", "Perth"),
    ]

    decision = await aggregator.aggregate(QUESTION, offered)

    assert aggregator.prepare(QUESTION).logprobs is True
    assert (decision.text, decision.chosen) == ("Canberra", 1)
    assert decision.confidence == pytest.approx(0.8)
    assert decision.confidence_source == "logprobs:mean"
    assert dict(decision.facts)["scores"] == {"m1": 0.4, "m2": 0.8, "m3": None}
    assert [v.outcome for v in decision.verdicts] == ["rejected", "ok", "rejected"]


class _TableScorer:
    """A scorer with the ``scorers.Scorer`` shape: fixed confidences by member, failures on demand."""

    def __init__(self, table: dict[str, float | None], *, failing: str | None = None) -> None:
        self.table = table
        self.failing = failing
        self.sample = Completion("sample", "judge", "p", "judge", Usage(3, 1), cost=0.5)

    def prepare(self, request: ChatRequest) -> ChatRequest:
        return request

    async def score(self, request: ChatRequest, completion: Completion, member: Member) -> Score:
        if member.name == self.failing:
            raise ServerError("judge down")
        return Score(self.table[member.name], "judge", text=completion.text.upper(), samples=(self.sample,))


async def test_best_uses_a_given_scorer_its_rewritten_text_and_counts_its_samples() -> None:
    scorer = _TableScorer({"m1": 0.9, "m2": 0.9, "m3": 0.95}, failing="m3")

    decision = await BestAggregator(scorer).aggregate(QUESTION, candidates("a", "b", "c"))

    assert (decision.chosen, decision.text) == (0, "A")  # tie at 0.9: earlier member; scorer's text
    assert decision.confidence_source == "judge"
    assert decision.verdicts[2].reason.startswith("scorer failed: ServerError")
    assert len(decision.extra) == 2  # the scorer's samples for m1 and m2 count toward the cost


async def test_best_with_nothing_scored_returns_the_first_answer_without_confidence() -> None:
    decision = await BestAggregator().aggregate(QUESTION, candidates("x", "y"))

    assert (decision.text, decision.confidence, decision.confidence_source) == ("x", None, None)
    assert "no answer could be scored" in decision.reason


# --- synthesize -------------------------------------------------------------------------------------


async def test_synthesize_asks_the_chosen_model_with_every_candidate() -> None:
    seen: list[ChatRequest] = []

    def merge(request: ChatRequest) -> str:
        seen.append(request)
        return "Canberra (both agree it is the capital)"

    writer = Member(FunctionModel(merge, name="writer"), ModelProfile("writer"))
    request = QUESTION.with_options(max_tokens=40, request_id="r-1")

    decision = await SynthesizeAggregator(writer).aggregate(
        request, candidates("Canberra", "It is Canberra.")
    )

    assert decision.text.startswith("Canberra (both")
    assert decision.chosen is None and decision.own_member is writer and decision.own is not None
    assert decision.own_step is not None and decision.own_step.outcome == "ok"
    prompt = seen[0].messages[-1].text
    assert "capital of Australia" in prompt and "[1] m1:\nCanberra" in prompt and "[2] m2:" in prompt
    assert (seen[0].max_tokens, seen[0].request_id) == (40, "r-1")


async def test_synthesize_skips_the_call_for_one_answer_and_degrades_when_the_writer_fails() -> None:
    broken = Member(ScriptedModel([ServerError("down")], name="writer"), ModelProfile("writer"))
    aggregator = SynthesizeAggregator(broken, instructions="Merge.")

    single = await aggregator.aggregate(QUESTION, candidates("only"))
    failed = await aggregator.aggregate(QUESTION, candidates("first", "second"))

    assert (single.text, single.chosen, single.own_step) == ("only", 0, None)
    assert (failed.text, failed.chosen, failed.own) == ("first", 0, None)
    assert failed.own_step is not None and failed.own_step.outcome == "error"
    assert "writer failed (ServerError)" in failed.reason
