"""Builds strategies (named in config, or on the fly from the CLI/API) out of members the registry resolves.

Part of the composition root: the only place that names concrete strategy classes. Validation of each
type's options is ``strategy_options``'s job; resolving member names is the registry's.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any

from pydantic import ValidationError

from model_orchestrator.config import strategy_options as opts
from model_orchestrator.config.redaction import excerpt
from model_orchestrator.config.routers import RouterFactory
from model_orchestrator.config.routing import RoutingConfig
from model_orchestrator.core.clock import Clock
from model_orchestrator.core.errors import ConfigError
from model_orchestrator.core.events import EventBus
from model_orchestrator.core.model import ChatModel
from model_orchestrator.core.pricing import Price
from model_orchestrator.core.profile import ModelProfile
from model_orchestrator.core.request import ChatRequest
from model_orchestrator.core.response import Completion
from model_orchestrator.routing.answers import ANSWER_SCORERS, AnswerScorer, PromptAwareAnswerScorer
from model_orchestrator.routing.policy import prompt_of
from model_orchestrator.strategies.member import Member

MemberLookup = Callable[[str], Member]

PIPELINE_DEFAULT_STAGES = (
    ("plan", "You are a software architect. Write a short, concrete implementation plan.", False),
    ("code", "You are an expert programmer. Implement the plan precisely.", False),
    (
        "review",
        'You are a code reviewer. Reply with JSON {"approved": true|false, "issues": [...]} judging the code '
        "against the plan.",
        True,
    ),
)


def parse_options(kind: str, data: Mapping[str, Any], where: str) -> opts._Options:
    """Validate one strategy's options; errors name ``where`` and the field."""
    schema = opts.OPTIONS.get(kind)
    if schema is None:
        raise ConfigError(
            f"{where}: unknown strategy type {excerpt(kind)}; expected one of: {', '.join(opts.OPTIONS)}"
        )
    try:
        return schema.model_validate(dict(data))
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'options'}: {e['msg']}"
            for e in exc.errors(include_url=False)
        )
        raise ConfigError(f"{where}: {problems}") from exc


def inline_options(kind: str, name: str, members: Sequence[str], extra: Mapping[str, Any]) -> dict[str, Any]:
    """Options for a strategy built from a member list (``--strategy fallback --chain a,b``)."""
    data: dict[str, Any] = {"name": name, "type": kind, **{k: v for k, v in extra.items() if v is not None}}
    if kind in opts.MEMBER_FIELD:
        data[opts.MEMBER_FIELD[kind]] = tuple(members)
    elif kind == "pipeline":
        data["stages"] = _pipeline_stages(members)
    elif kind in ("specialist", "hybrid"):
        data["routes"] = _routes(members)
    if kind == "cross-validate":
        if len(members) != 3:
            raise ConfigError("cross-validate needs three members: two to answer and a tiebreaker")
        data["members"], data["tiebreaker"] = tuple(members[:2]), members[2]
    return data


def _pipeline_stages(members: Sequence[str]) -> list[dict[str, Any]]:
    if len(members) != len(PIPELINE_DEFAULT_STAGES):
        raise ConfigError("an inline pipeline needs three members: planner, coder, reviewer")
    return [
        {"name": stage, "model": model, "instructions": text, "review": review}
        for (stage, text, review), model in zip(PIPELINE_DEFAULT_STAGES, members, strict=True)
    ]


def _routes(members: Sequence[str]) -> dict[str, str]:
    routes: dict[str, str] = {}
    for item in members:
        label, sep, model = item.partition("=")
        if not sep or not label or not model:
            raise ConfigError(f"specialist routes are label=model pairs (e.g. code=strong); got {item!r}")
        routes[label] = model
    return routes


