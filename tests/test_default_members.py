"""One rule for the models used when the user names none (``config.default_models``): the default chain
climbs one tier at a time; the default model is the weakest (the embedded one first); the judge the
strongest. Also finite request numbers in the Python API."""

from __future__ import annotations

import math
from collections.abc import Iterator

import pytest

from model_orchestrator.config.default_models import cycled, default_chain, default_model, strongest
from model_orchestrator.config.loader import parse_config
from model_orchestrator.config.registry import ModelInfo
from model_orchestrator.core.errors import ConfigError
from model_orchestrator.core.pricing import Price
from model_orchestrator.core.request import ChatRequest
from model_orchestrator.orchestrator import Orchestrator
from model_orchestrator.testing import FakeUpstream


def _info(name: str, tier: int | None, price: float | None, *, usable: bool = True) -> ModelInfo:
    return ModelInfo(
        name=name,
        provider="vllm",
        model_id=name,
        tier=tier,
        context_window=None,
        max_output_tokens=None,
        price=None if price is None else Price(price, price),
        capabilities=frozenset({"text"}),
        api_key_env=None,
        source="config",
        usable=usable,
        unusable_reason=None if usable else "KEY is not set",
    )


INFOS = [
    _info("pricey-0", 0, 2.0),
    _info("cheap-0", 0, 0.5),
    _info("cheap-1", 1, 1.0),
    _info("pricey-1", 1, 3.0),
    _info("keyless-2", 2, 0.1, usable=False),
    _info("pricey-3", 3, 20.0),
    _info("cheap-3", 3, 10.0),
    _info("untiered", None, 0.01),
]


def test_the_default_chain_climbs_one_model_per_tier_cheapest_first() -> None:
    assert default_chain(INFOS) == ["cheap-0", "cheap-1", "cheap-3", "untiered"]


def test_the_default_model_is_the_weakest_and_the_embedded_one_wins_ties() -> None:
    assert default_model(INFOS, None, None) == "cheap-0"
    assert default_model(INFOS, "pricey-3", None) == "pricey-3"
    tie = [_info("free-0", 0, 0.0), _info("embedded", 0, 0.0)]
    assert default_model(tie, None, "embedded") == "embedded"


def test_the_default_judge_is_the_strongest_tiered_model() -> None:
    assert strongest(INFOS) == "pricey-3"
    assert strongest([_info("a", None, 1.0), _info("b", None, 2.0)]) == "b"
    assert strongest([_info("x", 1, 1.0, usable=False)]) is None


def test_no_usable_model_is_a_clear_config_error() -> None:
    with pytest.raises(ConfigError, match=r"no usable model.*\[local\]"):
        default_chain([_info("x", 1, 1.0, usable=False)])


def test_cycled_takes_members_in_order_and_starts_over() -> None:
    assert cycled(["cheap", "mid"], 4) == ["cheap", "mid", "cheap", "mid"]
    assert cycled(["a", "b", "c"], 2) == ["a", "b"]


@pytest.fixture
def tiers() -> Iterator[dict[str, FakeUpstream]]:
    names = ("t1-cheap", "t1-pricey", "t3-cheap", "t3-pricey")
    ups = {name: FakeUpstream().start() for name in names}
    try:
        yield ups
    finally:
        for up in ups.values():
            up.stop()


def _orchestrator(ups: dict[str, FakeUpstream]) -> Orchestrator:
    prices = {"t1-cheap": 1, "t1-pricey": 2, "t3-cheap": 10, "t3-pricey": 20}
    lines = [
        f"  - {{name: {n}, provider: vllm, model: {n}, api_base: '{up.url}/v1', tier: {n[1]},"
        f" price: {{input: {prices[n]}, output: {prices[n]}}}}}"
        for n, up in ups.items()
    ]
    config = parse_config("models:\n" + "\n".join(lines) + "\nledger: {enabled: false}\n")
    return Orchestrator(config, env={})


async def test_a_cascade_without_members_climbs_from_the_embedded_model_a_tier_at_a_time(
    tiers: dict[str, FakeUpstream],
) -> None:
    """Without --chain a cascade steps up a tier at each escalation: the embedded model (tier 0), then
    the cheapest tier-1 model, then the cheapest tier-3 model; the pricier twins are never asked."""
    async with _orchestrator(tiers) as orch:
        embedded = orch.default_model
        result = await orch.complete(
            "What is 2+2?", strategy="cascade", scorer="logprob", threshold=1.0, max_tokens=8
        )
    assert embedded == "local/smollm2-135m"
    assert result.fallback_chain == (embedded, "t1-cheap", "t3-cheap")
    assert len(tiers["t1-cheap"].requests) == 1 and len(tiers["t3-cheap"].requests) == 1
    assert not tiers["t1-pricey"].requests and not tiers["t3-pricey"].requests


async def test_the_judge_and_the_single_default_follow_the_same_rule(tiers: dict[str, FakeUpstream]) -> None:
    async with _orchestrator(tiers) as orch:
        assert orch.default_model == "local/smollm2-135m"
        assert orch.default_judge() == "t3-pricey"


async def test_ensemble_size_with_members_cycles_and_reports_the_size(tiers: dict[str, FakeUpstream]) -> None:
    async with _orchestrator(tiers) as orch:
        two = await orch.complete(
            "hi", strategy="ensemble", members=["t1-cheap", "t1-pricey", "t3-cheap"], ensemble_size=2
        )
        four = await orch.complete(
            "hi", strategy="ensemble", members=["t1-cheap", "t3-cheap"], ensemble_size=4
        )
    assert two.ensemble_models == ("t1-cheap", "t1-pricey") and two.metadata["ensemble_size"] == 2
    assert four.ensemble_models == ("t1-cheap", "t3-cheap", "t1-cheap", "t3-cheap")
    assert four.metadata["ensemble_size"] == 4
    assert not tiers["t3-pricey"].requests


@pytest.mark.parametrize("field", ["temperature", "top_p", "max_cost", "deadline"])
@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_requests_refuse_nan_and_infinities(field: str, value: float) -> None:
    with pytest.raises(ConfigError, match=f"{field} must be a finite number"):
        ChatRequest.from_prompt("hi", **{field: value})


async def test_the_python_api_sends_nothing_invalid_upstream(tiers: dict[str, FakeUpstream]) -> None:
    async with _orchestrator(tiers) as orch:
        with pytest.raises(ConfigError, match="max_cost must be a finite number"):
            await orch.complete("hi", model="t1-cheap", max_cost=math.nan)
        with pytest.raises(ConfigError, match="temperature must be a finite number"):
            await orch.complete("hi", model="t1-cheap", temperature=math.nan)
        with pytest.raises(ConfigError, match="max_cost must be zero or more"):
            await orch.complete("hi", model="t1-cheap", max_cost=-1.0)
    assert not tiers["t1-cheap"].requests


@pytest.mark.parametrize("strategy", ["route", "cheapest"])
async def test_route_and_cheapest_without_members_can_reach_the_top_tier(
    tiers: dict[str, FakeUpstream], strategy: str
) -> None:
    """The old default (the three cheapest models) never left tiers 0-1; the climbing chain ends at tier 3."""
    hard = (
        "Design the architecture and migrate the database for OAuth2 authentication with refresh tokens "
        "across services, with a security review and performance optimization"
    )
    async with _orchestrator(tiers) as orch:
        result = await orch.complete(hard, strategy=strategy, router="complexity")
    assert result.model_used == "t3-cheap"
    assert len(tiers["t3-cheap"].requests) == 1 and not tiers["t3-pricey"].requests
