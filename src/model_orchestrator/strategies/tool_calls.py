"""Answers that call tools, as strategies see them: compared, checked against the offered tools, scored.

Owns the vote key of a tool-call answer (each call's name and canonical arguments, so ``{"a":1,"b":2}``
and ``{"b": 2, "a": 1}`` vote together; the calls of one answer as a set, order ignored), the check of a
call against the tools the request offered (a known name; arguments that are a JSON object valid under the
tool's JSON schema), and the confidence rule for tool calls: a text scorer cannot read a call, so an answer
whose calls all pass the check scores exactly the threshold (accepted), and one with any problem scores 0
(escalated). Pure: no model calls.
"""

from __future__ import annotations

from collections.abc import Sequence

from model_orchestrator.core.errors import InvalidRequestError
from model_orchestrator.core.response import Completion
from model_orchestrator.core.tools import ToolCall, ToolDefinition

TOOL_ARGUMENTS_SOURCE = "tool_arguments"
"""The confidence source recorded for answers judged by their tool calls."""


def vote_key(calls: Sequence[ToolCall]) -> str:
    """What a tool-call answer votes for: ``name(canonical arguments)`` per call, sorted, joined."""
    signatures = sorted(f"{call.name}({call.canonical_arguments()})" for call in calls)
    return "; ".join(signatures)


def tool_call_issues(tools: Sequence[ToolDefinition], calls: Sequence[ToolCall]) -> tuple[str, ...]:
    """The problems with ``calls`` against the offered ``tools`` (empty: every call is well-formed).

    A call must name an offered tool and pass arguments that are a JSON object valid under the tool's
    ``parameters`` schema (an empty schema accepts any object).
    """
    offered = {tool.name: tool for tool in tools}
    issues: list[str] = []
    for call in calls:
        tool = offered.get(call.name)
        if tool is None:
            names = ", ".join(sorted(offered)) or "none"
            issues.append(f"tool call {call.name!r} names no offered tool (offered: {names})")
            continue
        try:
            arguments = call.parsed_arguments()
        except InvalidRequestError as exc:
            issues.append(exc.message)
            continue
        issues.extend(_schema_issues(tool, arguments))
    return tuple(issues)


def _schema_issues(tool: ToolDefinition, arguments: object) -> list[str]:
    if not tool.parameters:
        return []
    import jsonschema  # type: ignore[import-untyped]  # the library ships no type information

    schema = dict(tool.parameters)
    validator_class = jsonschema.validators.validator_for(schema)
    try:
        validator_class.check_schema(schema)
    except jsonschema.SchemaError as exc:
        return [f"tool {tool.name!r} has an invalid JSON schema ({exc.message}), so no call to it passes"]
    errors = sorted(validator_class(schema).iter_errors(arguments), key=lambda e: list(e.absolute_path))
    return [f"tool call {tool.name!r} arguments at {e.json_path}: {e.message}" for e in errors]


def tool_call_confidence(
    tools: Sequence[ToolDefinition], completion: Completion, threshold: float
) -> tuple[float, tuple[str, ...]] | None:
    """The confidence of a tool-call answer under ``threshold``, with the problems found; None for an
    answer without tool calls (its scorer decides)."""
    if not completion.tool_calls:
        return None
    issues = tool_call_issues(tools, completion.tool_calls)
    return (0.0 if issues else threshold), issues
