"""Chaos run: a fallback chain of three FakeUpstream deployments, two of them misbehaving, under load.

Deployment ``flaky`` answers with bursts of 429 (with retry-after), 503s, connection resets and
malformed JSON, and has a configured rpm; ``slow`` hangs past its timeout and truncates; ``steady`` is
healthy. ``run_chaos`` sends REQUESTS requests at CONCURRENCY through ``fallback:flaky,slow,steady`` and
returns what happened, with every upstream's record of what it received (the tests assert on those).

``run_rate_limited_fallback`` is the second case: through the gateway, ``fallback a,b,c`` where ``a``
answers every call with 429 and ``retry-after: 3``. A 429 from a member with somewhere else to go moves
on at once (the cooldown keeps later requests off ``a``), so p99 stays near p50 instead of ~6 s.

Usage: python benchmarks/chaos.py [--requests 1000] [--concurrency 50] [--case chain|rate-limited|both]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import time
from dataclasses import dataclass, field
from typing import Any

import openai

from model_orchestrator.config.loader import parse_config
from model_orchestrator.core.errors import OrchestratorError
from model_orchestrator.core.events import (
    AttemptFailed,
    AttemptSucceeded,
    CircuitClosed,
    CircuitOpened,
    Event,
    RecordingSink,
)
from model_orchestrator.gateway import Gateway, GatewaySettings
from model_orchestrator.orchestrator import Orchestrator
from model_orchestrator.testing import FakeUpstream, Fault, RecordedRequest, Reply

FLAKY_RPM = 40
RETRY_AFTER = 1.0
SLOW_TIMEOUT = 0.25


@dataclass
class ChaosOutcome:
    """What a chaos run did: per-request results and every upstream's record."""

    requests: int
    succeeded: int
    latencies: list[float]
    attempts: list[int]
    failed_calls: int
    total_calls: int
    wall: float
    records: dict[str, list[RecordedRequest]]
    faults: dict[str, list[tuple[float, Any]]] = field(default_factory=dict)
    events: list[Event] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def success_rate(self) -> float:
        return self.succeeded / self.requests

    def figures(self) -> dict[str, float]:
        """The printed figures."""
        ordered = sorted(self.latencies)
        return {
            "requests": self.requests,
            "success_rate": self.success_rate,
            "p50_ms": statistics.median(ordered) * 1000,
            "p99_ms": ordered[int(len(ordered) * 0.99) - 1] * 1000,
            "attempts_per_request": statistics.mean(self.attempts),
            "upstream_calls": self.total_calls,
            "wasted_calls": self.failed_calls,
            "wall_s": self.wall,
            "breaker_opened": sum(isinstance(e, CircuitOpened) for e in self.events),
            "breaker_closed": sum(isinstance(e, CircuitClosed) for e in self.events),
        }


def flaky_script(rng: random.Random, n: int) -> list[Reply | Fault]:
    """Bursts of trouble with healthy stretches between them; it opens with a burst of 429s."""
    items: list[Reply | Fault] = [Fault.rate_limited(retry_after=RETRY_AFTER) for _ in range(3)]
    while len(items) < n:
        burst = rng.choice(["429", "503", "reset", "malformed", "ok"])
        size = rng.randint(3, 12)
        for _ in range(size):
            if burst == "429":
                items.append(Fault.rate_limited(retry_after=RETRY_AFTER))
            elif burst == "503":
                items.append(Fault.server_error(503))
            elif burst == "reset":
                items.append(Fault.reset())
            elif burst == "malformed":
                items.append(Fault.malformed_json())
            else:
                items.append(Reply("flaky ok", latency=0.005))
    return items[:n]


def slow_script(rng: random.Random, n: int) -> list[Reply | Fault]:
    """Mostly hangs past the deployment's timeout, some truncated answers, a few good ones."""
    choices: list[Reply | Fault] = [
        Fault.hang(2.0),
        Fault.hang(2.0),
        Fault.truncated_stream(after_chunks=1),
        Fault.reset(),
        Reply("slow ok", latency=0.01),
    ]
    return [rng.choice(choices) for _ in range(n)]


