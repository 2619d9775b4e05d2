"""Span attributes from events: pure functions, no OpenTelemetry import (tested without a tracer).

Owns what each span says and what it must not say: prompts, answers and free text that may quote them
(explanation reasons, vote keys, tie lists) appear only when content recording is on; keys never reach an
event, so they never reach a span. Not span lifetimes or parents (``tracing``).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence

from model_orchestrator.core.events import (
    AttemptFailed,
    AttemptStarted,
    AttemptSucceeded,
    Event,
    RequestFinished,
    RequestStarted,
)
from model_orchestrator.core.explanation import Explanation
from model_orchestrator.telemetry import conventions as c

AttributeValue = str | bool | int | float | Sequence[str] | Sequence[int] | Sequence[float] | Sequence[bool]
Attributes = dict[str, AttributeValue]

_MAX_TEXT = 1000
_MAX_ERROR = 300
# Never copied from events handled by class name: request plumbing and anything that may be content.
_SKIPPED_FIELDS = frozenset({"request_id", "timestamp"})
_CONTENT_FIELDS = frozenset({"prompt", "messages", "text", "response_text", "answer", "output", "input"})


def request_attributes(event: RequestStarted) -> Attributes:
    """The root span's attributes at the start: what was asked for, how, and under which limits."""
    attributes: Attributes = {
        c.SPAN_KIND: c.KIND_CHAIN,
        c.REQUEST_ID: event.request_id,
        c.REQUESTED: event.requested,
        c.STRATEGY: event.strategy,
    }
    optional = {c.CATEGORY: event.category, c.API_KEY_ID: event.api_key_id, c.MAX_COST: event.max_cost}
    attributes.update({k: v for k, v in optional.items() if v is not None})
    if event.tags:
        attributes[c.TAGS] = list(event.tags)
    if event.messages:
        attributes.update(input_attributes([(m.role.value, m.text) for m in event.messages]))
    return attributes


def input_attributes(messages: Sequence[tuple[str, str]]) -> Attributes:
    """``input.value``: the prompt as plain text, or the conversation as JSON when there is more than one."""
    if len(messages) == 1:
        return {c.INPUT_VALUE: messages[0][1], c.INPUT_MIME_TYPE: "text/plain"}
    conversation = [{"role": role, "content": text} for role, text in messages]
    return {
        c.INPUT_VALUE: json.dumps(conversation, ensure_ascii=False),
        c.INPUT_MIME_TYPE: "application/json",
    }


def finish_attributes(event: RequestFinished) -> Attributes:
    """The root span's attributes at the end: outcome, spend and tokens of the whole request."""
    attributes: Attributes = {
        c.STATUS: "ok" if event.ok else "error",
        c.LATENCY_MS: event.latency * 1000,
        c.ATTEMPTS: event.attempts,
        c.INPUT_TOKENS: event.input_tokens,
        c.OUTPUT_TOKENS: event.output_tokens,
        c.PRICE_KNOWN: event.cost is not None,
    }
    optional = {c.MODEL_USED: event.model_used, c.COST: event.cost, c.ERROR_TYPE: event.error_type}
    attributes.update({k: v for k, v in optional.items() if v is not None})
    if event.error_message:
        attributes[c.ERROR_MESSAGE] = event.error_message[:_MAX_ERROR]
    if event.response_text is not None:
        attributes[c.OUTPUT_VALUE] = event.response_text
        attributes[c.OUTPUT_MIME_TYPE] = "text/plain"
    return attributes


def attempt_attributes(event: AttemptStarted, retry_number: int, breaker_state: str) -> Attributes:
    """A ``model_call`` span's attributes at the start (an OpenInference LLM span)."""
    return {
        c.SPAN_KIND: c.KIND_LLM,
        c.LLM_MODEL_NAME: event.model,
        c.LLM_PROVIDER: event.provider,
        c.DEPLOYMENT: event.deployment,
        c.ATTEMPT_ID: event.attempt_id,
        c.RETRY_NUMBER: retry_number,
        c.BREAKER_STATE: breaker_state,
        c.ESTIMATED_INPUT_TOKENS: event.estimated_input_tokens,
    }


