"""``POST /v1/responses``: the Responses API, stateless, over every configured model and strategy.

Owns the route and its OpenAPI path. Nothing is stored: ``previous_response_id``, ``store: true`` and
``background: true`` are refused with a 400 naming the parameter (send the whole conversation as
``input``), and so are built-in tools (only function tools). Keys' model lists, rpm and budgets, the
``x-orchestrator-*`` headers and metrics apply as on ``/v1/chat/completions`` (``served``); errors have the
Chat Completions shape, as the format's SDKs expect.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any

from aiohttp import web

from model_orchestrator.core.result import OrchestrationResult
from model_orchestrator.gateway.responses_convert import (
    finished_output,
    response_object,
    to_chat_request,
    usage_of,
)
from model_orchestrator.gateway.responses_stream import serve_response_stream
from model_orchestrator.gateway.served import FormatRoutes, add_components
from model_orchestrator.gateway.streaming import StreamPlan
from model_orchestrator.orchestrator import StreamHandle
from model_orchestrator.wire.responses import ResponsesRequest

PATH = "/v1/responses"
_REF = "#/components/schemas/{model}"
_PREFIX = "Responses"  # of the request's component schemas in the OpenAPI document


def add_responses_route(app: web.Application, routes: FormatRoutes) -> None:
    """Register ``/v1/responses`` on ``app``."""

    async def responses(request: web.Request) -> web.StreamResponse:
        body = await routes.read(request, ResponsesRequest)
        request_id, key_id = routes.allow(request, body.model)
        chat = to_chat_request(
            body,
            request_id=request_id,
            api_key_id=key_id,
            max_tokens_ceiling=routes.settings.limits.max_tokens,
        )
        response_id = f"resp_{request_id}"

        def render(result: OrchestrationResult) -> dict[str, Any]:
            return response_object(
                body,
                response_id=response_id,
                output=finished_output(response_id, result.response, result.tool_calls),
                usage=usage_of(result.metadata, result.input_tokens, result.output_tokens),
                finish=str(result.metadata.get("finish_reason") or "stop"),
            )

        def stream(handle: StreamHandle, plan: StreamPlan) -> Awaitable[web.StreamResponse]:
            return serve_response_stream(request, handle, body, plan)

        return await routes.answer(
            request, body.model, chat, stream=stream if body.stream else None, render=render
        )

    app.router.add_post(PATH, responses)


def document_responses(document: dict[str, Any], max_tokens: int) -> None:
    """Add ``/v1/responses`` and its body's schema to the OpenAPI ``document``."""
    schemas = document["components"]["schemas"]
    schema = add_components(schemas, ResponsesRequest, _PREFIX)
    schema["properties"]["max_output_tokens"]["anyOf"][0]["maximum"] = max_tokens
    _cross_field_rules(schemas)
    error = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}
    content = {"application/json": {"schema": _RESPONSE}, "text/event-stream": {"schema": _EVENT}}
    document["paths"][PATH] = {
        "post": {
            "summary": "Create a response (Responses API, stateless; stream: true answers text/event-stream)",
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {"schema": {"$ref": "#/components/schemas/ResponsesRequest"}}
                },
            },
            "responses": {
                "200": {"description": "OK", "content": content},
                **{s: {"description": text, "content": error} for s, text in _STATUSES.items()},
            },
        }
    }


def _cross_field_rules(schemas: dict[str, Any]) -> None:
    """What ``responses_convert`` enforces beyond the field types, stated so that every body the document
    accepts is accepted: images in user messages only, ``output_text`` in assistant ones only, and a
    ``tool_choice`` that forces a call only beside tools. A named choice must also name one of the tools,
    which JSON Schema cannot say, so that form is described in words rather than listed."""

    def parts_except(kind: str) -> dict[str, Any]:
        item = {"properties": {"type": {"not": {"const": kind}}}}
        return {"properties": {"content": {"anyOf": [{"type": "string"}, {"type": "array", "items": item}]}}}

    schemas[f"{_PREFIX}MessageItem"]["allOf"] = [
        {"if": {"properties": {"role": {"not": {"const": "user"}}}}, "then": parts_except("input_image")},
        {
            "if": {"properties": {"role": {"not": {"const": "assistant"}}}},
            "then": parts_except("output_text"),
        },
    ]
    choice = schemas[ResponsesRequest.__name__]["properties"]["tool_choice"]
    choice["anyOf"] = [
        v for v in choice["anyOf"] if not v.get("$ref", "").endswith(f"/{_PREFIX}NamedFunction")
    ]
    choice["description"] = (
        f"auto, none or required; also {{type: function, name}} (schema {_PREFIX}NamedFunction) naming one "
        "of this request's tools, not listed here because JSON Schema cannot say the name must be one of "
        "them (another name is refused with 400)"
    )
    forcing = {"anyOf": [{"const": "required"}, {"type": "object"}]}
    schemas[ResponsesRequest.__name__]["allOf"] = [
        {
            "if": {"required": ["tool_choice"], "properties": {"tool_choice": forcing}},
            "then": {"required": ["tools"], "properties": {"tools": {"type": "array", "minItems": 1}}},
        }
    ]


# One schema per event (OpenAPI 3.2's reading of SSE): the event's name and its JSON data.
_EVENT: dict[str, Any] = {
    "type": "object",
    "required": ["data"],
    "properties": {"event": {"type": "string"}, "data": {"type": "string"}, "id": {"type": "string"}},
}
_RESPONSE: dict[str, Any] = {
    "type": "object",
    "required": ["id", "object", "created_at", "status", "model", "output"],
    "properties": {
        "id": {"type": "string"},
        "object": {"const": "response"},
        "created_at": {"type": "integer"},
        "status": {"enum": ["completed", "incomplete"]},
        "model": {"type": "string"},
        "output": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["type", "id"],
                "properties": {"type": {"enum": ["message", "function_call"]}, "id": {"type": "string"}},
            },
        },
        "usage": {"type": ["object", "null"]},
        "orchestrator": {"type": "object"},
    },
}
_STATUSES = {
    "400": "Invalid body, unsupported feature (previous_response_id, store, background, built-in tools) "
    "or a limit exceeded",
    "404": "Unknown model",
    "429": "The key's rate limit or budget, or the upstream's rate limit",
    "500": "The gateway failed",
    "502": "The upstream failed or answered badly",
    "503": "No model could serve the request now (retry-after when known)",
    "504": "The request's deadline passed",
}
