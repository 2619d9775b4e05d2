"""Pure conversions between the core types and Anthropic's Messages API wire format.

Owns the request body, reading a message, reading stream events and classifying error bodies into plain
``VendorError`` values. Does not send anything, read headers or build exceptions (see ``adapter``).
Wire format: https://docs.anthropic.com/en/api/messages and https://docs.anthropic.com/en/api/messages-streaming
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic_core import to_json

from model_orchestrator.core.messages import Role, TextPart
from model_orchestrator.core.request import ChatRequest, ResponseFormat
from model_orchestrator.core.response import Completion, FinishReason, StreamDelta
from model_orchestrator.core.tools import ToolCall, ToolCallDelta
from model_orchestrator.core.usage import Usage
from model_orchestrator.providers.anthropic.blocks import plan_tools, system_blocks, turns
from model_orchestrator.providers.json_reading import (
    int_of,
    object_of,
    objects_of,
    parse_object,
    text_or_none,
)

# Anthropic has no JSON-mode switch; its guide steers format through instructions instead (a JSON schema
# goes through a forced tool, see ``blocks``):
# https://docs.anthropic.com/en/docs/test-and-evaluate/strengthen-guardrails/increase-consistency
JSON_INSTRUCTION = "Respond with one valid JSON object only: no prose, no code fences."

# https://docs.anthropic.com/en/api/messages (stop_reason); refusal means the safety classifier stopped it.
_FINISH = {
    "end_turn": FinishReason.STOP,
    "stop_sequence": FinishReason.STOP,
    "pause_turn": FinishReason.STOP,
    "max_tokens": FinishReason.LENGTH,
    "model_context_window_exceeded": FinishReason.LENGTH,
    "tool_use": FinishReason.TOOL_CALLS,
    "refusal": FinishReason.CONTENT_FILTER,
}

# Error types and their statuses: https://docs.anthropic.com/en/api/errors. Used for errors that arrive
# inside a 200 stream, where the type is the only status we get.
_STATUS_OF_TYPE = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "billing_error": 402,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "api_error": 500,
    "timeout_error": 504,
    "overloaded_error": 529,
}

# Phrasings of "the prompt does not fit", e.g. "prompt is too long: 208310 tokens > 200000 maximum" and
# "input length and `max_tokens` exceed context limit: ...".
_CONTEXT_PHRASES = ("prompt is too long", "exceed context limit", "context window", "context length")
_FILTER_PHRASES = ("content filtering policy",)


@dataclass(frozen=True, slots=True)
class VendorError:
    """An error Anthropic reported, classified but not yet raised (the adapter raises it)."""

    status: int
    message: str
    error_type: str = ""
    context_exceeded: bool = False
    content_filtered: bool = False


def encode_request(request: ChatRequest, *, model_id: str, default_max_tokens: int, stream: bool) -> bytes:
    """The JSON body of ``POST /v1/messages`` for ``request``."""
    body: dict[str, Any] = {
        "model": model_id,
        # max_tokens is required by the Messages API.
        "max_tokens": request.max_tokens if request.max_tokens is not None else default_max_tokens,
        "messages": turns(request.messages),
    }
    system = _system(request)
    if system:
        body["system"] = system
    plan = plan_tools(request)
    if plan.tools is not None:
        body["tools"] = plan.tools
    if plan.tool_choice is not None:
        body["tool_choice"] = plan.tool_choice
    if request.temperature is not None:
        body["temperature"] = request.temperature
    if request.top_p is not None:
        body["top_p"] = request.top_p
    if request.stop:
        body["stop_sequences"] = list(request.stop)
    if stream:
        body["stream"] = True
    # Anthropic returns no token log-probabilities, so request.logprobs is not sent.
    # pydantic-core's encoder, as for the other wire formats (docs/decisions.md, "Encoding upstream bodies").
    return to_json(body)


def _system(request: ChatRequest) -> str | list[dict[str, Any]] | None:
    """The top-level system prompt: the request's system messages plus the JSON instruction if asked.

    A plain string, unless a system part carries a cache breakpoint: then text blocks, so that the
    breakpoint's ``cache_control`` has a block to sit on.
    """
    wants_instruction = request.response_format is ResponseFormat.JSON and request.json_schema is None
    instruction = JSON_INSTRUCTION if wants_instruction else None
    parts = [p for m in request.messages if m.role is Role.SYSTEM for p in m.parts if isinstance(p, TextPart)]
    if any(p.cache_breakpoint for p in parts):
        return system_blocks(parts, instruction)
    texts = [request.system_text] if request.system_text else []
    if instruction:
        texts.append(instruction)
    return "\n\n".join(texts) or None


def decode_message(
    body: bytes, *, provider: str, deployment: str, latency: float, answer_tool: str | None = None
) -> Completion | VendorError:
    """A completion from a 200 response body, or a ``VendorError`` when the body is unreadable.

    ``tool_use`` blocks become tool calls (arguments: the compact JSON of their ``input``), except a call
    of ``answer_tool`` (the JSON-schema answer, see ``blocks``), whose input becomes the text.
    """
    data = parse_object(body)
    if data is None or data.get("type") == "error":
        return _payload_error(data) if data else _unreadable("message")
    texts: list[str] = []
    calls: list[ToolCall] = []
    for block in objects_of(data.get("content")):
        if block.get("type") == "text":
            texts.append(str(block.get("text", "")))
        elif block.get("type") == "tool_use":
            arguments = _compact(block.get("input"))
            if answer_tool is not None and block.get("name") == answer_tool:
                texts.append(arguments)
            else:
                calls.append(ToolCall(str(block.get("id") or ""), str(block.get("name") or ""), arguments))
    return Completion(
        text="".join(texts),
        model=str(data.get("model") or ""),
        provider=provider,
        deployment=deployment,
        usage=usage_of(object_of(data.get("usage"))),
        latency=latency,
        finish_reason=_finish(data.get("stop_reason"), has_calls=bool(calls)),
        response_id=text_or_none(data.get("id")),
        tool_calls=tuple(calls),
    )


def _finish(stop_reason: object, *, has_calls: bool) -> FinishReason:
    """``tool_use`` with only the answer tool called is a finished answer, not a call to run."""
    reason = finish_reason_of(stop_reason)
    return FinishReason.STOP if reason is FinishReason.TOOL_CALLS and not has_calls else reason


def _compact(value: object) -> str:
    return json.dumps(value if isinstance(value, dict) else {}, separators=(",", ":"), ensure_ascii=False)


def usage_of(usage: Mapping[str, Any]) -> Usage:
    """Core usage from Anthropic's ``usage`` object.

    Anthropic's ``input_tokens`` excludes cache reads and cache writes, while core counts every prompt
    token as input (cached reads included). Cache writes are billed as input too (at a premium, 1.25x for
    the 5-minute cache), so they are added to input and also counted in ``cache_write_tokens`` to be priced
    at their own rate: https://docs.anthropic.com/en/docs/build-with-claude/prompt-caching
    """
    cache_read = int_of(usage.get("cache_read_input_tokens"))
    cache_write = int_of(usage.get("cache_creation_input_tokens"))
    return Usage(
        input_tokens=int_of(usage.get("input_tokens")) + cache_read + cache_write,
        output_tokens=int_of(usage.get("output_tokens")),
        cached_input_tokens=cache_read,
        cache_write_tokens=cache_write,
    )


def finish_reason_of(stop_reason: object) -> FinishReason:
    """The core finish reason for an Anthropic ``stop_reason``."""
    if stop_reason is None:
        return FinishReason.UNKNOWN
    return _FINISH.get(str(stop_reason), FinishReason.UNKNOWN)


def decode_error(status: int, body: bytes) -> VendorError:
    """Classify a non-2xx response: ``{"type": "error", "error": {"type": ..., "message": ...}}``."""
    data = parse_object(body)
    if data is None:
        # Not cut here: the adapter redacts the key from the whole text first, then cuts it.
        snippet = body.decode("utf-8", errors="replace").strip()
        return VendorError(status=status, message=f"HTTP {status}: {snippet or 'empty body'}")
    return _classify(status, object_of(data.get("error")))


def _payload_error(data: Mapping[str, Any]) -> VendorError:
    """An error object found where a message or event was expected (status taken from its type)."""
    error = object_of(data.get("error"))
    return _classify(_STATUS_OF_TYPE.get(str(error.get("type", "")), 500), error)


def _classify(status: int, error: Mapping[str, Any]) -> VendorError:
    error_type = str(error.get("type") or "")
    message = str(error.get("message") or error_type or f"HTTP {status}")
    lowered = message.lower()
    # 413 is a byte limit enforced before the model sees the prompt; a smaller request or a model that
    # takes bigger ones is the remedy, which is what a context-window fallback does.
    context = (
        error_type == "request_too_large"
        or status == 413
        or (error_type == "invalid_request_error" and any(p in lowered for p in _CONTEXT_PHRASES))
    )
    filtered = any(p in lowered for p in _FILTER_PHRASES)
    return VendorError(status, message, error_type, context_exceeded=context, content_filtered=filtered)


def _unreadable(what: str) -> VendorError:
    # 502: the upstream answered, but not with anything we can read; a server-side failure to retry.
    return VendorError(status=502, message=f"unreadable {what} from upstream", error_type="unreadable")


class StreamDecoder:
    """Turns Messages-API stream events into ``StreamDelta`` values, one event at a time.

    The final delta (finish reason, usage, model) is emitted on ``message_stop``; a stream that ends
    before it is incomplete (see ``end``). A ``tool_use`` block opens a tool call (``content_block_start``
    carries its id and name) whose arguments arrive as ``input_json_delta`` pieces; calls are numbered
    in order of appearance, whatever the block index. The ``answer_tool``'s pieces are text (see
    ``decode_message``).
    """

    def __init__(self, *, answer_tool: str | None = None) -> None:
        self._model: str | None = None
        self._start_usage: Mapping[str, Any] = {}
        self._stop_reason: object = None
        self._late_usage: dict[str, Any] = {}
        self._finished = False
        self._answer_tool = answer_tool
        # content block index -> tool call number, or None for the answer tool's block
        self._tool_blocks: dict[int, int | None] = {}

    def feed(self, data: str) -> StreamDelta | VendorError | None:
        """The delta for one event's data, a ``VendorError`` for an error event, or None for bookkeeping."""
        event = parse_object(data)
        if event is None:
            return _unreadable("stream event")
        kind = event.get("type")
        if kind == "message_start":
            message = object_of(event.get("message"))
            self._model = text_or_none(message.get("model"))
            self._start_usage = object_of(message.get("usage"))
        elif kind == "content_block_start":
            return self._block_start(event)
        elif kind == "content_block_delta":
            return self._block_delta(event)
        elif kind == "message_delta":
            self._stop_reason = object_of(event.get("delta")).get("stop_reason")
            late = object_of(event.get("usage"))
            self._late_usage.update({k: v for k, v in late.items() if v is not None})
        elif kind == "message_stop":
            self._finished = True
            return self._final()
        elif kind == "error":
            return _payload_error(event)
        return None  # ping, content_block_stop and event types added later

    def end(self) -> VendorError | None:
        """Called when the stream closes: a ``VendorError`` unless ``message_stop`` arrived."""
        if self._finished:
            return None
        return VendorError(502, "stream ended before message_stop", error_type="incomplete_stream")

    def _block_start(self, event: Mapping[str, Any]) -> StreamDelta | None:
        block = object_of(event.get("content_block"))
        if block.get("type") != "tool_use":
            text = block.get("text") if block.get("type") == "text" else None
            return StreamDelta(text=str(text)) if text else None
        index = int_of(event.get("index"))
        if self._answer_tool is not None and block.get("name") == self._answer_tool:
            self._tool_blocks[index] = None
            return None
        number = sum(1 for n in self._tool_blocks.values() if n is not None)
        self._tool_blocks[index] = number
        start = ToolCallDelta(number, id=str(block.get("id") or ""), name=str(block.get("name") or ""))
        return StreamDelta(tool_calls=(start,))

    def _block_delta(self, event: Mapping[str, Any]) -> StreamDelta | None:
        delta = object_of(event.get("delta"))
        if delta.get("type") == "text_delta":
            text = delta.get("text")
            return StreamDelta(text=str(text)) if text else None
        if delta.get("type") != "input_json_delta":
            return None  # thinking and signature deltas are not part of the answer
        piece = str(delta.get("partial_json") or "")
        index = int_of(event.get("index"))
        if not piece or index not in self._tool_blocks:
            return None
        number = self._tool_blocks[index]
        if number is None:
            return StreamDelta(text=piece)
        return StreamDelta(tool_calls=(ToolCallDelta(number, arguments=piece),))

    def _final(self) -> StreamDelta:
        # message_delta carries the cumulative output count (and, in newer API versions, may restate
        # input counts), so its fields override message_start's.
        merged = {**self._start_usage, **self._late_usage}
        has_calls = any(n is not None for n in self._tool_blocks.values())
        return StreamDelta(
            finish_reason=_finish(self._stop_reason, has_calls=has_calls),
            usage=usage_of(merged),
            model=self._model,
        )
