"""Specialist routing (seed 001): send each request to the member configured for its task type, and
``Conversation``, which carries a chat's history across turns within a model's context window.

Owns rule-based task detection (``Rule``, ``RuleClassifier``; other classifiers plug in through
``TaskClassifier``), the routing step and its explanation, and history keeping. It does not score
complexity or learn routes (routing/ does) and does not retry or fall back (wrap members for that).
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Protocol

from model_orchestrator.core.clock import Clock
from model_orchestrator.core.errors import ConfigError, OrchestratorError
from model_orchestrator.core.events import EventBus
from model_orchestrator.core.explanation import Explanation, StepRecord
from model_orchestrator.core.messages import Message
from model_orchestrator.core.model import ChatModel
from model_orchestrator.core.request import ChatRequest
from model_orchestrator.core.response import Completion, StreamDelta
from model_orchestrator.core.stream_start import closing
from model_orchestrator.strategies._prompts import last_user_text
from model_orchestrator.strategies.context_window import TruncationMode, fit_messages, summarize_messages
from model_orchestrator.strategies.member import Member, step_ok, strategy_completion


@dataclass(frozen=True, slots=True)
class Rule:
    """Matches a text when every condition it sets holds (case-insensitive):

    ``keywords``: one of them occurs as a whole word or phrase ("code" matches "Code it", not "decode");
    ``pattern``: the regular expression is found; ``max_chars``: the text is at most that long.
    For either-or conditions write two rules with the same label.
    """

    label: str
    keywords: tuple[str, ...] = ()
    pattern: str | None = None
    max_chars: int | None = None
    _keyword_re: re.Pattern[str] | None = field(init=False, repr=False, compare=False, default=None)
    _pattern_re: re.Pattern[str] | None = field(init=False, repr=False, compare=False, default=None)

    def __post_init__(self) -> None:
        # Config hands over lists; keep a hashable tuple without blanks (an empty keyword matches anything).
        object.__setattr__(self, "keywords", tuple(k.strip() for k in self.keywords if k.strip()))
        if not self.keywords and self.pattern is None and self.max_chars is None:
            raise ConfigError(f"rule {self.label!r} sets no condition (keywords, pattern or max_chars)")
        if self.keywords:
            words = sorted({k.lower() for k in self.keywords}, key=len, reverse=True)
            alternatives = "|".join(re.escape(k) for k in words)
            # Lookarounds instead of \b so keywords that start or end in punctuation ("c++") still work;
            # matched against lower-cased text because that is ~2.5x faster than IGNORECASE here.
            compiled = re.compile(rf"(?<!\w)(?:{alternatives})(?!\w)")
            object.__setattr__(self, "_keyword_re", compiled)
        if self.pattern is not None:
            try:
                object.__setattr__(self, "_pattern_re", re.compile(self.pattern, re.IGNORECASE))
            except re.error as exc:
                raise ConfigError(f"rule {self.label!r}: invalid pattern {self.pattern!r}: {exc}") from exc

    def match(self, text: str) -> str | None:
        """Why the rule matches ``text`` (e.g. ``keyword 'debug'``), or None when it does not."""
        reasons: list[str] = []
        if self.max_chars is not None:
            if len(text) > self.max_chars:
                return None
            reasons.append(f"{len(text)} chars <= {self.max_chars}")
        if self._keyword_re is not None:
            keyword = self._keyword_re.search(text.lower())
            if keyword is None:
                return None
            reasons.append(f"keyword {keyword.group(0)!r}")
        if self._pattern_re is not None:
            found = self._pattern_re.search(text)
            if found is None:
                return None
            reasons.append(f"pattern {found.group(0)!r}")
        return ", ".join(reasons)


class TaskClassifier(Protocol):
    """Labels a request's text with a task type, and says why."""

    def classify(self, text: str) -> tuple[str, str]:
        """``(label, reason)``."""
        ...


class RuleClassifier:
    """The first matching rule's label; ``default_label`` when none matches."""

    def __init__(self, rules: Sequence[Rule], default_label: str) -> None:
        self._rules = tuple(rules)
        self._default = default_label

    @property
    def labels(self) -> frozenset[str]:
        """Every label this classifier can return."""
        return frozenset(r.label for r in self._rules) | {self._default}

    def classify(self, text: str) -> tuple[str, str]:
        for rule in self._rules:
            why = rule.match(text)
            if why is not None:
                return rule.label, f"rule {rule.label!r}: {why}"
        return self._default, f"no rule matched; default {self._default!r}"


# Seed 001's detector, with whole-word matching (its substring test sent "decode" to code) and the
# common inflections its keywords would otherwise miss. Rules are tried in order.
DEFAULT_RULES: tuple[Rule, ...] = (
    Rule(
        "code",
        keywords=(
            "code",
            "function",
            "functions",
            "implement",
            "implementation",
            "debug",
            "debugging",
            "refactor",
        ),
    ),
    Rule("math", keywords=("calculate", "solve", "math", "equation", "equations", "integral", "derivative")),
    # Arithmetic like "2+2" or "3 - 1"; an unspaced minus is left out because "3-4 sentences" is not math.
    Rule("math", pattern=r"\d\s*[+*/^]\s*\d|\d\s+-\s+\d"),
    Rule("fast", max_chars=49),
)
DEFAULT_LABEL = "general"


