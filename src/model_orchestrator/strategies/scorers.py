"""Scorers: how sure is an answer? Cascades and confidence-gated fallbacks decide with them.

A ``Scorer`` may adjust the request before it is sent (``prepare``: ask for logprobs, append the
confidence instruction) and then scores the answer (``score``) as a confidence in [0, 1] with its
source, optionally rewriting the text (stripping a "Confidence: 85%" line). Implementations: token
log-probabilities, the model's self-report (parsed here, purely), agreement between extra samples, and
any validator. Scorers do not choose models or retry.
"""

from __future__ import annotations

import asyncio
import json
import math
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

from model_orchestrator.core.errors import OrchestratorError
from model_orchestrator.core.messages import Message, Role, TextPart
from model_orchestrator.core.request import ChatRequest, ResponseFormat
from model_orchestrator.core.response import Completion, TokenLogprob
from model_orchestrator.strategies.budget import remaining_budget
from model_orchestrator.strategies.capabilities import refuse_capabilities
from model_orchestrator.strategies.member import Member

Extractor = Callable[[str], str | None]
Validator = Callable[[ChatRequest, Completion], Awaitable[float]]

LINE_INSTRUCTION = (
    "After your answer, write one last line of the form `Confidence: N%`, where N (0-100) is how sure "
    "you are that your answer is correct."
)
JSON_INSTRUCTION = (
    'Respond only with a JSON object {"answer": ..., "confidence": N}, where N (0-100) is how sure you '
    "are that the answer is correct."
)


@dataclass(frozen=True, slots=True)
class Score:
    """A scorer's verdict on one answer.

    ``confidence`` is in [0, 1], None when it could not be measured (no logprobs, no self-report).
    ``text`` is the answer as the scorer rewrote it (None: unchanged). ``samples`` are extra completions
    the scorer obtained (agreement sampling), so strategies can account for their usage and cost.
    """

    confidence: float | None
    source: str
    text: str | None = None
    samples: tuple[Completion, ...] = ()


class Scorer(Protocol):
    """Prepares the request for scoring and scores each answer."""

    def prepare(self, request: ChatRequest) -> ChatRequest:
        """The request to send to members (e.g. with logprobs asked for)."""
        ...

    async def score(self, request: ChatRequest, completion: Completion, member: Member) -> Score:
        """Score ``completion``, the answer ``member`` gave to the prepared ``request``."""
        ...


def token_probability(logprobs: Sequence[TokenLogprob], mode: Literal["mean", "min"]) -> float | None:
    """Mean or minimum per-token probability (exp of each logprob); None without tokens."""
    if not logprobs:
        return None
    probabilities = [math.exp(min(lp.logprob, 0.0)) for lp in logprobs]
    return min(probabilities) if mode == "min" else sum(probabilities) / len(probabilities)


class LogprobScorer:
    """Confidence from the answer's own token probabilities (mean or weakest token).

    Needs an adapter that returns logprobs (the local model does; many APIs do when asked). Without
    them the confidence is None, which a threshold treats as not confident enough.
    """

    def __init__(self, mode: Literal["mean", "min"] = "mean") -> None:
        if mode not in ("mean", "min"):
            raise ValueError(f"LogprobScorer mode must be 'mean' or 'min', not {mode!r}")
        self.mode = mode

    def prepare(self, request: ChatRequest) -> ChatRequest:
        return request if request.logprobs else request.with_options(logprobs=True)

    async def score(self, request: ChatRequest, completion: Completion, member: Member) -> Score:
        return Score(token_probability(completion.logprobs or (), self.mode), f"logprobs:{self.mode}")


class SelfReportedScorer:
    """Confidence the model states about its own answer, asked for in the prompt.

    JSON requests get the JSON instruction (``{"answer": ..., "confidence": N}``; the answer field becomes
    the text); others a trailing ``Confidence: N%`` line, which is stripped from the text. Parsing also
    accepts fenced JSON, "(confidence: 0.85)", "I am 85% confident", "confidence level: high", "8/10".
    """

    def __init__(self, *, instruction: str | None = None, json_instruction: str | None = None) -> None:
        self.instruction = instruction or LINE_INSTRUCTION
        self.json_instruction = json_instruction or JSON_INSTRUCTION

    def prepare(self, request: ChatRequest) -> ChatRequest:
        refuse_capabilities(
            request,
            "self-reported confidence",
            frozenset({"json_schema"}),
            "it asks for its own JSON shape ({answer, confidence}), which the caller's schema rules out",
            "score with logprobs, agreement or a judge",
        )
        wants_json = request.response_format is ResponseFormat.JSON
        return with_instruction(request, self.json_instruction if wants_json else self.instruction)

    async def score(self, request: ChatRequest, completion: Completion, member: Member) -> Score:
        report = parse_self_report(completion.text)
        return Score(report.confidence, "self_reported", report.text)


