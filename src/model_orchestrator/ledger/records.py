"""Turning events into ledger rows: plain tuples in their table's column order (pure; no database here).

An attempt row comes from ``AttemptSucceeded``/``AttemptFailed`` (status ``ok``, ``failed`` or
``cancelled``), once, when the attempt ended. A request row is the ``RequestStarted`` part and the
``RequestFinished`` part of one request merged (``request_row``), the finish's known fields winning, so
the finish never erases what the start knew (tags, max_cost); either part may be missing (a request still
running, or one whose start was written earlier). An outcome label comes from ``AnswerJudged``.
What is never copied: answer text, error messages (they can quote prompts or key fragments), keys.
Error classes and key ids only. Prompt text only when ``RequestStarted.prompt`` carries it, which the
façade does only with ``ledger.store_prompts`` on.

Rows are tuples, not dataclasses or dicts: they are built on the event loop for every call and handed
to the database driver as they are (measured in docs/decisions.md, "The ledger's writer").
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from model_orchestrator.core.events import (
    AnswerJudged,
    AttemptFailed,
    AttemptSucceeded,
    RequestFinished,
    RequestStarted,
)

Row = tuple[Any, ...]

# Each table's columns in the order of ``tables.py`` (``writer_sql`` checks they agree).
ATTEMPT_COLUMNS = (
    "attempt_id",
    "request_id",
    "started_at",
    "finished_at",
    "day",
    "model",
    "provider",
    "deployment",
    "status",
    "error_type",
    "status_code",
    "input_tokens",
    "output_tokens",
    "cached_input_tokens",
    "reasoning_tokens",
    "usage_estimated",
    "cost",
    "latency",
    "cache_write_tokens",
)
REQUEST_COLUMNS = (
    "request_id",
    "started_at",
    "finished_at",
    "day",
    "requested",
    "strategy",
    "category",
    "tags",
    "api_key_id",
    "max_cost",
    "ok",
    "model_used",
    "cost",
    "latency",
    "input_tokens",
    "output_tokens",
    "attempts",
    "error_type",
)
LABEL_COLUMNS = ("label_id", "request_id", "created_at", "source", "model", "tier", "score", "api_key_id")
PROMPT_COLUMNS = ("request_id", "prompt", "stored_at")


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


@dataclass(slots=True)
class Batch:
    """Rows to write in one transaction, each list in its table's column order."""

    attempts: list[Row] = field(default_factory=list)
    requests: list[Row] = field(default_factory=list)
    labels: list[Row] = field(default_factory=list)
    prompts: list[Row] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.attempts) + len(self.requests) + len(self.labels) + len(self.prompts)


_day_cache: dict[int, str] = {}


def utc_day(timestamp: float) -> str:
    """The UTC date of an epoch timestamp, ``YYYY-MM-DD``."""
    number = int(timestamp // 86400)
    day = _day_cache.get(number)
    if day is None:
        if len(_day_cache) > 64:
            _day_cache.clear()
        day = _day_cache[number] = time.strftime("%Y-%m-%d", time.gmtime(timestamp))
    return day


def attempt_row(event: AttemptSucceeded | AttemptFailed) -> Row:
    """The row for a finished attempt (``ATTEMPT_COLUMNS``)."""
    usage = event.usage
    if isinstance(event, AttemptSucceeded):
        status, error_type, status_code = "ok", None, None
    else:
        status = "cancelled" if event.cancelled else "failed"
        error_type, status_code = event.error_type, event.status_code
    finished = event.timestamp
    return (
        event.attempt_id,
        event.request_id,
        finished - event.latency,
        finished,
        utc_day(finished),
        event.model,
        event.provider,
        event.deployment,
        status,
        error_type,
        status_code,
        usage.input_tokens,
        usage.output_tokens,
        usage.cached_input_tokens,
        usage.reasoning_tokens,
        usage.estimated,
        event.cost,
        event.latency,
        usage.cache_write_tokens,
    )


def request_start(event: RequestStarted) -> Row:
    """What a request's start knows: (id, started_at, day, requested, strategy, category, tags,
    api_key_id, max_cost)."""
    return (
        event.request_id,
        event.timestamp,
        utc_day(event.timestamp),
        event.requested,
        event.strategy,
        event.category,
        ",".join(event.tags) if event.tags else None,
        event.api_key_id,
        event.max_cost,
    )


def request_finish(event: RequestFinished) -> Row:
    """What a request's finish knows: (id, finished_at, requested, strategy, category, api_key_id, ok,
    model_used, cost, latency, input_tokens, output_tokens, attempts, error_type)."""
    return (
        event.request_id,
        event.timestamp,
        event.requested,
        event.strategy,
        event.category,
        event.api_key_id,
        event.ok,
        event.model_used,
        event.cost,
        event.latency,
        event.input_tokens,
        event.output_tokens,
        event.attempts,
        event.error_type,
    )


def request_row(start: Row | None, finish: Row | None) -> Row:
    """The request row (``REQUEST_COLUMNS``) from its start and finish parts; unknown fields are None."""
    if finish is None:
        assert start is not None
        rid, started, day, requested, strategy, category, tags, key, max_cost = start
        return (rid, started, None, day, requested, strategy, category, tags, key, max_cost, *_NO_FINISH)
    rid, finished, requested, strategy, category, key, ok, used, cost, latency, tin, tout, count, error = (
        finish
    )
    started = day = tags = max_cost = None
    if start is not None:
        _, started, day, requested0, strategy0, category0, tags, key0, max_cost = start
        requested = requested if requested is not None else requested0
        strategy = strategy if strategy is not None else strategy0
        category = category if category is not None else category0
        key = key if key is not None else key0
    return (
        rid,
        started,
        finished,
        day,
        requested,
        strategy,
        category,
        tags,
        key,
        max_cost,
        ok,
        used,
        cost,
        latency,
        tin,
        tout,
        count,
        error,
    )


_NO_FINISH = (None,) * 8


def label_row(event: AnswerJudged) -> Row:
    """The outcome label a strategy's judgement makes (``LABEL_COLUMNS``; the score clamped to [0, 1])."""
    score = min(1.0, max(0.0, event.score))
    return (
        event.judgement_id,
        event.request_id,
        event.timestamp,
        event.source,
        event.model,
        event.tier,
        score,
        None,
    )


def prompt_row(event: RequestStarted) -> Row:
    """The stored router input of a request (``PROMPT_COLUMNS``; only with ``ledger.store_prompts``)."""
    return (event.request_id, event.prompt, event.timestamp)
