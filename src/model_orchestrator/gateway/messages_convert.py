"""Messages-format bodies (``wire.messages``) to the façade's types, and results back into message objects.

Owns the mapping both ways: ``system`` (text or blocks) into a system message, user turns with text, image
and ``tool_result`` blocks (each result becomes a ``tool`` message, in order), assistant turns with text and
``tool_use`` blocks, ``tools``/``tool_choice`` (``any`` is ``required``; ``disable_parallel_tool_use`` is
``parallel_tool_calls: false``), ``cache_control`` on text and image blocks as cache breakpoints (on tools it
has no core counterpart and only affects caching, not the answer), stop reasons and usage. What cannot be
carried as is is said where it happens: an ``is_error`` result reaches the model as text starting
``Error:`` (the core has no error flag on a result).
Not HTTP (``messages_api``), not streaming (``messages_stream``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from model_orchestrator.core.messages import ContentPart, ImagePart, Message, Role, TextPart
from model_orchestrator.core.request import ChatRequest
from model_orchestrator.core.response import FinishReason
from model_orchestrator.core.result import OrchestrationResult
from model_orchestrator.core.tokens import estimate_message_tokens, estimate_text_tokens
from model_orchestrator.core.tools import ToolCall, ToolChoice, ToolDefinition
from model_orchestrator.core.usage import Usage
from model_orchestrator.gateway.errors import GatewayError
from model_orchestrator.wire.messages import (
    CountTokensRequest,
    ImageBlock,
    MessageParam,
    MessagesRequest,
    TextBlock,
    ToolChoiceAny,
    ToolChoiceNone,
    ToolChoiceTool,
    ToolResultBlock,
    ToolUseBlock,
)

_STOP_REASONS = {
    FinishReason.LENGTH: "max_tokens",
    FinishReason.TOOL_CALLS: "tool_use",
    FinishReason.CONTENT_FILTER: "refusal",
}


def to_chat_request(
    body: MessagesRequest, *, request_id: str, api_key_id: str | None, max_tokens_ceiling: int
) -> ChatRequest:
    """The façade request for ``body`` (a 400 ``GatewayError`` for what cannot be honoured)."""
    if body.max_tokens > max_tokens_ceiling:
        raise GatewayError(
            400,
            f"max_tokens {body.max_tokens} is above this gateway's ceiling of {max_tokens_ceiling}",
            param="max_tokens",
        )
    tools, choice, parallel = tool_options(body)
    return ChatRequest(
        messages=chat_messages(body),
        max_tokens=body.max_tokens,
        temperature=body.temperature,
        top_p=body.top_p,
        stop=tuple(body.stop_sequences or ()),
        api_key_id=api_key_id,
        request_id=request_id,
        tools=tools,
        tool_choice=choice,
        parallel_tool_calls=parallel,
    )


def chat_messages(body: CountTokensRequest) -> tuple[Message, ...]:
    """``system`` and ``messages`` as core messages."""
    system: tuple[Message, ...] = ()
    if isinstance(body.system, str):
        system = (Message.system(body.system),) if body.system else ()
    elif body.system:
        system = (Message(Role.SYSTEM, tuple(_text(b) for b in body.system)),)
    turns = [m for index, turn in enumerate(body.messages) for m in _turn(turn, f"messages.{index}")]
    return (*system, *turns)


def _turn(turn: MessageParam, where: str) -> list[Message]:
    role = Role.USER if turn.role == "user" else Role.ASSISTANT
    if isinstance(turn.content, str):
        return [Message.of(role, turn.content)]
    results: list[Message] = []
    parts: list[ContentPart] = []
    calls: list[ToolCall] = []
    for index, block in enumerate(turn.content):
        param = f"{where}.content.{index}"
        if isinstance(block, ToolResultBlock):
            if role is not Role.USER:
                raise GatewayError(400, "tool_result blocks belong to user turns", param=param)
            results.append(_tool_result(block))
        elif isinstance(block, ToolUseBlock):
            if role is not Role.ASSISTANT:
                raise GatewayError(400, "tool_use blocks belong to assistant turns", param=param)
            calls.append(ToolCall(block.id, block.name, json.dumps(block.input, separators=(",", ":"))))
        elif isinstance(block, ImageBlock):
            if role is not Role.USER:
                raise GatewayError(400, "Images are accepted in user turns only", param=param)
            parts.append(_image(block))
        else:
            parts.append(_text(block))
    # Tool results answer the previous assistant turn, so they come before the user's new words.
    rest = [Message(role, tuple(parts), tuple(calls))] if parts or calls else []
    return results + rest


def _text(block: TextBlock) -> TextPart:
    return TextPart(block.text, cache_breakpoint=block.cache_control is not None)


def _image(block: ImageBlock) -> ImagePart:
    source = block.source
    url = source.url if source.type == "url" else f"data:{source.media_type};base64,{source.data}"
    return ImagePart(url, cache_breakpoint=block.cache_control is not None)


def _tool_result(block: ToolResultBlock) -> Message:
    content = block.content
    if isinstance(content, str):
        parts: tuple[ContentPart, ...] = (TextPart(content),)
    else:
        parts = tuple(_text(p) if isinstance(p, TextBlock) else _image(p) for p in content)
    if block.is_error:  # the core has no error flag on a result: say it in the text the model reads
        parts = (TextPart("Error: "), *parts)
    if not parts:
        parts = (TextPart(""),)
    return Message(Role.TOOL, parts, tool_call_id=block.tool_use_id)


def tool_options(
    body: CountTokensRequest,
) -> tuple[tuple[ToolDefinition, ...], ToolChoice | None, bool | None]:
    """``tools`` and ``tool_choice`` as core values (a 400 for a choice that cannot be honoured)."""
    tools = tuple(ToolDefinition(t.name, t.description, t.input_schema) for t in body.tools or ())
    names = [t.name for t in tools]
    choice = body.tool_choice
    if choice is None:
        return tools, None, None
    if isinstance(choice, ToolChoiceNone):
        return tools, (ToolChoice("none") if tools else None), None
    parallel = False if choice.disable_parallel_tool_use else None
    if not tools:
        if isinstance(choice, ToolChoiceAny | ToolChoiceTool):
            raise GatewayError(400, "tool_choice forces a tool call, so it needs tools", param="tool_choice")
        return (), None, None
    if isinstance(choice, ToolChoiceTool):
        if choice.name not in names:
            raise GatewayError(
                400,
                f"tool_choice names {choice.name[:64]!r}, which is not among the tools",
                param="tool_choice",
            )
        return tools, ToolChoice.function(choice.name), parallel
    return tools, ToolChoice("required" if isinstance(choice, ToolChoiceAny) else "auto"), parallel


def estimate_input_tokens(body: CountTokensRequest) -> int:
    """The project's estimate of the prompt's tokens (about four characters a token, plus each tool's
    definition as JSON); images are not counted. An estimate, not the upstream tokenizer's count."""
    messages = chat_messages(body)
    calls = "".join(c.arguments + c.name for m in messages for c in m.tool_calls)
    tools = [t.model_dump(exclude_none=True) for t in body.tools or ()]
    return (
        estimate_message_tokens(messages)
        + estimate_text_tokens(calls)
        + (estimate_text_tokens(json.dumps(tools)) if tools else 0)
    )


