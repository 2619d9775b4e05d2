"""``NameResolver``: any name a user may say — a model, a configured strategy, or an inline strategy such as
``fallback:fast,strong`` — resolved to a ``ChatModel`` (strategies built once, on first use).

Model names are the ``ModelRegistry``'s; this module adds strategies on top, detects cycles between
named strategies, and picks default members when a strategy is asked for without any.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from typing import Any

from model_orchestrator.config.default_models import cycled, default_chain
from model_orchestrator.config.registry import ModelInfo, ModelRegistry, check_name_length
from model_orchestrator.config.routers import RouterFactory
from model_orchestrator.config.schema import ContextConfig, OrchestratorConfig, StrategyConfig
from model_orchestrator.config.strategy_builder import (
    StrategyBuilder,
    combined_profile,
    inline_options,
    parse_options,
)
from model_orchestrator.config.strategy_options import MEMBER_FIELD, OPTIONS
from model_orchestrator.core.clock import Clock
from model_orchestrator.core.errors import ConfigError, ModelNotFoundError
from model_orchestrator.core.events import EventBus
from model_orchestrator.core.model import ChatModel
from model_orchestrator.core.profile import ModelProfile
from model_orchestrator.providers.aliases import ALIASES
from model_orchestrator.strategies.context_fit import ContextFitModel
from model_orchestrator.strategies.member import Member

AUTO = "auto"


class NameResolver:
    """Resolves model and strategy names; owns the built strategies."""

    def __init__(
        self,
        config: OrchestratorConfig,
        models: ModelRegistry,
        *,
        clock: Clock,
        bus: EventBus,
        rng: random.Random | None = None,
    ) -> None:
        self._models = models
        self._configs = {s.name: s for s in config.strategies}
        self._aliases = {**ALIASES, **config.aliases}
        self._built: dict[str, ChatModel] = {}
        self._fitted: dict[str, ChatModel] = {}  # wrappers of built strategies; closed through ``_built``
        self._building: list[str] = []
        self.routers = RouterFactory(config.routing)
        self._builder = StrategyBuilder(
            self.member, clock=clock, bus=bus, rng=rng or random.Random(), routers=self.routers
        )
        self._options: dict[str, Any] = {}
        for name, strategy in self._configs.items():
            if name in models.names():
                raise ConfigError(f"strategy {name!r} has the name of a model; names must be unique")
            # Validated at start-up, not on first use.
            self._options[name] = parse_options(strategy.type, _data(strategy), f"strategy {name!r}")
        for name, strategy in self._configs.items():
            if strategy.context is not None and strategy.context.summarizer is not None:
                self._check_summarizer(name, strategy.context.summarizer)

    @property
    def models(self) -> ModelRegistry:
        """The model registry underneath."""
        return self._models

    def canonical(self, name: str) -> str:
        """``name`` itself when it is a model or strategy, else the model its alias names (``haiku``)."""
        if name in self._configs or name in self._models.names():
            return name
        return self._aliases.get(name, name)

    def resolve(self, name: str) -> ChatModel:
        """The model or strategy called ``name`` (or named by the alias ``name``)."""
        name = self.canonical(name)
        if name in self._built:
            return self._built[name]
        if name in self._configs:
            return self._build_named(name)
        if name == AUTO and AUTO not in self._models.names():
            # ``auto`` (the customary name in gateway clients): route over the usable models.
            return self._remember(name, self.inline("route", None, {}, name=AUTO))
        check_name_length(name)  # an inline strategy is remembered under its name: keep names short
        kind, sep, rest = name.partition(":")
        if sep and kind in OPTIONS:
            return self._remember(name, self.inline(kind, [m for m in rest.split(",") if m], {}, name=name))
        return self._models.resolve(name)

    def member(self, name: str) -> Member:
        """``name`` as a strategy member: its model and what is known of it without calling it."""
        return Member(self.resolve(name), self.profile(name))

    def profile(self, name: str) -> ModelProfile:
        """Static facts: from the catalogue/config for models; for a configured strategy, an upper bound
        from its members (a gate for budgets and context fit; the strategy still checks each real call)."""
        name = self.canonical(name)
        if name in self._options:
            return self._strategy_profile(name)
        if self.is_strategy(name):
            return ModelProfile(name)
        return self._models.info(name).profile

    def is_strategy(self, name: str) -> bool:
        """True for configured and inline strategy names (and ``auto``)."""
        name = self.canonical(name)
        kind, sep, _ = name.partition(":")
        return name in self._configs or name == AUTO or (bool(sep) and kind in OPTIONS)

    def kind_of(self, name: str) -> str:
        """The strategy type behind ``name`` (``single`` for a plain model)."""
        name = self.canonical(name)
        if name in self._configs:
            return self._configs[name].type
        if name == AUTO and AUTO not in self._models.names():
            return "route"
        kind, sep, _ = name.partition(":")
        return kind if sep and kind in OPTIONS else "single"

    def inline(
        self, kind: str, members: Sequence[str] | None, extra: Mapping[str, Any], *, name: str | None = None
    ) -> ChatModel:
        """A strategy of ``kind`` over ``members`` (default: the default chain, see ``default_models``).

        ``ensemble_size`` N (ensemble only) takes N members from them in order, cycling (``a,b`` x4:
        a,b,a,b); one member is asked N times (samples with distinct seeds).
        """
        if kind not in OPTIONS:
            raise ConfigError(f"unknown strategy {kind!r}; expected one of: {', '.join(OPTIONS)}")
        extra = dict(extra)
        size = extra.pop("ensemble_size", None)
        if size is not None and kind != "ensemble":
            raise ConfigError(f"--ensemble-size is for --strategy ensemble, not {kind}")
        chosen = list(members) if members else self.default_members(kind)
        if size is not None and len(chosen) == 1:
            extra["samples"] = size
        elif size is not None:
            chosen = cycled(chosen, size)
        label = name or f"{kind}:{','.join(chosen)}"
        options = parse_options(kind, inline_options(kind, label, chosen, extra), f"strategy {label!r}")
        profiles = [self.profile(m) for m in member_names(options)]  # specialist/hybrid: label=model
        profile = combined_profile(label, profiles, parallel=kind in _PARALLEL_TYPES)
        return self._fit_context(self._builder.build(options), profile, None)

    def default_members(self, kind: str) -> list[str]:
        """The default chain (the cheapest usable model of each tier, weakest first); for cross-validate
        its two weakest and its strongest (the tiebreaker)."""
        if kind not in MEMBER_FIELD:
            raise ConfigError(
                f"a {kind} strategy needs its members spelled out (--chain or orchestrator.yaml)"
            )
        chain = default_chain(self._models.infos(), self._models.embedded_model)
        if kind == "cross-validate" and len(chain) >= 3:
            return [chain[0], chain[1], chain[-1]]
        return chain

    def infos(self) -> list[ModelInfo]:
        """Configured strategies, listed like models (provider ``strategy``)."""
        return [
            ModelInfo(
                name=s.name,
                provider="strategy",
                model_id=s.type,
                tier=None,
                context_window=None,
                max_output_tokens=None,
                price=None,
                capabilities=frozenset(),
                api_key_env=None,
                source="config",
                usable=True,
                unusable_reason=None,
            )
            for s in self._configs.values()
        ]

    async def aclose(self) -> None:
        """Close every strategy built so far (their members are closed by the model registry)."""
        built, self._built = list(self._built.values()), {}
        for model in built:
            await model.aclose()

    def _strategy_profile(self, name: str) -> ModelProfile:
        if name in self._building:
            return ModelProfile(name)  # a cycle; building the strategy reports it
        self._building.append(name)
        try:
            options = self._options[name]
            members = [self.profile(m) for m in member_names(options)]
        finally:
            self._building.pop()
        return combined_profile(name, members, parallel=options.type in _PARALLEL_TYPES)

    def _build_named(self, name: str) -> ChatModel:
        if name in self._building:
            cycle = " -> ".join([*self._building[self._building.index(name) :], name])
            raise ConfigError(f"strategies refer to each other in a cycle: {cycle}")
        self._building.append(name)
        try:
            model = self._builder.build(self._options[name])
        finally:
            self._building.pop()
        context = self._configs[name].context
        if context is not None:
            model = self._fit_context(model, self.profile(name), context)
        return self._remember(name, model)

    def fitted(self, name: str) -> ChatModel:
        """``resolve(name)`` as a request calls it: a named strategy without ``context:`` is wrapped so
        that a request's own ``context_overflow`` still fits the prompt to its largest member window."""
        model = self.resolve(name)
        name = self.canonical(name)
        if name not in self._configs or self._configs[name].context is not None:
            return model
        if name not in self._fitted:
            self._fitted[name] = self._fit_context(model, self.profile(name), None)
        return self._fitted[name]

    def _check_summarizer(self, name: str, summarizer: str) -> None:
        if not self.is_strategy(summarizer):
            try:
                self._models.info(self.canonical(summarizer))
            except ModelNotFoundError as exc:
                raise ConfigError(f"strategy {name!r}: context.summarizer: {exc.message}") from None

    def _fit_context(
        self, model: ChatModel, profile: ModelProfile, context: ContextConfig | None
    ) -> ChatModel:
        """A strategy fitting prompts to its largest member window: as its ``context:`` says, or as the
        request says; without either, its members decide (each model checks its own window)."""
        summarizer = context.summarizer if context is not None else None
        return ContextFitModel(
            model,
            profile,
            overflow=context.overflow if context is not None else None,
            summarizer=None if summarizer is None else (lambda: self.resolve(summarizer)),
        )

    def _remember(self, name: str, model: ChatModel) -> ChatModel:
        self._built[name] = model
        return model


_PARALLEL_TYPES = frozenset({"ensemble", "pipeline", "hybrid", "cross-validate"})


def member_names(options: Any) -> list[str]:
    """Every model or strategy name a strategy's options refer to."""
    names: list[str] = []
    for field in ("chain", "tiers", "members"):
        names.extend(getattr(options, field, None) or ())
    for field in ("synthesizer", "tiebreaker", "model", "judge", "fallback", "summarizer"):
        value = getattr(options, field, None)
        if isinstance(value, str):
            names.append(value)
    names.extend(stage.model for stage in getattr(options, "stages", None) or () if stage.model)
    names.extend((getattr(options, "routes", None) or {}).values())
    return list(dict.fromkeys(names))


def _data(config: StrategyConfig) -> dict[str, Any]:
    return {"name": config.name, "type": config.type, **(config.model_extra or {})}
