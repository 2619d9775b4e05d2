"""Reading what an agent CLI printed: the JSON result forms of claude, gemini and codex.

Owns recognising those forms and pulling out text, usage and error flags; returns None for anything it
does not recognise so the adapter can fall back to plain text. Does not run processes or raise errors.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from model_orchestrator.core.usage import Usage


@dataclass(frozen=True, slots=True)
class ParsedOutput:
    """The answer and metadata found in a CLI's JSON output."""

    text: str
    usage: Usage | None = None
    is_error: bool = False
    reported_cost: float | None = None
    session_id: str | None = None


def parse_json_output(stdout: str) -> ParsedOutput | None:
    """The parsed answer, or None when ``stdout`` is not a JSON form we know."""
    document = _loads(stdout.strip())
    if isinstance(document, dict):
        return _claude_result(document) or _gemini_result(document)
    events = [
        e for e in (_loads(line) for line in stdout.splitlines() if line.strip()) if isinstance(e, dict)
    ]
    if not events:
        return None
    # claude's stream-json ends with the same result object its json form prints.
    for event in reversed(events):
        claude = _claude_result(event)
        if claude is not None:
            return claude
    return _codex_events(events)


def _claude_result(doc: dict[str, object]) -> ParsedOutput | None:
    """claude -p --output-format json: {type: result, result, is_error, usage, total_cost_usd, session_id}.

    https://docs.claude.com/en/docs/claude-code/headless
    """
    if doc.get("type") != "result" or not ("result" in doc or "is_error" in doc):
        return None
    usage = _dict(doc.get("usage"))
    parsed_usage = None
    if usage is not None:
        # Anthropic counts cache reads and writes outside input_tokens; ours include them.
        cache_read = _int(usage.get("cache_read_input_tokens"))
        cache_write = _int(usage.get("cache_creation_input_tokens"))
        parsed_usage = Usage(
            input_tokens=_int(usage.get("input_tokens")) + cache_read + cache_write,
            output_tokens=_int(usage.get("output_tokens")),
            cached_input_tokens=cache_read,
            cache_write_tokens=cache_write,
        )
    cost = doc.get("total_cost_usd")
    return ParsedOutput(
        text=_str(doc.get("result")),
        usage=parsed_usage,
        is_error=doc.get("is_error") is True,
        reported_cost=float(cost) if isinstance(cost, int | float) else None,
        session_id=_str(doc.get("session_id")) or None,
    )


def _gemini_result(doc: dict[str, object]) -> ParsedOutput | None:
    """gemini -o json: {response, stats: {models: {name: {tokens: {...}}}}, error?}.

    https://geminicli.com/docs/cli/headless/
    """
    if "response" not in doc and "error" not in doc:
        return None
    error = _dict(doc.get("error"))
    text = _str(doc.get("response"))
    if error is not None and not text:
        text = _str(error.get("message"))
    return ParsedOutput(text=text, usage=_gemini_usage(doc.get("stats")), is_error=error is not None)


def _gemini_usage(stats: object) -> Usage | None:
    models = _dict(_obj(stats).get("models"))
    if not models:
        return None
    total = Usage()
    for model_stats in models.values():
        tokens = _obj(_obj(model_stats).get("tokens"))
        # Gemini counts thinking tokens apart from candidates; ours count reasoning inside output.
        thoughts = _int(tokens.get("thoughts"))
        total = total + Usage(
            input_tokens=_int(tokens.get("prompt")),
            output_tokens=_int(tokens.get("candidates")) + thoughts,
            cached_input_tokens=_int(tokens.get("cached")),
            reasoning_tokens=thoughts,
        )
    return total


def _codex_events(events: list[dict[str, object]]) -> ParsedOutput | None:
    """codex exec --json: JSONL of thread events; the answer is the last completed agent_message.

    https://github.com/openai/codex/blob/main/codex-rs/exec/src/exec_events.rs
    """
    text: str | None = None
    usage: Usage | None = None
    errors: list[str] = []
    for event in events:
        kind = event.get("type")
        item = _obj(event.get("item"))
        if kind == "item.completed" and item.get("type") == "agent_message":
            text = _str(item.get("text"))
        elif kind == "turn.completed":
            turn = _obj(event.get("usage"))
            usage = (usage or Usage()) + Usage(
                input_tokens=_int(turn.get("input_tokens")),
                output_tokens=_int(turn.get("output_tokens")),
                cached_input_tokens=_int(turn.get("cached_input_tokens")),
            )
        elif kind in ("turn.failed", "error"):
            detail = _dict(event.get("error")) or event
            errors.append(_str(detail.get("message")))
    if text is None and not errors:
        return None
    if errors:
        return ParsedOutput(text="\n".join(errors), usage=usage, is_error=True)
    return ParsedOutput(text=text or "", usage=usage)


def _loads(text: str) -> object:
    try:
        return json.loads(text)
    except ValueError:
        return None


def _dict(value: object) -> dict[str, object] | None:
    return value if isinstance(value, dict) else None


def _obj(value: object) -> dict[str, object]:
    return value if isinstance(value, dict) else {}


def _int(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _str(value: object) -> str:
    return value if isinstance(value, str) else ""
