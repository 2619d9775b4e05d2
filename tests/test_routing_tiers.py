"""Routing among N tiers (issue 16): a wanted mix (``tier_shares``) or a wanted average price
(``target_cost_per_1k``) is met by the realised mix on real prompts; the choice is explained for every
tier; old two-tier keys keep their meaning; the CLI routes and answers through the chosen tier."""

from __future__ import annotations

import json
import random
from collections import Counter
from pathlib import Path

import pytest

from model_orchestrator.config.routers import RouterFactory
from model_orchestrator.config.routing import RoutingConfig
from model_orchestrator.core.errors import ConfigError
from model_orchestrator.core.pricing import Price
from model_orchestrator.core.profile import ModelProfile
from model_orchestrator.core.request import ChatRequest
from model_orchestrator.routing.dataset import load_examples
from model_orchestrator.routing.learned import LearnedRouter
from model_orchestrator.routing.tiers import TierPlan, price_per_1k
from model_orchestrator.testing import FakeUpstream, Reply
from tests.cli_helpers import run_cli
from tests.routing_data import DEV_FILES

UNIFORM = [i / 100 for i in range(101)]
PRICES = {0: 0.0001, 1: 0.001, 2: 0.004, 3: 0.02}


def _dev_prompts(count: int) -> list[str]:
    return random.Random(1).sample([e.prompt for f in DEV_FILES for e in load_examples(f)], count)


def test_shares_split_the_score_range_in_tier_order() -> None:
    plan = TierPlan(UNIFORM, shares={0: 0.5, 1: 0.3, 3: 0.2})
    tiers = [plan.choose(s / 1000, dict.fromkeys((0, 1, 3))).tier for s in range(1000)]
    counts = Counter(tiers)
    assert tiers == sorted(tiers)
    assert counts[0] == pytest.approx(500, abs=10) and counts[1] == pytest.approx(300, abs=10)
    assert counts[3] == pytest.approx(200, abs=10)


def test_a_share_for_a_missing_tier_goes_to_the_next_tier_up() -> None:
    plan = TierPlan(UNIFORM, shares={0: 0.5, 2: 0.5})
    tiers = Counter(plan.choose(s / 100, dict.fromkeys((0, 3))).tier for s in range(100))
    assert tiers[3] == pytest.approx(50, abs=2)


def test_a_cost_target_is_met_on_average_and_climbs_with_the_score() -> None:
    for target in (0.0005, 0.002, 0.008):
        plan = TierPlan(UNIFORM, target_cost_per_1k=target)
        assert plan.expected_cost_per_1k(PRICES) == pytest.approx(target, rel=0.1)
        tiers = [plan.choose(s / 100, dict(PRICES)).tier for s in range(101)]
        assert tiers == sorted(tiers) and len(set(tiers)) >= 2
    generous = TierPlan(UNIFORM, target_cost_per_1k=1.0)
    assert generous.choose(0.9, dict(PRICES)).tier == 3
    frugal = TierPlan(UNIFORM, target_cost_per_1k=0.00001)
    assert frugal.choose(0.99, dict(PRICES)).tier == 0


def test_the_realised_mix_on_dev_prompts_matches_the_plan() -> None:
    """Calibrated on the training distribution, the plan holds on prompts (the generic router's scores
    are not fitted to them, so in-sample prompts are fair here)."""
    generic = LearnedRouter.load().generic()
    scores = [generic.strong_score(p) for p in _dev_prompts(600)]
    by_share = TierPlan(generic.score_quantiles, shares={0: 0.6, 1: 0.3, 3: 0.1})
    mix = Counter(by_share.choose(s, dict.fromkeys((0, 1, 3))).tier for s in scores)
    assert mix[0] / 600 == pytest.approx(0.6, abs=0.05) and mix[3] / 600 == pytest.approx(0.1, abs=0.04)
    by_cost = TierPlan(generic.score_quantiles, target_cost_per_1k=0.003)
    paid = [PRICES[by_cost.choose(s, dict(PRICES)).tier] for s in scores]
    assert sum(paid) / len(paid) == pytest.approx(0.003, rel=0.15)


