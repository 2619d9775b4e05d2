"""Helpers shared by the pipeline, specialist and validation strategies: reading model answers (fenced
blocks, JSON inside prose) and building the auxiliary requests they send (summaries, reviews, judging).

Pure functions only; no model calls, no decisions.
"""

from __future__ import annotations

import json
import re

from model_orchestrator.core.messages import Message, Role
from model_orchestrator.core.request import ChatRequest, ResponseFormat

_FENCE = re.compile(r"^[ \t]*```[ \t]*([\w+.-]*)[^\n]*\n(.*?)^[ \t]*```", re.DOTALL | re.MULTILINE)
_JSON_START = re.compile(r"[{\[]")
# Prose with many stray brackets would make the embedded-JSON scan quadratic; real answers put their JSON
# within the first few candidates.
_MAX_JSON_STARTS = 64


def fenced_blocks(text: str) -> list[tuple[str, str]]:
    """Every Markdown fenced block as ``(language, body)``; the language is lower-cased, "" when absent."""
    return [(m.group(1).lower(), m.group(2)) for m in _FENCE.finditer(text)]


def find_json(text: str, *, want_object: bool = False) -> object:
    """The JSON value in a model's answer: the whole text, a fenced block, or the first one inside prose.

    With ``want_object`` only a JSON object (a ``dict``) counts. Raises ``ValueError`` when none is found.
    """
    candidates = [text.strip(), *(body.strip() for _, body in fenced_blocks(text))]
    for candidate in candidates:
        try:
            value = json.loads(candidate)
        except ValueError:
            continue
        if not want_object or isinstance(value, dict):
            return value
    decoder = json.JSONDecoder()
    for count, match in enumerate(_JSON_START.finditer(text)):
        if count >= _MAX_JSON_STARTS:
            break
        try:
            value, _ = decoder.raw_decode(text, match.start())
        except ValueError:
            continue
        if not want_object or isinstance(value, dict):
            return value
    kind = "JSON object" if want_object else "JSON value"
    raise ValueError(f"no {kind} found in the answer")


def last_user_text(request: ChatRequest) -> str:
    """The text of the request's last user message ("" when there is none)."""
    for message in reversed(request.messages):
        if message.role is Role.USER:
            return message.text
    return ""


def task_text(request: ChatRequest) -> str:
    """What the caller asked for, for a judge or reviewer: the system text (if any) and the last user turn."""
    system = request.system_text
    user = last_user_text(request)
    return f"{system}\n\n{user}" if system else user


def auxiliary_request(base: ChatRequest, *, system: str, user: str, json_answer: bool = False) -> ChatRequest:
    """A helper call made on behalf of ``base`` (summary, judge): same id, deadline, cost cap and tags;
    its own prompt, free length, no logprobs, and none of the caller's tools or JSON schema (a judge
    must answer in its own format, not call the caller's functions)."""
    return base.with_options(
        messages=(Message.system(system), Message.user(user)),
        max_tokens=None,
        response_format=ResponseFormat.JSON if json_answer else ResponseFormat.TEXT,
        logprobs=False,
        top_logprobs=None,
        stop=(),
        tools=(),
        tool_choice=None,
        parallel_tool_calls=None,
        json_schema=None,
    )
