"""The gateway's OpenAPI 3.1 document (``/openapi.json``), built from the same pydantic models that parse
the requests, so the document cannot drift from what is enforced. Schemathesis runs against it in CI.

Owns the paths, their documented statuses and the response schemas; nothing here serves HTTP.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from model_orchestrator.gateway.convert import ChatRequestBody
from model_orchestrator.gateway.keys_admin import NewKey
from model_orchestrator.gateway.settings import GatewaySettings
from model_orchestrator.wire import ChatCompletion, ErrorBody

_REF = "#/components/schemas/{model}"
_ERROR_STATUSES = {
    "400": "Invalid body, unsupported feature or a limit exceeded",
    "401": "No API key, or an unknown, expired or revoked one",
    "403": "The key may not use this model, the route needs the master key, or a Host or browser Origin "
    "this gateway does not accept",
    "404": "Unknown model (or route)",
    "408": "The request body did not arrive in time",
    "413": "The body is larger than the gateway's limit",
    "415": "A POST body that is not application/json",
    "429": "The key's rate limit (retry-after) or budget (insufficient_quota), or the upstream's rate limit",
    "500": "The gateway failed",
    "502": "The upstream failed or answered badly",
    "503": "No model could serve the request now (retry-after when known)",
    "504": "The request's deadline passed",
}
_OBJECT: dict[str, Any] = {"type": "object"}
_MODEL_CARD: dict[str, Any] = {
    "type": "object",
    "required": ["id", "object", "created", "owned_by"],
    "properties": {
        "id": {"type": "string"},
        "object": {"const": "model"},
        "created": {"type": "integer"},
        "owned_by": {"type": "string"},
        "orchestrator": _OBJECT,
    },
}
_KEY: dict[str, Any] = {
    "type": "object",
    "required": ["id", "models", "budget_period", "created_at", "state"],
    "properties": {
        "id": {"type": "string"},
        "name": {"type": ["string", "null"]},
        "models": {"type": "array", "items": {"type": "string"}},
        "budget_usd": {"type": ["number", "null"]},
        "budget_period": {"enum": ["day", "month"]},
        "rpm": {"type": ["integer", "null"]},
        "expires_at": {"type": ["number", "null"]},
        "revoked_at": {"type": ["number", "null"]},
        "created_at": {"type": "number"},
        "state": {"enum": ["active", "revoked", "expired"]},
        "key": {"type": "string", "description": "the secret, in the creation response only"},
    },
}


def openapi_document(
    settings: GatewaySettings, models: list[str], *, admin: bool = True
) -> dict[str, object]:
    """The whole document; ``models`` (names this gateway serves) become examples of ``model``; the key
    admin routes are documented only when ``admin`` (they are served only with auth and a ledger)."""
    schemas: dict[str, Any] = {}
    request_ref = _component(schemas, ChatRequestBody, "validation")
    _limits(schemas[ChatRequestBody.__name__], settings)
    _supported_only(schemas)
    if models:
        schemas[ChatRequestBody.__name__]["properties"]["model"]["examples"] = models[:20]
    completion_ref = _component(schemas, ChatCompletion, "serialization")
    _tool_rules(schemas)  # after the response's components: they share the tool-call types
    new_key_ref = _component(schemas, NewKey, "validation")
    _component(schemas, ErrorBody, "serialization")
    secured: list[dict[str, list[str]]] = [{"bearer": []}] if settings.auth else []
    document: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {
            "title": "model-orchestrator gateway",
            "version": "1",
            "description": (
                "Chat Completions over every configured model and strategy. `model` names a model, a "
                "strategy from config, or an inline strategy such as `fallback:a,b`. Responses carry "
                "`x-orchestrator-*` headers and an `orchestrator` field explaining the answer."
            ),
        },
        "security": secured,
        "paths": {
            "/v1/chat/completions": {"post": _chat(request_ref, completion_ref)},
            "/v1/models": {"get": _op("List usable models and strategies", _list_of(_MODEL_CARD))},
            "/v1/models/{model}": {"get": _op("One model or strategy", _MODEL_CARD, params=[_path("model")])},
            "/health": {"get": {**_op("Liveness", _status_schema()), "security": []}},
            "/health/providers": {
                "get": _op(
                    "Per-deployment health, breaker state and cooldown (probe=true: probe each now)",
                    _providers_schema(),
                    params=[{"name": "probe", "in": "query", "schema": {"enum": ["true", "false"]}}],
                )
            },
            "/metrics": {"get": _op("Prometheus metrics (master key)", {"type": "string"}, "text/plain")},
            "/openapi.json": {"get": _op("This document", _OBJECT)},
            "/admin/keys": {
                "get": _op("Virtual keys (master key)", _list_of(_KEY)),
                "post": _op("Create a virtual key (master key)", _KEY, body=new_key_ref, ok="201"),
            },
            "/admin/keys/{key_id}": {
                "delete": _op("Revoke a virtual key (master key)", _KEY, params=[_path("key_id")])
            },
        },
        "components": {
            "schemas": schemas,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }
    if not admin:
        document["paths"] = {p: item for p, item in document["paths"].items() if not p.startswith("/admin/")}
    return document


def _component(schemas: dict[str, Any], model: type[BaseModel], mode: str) -> dict[str, str]:
    schema = model.model_json_schema(ref_template=_REF, mode=mode)  # type: ignore[arg-type]
    schemas.update(schema.pop("$defs", {}))
    schemas[model.__name__] = schema
    return {"$ref": _REF.format(model=model.__name__)}


def _limits(request: dict[str, Any], settings: GatewaySettings) -> None:
    """Document this server's ceilings in the request schema (they are enforced with a 400)."""
    properties = request["properties"]
    for name in ("max_tokens", "max_completion_tokens"):
        for option in properties[name].get("anyOf", []):
            if option.get("type") == "integer":
                option["maximum"] = settings.limits.max_tokens
    properties["messages"]["maxItems"] = settings.limits.max_messages


