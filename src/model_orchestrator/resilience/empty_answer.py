"""The one rule for an empty answer, read by the breaker (to count it) and by retry (to try again).

An answer is empty when it has no visible text and calls no tool: a 200 the caller can do nothing with.
The rule looks at the tool calls themselves, not the finish reason (some providers finish a tool call
with "stop"; a "tool_calls" finish without a call is as useless as no text). Whether an empty answer is a
failure at all is the per-model ``retry_on_empty`` setting (default true), passed to both layers. For a
stream the same rule is ``core.stream_start.has_content``: a stream without such a delta is empty.
"""

from __future__ import annotations

from model_orchestrator.core.errors import ServerError
from model_orchestrator.core.response import Completion

# An empty 200 is the upstream failing to answer, as a gateway in front of it would report.
_BAD_GATEWAY = 502


def is_empty(completion: Completion) -> bool:
    """True for an answer without visible text and without a tool call."""
    return not completion.text.strip() and not completion.tool_calls


def empty_answer_error(deployment: str, provider: str | None = None) -> ServerError:
    """The retryable failure an empty answer becomes, so the layers above retry it or move on."""
    return ServerError(
        "empty answer: the model returned no text and called no tool; retrying it or moving on to "
        "another model (set retry_on_empty: false in the model's retry block to accept empty answers)",
        status_code=_BAD_GATEWAY,
        retryable=True,
        provider=provider,
        deployment=deployment,
    )
