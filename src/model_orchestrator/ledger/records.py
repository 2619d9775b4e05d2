"""Turning events into ledger rows (pure; no database here).

An attempt row comes from ``AttemptSucceeded``/``AttemptFailed`` (status ``ok``, ``failed`` or
``cancelled``); a request row from ``RequestStarted`` and ``RequestFinished``, merged field by field so
the finish never erases what the start knew (tags, max_cost); an outcome label from ``AnswerJudged``.
What is never copied: answer text, error messages (they can quote prompts or key fragments), keys.
Error classes and key ids only. Prompt text only when ``RequestStarted.prompt`` carries it, which the
façade does only with ``ledger.store_prompts`` on.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, fields, replace

from model_orchestrator.core.events import (
    AnswerJudged,
    AttemptFailed,
    AttemptSucceeded,
    Event,
    RequestFinished,
    RequestStarted,
)

RECORDED = (AttemptSucceeded, AttemptFailed, RequestStarted, RequestFinished, AnswerJudged)


@dataclass(frozen=True, slots=True)
class AttemptRow:
    """One upstream attempt."""

    attempt_id: str
    request_id: str
    started_at: float
    finished_at: float
    day: str
    model: str
    provider: str
    deployment: str
    status: str
    error_type: str | None
    status_code: int | None
    input_tokens: int
    output_tokens: int
    cached_input_tokens: int
    reasoning_tokens: int
    cache_write_tokens: int
    usage_estimated: bool
    cost: float | None
    latency: float


@dataclass(frozen=True, slots=True)
class RequestRow:
    """One request served by the façade; fields a given event does not know are None."""

    request_id: str
    started_at: float | None = None
    finished_at: float | None = None
    day: str | None = None
    requested: str | None = None
    strategy: str | None = None
    category: str | None = None
    tags: str | None = None
    api_key_id: str | None = None
    max_cost: float | None = None
    ok: bool | None = None
    model_used: str | None = None
    cost: float | None = None
    latency: float | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    attempts: int | None = None
    error_type: str | None = None

    def merged(self, later: RequestRow) -> RequestRow:
        """This row updated by ``later``'s known (non-None) fields."""
        known = {f.name: getattr(later, f.name) for f in fields(later) if getattr(later, f.name) is not None}
        return replace(self, **known)


@dataclass(frozen=True, slots=True)
class LabelRow:
    """One outcome label: how good ``model``'s answer to a request was (0-1), and who said so."""

    label_id: str
    request_id: str
    created_at: float
    source: str
    model: str | None
    tier: int | None
    score: float
    api_key_id: str | None = None


@dataclass(frozen=True, slots=True)
class PromptRow:
    """The router's input text of one request (only with ``ledger.store_prompts``)."""

    request_id: str
    prompt: str
    stored_at: float


@dataclass(frozen=True, slots=True)
class Batch:
    """Rows to write in one transaction."""

    attempts: tuple[AttemptRow, ...]
    requests: tuple[RequestRow, ...]
    labels: tuple[LabelRow, ...] = ()
    prompts: tuple[PromptRow, ...] = ()

    def __len__(self) -> int:
        return len(self.attempts) + len(self.requests) + len(self.labels) + len(self.prompts)


def utc_day(timestamp: float) -> str:
    """The UTC date of an epoch timestamp, ``YYYY-MM-DD``."""
    return time.strftime("%Y-%m-%d", time.gmtime(timestamp))


def attempt_row(event: AttemptSucceeded | AttemptFailed) -> AttemptRow:
    """The row for a finished attempt."""
    failure = event if isinstance(event, AttemptFailed) else None
    usage = event.usage
    return AttemptRow(
        attempt_id=event.attempt_id,
        request_id=event.request_id,
        started_at=event.timestamp - event.latency,
        finished_at=event.timestamp,
        day=utc_day(event.timestamp),
        model=event.model,
        provider=event.provider,
        deployment=event.deployment,
        status=_status(event),
        error_type=failure.error_type if failure else None,
        status_code=failure.status_code if failure else None,
        input_tokens=usage.input_tokens,
        output_tokens=usage.output_tokens,
        cached_input_tokens=usage.cached_input_tokens,
        reasoning_tokens=usage.reasoning_tokens,
        cache_write_tokens=usage.cache_write_tokens,
        usage_estimated=usage.estimated,
        cost=event.cost,
        latency=event.latency,
    )


def _status(event: AttemptSucceeded | AttemptFailed) -> str:
    if isinstance(event, AttemptSucceeded):
        return "ok"
    return "cancelled" if event.cancelled else "failed"


def request_row(event: RequestStarted | RequestFinished) -> RequestRow:
    """The part of a request row an event knows."""
    if isinstance(event, RequestStarted):
        return RequestRow(
            request_id=event.request_id,
            started_at=event.timestamp,
            day=utc_day(event.timestamp),
            requested=event.requested,
            strategy=event.strategy,
            category=event.category,
            tags=",".join(event.tags) if event.tags else None,
            api_key_id=event.api_key_id,
            max_cost=event.max_cost,
        )
    return RequestRow(
        request_id=event.request_id,
        finished_at=event.timestamp,
        requested=event.requested,
        strategy=event.strategy,
        category=event.category,
        api_key_id=event.api_key_id,
        ok=event.ok,
        model_used=event.model_used,
        cost=event.cost,
        latency=event.latency,
        input_tokens=event.input_tokens,
        output_tokens=event.output_tokens,
        attempts=event.attempts,
        error_type=event.error_type,
    )


def to_batch(events: Iterable[Event]) -> Batch:
    """The rows for ``events`` (other event types are ignored); one row per request id."""
    attempts: list[AttemptRow] = []
    requests: dict[str, RequestRow] = {}
    labels: list[LabelRow] = []
    prompts: list[PromptRow] = []
    for event in events:
        if isinstance(event, AttemptSucceeded | AttemptFailed):
            attempts.append(attempt_row(event))
        elif isinstance(event, RequestStarted | RequestFinished):
            row = request_row(event)
            previous = requests.get(row.request_id)
            requests[row.request_id] = row if previous is None else previous.merged(row)
            if isinstance(event, RequestStarted) and event.prompt is not None and event.request_id:
                prompts.append(PromptRow(event.request_id, event.prompt, event.timestamp))
        elif isinstance(event, AnswerJudged) and event.request_id:
            labels.append(label_row(event))
    return Batch(tuple(attempts), tuple(requests.values()), tuple(labels), tuple(prompts))


def label_row(event: AnswerJudged) -> LabelRow:
    """The outcome label a strategy's judgement makes (the score clamped to [0, 1])."""
    return LabelRow(
        label_id=event.judgement_id,
        request_id=event.request_id,
        created_at=event.timestamp,
        source=event.source,
        model=event.model,
        tier=event.tier,
        score=min(1.0, max(0.0, event.score)),
    )
