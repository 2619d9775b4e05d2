"""``AnthropicModel``: a ``ChatModel`` over Anthropic's Messages API, sent through a ``Transport``.

Owns the endpoint, the auth headers, timing, rate-limit headers and turning every failure into the core
error tree (once, here). Does not encode or decode bodies (``convert``) or own the transport (the caller
does, so ``aclose`` closes nothing shared). API reference: https://docs.anthropic.com/en/api/messages
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from urllib.parse import urlsplit

from model_orchestrator.core.errors import InvalidRequestError, ProviderError
from model_orchestrator.core.rate_limits import RateLimitSnapshot
from model_orchestrator.core.request import ChatRequest
from model_orchestrator.core.response import Completion, StreamDelta
from model_orchestrator.providers.anthropic.blocks import answer_tool_name
from model_orchestrator.providers.anthropic.convert import (
    StreamDecoder,
    VendorError,
    decode_error,
    decode_message,
    encode_request,
)
from model_orchestrator.providers.error_mapping import deployment_secrets, error_for_status, upstream_text
from model_orchestrator.providers.http import Timeouts, Transport
from model_orchestrator.providers.rate_limit_headers import parse_rate_limit_headers
from model_orchestrator.providers.sse import iter_sse

# https://docs.anthropic.com/en/api/versioning
API_VERSION = "2023-06-01"
DEFAULT_TIMEOUTS = Timeouts()
DEFAULT_API_BASE = "https://api.anthropic.com"


class AnthropicModel:
    """One Anthropic model at one endpoint with one key (a deployment)."""

    def __init__(
        self,
        *,
        name: str,
        model_id: str,
        api_key: str | None,
        transport: Transport,
        api_base: str = DEFAULT_API_BASE,
        deployment: str | None = None,
        timeouts: Timeouts = DEFAULT_TIMEOUTS,
        default_max_tokens: int = 4096,
        provider: str = "anthropic",
    ) -> None:
        self._name = name
        self.model_id = model_id
        self._api_key = api_key
        self._secrets = deployment_secrets(api_key, None, api_base)
        self._transport = transport
        self._clock = transport.clock
        # Bases written OpenAI-style with the version ("https://api.anthropic.com/v1") work too.
        base = (api_base or DEFAULT_API_BASE).rstrip("/").removesuffix("/v1")
        self._url = base + "/v1/messages"
        # https://docs.anthropic.com/en/api/models-list
        self._models_url = base + "/v1/models"
        self.deployment = deployment or f"{name}@{_host(base)}"
        self._timeouts = timeouts
        self._default_max_tokens = default_max_tokens
        self.provider = provider

    @property
    def name(self) -> str:
        """The name users know this model by."""
        return self._name

    def __repr__(self) -> str:
        return f"AnthropicModel(name={self._name!r}, model={self.model_id!r}, deployment={self.deployment!r})"

    async def complete(self, request: ChatRequest) -> Completion:
        """One whole answer; failures raise core errors with provider and deployment set."""
        body, deadline = self._encode(request, stream=False), request.deadline
        started = self._clock.monotonic()
        try:
            response = await self._transport.post(
                self._url, headers=self._headers(), body=body, timeout=self._timeouts, deadline=deadline
            )
        except ProviderError as exc:
            self._claim(exc)
            raise
        latency = self._clock.monotonic() - started
        limits = parse_rate_limit_headers(response.headers)
        if not 200 <= response.status < 300:
            raise self._error(decode_error(response.status, response.body), limits)
        result = decode_message(
            response.body,
            provider=self.provider,
            deployment=self.deployment,
            latency=latency,
            answer_tool=answer_tool_name(request),
        )
        if isinstance(result, VendorError):
            raise self._error(result, limits)
        return replace(result, rate_limits=limits)

    async def stream(self, request: ChatRequest) -> AsyncIterator[StreamDelta]:
        """Text deltas as they arrive; the last carries finish reason, usage and rate limits."""
        body, deadline = self._encode(request, stream=True), request.deadline
        try:
            async with self._transport.stream_post(
                self._url, headers=self._headers(), body=body, timeout=self._timeouts, deadline=deadline
            ) as response:
                limits = parse_rate_limit_headers(response.headers)
                if not 200 <= response.status < 300:
                    raise self._error(decode_error(response.status, await response.read()), limits)
                decoder = StreamDecoder(answer_tool=answer_tool_name(request))
                async for event in iter_sse(response.lines()):
                    delta = decoder.feed(event.data)
                    if isinstance(delta, VendorError):
                        raise self._error(delta, limits)
                    if delta is not None:
                        yield replace(delta, rate_limits=limits) if delta.finish_reason else delta
                incomplete = decoder.end()
                if incomplete is not None:
                    raise self._error(incomplete, limits)
        except ProviderError as exc:
            self._claim(exc)
            raise

    async def probe(self) -> None:
        """List the models (free): reachable and the key accepted, or the mapped error."""
        try:
            response = await self._transport.get(
                self._models_url, headers=self._headers(), timeout=self._timeouts
            )
        except ProviderError as exc:
            self._claim(exc)
            raise
        if not 200 <= response.status < 300:
            limits = parse_rate_limit_headers(response.headers)
            raise self._error(decode_error(response.status, response.body), limits)

    async def aclose(self) -> None:
        """Nothing to release: the transport belongs to whoever built this model."""

    def _encode(self, request: ChatRequest, *, stream: bool) -> bytes:
        """The body; a request it cannot be built from is refused (nothing sent) naming this deployment."""
        try:
            return encode_request(
                request, model_id=self.model_id, default_max_tokens=self._default_max_tokens, stream=stream
            )
        except InvalidRequestError as exc:
            exc.provider, exc.deployment = self.provider, self.deployment
            raise

    def _headers(self) -> dict[str, str]:
        headers = {"anthropic-version": API_VERSION, "content-type": "application/json"}
        if self._api_key:
            headers["x-api-key"] = self._api_key
        return headers

    def _error(self, error: VendorError, limits: RateLimitSnapshot) -> ProviderError:
        return error_for_status(
            error.status,
            upstream_text(error.message, self._secrets),
            provider=self.provider,
            deployment=self.deployment,
            retry_after=limits.retry_after,
            context_exceeded=error.context_exceeded,
            content_filtered=error.content_filtered,
        )

    def _claim(self, error: ProviderError) -> None:
        """Fill in who failed on an error the transport raised (it does not know)."""
        error.provider = error.provider or self.provider
        error.deployment = error.deployment or self.deployment
        error.message = upstream_text(error.message, self._secrets)
        error.args = (error.message,)


def _host(api_base: str) -> str:
    parts = urlsplit(api_base)
    return f"{parts.hostname}:{parts.port}" if parts.port else str(parts.hostname)
