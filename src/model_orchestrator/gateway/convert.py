"""Chat Completions bodies to and from the façade's types. Owns the gateway's request schema (the shared
wire DTOs plus the limits a server must enforce and the ``orchestrator`` extension) and the rendering of
results, stream chunks and the ``orchestrator`` metadata field. Not HTTP (``app.py``), not streaming
control flow (``streaming.py``).

Text and image parts, tools, tool choice, parallel tool calls, assistant ``tool_calls``, ``tool`` turns
and ``response_format: json_schema`` are carried (``chat_tools`` converts them); legacy ``functions``,
audio and ``n`` > 1 are refused with a 400 that names what is not supported, never silently dropped.
"""

from __future__ import annotations

import time
from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field
from pydantic_core import to_json

from model_orchestrator.core.request import ChatRequest, ContextOverflow, ResponseFormat
from model_orchestrator.core.response import FinishReason
from model_orchestrator.core.result import OrchestrationResult
from model_orchestrator.core.usage import Usage
from model_orchestrator.gateway.chat_tools import chat_message, json_schema_of, tool_options, wire_tool_calls
from model_orchestrator.gateway.errors import GatewayError
from model_orchestrator.wire import (
    ChatCompletionRequest,
    ChatMessage,
    ChunkToolCall,
    CompletionUsage,
    PromptTokensDetails,
)

_WIRE_FINISH = {
    FinishReason.LENGTH: "length",
    FinishReason.CONTENT_FILTER: "content_filter",
    FinishReason.TOOL_CALLS: "tool_calls",
}
_UNSUPPORTED = ("functions", "function_call", "audio", "modalities")


def whole_number(value: object) -> object:
    """JSON Schema counts 2.0 as an integer; strict validation would not."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


# Integers that also take 2.0; bounds come before the validator so the JSON schema shows minimum/maximum.
_Whole = BeforeValidator(whole_number)
WholeInt = Annotated[int, _Whole]
PositiveInt = Annotated[int, Field(ge=1), _Whole]


class MessageBody(ChatMessage):
    """A request message; the legacy function role is not supported, nor (``chat_tools`` says so) parts
    other than text and image_url."""

    role: Literal["system", "developer", "user", "assistant", "tool"]


class RequestExtension(BaseModel):
    """The ``orchestrator`` request field: what the Chat Completions format cannot say."""

    model_config = ConfigDict(extra="forbid")

    max_cost: float | None = Field(default=None, ge=0, description="USD cap for the whole request")
    category: str | None = Field(default=None, max_length=200)
    tags: list[str] | None = Field(default=None, max_length=50)
    context_overflow: ContextOverflow | None = Field(
        default=None,
        description="When the prompt does not fit the model's context window: error (400 "
        "context_length_exceeded, the default), truncate-start, truncate-end, truncate-middle, smart or "
        "summarize; overrides the configured setting",
    )


class ChatRequestBody(ChatCompletionRequest):
    """``POST /v1/chat/completions`` as the gateway accepts it (validated strictly: no numbers as strings,
    no booleans as numbers)."""

    model: str = Field(min_length=1)
    messages: list[MessageBody] = Field(min_length=1)  # type: ignore[assignment]
    max_tokens: PositiveInt | None = None
    max_completion_tokens: PositiveInt | None = None
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, ge=0, le=1)
    n: Annotated[int, Field(ge=1, le=1), _Whole] | None = Field(
        default=None, description="only 1 is supported"
    )
    top_logprobs: Annotated[int, Field(ge=0, le=20), _Whole] | None = None
    seed: WholeInt | None = None
    orchestrator: RequestExtension | None = None


def to_chat_request(
    body: ChatRequestBody, *, request_id: str, api_key_id: str | None, max_tokens_ceiling: int
) -> ChatRequest:
    """The façade request for ``body`` (a 400 ``GatewayError`` for what cannot be honoured)."""
    extra = body.model_extra
    present = [name for name in _UNSUPPORTED if extra.get(name) is not None] if extra else []
    if present:
        hint = "; send tools and tool_choice instead" if present[0].startswith("function") else ""
        raise GatewayError(400, f"{present[0]} is not supported by this gateway{hint}", param=present[0])
    messages = tuple(chat_message(m, f"messages.{index}") for index, m in enumerate(body.messages))
    tools, tool_choice, parallel_tool_calls = tool_options(body)
    max_tokens = body.max_completion_tokens or body.max_tokens
    if max_tokens is not None and max_tokens > max_tokens_ceiling:
        raise GatewayError(
            400,
            f"max_tokens {max_tokens} is above this gateway's ceiling of {max_tokens_ceiling}",
            param="max_tokens",
        )
    extension = body.orchestrator
    stop = (body.stop,) if isinstance(body.stop, str) else tuple(body.stop or ())
    json_mode = body.response_format is not None and body.response_format.type != "text"
    return ChatRequest(
        messages=messages,
        max_tokens=max_tokens,
        temperature=body.temperature,
        top_p=body.top_p,
        stop=stop,
        response_format=ResponseFormat.JSON if json_mode else ResponseFormat.TEXT,
        logprobs=bool(body.logprobs),
        top_logprobs=body.top_logprobs,
        category=extension.category if extension else None,
        tags=tuple(extension.tags or ()) if extension else (),
        max_cost=extension.max_cost if extension else None,
        context_overflow=extension.context_overflow if extension else None,
        api_key_id=api_key_id,
        request_id=request_id,
        tools=tools,
        tool_choice=tool_choice,
        parallel_tool_calls=parallel_tool_calls,
        json_schema=json_schema_of(body.response_format),
    )


def wire_finish(reason: FinishReason | str | None) -> str:
    """Our finish reason as the wire's (``stop`` for reasons the wire has no word for)."""
    return _WIRE_FINISH.get(FinishReason(reason), "stop") if reason else "stop"


