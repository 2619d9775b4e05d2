"""Pure conversions between core types and the OpenAI Chat Completions wire format.

Owns request encoding, response/chunk decoding, finish-reason and usage mapping, and reading error
bodies into core errors (by status first, then the body's context-length / content-filter forms).
It does no I/O and does not set ``provider``/``deployment`` on errors (the adapter claims them), nor cut
their text: the adapter redacts its secrets from the whole text first, then cuts (``upstream_text``).
References: https://platform.openai.com/docs/api-reference/chat and
https://platform.openai.com/docs/guides/error-codes
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError
from pydantic_core import to_json

from model_orchestrator.core.errors import (
    ContentFilteredError,
    ProviderError,
    ServerError,
    UpstreamConnectionError,
)
from model_orchestrator.core.rate_limits import RateLimitSnapshot
from model_orchestrator.core.request import ChatRequest, ResponseFormat
from model_orchestrator.core.response import Completion, FinishReason, StreamDelta, TokenLogprob
from model_orchestrator.core.tokens import estimate_message_tokens, estimate_tokens_for_chars
from model_orchestrator.core.usage import Usage
from model_orchestrator.providers.error_mapping import error_for_status
from model_orchestrator.providers.openai_compatible.endpoints import TokenField
from model_orchestrator.providers.openai_compatible.tools import (
    add_tool_fields,
    tool_call_deltas_of,
    tool_calls_of,
    wire_message,
)
from model_orchestrator.wire.openai import (
    ChatCompletion,
    ChatCompletionChunk,
    ChoiceLogprobs,
    CompletionUsage,
    ErrorDetail,
)

BAD_GATEWAY = 502
_DONE = "[DONE]"
_FINISH_REASONS = {
    "stop": FinishReason.STOP,
    "eos": FinishReason.STOP,
    "length": FinishReason.LENGTH,
    "content_filter": FinishReason.CONTENT_FILTER,
    "tool_calls": FinishReason.TOOL_CALLS,
    "function_call": FinishReason.TOOL_CALLS,
    "error": FinishReason.ERROR,
    "abort": FinishReason.ERROR,
}
# Context-length forms: OpenAI/Groq code and message, vLLM and Mistral messages, llama.cpp's
# exceed_context_size_error (https://github.com/ggml-org/llama.cpp/tree/master/tools/server).
_CONTEXT_MARKERS = (
    "context_length_exceeded",
    "maximum context length",
    "context length",
    "context window",
    "exceed_context_size",
    "exceeds the available context size",
    "reduce the length of the messages",
)
# Azure's prompt filter answers 400 with code content_filter
# (https://learn.microsoft.com/azure/ai-services/openai/concepts/content-filter).
_CONTENT_FILTER_CODES = ("content_filter", "content_policy_violation")
# A 429 that waiting will not fix: https://platform.openai.com/docs/guides/error-codes#api-errors
_QUOTA_CODE = "insufficient_quota"


class _CompatUsage(CompletionUsage):
    """Usage plus DeepSeek's cache counter (https://api-docs.deepseek.com/api/create-chat-completion)."""

    prompt_cache_hit_tokens: int | None = None


class _CompatCompletion(ChatCompletion):
    usage: _CompatUsage | None = None


class _GroqExtension(BaseModel):
    """Groq's ``x_groq`` field carries usage on the last chunk (https://console.groq.com/docs/api-reference)."""

    model_config = ConfigDict(extra="ignore")

    usage: _CompatUsage | None = None


class _CompatChunk(ChatCompletionChunk):
    usage: _CompatUsage | None = None
    x_groq: _GroqExtension | None = None


def encode_request(
    request: ChatRequest,
    *,
    model_id: str,
    stream: bool,
    token_field: TokenField,
    stream_usage_option: bool = True,
) -> bytes:
    """The JSON body for ``request``."""
    payload: dict[str, Any] = {
        "model": model_id,
        "messages": [wire_message(m) for m in request.messages],
    }
    optional = {
        token_field.value: request.max_tokens,
        "temperature": request.temperature,
        "top_p": request.top_p,
        "stop": list(request.stop) or None,
    }
    payload.update({k: v for k, v in optional.items() if v is not None})
    if request.response_format is ResponseFormat.JSON:
        payload["response_format"] = {"type": "json_object"}
    if request.tools or request.tool_choice or request.json_schema or request.parallel_tool_calls is not None:
        add_tool_fields(payload, request)
    if request.logprobs:
        payload["logprobs"] = True
        if request.top_logprobs is not None:
            payload["top_logprobs"] = request.top_logprobs
    if stream:
        payload["stream"] = True
        if stream_usage_option:
            payload["stream_options"] = {"include_usage": True}
    # pydantic-core's encoder writes the same compact UTF-8 JSON several times faster than ``json``, which
    # matters for tool schemas (docs/decisions.md, "Encoding upstream bodies").
    return to_json(payload)


