"""Errors as the Chat Completions API reports them: ``{"error": {"message", "type", "param", "code"}}``.

Owns ``GatewayError`` (the gateway's own refusals: auth, limits, bad bodies) and ``from_exception``, the one
place our error hierarchy becomes an HTTP status, an error body and headers. Clients' SDKs act on the status
(they retry 408/409/429/5xx) and on ``retry-after``; ``x-should-retry: false`` stops an SDK retrying a 429
that waiting will not cure (an exhausted budget). Upstream failures are the gateway's upstream's fault, not
the caller's, so an upstream 401 becomes a 502: the caller's key is fine.

| our error | status | type / code |
| --- | --- | --- |
| ModelNotFoundError | 404 | invalid_request_error / model_not_found |
| other ConfigError (bad strategy spec) | 400 | invalid_request_error |
| MissingCredentialsError (model not usable here) | 503 | server_error / model_unavailable |
| BadRequestError, ContextWindowExceededError | 400 | invalid_request_error / (context_length_exceeded) |
| ContentFilteredError | 400 | invalid_request_error / content_filter |
| BudgetExceededError | 429 | insufficient_quota / insufficient_quota (+ x-should-retry: false) |
| RateLimitedError | 429 | requests / rate_limit_exceeded (+ retry-after) |
| DeadlineExceededError, RequestTimeoutError | 504 | timeout / request_timeout |
| AuthenticationError (upstream key) | 502 | upstream_error / upstream_auth_failed |
| UpstreamConnectionError, ServerError | 502 | upstream_error |
| DeploymentUnavailableError, AllModelsFailedError | 503 | server_error / all_models_failed (+ retry-after) |
| LedgerError, StateUnavailableError | 503 | server_error / service_unavailable (+ retry-after) |
| anything else | 500 | server_error |
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from model_orchestrator.core import errors as e

INVALID = "invalid_request_error"
UNAVAILABLE = "service_unavailable"


@dataclass(slots=True)
class GatewayError(Exception):
    """A refusal with its HTTP status and wire error fields."""

    status: int
    message: str
    type: str = INVALID
    code: str | None = None
    param: str | None = None
    headers: dict[str, str] = field(default_factory=dict)

    def __str__(self) -> str:
        return self.message

    def body(self) -> dict[str, object]:
        """The JSON error body."""
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}


def _retry_headers(retry_after: float | None) -> dict[str, str]:
    return {"retry-after": str(max(1, math.ceil(retry_after)))} if retry_after is not None else {}


def from_exception(exc: BaseException) -> GatewayError:
    """The wire error for ``exc`` (see the table in the module docstring)."""
    if isinstance(exc, GatewayError):
        return exc
    if isinstance(exc, e.ConfigError):
        return _config_error(exc)
    if isinstance(exc, e.ProviderError):
        return _provider_error(exc)
    if isinstance(exc, e.BudgetExceededError):
        return GatewayError(
            429, exc.message, "insufficient_quota", "insufficient_quota", headers={"x-should-retry": "false"}
        )
    if isinstance(exc, e.AllModelsFailedError):
        return GatewayError(
            503, str(exc), "server_error", "all_models_failed", headers=_retry_headers(exc.retry_after)
        )
    if isinstance(exc, e.OrchestratorError) and exc.status_code and 400 <= exc.status_code < 500:
        return GatewayError(exc.status_code, exc.message, INVALID, type(exc).__name__)
    if isinstance(exc, e.OrchestratorError) and exc.status_code == 503:
        return GatewayError(
            503,
            "a service the gateway depends on (the cost ledger or the shared state) is unavailable; retry "
            "shortly (the gateway's log has the cause)",
            "server_error",
            UNAVAILABLE,
            headers=_retry_headers(exc.retry_after or 1.0),
        )
    return GatewayError(500, "the gateway failed to serve the request", "server_error", "internal_error")


def _config_error(exc: e.ConfigError) -> GatewayError:
    if isinstance(exc, e.ModelNotFoundError):
        return GatewayError(404, exc.message, INVALID, "model_not_found", "model")
    if exc.status_code == 404:
        return GatewayError(404, exc.message, INVALID, "not_found")
    if isinstance(exc, e.MissingCredentialsError):
        return GatewayError(503, exc.message, "server_error", "model_unavailable", "model")
    return GatewayError(400, exc.message, INVALID, None, "model")


def _provider_error(exc: e.ProviderError) -> GatewayError:
    retry = _retry_headers(exc.retry_after)
    if isinstance(exc, e.ContextWindowExceededError):
        return GatewayError(400, exc.message, INVALID, "context_length_exceeded", "messages")
    if isinstance(exc, e.ContentFilteredError):
        return GatewayError(400, exc.message, INVALID, "content_filter")
    if isinstance(exc, e.BadRequestError):
        return GatewayError(400, str(exc), INVALID)
    if isinstance(exc, e.RateLimitedError):
        return GatewayError(429, str(exc), "requests", "rate_limit_exceeded", headers=retry)
    if isinstance(exc, e.RequestTimeoutError):
        return GatewayError(504, str(exc), "timeout", "request_timeout")
    if isinstance(exc, e.AuthenticationError):
        return GatewayError(502, str(exc), "upstream_error", "upstream_auth_failed")
    if isinstance(exc, e.DeploymentUnavailableError):
        return GatewayError(503, str(exc), "server_error", exc.reason, headers=retry)
    return GatewayError(502, str(exc), "upstream_error", type(exc).__name__, headers=retry)
