"""``ModelRegistry``: every model name a user can say, what it is, whether it is usable, and its built model.

Names come from three places, later ones overriding earlier: the embedded local model, the built-in
catalogue, and ``orchestrator.yaml``. A ``provider:model-id`` reference names a
model of a known provider that is in neither. Models are built on first use, so listing never loads one.

Anyone who can send a request can invent references, so what they cost is bounded: a name is at most
``MAX_NAME_LENGTH`` characters, the ``MAX_REFERENCES`` most recently used references are kept (older ones
are dropped, not closed: adapters own no resource, the transport and local weights are shared), and
"did you mean" suggests only configured and catalogue names, never a name another caller asked for.
"""

from __future__ import annotations

import difflib
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Protocol
from urllib.parse import urlsplit

from model_orchestrator.config.pricing import resolve_price
from model_orchestrator.config.redaction import excerpt
from model_orchestrator.config.schema import MAX_NAME_LENGTH, ModelConfig, OrchestratorConfig
from model_orchestrator.core.errors import ConfigError, MissingCredentialsError, ModelNotFoundError
from model_orchestrator.core.model import ChatModel
from model_orchestrator.core.pricing import Price
from model_orchestrator.core.profile import ModelProfile
from model_orchestrator.providers.catalogue import (
    CATALOGUE,
    EMBEDDED_MODEL,
    CatalogueEntry,
    known_capabilities,
)
from model_orchestrator.providers.cli_agent.presets import PRESETS
from model_orchestrator.providers.deployments import ProviderInfo
from model_orchestrator.strategies.capabilities import CapabilityGateModel
from model_orchestrator.strategies.context_fit import DEFAULT_OVERFLOW, ContextFitModel
from model_orchestrator.strategies.member import Member

MAX_REFERENCES = 256


@dataclass(frozen=True, slots=True)
class ModelInfo:
    """What ``orchestrator models`` shows about one name."""

    name: str
    provider: str
    model_id: str
    tier: int | None
    context_window: int | None
    max_output_tokens: int | None
    price: Price | None
    capabilities: frozenset[str]
    api_key_env: str | None
    source: str
    usable: bool
    unusable_reason: str | None

    @property
    def profile(self) -> ModelProfile:
        """What a strategy, a budget or a rate limit may know about this model without calling it (the one
        place a model's profile is built)."""
        return ModelProfile(
            self.name, self.price, self.context_window, self.max_output_tokens, self.tier, self.capabilities
        )

    def to_dict(self) -> dict[str, object]:
        """JSON-ready; prices in USD per million tokens, None when unknown."""
        return {
            "name": self.name,
            "provider": self.provider,
            "model": self.model_id,
            "tier": self.tier,
            "context_window": self.context_window,
            "max_output_tokens": self.max_output_tokens,
            "price": None if self.price is None else {"input": self.price.input, "output": self.price.output},
            "capabilities": sorted(self.capabilities),
            "api_key_env": self.api_key_env,
            "source": self.source,
            "usable": self.usable,
            "unusable_reason": self.unusable_reason,
        }


class DeploymentBuilder(Protocol):
    """Builds a deployment's resilient model, and one model over several deployments."""

    def __call__(
        self, cfg: ModelConfig, profile: ModelProfile, api_key: str | None, deployment: str | None = None
    ) -> ChatModel: ...

    def balanced(self, name: str, deployments: Sequence[Member]) -> ChatModel: ...

    def forget(self, name: str) -> None:
        """Drop what was recorded about the deployments of model ``name`` (it is no longer used)."""


def deployment_id(cfg: ModelConfig) -> str:
    """A stable id for one model at one endpoint: ``name@host`` (``name@local`` off the network)."""
    if cfg.api_base:
        parts = urlsplit(cfg.api_base)
        # Host and port only: credentials in a URL (user:pass@) must never reach ids, logs or the ledger.
        host = parts.hostname or "endpoint"
        return f"{cfg.name}@{host}:{parts.port}" if parts.port else f"{cfg.name}@{host}"
    return f"{cfg.name}@{cfg.provider}"


def expand_deployments(cfg: ModelConfig) -> list[tuple[ModelConfig, str]]:
    """A model with a ``deployments:`` list as one config per deployment, each with a unique id."""
    assert cfg.deployments
    expanded = []
    for number, deployment in enumerate(cfg.deployments, 1):
        merged = cfg.model_copy(update={**deployment.model_dump(exclude_none=True), "deployments": None})
        expanded.append((merged, f"{deployment_id(merged)}#{number}"))
    return expanded