def outcome_attributes(event: AttemptSucceeded | AttemptFailed) -> Attributes:
    """A ``model_call`` span's attributes at the end: tokens, cost, latency, status (and the error)."""
    usage = event.usage
    attributes: Attributes = {
        c.LLM_TOKENS_PROMPT: usage.input_tokens,
        c.LLM_TOKENS_COMPLETION: usage.output_tokens,
        c.LLM_TOKENS_TOTAL: usage.total_tokens,
        c.USAGE_ESTIMATED: usage.estimated,
        c.LATENCY_MS: event.latency * 1000,
        c.PRICE_KNOWN: event.cost is not None,
    }
    if usage.cached_input_tokens:
        attributes[c.LLM_TOKENS_CACHE_READ] = usage.cached_input_tokens
    if usage.reasoning_tokens:
        attributes[c.LLM_TOKENS_REASONING] = usage.reasoning_tokens
    if event.cost is not None:
        attributes[c.LLM_COST_TOTAL] = event.cost
    if isinstance(event, AttemptSucceeded):
        attributes[c.STATUS] = "ok"
        return attributes
    attributes[c.STATUS] = "cancelled" if event.cancelled else "error"
    attributes[c.CANCELLED] = event.cancelled
    attributes[c.ERROR_TYPE] = event.error_type
    attributes[c.ERROR_MESSAGE] = event.error_message[:_MAX_ERROR]
    attributes[c.RETRYABLE] = event.retryable
    if event.status_code is not None:
        attributes[c.STATUS_CODE] = event.status_code
    return attributes


def aggregation_attributes(explanation: Explanation, *, record_content: bool) -> Attributes:
    """The ``result_aggregation`` span: the strategy's choice, confidence, votes and steps.

    Without content recording, vote keys (extracted answers), reasons and structured facts (which may quote
    answers) are left out; vote counts, outcomes and scalar facts stay.
    """
    attributes: Attributes = {
        c.SPAN_KIND: c.KIND_CHAIN,
        c.STRATEGY: explanation.strategy,
        c.STEPS: [f"{s.model}:{s.outcome}" for s in explanation.steps],
        c.MODELS_TRIED: list(explanation.models_tried),
    }
    optional = {
        c.CHOSEN: explanation.chosen,
        c.CONFIDENCE: explanation.confidence,
        c.CONFIDENCE_SOURCE: explanation.confidence_source,
    }
    attributes.update({k: v for k, v in optional.items() if v is not None})
    if record_content and explanation.reason:
        attributes[c.REASON] = explanation.reason
    for key, value in explanation.facts:
        _add_fact(attributes, key, value, record_content)
    return attributes


def _add_fact(attributes: Attributes, key: str, value: object, record_content: bool) -> None:
    if key == "votes" and isinstance(value, Mapping):
        counts = sorted((int(v) for v in value.values()), reverse=True)
        attributes[c.VOTES] = _json(dict(value)) if record_content else counts
    elif isinstance(value, bool | int | float | str):
        attributes[f"{c.FACTS}.{key}"] = value
    elif record_content and value is not None:
        attributes[f"{c.FACTS}.{key}"] = _json(value)


def event_fields(event: Event, prefix: str = "") -> Attributes:
    """An event's own fields as attributes (for span events and events known only by class name).

    Request plumbing and anything named like content are skipped; nested values become JSON.
    """
    attributes: Attributes = {}
    for field in dataclasses.fields(event):
        if field.name in _SKIPPED_FIELDS or field.name in _CONTENT_FIELDS:
            continue
        value = attribute_value(getattr(event, field.name))
        if value is not None:
            attributes[prefix + field.name] = value
    return attributes


def attribute_value(value: object) -> AttributeValue | None:
    """``value`` as an OpenTelemetry attribute value: scalars as they are, flat lists kept, the rest JSON."""
    if value is None:
        return None
    if isinstance(value, bool | int | float):
        return value
    if isinstance(value, str):
        return value[:_MAX_TEXT]
    if isinstance(value, list | tuple) and value and all(isinstance(v, str) for v in value):
        return [str(v) for v in value]
    return _json(value)


def _json(value: object) -> str:
    return json.dumps(value, default=_plain, ensure_ascii=False, sort_keys=True)[:_MAX_TEXT]


def _plain(value: object) -> object:
    to_dict = getattr(value, "to_dict", None)
    if callable(to_dict):
        return to_dict()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    return str(value)
