"""Messages, content parts, tools and JSON schemas of a Chat Completions request, into core types; tool
calls back into the wire's shapes (whole and streamed).

Owns what the gateway accepts of them and the 400 for what it cannot carry (legacy ``functions``, parts
other than text and ``image_url``, images outside user turns, URLs that are neither http(s) nor base64
``data:``, a ``tool_choice`` forcing a call without tools). Nothing that would change the answer is
dropped: without tools, ``tool_choice`` ``auto``/``none`` and ``parallel_tool_calls`` have nothing to act on
and are not sent on. Tools sharing a name are passed on as sent: that names differ is a rule of some
upstream APIs (which then refuse the request), not one JSON Schema can state, so neither the document
nor the gateway states it. ``openapi`` states these rules in the document.
Not the rest of the request or the response envelope (``convert``), nor HTTP (``app``).
Shapes: the Chat Completions API reference (the wire DTOs in ``wire`` cite it).
"""

from __future__ import annotations

import re

from model_orchestrator.core.messages import ContentPart, ImagePart, Message, Role, TextPart
from model_orchestrator.core.tools import (
    JsonSchemaFormat,
    ToolCall,
    ToolCallDelta,
    ToolChoice,
    ToolDefinition,
)
from model_orchestrator.gateway.errors import GatewayError
from model_orchestrator.wire import (
    ChatCompletionRequest,
    ChatMessage,
    ChunkFunction,
    ChunkToolCall,
    FunctionDefinition,
    MessageToolCall,
    ResponseFormatParam,
)
from model_orchestrator.wire import ContentPart as WirePart

ROLES = {
    "system": Role.SYSTEM,
    "developer": Role.SYSTEM,
    "user": Role.USER,
    "assistant": Role.ASSISTANT,
    "tool": Role.TOOL,
}
# The Chat Completions rule for function and schema names; other wire formats' rules are the same or looser.
_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
_UNSUPPORTED_IN_MESSAGES = ("function_call", "audio")
_OTHER_IMAGE_PARTS = frozenset({"input_image", "image"})


def chat_message(message: ChatMessage, where: str) -> Message:
    """The core message for one request message (a 400 ``GatewayError`` naming ``where`` otherwise)."""
    extra = message.model_extra
    field = next((n for n in _UNSUPPORTED_IN_MESSAGES if extra.get(n) is not None), None) if extra else None
    if field is not None:
        hint = "; send tool_calls instead" if field == "function_call" else ""
        raise GatewayError(400, f"{field} in messages is not supported by this gateway{hint}", param=where)
    role = ROLES[message.role]
    content = message.content
    if message.tool_calls is None and message.tool_call_id is None and role is not Role.TOOL:
        if content is None or isinstance(content, str):
            return Message(role, (TextPart(content or ""),))
        return Message(role, _parts(content, role, where))
    return Message(
        role,
        _parts(content, role, where) if content else (),
        _tool_calls(message.tool_calls, role, where),
        _tool_call_id(message.tool_call_id, role, where),
    )


def _parts(content: str | list[WirePart] | None, role: Role, where: str) -> tuple[ContentPart, ...]:
    if content is None or isinstance(content, str):
        return (TextPart(content or ""),)
    return tuple(_part(part, role, f"{where}.content.{index}") for index, part in enumerate(content))


def _part(part: WirePart, role: Role, param: str) -> ContentPart:
    kind = part.type
    if kind == "text":
        if part.text is None:
            raise GatewayError(400, "A text content part needs a 'text' string", param=param)
        return TextPart(part.text)
    if kind == "image_url":
        return _image(part, role, param)
    if kind in _OTHER_IMAGE_PARTS:
        raise GatewayError(
            400, f"Content parts of type {kind!r} are not Chat Completions parts: send image_url", param=param
        )
    raise GatewayError(
        400, f"Content parts of type {kind[:40]!r} are not supported: send text or image_url", param=param
    )


def _image(part: WirePart, role: Role, param: str) -> ImagePart:
    image = part.image_url
    if image is None:
        raise GatewayError(400, "An image_url content part needs an 'image_url' object", param=param)
    if role is not Role.USER:
        raise GatewayError(400, "Images are accepted in user messages only", param=param)
    url = image.url
    if url.startswith("data:"):
        try:
            ImagePart(url).data()
        except ValueError:
            raise GatewayError(
                400,
                "An image data URL must be data:<media type>;base64,<data>",
                param=f"{param}.image_url.url",
            ) from None
    elif not url.startswith(("https://", "http://")):
        raise GatewayError(
            400, "An image URL must be http(s) or a base64 data: URL", param=f"{param}.image_url.url"
        )
    return ImagePart(url, image.detail)