def decode_completion(
    body: bytes,
    request: ChatRequest,
    *,
    model_id: str,
    provider: str,
    deployment: str,
    latency: float,
    rate_limits: RateLimitSnapshot,
) -> Completion:
    """The ``Completion`` in a 200 body; unreadable or choice-less bodies raise ``ServerError``."""
    try:
        data = _CompatCompletion.model_validate_json(body)
    except ValidationError as exc:
        raise ServerError("the response body is not a chat completion", status_code=BAD_GATEWAY) from exc
    if not data.choices:
        raise ServerError("the response has no choices", status_code=BAD_GATEWAY)
    choice = data.choices[0]
    text = choice.message.content or choice.message.refusal or ""
    tool_calls = tool_calls_of(choice.message.tool_calls)
    finish = finish_reason_of(choice.finish_reason)
    if finish is FinishReason.CONTENT_FILTER and not text:
        raise ContentFilteredError("the answer was blocked by the content filter")
    if tool_calls and finish is not FinishReason.TOOL_CALLS and finish is not FinishReason.LENGTH:
        finish = FinishReason.TOOL_CALLS  # OpenAI says "stop" for a forced tool_choice
    output_chars = len(text) + sum(len(c.name) + len(c.arguments) for c in tool_calls)
    return Completion(
        text=text,
        model=data.model or model_id,
        provider=provider,
        deployment=deployment,
        usage=usage_of(data.usage) or _estimated_usage(request, output_chars),
        latency=latency,
        finish_reason=finish,
        logprobs=logprobs_of(choice.logprobs),
        response_id=data.id,
        rate_limits=rate_limits,
        tool_calls=tool_calls,
    )


def finish_reason_of(reason: str | None) -> FinishReason:
    """The core finish reason for a wire ``finish_reason``."""
    return FinishReason.UNKNOWN if reason is None else _FINISH_REASONS.get(reason, FinishReason.UNKNOWN)


def usage_of(usage: CompletionUsage | None) -> Usage | None:
    """Core usage from a wire ``usage`` (cached prompt and reasoning tokens kept apart)."""
    if usage is None:
        return None
    prompt_details, completion_details = usage.prompt_tokens_details, usage.completion_tokens_details
    cached = prompt_details.cached_tokens if prompt_details else None
    if cached is None and isinstance(usage, _CompatUsage):
        cached = usage.prompt_cache_hit_tokens
    reasoning = completion_details.reasoning_tokens if completion_details else None
    return Usage(
        input_tokens=usage.prompt_tokens,
        output_tokens=usage.completion_tokens,
        cached_input_tokens=cached or 0,
        reasoning_tokens=reasoning or 0,
    )


def logprobs_of(logprobs: ChoiceLogprobs | None) -> tuple[TokenLogprob, ...] | None:
    """Token log-probabilities with their alternatives, or None when none were returned."""
    if logprobs is None or logprobs.content is None:
        return None
    return tuple(
        TokenLogprob(t.token, t.logprob, tuple((a.token, a.logprob) for a in t.top_logprobs))
        for t in logprobs.content
    )


def decode_error(status: int, body: bytes, rate_limits: RateLimitSnapshot) -> ProviderError:
    """The core error for a non-2xx answer (``provider``/``deployment`` left for the adapter)."""
    return _error_from_detail(status, _error_detail(body), rate_limits)


