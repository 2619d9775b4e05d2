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
from collections.abc import Mapping
from typing import Any

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
from model_orchestrator.providers.json_reading import (
    MalformedError,
    parse,
    strict_int,
    strict_list,
    strict_object,
    strict_text,
)
from model_orchestrator.providers.openai_compatible.endpoints import TokenField
from model_orchestrator.providers.openai_compatible.tools import (
    add_tool_fields,
    tool_call_deltas_of,
    tool_calls_of,
    wire_message,
)
from model_orchestrator.wire.openai import ErrorDetail

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
    """The ``Completion`` in a 200 body; unreadable or choice-less bodies raise ``ServerError``.

    Token logprobs are read only when ``request`` asked for them (servers send them only then).
    """
    try:
        data = parse(body)
        if not isinstance(data, dict):
            raise MalformedError("it is not an object")
        choices = strict_list(data.get("choices"), "choices")
        if not choices:
            raise ServerError("the response has no choices", status_code=BAD_GATEWAY)
        choice = strict_object(choices[0], "choices[0]")
        message = strict_object(choice.get("message"), "message")
        text = strict_text(message.get("content"), "content")
        text = text or strict_text(message.get("refusal"), "refusal")
        tool_calls = tool_calls_of(message.get("tool_calls"))
        finish = finish_reason_of(strict_text(choice.get("finish_reason"), "finish_reason"))
        usage = usage_of(data.get("usage"))
        logprobs = logprobs_of(choice.get("logprobs")) if request.logprobs else None
        model = strict_text(data.get("model"), "model")
        response_id = strict_text(data.get("id"), "id")
    except MalformedError as exc:
        raise ServerError(
            f"the response body is not a chat completion: {exc}", status_code=BAD_GATEWAY
        ) from exc
    text = text or ""
    if finish is FinishReason.CONTENT_FILTER and not text:
        raise ContentFilteredError("the answer was blocked by the content filter")
    if tool_calls and finish is not FinishReason.TOOL_CALLS and finish is not FinishReason.LENGTH:
        finish = FinishReason.TOOL_CALLS  # OpenAI says "stop" for a forced tool_choice
    output_chars = len(text) + sum(len(c.name) + len(c.arguments) for c in tool_calls)
    return Completion(
        text=text,
        model=model or model_id,
        provider=provider,
        deployment=deployment,
        usage=usage or _estimated_usage(request, output_chars),
        latency=latency,
        finish_reason=finish,
        logprobs=logprobs,
        response_id=response_id,
        rate_limits=rate_limits,
        tool_calls=tool_calls,
    )


def finish_reason_of(reason: str | None) -> FinishReason:
    """The core finish reason for a wire ``finish_reason``."""
    return FinishReason.UNKNOWN if reason is None else _FINISH_REASONS.get(reason, FinishReason.UNKNOWN)


def usage_of(value: object) -> Usage | None:
    """Core usage from a wire ``usage`` (cached prompt and reasoning tokens kept apart); None for none.

    DeepSeek reports cache hits as ``prompt_cache_hit_tokens``
    (https://api-docs.deepseek.com/api/create-chat-completion).
    """
    if value is None:
        return None
    usage = strict_object(value, "usage")
    prompt_details = strict_object(usage.get("prompt_tokens_details"), "prompt_tokens_details")
    completion_details = strict_object(usage.get("completion_tokens_details"), "completion_tokens_details")
    cached = strict_int(prompt_details.get("cached_tokens"), "cached_tokens")
    if cached is None:
        cached = strict_int(usage.get("prompt_cache_hit_tokens"), "prompt_cache_hit_tokens")
    return Usage(
        input_tokens=strict_int(usage.get("prompt_tokens"), "prompt_tokens") or 0,
        output_tokens=strict_int(usage.get("completion_tokens"), "completion_tokens") or 0,
        cached_input_tokens=cached or 0,
        reasoning_tokens=strict_int(completion_details.get("reasoning_tokens"), "reasoning_tokens") or 0,
    )


def logprobs_of(value: object) -> tuple[TokenLogprob, ...] | None:
    """Token log-probabilities with their alternatives, or None when none were returned."""
    content = strict_object(value, "logprobs").get("content")
    if content is None:
        return None
    return tuple(_token_logprob(entry) for entry in strict_list(content, "logprobs.content"))


