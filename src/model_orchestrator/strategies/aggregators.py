"""Aggregators: how an ensemble turns several members' answers into one.

Owns the decision only: ``VoteAggregator`` (majority vote over extracted answers; ``tally`` is the pure
count), ``BestAggregator`` (highest confidence from a scorer, or the answers' own token probabilities) and
``SynthesizeAggregator`` (a chosen model merges the candidates; its call is part of the cost). Each
returns a ``Decision`` that says which answer won, how sure it is, where that confidence came from and what
it made of every candidate. Calling the members, and degrading when some fail, is ``ensemble``'s job.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

from model_orchestrator.core.errors import ConfigError, OrchestratorError
from model_orchestrator.core.explanation import StepRecord
from model_orchestrator.core.request import ChatRequest
from model_orchestrator.core.response import Completion
from model_orchestrator.strategies._prompts import auxiliary_request, task_text
from model_orchestrator.strategies.capabilities import refuse_capabilities
from model_orchestrator.strategies.extractors import Extractor, describe
from model_orchestrator.strategies.member import Member, step_failed, step_ok
from model_orchestrator.strategies.scorers import LogprobScorer, Score, Scorer, token_probability
from model_orchestrator.strategies.tool_calls import vote_key

TieBreak = Literal["first", "confidence"]

SYNTHESIZE_SYSTEM = (
    "You merge candidate answers from several assistants into one answer. Keep what they agree on, settle "
    "their disagreements on the merits, and answer in the form the question asks for."
)


@dataclass(frozen=True, slots=True)
class Candidate:
    """One member's answer, offered to an aggregator."""

    member: Member
    completion: Completion


@dataclass(frozen=True, slots=True)
class Verdict:
    """What an aggregator made of one candidate: ``ok`` (agrees with the result) or ``rejected``."""

    outcome: str
    reason: str
    answer: str | None = None
    confidence: float | None = None


@dataclass(frozen=True, slots=True)
class Decision:
    """An aggregator's result.

    ``chosen`` indexes the candidate whose answer is returned, or is None when the aggregator wrote its own
    (``own`` is then that call, made by ``own_member``, and ``own_step`` records it). ``verdicts`` line up
    with the candidates. ``extra`` lists any further calls whose cost counts (a scorer's samples).
    """

    text: str
    chosen: int | None
    verdicts: tuple[Verdict, ...]
    confidence: float | None
    confidence_source: str | None
    reason: str
    facts: tuple[tuple[str, object], ...] = ()
    own: Completion | None = None
    own_member: Member | None = None
    own_step: StepRecord | None = None
    extra: tuple[Completion, ...] = ()


class Aggregator(Protocol):
    """Turns the answers that came into one ``Decision``."""

    @property
    def kind(self) -> str:
        """``vote``, ``best``, ``synthesize`` or a custom name, for explanations."""
        ...

    def prepare(self, request: ChatRequest) -> ChatRequest:
        """The request to send to the members (e.g. asking for logprobs the aggregator will read)."""
        ...

    async def aggregate(self, request: ChatRequest, candidates: Sequence[Candidate]) -> Decision:
        """Decide among ``candidates`` (at least one), answers to the prepared ``request``."""
        ...


@dataclass(frozen=True, slots=True)
class Tally:
    """A counted vote. ``votes`` are in order of first appearance; ``tied`` lists the answers that shared
    the top count (more than one means a tie was broken); ``agreement`` is the winner's share of all
    answers that came, abstentions included; ``consensus`` means more than half of them."""

    winner: str | None
    votes: tuple[tuple[str, int], ...]
    abstentions: tuple[int, ...]
    tied: tuple[str, ...]
    agreement: float
    consensus: bool


def tally(
    answers: Sequence[str | None],
    *,
    tie_break: TieBreak = "first",
    confidences: Sequence[float | None] = (),
) -> Tally:
    """Count extracted ``answers`` (None: abstained). Ties go to the answer seen first, or with
    ``tie_break="confidence"`` to the one whose voters' summed ``confidences`` is highest (then first)."""
    counts = Counter(a for a in answers if a is not None)
    abstentions = tuple(i for i, a in enumerate(answers) if a is None)
    if not counts:
        return Tally(None, (), abstentions, (), 0.0, False)
    top = max(counts.values())
    tied = tuple(a for a in counts if counts[a] == top)
    winner = tied[0]
    if tie_break == "confidence" and len(tied) > 1:
        weight = {a: _summed(answers, confidences, a) for a in tied}
        winner = max(tied, key=lambda a: weight[a])
    return Tally(winner, tuple(counts.items()), abstentions, tied, top / len(answers), top * 2 > len(answers))


def _summed(answers: Sequence[str | None], confidences: Sequence[float | None], answer: str) -> float:
    pairs = zip(answers, confidences, strict=False)
    return sum(c for a, c in pairs if a == answer and c is not None)


def mean_token_probability(completion: Completion) -> float | None:
    """The mean per-token probability of an answer; None when it came without logprobs."""
    return token_probability(completion.logprobs or (), "mean")