def chaos_config(flaky: FakeUpstream, slow: FakeUpstream, steady: FakeUpstream) -> str:
    """Three deployments and the fallback chain over them; short timeouts so hangs cost little."""
    return f"""
models:
  - {{name: flaky, provider: openai, model: m, api_base: "{flaky.openai_base}", rpm: {FLAKY_RPM},
      price: {{input: 1, output: 1}}}}
  - {{name: slow, provider: openai, model: m, api_base: "{slow.openai_base}", timeout: {SLOW_TIMEOUT},
      price: {{input: 1, output: 1}}}}
  - {{name: steady, provider: openai, model: m, api_base: "{steady.openai_base}",
      price: {{input: 1, output: 1}}}}
strategies:
  - {{name: chain, type: fallback, chain: [flaky, slow, steady]}}
resilience:
  retry: {{max_attempts: 2, base_delay: 0.02, max_delay: 0.1, max_retry_after: 0.05}}
  breaker: {{failure_threshold: 5, reset_timeout: 0.5}}
  rate_limit: {{on_limit: skip}}
  max_attempts_per_request: 8
"""


async def run_chaos(requests: int = 1000, concurrency: int = 50, seed: int = 7) -> ChaosOutcome:
    """Send ``requests`` through the chain and collect the outcome."""
    rng = random.Random(seed)
    with FakeUpstream() as flaky, FakeUpstream() as slow, FakeUpstream() as steady:
        flaky.script(*flaky_script(rng, requests * 2))
        slow.script(*slow_script(rng, requests * 2))
        sink = RecordingSink()
        orch = Orchestrator(parse_config(chaos_config(flaky, slow, steady)), env={})
        orch.events.subscribe(sink)
        outcome = await _drive(orch, requests, concurrency)
        await orch.aclose()
        outcome.events = sink.events
        outcome.records = {"flaky": flaky.requests, "slow": slow.requests, "steady": steady.requests}
    outcome.total_calls = sum(isinstance(e, AttemptSucceeded | AttemptFailed) for e in outcome.events)
    outcome.failed_calls = sum(isinstance(e, AttemptFailed) for e in outcome.events)
    return outcome


async def _drive(orch: Orchestrator, requests: int, concurrency: int) -> ChaosOutcome:
    gate = asyncio.Semaphore(concurrency)
    latencies: list[float] = []
    attempts: list[int] = []
    errors: list[str] = []

    async def one(i: int) -> None:
        async with gate:
            started = time.perf_counter()
            try:
                result = await orch.complete(f"question {i}", model="chain", timeout=10.0)
            except OrchestratorError as exc:
                errors.append(f"{type(exc).__name__}: {exc}")
                return
            latencies.append(time.perf_counter() - started)
            attempts.append(int(result.metadata.get("attempts", 0)))  # type: ignore[call-overload]

    wall = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(requests)))
    return ChaosOutcome(
        requests, len(latencies), latencies, attempts, 0, 0, time.perf_counter() - wall, {}, errors=errors
    )


LIMITED_RETRY_AFTER = 3.0


@dataclass
class RateLimitedOutcome:
    """What the rate-limited fallback run did: latencies (seconds), answers, events, upstream records."""

    latencies: list[float]
    answered_by: dict[str, int]
    events: list[Event]
    records: dict[str, list[RecordedRequest]]
    errors: list[str]

    def figures(self) -> dict[str, float]:
        """The printed figures."""
        ordered = sorted(self.latencies)
        return {
            "requests": len(self.latencies) + len(self.errors),
            "p50_ms": statistics.median(ordered) * 1000,
            "p99_ms": ordered[max(int(len(ordered) * 0.99) - 1, 0)] * 1000,
            "max_ms": ordered[-1] * 1000,
        }


