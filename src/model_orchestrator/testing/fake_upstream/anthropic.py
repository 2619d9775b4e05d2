"""The Anthropic Messages API wire format for ``FakeUpstream``.

Renders message bodies, stream events, error bodies and ``anthropic-ratelimit-*`` headers as Anthropic
documents them: https://docs.anthropic.com/en/api/messages, .../messages-streaming, .../errors and
.../rate-limits#response-headers. It does not serve HTTP or time anything (``server`` does), and it is
written from the docs, not from our adapter.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from model_orchestrator.core.tools import ToolCall
from model_orchestrator.testing.fake_upstream.script import Reply, estimate_tokens

_PATH_SUFFIX = "/v1/messages"
_MODELS_SUFFIX = "/v1/models"
_LISTED_MODELS = (("claude-sonnet-4-5", "Claude Sonnet 4.5"), ("claude-haiku-4-5", "Claude Haiku 4.5"))
_MESSAGE_OVERHEAD = 4
_CONTEXT_LIMIT = 200_000

# Script finish reasons (OpenAI's words) -> stop_reason.
_STOP_REASONS = {
    "stop": "end_turn",
    "length": "max_tokens",
    "content_filter": "refusal",
    "tool_calls": "tool_use",
}

# Fault kind -> (error type, message or None to keep the script's message).
_ERRORS: dict[str, tuple[str, str | None]] = {
    "rate_limit": ("rate_limit_error", None),
    "server": ("api_error", "Internal server error"),
    "overloaded": ("overloaded_error", "Overloaded"),
    "auth": ("authentication_error", "invalid x-api-key"),
    "content_filter": ("invalid_request_error", "Output blocked by content filtering policy"),
    "bad_request": ("invalid_request_error", None),
}
# Statuses with their own error type (https://docs.anthropic.com/en/api/errors).
_TYPE_OF_STATUS = {
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    529: "overloaded_error",
}


class AnthropicFormat:
    """``POST /v1/messages``, streaming when the body says ``"stream": true``."""

    name = "anthropic"
    overloaded_status = 529

    def matches(self, method: str, path: str) -> bool:
        return method == "POST" and path.endswith(_PATH_SUFFIX)

    def is_stream(self, path: str, query: Mapping[str, str], body: Mapping[str, Any]) -> bool:
        return body.get("stream") is True

    def model_of(self, path: str, body: Mapping[str, Any]) -> str:
        return str(body.get("model", "unknown"))

    def prompt_tokens(self, body: Mapping[str, Any]) -> int:
        messages = body.get("messages") or []
        texts = [_text(body.get("system"))] + [
            _text(m.get("content")) for m in messages if isinstance(m, dict)
        ]
        return sum(estimate_tokens(t) + _MESSAGE_OVERHEAD for t in texts if t)

    def reply_for(self, reply: Reply, body: Mapping[str, Any]) -> Reply:
        """A request whose ``tool_choice`` forces one tool gets a call of it, as the API guarantees: a
        scripted text-only reply becomes that call, its text the input (``{}`` unless a JSON object)."""
        choice = body.get("tool_choice")
        if not isinstance(choice, dict) or choice.get("type") != "tool" or reply.tool_calls:
            return reply
        arguments = reply.text if isinstance(_json_value(reply.text), dict) else "{}"
        call = ToolCall(f"toolu_fake{uuid.uuid4().hex[:20]}", str(choice.get("name")), arguments)
        return replace(reply, text="", tool_calls=(call,), finish_reason="tool_calls")

    def reply_body(self, reply: Reply, model: str, prompt_tokens: int) -> dict[str, Any]:
        text = [{"type": "text", "text": reply.text}] if reply.text else []
        return {
            **_message_head(model),
            "content": text
            + [_tool_use(call.id, call.name, _input(call.arguments)) for call in reply.tool_calls],
            "stop_reason": _stop_reason(reply),
            "stop_sequence": None,
            "usage": _usage(reply, prompt_tokens),
        }

    def stream_frames(self, reply: Reply, model: str, prompt_tokens: int) -> list[bytes]:
        usage = _usage(reply, prompt_tokens)
        start_usage = {**usage, "output_tokens": 1}  # message_start reports output so far
        frames = [
            _frame(
                "message_start",
                {
                    **_message_head(model),
                    "content": [],
                    "stop_reason": None,
                    "stop_sequence": None,
                    "usage": start_usage,
                },
                key="message",
            ),
            _frame("ping", {}),
        ]
        frames += _text_block(reply) + _tool_blocks(reply)
        frames += [
            _frame(
                "message_delta",
                {
                    "delta": {"stop_reason": _stop_reason(reply), "stop_sequence": None},
                    "usage": {"output_tokens": usage["output_tokens"]},
                },
            ),
            _frame("message_stop", {}),
        ]
        return frames

    def error_response(self, kind: str, status: int, message: str) -> dict[str, Any]:
        error_type, fixed = _ERRORS.get(kind, ("invalid_request_error", None))
        error_type = _TYPE_OF_STATUS.get(status, error_type)
        text = fixed or message
        if kind == "context_length":
            text = f"prompt is too long: {_CONTEXT_LIMIT + 8310} tokens > {_CONTEXT_LIMIT} maximum"
        return {
            "type": "error",
            "error": {"type": error_type, "message": text},
            "request_id": f"req_fake{uuid.uuid4().hex[:20]}",
        }

    def model_list(self, method: str, path: str, headers: Mapping[str, str]) -> dict[str, Any] | None:
        """``GET /v1/models`` with the ``anthropic-version`` header every Anthropic request carries.

        https://docs.anthropic.com/en/api/models-list
        """
        if method != "GET" or not path.endswith(_MODELS_SUFFIX) or "anthropic-version" not in headers:
            return None
        data = [
            {"type": "model", "id": model, "display_name": display, "created_at": "2025-09-29T00:00:00Z"}
            for model, display in _LISTED_MODELS
        ]
        return {"data": data, "has_more": False, "first_id": data[0]["id"], "last_id": data[-1]["id"]}

    def rate_limit_headers(self, retry_after: float | None) -> dict[str, str]:
        """The ``anthropic-ratelimit-*`` headers of an exhausted requests bucket (resets in RFC 3339)."""
        reset = datetime.now(UTC) + timedelta(seconds=1.0 if retry_after is None else retry_after)
        stamp = reset.replace(microsecond=0).isoformat().replace("+00:00", "Z")
        return {
            "anthropic-ratelimit-requests-limit": "50",
            "anthropic-ratelimit-requests-remaining": "0",
            "anthropic-ratelimit-requests-reset": stamp,
            "anthropic-ratelimit-input-tokens-limit": "30000",
            "anthropic-ratelimit-input-tokens-remaining": "29000",
            "anthropic-ratelimit-input-tokens-reset": stamp,
            "anthropic-ratelimit-output-tokens-limit": "8000",
            "anthropic-ratelimit-output-tokens-remaining": "8000",
            "anthropic-ratelimit-output-tokens-reset": stamp,
        }


FORMAT = AnthropicFormat()


def _message_head(model: str) -> dict[str, Any]:
    return {"id": f"msg_fake{uuid.uuid4().hex[:20]}", "type": "message", "role": "assistant", "model": model}


def _stop_reason(reply: Reply) -> str:
    return _STOP_REASONS.get(reply.finish_reason, reply.finish_reason)


def _text_block(reply: Reply) -> list[bytes]:
    """Block 0: the text, in pieces (left out when the answer is tool calls only)."""
    if reply.tool_calls and not reply.text:
        return []
    frames = [_frame("content_block_start", {"index": 0, "content_block": {"type": "text", "text": ""}})]
    for text in reply.chunks():
        if text:
            frames.append(
                _frame("content_block_delta", {"index": 0, "delta": {"type": "text_delta", "text": text}})
            )
    return [*frames, _frame("content_block_stop", {"index": 0})]


def _tool_blocks(reply: Reply) -> list[bytes]:
    """One ``tool_use`` block per call: its id and name first, then its input as ``input_json_delta``
    pieces of ``chunk_size`` characters (https://docs.anthropic.com/en/api/messages-streaming)."""
    frames: list[bytes] = []
    first = 1 if reply.text else 0
    size = reply.chunk_size
    for index, call in enumerate(reply.tool_calls, start=first):
        block = _tool_use(call.id, call.name, {})
        frames.append(_frame("content_block_start", {"index": index, "content_block": block}))
        for start in range(0, len(call.arguments), size):
            piece = {"type": "input_json_delta", "partial_json": call.arguments[start : start + size]}
            frames.append(_frame("content_block_delta", {"index": index, "delta": piece}))
        frames.append(_frame("content_block_stop", {"index": index}))
    return frames


def _tool_use(call_id: str, name: str, arguments: object) -> dict[str, Any]:
    return {"type": "tool_use", "id": call_id, "name": name, "input": arguments}


def _json_value(text: str) -> object:
    try:
        return json.loads(text)
    except ValueError:
        return None


def _input(arguments: str) -> object:
    return json.loads(arguments or "{}")


def _usage(reply: Reply, prompt_tokens: int) -> dict[str, int]:
    """Anthropic's ``input_tokens`` excludes cache reads and cache writes, reported beside it."""
    prompt, completion = reply.usage_for(prompt_tokens)
    cached = min(reply.cached_tokens, prompt)
    written = min(reply.cache_write_tokens, prompt - cached)
    return {
        "input_tokens": prompt - cached - written,
        "cache_creation_input_tokens": written,
        "cache_read_input_tokens": cached,
        "output_tokens": completion,
    }


def _frame(event: str, payload: dict[str, Any], *, key: str | None = None) -> bytes:
    data = {"type": event, key: payload} if key else {"type": event, **payload}
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(block.get("text", "")) for block in content if isinstance(block, dict))
    return ""
