"""Pure conversions between the core types and the Gemini API's generateContent wire format.

Owns the request body, reading a GenerateContentResponse (whole or as stream chunks) and classifying
error bodies into plain ``VendorError`` values. Does not send anything, read headers or build exceptions
(see ``adapter``). Wire format: https://ai.google.dev/api/generate-content
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from pydantic_core import to_json

from model_orchestrator.core.request import ChatRequest, ResponseFormat
from model_orchestrator.core.response import Completion, FinishReason, StreamDelta, TokenLogprob
from model_orchestrator.core.tools import ToolCall, ToolCallDelta
from model_orchestrator.core.usage import Usage
from model_orchestrator.providers.gemini.parts import (
    contents,
    function_calls,
    tool_config_of,
    tools_of,
)
from model_orchestrator.providers.gemini.schema import to_gemini_schema
from model_orchestrator.providers.json_reading import (
    MalformedError,
    float_of,
    int_of,
    object_of,
    objects_of,
    parse,
    parse_object,
    text_or_none,
)

# https://ai.google.dev/api/generate-content#FinishReason
_FINISH = {
    "STOP": FinishReason.STOP,
    "MAX_TOKENS": FinishReason.LENGTH,
    "SAFETY": FinishReason.CONTENT_FILTER,
    "RECITATION": FinishReason.CONTENT_FILTER,
    "BLOCKLIST": FinishReason.CONTENT_FILTER,
    "PROHIBITED_CONTENT": FinishReason.CONTENT_FILTER,
    "SPII": FinishReason.CONTENT_FILTER,
    "IMAGE_SAFETY": FinishReason.CONTENT_FILTER,
    "MALFORMED_FUNCTION_CALL": FinishReason.ERROR,
}

# e.g. "The input token count (1196265) exceeds the maximum number of tokens allowed (1048575)."
_CONTEXT_PHRASES = ("exceeds the maximum number of tokens", "input token count", "context window")
_RETRY_INFO = "type.googleapis.com/google.rpc.RetryInfo"
_ERROR_INFO = "type.googleapis.com/google.rpc.ErrorInfo"
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)s\s*$")


@dataclass(frozen=True, slots=True)
class VendorError:
    """An error Gemini reported, classified but not yet raised (the adapter raises it)."""

    status: int
    message: str
    error_status: str = ""
    retry_after: float | None = None
    context_exceeded: bool = False
    content_filtered: bool = False


def encode_request(request: ChatRequest, *, sign_calls: bool = False) -> bytes:
    """The JSON body of ``models/{model}:generateContent`` (and ``:streamGenerateContent``).

    ``sign_calls``: the model validates replayed function calls' thought signatures (``parts``).
    """
    body: dict[str, Any] = {"contents": contents(request.messages, sign_calls=sign_calls)}
    if request.system_text:
        body["systemInstruction"] = {"parts": [{"text": request.system_text}]}
    tools = tools_of(request)
    if tools is not None:
        body["tools"] = tools
    tool_config = tool_config_of(request)
    if tool_config is not None:
        body["toolConfig"] = tool_config
    config = _generation_config(request)
    if config:
        body["generationConfig"] = config
    # pydantic-core's encoder, as for the other wire formats (docs/decisions.md, "Encoding upstream bodies").
    return to_json(body)


def _generation_config(request: ChatRequest) -> dict[str, Any]:
    # https://ai.google.dev/api/generate-content#generationconfig
    config: dict[str, Any] = {}
    if request.max_tokens is not None:
        config["maxOutputTokens"] = request.max_tokens
    if request.temperature is not None:
        config["temperature"] = request.temperature
    if request.top_p is not None:
        config["topP"] = request.top_p
    if request.stop:
        config["stopSequences"] = list(request.stop)
    if request.response_format is ResponseFormat.JSON:
        config["responseMimeType"] = "application/json"
    if request.json_schema is not None:
        # https://ai.google.dev/gemini-api/docs/structured-output
        config["responseSchema"] = to_gemini_schema(
            request.json_schema.schema,
            capability="json_schema",
            what=f"the JSON schema {request.json_schema.name!r}",
        )
    if request.logprobs:
        config["responseLogprobs"] = True
        # "logprobs" (how many alternatives per step) is only valid together with responseLogprobs.
        if request.top_logprobs:
            config["logprobs"] = request.top_logprobs
    return config


def decode_response(
    body: bytes,
    *,
    provider: str,
    deployment: str,
    latency: float,
    max_calls: int | None = None,
    logprobs: bool = False,
) -> Completion | VendorError:
    """A completion from a 200 response body, or a ``VendorError`` for blocked or unreadable answers.

    ``functionCall`` parts become tool calls (the first ``max_calls`` of them, all when None); token
    log-probabilities are read only with ``logprobs`` (the request asked for them).
    """
    data = parse_object(body)
    if data is None:
        return _unreadable("response")
    problem = _chunk_problem(data)
    if problem is not None:
        return problem
    candidate = _first_candidate(data)
    if candidate is None:
        return _unreadable("response without candidates")
    calls = function_calls(_parts(candidate), first_index=0)[:max_calls]
    return Completion(
        text=_candidate_text(candidate),
        model=str(data.get("modelVersion") or ""),
        provider=provider,
        deployment=deployment,
        usage=usage_of(object_of(data.get("usageMetadata"))),
        latency=latency,
        finish_reason=_finish(candidate.get("finishReason"), calls),
        logprobs=logprobs_of(candidate) if logprobs else None,
        response_id=text_or_none(data.get("responseId")),
        tool_calls=tuple(calls),
    )


def usage_of(metadata: Mapping[str, Any]) -> Usage:
    """Core usage from ``usageMetadata``.

    ``promptTokenCount`` already includes ``cachedContentTokenCount``; ``candidatesTokenCount`` excludes
    ``thoughtsTokenCount``, which is billed as output, so thoughts are added to output (core counts
    reasoning inside output). Tool-use prompt tokens are billed as input.
    https://ai.google.dev/api/generate-content#UsageMetadata
    """
    thoughts = int_of(metadata.get("thoughtsTokenCount"))
    return Usage(
        input_tokens=int_of(metadata.get("promptTokenCount"))
        + int_of(metadata.get("toolUsePromptTokenCount")),
        output_tokens=int_of(metadata.get("candidatesTokenCount")) + thoughts,
        cached_input_tokens=int_of(metadata.get("cachedContentTokenCount")),
        reasoning_tokens=thoughts,
    )


def finish_reason_of(reason: object) -> FinishReason:
    """The core finish reason for a Gemini ``finishReason``."""
    return _FINISH.get(str(reason), FinishReason.UNKNOWN) if reason else FinishReason.UNKNOWN


def _finish(reason: object, calls: list[ToolCall] | int) -> FinishReason:
    """Gemini ends a turn of function calls with ``STOP``; core says ``tool_calls``."""
    finish = finish_reason_of(reason)
    return FinishReason.TOOL_CALLS if calls and finish is FinishReason.STOP else finish


def logprobs_of(candidate: Mapping[str, Any]) -> tuple[TokenLogprob, ...] | None:
    """Per-token log-probabilities from ``logprobsResult``, or None when the answer has none."""
    result = object_of(candidate.get("logprobsResult"))
    chosen = objects_of(result.get("chosenCandidates"))
    if not chosen:
        return None
    tops = objects_of(result.get("topCandidates"))
    return tuple(
        TokenLogprob(
            token=str(pick.get("token", "")),
            logprob=float_of(pick.get("logProbability")),
            top=_alternatives(tops[i]) if i < len(tops) else (),
        )
        for i, pick in enumerate(chosen)
    )


def _alternatives(step: Mapping[str, Any]) -> tuple[tuple[str, float], ...]:
    alternatives = objects_of(step.get("candidates"))
    return tuple((str(c.get("token", "")), float_of(c.get("logProbability"))) for c in alternatives)


def decode_error(status: int, body: bytes) -> VendorError:
    """Classify a non-2xx response: ``{"error": {"code", "message", "status", "details"}}``.

    The streaming endpoint may wrap the same object in a one-element list.
    """
    try:
        data = parse(body)
    except MalformedError:
        data = None
    if isinstance(data, list) and data:
        data = data[0]
    if not isinstance(data, dict):
        # Not cut here: the adapter redacts the key from the whole text first, then cuts it.
        snippet = body.decode("utf-8", errors="replace").strip()
        return VendorError(status=status, message=f"HTTP {status}: {snippet or 'empty body'}")
    blocked = _chunk_problem(data)
    if blocked is not None and blocked.content_filtered:
        # A block normally comes as a 200 answer; a proxy may pass it on with an error status.
        return replace(blocked, status=status)
    return _classify(status, object_of(data.get("error")))


def _classify(status: int, error: Mapping[str, Any]) -> VendorError:
    message = str(error.get("message") or f"HTTP {status}")
    error_status = str(error.get("status") or "")
    details = objects_of(error.get("details"))
    if status == 400 and any(
        d.get("@type") == _ERROR_INFO and d.get("reason") == "API_KEY_INVALID" for d in details
    ):
        # Gemini answers a bad key with 400 INVALID_ARGUMENT + ErrorInfo API_KEY_INVALID; it is an auth
        # failure, so it is reported as 401: https://ai.google.dev/gemini-api/docs/troubleshooting
        status = 401
    lowered = message.lower()
    return VendorError(
        status=status,
        message=message,
        error_status=error_status,
        retry_after=_retry_delay(details),
        context_exceeded=error_status == "INVALID_ARGUMENT" and any(p in lowered for p in _CONTEXT_PHRASES),
    )


def _retry_delay(details: list[Mapping[str, Any]]) -> float | None:
    """Seconds from a ``google.rpc.RetryInfo`` detail (a protobuf Duration such as ``"30s"``)."""
    for detail in details:
        if detail.get("@type") == _RETRY_INFO:
            match = _DURATION.match(str(detail.get("retryDelay", "")))
            if match:
                return float(match.group(1))
    return None


def _chunk_problem(data: Mapping[str, Any]) -> VendorError | None:
    """A blocked prompt or an embedded error object in an otherwise successful body or chunk."""
    if isinstance(data.get("error"), dict):
        error = object_of(data["error"])
        return _classify(int_of(error.get("code")) or 500, error)
    block = object_of(data.get("promptFeedback")).get("blockReason")
    if block:
        # https://ai.google.dev/api/generate-content#BlockReason
        return VendorError(
            status=400, message=f"prompt blocked: {block}", error_status=str(block), content_filtered=True
        )
    return None


def _unreadable(what: str) -> VendorError:
    # 502: the upstream answered, but not with anything we can read; a server-side failure to retry.
    return VendorError(status=502, message=f"unreadable {what} from upstream", error_status="UNREADABLE")


class StreamDecoder:
    """Turns ``streamGenerateContent?alt=sse`` chunks into ``StreamDelta`` values.

    Each chunk is a GenerateContentResponse; usage metadata is cumulative, so the last one seen is kept.
    The stream has no terminal event: ``end()`` emits the final delta once a finish reason was seen.
    A ``functionCall`` part arrives whole in one chunk, so each becomes one ``ToolCallDelta`` with id,
    name and all its arguments (the first ``max_calls`` of them, all when None). Token log-probabilities
    are read only with ``logprobs`` (the request asked for them).
    """

    def __init__(self, *, max_calls: int | None = None, logprobs: bool = False) -> None:
        self._logprobs = logprobs
        self._model: str | None = None
        self._usage: Mapping[str, Any] = {}
        self._finish: object = None
        self._calls = 0
        self._max_calls = max_calls

    def feed(self, data: str) -> StreamDelta | VendorError | None:
        """The text delta of one chunk, a ``VendorError`` for a blocked or error chunk, or None."""
        chunk = parse_object(data)
        if chunk is None:
            return _unreadable("stream chunk")
        problem = _chunk_problem(chunk)
        if problem is not None:
            return problem
        self._model = text_or_none(chunk.get("modelVersion")) or self._model
        self._usage = object_of(chunk.get("usageMetadata")) or self._usage
        candidate = _first_candidate(chunk)
        if candidate is None:
            return None
        self._finish = candidate.get("finishReason") or self._finish
        text = _candidate_text(candidate)
        logprobs = (logprobs_of(candidate) or ()) if self._logprobs else ()
        calls = function_calls(_parts(candidate), first_index=self._calls)
        if self._max_calls is not None:
            calls = calls[: max(0, self._max_calls - self._calls)]
        pieces = tuple(ToolCallDelta(self._calls + i, c.id, c.name, c.arguments) for i, c in enumerate(calls))
        self._calls += len(pieces)
        if not (text or logprobs or pieces):
            return None
        return StreamDelta(text=text, logprobs=logprobs, tool_calls=pieces)

    def end(self) -> StreamDelta | VendorError:
        """The final delta, or a ``VendorError`` when the stream stopped before any finish reason."""
        if self._finish is None:
            return VendorError(
                status=502, message="stream ended before a finish reason", error_status="INCOMPLETE_STREAM"
            )
        return StreamDelta(
            finish_reason=_finish(self._finish, self._calls), usage=usage_of(self._usage), model=self._model
        )


def _first_candidate(data: Mapping[str, Any]) -> Mapping[str, Any] | None:
    candidates = objects_of(data.get("candidates"))
    return candidates[0] if candidates else None


def _parts(candidate: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return objects_of(object_of(candidate.get("content")).get("parts"))


def _candidate_text(candidate: Mapping[str, Any]) -> str:
    # Parts flagged "thought" are the model's reasoning summary, not the answer.
    return "".join(str(p.get("text", "")) for p in _parts(candidate) if not p.get("thought"))
