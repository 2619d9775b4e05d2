"""``GeminiModel``: a ``ChatModel`` over the Gemini API's generateContent, sent through a ``Transport``.

Owns the endpoint, the auth header, timing, rate-limit headers and turning every failure into the core
error tree (once, here). Does not encode or decode bodies (``convert``) or own the transport (the caller
does, so ``aclose`` closes nothing shared). API reference: https://ai.google.dev/api/generate-content
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from urllib.parse import quote, urlsplit

from model_orchestrator.core.errors import InvalidRequestError, ProviderError
from model_orchestrator.core.rate_limits import RateLimitSnapshot
from model_orchestrator.core.request import ChatRequest
from model_orchestrator.core.response import Completion, StreamDelta
from model_orchestrator.providers.error_mapping import deployment_secrets, error_for_status, upstream_text
from model_orchestrator.providers.gemini.convert import (
    StreamDecoder,
    VendorError,
    decode_error,
    decode_response,
    encode_request,
)
from model_orchestrator.providers.gemini.parts import max_calls, needs_call_signatures
from model_orchestrator.providers.http import Timeouts, Transport
from model_orchestrator.providers.rate_limit_headers import parse_rate_limit_headers
from model_orchestrator.providers.sse import iter_sse

DEFAULT_TIMEOUTS = Timeouts()
DEFAULT_API_BASE = "https://generativelanguage.googleapis.com"


class GeminiModel:
    """One Gemini model at one endpoint with one key (a deployment)."""

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
        provider: str = "gemini",
    ) -> None:
        self._name = name
        self.model_id = model_id
        self._api_key = api_key
        self._secrets = deployment_secrets(api_key, None, api_base)
        self._transport = transport
        self._clock = transport.clock
        # Ids are accepted with or without the resource prefix ("models/gemini-2.0-flash").
        model = quote(model_id.removeprefix("models/"), safe="")
        # Bases written with the version ("https://generativelanguage.googleapis.com/v1beta") work too.
        base = (api_base or DEFAULT_API_BASE).rstrip("/").removesuffix("/v1beta")
        # https://ai.google.dev/api/models#method:-models.list
        self._models_url = f"{base}/v1beta/models"
        model_path = f"{self._models_url}/{model}"
        self._url = f"{model_path}:generateContent"
        # alt=sse asks for server-sent events instead of one JSON array:
        # https://ai.google.dev/api/generate-content#method:-models.streamgeneratecontent
        self._stream_url = f"{model_path}:streamGenerateContent?alt=sse"
        self.deployment = deployment or f"{name}@{_host(base)}"
        self._sign_calls = needs_call_signatures(model_id)
        self._timeouts = timeouts
        self.provider = provider

    @property
    def name(self) -> str:
        """The name users know this model by."""
        return self._name

    def __repr__(self) -> str:
        return f"GeminiModel(name={self._name!r}, model_id={self.model_id!r}, deployment={self.deployment!r})"

    async def complete(self, request: ChatRequest) -> Completion:
        """One whole answer; failures raise core errors with provider and deployment set."""
        started = self._clock.monotonic()
        try:
            response = await self._transport.post(
                self._url,
                headers=self._headers(),
                body=self._encode(request),
                timeout=self._timeouts,
                deadline=request.deadline,
            )
        except ProviderError as exc:
            self._claim(exc)
            raise
        latency = self._clock.monotonic() - started
        limits = parse_rate_limit_headers(response.headers)
        if not 200 <= response.status < 300:
            raise self._error(decode_error(response.status, response.body), limits)
        result = decode_response(
            response.body,
            provider=self.provider,
            deployment=self.deployment,
            latency=latency,
            max_calls=max_calls(request),
            logprobs=request.logprobs,
        )
        if isinstance(result, VendorError):
            raise self._error(result, limits)
        return replace(result, rate_limits=limits)

    async def stream(self, request: ChatRequest) -> AsyncIterator[StreamDelta]:
        """Text deltas as they arrive; the last carries finish reason, usage and rate limits."""
        try:
            async with self._transport.stream_post(
                self._stream_url,
                headers=self._headers(),
                body=self._encode(request),
                timeout=self._timeouts,
                deadline=request.deadline,
            ) as response:
                limits = parse_rate_limit_headers(response.headers)
                if not 200 <= response.status < 300:
                    raise self._error(decode_error(response.status, await response.read()), limits)
                decoder = StreamDecoder(max_calls=max_calls(request), logprobs=request.logprobs)
                async for event in iter_sse(response.lines()):
                    delta = decoder.feed(event.data)
                    if isinstance(delta, VendorError):
                        raise self._error(delta, limits)
                    if delta is not None:
                        yield delta
                final = decoder.end()
                if isinstance(final, VendorError):
                    raise self._error(final, limits)
                yield replace(final, rate_limits=limits)
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

    def _encode(self, request: ChatRequest) -> bytes:
        """The body; a request it cannot be built from is refused (nothing sent) naming this deployment."""
        try:
            return encode_request(request, sign_calls=self._sign_calls)
        except InvalidRequestError as exc:
            exc.provider, exc.deployment = self.provider, self.deployment
            raise

    def _headers(self) -> dict[str, str]:
        # The key goes in a header, never in the ?key= query: URLs end up in logs and error messages.
        # https://ai.google.dev/gemini-api/docs/api-key
        headers = {"content-type": "application/json"}
        if self._api_key:
            headers["x-goog-api-key"] = self._api_key
        return headers

    def _error(self, error: VendorError, limits: RateLimitSnapshot) -> ProviderError:
        retry_after = limits.retry_after if limits.retry_after is not None else error.retry_after
        return error_for_status(
            error.status,
            upstream_text(error.message, self._secrets),
            provider=self.provider,
            deployment=self.deployment,
            retry_after=retry_after,
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
