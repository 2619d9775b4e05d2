"""What a model returns: a whole completion, or a stream of deltas."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from model_orchestrator.core.explanation import Explanation
from model_orchestrator.core.frozen import quick_init
from model_orchestrator.core.rate_limits import EMPTY_RATE_LIMITS, RateLimitSnapshot
from model_orchestrator.core.tools import ToolCall, ToolCallDelta
from model_orchestrator.core.usage import Usage


class FinishReason(StrEnum):
    """Why generation stopped, normalised across providers."""

    STOP = "stop"
    LENGTH = "length"
    CONTENT_FILTER = "content_filter"
    TOOL_CALLS = "tool_calls"
    ERROR = "error"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class TokenLogprob:
    """The log-probability of one generated token, with its top alternatives when asked."""

    token: str
    logprob: float
    top: tuple[tuple[str, float], ...] = ()


@quick_init
@dataclass(frozen=True, slots=True)
class Completion:
    """A finished answer from one model call (or from a strategy that chose one).

    ``cost`` is USD, or None when the price is unknown (never silently 0).
    ``latency`` is seconds from sending the request to the last byte. ``tool_calls`` holds the calls the
    model made (``finish_reason`` is then ``tool_calls``); ``text`` may be empty beside them.
    """

    text: str
    model: str
    provider: str
    deployment: str
    usage: Usage
    cost: float | None = None
    latency: float = 0.0
    finish_reason: FinishReason = FinishReason.STOP
    logprobs: tuple[TokenLogprob, ...] | None = None
    response_id: str | None = None
    rate_limits: RateLimitSnapshot = EMPTY_RATE_LIMITS
    details: tuple[tuple[str, object], ...] = field(default=())
    explanation: Explanation | None = None
    tool_calls: tuple[ToolCall, ...] = ()


@quick_init
@dataclass(frozen=True, slots=True)
class StreamDelta:
    """One piece of a streamed answer.

    The last delta of a stream carries ``finish_reason`` and, where the provider reports it, ``usage``
    and ``cost`` (USD; CLI agents report one). ``tool_calls`` carries pieces of streamed tool calls
    (``core.tools.assemble_tool_calls`` joins them).
    """

    text: str = ""
    logprobs: tuple[TokenLogprob, ...] = ()
    finish_reason: FinishReason | None = None
    usage: Usage | None = None
    model: str | None = None
    rate_limits: RateLimitSnapshot | None = None
    explanation: Explanation | None = None
    cost: float | None = None
    tool_calls: tuple[ToolCallDelta, ...] = ()
