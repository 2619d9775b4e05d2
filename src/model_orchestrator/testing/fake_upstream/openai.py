"""The OpenAI Chat Completions wire format for ``FakeUpstream`` (also Azure's deployment paths).

Renders bodies, stream frames, errors and rate-limit headers as the OpenAI API documents them:
https://platform.openai.com/docs/api-reference/chat/create and .../chat/streaming. It does not
serve HTTP or time anything (``server`` does). Written from the docs, not from our adapter.
"""

from __future__ import annotations

import json
import math
import time
import uuid
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from model_orchestrator.core.tools import ToolCall
from model_orchestrator.testing.fake_upstream.schema_example import example_for
from model_orchestrator.testing.fake_upstream.script import Reply, estimate_tokens

_PATH_SUFFIX = "/chat/completions"
_MESSAGE_OVERHEAD = 4
_LISTED_MODELS = ("gpt-4o-mini", "gpt-4o")
_FIRST_LOGPROB = -0.05
_ALTERNATIVE_LOGPROB = -3.5

# (type, code) per fault kind; content_filter is Azure's form
# (https://learn.microsoft.com/azure/ai-services/openai/concepts/content-filter).
_ERROR_KINDS: dict[str, tuple[str | None, str | None]] = {
    "rate_limit": ("requests", "rate_limit_exceeded"),
    "server": ("server_error", None),
    "overloaded": ("server_error", "overloaded"),
    "context_length": ("invalid_request_error", "context_length_exceeded"),
    "auth": ("invalid_request_error", "invalid_api_key"),
    "bad_request": ("invalid_request_error", None),
    "content_filter": (None, "content_filter"),
}


class OpenAIFormat:
    """``POST .../chat/completions`` (OpenAI, Azure ``/openai/deployments/{d}/chat/completions``)."""

    name = "openai"
    overloaded_status = 503

    def matches(self, method: str, path: str) -> bool:
        return method == "POST" and path.endswith(_PATH_SUFFIX)

    def is_stream(self, path: str, query: Mapping[str, str], body: Mapping[str, Any]) -> bool:
        return body.get("stream") is True

    def model_of(self, path: str, body: Mapping[str, Any]) -> str:
        parts = path.strip("/").split("/")
        if len(parts) >= 3 and parts[0] == "openai" and parts[1] == "deployments":
            return parts[2]
        return str(body.get("model", "unknown"))

    def prompt_tokens(self, body: Mapping[str, Any]) -> int:
        messages = body.get("messages") or []
        return sum(estimate_tokens(_content_text(m.get("content"))) + _MESSAGE_OVERHEAD for m in messages)

    def reply_for(self, reply: Reply, body: Mapping[str, Any]) -> Reply:
        """A structured-output request (``response_format: json_schema``) whose scripted text is not JSON
        is answered with a value matching the schema, as a provider enforcing it would."""
        response_format = body.get("response_format")
        if not isinstance(response_format, dict) or response_format.get("type") != "json_schema":
            return reply
        try:
            json.loads(reply.text)
        except ValueError:
            spec = response_format.get("json_schema") or {}
            schema = spec.get("schema") if isinstance(spec, dict) else None
            value = example_for(schema if isinstance(schema, dict) else {"type": "object"})
            return replace(reply, text=json.dumps(value, separators=(",", ":")))
        return reply

    def reply_body(self, reply: Reply, model: str, prompt_tokens: int) -> dict[str, Any]:
        message: dict[str, Any] = {"role": "assistant", "content": reply.text, "refusal": None}
        if reply.tool_calls:
            message["content"] = reply.text or None
            message["tool_calls"] = [_tool_call(call) for call in reply.tool_calls]
        choice: dict[str, Any] = {
            "index": 0,
            "message": message,
            "logprobs": {"content": _logprobs(reply.chunks()), "refusal": None} if reply.logprobs else None,
            "finish_reason": reply.finish_reason,
        }
        return {
            **_envelope("chat.completion", model),
            "choices": [choice],
            "usage": _usage(reply, prompt_tokens),
        }

    def stream_frames(self, reply: Reply, model: str, prompt_tokens: int) -> list[bytes]:
        head = _envelope("chat.completion.chunk", model)
        chunks = reply.chunks()
        frames = [_frame({**head, "choices": [_delta({"role": "assistant", "content": ""}, None, None)]})]
        for index, text in enumerate(chunks):
            if not text and reply.tool_calls:
                continue
            logprobs = {"content": _logprobs([text], start=index)} if reply.logprobs else None
            frames.append(_frame({**head, "choices": [_delta({"content": text}, logprobs, None)]}))
        frames.extend(_frame({**head, "choices": [_delta(d, None, None)]}) for d in _tool_call_deltas(reply))
        frames.append(_frame({**head, "choices": [_delta({}, None, reply.finish_reason)]}))
        frames.append(_frame({**head, "choices": [], "usage": _usage(reply, prompt_tokens)}))
        frames.append(b"data: [DONE]\n\n")
        return frames

    def error_response(self, kind: str, status: int, message: str) -> dict[str, Any]:
        error_type, code = _ERROR_KINDS.get(kind, ("invalid_request_error", None))
        param = "messages" if kind == "context_length" else ("prompt" if kind == "content_filter" else None)
        return {"error": {"message": message, "type": error_type, "param": param, "code": code}}

    def model_list(self, method: str, path: str, headers: Mapping[str, str]) -> dict[str, Any] | None:
        """``GET .../models`` (Azure: ``/openai/models``): a small list, as the docs show it.

        https://platform.openai.com/docs/api-reference/models/list. The generic form: a request carrying
        Anthropic's version header or addressed to Gemini's ``/v1beta`` belongs to those formats.
        """
        if method != "GET" or not path.endswith("/models"):
            return None
        if "anthropic-version" in headers or path.startswith("/v1beta/"):
            return None
        return {
            "object": "list",
            "data": [
                {"id": model, "object": "model", "created": 1_715_367_049, "owned_by": "system"}
                for model in _LISTED_MODELS
            ],
        }

    def rate_limit_headers(self, retry_after: float | None) -> dict[str, str]:
        """The ``x-ratelimit-*`` headers OpenAI sends with a 429 for the requests bucket.

        https://platform.openai.com/docs/guides/rate-limits#rate-limits-in-headers
        """
        wait = 1.0 if retry_after is None else retry_after
        return {
            "x-ratelimit-limit-requests": "60",
            "x-ratelimit-remaining-requests": "0",
            "x-ratelimit-reset-requests": _go_duration(wait),
            "x-ratelimit-limit-tokens": "150000",
            "x-ratelimit-remaining-tokens": "149000",
            "x-ratelimit-reset-tokens": "6ms",
        }


