"""The OpenAI-compatible services, as data rows: where they live, which key they need, how they differ.

Owns per-service facts (default base URL, key variable name, auth header style, the output-token
field, whether ``stream_options`` is accepted). It does not send anything (``adapter``) or read the
environment (config does, by the variable name given here).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType


class AuthStyle(StrEnum):
    """How the key travels: ``Authorization: Bearer <key>`` or Azure's ``api-key: <key>``."""

    BEARER = "bearer"
    API_KEY_HEADER = "api-key"


class TokenField(StrEnum):
    """The request field that caps output tokens.

    OpenAI deprecated ``max_tokens`` in favour of ``max_completion_tokens``, and o-series reasoning
    models reject ``max_tokens``:
    https://platform.openai.com/docs/api-reference/chat/create#chat-create-max_completion_tokens
    Most other compatible servers only know ``max_tokens``.
    """

    MAX_TOKENS = "max_tokens"
    MAX_COMPLETION_TOKENS = "max_completion_tokens"


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One OpenAI-compatible service. ``key_env`` None means no key is needed (local servers)."""

    name: str
    api_base: str | None
    key_env: str | None
    auth: AuthStyle = AuthStyle.BEARER
    token_field: TokenField = TokenField.MAX_TOKENS
    stream_usage_option: bool = True
    api_version: str | None = None
    docs: str = ""


# Reasoning model families that want ``max_completion_tokens`` wherever they are served (OpenAI and
# Azure): https://learn.microsoft.com/azure/ai-foundry/openai/how-to/reasoning#api--feature-support
_REASONING_PREFIXES = ("o1", "o3", "o4", "gpt-5")

_ROWS = (
    Endpoint(
        "openai",
        "https://api.openai.com/v1",
        "OPENAI_API_KEY",
        token_field=TokenField.MAX_COMPLETION_TOKENS,
        docs="https://platform.openai.com/docs/api-reference/chat",
    ),
    # The base is the resource URL (https://<resource>.openai.azure.com); the model id is the
    # deployment name. https://learn.microsoft.com/azure/ai-services/openai/reference
    Endpoint(
        "azure",
        None,
        "AZURE_OPENAI_API_KEY",
        auth=AuthStyle.API_KEY_HEADER,
        api_version="2024-10-21",
        docs="https://learn.microsoft.com/azure/ai-services/openai/reference",
    ),
    Endpoint(
        "groq", "https://api.groq.com/openai/v1", "GROQ_API_KEY", docs="https://console.groq.com/docs/openai"
    ),
    Endpoint(
        "together",
        "https://api.together.xyz/v1",
        "TOGETHER_API_KEY",
        docs="https://docs.together.ai/docs/openai-api-compatibility",
    ),
    # Mistral rejects unknown fields (422 "extra_forbidden") including stream_options, and reports
    # usage on the last chunk anyway: https://docs.mistral.ai/api/#tag/chat
    Endpoint(
        "mistral",
        "https://api.mistral.ai/v1",
        "MISTRAL_API_KEY",
        stream_usage_option=False,
        docs="https://docs.mistral.ai/api/#tag/chat",
    ),
    Endpoint(
        "deepseek",
        "https://api.deepseek.com/v1",
        "DEEPSEEK_API_KEY",
        docs="https://api-docs.deepseek.com/api/create-chat-completion",
    ),
    Endpoint(
        "openrouter",
        "https://openrouter.ai/api/v1",
        "OPENROUTER_API_KEY",
        docs="https://openrouter.ai/docs/api-reference/overview",
    ),
    Endpoint("vllm", "http://localhost:8000/v1", None, docs="https://docs.vllm.ai/en/latest/serving/"),
    Endpoint(
        "llamacpp",
        "http://localhost:8080/v1",
        None,
        docs="https://github.com/ggml-org/llama.cpp/tree/master/tools/server",
    ),
    Endpoint(
        "ollama", "http://localhost:11434/v1", None, docs="https://ollama.com/blog/openai-compatibility"
    ),
    Endpoint(
        "lmstudio", "http://localhost:1234/v1", None, docs="https://lmstudio.ai/docs/app/api/endpoints/openai"
    ),
)

ENDPOINTS: Mapping[str, Endpoint] = MappingProxyType({row.name: row for row in _ROWS})

# Any other OpenAI-compatible server: bearer auth when a key is given, ``max_tokens``.
GENERIC = Endpoint("openai-compatible", None, None)


def endpoint_for(provider: str) -> Endpoint:
    """The row for ``provider``, or the generic row for an unknown compatible server."""
    return ENDPOINTS.get(provider, GENERIC)


def token_field_for(endpoint: Endpoint, model_id: str) -> TokenField:
    """The output-token field for ``model_id`` at ``endpoint`` (reasoning models need the new one)."""
    if model_id.lower().startswith(_REASONING_PREFIXES):
        return TokenField.MAX_COMPLETION_TOKENS
    return endpoint.token_field