def stop_reason(reason: FinishReason | str | None) -> str:
    """Our finish reason as the format's ``stop_reason`` (``end_turn`` for a stop; the core does not say
    whether a stop sequence ended it)."""
    return _STOP_REASONS.get(FinishReason(reason), "end_turn") if reason else "end_turn"


def wire_usage(usage: Usage) -> dict[str, int]:
    """``usage``: the format counts cache reads and writes apart from ``input_tokens``."""
    cached, written = usage.cached_input_tokens, usage.cache_write_tokens
    return {
        "input_tokens": max(0, usage.input_tokens - cached - written),
        "output_tokens": usage.output_tokens,
        "cache_read_input_tokens": cached,
        "cache_creation_input_tokens": written,
    }


def tool_use_block(call: ToolCall) -> dict[str, object]:
    """A whole ``tool_use`` block (arguments that are not a JSON object are passed as ``{}``)."""
    try:
        arguments: object = json.loads(call.arguments or "{}")
    except ValueError:
        arguments = {}
    return {
        "type": "tool_use",
        "id": call.id,
        "name": call.name,
        "input": arguments if isinstance(arguments, dict) else {},
    }


def message_body(result: OrchestrationResult, *, message_id: str, model: str) -> dict[str, object]:
    """The whole message object, plus the ``orchestrator`` field (``messages_api`` adds it)."""
    meta: Mapping[str, object] = result.metadata
    usage = Usage(
        result.input_tokens,
        result.output_tokens,
        cached_input_tokens=int(str(meta.get("cached_input_tokens") or 0)),
        cache_write_tokens=int(str(meta.get("cache_write_tokens") or 0)),
    )
    content: list[dict[str, object]] = [{"type": "text", "text": result.response}] if result.response else []
    content += [tool_use_block(c) for c in result.tool_calls]
    return {
        "id": message_id,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": stop_reason(str(meta.get("finish_reason") or "stop")),
        "stop_sequence": None,
        "usage": wire_usage(usage),
    }
