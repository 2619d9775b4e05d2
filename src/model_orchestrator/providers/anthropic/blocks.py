"""Request content for Anthropic's Messages API: content blocks, tools, the tool choice, the answer tool.

Owns turning core messages (text, images, tool calls, tool results, cache breakpoints), tool definitions,
the tool choice and a JSON-schema answer into Messages-API shapes. Not the rest of the body, nor reading
responses (see ``convert``).

- Tool use: https://docs.anthropic.com/en/docs/agents-and-tools/tool-use/implement-tool-use
- Images: https://docs.anthropic.com/en/docs/build-with-claude/vision
- Prompt caching: https://docs.anthropic.com/en/docs/build-with-claude/prompt-caching

JSON schemas. The Messages API has no response-format switch; its documented way to get JSON of a given
shape is a tool whose ``input_schema`` is that shape, with ``tool_choice`` forcing it ("JSON mode" in the
tool-use guide). So a request with ``json_schema`` gets one more tool, named after the schema (the
*answer tool*), and the model's input to it is returned as the answer's text. Forcing:

- no caller tools, or ``tool_choice`` ``none``: ``{"type": "tool", "name": <schema name>}``;
- caller tools with ``auto``, ``required`` or no choice: ``{"type": "any"}`` (call a tool of theirs, or
  answer through the answer tool);
- caller tools with one named function: that function stays forced; this turn's answer is its call.

A forced choice makes the model write no text before the tool call (the guide says so), so the answer is
the JSON alone. The answer tool's input must be an object; other schemas are refused.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from model_orchestrator.core.errors import CapabilityNotSupportedError, InvalidRequestError
from model_orchestrator.core.messages import ContentPart, ImagePart, Message, Role, TextPart
from model_orchestrator.core.request import ChatRequest
from model_orchestrator.core.tools import JsonSchemaFormat, ToolCall, ToolDefinition

# The one cache type the API has (a 5-minute cache); it goes on the block that ends the cached prefix.
_CACHE_CONTROL = {"type": "ephemeral"}
# https://docs.anthropic.com/en/docs/build-with-claude/vision (supported formats)
_IMAGE_TYPES = ("image/jpeg", "image/png", "image/gif", "image/webp")
_EMPTY_SCHEMA = {"type": "object", "properties": {}}
_ANSWER_DESCRIPTION = "Give your answer: the input of this tool is the whole answer, matching its schema."
# core tool choice mode -> Anthropic tool_choice type
_CHOICE_TYPES = {"auto": "auto", "required": "any", "function": "tool", "none": "none"}


@dataclass(frozen=True, slots=True)
class ToolPlan:
    """The ``tools`` and ``tool_choice`` to send (None: leave the field out)."""

    tools: list[dict[str, Any]] | None
    tool_choice: dict[str, Any] | None


def turns(messages: Iterable[Message]) -> list[dict[str, Any]]:
    """User/assistant turns; consecutive same-role messages merge into one turn.

    Tool results travel in user turns (``tool_result`` blocks), so consecutive results, and a user message
    after them, merge into one user turn, results first, as the API requires.
    """
    result: list[dict[str, Any]] = []
    for message in messages:
        if message.role is Role.SYSTEM:
            continue
        role, blocks = _turn(message)
        if not blocks:
            continue
        if result and result[-1]["role"] == role:
            result[-1]["content"].extend(blocks)
        else:
            result.append({"role": role, "content": blocks})
    return result


def system_blocks(parts: Iterable[TextPart], extra: str | None) -> list[dict[str, Any]]:
    """The system prompt as text blocks (used when one carries a cache breakpoint), ``extra`` last."""
    blocks = content_blocks(parts)
    if extra:
        blocks.append({"type": "text", "text": extra})
    return blocks


def content_blocks(parts: Iterable[ContentPart]) -> list[dict[str, Any]]:
    """Text and image blocks; empty text blocks are rejected by the API, so they are dropped."""
    blocks: list[dict[str, Any]] = []
    for part in parts:
        if isinstance(part, ImagePart):
            block = _image(part)
        elif part.text:
            block = {"type": "text", "text": part.text}
        else:
            continue
        if part.cache_breakpoint:
            block["cache_control"] = dict(_CACHE_CONTROL)
        blocks.append(block)
    return blocks


def answer_tool_name(request: ChatRequest) -> str | None:
    """The name of the tool that carries a JSON-schema answer, or None without a schema."""
    return request.json_schema.name if request.json_schema is not None else None


def plan_tools(request: ChatRequest) -> ToolPlan:
    """The tools and tool choice for ``request``, the answer tool included (see the module docstring)."""
    tools = [_tool(t) for t in request.tools]
    choice = request.tool_choice
    schema = request.json_schema
    if schema is not None:
        tools.append(_answer_tool(schema, request.tools))
        if not request.tools or (choice is not None and choice.mode == "none"):
            wire_choice: dict[str, Any] | None = {"type": "tool", "name": schema.name}
        elif choice is not None and choice.mode == "function":
            wire_choice = {"type": "tool", "name": choice.name}
        else:
            wire_choice = {"type": "any"}
    elif not tools:
        return ToolPlan(None, None)
    elif choice is not None:
        wire_choice = {"type": _CHOICE_TYPES[choice.mode]}
        if choice.name is not None:
            wire_choice["name"] = choice.name
    else:
        wire_choice = {"type": "auto"} if request.parallel_tool_calls is False else None
    if wire_choice is not None and wire_choice["type"] != "none" and request.parallel_tool_calls is False:
        wire_choice["disable_parallel_tool_use"] = True
    return ToolPlan(tools, wire_choice)


def _turn(message: Message) -> tuple[str, list[dict[str, Any]]]:
    if message.role is Role.TOOL:
        return "user", [_tool_result(message)]
    blocks = content_blocks(message.parts)
    if message.role is Role.ASSISTANT:
        blocks.extend(_tool_use(call) for call in message.tool_calls)
    return message.role.value, blocks


def _tool_use(call: ToolCall) -> dict[str, Any]:
    # The API takes the input as a JSON object, not as text.
    return {"type": "tool_use", "id": call.id, "name": call.name, "input": dict(call.parsed_arguments())}


def _tool_result(message: Message) -> dict[str, Any]:
    if not message.tool_call_id:
        raise InvalidRequestError("a tool result needs the id of the tool call it answers (tool_call_id)")
    block: dict[str, Any] = {"type": "tool_result", "tool_use_id": message.tool_call_id}
    content = content_blocks(message.parts)
    if content:
        block["content"] = content
    return block


def _image(part: ImagePart) -> dict[str, Any]:
    if part.is_data:
        try:
            media_type, data = part.data()
        except ValueError as exc:
            raise InvalidRequestError(f"image: {exc}") from exc
        if media_type not in _IMAGE_TYPES:
            raise InvalidRequestError(
                f"Anthropic models take JPEG, PNG, GIF or WebP images, not {media_type}; convert the image"
            )
        source: dict[str, Any] = {"type": "base64", "media_type": media_type, "data": data}
    elif part.url.startswith(("https://", "http://")):
        source = {"type": "url", "url": part.url}
    else:
        raise InvalidRequestError("an image must be an http(s) URL or a data:<type>;base64,<data> URL")
    return {"type": "image", "source": source}


def _tool(tool: ToolDefinition) -> dict[str, Any]:
    wire: dict[str, Any] = {"name": tool.name}
    if tool.description:
        wire["description"] = tool.description
    # input_schema is required; a tool without parameters takes an empty object.
    wire["input_schema"] = _plain(tool.parameters) if tool.parameters else dict(_EMPTY_SCHEMA)
    return wire


def _answer_tool(schema: JsonSchemaFormat, tools: Iterable[ToolDefinition]) -> dict[str, Any]:
    if any(t.name == schema.name for t in tools):
        raise InvalidRequestError(
            f"the JSON schema is named {schema.name!r}, like one of the tools; rename one of them"
        )
    body = _plain(schema.schema) or dict(_EMPTY_SCHEMA)
    if body.get("type", "object") != "object":
        raise CapabilityNotSupportedError(
            f"Anthropic models answer a JSON schema through a tool whose input is an object, and schema "
            f"{schema.name!r} describes a {body.get('type')}; wrap it in an object property",
            capability="json_schema",
        )
    description = schema.description or _ANSWER_DESCRIPTION
    return {"name": schema.name, "description": description, "input_schema": body}


def _plain(value: Mapping[str, object]) -> dict[str, Any]:
    """A JSON-ready copy of a read-only schema mapping."""
    copied: dict[str, Any] = json.loads(json.dumps(value))
    return copied