def wire_usage(usage: Usage | None) -> CompletionUsage | None:
    """``usage`` of a response or the last stream chunk."""
    if usage is None:
        return None
    details = (
        PromptTokensDetails(cached_tokens=usage.cached_input_tokens) if usage.cached_input_tokens else None
    )
    return CompletionUsage(
        prompt_tokens=usage.input_tokens,
        completion_tokens=usage.output_tokens,
        total_tokens=usage.total_tokens,
        prompt_tokens_details=details,
    )


def completion_body(result: OrchestrationResult, *, completion_id: str) -> dict[str, object]:
    """The whole response, plus the ``orchestrator`` metadata field (built as plain data: the wire's
    shape with no pydantic model built and dumped per answer)."""
    meta = result.metadata
    message: dict[str, object] = {"role": "assistant", "content": result.response}
    if result.tool_calls:
        message["tool_calls"] = wire_tool_calls(result.tool_calls)
        if not result.response:
            message["content"] = None  # as the API answers a turn that only calls tools
    usage: dict[str, object] = {
        "prompt_tokens": result.input_tokens,
        "completion_tokens": result.output_tokens,
        "total_tokens": result.input_tokens + result.output_tokens,
    }
    cached = int(str(meta.get("cached_input_tokens") or 0))
    if cached:
        usage["prompt_tokens_details"] = {"cached_tokens": cached}
    finish = wire_finish(str(meta.get("finish_reason") or "stop"))
    return {
        "id": completion_id,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": result.model_used,
        "choices": [{"index": 0, "message": message, "finish_reason": finish, "logprobs": None}],
        "usage": usage,
        "orchestrator": result_metadata(result),
    }


def result_metadata(result: OrchestrationResult) -> dict[str, object]:
    """The ``orchestrator`` field of a whole response: how the answer was reached."""
    meta = result.metadata
    return {
        "request_id": meta.get("request_id"),
        "model_used": result.model_used,
        "strategy": result.strategy,
        "cost": result.cost,
        "latency": round(result.latency, 6),
        "confidence": result.confidence,
        "fallback_chain": list(result.fallback_chain),
        "ensemble_models": list(result.ensemble_models),
        "attempts": meta.get("attempts"),
        "explanation": meta.get("explanation"),
    }


class ChunkEncoder:
    """The ``data:`` events of one streamed completion, from byte templates: what every chunk repeats
    (id, object, created, model) is encoded once per stream, so a text delta costs one string encode.
    Measured against building and dumping a pydantic chunk per delta: 0.2 µs vs 5.6 µs (decisions)."""

    __slots__ = ("_head",)

    def __init__(self, completion_id: str, model: str, created: int) -> None:
        self._head = (
            b'data: {"id":' + to_json(completion_id) + b',"object":"chat.completion.chunk","created":'
            + str(created).encode() + b',"model":' + to_json(model) + b',"choices":'
        )  # fmt: skip

    def role(self) -> bytes:
        """The first chunk: the assistant's role, no text yet."""
        return self._head + b'[{"index":0,"delta":{"role":"assistant","content":""}}]}\n\n'

    def text(self, text: str) -> bytes:
        """A text delta."""
        return self._head + b'[{"index":0,"delta":{"content":' + to_json(text) + b"}}]}\n\n"

    def tool_calls(self, pieces: list[ChunkToolCall]) -> bytes:
        """Tool-call pieces (``chat_tools.chunk_tool_calls``)."""
        wire = to_json(pieces, exclude_none=True)
        return self._head + b'[{"index":0,"delta":{"tool_calls":' + wire + b"}}]}\n\n"

    def finish(self, reason: str, orchestrator: object) -> bytes:
        """The chunk with ``finish_reason`` and the ``orchestrator`` metadata."""
        return (
            self._head + b'[{"index":0,"delta":{},"finish_reason":' + to_json(reason)
            + b'}],"orchestrator":' + to_json(orchestrator) + b"}\n\n"
        )  # fmt: skip

    def usage(self, usage: CompletionUsage | None) -> bytes:
        """The usage-only chunk (``choices`` empty) that ``stream_options.include_usage`` asks for."""
        if usage is None:
            return self._head + b"[]}\n\n"
        return self._head + b'[],"usage":' + to_json(usage, exclude_none=True) + b"}\n\n"
