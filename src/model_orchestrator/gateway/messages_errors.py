"""Errors as the Messages format reports them: ``{"type": "error", "error": {"type", "message"}}``.

Owns the error type each status gets on ``/v1/messages`` routes; the status and headers (``retry-after``,
``x-should-retry``) stay ``errors.from_exception``'s, so clients' SDKs act on them the same way on every
route. Reference: the errors page linked from ``wire.messages``.

| status | error.type |
| --- | --- |
| 400, 408, 415, 422 | invalid_request_error |
| 401 | authentication_error |
| 403 | permission_error |
| 404 | not_found_error |
| 413 | request_too_large |
| 429 (rate limit or budget) | rate_limit_error |
| 503 (no model could serve now) | overloaded_error |
| other 5xx | api_error |
"""

from __future__ import annotations

from model_orchestrator.gateway.errors import GatewayError, from_exception
from model_orchestrator.gateway.event_stream import sse_event
from model_orchestrator.orchestrator.access import without_hosts

PATH_PREFIX = "/v1/messages"
_TYPES = {
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    503: "overloaded_error",
}


def error_type(status: int) -> str:
    """The Messages format's ``error.type`` for an HTTP status."""
    if status in _TYPES:
        return _TYPES[status]
    return "api_error" if status >= 500 else "invalid_request_error"


def messages_error_body(error: GatewayError) -> dict[str, object]:
    """The JSON error body of ``error`` on a ``/v1/messages`` route."""
    return {"type": "error", "error": {"type": error_type(error.status), "message": error.message}}


def error_event(exc: BaseException, *, operator: bool) -> bytes:
    """The ``error`` event that ends a stream which failed after its first content."""
    error = from_exception(exc)
    if not operator:  # a key holder learns which step failed, never where it runs
        error.message = without_hosts(error.message)
    return sse_event("error", messages_error_body(error))
