"""``POST /v1/messages`` and ``POST /v1/messages/count_tokens``: the Messages API over every configured model
and strategy, whatever wire format its provider speaks.

Owns the two routes and their OpenAPI paths. A client of the Messages format (its official SDK, a coding
agent pointed here by its base URL) authenticates with ``x-api-key`` or a bearer key; the format's version
and beta headers (``wire.messages.VERSION_HEADERS``) are accepted and ignored. Keys' model lists, rpm and
budgets, the ``x-orchestrator-*`` headers and metrics apply as on ``/v1/chat/completions`` (``served``);
errors are in the Messages format (``messages_errors``). ``count_tokens`` answers the project's estimate
(``messages_convert.estimate_input_tokens``), not an upstream tokenizer's count.
"""

from __future__ import annotations

import functools
from typing import Any

from aiohttp import web

from model_orchestrator.gateway.messages_convert import estimate_input_tokens, message_body, to_chat_request
from model_orchestrator.gateway.messages_errors import error_type
from model_orchestrator.gateway.messages_stream import serve_message_stream
from model_orchestrator.gateway.served import FormatRoutes, add_components
from model_orchestrator.wire.messages import VERSION_HEADERS, CountTokensRequest, MessagesRequest

PATH = "/v1/messages"
COUNT_PATH = "/v1/messages/count_tokens"
_PREFIX = "Messages"  # of the request's component schemas in the OpenAPI document


def add_messages_routes(app: web.Application, routes: FormatRoutes) -> None:
    """Register ``/v1/messages`` and ``/v1/messages/count_tokens`` on ``app``."""

    async def messages(request: web.Request) -> web.StreamResponse:
        body = await routes.read(request, MessagesRequest)
        request_id, key_id = routes.allow(request, body.model)
        chat = to_chat_request(
            body,
            request_id=request_id,
            api_key_id=key_id,
            max_tokens_ceiling=routes.settings.limits.max_tokens,
        )
        return await routes.answer(
            request,
            body.model,
            chat,
            stream=functools.partial(serve_message_stream, request) if body.stream else None,
            render=lambda result: message_body(result, message_id=f"msg_{request_id}", model=body.model),
        )

    async def count_tokens(request: web.Request) -> web.Response:
        body = await routes.read(request, CountTokensRequest)
        routes.allow(request, body.model)
        return web.json_response({"input_tokens": estimate_input_tokens(body)})

    app.router.add_post(PATH, messages)
    app.router.add_post(COUNT_PATH, count_tokens)


def document_messages(document: dict[str, Any], max_tokens: int) -> None:
    """Add both routes, their bodies' schemas and the format's error body to the OpenAPI ``document``."""
    schemas = document["components"]["schemas"]
    for model in (MessagesRequest, CountTokensRequest):
        add_components(schemas, model, _PREFIX)
    schemas[MessagesRequest.__name__]["properties"]["max_tokens"]["maximum"] = max_tokens
    _cross_field_rules(schemas)
    schemas["MessagesError"] = _ERROR
    document["paths"][PATH] = {
        "post": _operation(
            "Create a message (Messages API; stream: true answers text/event-stream)",
            MessagesRequest.__name__,
            _MESSAGE,
            stream=True,
        )
    }
    document["paths"][COUNT_PATH] = {
        "post": _operation(
            "Estimate a message request's input tokens (about four characters a token; an estimate)",
            CountTokensRequest.__name__,
            {
                "type": "object",
                "required": ["input_tokens"],
                "properties": {"input_tokens": {"type": "integer"}},
            },
        )
    }


def _cross_field_rules(schemas: dict[str, Any]) -> None:
    """What ``messages_convert`` enforces beyond the field types, stated so that every body the document
    accepts is accepted: which turn carries which blocks, and a ``tool_choice`` that forces a call only
    beside tools. A named choice must also name one of the tools, which JSON Schema cannot say, so the
    ``tool`` form is described in words rather than listed (its schema stays in the components)."""

    def blocks_except(*kinds: str) -> dict[str, Any]:
        item = {"properties": {"type": {"not": {"enum": list(kinds)}}}}
        return {"properties": {"content": {"anyOf": [{"type": "string"}, {"type": "array", "items": item}]}}}

    schemas[f"{_PREFIX}MessageParam"]["allOf"] = [
        {"if": {"properties": {"role": {"const": "user"}}}, "then": blocks_except("tool_use")},
        {
            "if": {"properties": {"role": {"const": "assistant"}}},
            "then": blocks_except("tool_result", "image"),
        },
    ]
    _named_choice_in_words(schemas[MessagesRequest.__name__]["properties"]["tool_choice"])
    forcing = {"properties": {"tool_choice": {"properties": {"type": {"enum": ["any", "tool"]}}}}}
    schemas[MessagesRequest.__name__]["allOf"] = [
        {
            "if": {"required": ["tool_choice"], **forcing},
            "then": {"required": ["tools"], "properties": {"tools": {"type": "array", "minItems": 1}}},
        }
    ]


