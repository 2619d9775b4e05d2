"""Classifying an upstream HTTP failure into the core error tree, status first; redacting secrets.

Owns the status -> error class table shared by every HTTP adapter. It does not read vendor error
bodies: each adapter decides from its own body whether a failure was a context-length or a content
filter problem and passes that in as a flag.

Upstream text shown to anyone (502 bodies, CLI errors, MCP output) goes through ``upstream_text``:
every secret of the deployment (its key, its header values, credentials in its URL) is redacted in the
whole text first, and only then is the text cut to ``MAX_UPSTREAM_TEXT``; the other order lets a key
that straddles the cut out as a prefix.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from urllib.parse import unquote, urlsplit

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
MAX_UPSTREAM_TEXT = 600
# Header values shorter than this are not treated as secrets (``1``, ``true``, ``beta``): redacting them
# would garble messages, and a credential that short would not protect anything anyway.
_MIN_HEADER_SECRET = 6
_MIN_URL_PASSWORD = 4
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
    """``text`` with every non-empty secret replaced by ``[REDACTED]`` (longest first, so a secret that
    contains another is replaced whole)."""
    for secret in sorted(filter(None, secrets), key=len, reverse=True):
        text = text.replace(secret, REDACTED)
    return text


def upstream_text(text: str, secrets: Iterable[str | None]) -> str:
    """``text`` safe to show: secrets redacted in all of it, then cut to ``MAX_UPSTREAM_TEXT``."""
    text = redact(text, secrets)
    return text if len(text) <= MAX_UPSTREAM_TEXT else text[: MAX_UPSTREAM_TEXT - 3] + "..."


def deployment_secrets(
    api_key: str | None, headers: Mapping[str, str] | None = None, api_base: str | None = None
) -> tuple[str, ...]:
    """What must never be shown of a deployment: its key, its extra header values (secret ones come from
    ``headers_env``) and the credentials in its URL (``user:password``, and the password), as written
    and percent-decoded."""
    found = [api_key or ""]
    found += [value for value in (headers or {}).values() if len(value) >= _MIN_HEADER_SECRET]
    if api_base:
        userinfo = urlsplit(api_base).netloc.rpartition("@")[0]
        password = userinfo.partition(":")[2]
        for part in (userinfo, password if len(password) >= _MIN_URL_PASSWORD else ""):
            found += [part, unquote(part)]
    return tuple(sorted({s for s in found if s}, key=len, reverse=True))


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