def with_instruction(request: ChatRequest, instruction: str) -> ChatRequest:
    """``request`` with ``instruction`` appended to its last user message (or as a new user message)."""
    messages = list(request.messages)
    for index in range(len(messages) - 1, -1, -1):
        if messages[index].role is Role.USER:
            message = messages[index]
            messages[index] = Message(message.role, (*message.parts, TextPart(f"\n\n{instruction}")))
            return request.with_options(messages=tuple(messages))
    return request.with_options(messages=(*messages, Message.user(instruction)))


def normalise(text: str) -> str | None:
    """Case- and whitespace-insensitive form of an answer, trailing punctuation dropped; None if empty."""
    words = " ".join(text.lower().split()).rstrip(" .!")
    return words or None


class AgreementScorer:
    """Confidence as the share of extra samples that agree with the answer (self-consistency).

    Asks the same member ``samples`` more times at ``temperature`` (concurrently, each only while the
    budget allows) and compares answers through ``extractor`` (default: ``normalise``). Failed samples
    are left out; when none succeeds the confidence is None.
    """

    def __init__(
        self, samples: int = 2, *, extractor: Extractor = normalise, temperature: float = 0.7
    ) -> None:
        if samples < 1:
            raise ValueError("AgreementScorer needs at least one extra sample")
        self.samples = samples
        self.extractor = extractor
        self.temperature = temperature

    def prepare(self, request: ChatRequest) -> ChatRequest:
        return request

    async def score(self, request: ChatRequest, completion: Completion, member: Member) -> Score:
        sample_request = request.with_options(temperature=self.temperature)
        count = affordable_samples(member, sample_request, self.samples)
        results = await asyncio.gather(
            *(member.model.complete(sample_request) for _ in range(count)), return_exceptions=True
        )
        for result in results:
            # Hierarchy errors only cost a sample; anything else is a bug and must surface.
            if isinstance(result, BaseException) and not isinstance(result, OrchestratorError):
                raise result
        samples = tuple(r for r in results if isinstance(r, Completion))
        confidence = agreement(completion.text, [s.text for s in samples], self.extractor)
        return Score(confidence, "agreement", None, samples)


