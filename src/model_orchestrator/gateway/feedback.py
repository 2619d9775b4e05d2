"""``POST /v1/feedback``: label how good an answer was, for retraining the router on your own traffic.

Owns the route, its body and its OpenAPI path; the label itself is the façade's (``Orchestrator.feedback``).
Authenticated like every other route; a virtual key may label only requests made with it (any other id
is reported unknown, so ids cannot be probed); the master key may label any. ``request_id`` is the
``x-orchestrator-request-id`` header of the answer (or its ``chatcmpl-`` completion id). Statuses: 200
recorded; 400 a malformed body; 404 unknown request; 422 a score outside 0-1 or a request that failed;
503 the ledger is off.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from model_orchestrator.core.errors import ConfigError
from model_orchestrator.gateway.connections import read_body
from model_orchestrator.gateway.errors import GatewayError
from model_orchestrator.gateway.middleware import PRINCIPAL_KEY

if TYPE_CHECKING:
    from model_orchestrator.orchestrator import Orchestrator

PATH = "/v1/feedback"
_COMPLETION_PREFIX = "chatcmpl-"


class FeedbackBody(BaseModel):
    """``POST /v1/feedback`` body."""

    model_config = ConfigDict(extra="forbid")

    request_id: str = Field(
        min_length=1,
        max_length=128,
        description="The answer's x-orchestrator-request-id header (or its chatcmpl- completion id).",
    )
    score: float = Field(
        description="How good the answer was: 0 (wrong or useless) to 1 (right); thumbs up/down are 1/0, "
        "a 1-5 rating r is (r - 1) / 4. Outside 0-1: 422.",
        json_schema_extra={"minimum": 0, "maximum": 1},
    )


_RECEIPT: dict[str, Any] = {
    "type": "object",
    "required": ["object", "id", "request_id", "score", "created_at"],
    "properties": {
        "object": {"const": "feedback"},
        "id": {"type": "string"},
        "request_id": {"type": "string"},
        "score": {"type": "number"},
        "model": {"type": ["string", "null"], "description": "the model whose answer was labelled"},
        "created_at": {"type": "number"},
    },
}


def add_feedback_route(app: web.Application, orch: Orchestrator, *, body_timeout: float) -> None:
    """Register ``POST /v1/feedback`` on ``app`` (``body_timeout``: seconds a body may take to arrive)."""

    async def feedback(request: web.Request) -> web.Response:
        raw = await read_body(request, body_timeout)
        try:
            body = FeedbackBody.model_validate_json(raw, strict=True)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(map(str, first["loc"])) or None
            raise GatewayError(400, f"Invalid feedback body: {first['msg']}", param=where) from None
        principal = request[PRINCIPAL_KEY]
        request_id = body.request_id.removeprefix(_COMPLETION_PREFIX)
        try:
            receipt = await orch.feedback(
                request_id, body.score, api_key_id=None if principal.master else principal.key_id
            )
        except ConfigError as exc:
            raise _refusal(exc) from None
        return web.json_response({"object": "feedback", **receipt.to_dict()}, dumps=json.dumps)

    app.router.add_post(PATH, feedback)


def _refusal(exc: ConfigError) -> GatewayError:
    from model_orchestrator.ledger.feedback import InvalidFeedbackError, UnknownRequestError

    if isinstance(exc, UnknownRequestError):
        return GatewayError(404, exc.message, code="request_not_found", param="request_id")
    if isinstance(exc, InvalidFeedbackError):
        return GatewayError(422, exc.message, code="invalid_feedback", param=exc.param)
    return GatewayError(503, exc.message, "server_error", "feedback_unavailable")


def document_feedback(document: dict[str, Any]) -> None:
    """Add ``POST /v1/feedback`` and its body's schema to the gateway's OpenAPI ``document``."""
    schema = FeedbackBody.model_json_schema(mode="validation")
    document["components"]["schemas"][FeedbackBody.__name__] = schema
    document["paths"][PATH] = _path_item({"$ref": f"#/components/schemas/{FeedbackBody.__name__}"})


def _path_item(body_ref: dict[str, str]) -> dict[str, Any]:
    error = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}
    statuses = {
        "400": "Malformed body",
        "401": "No API key, or an unknown, expired or revoked one",
        "404": "No such request (or not one made with this key)",
        "422": "A score outside 0-1, or a request that failed (nothing to label)",
        "503": "The ledger is disabled",
    }
    return {
        "post": {
            "summary": "Label how good an answer was (an outcome label for train-router --from-ledger)",
            "requestBody": {"required": True, "content": {"application/json": {"schema": body_ref}}},
            "responses": {
                "200": {"description": "Recorded", "content": {"application/json": {"schema": _RECEIPT}}},
                **{status: {"description": text, "content": error} for status, text in statuses.items()},
            },
        }
    }
