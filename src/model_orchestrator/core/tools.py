"""Tools and structured output: what a caller offers the model to call, and what the model calls.

Owns the provider-neutral shapes of tool definitions, the caller's tool choice, the model's tool calls
(whole and streamed in pieces) and a JSON-schema response format. Not how any provider encodes them:
each adapter converts these both ways. JSON schemas are kept as plain mappings and treated as read-only;
arguments stay the exact JSON text the model produced, so nothing is lost or reformatted on the way.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from model_orchestrator.core.errors import InvalidRequestError

JsonObject = Mapping[str, object]
"""A JSON object (a schema, parsed arguments), never mutated once built."""

ToolChoiceMode = Literal["auto", "none", "required", "function"]


@dataclass(frozen=True, slots=True)
class ToolDefinition:
    """One function the model may call: a name, what it does, and a JSON schema of its arguments."""

    name: str
    description: str | None = None
    parameters: JsonObject = field(default_factory=dict, hash=False)
    strict: bool | None = None


@dataclass(frozen=True, slots=True)
class ToolChoice:
    """How the model must use the tools: ``auto``, ``none``, ``required`` or one named ``function``."""

    mode: ToolChoiceMode = "auto"
    name: str | None = None

    def __post_init__(self) -> None:
        if (self.mode == "function") != (self.name is not None):
            raise InvalidRequestError("tool_choice names a function exactly when its mode is 'function'")

    @classmethod
    def function(cls, name: str) -> ToolChoice:
        """Force a call to the tool ``name``."""
        return cls("function", name)


@dataclass(frozen=True, slots=True)
class ToolCall:
    """One call the model made: an id to answer it by, the tool's name and its arguments as JSON text."""

    id: str
    name: str
    arguments: str = "{}"

    def parsed_arguments(self) -> JsonObject:
        """The arguments as a JSON object; ``InvalidRequestError`` when the model wrote something else."""
        try:
            value = json.loads(self.arguments or "{}")
        except ValueError as exc:
            raise InvalidRequestError(f"tool call {self.name!r} has arguments that are not JSON") from exc
        if not isinstance(value, dict):
            raise InvalidRequestError(f"tool call {self.name!r} has arguments that are not a JSON object")
        return value

    def canonical_arguments(self) -> str:
        """The arguments re-encoded with sorted keys and no spaces: equal calls compare equal.

        Arguments that are not JSON are returned as written, so they only match themselves.
        """
        try:
            value = json.loads(self.arguments or "{}")
        except ValueError:
            return self.arguments
        return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


@dataclass(frozen=True, slots=True)
class ToolCallDelta:
    """A piece of a streamed tool call. ``index`` says which call it extends; the first piece of a call
    carries its ``id`` and ``name``, later pieces only more ``arguments`` text."""

    index: int
    id: str | None = None
    name: str | None = None
    arguments: str = ""


@dataclass(frozen=True, slots=True)
class JsonSchemaFormat:
    """An answer that must be a JSON value matching ``schema`` (``strict``: the provider enforces it)."""

    name: str
    schema: JsonObject = field(default_factory=dict, hash=False)
    strict: bool | None = None
    description: str | None = None


def assemble_tool_calls(deltas: list[ToolCallDelta]) -> tuple[ToolCall, ...]:
    """Join streamed pieces into whole calls, in index order (what ``complete`` would have returned)."""
    ids: dict[int, str] = {}
    names: dict[int, str] = {}
    arguments: dict[int, list[str]] = {}
    for delta in deltas:
        if delta.id:
            ids[delta.index] = delta.id
        if delta.name:
            names[delta.index] = names.get(delta.index, "") + delta.name
        arguments.setdefault(delta.index, []).append(delta.arguments)
    return tuple(
        ToolCall(ids.get(i, f"call_{i}"), names.get(i, ""), "".join(arguments[i]) or "{}")
        for i in sorted(arguments)
    )
