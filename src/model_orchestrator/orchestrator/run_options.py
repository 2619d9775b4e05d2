"""``RunOptions``: the options one request through the façade may carry, typed once.

``Orchestrator.request``, ``complete``, ``stream`` and ``complete_sync`` take them as keyword arguments
(``**options: Unpack[RunOptions]``), so a type checker flags a misspelt or mistyped option at the call
site, and ``split_options`` refuses an unknown one at run time with a ``TypeError`` naming the closest
option (for callers that pass a dict, such as the CLI). Two groups: ``RequestOptions`` shape the
``ChatRequest`` (``request_changes`` turns them into its fields); ``StrategyOptions`` configure a
strategy built on the fly (``--strategy``). It does not validate values: the request and the strategy
options (``config.strategy_options``) do.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from typing import TypedDict

from model_orchestrator.core.request import ContextOverflow, ResponseFormat
from model_orchestrator.core.tools import JsonSchemaFormat, ToolChoice, ToolDefinition


class RequestOptions(TypedDict, total=False):
    """What the request asks of the model. None (or leaving one out) keeps the default."""

    system: str | None  # a system prompt (prompts given as text only)
    max_tokens: int | None
    temperature: float | None
    top_p: float | None
    stop: Sequence[str] | None
    json: bool  # answer in JSON (``response_format`` JSON)
    response_format: ResponseFormat | None
    json_schema: JsonSchemaFormat | None
    logprobs: bool
    top_logprobs: int | None
    timeout: float | None  # seconds the whole request may take (becomes the deadline)
    category: str | None  # recorded in the cost ledger
    tags: Sequence[str] | None
    api_key_id: str | None  # the virtual key asking (budgets, quotas, feedback)
    request_id: str | None  # default: a new random id
    context_overflow: ContextOverflow | None  # when the prompt does not fit a model's context window
    tools: Sequence[ToolDefinition] | None
    tool_choice: ToolChoice | None
    parallel_tool_calls: bool | None


class StrategyOptions(TypedDict, total=False):
    """Options of a strategy built on the fly (``strategy=``); None keeps the strategy's default."""

    threshold: float | None
    ensemble_size: int | None
    scorer: str | None
    aggregate: str | None
    extractor: str | None
    delay: float | None
    strong_share: float | None
    router: str | None


class RunOptions(RequestOptions, StrategyOptions, total=False):
    """Every option of ``Orchestrator.complete`` / ``stream`` / ``request`` / ``complete_sync``."""


REQUEST_OPTIONS = frozenset(RequestOptions.__optional_keys__)
STRATEGY_OPTIONS = frozenset(StrategyOptions.__optional_keys__)
_KNOWN = REQUEST_OPTIONS | STRATEGY_OPTIONS
_SEQUENCES = ("stop", "tags", "tools")


def split_options(options: Mapping[str, object]) -> tuple[dict[str, object], dict[str, object]]:
    """(request options, strategy options without Nones); a ``TypeError`` for a name that is neither."""
    request: dict[str, object] = {}
    strategy: dict[str, object] = {}
    for name, value in options.items():
        if name in REQUEST_OPTIONS:
            request[name] = value
        elif name not in STRATEGY_OPTIONS:
            raise TypeError(_unknown(name))
        elif value is not None:
            strategy[name] = value
    return request, strategy


def request_changes(options: Mapping[str, object], now: float) -> dict[str, object]:
    """The ``ChatRequest`` fields ``options`` set (None dropped); ``timeout`` counts from ``now``
    (the runtime clock's monotonic time). ``system`` is the caller's to apply (text prompts only)."""
    changes: dict[str, object] = {}
    for name, value in options.items():
        if value is None or name == "system":
            continue
        if name == "timeout":
            changes["deadline"] = now + float(value)  # type: ignore[arg-type]
        elif name == "json":
            if value:
                changes["response_format"] = ResponseFormat.JSON
        elif name in _SEQUENCES:
            changes[name] = tuple(value)  # type: ignore[arg-type]
        else:
            changes[name] = value
    return changes


def _unknown(name: str) -> str:
    close = difflib.get_close_matches(name, _KNOWN, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return f"unknown run option {name!r}{hint}; the options are: {', '.join(sorted(_KNOWN))}"
