"""Gemini API content: turns of text, image, ``functionCall`` and ``functionResponse`` parts; tools and the
tool config; reading function calls back, with the ids Gemini does not give.

Owns those shapes both ways. Not the rest of the request body or response (see ``convert``).

- Function calling: https://ai.google.dev/gemini-api/docs/function-calling and
  https://ai.google.dev/api/caching#Tool, #ToolConfig, #FunctionCall, #FunctionResponse
- Images: inline base64 as ``inlineData`` (https://ai.google.dev/api/caching#Blob); http(s) URLs as
  ``fileData.fileUri``, which takes public URLs as well as uploaded files
  (https://ai.google.dev/gemini-api/docs/file-input-methods).

Gemini's function calls carry no id (newer models may add one, which is kept). A call without one gets
``call_`` + a digest of its position, name and arguments: the same answer gives the same ids, streamed
or not. A tool result must name its function, so the name is looked up from the earlier assistant call
with that id. Gemini has no switch for one call per turn: with ``parallel_tool_calls=False`` only the
first call of an answer is returned (``max_calls``).

Gemini 3 models refuse a replayed turn of function calls whose first call lacks its ``thoughtSignature``
(https://ai.google.dev/gemini-api/docs/thought-signatures). The core types do not carry Gemini's opaque
signatures (no other wire format could hand them back), so for those models the first call of each
replayed assistant turn carries the sentinel that page documents for history without signatures.
"""

from __future__ import annotations

import hashlib
import json
import mimetypes
import re
from collections.abc import Iterable, Mapping
from typing import Any

from model_orchestrator.core.errors import InvalidRequestError
from model_orchestrator.core.messages import ContentPart, ImagePart, Message, Role
from model_orchestrator.core.request import ChatRequest
from model_orchestrator.core.tools import ToolCall, ToolDefinition
from model_orchestrator.providers.gemini.schema import to_gemini_schema

# core tool choice mode -> functionCallingConfig.mode
_MODES = {"auto": "AUTO", "required": "ANY", "function": "ANY", "none": "NONE"}
SKIP_SIGNATURE = "skip_thought_signature_validator"
_MAJOR_VERSION = re.compile(r"^(?:models/)?gemini-(\d+)")


def needs_call_signatures(model_id: str) -> bool:
    """True for models that validate the thought signatures of replayed function calls (Gemini 3 on)."""
    match = _MAJOR_VERSION.match(model_id)
    return match is not None and int(match.group(1)) >= 3


def contents(messages: Iterable[Message], *, sign_calls: bool = False) -> list[dict[str, Any]]:
    """Turns with roles ``user``/``model``; consecutive same-role messages merge into one turn.

    Tool results go in user turns as ``functionResponse`` parts, consecutive ones together: Gemini wants
    one response part per call of the turn before. ``sign_calls`` puts the sentinel signature on the first
    call of each assistant message (see the module docstring).
    """
    turns: list[dict[str, Any]] = []
    names: dict[str, str] = {}
    for message in messages:
        if message.role is Role.SYSTEM:
            continue
        if message.role is Role.TOOL:
            role, parts = "user", [_function_response(message, names)]
        else:
            role = "model" if message.role is Role.ASSISTANT else "user"
            parts = _content_parts(message.parts)
            for number, call in enumerate(message.tool_calls):
                names[call.id] = call.name
                parts.append(_function_call(call, signed=sign_calls and number == 0))
        if not parts:
            continue
        if turns and turns[-1]["role"] == role:
            turns[-1]["parts"].extend(parts)
        else:
            turns.append({"role": role, "parts": parts})
    return turns


def tools_of(request: ChatRequest) -> list[dict[str, Any]] | None:
    """``tools`` with one ``functionDeclarations`` list, or None without tools."""
    if not request.tools:
        return None
    return [{"functionDeclarations": [_declaration(t) for t in request.tools]}]


