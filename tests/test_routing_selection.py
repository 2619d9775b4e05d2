"""Cost/capability-aware selection: the cheapest qualifying model, and every exclusion with its reason."""

from __future__ import annotations

from model_orchestrator.core.pricing import Price
from model_orchestrator.core.profile import ModelProfile
from model_orchestrator.core.request import ChatRequest, ResponseFormat
from model_orchestrator.core.request_scope import RequestScope, request_scope
from model_orchestrator.routing.policy import RoutePolicy, remaining_budget, requirements
from model_orchestrator.routing.selection import Candidate, Requirements, select_model

ALL = frozenset({"text", "vision", "tools", "json"})


def profile(
    name: str, tier: int, price: float | None, *, window: int = 100_000, caps: frozenset[str] = ALL
) -> ModelProfile:
    return ModelProfile(name, Price(price, price) if price is not None else None, window, None, tier, caps)


def reasons(selection: object) -> dict[str, str]:
    return {e.model: e.reason for e in selection.excluded}  # type: ignore[attr-defined]


def test_the_cheapest_model_of_the_needed_tier_or_better_wins() -> None:
    candidates = [
        Candidate(profile("weak", 1, 0.1)),
        Candidate(profile("pricey-strong", 3, 10.0)),
        Candidate(profile("cheap-strong", 3, 2.0)),
        Candidate(profile("mid", 2, 1.0)),
    ]
    selection = select_model(candidates, Requirements(min_tier=2, input_tokens=100))
    assert [p.name for p in selection.ranked] == ["mid", "cheap-strong", "pricey-strong"]
    assert selection.chosen is not None and selection.chosen.name == "mid"
    assert reasons(selection) == {"weak": "tier 1 is below the needed tier 2"}
    assert selection.estimates["mid"].usd == (100 + 512) * 1.0 / 1e6


def test_exclusions_name_capability_context_budget_and_health() -> None:
    candidates = [
        Candidate(profile("blind", 1, 0.1, caps=frozenset({"text"}))),
        Candidate(profile("small", 1, 0.1, window=1000)),
        Candidate(profile("pricey", 1, 1000.0)),
        Candidate(profile("unpriced", 1, None)),
        Candidate(profile("down", 1, 0.1), unavailable="down@1: circuit open"),
        Candidate(profile("fine", 1, 0.2)),
    ]
    needs = Requirements(capabilities=frozenset({"vision"}), input_tokens=800, output_tokens=400, budget=0.01)
    selection = select_model(candidates, needs)
    why = reasons(selection)
    assert why["blind"] == "lacks vision"
    assert why["small"].startswith("needs about 1200 tokens") and "context window is 1000" in why["small"]
    assert why["pricey"].startswith("estimated cost $1.20 exceeds the remaining budget $0.01")
    assert why["unpriced"].startswith("price unknown")
    assert why["down"] == "unavailable: down@1: circuit open"
    assert [p.name for p in selection.ranked] == ["fine"]


def test_long_prompts_need_long_context_and_unknown_tiers_count_as_zero() -> None:
    short_window = profile("short", 3, 1.0, caps=ALL)
    long_window = profile("long", 3, 2.0, window=1_000_000, caps=ALL | {"long_context"})
    unknown = ModelProfile("strategy")
    selection = select_model(
        [Candidate(short_window), Candidate(long_window), Candidate(unknown)],
        Requirements(min_tier=1, input_tokens=150_000),
    )
    why = reasons(selection)
    assert why["short"].startswith("lacks long_context; needs about 150512 tokens")
    assert why["strategy"] == "tier 0 is below the needed tier 1"
    assert [p.name for p in selection.ranked] == ["long"]


def test_requirements_follow_the_request_and_its_budget() -> None:
    request = ChatRequest.from_prompt("give me JSON", max_tokens=50, response_format=ResponseFormat.JSON)
    needs = requirements(request, 2)
    assert needs.min_tier == 2 and needs.output_tokens == 50 and "json" in needs.capabilities
    scope = RequestScope("r", max_cost=1.0, spent=0.25)
    with request_scope(scope):
        assert remaining_budget(request.with_options(max_cost=0.5)) == 0.25


class FixedRouter:
    name = "fixed"

    def __init__(self, score: float) -> None:
        self.score = score

    def strong_score(self, prompt: str) -> float:
        return self.score


def test_the_policy_routes_strong_prompts_to_the_top_tier_and_keeps_the_rest_as_last_resort() -> None:
    candidates = [
        profile("weak", 1, 0.1),
        profile("strong", 3, 5.0),
        profile("blind", 3, 1.0, caps=frozenset({"text"})),
    ]
    request = ChatRequest.from_prompt("hard question", response_format=ResponseFormat.JSON)
    choice = RoutePolicy(FixedRouter(0.9), threshold=0.5).choose(request, candidates)
    assert choice.order == ("strong", "weak")
    assert choice.skipped == (("blind", "lacks json"),)
    assert (choice.tier, choice.strong_score, choice.threshold) == (3, 0.9, 0.5)
    assert "at or above the threshold" in choice.reason
    weak = RoutePolicy(FixedRouter(0.1), threshold=0.5).choose(request, candidates)
    assert weak.order == ("weak", "strong") and weak.tier == 1