class StreamDecoder:
    """Turns the ``data`` of each SSE event into deltas and checks that the stream ended properly."""

    def __init__(self, request: ChatRequest, model_id: str) -> None:
        self._request = request
        self._model = model_id
        self._finish: str | None = None
        self._usage: CompletionUsage | None = None
        self._chars = 0
        self._calls: set[int] = set()  # indexes of the tool calls begun so far
        self.done = False

    def feed(self, event: str | None, data: str) -> StreamDelta | None:
        """The delta carried by one event (None for role, finish and usage-only chunks)."""
        if data.strip() == _DONE:
            self.done = True
            return None
        chunk = self._parse(event, data)
        self._model = chunk.model or self._model
        usage = chunk.usage or (chunk.x_groq.usage if chunk.x_groq else None)
        if usage is not None:
            self._usage = usage
        if not chunk.choices:
            return None
        choice = chunk.choices[0]
        self._finish = choice.finish_reason or self._finish
        text = choice.delta.content or ""
        logprobs = logprobs_of(choice.logprobs) or ()
        calls = tool_call_deltas_of(choice.delta.tool_calls, self._calls)
        if not text and not logprobs and not calls:
            return None
        self._chars += len(text)
        if calls:
            self._chars += sum(len(c.name or "") + len(c.arguments) for c in calls)
        return StreamDelta(text=text, logprobs=logprobs, model=self._model, tool_calls=calls)

    def finish(self, rate_limits: RateLimitSnapshot) -> StreamDelta:
        """The closing delta, once the lines have ended; a stream cut short raises a retryable error."""
        if not self.done and self._finish is None:
            raise UpstreamConnectionError("the stream ended before its finish reason or [DONE]")
        finish = finish_reason_of(self._finish)
        if finish is FinishReason.CONTENT_FILTER and self._chars == 0:
            raise ContentFilteredError("the answer was blocked by the content filter")
        if self._calls and finish is not FinishReason.TOOL_CALLS and finish is not FinishReason.LENGTH:
            finish = FinishReason.TOOL_CALLS  # as in ``decode_completion``
        return StreamDelta(
            finish_reason=finish,
            usage=usage_of(self._usage) or _estimated_usage(self._request, self._chars),
            model=self._model,
            rate_limits=rate_limits,
        )

    def _parse(self, event: str | None, data: str) -> _CompatChunk:
        try:
            chunk = _CompatChunk.model_validate_json(data)
        except ValidationError as exc:
            raise ServerError(
                "a stream event is not a chat completion chunk", status_code=BAD_GATEWAY
            ) from exc
        if chunk.error is not None or event == "error":
            detail = chunk.error or ErrorDetail(message=data)
            raise _error_from_detail(_status_of(detail), detail, RateLimitSnapshot())
        return chunk


def _estimated_usage(request: ChatRequest, output_chars: int) -> Usage:
    return Usage(
        input_tokens=estimate_message_tokens(request.messages),
        output_tokens=estimate_tokens_for_chars(output_chars),
        estimated=True,
    )


def _error_from_detail(status: int, detail: ErrorDetail, rate_limits: RateLimitSnapshot) -> ProviderError:
    code = str(detail.code) if detail.code is not None else None
    haystack = " ".join(filter(None, (detail.message, detail.type, code))).lower()
    retry_after = rate_limits.retry_after
    if retry_after is None and status == 429:
        retry_after = wait_from_resets(rate_limits)
    label = "/".join(filter(None, (detail.type, code)))
    message = f"HTTP {status}" + (f" {label}" if label else "") + f": {detail.message}"
    error = error_for_status(
        status,
        message,
        provider="",
        deployment="",
        retry_after=retry_after,
        context_exceeded=any(marker in haystack for marker in _CONTEXT_MARKERS),
        content_filtered=code in _CONTENT_FILTER_CODES,
    )
    if code == _QUOTA_CODE:
        error.retryable = False
    return error


def wait_from_resets(limits: RateLimitSnapshot) -> float | None:
    """With no ``retry-after``, the longest reset among exhausted buckets (else among all buckets)."""
    buckets = (
        (limits.remaining_requests, limits.reset_requests_after),
        (limits.remaining_tokens, limits.reset_tokens_after),
    )
    exhausted = [reset for remaining, reset in buckets if reset is not None and remaining == 0]
    candidates = exhausted or [reset for _, reset in buckets if reset is not None]
    return max(candidates, default=None)


def _error_detail(body: bytes) -> ErrorDetail:
    """The error in a body, whatever shape the server used (OpenAI, vLLM/Mistral, Ollama, plain text)."""
    text = body.decode("utf-8", errors="replace")
    try:
        data = json.loads(text)
    except ValueError:
        return ErrorDetail(message=text.strip() or "(empty body)")
    if not isinstance(data, dict):
        return ErrorDetail(message=text)
    inner = data.get("error", data)
    if isinstance(inner, str):
        return ErrorDetail(message=inner)
    if not isinstance(inner, dict):
        return ErrorDetail(message=text)
    message = inner.get("message", inner.get("detail", text))
    code = inner.get("code")
    return ErrorDetail(
        message=message if isinstance(message, str) else json.dumps(message),
        type=inner.get("type") if isinstance(inner.get("type"), str) else None,
        code=code if isinstance(code, str | int) else None,
    )


def _status_of(detail: ErrorDetail) -> int:
    """The status an in-stream error stands for: its numeric code, 429 for rate limits, else 500."""
    if isinstance(detail.code, int) and 400 <= detail.code < 600:
        return detail.code
    if "rate_limit" in f"{detail.code} {detail.type}":
        return 429
    return 500
