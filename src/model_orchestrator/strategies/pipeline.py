"""``PipelineModel``: named stages run in order (seed 001's plan -> code -> review), each its own member.

Owns what each stage is shown (the original request plus the earlier stages' outputs, passed in full,
summarized, as key points, or not at all), reading a review stage's verdict, and the bounded rework loop a
rejecting review starts. It does not choose the stages' models (config does) and does not retry failures
(a stage's model may be a resilient deployment or another strategy).
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, replace
from typing import Literal

from model_orchestrator.core.clock import Clock
from model_orchestrator.core.errors import CapabilityNotSupportedError, ConfigError, OrchestratorError
from model_orchestrator.core.events import EventBus
from model_orchestrator.core.explanation import Explanation, StepRecord
from model_orchestrator.core.messages import Message, Role, TextPart
from model_orchestrator.core.request import ChatRequest, ResponseFormat
from model_orchestrator.core.response import Completion, StreamDelta
from model_orchestrator.strategies._prompts import auxiliary_request, last_user_text
from model_orchestrator.strategies.capabilities import capability_skip, refuse_capabilities
from model_orchestrator.strategies.member import Member, one_delta, step_failed, step_ok, strategy_completion

ContextMode = Literal["full", "summarize", "extract", "none"]
CONTEXT_MODES: tuple[ContextMode, ...] = ("full", "summarize", "extract", "none")

REVIEW_FORMAT = (
    "End your review with a JSON object on its own line: "
    '{"approved": true or false, "issues": ["..."]}, listing what must change (an empty list when approved).'
)
CONDENSE_INSTRUCTIONS: dict[str, str] = {
    "summarize": (
        "Summarize the work below in a few sentences for the next step of a pipeline. Keep every decision, "
        "name, number and requirement that step needs; drop everything else."
    ),
    "extract": (
        "List the key points of the work below that the next step of a pipeline needs: one '- ' line per "
        "point, at most 10 points, no preamble."
    ),
}
_CONDENSED_HEADING = {
    "summarize": "Summary of the previous stages",
    "extract": "Key points of the previous stages",
}
_VERDICT_LINE = re.compile(
    r"^[\s>*#_`-]*(?:(?:final\s+)?verdict\s*[:=-]\s*)?[*_`]*"
    r"(approved|changes[ _-]requested|not[ _-]approved|rejected)\b",
    re.IGNORECASE | re.MULTILINE,
)
_BULLET = re.compile(r"^\s*(?:[-*\u2022]|\d+[.)])\s+(.+?)\s*$", re.MULTILINE)
# The verdict object sits at the end of a review; scanning back from there stays cheap on long reviews.
_MAX_VERDICT_CANDIDATES = 64


@dataclass(frozen=True, slots=True)
class Stage:
    """One step of a pipeline: its member, its system prompt, and what it sees of the earlier stages.

    ``context``: ``full`` (earlier outputs verbatim), ``summarize`` (a short summary of them), ``extract``
    (their key points as a bullet list) or ``none`` (the original request only). A review stage
    (``is_review``) judges the stage right before it and may send it back for rework.
    """

    name: str
    member: Member
    instructions: str
    context: ContextMode = "full"
    is_review: bool = False

    def __post_init__(self) -> None:
        if self.context not in CONTEXT_MODES:
            raise ConfigError(
                f"stage {self.name!r}: unknown context mode {self.context!r}; "
                f"expected one of: {', '.join(CONTEXT_MODES)}"
            )


@dataclass(frozen=True, slots=True)
class Verdict:
    """A review's decision. ``source``: ``json``, ``text`` (an APPROVED / CHANGES REQUESTED line) or
    ``unreadable`` (neither; counted as not approved, and the whole review becomes the feedback)."""

    approved: bool
    issues: tuple[str, ...]
    source: str


def parse_verdict(text: str) -> Verdict:
    """Reads a review: the last ``{"approved": bool, "issues": [...]}`` object, else the last verdict
    line (``APPROVED`` / ``CHANGES REQUESTED`` / ``NOT APPROVED`` / ``REJECTED``).

    Praise alone ("looks good") approves nothing: it is ``unreadable``.
    """
    found = _json_verdict(text)
    if found is not None:
        return found
    lines = list(_VERDICT_LINE.finditer(text))
    if not lines:
        return Verdict(False, (), "unreadable")
    last = lines[-1]
    if last.group(1).lower() == "approved":
        return Verdict(True, (), "text")
    after = _BULLET.findall(text, last.end())
    return Verdict(False, tuple(after or _BULLET.findall(text)), "text")


def _json_verdict(text: str) -> Verdict | None:
    decoder = json.JSONDecoder()
    starts = [m.start() for m in re.finditer(r"\{", text)][-_MAX_VERDICT_CANDIDATES:]
    for start in reversed(starts):
        try:
            value, _ = decoder.raw_decode(text, start)
        except ValueError:
            continue
        if isinstance(value, dict) and isinstance(value.get("approved"), bool):
            raw = value.get("issues")
            issues = [raw] if isinstance(raw, str) else raw if isinstance(raw, list) else []
            return Verdict(value["approved"], tuple(s for i in issues if (s := str(i).strip())), "json")
    return None


class PipelineModel:
    """Runs its stages in order; the answer is the last non-review stage's (latest) output.

    A review that does not approve sends the stage before it back with the review's issues; the pair runs
    at most ``max_rounds`` times, then the pipeline goes on with the latest output (marked unapproved in
    the explanation). ``summarizer`` condenses earlier outputs for ``summarize``/``extract`` stages
    (default: the stage's own member); if it fails, that stage gets the full outputs instead.
    """

    def __init__(
        self,
        stages: Sequence[Stage],
        *,
        name: str = "pipeline",
        max_rounds: int = 2,
        summarizer: Member | None = None,
        clock: Clock,
        bus: EventBus | None = None,
    ) -> None:
        # ``bus`` is accepted so the composition root builds every strategy alike; the pipeline emits no
        # events of its own (each stage's calls are observed by its deployment).
        del bus
        _check_stages(name, stages)
        if max_rounds < 1:
            raise ConfigError(f"{name}: max_rounds must be at least 1, got {max_rounds}")
        self._stages = tuple(stages)
        self._name = name
        self._max_rounds = max_rounds
        self._summarizer = summarizer
        self._clock = clock
        self._final_index = max(i for i, s in enumerate(self._stages) if not s.is_review)

    @property
    def name(self) -> str:
        return self._name

    @property
    def stages(self) -> tuple[Stage, ...]:
        """The stages, in order."""
        return self._stages

    @property
    def final_index(self) -> int:
        """The index of the stage whose output is the answer (the last one that is not a review)."""
        return self._final_index

    async def complete(self, request: ChatRequest) -> Completion:
        started = self._clock.monotonic()
        self._check_capabilities(request)
        run = _PipelineRun(self, request)
        for index, stage in enumerate(self._stages):
            if stage.is_review:
                await run.review(index, self._max_rounds)
            else:
                await run.stage(index, round_=1)
        return replace(run.result(), latency=self._clock.monotonic() - started)

    async def stream(self, request: ChatRequest) -> AsyncIterator[StreamDelta]:
        """Runs the whole pipeline (later stages need earlier ones finished), then yields one delta."""
        async for delta in one_delta(await self.complete(request)):
            yield delta

    async def aclose(self) -> None:
        return None

    def stage_request(self, request: ChatRequest, index: int, messages: tuple[Message, ...]) -> ChatRequest:
        """The request for stage ``index``: only the final stage keeps the caller's format (JSON schema
        included) and logprobs."""
        if index == self._final_index:
            return request.with_options(messages=messages)
        return request.with_options(
            messages=messages,
            response_format=ResponseFormat.TEXT,
            json_schema=None,
            logprobs=False,
            top_logprobs=None,
        )

    def _check_capabilities(self, request: ChatRequest) -> None:
        """Refuse tools (a stage's answer is text for the next stage); images need every stage to read
        them, a JSON schema the final stage to honour it. Checked before any stage runs."""
        refuse_capabilities(
            request,
            self._name,
            frozenset({"tools"}),
            "each stage's text answer feeds the next, so a tool call would stop the pipeline halfway",
        )
        for index, stage in enumerate(self._stages):
            needs = request if index == self._final_index else request.with_options(json_schema=None)
            lacking = capability_skip(stage.member, needs)
            if lacking is not None:
                raise CapabilityNotSupportedError(
                    f"pipeline {self._name!r}: stage {stage.name!r} ({stage.member.name}) {lacking.message}",
                    capability=lacking.capability,
                )

    def condenser(self, stage: Stage) -> Member:
        """Who summarizes or extracts the earlier outputs for ``stage``."""
        return self._summarizer or stage.member


def _check_stages(name: str, stages: Sequence[Stage]) -> None:
    if not any(not s.is_review for s in stages):
        raise ConfigError(f"{name}: a pipeline needs at least one stage that is not a review")
    names = [s.name for s in stages]
    if len(set(names)) != len(names):
        raise ConfigError(f"{name}: stage names must be unique, got {names}")
    for index, stage in enumerate(stages):
        if stage.is_review and (index == 0 or stages[index - 1].is_review):
            raise ConfigError(f"{name}: review stage {stage.name!r} must follow a stage that is not a review")


class _PipelineRun:
    """One request through a pipeline: the latest output of each stage, the calls made, the verdicts."""

    def __init__(self, pipeline: PipelineModel, request: ChatRequest) -> None:
        self.pipeline = pipeline
        self.stages = pipeline.stages
        self.request = request
        self.outputs: dict[str, str] = {}
        self.answered: list[Completion] = []
        self.steps: list[StepRecord] = []
        self.last_step: dict[str, int] = {}
        self.verdicts: list[dict[str, object]] = []
        self.rounds: dict[str, int] = {}
        self.condensed: dict[tuple[str, str], str] = {}
        self.final: tuple[Member, Completion] | None = None

    async def stage(self, index: int, *, round_: int, rework: str | None = None) -> Completion:
        """Runs stage ``index`` once and records its output."""
        stage = self.stages[index]
        context = await self._context(index)
        messages = _stage_messages(stage, self.request, [part for part in (context, rework) if part])
        try:
            completion = await stage.member.model.complete(
                self.pipeline.stage_request(self.request, index, messages)
            )
        except OrchestratorError as exc:
            exc.add_note(f"pipeline {self.pipeline.name!r}: stage {stage.name!r} (round {round_}) failed")
            raise
        self.answered.append(completion)
        self.outputs[stage.name] = completion.text
        self.last_step[stage.name] = len(self.steps)
        reason = f"stage {stage.name!r}, round {round_}, context {stage.context}"
        self.steps.append(step_ok(stage.member, completion, reason=reason, keep_text=True))
        if not stage.is_review:
            self.final = (stage.member, completion)
        return completion

    async def review(self, index: int, max_rounds: int) -> None:
        """Runs review ``index``; while it does not approve, reworks the stage before it (bounded)."""
        review, target = self.stages[index], self.stages[index - 1]
        for round_ in range(1, max_rounds + 1):
            completion = await self.stage(index, round_=round_)
            verdict = parse_verdict(completion.text)
            self.rounds[review.name] = round_
            self.verdicts.append(
                {
                    "stage": review.name,
                    "round": round_,
                    "approved": verdict.approved,
                    "issues": list(verdict.issues),
                    "source": verdict.source,
                }
            )
            if verdict.approved:
                return
            self._mark_rejected(target.name, review.name)
            if round_ == max_rounds:
                return
            rework = _rework_note(self.outputs[target.name], verdict, completion.text)
            await self.stage(index - 1, round_=round_ + 1, rework=rework)

    def _mark_rejected(self, stage: str, review: str) -> None:
        at = self.last_step[stage]
        step = self.steps[at]
        self.steps[at] = replace(
            step, outcome="rejected", reason=f"{step.reason}; {review!r} requested changes"
        )

    async def _context(self, index: int) -> str | None:
        stage = self.stages[index]
        previous = [(s.name, self.outputs[s.name]) for s in self.stages[:index] if s.name in self.outputs]
        if stage.context == "none" or not previous:
            return None
        full = "\n\n".join(f"## Output of the {name} stage\n{text}" for name, text in previous)
        if stage.context == "full":
            return full
        condensed = await self._condense(stage, full)
        return full if condensed is None else f"## {_CONDENSED_HEADING[stage.context]}\n{condensed}"

    async def _condense(self, stage: Stage, full: str) -> str | None:
        """The summary or key points of ``full`` (cached per run); None when the summarizer failed."""
        key = (stage.context, full)
        if key in self.condensed:
            return self.condensed[key]
        member = self.pipeline.condenser(stage)
        request = auxiliary_request(
            self.request,
            system=CONDENSE_INSTRUCTIONS[stage.context],
            user=f"## The task\n{last_user_text(self.request)}\n\n{full}",
        )
        try:
            completion = await member.model.complete(request)
        except OrchestratorError as exc:
            failed = step_failed(member, exc)
            fallback_note = (
                f"{stage.context} for {stage.name!r} failed ({failed.reason}); passed full outputs"
            )
            self.steps.append(replace(failed, reason=fallback_note))
            return None
        self.answered.append(completion)
        reason = f"{stage.context} of the earlier stages for {stage.name!r}"
        self.steps.append(step_ok(member, completion, reason=reason, keep_text=True))
        self.condensed[key] = completion.text.strip()
        return self.condensed[key]

    def result(self) -> Completion:
        assert self.final is not None  # the constructor guarantees a non-review stage
        member, completion = self.final
        approved = [bool(v["approved"]) for v in self._latest_verdicts()]
        explanation = Explanation(
            self.pipeline.name,
            tuple(self.steps),
            chosen=member.name,
            reason=self._reason(),
            facts=(
                ("outputs", dict(self.outputs)),
                ("verdicts", self.verdicts),
                ("rounds", dict(self.rounds)),
                ("approved", all(approved) if approved else None),
            ),
        )
        return strategy_completion(completion, member, self.answered, explanation)

    def _latest_verdicts(self) -> list[dict[str, object]]:
        latest = {str(v["stage"]): v for v in self.verdicts}
        return list(latest.values())

    def _reason(self) -> str:
        final = self.pipeline.stages[self.pipeline.final_index].name
        parts = []
        for verdict in self._latest_verdicts():
            state = "approved" if verdict["approved"] else "still requested changes"
            parts.append(f"review {verdict['stage']!r} {state} in round {verdict['round']}")
        parts.append(f"answer from stage {final!r}")
        return "; ".join(parts)


def _stage_messages(stage: Stage, request: ChatRequest, extras: list[str]) -> tuple[Message, ...]:
    """The stage's system prompt (plus the caller's), the caller's turns, and ``extras`` appended to the
    last user turn (a separate user turn when the conversation does not end with one)."""
    system = stage.instructions + (f"\n\n{REVIEW_FORMAT}" if stage.is_review else "")
    if request.system_text:
        system = f"{system}\n\n{request.system_text}"
    turns = [m for m in request.messages if m.role is not Role.SYSTEM]
    if extras:
        addition = "\n\n".join(extras)
        if turns and turns[-1].role is Role.USER:
            # Appended as a part, so the turn's images stay with it.
            turns[-1] = Message(Role.USER, (*turns[-1].parts, TextPart(f"\n\n{addition}")))
        else:
            turns.append(Message.user(addition))
    return (Message.system(system), *turns)


def _rework_note(previous: str, verdict: Verdict, review_text: str) -> str:
    feedback = "\n".join(f"- {issue}" for issue in verdict.issues) if verdict.issues else review_text.strip()
    return (
        f"## Your previous answer\n{previous}\n\n## The reviewer's issues\n{feedback}\n\n"
        "Revise your answer to fix these issues and reply with the complete revised answer."
    )