class ModelRegistry:
    """Resolves names to models; builds each model once, on first use."""

    def __init__(
        self,
        config: OrchestratorConfig,
        env: Mapping[str, str],
        factory: DeploymentBuilder,
        providers: Mapping[str, ProviderInfo],
        local_available: Callable[[], str | None],
    ) -> None:
        """``providers`` is every known provider name with its key variable and price-data id."""
        self._env = env
        self._providers = providers
        self._factory = factory
        self._local_available = local_available
        self._configs: dict[str, tuple[ModelConfig, str, str]] = {}
        self._references: OrderedDict[str, tuple[ModelConfig, str, str]] = OrderedDict()
        self._built: dict[str, ChatModel] = {}
        self._add_entry(EMBEDDED_MODEL, "embedded")
        for entry in CATALOGUE:
            self._add_entry(entry, "catalogue")
        for model in config.models:
            self._configs[model.name] = (model, "config", _prices_id(providers, model.provider))
        for model in config.models:
            if model.context is not None and model.context.summarizer is not None:
                self._check_summarizer(model.name, model.context.summarizer)

    @property
    def embedded_model(self) -> str:
        """The name of the model that ships inside the package."""
        return EMBEDDED_MODEL.name

    def names(self) -> list[str]:
        """Every configured or catalogued model name."""
        return list(self._configs)

    def info(self, name: str) -> ModelInfo:
        """What is known about ``name``; raises ModelNotFoundError with suggestions."""
        cfg, source, prices_provider = self._lookup(name)
        reason = self._unusable_reason(cfg)
        wire = self._providers[cfg.provider].wire if cfg.provider in self._providers else None
        return ModelInfo(
            name=cfg.name,
            provider=cfg.provider,
            model_id=cfg.model or cfg.name,
            tier=cfg.tier,
            context_window=cfg.context_window,
            max_output_tokens=cfg.max_output_tokens,
            price=resolve_price(cfg.provider, prices_provider, cfg.model or cfg.name, cfg.price),
            capabilities=frozenset(cfg.capabilities)
            if cfg.capabilities
            else known_capabilities(cfg.name, cfg.provider, cfg.model or cfg.name, wire),
            api_key_env=self._key_env(cfg),
            source=source,
            usable=reason is None,
            unusable_reason=reason,
        )

    def infos(self) -> list[ModelInfo]:
        """Info on every name, in registration order."""
        return [self.info(name) for name in self._configs]

    def resolve(self, name: str) -> ChatModel:
        """The model for ``name``, built on first use. Missing keys raise MissingCredentialsError."""
        if name in self._built:
            if name in self._references:
                self._references.move_to_end(name)
            return self._built[name]
        cfg, _source, _prices = self._lookup(name)
        info = self.info(name)
        profile = info.profile
        if cfg.deployments:
            # Deployments whose key is missing are left out; the model works while one has its key.
            ready = [(sub, d) for sub, d in expand_deployments(cfg) if self._unusable_reason(sub) is None]
            if not ready:
                raise MissingCredentialsError(
                    f"model {name!r}: no deployment is usable ({info.unusable_reason})"
                )
            # Each member is one deployment of the model: the model's profile under the deployment's id.
            members = [
                Member(self._one(sub, profile, deployment), replace(profile, name=deployment))
                for sub, deployment in ready
            ]
            model = self._factory.balanced(name, members)
        else:
            model = self._one(cfg, profile, None)
        model = self._fit_context(cfg, profile, model)
        model = CapabilityGateModel(model, profile, self._declaring)
        self._built[name] = model
        return model

    def _declaring(self, capability: str) -> list[str]:
        """The usable models from orchestrator.yaml that have ``capability`` (for error messages)."""
        configured = [self.info(n) for n, (_cfg, source, _p) in self._configs.items() if source == "config"]
        return [i.name for i in configured if i.usable and capability in i.capabilities]

    def _check_summarizer(self, name: str, summarizer: str) -> None:
        """A model's ``context.summarizer`` must name a model: checked at start-up, not at the first cut."""
        try:
            self._lookup(summarizer)
        except ModelNotFoundError as exc:
            raise ConfigError(f"model {name!r}: context.summarizer: {exc.message}") from None

    def _fit_context(self, cfg: ModelConfig, profile: ModelProfile, model: ChatModel) -> ChatModel:
        """``model`` with its prompts checked against its window first (``context:``; default: error)."""
        context = cfg.context
        summarizer = context.summarizer if context is not None else None
        return ContextFitModel(
            model,
            profile,
            overflow=context.overflow if context is not None else DEFAULT_OVERFLOW,
            summarizer=None if summarizer is None else (lambda: self.resolve(summarizer)),
        )

    def _one(self, cfg: ModelConfig, profile: ModelProfile, deployment: str | None) -> ChatModel:
        key_env = self._key_env(cfg)
        api_key = self._env.get(key_env) if key_env else None
        if key_env and not api_key:
            raise MissingCredentialsError(
                f"model {cfg.name!r} needs an API key in the environment variable {key_env}, which is not "
                f"set; export {key_env}=... or choose another model (`orchestrator models` lists usable ones)"
            )
        if cfg.headers_env:
            missing = self._missing_header_variables(cfg)
            if missing:
                raise MissingCredentialsError(
                    f"model {cfg.name!r} sends headers from environment variables that are not set: "
                    f"{', '.join(missing)}; export them or choose another model"
                )
            secret = {header: self._env[variable] for header, variable in cfg.headers_env.items()}
            cfg = cfg.model_copy(update={"headers": {**(cfg.headers or {}), **secret}, "headers_env": None})
        return self._factory(cfg, profile, api_key, deployment)

    def _missing_header_variables(self, cfg: ModelConfig) -> list[str]:
        return [v for v in (cfg.headers_env or {}).values() if not self._env.get(v)]

    async def aclose(self) -> None:
        """Close every model built so far."""
        built, self._built = list(self._built.values()), {}
        for model in built:
            await model.aclose()

    def _add_entry(self, entry: CatalogueEntry, source: str) -> None:
        cfg = ModelConfig(
            name=entry.name,
            provider=entry.provider,
            model=entry.model_id,
            context_window=entry.context_window,
            max_output_tokens=entry.max_output_tokens,
            tier=entry.tier,
            capabilities=tuple(sorted(entry.capabilities)),  # type: ignore[arg-type]
        )
        self._configs[entry.name] = (cfg, source, entry.prices_provider)

    def _lookup(self, name: str) -> tuple[ModelConfig, str, str]:
        if name in self._configs:
            return self._configs[name]
        if name in self._references:
            self._references.move_to_end(name)
            return self._references[name]
        check_name_length(name)
        provider, sep, model_id = name.partition(":")
        if sep and model_id and provider in self._providers:
            cfg = _reference_config(name, self._providers[provider], model_id)
            self._references[name] = (cfg, "reference", _prices_id(self._providers, provider))
            while len(self._references) > MAX_REFERENCES:
                self._forget(next(iter(self._references)))
            return self._references[name]
        close = difflib.get_close_matches(name, list(self._configs), n=3, cutoff=0.5)
        hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        raise ModelNotFoundError(
            f"unknown model {excerpt(name)}{hint or '.'} Run `orchestrator models` to list models, add it to "
            "orchestrator.yaml, or name it as provider:model-id"
        )

    def _forget(self, name: str) -> None:
        del self._references[name]
        if self._built.pop(name, None) is not None:
            self._factory.forget(name)

    def _key_env(self, cfg: ModelConfig) -> str | None:
        if cfg.api_key_env is not None:
            return cfg.api_key_env
        info = self._providers.get(cfg.provider)
        if info is None:
            return None
        if cfg.api_base is not None and cfg.api_base != info.base_url:
            return None  # a self-hosted server usually needs no key; config names one when it does
        return info.api_key_env

    def _unusable_reason(self, cfg: ModelConfig) -> str | None:
        if cfg.deployments:
            reasons = [self._unusable_reason(sub) for sub, _ in expand_deployments(cfg)]
            return None if None in reasons else "; ".join(r for r in reasons if r)
        if cfg.provider == "local":
            return self._local_available()
        key_env = self._key_env(cfg)
        if key_env and not self._env.get(key_env):
            return f"{key_env} is not set"
        missing = self._missing_header_variables(cfg)
        return f"{', '.join(missing)} (headers_env) not set" if missing else None


def _reference_config(name: str, provider: ProviderInfo, model_id: str) -> ModelConfig:
    """The config a ``provider:model-id`` reference stands for; ``cli:NAME`` names a CLI agent preset."""
    if provider.wire != "cli":
        return ModelConfig(name=name, provider=provider.name, model=model_id)
    if model_id not in PRESETS:
        raise ModelNotFoundError(
            f"unknown CLI agent {model_id!r}; the cli: presets are {', '.join(sorted(PRESETS))}. "
            "For another agent, add a model with provider: cli and command: [...] to orchestrator.yaml"
        )
    return ModelConfig(name=name, provider=provider.name, preset=model_id)


def check_name_length(name: str) -> None:
    """Refuse a model or strategy name longer than ``MAX_NAME_LENGTH`` (without echoing it)."""
    if len(name) > MAX_NAME_LENGTH:
        raise ModelNotFoundError(
            f"a model name of {len(name):,} characters was given; names are at most {MAX_NAME_LENGTH} "
            "characters. Run `orchestrator models` to list models"
        )


def _prices_id(providers: Mapping[str, ProviderInfo], provider: str) -> str:
    info = providers.get(provider)
    return info.prices_provider if info else provider