def affordable_samples(member: Member, request: ChatRequest, wanted: int) -> int:
    """How many of ``wanted`` extra samples of ``member`` the remaining budget pays for."""
    remaining = remaining_budget(request)
    if remaining is None:
        return wanted
    estimate = member.profile.estimate_cost(request)
    if estimate == 0:
        return wanted
    if estimate is None or remaining <= 0:
        return 0
    return min(wanted, int(remaining // estimate))


def agreement(answer: str, samples: Sequence[str], extractor: Extractor = normalise) -> float | None:
    """Share of ``samples`` whose extracted answer equals ``answer``'s (None: nothing to compare)."""
    target = extractor(answer)
    if target is None or not samples:
        return None
    return sum(1 for sample in samples if extractor(sample) == target) / len(samples)


class ValidatorScorer:
    """Confidence from any async validator ``(request, completion) -> [0, 1]`` (tests, a judge model).

    A validator that raises an ``OrchestratorError`` yields no confidence rather than failing the request.
    """

    def __init__(self, validator: Validator, *, source: str = "validator") -> None:
        self.validator = validator
        self.source = source

    def prepare(self, request: ChatRequest) -> ChatRequest:
        return request

    async def score(self, request: ChatRequest, completion: Completion, member: Member) -> Score:
        try:
            value = await self.validator(request, completion)
        except OrchestratorError:
            return Score(None, self.source)
        return Score(min(1.0, max(0.0, float(value))), self.source)


# --- parsing self-reported confidence (pure) -------------------------------------------------------

_NUMBER = r"(\d+(?:\.\d+)?)"
_SCALE = r"\s*(%|percent\b|/\s*100\b|/\s*10\b|out\s+of\s+100\b|out\s+of\s+10\b)?"
_GAP = r"[*_\s\"']*"
# Not ``\b``: markdown emphasis puts an underscore, a word character, right before the word.
_WORD_START = r"(?<![a-z0-9])"
_NUMERIC_PATTERNS = (
    # The seed's two forms, "(confidence: 0.85)" and "Confidence: 85%", widened to "confidence level is
    # about 85 percent", markdown "**Confidence:** 8/10", "I am 85% confident / sure", "90% confidence".
    re.compile(r"\(\s*confidence[:\s]+" + _NUMBER + _SCALE + r"\s*\)", re.IGNORECASE),
    re.compile(
        _WORD_START
        + r"confidence(?:\s+(?:level|score|rating))?"
        + _GAP
        + r"(?:[:=]|\bis\b|\bof\b|\bat\b)?"
        + _GAP
        + r"(?:about|around|approximately|roughly|~)?\s*"
        + _NUMBER
        + _SCALE,
        re.IGNORECASE,
    ),
    re.compile(_NUMBER + r"\s*(%|percent\b)\s*(?:confident|sure|certain|confidence)\b", re.IGNORECASE),
)
_LEVELS = {"very high": 0.95, "high": 0.9, "medium": 0.6, "moderate": 0.6, "low": 0.3, "very low": 0.1}
_LEVEL = r"(very\s+high|very\s+low|high|medium|moderate|low)"
_LEVEL_PATTERNS = (
    re.compile(
        _WORD_START + r"confidence(?:\s+level)?" + _GAP + r"(?:[:=]|\bis\b)?" + _GAP + _LEVEL + r"\b",
        re.IGNORECASE,
    ),
    re.compile(r"\b" + _LEVEL + r"\s+confidence\b", re.IGNORECASE),
)
_FENCED = re.compile(r"```(?:json)?\s*(\{.*?\})\s*```", re.DOTALL | re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class SelfReport:
    """A parsed self-report: the confidence in [0, 1] (None: none found) and the answer without it."""

    confidence: float | None
    text: str | None = None


def parse_self_report(text: str) -> SelfReport:
    """Find the model's stated confidence in ``text``: JSON first, then the last textual statement.

    Values above 1 are percentages; "/10" and "out of 10" are tenths; results are clamped to [0, 1].
    ``text`` of the result is the JSON ``answer`` field, or the answer with a trailing confidence line
    removed; None when nothing needed rewriting.
    """
    report = _from_json(text)
    if report is not None:
        return report
    found = _last_statement(text)
    if found is None:
        return SelfReport(None)
    confidence, start, end = found
    return SelfReport(confidence, _without_trailing_statement(text, start, end))


def confidence_value(number: float, scale: str | None = None) -> float:
    """A stated number as a confidence in [0, 1] (see ``parse_self_report``)."""
    unit = (scale or "").replace(" ", "").lower()
    if unit in ("/10", "outof10"):
        number /= 10
    elif unit or number > 1:
        number /= 100
    return min(1.0, max(0.0, number))


def _last_statement(text: str) -> tuple[float, int, int] | None:
    """(confidence, start, end) of the statement ending last; on a tie the longest one."""
    found: list[tuple[int, int, float]] = []
    for pattern in _NUMERIC_PATTERNS:
        for m in pattern.finditer(text):
            found.append((m.end(), -m.start(), confidence_value(float(m.group(1)), m.group(2))))
    for pattern in _LEVEL_PATTERNS:
        for m in pattern.finditer(text):
            found.append((m.end(), -m.start(), _LEVELS[" ".join(m.group(1).lower().split())]))
    if not found:
        return None
    end, negative_start, confidence = max(found)
    return confidence, -negative_start, end


def _without_trailing_statement(text: str, start: int, end: int) -> str | None:
    """``text`` without the statement at [start, end) when it sits on the last non-blank line."""
    body = text.rstrip()
    if "\n" in body[end:]:
        return None
    line_start = body.rfind("\n", 0, start) + 1
    rest = (body[line_start:start] + body[end:]).strip().rstrip(" -|,;:(*_")
    kept = body[:line_start] + (rest if re.search(r"\w", rest) else "")
    return kept.rstrip() or None


def _from_json(text: str) -> SelfReport | None:
    """A report from a JSON object with a ``confidence`` key (bare, fenced, or embedded in prose)."""
    stripped = text.strip()
    candidates = [stripped, *_FENCED.findall(text)]
    if "{" in stripped and "}" in stripped:
        candidates.append(stripped[stripped.index("{") : stripped.rindex("}") + 1])
    for candidate in candidates:
        try:
            data = json.loads(candidate)
        except ValueError:
            continue
        if isinstance(data, dict) and "confidence" in data:
            return SelfReport(_json_confidence(data["confidence"]), _json_answer(data.get("answer")))
    return None


def _json_confidence(value: object) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return confidence_value(float(value))
    if isinstance(value, str):
        found = _last_statement(f"confidence: {value}")
        return None if found is None else found[0]
    return None


def _json_answer(value: object) -> str | None:
    if value is None:
        return None
    return value if isinstance(value, str) else json.dumps(value)
