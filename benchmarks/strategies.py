"""Strategy costs: ensemble and race wall time over the ideal, and each strategy's own overhead.

1. Wall time through FakeUpstream (real HTTP, three members answering after 50, 150 and 300 ms):
   ensemble over the slowest member (ideal 1.0: fully parallel), race and hedge over the fastest.
2. Overhead: CPU µs per call of each strategy over in-process members (no network), minus calling one
   member directly; the members are ``FunctionModel``s inside ``ObservedModel`` as in production.

Usage: python benchmarks/strategies.py [--calls N]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable

from model_orchestrator.core.clock import SystemClock
from model_orchestrator.core.events import EventBus
from model_orchestrator.core.model import ChatModel
from model_orchestrator.core.observed import ObservedModel
from model_orchestrator.core.pricing import Price
from model_orchestrator.core.profile import ModelProfile
from model_orchestrator.core.request import ChatRequest
from model_orchestrator.core.request_scope import RequestScope, request_scope
from model_orchestrator.strategies.aggregators import VoteAggregator
from model_orchestrator.strategies.cascade import CascadeModel
from model_orchestrator.strategies.ensemble import EnsembleModel
from model_orchestrator.strategies.extractors import short_text
from model_orchestrator.strategies.fallback import FallbackModel
from model_orchestrator.strategies.member import Member
from model_orchestrator.strategies.pipeline import PipelineModel, Stage
from model_orchestrator.strategies.race import HedgeModel, RaceModel
from model_orchestrator.strategies.scorers import ValidatorScorer
from model_orchestrator.testing import FakeUpstream, FunctionModel, Reply

LATENCIES = (0.05, 0.15, 0.30)
CLOCK, BUS = SystemClock(), EventBus()
REQUEST = ChatRequest.from_prompt("What is the capital of France?")


def observed(model: ChatModel, name: str) -> Member:
    price = Price(1.0, 2.0)
    wrapped = ObservedModel(
        model, name=name, provider="bench", deployment=f"{name}@bench", price=price, bus=BUS
    )
    return Member(wrapped, ModelProfile(name, price, 128_000))


async def wall_times(rounds: int) -> dict[str, float]:
    from model_orchestrator.providers.http import HttpTransport
    from model_orchestrator.providers.openai_compatible import OpenAICompatibleModel

    ups = [FakeUpstream(default_reply=Reply("Paris", latency=lat)) for lat in LATENCIES]
    for up in ups:
        up.start()
    transport = HttpTransport()
    try:
        members = [
            observed(
                OpenAICompatibleModel(
                    name=f"m{i}", model_id="m", api_base=up.openai_base, api_key=None, transport=transport
                ),
                f"m{i}",
            )
            for i, up in enumerate(ups)
        ]
        slow_first = list(reversed(members))
        strategies: dict[str, ChatModel] = {
            "ensemble": EnsembleModel(members, aggregator=VoteAggregator(short_text()), clock=CLOCK, bus=BUS),
            "race": RaceModel(slow_first, clock=CLOCK, bus=BUS),
            "hedge(0.1s)": HedgeModel(slow_first[0], [members[0]], delay=0.1, clock=CLOCK, bus=BUS),
        }
        results = {}
        for label, strategy in strategies.items():
            times = []
            for _ in range(rounds):
                started = time.perf_counter()
                with request_scope(RequestScope("bench")):
                    await strategy.complete(REQUEST)
                times.append(time.perf_counter() - started)
            results[label] = statistics.median(times)
    finally:
        await transport.aclose()
        for up in ups:
            up.stop()
    return results


def in_process_members(n: int) -> list[Member]:
    return [observed(FunctionModel(lambda _r: "Paris", name=f"f{i}"), f"f{i}") for i in range(n)]


async def cpu_per_call(model_call: Callable[[], Awaitable[object]], calls: int) -> float:
    for _ in range(100):
        await model_call()
    started = time.process_time()
    for _ in range(calls):
        await model_call()
    return (time.process_time() - started) / calls * 1e6


async def overheads(calls: int) -> dict[str, float]:
    members = in_process_members(3)

    async def high(_request: ChatRequest, _completion: object) -> float:
        return 0.99

    stages = [
        Stage(name, member, "do your part") for name, member in zip(("plan", "code"), members, strict=False)
    ]
    strategies: dict[str, ChatModel] = {
        "single member": members[0].model,
        "fallback (first answers)": FallbackModel(members, clock=CLOCK, bus=BUS),
        "cascade (first accepted)": CascadeModel(members, scorer=ValidatorScorer(high), clock=CLOCK, bus=BUS),
        "ensemble of 3 (vote)": EnsembleModel(
            members, aggregator=VoteAggregator(short_text()), clock=CLOCK, bus=BUS
        ),
        "race of 3": RaceModel(members, clock=CLOCK, bus=BUS),
        "pipeline of 2 stages": PipelineModel(stages, clock=CLOCK, bus=BUS),
    }
    results = {}
    for label, strategy in strategies.items():

        async def call(strategy: ChatModel = strategy) -> object:
            with request_scope(RequestScope("bench")):
                return await strategy.complete(REQUEST)

        results[label] = await cpu_per_call(call, calls)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=10)
    args = parser.parse_args()
    walls = asyncio.run(wall_times(args.rounds))
    fastest, slowest = min(LATENCIES), max(LATENCIES)
    print(f"wall time through FakeUpstream, members at {LATENCIES} s (median of {args.rounds})")
    print(f"  ensemble      {walls['ensemble']:.3f} s = {walls['ensemble'] / slowest:.2f} x slowest member")
    print(f"  race          {walls['race']:.3f} s = {walls['race'] / fastest:.2f} x fastest member")
    print(
        f"  hedge(0.1s)   {walls['hedge(0.1s)']:.3f} s (primary 0.30 s, backup 0.05 s after 0.1 s: "
        f"ideal 0.15 s = {walls['hedge(0.1s)'] / 0.15:.2f} x)"
    )
    costs = asyncio.run(overheads(args.calls))
    base = costs["single member"]
    print(f"\nCPU µs per call over in-process members ({args.calls} calls)")
    for label, value in costs.items():
        extra = "" if label == "single member" else f"  (+{value - base:.0f} over one member)"
        print(f"  {label:28} {value:8.0f}{extra}")


if __name__ == "__main__":
    main()
