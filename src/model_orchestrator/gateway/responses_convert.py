"""Responses-format bodies (``wire.responses``) to the façade's types, and results back into response objects.

Owns the mapping both ways: ``instructions`` into a system message, ``input`` text or items (message items
with ``input_text``/``input_image``/``output_text`` parts; ``function_call`` items join the assistant turn
before them, ``function_call_output`` items become ``tool`` messages), function tools, ``tool_choice``,
``text.format`` (``json_schema`` into a core JSON schema, ``json_object`` into JSON mode), the output items
(a message with ``output_text``, ``function_call`` items), ``status`` (``incomplete`` when the answer was
cut at ``max_output_tokens`` or filtered) and usage. Not HTTP (``responses_api``), not streaming
(``responses_stream``).
"""

from __future__ import annotations

import time
from collections.abc import Mapping

from model_orchestrator.core.messages import ContentPart, ImagePart, Message, Role, TextPart
from model_orchestrator.core.request import ChatRequest, ResponseFormat
from model_orchestrator.core.response import FinishReason
from model_orchestrator.core.tools import JsonSchemaFormat, ToolCall, ToolChoice, ToolDefinition
from model_orchestrator.core.usage import Usage
from model_orchestrator.gateway.errors import GatewayError
from model_orchestrator.wire.responses import (
    FunctionCallItem,
    FunctionCallOutputItem,
    InputImage,
    MessageItem,
    OutputText,
    ResponsesRequest,
    TextFormatJsonObject,
    TextFormatJsonSchema,
)

_ROLES = {"user": Role.USER, "assistant": Role.ASSISTANT, "system": Role.SYSTEM, "developer": Role.SYSTEM}
_INCOMPLETE = {FinishReason.LENGTH: "max_output_tokens", FinishReason.CONTENT_FILTER: "content_filter"}


def to_chat_request(
    body: ResponsesRequest, *, request_id: str, api_key_id: str | None, max_tokens_ceiling: int
) -> ChatRequest:
    """The façade request for ``body`` (a 400 ``GatewayError`` for what cannot be honoured)."""
    if body.max_output_tokens is not None and body.max_output_tokens > max_tokens_ceiling:
        raise GatewayError(
            400,
            f"max_output_tokens {body.max_output_tokens} is above this gateway's ceiling of "
            f"{max_tokens_ceiling}",
            param="max_output_tokens",
        )
    tools, choice = _tool_options(body)
    text_format = body.text.format if body.text else None
    schema = None
    if isinstance(text_format, TextFormatJsonSchema):
        schema = JsonSchemaFormat(
            text_format.name, text_format.schema_, text_format.strict, text_format.description
        )
    json_mode = isinstance(text_format, TextFormatJsonObject | TextFormatJsonSchema)
    return ChatRequest(
        messages=chat_messages(body),
        max_tokens=body.max_output_tokens,
        temperature=body.temperature,
        top_p=body.top_p,
        response_format=ResponseFormat.JSON if json_mode else ResponseFormat.TEXT,
        api_key_id=api_key_id,
        request_id=request_id,
        tools=tools,
        tool_choice=choice,
        parallel_tool_calls=body.parallel_tool_calls if tools else None,
        json_schema=schema,
    )


def chat_messages(body: ResponsesRequest) -> tuple[Message, ...]:
    """``instructions`` and ``input`` as core messages."""
    messages: list[Message] = [Message.system(body.instructions)] if body.instructions else []
    if isinstance(body.input, str):
        return (*messages, Message.user(body.input))
    for index, item in enumerate(body.input):
        where = f"input.{index}"
        if isinstance(item, FunctionCallItem):
            call = ToolCall(item.call_id, item.name, item.arguments or "{}")
            last = messages[-1] if messages else None
            if last is not None and last.role is Role.ASSISTANT:
                messages[-1] = Message(Role.ASSISTANT, last.parts, (*last.tool_calls, call))
            else:
                messages.append(Message(Role.ASSISTANT, (), (call,)))
        elif isinstance(item, FunctionCallOutputItem):
            messages.append(Message.tool_result(item.call_id, item.output))
        else:
            messages.append(_message(item, where))
    if not messages:
        raise GatewayError(400, "input holds no items", param="input")
    return tuple(messages)


