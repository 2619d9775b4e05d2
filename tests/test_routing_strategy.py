"""Routing inside strategies and the façade: ``cheapest`` and ``route`` use the router and explain the
decision; ``Orchestrator.route`` gives seed 003's decision and leaves out unhealthy models."""

from __future__ import annotations

import pytest

from model_orchestrator.config.loader import parse_config
from model_orchestrator.core.errors import AllModelsFailedError, OrchestratorError, ServerError
from model_orchestrator.core.events import EventBus, RecordingSink, RoutingDecided
from model_orchestrator.core.pricing import Price
from model_orchestrator.core.profile import ModelProfile
from model_orchestrator.core.request import ChatRequest
from model_orchestrator.orchestrator import Orchestrator
from model_orchestrator.routing.policy import RoutePolicy
from model_orchestrator.strategies.member import Member
from model_orchestrator.strategies.route import RouteModel
from model_orchestrator.testing import FakeClock, FakeUpstream, Fault, ScriptedModel

ENV = {"OPENAI_API_KEY": "k", "ANTHROPIC_API_KEY": "k"}
CONFIG = """
models:
  - {name: cheap, provider: openai, model: c, api_base: 'http://127.0.0.1:9/v1',
     price: {input: 1, output: 1}, tier: 1}
  - {name: strong, provider: openai, model: s, api_base: 'http://127.0.0.1:9/v1',
     price: {input: 10, output: 10}, tier: 3}
ledger: {enabled: false}
"""


class FixedRouter:
    name = "fixed"

    def __init__(self, score: float) -> None:
        self.score = score

    def strong_score(self, prompt: str) -> float:
        return self.score


def members(weak: ScriptedModel, strong: ScriptedModel) -> list[Member]:
    return [
        Member(weak, ModelProfile("weak", Price(1, 1), tier=1)),
        Member(strong, ModelProfile("strong", Price(10, 10), tier=3)),
    ]


def route_model(
    score: float, weak: ScriptedModel, strong: ScriptedModel, bus: EventBus, **options: object
) -> RouteModel:
    policy = RoutePolicy(FixedRouter(score), threshold=0.5)
    return RouteModel(members(weak, strong), policy=policy, clock=FakeClock(), bus=bus, **options)  # type: ignore[arg-type]


async def test_a_prompt_scoring_high_goes_to_the_strong_tier_and_says_why() -> None:
    bus, sink = EventBus(), RecordingSink()
    bus.subscribe(sink)
    weak, strong = ScriptedModel([], name="weak"), ScriptedModel(["from strong"], name="strong")
    completion = await route_model(0.8, weak, strong, bus, name="smart").complete(
        ChatRequest.from_prompt("hard", request_id="r1")
    )
    assert completion.text == "from strong" and weak.requests == []
    explanation = completion.explanation
    assert explanation is not None and explanation.strategy == "route" and explanation.chosen == "strong"
    routing = dict(explanation.facts)["routing"]
    assert routing["router"] == "fixed" and routing["strong_score"] == 0.8 and routing["threshold"] == 0.5  # type: ignore[index]
    assert "at or above the threshold" in (explanation.reason or "")
    (event,) = sink.of_type(RoutingDecided)
    assert isinstance(event, RoutingDecided)
    assert (event.request_id, event.strategy, event.chosen, event.tier) == ("r1", "smart", "strong", 1)


async def test_a_low_score_goes_weak_and_a_failure_falls_back_along_the_order() -> None:
    weak = ScriptedModel([ServerError("boom", status_code=500)], name="weak")
    strong = ScriptedModel(["rescued"], name="strong")
    completion = await route_model(0.1, weak, strong, EventBus()).complete(ChatRequest.from_prompt("easy"))
    assert completion.text == "rescued" and len(weak.requests) == 1
    assert completion.explanation is not None
    assert [s.outcome for s in completion.explanation.steps] == ["error", "ok"]