def rate_limited_config(a: FakeUpstream, b: FakeUpstream, c: FakeUpstream) -> str:
    """Three models and ``fallback a,b,c`` with every resilience setting at its default."""
    models = "".join(
        f"  - {{name: {name}, provider: openai, model: m, api_base: '{up.openai_base}'}}\n"
        for name, up in (("a", a), ("b", b), ("c", c))
    )
    return f"models:\n{models}strategies:\n  - {{name: abc, type: fallback, chain: [a, b, c]}}\n"


async def run_rate_limited_fallback(requests: int = 1000, concurrency: int = 50) -> RateLimitedOutcome:
    """Send ``requests`` through the gateway to ``abc`` while ``a`` answers 429 (retry-after 3 s)."""
    with FakeUpstream() as a, FakeUpstream() as b, FakeUpstream() as c:
        a.script(*[Fault.rate_limited(retry_after=LIMITED_RETRY_AFTER)] * (requests + 1))
        b.default_reply, c.default_reply = Reply("from b"), Reply("from c")
        orch = Orchestrator(parse_config(rate_limited_config(a, b, c)), env={})
        sink = RecordingSink()
        orch.events.subscribe(sink)
        gateway = Gateway(orch, GatewaySettings(port=0, auth=False))
        await gateway.start()
        client = openai.AsyncOpenAI(base_url=f"{gateway.url}/v1", api_key="none", max_retries=0)
        try:
            latencies, answered_by, errors = await _drive_gateway(client, requests, concurrency)
        finally:
            await client.close()
            await gateway.stop()
        records = {"a": a.requests, "b": b.requests, "c": c.requests}
    return RateLimitedOutcome(latencies, answered_by, sink.events, records, errors)


async def _drive_gateway(
    client: openai.AsyncOpenAI, requests: int, concurrency: int
) -> tuple[list[float], dict[str, int], list[str]]:
    gate = asyncio.Semaphore(concurrency)
    latencies: list[float] = []
    answered_by: dict[str, int] = {}
    errors: list[str] = []

    async def one(i: int) -> None:
        async with gate:
            started = time.perf_counter()
            try:
                reply = await client.chat.completions.create(
                    model="abc", messages=[{"role": "user", "content": f"question {i}"}]
                )
            except openai.APIError as exc:
                errors.append(f"{type(exc).__name__}: {exc}")
                return
            latencies.append(time.perf_counter() - started)
            text = reply.choices[0].message.content or ""
            answered_by[text] = answered_by.get(text, 0) + 1

    await asyncio.gather(*(one(i) for i in range(requests)))
    return latencies, answered_by, errors


def _print(figures: dict[str, float]) -> None:
    for key, value in figures.items():
        print(f"  {key:26} {value:10.3f}" if isinstance(value, float) else f"  {key:26} {value:10}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--case", choices=["chain", "rate-limited", "both"], default="both")
    args = parser.parse_args()
    if args.case in ("chain", "both"):
        outcome = asyncio.run(run_chaos(args.requests, args.concurrency))
        chain = "fallback:flaky,slow,steady"
        print(f"chaos: {args.requests} requests at concurrency {args.concurrency} through {chain}")
        _print(outcome.figures())
        calls = {name: len(records) for name, records in outcome.records.items()}
        print(f"  {'upstream requests':26} {calls}")
        if outcome.errors:
            print(f"  first error: {outcome.errors[0]}")
    if args.case in ("rate-limited", "both"):
        limited = asyncio.run(run_rate_limited_fallback(args.requests, args.concurrency))
        print(
            f"rate-limited fallback: {args.requests} requests at concurrency {args.concurrency} through "
            f"the gateway to fallback a,b,c (a: 429, retry-after {LIMITED_RETRY_AFTER:g}s)"
        )
        _print(limited.figures())
        print(f"  {'upstream requests':26} { {n: len(r) for n, r in limited.records.items()} }")
        print(f"  {'answered by':26} {limited.answered_by}")
        if limited.errors:
            print(f"  first error: {limited.errors[0]}")


if __name__ == "__main__":
    main()