class StrategyBuilder:
    """Turns validated options into strategy models over resolved members."""

    def __init__(
        self,
        member: MemberLookup,
        *,
        clock: Clock,
        bus: EventBus,
        rng: random.Random,
        routers: RouterFactory | None = None,
    ) -> None:
        self._member = member
        self._clock = clock
        self._bus = bus
        self._rng = rng
        self._routers = routers or RouterFactory(RoutingConfig())

    def build(self, options: opts._Options) -> ChatModel:
        """The strategy described by ``options``."""
        builder = getattr(self, "_" + options.type.replace("-", "_"))
        model: ChatModel = builder(options)
        return model

    def _members(self, names: Sequence[str]) -> list[Member]:
        return [self._member(n) for n in names]

    def _common(self, options: opts._Options) -> dict[str, Any]:
        return {"name": options.name, "clock": self._clock, "bus": self._bus}

    def _fallback(self, o: opts.FallbackOptions) -> ChatModel:
        from model_orchestrator.strategies.fallback import FallbackModel

        scorer = _scorer(o.scorer, self._routers) if o.threshold is not None else None
        return FallbackModel(self._members(o.chain), scorer=scorer, threshold=o.threshold, **self._common(o))

    def _cascade(self, o: opts.CascadeOptions) -> ChatModel:
        from model_orchestrator.strategies.cascade import CascadeModel

        return CascadeModel(
            self._members(o.tiers),
            scorer=_scorer(o.scorer, self._routers),
            threshold=o.threshold,
            **self._common(o),
        )

    def _ensemble(self, o: opts.EnsembleOptions) -> ChatModel:
        from model_orchestrator.strategies import aggregators, extractors
        from model_orchestrator.strategies.ensemble import EnsembleModel

        aggregator: Any
        if o.aggregate == "vote":
            aggregator = aggregators.VoteAggregator(extractors.by_name(o.extractor))
        elif o.aggregate == "best":
            aggregator = aggregators.BestAggregator()
        else:
            assert o.synthesizer is not None
            aggregator = aggregators.SynthesizeAggregator(self._member(o.synthesizer))
        return EnsembleModel(
            self._members(o.members),
            aggregator=aggregator,
            samples=o.samples,
            min_answers=o.min_answers,
            **self._common(o),
        )

    def _race(self, o: opts.RaceOptions) -> ChatModel:
        from model_orchestrator.strategies.race import RaceModel

        return RaceModel(self._members(o.members), **self._common(o))

    def _hedge(self, o: opts.HedgeOptions) -> ChatModel:
        from model_orchestrator.strategies.race import HedgeModel

        primary, *backups = self._members(o.members)
        return HedgeModel(primary, backups, delay=o.delay, **self._common(o))

    def _pipeline(self, o: opts.PipelineOptions) -> ChatModel:
        from model_orchestrator.strategies.pipeline import PipelineModel, Stage

        stages = [
            Stage(
                name=s.name,
                member=self._member(s.model),
                instructions=s.instructions,
                context=s.context,
                is_review=s.review,
            )
            for s in o.stages
        ]
        summarizer = self._member(o.summarizer) if o.summarizer else None
        return PipelineModel(stages, max_rounds=o.max_rounds, summarizer=summarizer, **self._common(o))

    def _specialist(self, o: opts.SpecialistOptions) -> ChatModel:
        routes = {label: self._member(model) for label, model in o.routes.items()}
        return self._specialist_over(routes, o, o.name)

    def _specialist_over(self, routes: dict[str, Member], o: opts.SpecialistOptions, name: str) -> ChatModel:
        from model_orchestrator.strategies import specialist

        rules = (
            tuple(specialist.Rule(r.label, r.keywords, r.pattern, r.max_chars) for r in o.rules)
            if o.rules is not None
            else specialist.DEFAULT_RULES
        )
        default = o.default or ("general" if "general" in routes else next(iter(routes)))
        classifier = specialist.RuleClassifier(rules, default)
        return specialist.SpecialistModel(
            routes, classifier=classifier, default=default, name=name, clock=self._clock, bus=self._bus
        )

    def _hybrid(self, o: opts.HybridOptions) -> ChatModel:
        """A pipeline whose stages each go through a specialist over the same routes (one per stage, named
        ``NAME/STAGE``, so the explanation says which route each stage took)."""
        from model_orchestrator.strategies.pipeline import PipelineModel, Stage

        routes = {label: self._member(model) for label, model in o.routes.items()}
        profile = combined_profile(o.name, [m.profile for m in routes.values()], parallel=False)
        stages = o.stages or tuple(
            opts.HybridStageOptions(name=name, instructions=text, review=review)
            for name, text, review in PIPELINE_DEFAULT_STAGES
        )

        def member(stage: opts.HybridStageOptions) -> Member:
            if stage.model is not None:
                return self._member(stage.model)
            name = f"{o.name}/{stage.name}"
            return Member(self._specialist_over(routes, o, name), replace(profile, name=name))

        summarizer = self._member(o.summarizer) if o.summarizer else None
        return PipelineModel(
            [Stage(s.name, member(s), s.instructions, s.context, s.review) for s in stages],
            max_rounds=o.max_rounds,
            summarizer=summarizer,
            **self._common(o),
        )

    def _cross_validate(self, o: opts.CrossValidateOptions) -> ChatModel:
        from model_orchestrator.strategies import extractors
        from model_orchestrator.strategies.cross_validate import CrossValidateModel

        first, second = self._members(o.members)
        return CrossValidateModel(
            first,
            second,
            self._member(o.tiebreaker),
            extractor=extractors.by_name(o.extractor),
            **self._common(o),
        )

    def _validated(self, o: opts.ValidatedOptions) -> ChatModel:
        from model_orchestrator.strategies import validate

        checks = [validate.builtin_validator(v) for v in o.validators]
        from model_orchestrator.strategies.validated import ValidatedModel

        return ValidatedModel(
            self._member(o.model),
            judge=self._member(o.judge) if o.judge else None,
            validators=checks,
            fallback=self._member(o.fallback) if o.fallback else None,
            **self._common(o),
        )

    def _cheapest(self, o: opts.CheapestOptions) -> ChatModel:
        from model_orchestrator.strategies.cheapest import CheapestModel
        from model_orchestrator.strategies.route import RouteModel

        # Without a router (asked for, or the learned router's file missing) price alone decides.
        if o.router == "none" or (o.router in (None, "learned") and not self._routers.learned_available()):
            return CheapestModel(self._members(o.members), **self._common(o))
        policy = self._routers.policy(o.router, strong_share=o.strong_share, threshold=o.threshold)
        return RouteModel(
            self._members(o.members),
            policy=policy,
            label="cheapest",
            tiers_by_position=False,
            **self._common(o),
        )

    def _route(self, o: opts.RouteOptions) -> ChatModel:
        from model_orchestrator.strategies.route import RouteModel

        policy = self._routers.policy(o.router, strong_share=o.strong_share, threshold=o.threshold)
        return RouteModel(self._members(o.tiers), policy=policy, label="route", **self._common(o))


