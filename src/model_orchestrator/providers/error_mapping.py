"""Classifying an upstream HTTP failure into the core error tree, status first; redacting secrets.

Owns the status -> error class table shared by every HTTP adapter. It does not read vendor error
bodies: each adapter decides from its own body whether a failure was a context-length or a content
filter problem and passes that in as a flag.
"""

from __future__ import annotations

from collections.abc import Iterable

from model_orchestrator.core.errors import (
    AuthenticationError,
    BadRequestError,
    ContentFilteredError,
    ContextWindowExceededError,
    ProviderError,
    RateLimitedError,
    RequestTimeoutError,
    ServerError,
)

REDACTED = "[REDACTED]"
_PAYLOAD_TOO_LARGE = 413


def error_for_status(
    status: int,
    message: str,
    *,
    provider: str,
    deployment: str,
    retry_after: float | None,
    context_exceeded: bool = False,
    content_filtered: bool = False,
) -> ProviderError:
    """The error for an upstream answer with HTTP ``status``; the caller raises it ``from`` the cause.

    429, 408 and 5xx decide on their own; otherwise the body-derived flags win over the generic
    4xx classes. ``retry_after`` is kept on every class so a 503 with ``retry-after`` is honoured too.
    """
    error_class = _class_for(status, context_exceeded=context_exceeded, content_filtered=content_filtered)
    return error_class(
        message,
        status_code=status,
        retry_after=retry_after,
        provider=provider,
        deployment=deployment,
    )


def redact(text: str, secrets: Iterable[str | None]) -> str:
    """``text`` with every non-empty secret replaced by ``[REDACTED]``."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, REDACTED)
    return text


def _class_for(status: int, *, context_exceeded: bool, content_filtered: bool) -> type[ProviderError]:
    if status == RateLimitedError.default_status:
        return RateLimitedError
    if status == RequestTimeoutError.default_status:
        return RequestTimeoutError
    if status >= 500:  # includes Anthropic's 529 "overloaded"
        return ServerError
    if context_exceeded or status == _PAYLOAD_TOO_LARGE:
        return ContextWindowExceededError
    if content_filtered:
        return ContentFilteredError
    if status in (401, 403):
        return AuthenticationError
    if 400 <= status < 500:
        return BadRequestError
    # A 1xx/2xx/3xx reaching here is an answer we cannot use: the upstream misbehaved.
    return ServerError