def _tool_calls(calls: list[MessageToolCall] | None, role: Role, where: str) -> tuple[ToolCall, ...]:
    if not calls:
        return ()
    if role is not Role.ASSISTANT:
        raise GatewayError(400, "tool_calls belong to assistant messages", param=f"{where}.tool_calls")
    for index, call in enumerate(calls):
        if not call.id or not call.function.name:
            param = f"{where}.tool_calls.{index}"
            raise GatewayError(400, "A tool call needs an id and a function name", param=param)
    return tuple(ToolCall(c.id, c.function.name, c.function.arguments or "{}") for c in calls)


def _tool_call_id(tool_call_id: str | None, role: Role, where: str) -> str | None:
    if role is Role.TOOL and not tool_call_id:
        raise GatewayError(
            400, "A tool message needs the tool_call_id it answers", param=f"{where}.tool_call_id"
        )
    if role is not Role.TOOL and tool_call_id is not None:
        raise GatewayError(400, "tool_call_id belongs to tool messages", param=f"{where}.tool_call_id")
    return tool_call_id


def tool_options(
    body: ChatCompletionRequest,
) -> tuple[tuple[ToolDefinition, ...], ToolChoice | None, bool | None]:
    """``tools``, ``tool_choice`` and ``parallel_tool_calls`` as core values (a 400 for what cannot be)."""
    tools = tuple(_tool(index, tool.function) for index, tool in enumerate(body.tools or ()))
    names = [t.name for t in tools]
    choice = body.tool_choice
    if not tools:
        # Without tools, "auto", "none" and parallel_tool_calls have nothing to act on (so nothing is
        # lost by not sending them); forcing a call cannot be honoured.
        if choice is not None and choice not in ("auto", "none"):
            raise GatewayError(400, "tool_choice forces a tool call, so it needs tools", param="tool_choice")
        return (), None, None
    if choice is None:
        return tools, None, body.parallel_tool_calls
    if isinstance(choice, str):
        return tools, ToolChoice(choice), body.parallel_tool_calls
    if choice.function.name not in names:
        raise GatewayError(
            400,
            f"tool_choice names {choice.function.name[:64]!r}, which is not among the tools",
            param="tool_choice",
        )
    return tools, ToolChoice.function(choice.function.name), body.parallel_tool_calls


def _tool(index: int, function: FunctionDefinition) -> ToolDefinition:
    name = function.name
    if not _NAME.fullmatch(name):
        raise GatewayError(
            400,
            "A tool's name must be 1 to 64 letters, digits, underscores or dashes",
            param=f"tools.{index}.function.name",
        )
    return ToolDefinition(name, function.description, function.parameters or {}, function.strict)


def json_schema_of(response_format: ResponseFormatParam | None) -> JsonSchemaFormat | None:
    """The JSON schema a ``response_format: json_schema`` asks for (None for other formats)."""
    if response_format is None:
        return None
    spec = response_format.json_schema
    if response_format.type != "json_schema":
        if spec is not None:
            message = f"response_format of type {response_format.type!r} takes no json_schema"
            raise GatewayError(400, message, param="response_format.json_schema")
        return None
    if spec is None:
        raise GatewayError(
            400, "response_format json_schema needs a json_schema object with a name", param="response_format"
        )
    if not _NAME.fullmatch(spec.name):
        raise GatewayError(
            400,
            "json_schema.name must be 1 to 64 letters, digits, underscores or dashes",
            param="response_format.json_schema.name",
        )
    return JsonSchemaFormat(spec.name, spec.json_schema or {}, spec.strict, spec.description)


def wire_tool_calls(calls: tuple[ToolCall, ...]) -> list[dict[str, object]]:
    """``message.tool_calls`` of a whole response, as JSON-ready objects (built directly: this runs on
    every tool-call answer)."""
    return [
        {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
        for c in calls
    ]


def chunk_tool_calls(deltas: tuple[ToolCallDelta, ...]) -> list[ChunkToolCall]:
    """``delta.tool_calls`` of a stream chunk: the first piece of a call carries its id, type and name
    (with the arguments so far, ``""`` as the API sends it), later pieces only ``index`` and arguments."""
    return [
        ChunkToolCall(
            index=d.index,
            id=d.id,
            type="function" if d.id or d.name else None,
            function=ChunkFunction(name=d.name, arguments=d.arguments),
        )
        for d in deltas
    ]