def combined_profile(name: str, members: list[ModelProfile], *, parallel: bool) -> ModelProfile:
    """A strategy's profile: the priciest member (or the sum of all, when they all run), the largest
    window; unknown when any member's is unknown."""
    prices = [m.price for m in members]
    price = None
    if members and all(p is not None for p in prices):
        known = [p for p in prices if p is not None]
        if parallel:
            price = Price(sum(p.input for p in known), sum(p.output for p in known))
        else:
            price = max(known, key=lambda p: p.input + p.output)
    windows = [m.context_window for m in members]
    window = max(w for w in windows if w is not None) if members and None not in windows else None
    outputs = [m.max_output_tokens for m in members if m.max_output_tokens is not None]
    return ModelProfile(name, price, window, max(outputs) if outputs else None)


def _scorer(name: opts.ScorerName, routers: RouterFactory) -> Any:
    from model_orchestrator.strategies import scorers

    if name == "logprob":
        return scorers.LogprobScorer(mode="mean")
    if name == "logprob-min":
        return scorers.LogprobScorer(mode="min")
    if name == "agreement":
        return scorers.AgreementScorer()
    if name in ANSWER_SCORERS:
        return scorers.ValidatorScorer(_answer_validator(AnswerScorer(name)), source=name)
    if name == PromptAwareAnswerScorer.name:
        learned = routers.learned()
        aware = PromptAwareAnswerScorer(lambda prompt: learned.score(prompt).gain)
        return scorers.ValidatorScorer(_answer_validator(aware), source=name)
    return scorers.SelfReportedScorer()


def _answer_validator(
    scorer: AnswerScorer | PromptAwareAnswerScorer,
) -> Callable[[ChatRequest, Completion], Awaitable[float]]:
    """A cascade confidence from an answer check: 1 - its strong score for the (prompt, answer) pair."""

    async def validate(request: ChatRequest, completion: Completion) -> float:
        return 1.0 - scorer.strong_score(prompt_of(request), completion.text)

    return validate
