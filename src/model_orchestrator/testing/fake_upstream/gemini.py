"""The Gemini API generateContent wire format for ``FakeUpstream``.

Renders GenerateContentResponse bodies, ``streamGenerateContent?alt=sse`` chunks and google.rpc error
bodies as Google documents them: https://ai.google.dev/api/generate-content and
https://ai.google.dev/gemini-api/docs/troubleshooting. It does not serve HTTP or time anything
(``server`` does), and it is written from the docs, not from our adapter.

The Gemini API sends no rate-limit headers; its 429 bodies may carry a ``google.rpc.RetryInfo`` detail
instead, which this format adds when built with ``retry_delay``. A safety block is a 200 answer with
``promptFeedback.blockReason``; the server sends content-filter faults with status 400, so that body
arrives with a 400 here.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Mapping
from typing import Any

from model_orchestrator.testing.fake_upstream.script import Reply, estimate_tokens

_PATH = re.compile(
    r"^/v1(?:beta)?/models/(?P<model>[^/:]+):(?P<method>generateContent|streamGenerateContent)$"
)
_MODELS_PATH = "/v1beta/models"
_LISTED_MODELS = (
    ("gemini-2.0-flash", "2.0", "Gemini 2.0 Flash"),
    ("gemini-2.5-pro", "2.5", "Gemini 2.5 Pro"),
)
_MESSAGE_OVERHEAD = 4
_CONTEXT_LIMIT = 1_048_576
_FIRST_LOGPROB = -0.05
_ALTERNATIVE_LOGPROB = -3.5

# Script finish reasons (OpenAI's words) -> finishReason.
# Gemini ends a turn of function calls with STOP (it has no finish reason of its own for them).
_FINISH = {"stop": "STOP", "length": "MAX_TOKENS", "content_filter": "SAFETY", "tool_calls": "STOP"}

# HTTP status -> google.rpc status (https://cloud.google.com/apis/design/errors#handling_errors).
_RPC_STATUS = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    409: "ABORTED",
    429: "RESOURCE_EXHAUSTED",
    499: "CANCELLED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}
_FIXED_MESSAGES = {
    "overloaded": "The model is overloaded. Please try again later.",
    "server": "An internal error has occurred. Please retry or report in https://developers.generativeai.google/guide/troubleshooting",
    "auth": "API key not valid. Please pass a valid API key.",
    "context_length": f"The input token count ({_CONTEXT_LIMIT + 8310}) exceeds the maximum number of tokens "
    f"allowed ({_CONTEXT_LIMIT}).",
}


class GeminiFormat:
    """``POST /v1beta/models/{model}:generateContent`` and ``:streamGenerateContent`` (SSE frames)."""

    name = "gemini"
    overloaded_status = 503

    def __init__(self, *, retry_delay: float | None = None) -> None:
        self.retry_delay = retry_delay

    def matches(self, method: str, path: str) -> bool:
        return method == "POST" and _PATH.match(path) is not None

    def is_stream(self, path: str, query: Mapping[str, str], body: Mapping[str, Any]) -> bool:
        # Without alt=sse the real API streams one JSON array; the fake always speaks SSE.
        return path.endswith(":streamGenerateContent")

    def model_of(self, path: str, body: Mapping[str, Any]) -> str:
        match = _PATH.match(path)
        return match.group("model") if match else "unknown"

    def prompt_tokens(self, body: Mapping[str, Any]) -> int:
        turns = [body.get("systemInstruction"), *(body.get("contents") or [])]
        texts = [_text(turn) for turn in turns if isinstance(turn, dict)]
        return sum(estimate_tokens(t) + _MESSAGE_OVERHEAD for t in texts if t)

    def reply_body(self, reply: Reply, model: str, prompt_tokens: int) -> dict[str, Any]:
        candidate = _candidate(reply.text, reply, reply.chunks(), start=0)
        if reply.tool_calls:
            candidate["content"]["parts"] = _text_parts(reply.text) + _function_calls(reply)
        candidate["finishReason"] = _finish(reply)
        return _response(model, [candidate], _usage(reply, prompt_tokens))

    def stream_frames(self, reply: Reply, model: str, prompt_tokens: int) -> list[bytes]:
        if reply.tool_calls:
            return self._tool_call_frames(reply, model, prompt_tokens)
        chunks = reply.chunks()
        frames = []
        for index, text in enumerate(chunks):
            candidate = _candidate(text, reply, [text], start=index)
            last = index == len(chunks) - 1
            if last:
                candidate["finishReason"] = _finish(reply)
            usage = _usage(reply, prompt_tokens) if last else None
            frames.append(_frame(_response(model, [candidate], usage)))
        return frames

    def _tool_call_frames(self, reply: Reply, model: str, prompt_tokens: int) -> list[bytes]:
        """Text chunks, then one chunk holding every call whole (Gemini does not stream arguments)."""
        frames = [
            _frame(_response(model, [_candidate(text, reply, [text], start=i)], None))
            for i, text in enumerate(reply.chunks())
            if text
        ]
        last = {"content": {"parts": _function_calls(reply), "role": "model"}, "index": 0}
        last["finishReason"] = _finish(reply)
        frames.append(_frame(_response(model, [last], _usage(reply, prompt_tokens))))
        return frames

    def error_response(self, kind: str, status: int, message: str) -> dict[str, Any]:
        if kind == "content_filter":
            return {
                "promptFeedback": {
                    "blockReason": "SAFETY",
                    "safetyRatings": [{"category": "HARM_CATEGORY_DANGEROUS_CONTENT", "probability": "HIGH"}],
                },
                "usageMetadata": {"promptTokenCount": 8, "totalTokenCount": 8},
            }
        if kind == "auth" and status == 403:
            kind = "permission"  # a valid key without access: the script's message, no key detail
        error: dict[str, Any] = {
            "code": status,
            "message": _FIXED_MESSAGES.get(kind, message),
            "status": _RPC_STATUS.get(status, "UNKNOWN"),
        }
        details = self._details(kind)
        if details:
            error["details"] = details
        return {"error": error}

    def model_list(self, method: str, path: str, headers: Mapping[str, str]) -> dict[str, Any] | None:
        """``GET /v1beta/models``: a small ``ListModelsResponse``.

        https://ai.google.dev/api/models#method:-models.list
        """
        if method != "GET" or path.rstrip("/") != _MODELS_PATH:
            return None
        models = [
            {
                "name": f"models/{model}",
                "version": version,
                "displayName": display,
                "inputTokenLimit": _CONTEXT_LIMIT,
                "outputTokenLimit": 8192,
                "supportedGenerationMethods": ["generateContent", "countTokens"],
            }
            for model, version, display in _LISTED_MODELS
        ]
        return {"models": models}

    def _details(self, kind: str) -> list[dict[str, Any]]:
        if kind == "auth":
            info = {"service": "generativelanguage.googleapis.com"}
            return [
                {
                    "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                    "reason": "API_KEY_INVALID",
                    "domain": "googleapis.com",
                    "metadata": info,
                }
            ]
        if kind != "rate_limit":
            return []
        details: list[dict[str, Any]] = [
            {
                "@type": "type.googleapis.com/google.rpc.QuotaFailure",
                "violations": [
                    {
                        "quotaMetric": "generativelanguage.googleapis.com/generate_content_requests",
                        "quotaId": "GenerateRequestsPerMinutePerProjectPerModel",
                    }
                ],
            }
        ]
        if self.retry_delay is not None:
            details.append(
                {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": f"{self.retry_delay:g}s"}
            )
        return details


FORMAT = GeminiFormat()


def _response(model: str, candidates: list[dict[str, Any]], usage: dict[str, int] | None) -> dict[str, Any]:
    body: dict[str, Any] = {"candidates": candidates}
    if usage is not None:
        body["usageMetadata"] = usage
    body["modelVersion"] = model
    body["responseId"] = f"fake{uuid.uuid4().hex[:20]}"
    return body


def _candidate(text: str, reply: Reply, tokens: list[str], *, start: int) -> dict[str, Any]:
    """One candidate; with logprobs, one decoding step per entry of ``tokens``."""
    candidate: dict[str, Any] = {"content": {"parts": [{"text": text}], "role": "model"}, "index": 0}
    if reply.logprobs:
        candidate["logprobsResult"] = _logprobs(tokens, start)
    return candidate


def _logprobs(tokens: list[str], start: int) -> dict[str, Any]:
    """One step per token, decreasing probability, each with one alternative below it."""
    chosen = []
    top = []
    for offset, token in enumerate(tokens):
        pick = {"token": token, "logProbability": _FIRST_LOGPROB * (start + offset + 1)}
        chosen.append(pick)
        top.append(
            {"candidates": [pick, {"token": token.upper() + "~", "logProbability": _ALTERNATIVE_LOGPROB}]}
        )
    return {"topCandidates": top, "chosenCandidates": chosen}


def _text_parts(text: str) -> list[dict[str, Any]]:
    return [{"text": text}] if text else []


def _function_calls(reply: Reply) -> list[dict[str, Any]]:
    """``functionCall`` parts: a name and the arguments as an object; Gemini gives no id."""
    return [
        {"functionCall": {"name": call.name, "args": json.loads(call.arguments or "{}")}}
        for call in reply.tool_calls
    ]


def _finish(reply: Reply) -> str:
    return _FINISH.get(reply.finish_reason, reply.finish_reason.upper())


def _usage(reply: Reply, prompt_tokens: int) -> dict[str, int]:
    """``promptTokenCount`` includes cached tokens; ``candidatesTokenCount`` excludes thoughts."""
    prompt, completion = reply.usage_for(prompt_tokens)
    thoughts = min(reply.reasoning_tokens, completion)
    usage = {
        "promptTokenCount": prompt,
        "candidatesTokenCount": completion - thoughts,
        "totalTokenCount": prompt + completion,
    }
    if reply.cached_tokens:
        usage["cachedContentTokenCount"] = min(reply.cached_tokens, prompt)
    if thoughts:
        usage["thoughtsTokenCount"] = thoughts
    return usage


def _frame(payload: dict[str, Any]) -> bytes:
    # Google's SSE frames end in CRLF pairs.
    return b"data: " + json.dumps(payload, separators=(",", ":")).encode() + b"\r\n\r\n"


def _text(turn: Mapping[str, Any]) -> str:
    parts = turn.get("parts") or []
    return "".join(str(p.get("text", "")) for p in parts if isinstance(p, dict))
