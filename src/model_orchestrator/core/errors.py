"""The one error hierarchy. Providers translate their failures into it once, at their boundary.

Every error carries ``status_code``, ``retryable``, ``retry_after`` (seconds), ``provider`` and
``deployment``; retry and fallback logic reads those fields, never message text.
"""

from __future__ import annotations

from collections.abc import Sequence


class OrchestratorError(Exception):
    """Base of every error the orchestrator raises on purpose."""

    default_status: int | None = None
    default_retryable: bool = False

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        retryable: bool | None = None,
        retry_after: float | None = None,
        provider: str | None = None,
        deployment: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status_code = status_code if status_code is not None else self.default_status
        self.retryable = self.default_retryable if retryable is None else retryable
        self.retry_after = retry_after
        self.provider = provider
        self.deployment = deployment

    def __str__(self) -> str:
        where = f"[{self.deployment or self.provider}] " if (self.deployment or self.provider) else ""
        return f"{where}{self.message}"

    def to_dict(self) -> dict[str, object]:
        """A JSON-ready description (type, message, status, retryable, retry_after, provider, deployment)."""
        return {
            "type": type(self).__name__,
            "message": self.message,
            "status_code": self.status_code,
            "retryable": self.retryable,
            "retry_after": self.retry_after,
            "provider": self.provider,
            "deployment": self.deployment,
        }


class ConfigError(OrchestratorError):
    """The configuration is invalid or names something that does not exist."""


class ModelNotFoundError(ConfigError):
    """A model or strategy name is not in the catalogue or config."""

    default_status = 404


class MissingCredentialsError(ConfigError):
    """A model needs an API key variable that is not set."""

    default_status = 401


class StreamNotFinishedError(OrchestratorError):
    """A stream's result was asked for before the stream ended (or after it was left early)."""


class InvalidRequestError(OrchestratorError):
    """The caller's request is malformed (a tool choice naming no tool, arguments that are not JSON)."""

    default_status = 400


class CapabilityNotSupportedError(InvalidRequestError):
    """The request needs a capability (``tools``, ``vision``, ``json_schema``) that the model or strategy
    cannot honour; nothing was sent. Choose a model that has it, or drop that part of the request."""

    def __init__(self, message: str, *, capability: str, **kwargs: object) -> None:
        super().__init__(message, **kwargs)  # type: ignore[arg-type]
        self.capability = capability


class ProviderError(OrchestratorError):
    """A call to an upstream model failed."""


class RateLimitedError(ProviderError):
    """The provider refused the call for rate or quota reasons (HTTP 429); wait ``retry_after``."""

    default_status = 429
    default_retryable = True


class RequestTimeoutError(ProviderError):
    """The call did not finish within its timeout or deadline."""

    default_status = 408
    default_retryable = True


class DeadlineExceededError(RequestTimeoutError):
    """The caller's own deadline ran out. Not the deployment's fault: breakers and cooldowns ignore it."""

    default_retryable = False


class UpstreamConnectionError(ProviderError):
    """The upstream could not be reached or dropped the connection."""

    default_status = 503
    default_retryable = True


class ServerError(ProviderError):
    """The provider failed on its side (HTTP 5xx, overload) or returned something unreadable."""

    default_status = 500
    default_retryable = True


class BadRequestError(ProviderError):
    """The provider rejected the request as malformed or unsupported (HTTP 400/404/422)."""

    default_status = 400


class ContextWindowExceededError(BadRequestError):
    """The prompt plus requested output does not fit the model's context; fall back to a larger model."""


class AuthenticationError(ProviderError):
    """The key is missing, invalid or not allowed to use this model (HTTP 401/403)."""

    default_status = 401


class ContentFilteredError(ProviderError):
    """The provider's safety filter blocked the prompt or the answer."""

    default_status = 400


class DeploymentUnavailableError(ProviderError):
    """The deployment was skipped without a call: its circuit is open, it is cooling down, or its own
    rate limit has no room. ``retry_after`` says when it may be tried again (None: unknown)."""

    default_status = 503
    default_retryable = True

    def __init__(self, message: str, *, reason: str, **kwargs: object) -> None:
        super().__init__(message, **kwargs)  # type: ignore[arg-type]
        self.reason = reason


class CircuitOpenError(DeploymentUnavailableError):
    """The deployment's circuit breaker is open; no call was made."""

    def __init__(self, message: str, **kwargs: object) -> None:
        super().__init__(message, reason="circuit_open", **kwargs)


class CoolingDownError(DeploymentUnavailableError):
    """The deployment is cooling down after a 429 or overload until ``retry_after`` seconds from now."""

    def __init__(self, message: str, **kwargs: object) -> None:
        super().__init__(message, reason="cooling_down", **kwargs)


class RateLimitExhaustedError(DeploymentUnavailableError):
    """Our own per-deployment RPM/TPM limit has no room within the allowed wait; no call was made."""

    def __init__(self, message: str, **kwargs: object) -> None:
        super().__init__(message, reason="rate_limited_locally", **kwargs)


class StateUnavailableError(DeploymentUnavailableError):
    """The shared state store (``state.url``) could not be reached or kept changing under an update, and
    ``state.on_unavailable`` is ``fail``; no call was made."""

    def __init__(self, message: str, **kwargs: object) -> None:
        super().__init__(message, reason="state_unavailable", **kwargs)


class BudgetExceededError(OrchestratorError):
    """The call would exceed a configured budget; nothing was sent upstream."""

    default_status = 402


class QuotaExceededError(BudgetExceededError):
    """A provider's configured daily call quota is used up (``quotas.hard_stop``); nothing was sent."""

    default_status = 429


class AllModelsFailedError(OrchestratorError):
    """Every model tried failed; ``errors`` holds each attempt's error in order."""

    default_status = 503

    def __init__(self, message: str, errors: Sequence[OrchestratorError], **kwargs: object) -> None:
        retryable = any(e.retryable for e in errors)
        retry_afters = [e.retry_after for e in errors if e.retry_after is not None]
        super().__init__(
            message,
            retryable=retryable,
            retry_after=min(retry_afters) if retry_afters else None,
            **kwargs,  # type: ignore[arg-type]
        )
        self.errors = tuple(errors)

    def __str__(self) -> str:
        lines = [self.message] + [f"  - {type(e).__name__}: {e}" for e in self.errors]
        return "\n".join(lines)

    def to_dict(self) -> dict[str, object]:
        data = super().to_dict()
        data["errors"] = [e.to_dict() for e in self.errors]
        return data
