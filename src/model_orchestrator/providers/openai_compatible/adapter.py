"""``OpenAICompatibleModel``: a ``ChatModel`` over any OpenAI Chat Completions endpoint.

Owns the URL and auth header (bearer, or Azure's ``api-key`` with deployment URLs), timing, rate-limit
headers, and claiming every failure for this deployment (provider, deployment, key redacted) once,
here. Does not encode or decode bodies (``convert``), know per-service facts (``endpoints``) or own the
transport (the caller does, so ``aclose`` closes nothing shared).
"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator, Mapping
from urllib.parse import quote, unquote, urlsplit, urlunsplit

from model_orchestrator.core.errors import ConfigError, ProviderError
from model_orchestrator.core.request import ChatRequest
from model_orchestrator.core.response import Completion, StreamDelta
from model_orchestrator.providers.error_mapping import deployment_secrets, upstream_text
from model_orchestrator.providers.http import Timeouts, Transport
from model_orchestrator.providers.openai_compatible.convert import (
    StreamDecoder,
    decode_completion,
    decode_error,
    encode_request,
)
from model_orchestrator.providers.openai_compatible.endpoints import AuthStyle, endpoint_for, token_field_for
from model_orchestrator.providers.rate_limit_headers import parse_rate_limit_headers
from model_orchestrator.providers.sse import iter_sse

DEFAULT_TIMEOUTS = Timeouts()


class OpenAICompatibleModel:
    """One model at one OpenAI-compatible endpoint with one key (a deployment).

    ``provider`` names a row of ``ENDPOINTS`` (unknown names get generic behaviour). With
    ``api_version`` (or ``provider="azure"``) the Azure form is used: ``model_id`` is the deployment
    name, the URL is ``{api_base}/openai/deployments/{model_id}/chat/completions?api-version=...`` and
    the key travels in the ``api-key`` header. Credentials in ``api_base`` (``user:password@``) are
    taken out of the URL and sent as HTTP Basic auth (an error when there is also a key: both would need
    the ``Authorization`` header).
    """

    def __init__(
        self,
        *,
        name: str,
        model_id: str,
        api_base: str,
        api_key: str | None,
        transport: Transport,
        provider: str = "openai",
        deployment: str | None = None,
        timeouts: Timeouts = DEFAULT_TIMEOUTS,
        api_version: str | None = None,
        extra_headers: Mapping[str, str] | None = None,
    ) -> None:
        endpoint = endpoint_for(provider)
        self._name = name
        self.model_id = model_id
        self.provider = provider
        url, basic_auth = _split_credentials(name, api_base, api_key)
        # Everything an upstream might echo back that must not be shown: redacted from error text.
        self._secrets = deployment_secrets(api_key, {**basic_auth, **(extra_headers or {})}, api_base)
        api_base = url
        self.deployment = deployment or f"{name}@{urlsplit(api_base).netloc or api_base}"
        self._api_key = api_key
        self._transport = transport
        self._clock = transport.clock
        self._timeouts = timeouts
        self._token_field = token_field_for(endpoint, model_id)
        self._stream_usage_option = endpoint.stream_usage_option
        version = api_version or endpoint.api_version
        base = api_base.rstrip("/")
        if version:
            self._url = f"{base}/openai/deployments/{quote(model_id, safe='')}/chat/completions"
            self._url += f"?api-version={quote(version, safe='')}"
            # https://learn.microsoft.com/azure/ai-services/openai/reference (Models - List)
            self._models_url = f"{base}/openai/models?api-version={quote(version, safe='')}"
        else:
            self._url = f"{base}/chat/completions"
            # https://platform.openai.com/docs/api-reference/models/list
            self._models_url = f"{base}/models"
        azure_auth = version is not None or endpoint.auth is AuthStyle.API_KEY_HEADER
        self._headers = _headers(api_key, azure_auth, {**basic_auth, **(extra_headers or {})})

    @property
    def name(self) -> str:
        """The name users know this model by."""
        return self._name

    def __repr__(self) -> str:
        return (
            f"OpenAICompatibleModel(name={self._name!r}, model={self.model_id!r}, "
            f"deployment={self.deployment!r})"
        )

    async def complete(self, request: ChatRequest) -> Completion:
        """One whole answer; failures raise core errors with provider and deployment set."""
        body = self._encode(request, stream=False)
        started = self._clock.monotonic()
        try:
            response = await self._transport.post(
                self._url, headers=self._headers, body=body, timeout=self._timeouts, deadline=request.deadline
            )
            limits = parse_rate_limit_headers(response.headers)
            if not 200 <= response.status < 300:
                raise decode_error(response.status, response.body, limits)
            return decode_completion(
                response.body,
                request,
                model_id=self.model_id,
                provider=self.provider,
                deployment=self.deployment,
                latency=self._clock.monotonic() - started,
                rate_limits=limits,
            )
        except ProviderError as exc:
            self._claim(exc)
            raise

    async def stream(self, request: ChatRequest) -> AsyncIterator[StreamDelta]:
        """The answer in pieces; the last delta carries the finish reason, usage and rate limits."""
        body = self._encode(request, stream=True)
        decoder = StreamDecoder(request, self.model_id)
        try:
            async with self._transport.stream_post(
                self._url, headers=self._headers, body=body, timeout=self._timeouts, deadline=request.deadline
            ) as response:
                limits = parse_rate_limit_headers(response.headers)
                if not 200 <= response.status < 300:
                    raise decode_error(response.status, await response.read(), limits)
                async for event in iter_sse(response.lines()):
                    delta = decoder.feed(event.event, event.data)
                    if delta is not None:
                        yield delta
                    if decoder.done:
                        break
                yield decoder.finish(limits)
        except ProviderError as exc:
            self._claim(exc)
            raise

    async def probe(self) -> None:
        """List the endpoint's models (free): reachable and the key accepted, or the mapped error."""
        try:
            response = await self._transport.get(
                self._models_url, headers=self._headers, timeout=self._timeouts
            )
            if not 200 <= response.status < 300:
                raise decode_error(response.status, response.body, parse_rate_limit_headers(response.headers))
        except ProviderError as exc:
            self._claim(exc)
            raise

    async def aclose(self) -> None:
        """Nothing to release: the transport belongs to the caller."""

    def _encode(self, request: ChatRequest, *, stream: bool) -> bytes:
        return encode_request(
            request,
            model_id=self.model_id,
            stream=stream,
            token_field=self._token_field,
            stream_usage_option=self._stream_usage_option,
        )

    def _claim(self, error: ProviderError) -> None:
        """Mark ``error`` as this deployment's and make sure the key cannot leak through it."""
        error.provider = error.provider or self.provider
        error.deployment = error.deployment or self.deployment
        error.message = upstream_text(error.message, self._secrets)
        error.args = (error.message,)


def _split_credentials(name: str, api_base: str, api_key: str | None) -> tuple[str, dict[str, str]]:
    """``api_base`` without ``user:password@``, and the Basic ``Authorization`` header they stand for."""
    parts = urlsplit(api_base)
    if parts.username is None and parts.password is None:
        return api_base, {}
    if api_key:
        raise ConfigError(
            f"model {name!r}: api_base holds credentials (user:password@) and the model has an API key; "
            "both would go in the Authorization header: keep one"
        )
    host = parts.netloc.rpartition("@")[2]
    userinfo = f"{unquote(parts.username or '')}:{unquote(parts.password or '')}"
    token = base64.b64encode(userinfo.encode()).decode("ascii")
    return urlunsplit(parts._replace(netloc=host)), {"authorization": f"Basic {token}"}


def _headers(api_key: str | None, azure_auth: bool, extra: Mapping[str, str] | None) -> dict[str, str]:
    headers = {"content-type": "application/json", "accept": "application/json"}
    if api_key:
        if azure_auth:
            headers["api-key"] = api_key
        else:
            headers["authorization"] = f"Bearer {api_key}"
    for name, value in (extra or {}).items():
        headers[name.lower()] = value  # one value per header, whatever case config used
    return headers