def default_classifier() -> RuleClassifier:
    """Seed 001's rules: code, math, fast (under 50 characters), else general."""
    return RuleClassifier(DEFAULT_RULES, DEFAULT_LABEL)


class SpecialistModel:
    """Routes each request, by the task type of its last user message, to that type's member.

    A label with no route (a classifier may know more labels than are configured) goes to ``default``.
    Streams straight through the chosen member; the explanation rides on the last delta.
    """

    def __init__(
        self,
        routes: Mapping[str, Member],
        *,
        default: str,
        classifier: TaskClassifier | None = None,
        name: str = "specialist",
        clock: Clock,
        bus: EventBus | None = None,
    ) -> None:
        # ``bus`` is accepted so the composition root builds every strategy alike; routing emits no events
        # of its own (the chosen member's call is observed by its deployment).
        del bus
        if default not in routes:
            raise ConfigError(
                f"{name}: the default route {default!r} is not among the routes "
                f"({', '.join(routes) or 'none'}); add it or choose one of them"
            )
        self._routes = dict(routes)
        self._default = default
        self._classifier = classifier or RuleClassifier(DEFAULT_RULES, default)
        self._name = name
        self._clock = clock

    @property
    def name(self) -> str:
        return self._name

    def route(self, request: ChatRequest) -> tuple[str, str, Member]:
        """``(label, reason, member)`` for ``request``, without calling anything."""
        label, reason = self._classifier.classify(last_user_text(request))
        if label not in self._routes:
            return (
                label,
                f"{reason}; no route for {label!r}, using {self._default!r}",
                self._routes[self._default],
            )
        return label, reason, self._routes[label]

    async def complete(self, request: ChatRequest) -> Completion:
        started = self._clock.monotonic()
        label, reason, member = self.route(request)
        try:
            completion = await member.model.complete(request)
        except OrchestratorError as exc:
            exc.add_note(f"{self._name}: task type {label!r} ({reason}) was routed to {member.name!r}")
            raise
        step = step_ok(member, completion, reason=reason)
        answer = strategy_completion(
            completion, member, [completion], self._explain(label, reason, member, step)
        )
        return replace(answer, latency=self._clock.monotonic() - started)

    async def stream(self, request: ChatRequest) -> AsyncIterator[StreamDelta]:
        label, reason, member = self.route(request)
        async with closing(member.model.stream(request)) as deltas:
            async for delta in deltas:
                if delta.finish_reason is None:
                    yield delta
                    continue
                usage = delta.usage
                step = StepRecord(
                    model=member.name,
                    outcome="ok",
                    reason=reason,
                    input_tokens=0 if usage is None else usage.input_tokens,
                    output_tokens=0 if usage is None else usage.output_tokens,
                    explanation=delta.explanation,
                )
                yield replace(delta, explanation=self._explain(label, reason, member, step))

    async def aclose(self) -> None:
        return None

    def _explain(self, label: str, reason: str, member: Member, step: StepRecord) -> Explanation:
        return Explanation(
            self._name,
            (step,),
            chosen=member.name,
            reason=f"task type {label!r} ({reason}) -> {member.name}",
            facts=(("task_type", label), ("rule", reason), ("route", member.name)),
        )


class Conversation:
    """A chat with ``model`` that remembers its turns (seed 001's conversation history).

    Each ``ask`` sends the history plus the new message, cut to ``context_window`` minus
    ``reserved_output`` tokens (``fit_messages`` with ``mode``; with a ``summarizer``, older turns are
    summarized instead of dropped). The full history is kept; only what is sent is cut.
    ``reserved_output`` is also the answer's ``max_tokens``, so the answer always fits.
    """

    def __init__(
        self,
        model: ChatModel,
        *,
        context_window: int,
        reserved_output: int = 512,
        mode: TruncationMode = "smart",
        system: str | None = None,
        summarizer: ChatModel | None = None,
    ) -> None:
        if reserved_output >= context_window:
            raise ConfigError(
                f"reserved_output ({reserved_output}) must be smaller than context_window ({context_window})"
            )
        self._model = model
        self._window = context_window
        self._reserved = reserved_output
        self._mode = mode
        self._summarizer = summarizer
        self._history: list[Message] = [Message.system(system)] if system else []
        self.last_sent: tuple[Message, ...] = ()

    @property
    def history(self) -> tuple[Message, ...]:
        """Every message so far (system, then user and assistant turns), uncut."""
        return tuple(self._history)

    async def ask(self, text: str, **options: object) -> Completion:
        """Send ``text`` with the history that fits; the turn is remembered only when the call succeeds.

        ``options`` are further ``ChatRequest`` fields (temperature, request_id, deadline, ...).
        """
        messages = (*self._history, Message.user(text))
        fitted = await self._fit(messages, options.get("request_id"))
        request = ChatRequest(messages=fitted, max_tokens=self._reserved).with_options(**options)
        completion = await self._model.complete(request)
        self.last_sent = fitted
        self._history.extend((Message.user(text), Message.assistant(completion.text, completion.tool_calls)))
        return completion

    async def _fit(self, messages: tuple[Message, ...], request_id: object) -> tuple[Message, ...]:
        if self._summarizer is None:
            return fit_messages(
                messages, context_window=self._window, reserved_output=self._reserved, mode=self._mode
            )
        return await summarize_messages(
            messages,
            self._summarizer,
            context_window=self._window,
            reserved_output=self._reserved,
            request_id=request_id if isinstance(request_id, str) else None,
        )