def _message(item: MessageItem, where: str) -> Message:
    role = _ROLES[item.role]
    if isinstance(item.content, str):
        return Message.of(role, item.content)
    parts: list[ContentPart] = []
    for index, part in enumerate(item.content):
        if isinstance(part, InputImage):
            if role is not Role.USER:
                raise GatewayError(
                    400, "Images are accepted in user messages only", param=f"{where}.content.{index}"
                )
            parts.append(ImagePart(part.image_url, part.detail))
        elif isinstance(part, OutputText) and role is not Role.ASSISTANT:
            raise GatewayError(
                400, "output_text belongs to assistant messages", param=f"{where}.content.{index}"
            )
        else:
            parts.append(TextPart(part.text))
    return Message(role, tuple(parts))


def _tool_options(body: ResponsesRequest) -> tuple[tuple[ToolDefinition, ...], ToolChoice | None]:
    tools = tuple(
        ToolDefinition(t.name, t.description, t.parameters or {}, t.strict) for t in body.tools or ()
    )
    names = [t.name for t in tools]
    choice = body.tool_choice
    if choice is None:
        return tools, None
    if not tools:
        if choice not in ("auto", "none"):
            raise GatewayError(400, "tool_choice forces a tool call, so it needs tools", param="tool_choice")
        return (), None
    if isinstance(choice, str):
        return tools, ToolChoice(choice)
    if choice.name not in names:
        message = f"tool_choice names {choice.name[:64]!r}, which is not among the tools"
        raise GatewayError(400, message, param="tool_choice")
    return tools, ToolChoice.function(choice.name)


def wire_usage(usage: Usage) -> dict[str, object]:
    """``usage`` of a response."""
    return {
        "input_tokens": usage.input_tokens,
        "input_tokens_details": {"cached_tokens": usage.cached_input_tokens},
        "output_tokens": usage.output_tokens,
        "output_tokens_details": {"reasoning_tokens": usage.reasoning_tokens},
        "total_tokens": usage.total_tokens,
    }


def text_item(item_id: str, text: str, status: str = "completed") -> dict[str, object]:
    """An output message item holding ``text``."""
    content = [{"type": "output_text", "text": text, "annotations": [], "logprobs": []}] if text else []
    return {"type": "message", "id": item_id, "status": status, "role": "assistant", "content": content}


def call_item(call: ToolCall, status: str = "completed") -> dict[str, object]:
    """A ``function_call`` output item."""
    return {
        "type": "function_call",
        "id": f"fc_{call.id}",
        "call_id": call.id,
        "name": call.name,
        "arguments": call.arguments,
        "status": status,
    }


def response_object(
    body: ResponsesRequest,
    *,
    response_id: str,
    created_at: float | None = None,
    status: str = "completed",
    output: list[dict[str, object]] | None = None,
    usage: Usage | None = None,
    finish: FinishReason | str | None = None,
) -> dict[str, object]:
    """The response object (``in_progress`` ones at the start of a stream have no output or usage yet)."""
    reason = _INCOMPLETE.get(FinishReason(finish)) if finish else None
    if status == "completed" and reason is not None:
        status = "incomplete"
    text_format = body.text.format if body.text and body.text.format else None
    return {
        "id": response_id,
        "object": "response",
        "created_at": int(created_at if created_at is not None else time.time()),
        "status": status,
        "error": None,
        "incomplete_details": {"reason": reason} if reason else None,
        "instructions": body.instructions,
        "max_output_tokens": body.max_output_tokens,
        "model": body.model,
        "output": output or [],
        "parallel_tool_calls": body.parallel_tool_calls is not False,
        "previous_response_id": None,
        "store": False,
        "temperature": body.temperature,
        "text": {"format": text_format.model_dump(by_alias=True) if text_format else {"type": "text"}},
        "tool_choice": _choice_of(body),
        "tools": [t.model_dump(exclude_none=True) for t in body.tools or ()],
        "top_p": body.top_p,
        "usage": wire_usage(usage) if usage is not None else None,
        "metadata": dict(body.metadata or {}),
    }


def _choice_of(body: ResponsesRequest) -> object:
    choice = body.tool_choice
    if choice is None:
        return "auto"
    return choice if isinstance(choice, str) else choice.model_dump()


def finished_output(response_id: str, text: str, calls: tuple[ToolCall, ...]) -> list[dict[str, object]]:
    """The output items of a finished answer: its text as one message item, then its calls."""
    items = [text_item(f"msg_{response_id}", text)] if text else []
    return items + [call_item(c) for c in calls]


def usage_of(metadata: Mapping[str, object], input_tokens: int, output_tokens: int) -> Usage:
    """A whole result's usage, cached and reasoning tokens included."""
    return Usage(
        input_tokens,
        output_tokens,
        cached_input_tokens=int(str(metadata.get("cached_input_tokens") or 0)),
        reasoning_tokens=int(str(metadata.get("reasoning_tokens") or 0)),
    )