class VoteAggregator:
    """Majority vote over the answers ``extractor`` reads from each text.

    The returned text is the full answer of the first member that voted for the winner. Confidence is the
    winner's share of the answers that came (source ``agreement``); ``consensus`` means a strict majority.
    Unreadable answers abstain but still count in the share. If every answer abstains, the first answer is
    returned with confidence 0. An answer that calls tools votes for its calls, by name and canonical
    arguments (``tool_calls.vote_key``: key order and spacing do not matter, nor the order of parallel
    calls); it never matches a text answer, so with mixed answers the plurality decides between calling and
    answering, and the winning answer is returned with its tool calls.
    """

    kind = "vote"

    def __init__(self, extractor: Extractor, *, tie_break: TieBreak = "first") -> None:
        if tie_break not in ("first", "confidence"):
            raise ConfigError(f"tie_break must be 'first' or 'confidence', not {tie_break!r}")
        self.extractor = extractor
        self.tie_break: TieBreak = tie_break

    def prepare(self, request: ChatRequest) -> ChatRequest:
        # Confidence tie-breaks read token probabilities, so ask for them.
        wants = self.tie_break == "confidence" and not request.logprobs
        return request.with_options(logprobs=True) if wants else request

    async def aggregate(self, request: ChatRequest, candidates: Sequence[Candidate]) -> Decision:
        return self.decide(candidates)

    def vote_of(self, completion: Completion) -> str | None:
        """What ``completion`` votes for: its tool calls when it made any, else what the extractor reads."""
        if completion.tool_calls:
            return vote_key(completion.tool_calls)
        return self.extractor(completion.text)

    def decide(self, candidates: Sequence[Candidate]) -> Decision:
        """The vote itself: pure, no I/O."""
        answers = [self.vote_of(c.completion) for c in candidates]
        confidences = [mean_token_probability(c.completion) for c in candidates]
        counted = tally(answers, tie_break=self.tie_break, confidences=confidences)
        facts = self._facts(counted, candidates)
        if counted.winner is None:
            verdicts = tuple(self._verdict(a, counted, len(candidates)) for a in answers)
            reason = f"no answer could be read ({describe(self.extractor)}); the first answer is returned"
            return Decision(candidates[0].completion.text, 0, verdicts, 0.0, "agreement", reason, facts)
        chosen = answers.index(counted.winner)
        verdicts = tuple(
            self._verdict(a, counted, len(candidates), confidence=c)
            for a, c in zip(answers, confidences, strict=True)
        )
        return Decision(
            candidates[chosen].completion.text,
            chosen,
            verdicts,
            counted.agreement,
            "agreement",
            self._reason(counted, len(candidates)),
            facts,
        )

    def _verdict(
        self, answer: str | None, counted: Tally, total: int, *, confidence: float | None = None
    ) -> Verdict:
        if answer is None:
            return Verdict("rejected", f"abstained: no {describe(self.extractor)} answer found")
        votes = dict(counted.votes)[answer]
        if answer == counted.winner:
            return Verdict("ok", f"voted {answer!r} (won {votes} of {total})", answer, confidence)
        return Verdict("rejected", f"outvoted: {answer!r} got {votes} of {total}", answer, confidence)

    def _reason(self, counted: Tally, total: int) -> str:
        votes = dict(counted.votes)[counted.winner or ""]
        how = "consensus" if counted.consensus else "plurality, no majority"
        reason = f"{counted.winner!r} won {votes} of {total} votes ({how})"
        if len(counted.tied) > 1:
            broken = "by answer confidence" if self.tie_break == "confidence" else "by member order"
            reason += f"; tie between {', '.join(map(repr, counted.tied))} broken {broken}"
        if counted.abstentions:
            reason += f"; {len(counted.abstentions)} abstained"
        return reason

    def _facts(self, counted: Tally, candidates: Sequence[Candidate]) -> tuple[tuple[str, object], ...]:
        return (
            ("extractor", describe(self.extractor)),
            ("votes", dict(counted.votes)),
            ("consensus", counted.consensus),
            ("agreement", counted.agreement),
            ("abstentions", [candidates[i].member.name for i in counted.abstentions]),
            ("tie", list(counted.tied) if len(counted.tied) > 1 else []),
        )


class BestAggregator:
    """The answer with the highest confidence; ties go to the earlier member.

    Confidence comes from ``scorer`` (a ``scorers.Scorer``: self-report, judge, agreement ...) or, without
    one, from each answer's mean token probability (logprobs are then asked for). A scorer that fails
    leaves that answer unscored; unscored answers rank last. If nothing could be scored, the first answer
    is returned with no confidence.
    """

    kind = "best"

    def __init__(self, scorer: Scorer | None = None) -> None:
        self.scorer: Scorer = scorer if scorer is not None else LogprobScorer("mean")

    def prepare(self, request: ChatRequest) -> ChatRequest:
        return self.scorer.prepare(request)

    async def aggregate(self, request: ChatRequest, candidates: Sequence[Candidate]) -> Decision:
        scores = await asyncio.gather(*(self._score(request, c) for c in candidates))
        return rank(candidates, scores)

    async def _score(self, request: ChatRequest, candidate: Candidate) -> Score | OrchestratorError:
        try:
            return await self.scorer.score(request, candidate.completion, candidate.member)
        except OrchestratorError as exc:
            return exc