def _named_choice_in_words(choice: dict[str, Any]) -> None:
    union = choice["anyOf"][0]
    union["oneOf"] = [v for v in union["oneOf"] if not v["$ref"].endswith(f"/{_PREFIX}ToolChoiceTool")]
    union["discriminator"]["mapping"].pop("tool")
    choice["description"] = (
        f"auto, any or none; also {{type: tool, name}} (schema {_PREFIX}ToolChoiceTool) naming one of "
        "this request's tools, not listed here because JSON Schema cannot say the name must be one of them "
        "(another name is refused with 400)"
    )


# One schema per event (OpenAPI 3.2's reading of SSE): the event's name and its JSON data.
_EVENT: dict[str, Any] = {
    "type": "object",
    "required": ["data"],
    "properties": {
        "event": {
            "enum": [
                "message_start",
                "ping",
                "content_block_start",
                "content_block_delta",
                "content_block_stop",
                "message_delta",
                "message_stop",
                "error",
            ]
        },
        "data": {"type": "string"},
        "id": {"type": "string"},
    },
}
_COUNT: dict[str, Any] = {
    "type": "object",
    "required": ["input_tokens"],
    "properties": {"input_tokens": {"type": "integer"}},
}
_ERROR: dict[str, Any] = {
    "type": "object",
    "required": ["type", "error"],
    "properties": {
        "type": {"const": "error"},
        "error": {
            "type": "object",
            "required": ["type", "message"],
            "properties": {"type": {"type": "string"}, "message": {"type": "string"}},
        },
    },
}
_BLOCK: dict[str, Any] = {
    "type": "object",
    "required": ["type"],
    "properties": {
        "type": {"enum": ["text", "tool_use"]},
        "text": {"type": "string"},
        "id": {"type": "string"},
        "name": {"type": "string"},
        "input": {"type": "object"},
    },
}
_MESSAGE: dict[str, Any] = {
    "type": "object",
    "required": ["id", "type", "role", "model", "content", "stop_reason", "usage"],
    "properties": {
        "id": {"type": "string"},
        "type": {"const": "message"},
        "role": {"const": "assistant"},
        "model": {"type": "string"},
        "content": {"type": "array", "items": _BLOCK},
        "stop_reason": {"enum": ["end_turn", "max_tokens", "stop_sequence", "tool_use", "refusal"]},
        "stop_sequence": {"type": ["string", "null"]},
        "usage": {
            "type": "object",
            "properties": {
                name: {"type": "integer"}
                for name in (
                    "input_tokens",
                    "output_tokens",
                    "cache_read_input_tokens",
                    "cache_creation_input_tokens",
                )
            },
        },
        "orchestrator": {"type": "object"},
    },
}
_STATUSES = {
    "400": "Invalid body or unsupported feature (invalid_request_error)",
    "401": "No API key, or an unknown, expired or revoked one (authentication_error)",
    "403": "The key may not use this model, or a Host or browser Origin this gateway does not accept "
    "(permission_error)",
    "404": "Unknown model (not_found_error)",
    "408": "The request body did not arrive in time",
    "413": "The body is larger than the gateway's limit (request_too_large)",
    "415": "A POST body that is not application/json",
    "429": "The key's rate limit or budget, or the upstream's rate limit (rate_limit_error)",
    "500": "The gateway failed (api_error)",
    "502": "The upstream failed or answered badly (api_error)",
    "503": "No model could serve the request now (overloaded_error)",
    "504": "The request's deadline passed (api_error)",
}


def _operation(summary: str, body: str, answer: dict[str, Any], *, stream: bool = False) -> dict[str, Any]:
    error = {"application/json": {"schema": {"$ref": "#/components/schemas/MessagesError"}}}
    content: dict[str, Any] = {"application/json": {"schema": answer}}
    if stream:
        content["text/event-stream"] = {"schema": _EVENT}
    return {
        "summary": summary,
        "parameters": [
            {"name": name, "in": "header", "required": False, "schema": {"type": "string"}}
            for name in VERSION_HEADERS
        ],
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{body}"}}},
        },
        "responses": {
            "200": {"description": "OK", "content": content},
            **{
                status: {"description": f"{text}; error.type {error_type(int(status))}", "content": error}
                for status, text in _STATUSES.items()
            },
        },
    }