def _supported_only(schemas: dict[str, Any]) -> None:
    """The shared wire type admits any content part; this gateway accepts text parts and (in user
    messages) image_url parts, and refuses others with a 400: document only what it accepts."""
    text = {"type": {"const": "text"}, "text": {"type": "string"}}
    image = {"type": {"const": "image_url"}, "image_url": {"$ref": _REF.format(model="ImageURL")}}
    schemas["ContentPart"] = {
        "title": "ContentPart",
        "description": "A text part, or an image_url part (user messages only; http(s) or base64 data: URL)",
        "type": "object",
        "properties": {"type": {"enum": ["text", "image_url"]}},
        "oneOf": [
            {"required": ["type", "text"], "properties": text},
            {"required": ["type", "image_url"], "properties": image},
        ],
    }


_NAME_PATTERN = "^[A-Za-z0-9_-]{1,64}$"
_NULL: dict[str, Any] = {"type": "null"}


def _tool_rules(schemas: dict[str, Any]) -> None:
    """What ``chat_tools`` enforces beyond the shared wire types, stated so that every body the document
    accepts is accepted: names of tools and schemas, image URLs, which role carries tool calls, tool call
    ids and images, a ``json_schema`` exactly with its type, and a ``tool_choice`` that forces a call only
    beside tools. A named choice must also name one of the tools, which JSON Schema cannot say, so that
    form is described in words rather than listed (its schema stays in the components)."""
    schemas["FunctionDefinition"]["properties"]["name"]["pattern"] = _NAME_PATTERN
    schemas["JsonSchemaParam"]["properties"]["name"]["pattern"] = _NAME_PATTERN
    schemas["ImageURL"]["properties"]["url"]["pattern"] = "^(https?://|data:[^,]*;base64,)"
    call = schemas["MessageToolCall"]
    call["required"] = ["id", "function"]
    call["properties"]["id"] = {"type": "string", "minLength": 1}
    schemas["FunctionCall"]["required"] = ["name"]
    schemas["FunctionCall"]["properties"]["name"] = {"type": "string", "minLength": 1}
    text_only = {"anyOf": [{"type": "string"}, {"type": "array", "items": _text_part()}, _NULL]}
    no_calls = {"anyOf": [_NULL, {"type": "array", "maxItems": 0}]}
    schemas["MessageBody"]["allOf"] = [
        _when_role(
            "tool",
            {"required": ["tool_call_id"], "properties": {"tool_call_id": _id()}},
            {"properties": {"tool_call_id": _NULL}},
        ),
        _when_role("assistant", {}, {"properties": {"tool_calls": no_calls}}),
        _when_role("user", {}, {"properties": {"content": text_only}}),
    ]
    schemas["ResponseFormatParam"]["allOf"] = [
        {
            "if": {"required": ["type"], "properties": {"type": {"const": "json_schema"}}},
            "then": {"required": ["json_schema"], "properties": {"json_schema": {"type": "object"}}},
            "else": {"properties": {"json_schema": _NULL}},
        }
    ]
    choice = schemas["ChatRequestBody"]["properties"]["tool_choice"]
    choice["anyOf"] = [v for v in choice["anyOf"] if not v.get("$ref", "").endswith("/NamedToolChoice")]
    choice["description"] = (
        "auto, none or required; also {type: function, function: {name}} (schema NamedToolChoice) naming "
        "one of this request's tools, not listed here because JSON Schema cannot say the name must be one "
        "of them (another name is refused with 400)"
    )
    forcing = {"anyOf": [{"const": "required"}, {"type": "object"}]}
    schemas["ChatRequestBody"]["allOf"] = [
        {
            "if": {"required": ["tool_choice"], "properties": {"tool_choice": forcing}},
            "then": {"required": ["tools"], "properties": {"tools": {"type": "array", "minItems": 1}}},
        }
    ]