def _token_logprob(entry: object) -> TokenLogprob:
    # Checked inline rather than through the field readers: a long answer has thousands of these. Exact
    # types, as a JSON true is a bool (an int subclass), not a log-probability.
    if isinstance(entry, dict):
        token, logprob, top = entry.get("token"), entry.get("logprob"), entry.get("top_logprobs") or ()
        if (
            isinstance(token, str)
            and (type(logprob) is float or type(logprob) is int)
            and isinstance(top, list | tuple)
        ):
            return TokenLogprob(token, float(logprob), tuple(_alternative(a) for a in top))
    raise MalformedError("a logprobs entry is not {token, logprob, top_logprobs}")


def _alternative(entry: object) -> tuple[str, float]:
    if isinstance(entry, dict):
        token, logprob = entry.get("token"), entry.get("logprob")
        if isinstance(token, str) and (type(logprob) is float or type(logprob) is int):
            return token, float(logprob)
    raise MalformedError("a top logprob is not {token, logprob}")


def decode_error(status: int, body: bytes, rate_limits: RateLimitSnapshot) -> ProviderError:
    """The core error for a non-2xx answer (``provider``/``deployment`` left for the adapter)."""
    return _error_from_detail(status, _error_detail(body), rate_limits)


class StreamDecoder:
    """Turns the ``data`` of each SSE event into deltas and checks that the stream ended properly.

    Token logprobs are read only when the request asked for them.
    """

    def __init__(self, request: ChatRequest, model_id: str) -> None:
        self._request = request
        self._logprobs = request.logprobs
        self._model = model_id
        self._finish: str | None = None
        self._usage: Usage | None = None
        self._chars = 0
        self._calls: set[int] = set()  # indexes of the tool calls begun so far
        self.done = False

    def feed(self, event: str | None, data: str) -> StreamDelta | None:
        """The delta carried by one event (None for role, finish and usage-only chunks)."""
        if data == _DONE or data.strip() == _DONE:
            self.done = True
            return None
        try:
            return self._delta(event, data)
        except MalformedError as exc:
            raise ServerError(
                f"a stream event is not a chat completion chunk: {exc}", status_code=BAD_GATEWAY
            ) from exc

    def _delta(self, event: str | None, data: str) -> StreamDelta | None:
        chunk = parse(data)
        if not isinstance(chunk, dict):
            raise MalformedError("it is not an object")
        if event == "error" or chunk.get("error") is not None:
            detail = _detail_of(chunk.get("error"), data)
            raise _error_from_detail(_status_of(detail), detail, RateLimitSnapshot())
        # The field readers are called only for a value of an unusual type (they raise, or read null):
        # in the usual chunk every value already has its type, and this runs once per chunk.
        model = chunk.get("model")
        if type(model) is not str:
            model = strict_text(model, "model")
        self._model = model or self._model
        usage = chunk.get("usage")
        if usage is None and "x_groq" in chunk:
            # Groq's ``x_groq`` carries usage on the last chunk (https://console.groq.com/docs/api-reference).
            usage = strict_object(chunk["x_groq"], "x_groq").get("usage")
        if usage is not None:
            self._usage = usage_of(usage)
        choices = chunk.get("choices")
        if type(choices) is not list:
            choices = strict_list(choices, "choices")
        if not choices:
            return None
        choice = choices[0]
        return self._choice_delta(choice if type(choice) is dict else strict_object(choice, "choices[0]"))

    def _choice_delta(self, choice: Mapping[str, Any]) -> StreamDelta | None:
        """The delta of a chunk's first choice (None when it carries nothing to pass on)."""
        finish = choice.get("finish_reason")
        if finish is not None:
            self._finish = strict_text(finish, "finish_reason") or self._finish
        delta = choice.get("delta")
        if type(delta) is not dict:
            delta = strict_object(delta, "delta")
        text = delta.get("content")
        if type(text) is not str:
            text = strict_text(text, "content") or ""
        logprobs = (logprobs_of(choice.get("logprobs")) or ()) if self._logprobs else ()
        pieces = delta.get("tool_calls")
        calls = () if pieces is None else tool_call_deltas_of(pieces, self._calls)
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
            usage=self._usage or _estimated_usage(self._request, self._chars),
            model=self._model,
            rate_limits=rate_limits,
        )


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
        data = parse(text)
    except MalformedError:
        return ErrorDetail(message=text.strip() or "(empty body)")
    if not isinstance(data, dict):
        return ErrorDetail(message=text)
    return _detail_of(data.get("error", data), text)


def _detail_of(inner: object, text: str) -> ErrorDetail:
    """An error object read leniently; ``text`` (the whole payload) when it says nothing readable."""
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