async def test_streaming_carries_the_routing_explanation() -> None:
    weak, strong = ScriptedModel(["streamed answer"], name="weak"), ScriptedModel([], name="strong")
    deltas = [
        d async for d in route_model(0.1, weak, strong, EventBus()).stream(ChatRequest.from_prompt("x"))
    ]
    assert "".join(d.text for d in deltas) == "streamed answer"
    last = deltas[-1].explanation
    assert last is not None and last.strategy == "route" and "routing" in dict(last.facts)


async def test_nothing_qualifying_is_an_error_naming_the_reasons() -> None:
    policy = RoutePolicy(FixedRouter(0.9), threshold=0.5)
    narrow = Member(ScriptedModel([], name="n"), ModelProfile("n", Price(1, 1), context_window=10, tier=1))
    model = RouteModel([narrow], policy=policy, clock=FakeClock(), bus=EventBus())
    with pytest.raises(AllModelsFailedError, match="context window is 10"):
        await model.complete(ChatRequest.from_prompt("a prompt far too long for ten tokens " * 5))


def test_cheapest_and_route_strategies_are_built_with_the_learned_router() -> None:
    config = parse_config(
        CONFIG
        + "strategies:\n"
        + "  - {name: thrifty, type: cheapest, members: [cheap, strong], strong_share: 0.2}\n"
        + "  - {name: smart, type: route, tiers: [cheap, strong], router: complexity}\n"
        + "  - {name: plain, type: cheapest, members: [cheap, strong], router: none}\n",
        source="test",
    )
    orch = Orchestrator(config, env=ENV)

    def built(name: str) -> str:
        model = orch.model(name)
        # The façade wraps named strategies to fit each request's context; the strategy is inside.
        if type(model).__name__ == "ContextFitModel":
            model = model.inner  # type: ignore[attr-defined]
        return type(model).__name__

    assert built("thrifty") == "RouteModel"
    assert built("smart") == "RouteModel"
    assert built("plain") == "CheapestModel"


async def test_the_facade_routes_a_task_in_the_seed_shape() -> None:
    orch = Orchestrator(parse_config(CONFIG, source="test"), env=ENV)
    sink = RecordingSink()
    orch.events.subscribe(sink)
    context = {
        "files_count": 3,
        "requires_tests": True,
        "external_apis": ["Auth0"],
        "subsystems": ["api", "auth"],
    }
    decision = await orch.route("Add user authentication to API endpoint", context)
    data = decision.to_dict()
    assert list(data)[:6] == [
        "model",
        "complexity_score",
        "complexity_factors",
        "reason",
        "confidence",
        "estimated_cost",
    ]
    assert data["model"] == "cheap" and data["router"] == "complexity" and data["tier"] == 1
    assert set(data["complexity_factors"]) == {  # type: ignore[arg-type]
        "length",
        "keywords",
        "files",
        "tests",
        "external_apis",
        "subsystems",
        "task_nature",
    }
    assert 0.5 <= decision.confidence <= 1.0
    assert decision.estimated_cost is not None and decision.estimated_cost.usd is not None
    assert sink.of_type(RoutingDecided)
    bare = await orch.route("What is the capital of France?")
    assert bare.router == "learned" and bare.strong_score is not None and bare.threshold is not None
    await orch.aclose()


async def test_the_facade_leaves_out_models_whose_circuit_is_open() -> None:
    with FakeUpstream() as upstream:
        config = parse_config(
            "models:\n"
            f"  - {{name: cheap, provider: openai, model: c, api_base: '{upstream.openai_base}',"
            " price: {input: 1, output: 1}, tier: 1}\n"
            f"  - {{name: strong, provider: openai, model: s, api_base: '{upstream.openai_base}',"
            " price: {input: 10, output: 10}, tier: 3}\n"
            "ledger: {enabled: false}\n"
            "resilience: {retry: {max_attempts: 1}, breaker: {failure_threshold: 1}}\n",
            source="test",
        )
        orch = Orchestrator(config, env=ENV)
        upstream.script(Fault.server_error(500))
        with pytest.raises(OrchestratorError):
            await orch.complete("hi", model="cheap")
        decision = await orch.route("Fix typo in README", router="complexity")
        await orch.aclose()
    assert decision.model == "strong"
    assert any(e.model == "cheap" and "circuit open" in e.reason for e in decision.excluded)