def _when_role(role: str, then: dict[str, Any], otherwise: dict[str, Any] | None = None) -> dict[str, Any]:
    rule: dict[str, Any] = {"if": {"properties": {"role": {"const": role}}}, "then": then}
    if otherwise is not None:
        rule["else"] = otherwise
    return rule


def _id() -> dict[str, Any]:
    return {"type": "string", "minLength": 1}


def _text_part() -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["type", "text"],
        "properties": {"type": {"const": "text"}, "text": {"type": "string"}},
    }


# What the middlewares may answer on any route, whatever the route itself documents.
_MIDDLEWARE_STATUSES = ("401", "403", "408", "413", "415", "429", "500")


def document_middleware_statuses(document: dict[str, Any]) -> None:
    """Add the statuses every route can get from the middlewares (auth, browser guard, throttling, body
    limits) to each operation of ``document`` that does not list them already."""
    error = {"application/json": {"schema": {"$ref": _REF.format(model="ErrorBody")}}}
    for item in document["paths"].values():
        for operation in item.values():
            responses = operation["responses"]
            for status in _MIDDLEWARE_STATUSES:
                responses.setdefault(status, {"description": _ERROR_STATUSES[status], "content": error})


def _errors() -> dict[str, Any]:
    error = {"application/json": {"schema": {"$ref": _REF.format(model="ErrorBody")}}}
    return {status: {"description": text, "content": error} for status, text in _ERROR_STATUSES.items()}


def _op(
    summary: str,
    schema: dict[str, Any],
    media: str = "application/json",
    *,
    params: list[dict[str, Any]] | None = None,
    body: dict[str, Any] | None = None,
    ok: str = "200",
) -> dict[str, Any]:
    operation: dict[str, Any] = {
        "summary": summary,
        "responses": {ok: {"description": "OK", "content": {media: {"schema": schema}}}, **_errors()},
    }
    if params:
        operation["parameters"] = params
    if body is not None:
        operation["requestBody"] = {"required": True, "content": {"application/json": {"schema": body}}}
    return operation


def _chat(request_ref: dict[str, str], completion_ref: dict[str, str]) -> dict[str, Any]:
    operation = _op("Chat completion (stream: true answers with server-sent events)", completion_ref)
    # One schema per event (OpenAPI 3.2's reading of SSE): each ``data:`` is a chunk's JSON, an error's
    # JSON, or ``[DONE]``.
    event = {
        "type": "object",
        "required": ["data"],
        "properties": {"data": {"type": "string"}, "event": {"type": "string"}, "id": {"type": "string"}},
    }
    operation["responses"]["200"]["content"]["text/event-stream"] = {"schema": event}
    operation["responses"]["200"]["headers"] = {
        f"x-orchestrator-{name}": {"schema": {"type": "string"}}
        for name in ("request-id", "model-used", "strategy", "cost", "requested")
    }
    operation["requestBody"] = {"required": True, "content": {"application/json": {"schema": request_ref}}}
    return operation


def _path(name: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}


def _list_of(item: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "required": ["data"], "properties": {"data": {"type": "array", "items": item}}}


def _status_schema() -> dict[str, Any]:
    return {"type": "object", "required": ["status"], "properties": {"status": {"const": "ok"}}}


def _providers_schema() -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["healthy", "deployments"],
        "properties": {"healthy": {"type": "boolean"}, "deployments": {"type": "array", "items": _OBJECT}},
    }