def test_config_keeps_the_old_keys_and_refuses_two_plans() -> None:
    old = RouterFactory(RoutingConfig(strong_share=0.2)).policy()
    assert old.plan is None and old.threshold == LearnedRouter.load().threshold_for_share(0.2)
    planned = RouterFactory(RoutingConfig(target_cost_per_1k=0.002)).policy()
    assert planned.plan is not None
    assert RouterFactory(RoutingConfig(target_cost_per_1k=0.002)).policy(strong_share=0.5).plan is None
    with pytest.raises(ValueError, match="not both"):
        RoutingConfig(tier_shares={0: 1.0}, target_cost_per_1k=0.002)
    with pytest.raises(ConfigError, match="learned or generic"):
        RouterFactory(RoutingConfig(router="length", tier_shares={0: 1.0})).policy()


def test_the_policy_explains_every_tier() -> None:
    policy = RouterFactory(RoutingConfig(target_cost_per_1k=0.004)).policy()
    profiles = [ModelProfile(f"m{t}", Price(1000 * p, 1000 * p), 128_000, None, t) for t, p in PRICES.items()]
    choice = policy.choose(ChatRequest.from_prompt("What is the capital of France?"), profiles)
    rows = dict(choice.facts)["tiers"]
    assert isinstance(rows, list) and [r["tier"] for r in rows] == [0, 1, 2, 3]
    assert sum(r["chosen"] for r in rows) == 1 and choice.order[0] == f"m{choice.tier}"
    assert choice.threshold is not None and choice.strong_score is not None
    # The reported boundary is where the plan really changes its mind.
    plan, prices = policy.plan, {t: p for t, p in PRICES.items()}
    assert plan is not None
    below = plan.choose(choice.threshold - 1e-6, prices).tier
    above = plan.choose(choice.threshold + 1e-6, prices).tier
    assert below != above and choice.tier in (below, above)
    assert rows[0]["price_per_1k"] == pytest.approx(PRICES[0])
    two_tier = RouterFactory(RoutingConfig()).policy().choose(ChatRequest.from_prompt("Hi"), profiles)
    listed = dict(two_tier.facts)["tiers"]
    assert isinstance(listed, list) and [r["value"] for r in listed] == [None] * 4
    assert [r["chosen"] for r in listed].count(True) == 1
    assert price_per_1k(Price(1.0, 3.0)) == pytest.approx(0.002)


@pytest.mark.subprocess
def test_route_and_run_use_all_tiers_from_the_cli(tmp_path: Path) -> None:
    with FakeUpstream() as low, FakeUpstream() as middle, FakeUpstream() as top:
        models = "".join(
            f"  - {{name: {name}, provider: openai, model: {name}, api_base: '{up.openai_base}',"
            f" price: {{input: {price}, output: {price}}}, tier: {tier}}}\n"
            for name, up, price, tier in (("low", low, 0.1, 0), ("middle", middle, 1, 1), ("top", top, 20, 3))
        )
        config = tmp_path / "orchestrator.yaml"
        config.write_text(
            f"models:\n{models}routing: {{tier_shares: {{1: 1.0}}}}\nledger: {{enabled: false}}\n"
        )
        middle.script(Reply("from the middle"))
        run = run_cli("--config", str(config), "run", "-p", "Hello there", "--strategy", "cheapest", "--json")
        route = run_cli("--config", str(config), "route", "-p", "Hello there", "--json")
        human = run_cli("--config", str(config), "route", "-p", "Hello there")
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout)["model_used"] == "middle"
    decision = json.loads(route.stdout)
    assert decision["model"] == "middle" and [r["tier"] for r in decision["tiers"]] == [0, 1, 3]
    assert human.returncode == 0 and "-> tier 1" in human.stdout and "tier 3" in human.stdout