def tool_config_of(request: ChatRequest) -> dict[str, Any] | None:
    """``toolConfig.functionCallingConfig`` for the request's tool choice, or None to leave the default."""
    choice = request.tool_choice
    if choice is None or not request.tools:
        return None
    config: dict[str, Any] = {"mode": _MODES[choice.mode]}
    if choice.name is not None:
        config["allowedFunctionNames"] = [choice.name]
    return {"functionCallingConfig": config}


def max_calls(request: ChatRequest) -> int | None:
    """How many calls of one answer to return (None: all)."""
    return 1 if request.parallel_tool_calls is False else None


def function_calls(parts: Iterable[Mapping[str, Any]], *, first_index: int) -> list[ToolCall]:
    """The ``functionCall`` parts as tool calls, numbered from ``first_index`` (for their ids)."""
    calls: list[ToolCall] = []
    for part in parts:
        call = part.get("functionCall")
        if not isinstance(call, dict):
            continue
        name = str(call.get("name") or "")
        arguments = json.dumps(
            call.get("args") if isinstance(call.get("args"), dict) else {},
            separators=(",", ":"),
            ensure_ascii=False,
        )
        given = call.get("id")
        call_id = (
            given if isinstance(given, str) and given else _call_id(first_index + len(calls), name, arguments)
        )
        calls.append(ToolCall(call_id, name, arguments))
    return calls


def _function_call(call: ToolCall, *, signed: bool) -> dict[str, Any]:
    part: dict[str, Any] = {"functionCall": {"name": call.name, "args": dict(call.parsed_arguments())}}
    if signed:
        part["thoughtSignature"] = SKIP_SIGNATURE
    return part


def _call_id(index: int, name: str, arguments: str) -> str:
    digest = hashlib.sha256(f"{index}\0{name}\0{arguments}".encode()).hexdigest()
    return f"call_{digest[:24]}"


def _content_parts(parts: Iterable[ContentPart]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for part in parts:
        if isinstance(part, ImagePart):
            out.append(_image(part))
        elif part.text:
            out.append({"text": part.text})
    return out


def _image(part: ImagePart) -> dict[str, Any]:
    if part.is_data:
        try:
            media_type, data = part.data()
        except ValueError as exc:
            raise InvalidRequestError(f"image: {exc}") from exc
        return {"inlineData": {"mimeType": media_type, "data": data}}
    if not part.url.startswith(("https://", "http://")):
        raise InvalidRequestError("an image must be an http(s) URL or a data:<type>;base64,<data> URL")
    file_data = {"fileUri": part.url}
    guessed, _ = mimetypes.guess_type(part.url.split("?", 1)[0])
    if guessed:
        file_data = {"mimeType": guessed, **file_data}
    return {"fileData": file_data}


def _function_response(message: Message, names: Mapping[str, str]) -> dict[str, Any]:
    call_id = message.tool_call_id or ""
    name = names.get(call_id)
    if name is None:
        raise InvalidRequestError(
            f"the tool result for call {call_id!r} answers no earlier assistant tool call; Gemini needs the "
            "function's name, so send the assistant turn with that call before its result"
        )
    if message.images:
        raise InvalidRequestError(
            "a tool result with an image cannot go to a Gemini model (a function response is JSON); send "
            "the image in a user message after the result"
        )
    # ``response`` must be a JSON object; other results go under "output", the key the API reference names.
    text = message.text
    try:
        value = json.loads(text)
    except ValueError:
        value = None
    response = value if isinstance(value, dict) else {"output": text}
    return {"functionResponse": {"name": name, "response": response}}


def _declaration(tool: ToolDefinition) -> dict[str, Any]:
    declaration: dict[str, Any] = {"name": tool.name}
    if tool.description:
        declaration["description"] = tool.description
    # An OBJECT schema with no properties is rejected ("should be non-empty for OBJECT type"), so a tool
    # that takes no arguments declares no parameters.
    if tool.parameters.get("properties"):
        declaration["parameters"] = to_gemini_schema(
            tool.parameters, capability="tools", what=f"the parameters of tool {tool.name!r}"
        )
    return declaration