def rank(candidates: Sequence[Candidate], scores: Sequence[Score | OrchestratorError]) -> Decision:
    """The pure choice of ``BestAggregator``: highest confidence wins, then member order."""
    values = [s.confidence if isinstance(s, Score) else None for s in scores]
    known = [(v, -i) for i, v in enumerate(values) if v is not None]
    chosen = -max(known)[1] if known else 0
    best = values[chosen]
    verdicts = tuple(_best_verdict(s, i == chosen, best) for i, s in enumerate(scores))
    extra = tuple(sample for s in scores if isinstance(s, Score) for sample in s.samples)
    score = scores[chosen]
    source = score.source if isinstance(score, Score) and best is not None else None
    text = score.text if isinstance(score, Score) and score.text is not None else None
    if best is None:
        reason = "no answer could be scored; the first answer is returned"
    else:
        reason = f"{candidates[chosen].member.name} had the highest confidence, {best:.3f} ({source})"
    facts = (("scores", {c.member.name: v for c, v in zip(candidates, values, strict=True)}),)
    return Decision(
        text or candidates[chosen].completion.text, chosen, verdicts, best, source, reason, facts, extra=extra
    )


def _best_verdict(score: Score | OrchestratorError, chosen: bool, best: float | None) -> Verdict:
    if isinstance(score, OrchestratorError):
        return Verdict("ok" if chosen else "rejected", f"scorer failed: {type(score).__name__}: {score}")
    shown = "unscored" if score.confidence is None else f"{score.confidence:.3f}"
    if chosen:
        return Verdict("ok", f"highest confidence: {shown} ({score.source})", confidence=score.confidence)
    best_text = "n/a" if best is None else f"{best:.3f}"
    reason = f"confidence {shown} ({score.source}) below {best_text}"
    return Verdict("rejected", reason, confidence=score.confidence)


class SynthesizeAggregator:
    """A chosen model reads every candidate and writes one merged answer (its cost counts).

    A single candidate is returned as it is (nothing to merge). If the synthesizer fails, the first answer
    is returned unmerged and the failure is recorded: the members' work is not thrown away.
    """

    kind = "synthesize"

    def __init__(self, model: Member, instructions: str | None = None) -> None:
        self.model = model
        self.instructions = instructions or SYNTHESIZE_SYSTEM

    def prepare(self, request: ChatRequest) -> ChatRequest:
        refuse_capabilities(
            request,
            "synthesize",
            frozenset({"tools", "vision"}),
            "the synthesizer merges the answers' text and sees neither tool calls nor images",
        )
        return request

    async def aggregate(self, request: ChatRequest, candidates: Sequence[Candidate]) -> Decision:
        facts: tuple[tuple[str, object], ...] = (("synthesizer", self.model.name),)
        if len(candidates) == 1:
            only = (Verdict("ok", "the only answer"),)
            return Decision(
                candidates[0].completion.text, 0, only, None, None, "one answer: nothing to merge"
            )
        try:
            merged = await self.model.model.complete(self.request(request, candidates))
        except OrchestratorError as exc:
            verdicts = tuple(
                Verdict("ok" if i == 0 else "rejected", "not merged") for i in range(len(candidates))
            )
            reason = f"synthesizer {self.model.name} failed ({type(exc).__name__}); first answer returned"
            step = step_failed(self.model, exc)
            return Decision(
                candidates[0].completion.text, 0, verdicts, None, None, reason, facts, own_step=step
            )
        reason = f"{self.model.name} merged {len(candidates)} answers"
        step = step_ok(self.model, merged, reason="synthesizer", keep_text=True)
        verdicts = tuple(Verdict("ok", "merged") for _ in candidates)
        return Decision(merged.text, None, verdicts, None, None, reason, facts, merged, self.model, step)

    def request(self, request: ChatRequest, candidates: Sequence[Candidate]) -> ChatRequest:
        """The synthesizer's request: the question, each candidate, and the merge instruction."""
        blocks = [f"[{i}] {c.member.name}:\n{c.completion.text.strip()}" for i, c in enumerate(candidates, 1)]
        user = (
            f"Question:\n{task_text(request)}\n\nCandidate answers:\n\n"
            + "\n\n".join(blocks)
            + "\n\nWrite the single best answer to the question. Reply with the answer only."
        )
        merged = auxiliary_request(request, system=self.instructions, user=user)
        return merged.with_options(
            max_tokens=request.max_tokens,
            response_format=request.response_format,
            json_schema=request.json_schema,  # the merged answer is the answer: it keeps the caller's schema
        )
