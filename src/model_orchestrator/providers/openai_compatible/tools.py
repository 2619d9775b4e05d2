"""Tools, images and JSON schemas in the Chat Completions wire format, both ways.

Owns encoding messages (image parts, assistant ``tool_calls``, ``tool`` turns), ``tools``,
``tool_choice``, ``parallel_tool_calls`` and ``response_format: json_schema``, and decoding the model's
tool calls, whole or streamed in pieces, from parsed JSON. ``convert`` calls it; a request without
tools, images or a schema takes the plain path there and never reaches the rich encoders below.
References: https://platform.openai.com/docs/api-reference/chat/create (messages, tools, tool_choice,
response_format), https://platform.openai.com/docs/guides/function-calling and
https://platform.openai.com/docs/guides/structured-outputs.
"""

from __future__ import annotations

from typing import Any

from model_orchestrator.core.messages import ImagePart, Message, Role, TextPart
from model_orchestrator.core.request import ChatRequest
from model_orchestrator.core.tools import JsonObject, JsonSchemaFormat, ToolCall, ToolCallDelta, ToolChoice
from model_orchestrator.providers.json_reading import strict_int, strict_list, strict_object, strict_text


def wire_message(message: Message) -> dict[str, Any]:
    """One request message; text-only turns stay ``{role, content: str}``."""
    parts = message.parts
    plain = message.tool_call_id is None and not message.tool_calls
    if plain and len(parts) == 1 and isinstance(parts[0], TextPart):
        return {"role": message.role.value, "content": parts[0].text}  # nearly every turn: checked first
    if not plain or message.images:
        return _rich_message(message)
    return {"role": message.role.value, "content": message.text}


def _rich_message(message: Message) -> dict[str, Any]:
    wire: dict[str, Any] = {"role": message.role.value}
    if message.images:
        wire["content"] = [_part(part) for part in message.parts]
    else:
        # An assistant turn that only called tools has no content (null, as OpenAI sends it).
        text = message.text
        wire["content"] = text if text or message.role is not Role.ASSISTANT else None
    if message.tool_calls:
        wire["tool_calls"] = [
            {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
            for c in message.tool_calls
        ]
    if message.tool_call_id is not None:
        wire["tool_call_id"] = message.tool_call_id
    return wire


def _part(part: TextPart | ImagePart) -> dict[str, Any]:
    if isinstance(part, TextPart):
        return {"type": "text", "text": part.text}
    image: dict[str, Any] = {"url": part.url}
    if part.detail is not None:
        image["detail"] = part.detail
    return {"type": "image_url", "image_url": image}


def add_tool_fields(payload: dict[str, Any], request: ChatRequest) -> None:
    """Put ``tools``, ``tool_choice``, ``parallel_tool_calls`` and a JSON schema into ``payload``."""
    if request.tools:
        payload["tools"] = [
            {"type": "function", "function": _function(t.name, t.description, t.parameters, t.strict)}
            for t in request.tools
        ]
    if request.tool_choice is not None:
        payload["tool_choice"] = wire_tool_choice(request.tool_choice)
    if request.parallel_tool_calls is not None:
        payload["parallel_tool_calls"] = request.parallel_tool_calls
    if request.json_schema is not None:
        schema = wire_json_schema(request.json_schema)
        payload["response_format"] = {"type": "json_schema", "json_schema": schema}


def _function(
    name: str, description: str | None, parameters: JsonObject, strict: bool | None
) -> dict[str, Any]:
    function: dict[str, Any] = {"name": name}
    if description is not None:
        function["description"] = description
    if parameters:
        function["parameters"] = dict(parameters)
    if strict is not None:
        function["strict"] = strict
    return function


def wire_tool_choice(choice: ToolChoice) -> str | dict[str, Any]:
    """``auto``/``none``/``required``, or ``{type: function, function: {name}}``."""
    if choice.mode == "function":
        return {"type": "function", "function": {"name": choice.name}}
    return choice.mode


def wire_json_schema(schema: JsonSchemaFormat) -> dict[str, Any]:
    """``response_format.json_schema``: name, schema, and strict and description when set."""
    wire: dict[str, Any] = {"name": schema.name, "schema": dict(schema.schema)}
    if schema.strict is not None:
        wire["strict"] = schema.strict
    if schema.description is not None:
        wire["description"] = schema.description
    return wire


def tool_calls_of(value: object) -> tuple[ToolCall, ...]:
    """The whole tool calls of a response message (arguments ``{}`` when a server sent none; ``call_<n>``
    for a server that sent no id, so the call can still be answered). ``MalformedError`` for a field
    of the wrong type."""
    calls = strict_list(value, "tool_calls")
    if not calls:
        return ()
    whole = []
    for n, entry in enumerate(calls):
        call = strict_object(entry, "a tool call")
        function = strict_object(call.get("function"), "a tool call's function")
        whole.append(
            ToolCall(
                strict_text(call.get("id"), "a tool call's id") or f"call_{n}",
                strict_text(function.get("name"), "a tool call's name") or "",
                strict_text(function.get("arguments"), "a tool call's arguments") or "{}",
            )
        )
    return tuple(whole)


def tool_call_deltas_of(value: object, started: set[int]) -> tuple[ToolCallDelta, ...]:
    """The streamed tool-call pieces of one chunk. ``started`` holds the indexes whose first piece was
    seen (updated here): a first piece without an id gets ``call_<index>``, as ``tool_calls_of`` does."""
    if value is None:
        return ()
    deltas = []
    for entry in strict_list(value, "tool_calls"):
        piece = strict_object(entry, "a tool call piece")
        index = strict_int(piece.get("index"), "a tool call piece's index") or 0
        call_id = strict_text(piece.get("id"), "a tool call piece's id") or None
        if index not in started:
            started.add(index)
            call_id = call_id or f"call_{index}"
        function = strict_object(piece.get("function"), "a tool call piece's function")
        name = strict_text(function.get("name"), "a tool call piece's name") or None
        arguments = strict_text(function.get("arguments"), "a tool call piece's arguments") or ""
        deltas.append(ToolCallDelta(index, call_id, name, arguments))
    return tuple(deltas)
