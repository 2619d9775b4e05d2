"""The provider-neutral chat request. Owns what a caller may ask for; not how it is sent."""

from __future__ import annotations

import math
import operator
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Literal, get_args

from model_orchestrator.core.errors import ConfigError, InvalidRequestError
from model_orchestrator.core.frozen import quick_init
from model_orchestrator.core.messages import ImagePart, Message, Role
from model_orchestrator.core.tools import JsonSchemaFormat, ToolChoice, ToolDefinition

ContextOverflow = Literal["error", "truncate-start", "truncate-end", "truncate-middle", "smart", "summarize"]
"""What to do when a prompt does not fit a model's context window (``context: {overflow: ...}``)."""
CONTEXT_OVERFLOW_MODES: tuple[str, ...] = get_args(ContextOverflow)


class ResponseFormat(StrEnum):
    """Whether the answer must be free text or JSON (with ``ChatRequest.json_schema``: matching a schema)."""

    TEXT = "text"
    JSON = "json"


@quick_init
@dataclass(frozen=True, slots=True)
class ChatRequest:
    """One request to a chat model.

    ``deadline`` is an absolute time on the orchestrator's monotonic clock (seconds),
    so it can be handed down through every layer without shrinking by hand. ``max_cost`` caps the USD
    the whole request may spend, across every attempt. Numbers must be finite (NaN or an infinity raises
    ``ConfigError``), so nothing invalid is ever sent upstream or switches a cap off.
    ``context_overflow`` overrides the configured overflow handling of every model and strategy the request
    reaches (None: the configured one).
    ``has_fallback`` is set by a strategy for every member but its last (a later fallback member, another
    deployment of the same model): the deployment's resilience layers then move on at once after a
    timeout or rate limit, instead of waiting on this deployment (see ``resilience/README.md``).
    """

    messages: tuple[Message, ...]
    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    stop: tuple[str, ...] = ()
    response_format: ResponseFormat = ResponseFormat.TEXT
    logprobs: bool = False
    top_logprobs: int | None = None
    category: str | None = None
    tags: tuple[str, ...] = ()
    deadline: float | None = None
    max_cost: float | None = None
    api_key_id: str | None = None
    request_id: str | None = None
    metadata: tuple[tuple[str, str], ...] = field(default=())
    context_overflow: ContextOverflow | None = None
    has_fallback: bool = False
    tools: tuple[ToolDefinition, ...] = ()
    tool_choice: ToolChoice | None = None
    parallel_tool_calls: bool | None = None
    json_schema: JsonSchemaFormat | None = None
    # ``required_capabilities``, computed on first read (a copy made with ``replace`` starts without it).
    _capabilities: frozenset[str] | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.temperature is not None or self.top_p is not None or self.max_cost is not None:
            for name in ("temperature", "top_p", "max_cost"):
                value = getattr(self, name)
                if value is not None and not math.isfinite(value):
                    raise ConfigError(f"{name} must be a finite number, not {value!r}")
        if self.deadline is not None and not math.isfinite(self.deadline):
            raise ConfigError(f"deadline must be a finite number, not {self.deadline!r}")
        if self.max_cost is not None and self.max_cost < 0:
            raise ConfigError(f"max_cost must be zero or more USD, not {self.max_cost!r}")
        if self.json_schema is not None and self.response_format is not ResponseFormat.JSON:
            object.__setattr__(self, "response_format", ResponseFormat.JSON)
        choice = self.tool_choice
        if choice is not None and choice.name is not None and choice.name not in {t.name for t in self.tools}:
            raise InvalidRequestError(f"tool_choice names {choice.name!r}, which is not among the tools")

    @classmethod
    def from_prompt(cls, prompt: str, *, system: str | None = None, **options: object) -> ChatRequest:
        """A request holding one user message (and an optional system message)."""
        messages = (Message.system(system),) if system else ()
        return cls(messages=(*messages, Message.user(prompt)), **options)  # type: ignore[arg-type]

    def with_options(self, **changes: object) -> ChatRequest:
        """A copy with some fields changed."""
        return replace(self, **changes)  # type: ignore[arg-type]

    def with_fallback_flag(self) -> ChatRequest:
        """A copy with ``has_fallback`` set (itself when already set). Only the flag changes, so the copy is
        not validated again and keeps ``required_capabilities`` once read: a strategy makes one per call."""
        if self.has_fallback:
            return self
        copy = object.__new__(ChatRequest)
        for set_slot, value in zip(_SLOT_SETTERS, _read_slots(self), strict=True):
            set_slot(copy, value)
        object.__setattr__(copy, "has_fallback", True)
        return copy

    @property
    def required_capabilities(self) -> frozenset[str]:
        """What a model must support to honour this request: ``tools``, ``vision``, ``json_schema``."""
        cached = self._capabilities
        if cached is None:
            cached = self._needs()
            object.__setattr__(self, "_capabilities", cached)
        return cached

    def _needs(self) -> frozenset[str]:
        needs: set[str] = set()
        if self.tools or any(m.tool_calls or m.role is Role.TOOL for m in self.messages):
            needs.add("tools")
        if any(isinstance(p, ImagePart) for m in self.messages for p in m.parts):
            needs.add("vision")
        if self.json_schema is not None:
            needs.add("json_schema")
        return frozenset(needs)

    @property
    def system_text(self) -> str | None:
        """All system messages joined, or None when there are none."""
        texts = [m.text for m in self.messages if m.role.value == "system"]
        return "\n\n".join(texts) if texts else None


_SLOTS: tuple[str, ...] = ChatRequest.__slots__
_read_slots = operator.attrgetter(*_SLOTS)
# Each slot's own setter (its member descriptor's): past the frozen check, a third cheaper than
# ``object.__setattr__`` by name.
_SLOT_SETTERS: tuple[Callable[[object, object], None], ...] = tuple(
    ChatRequest.__dict__[name].__set__ for name in _SLOTS
)