FORMAT = OpenAIFormat()


def _envelope(kind: str, model: str) -> dict[str, Any]:
    return {
        "id": f"chatcmpl-fake{uuid.uuid4().hex[:16]}",
        "object": kind,
        "created": int(time.time()),
        "model": model,
        "system_fingerprint": "fp_fake",
    }


def _delta(delta: dict[str, Any], logprobs: dict[str, Any] | None, finish: str | None) -> dict[str, Any]:
    return {"index": 0, "delta": delta, "logprobs": logprobs, "finish_reason": finish}


def _tool_call(call: ToolCall) -> dict[str, Any]:
    return {"id": call.id, "type": "function", "function": {"name": call.name, "arguments": call.arguments}}


def _tool_call_deltas(reply: Reply) -> list[dict[str, Any]]:
    """Each call as OpenAI streams it: id, type and name with empty arguments first, then the arguments
    in ``chunk_size`` pieces carrying only their ``index``."""
    deltas: list[dict[str, Any]] = []
    size = reply.chunk_size
    for index, call in enumerate(reply.tool_calls):
        first = {"index": index, "id": call.id, "type": "function"}
        deltas.append({"tool_calls": [{**first, "function": {"name": call.name, "arguments": ""}}]})
        for start in range(0, len(call.arguments), size):
            piece = {"index": index, "function": {"arguments": call.arguments[start : start + size]}}
            deltas.append({"tool_calls": [piece]})
    return deltas


def _usage(reply: Reply, prompt_tokens: int) -> dict[str, Any]:
    prompt, completion = reply.usage_for(prompt_tokens)
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": reply.cached_tokens, "audio_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": reply.reasoning_tokens, "audio_tokens": 0},
    }


def _logprobs(tokens: list[str], start: int = 0) -> list[dict[str, Any]]:
    """One entry per token, decreasing probability, each with one alternative below it."""
    entries = []
    for offset, token in enumerate(tokens):
        logprob = _FIRST_LOGPROB * (start + offset + 1)
        top = [_token(token, logprob), _token(token.upper() + "~", _ALTERNATIVE_LOGPROB)]
        entries.append({**_token(token, logprob), "top_logprobs": top})
    return entries


def _token(token: str, logprob: float) -> dict[str, Any]:
    return {"token": token, "logprob": logprob, "bytes": list(token.encode())}


def _frame(payload: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(payload, separators=(",", ":")).encode() + b"\n\n"


def _content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return ""


def _go_duration(seconds: float) -> str:
    """``seconds`` the way OpenAI writes resets: ``1s``, ``6m0s``, ``250ms``."""
    if seconds < 1:
        return f"{math.ceil(seconds * 1000)}ms"
    minutes, rest = divmod(seconds, 60)
    return f"{int(minutes)}m{rest:g}s" if minutes else f"{rest:g}s"
