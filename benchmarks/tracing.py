"""What telemetry costs per request: tracing off (the default), tracing on, metrics on.

1. Sinks alone: the events of one recorded request (single model; fallback after one failure) are replayed
   into an event bus with: no sink; the default subscription (structured-log sink, logger disabled);
   + tracing to an in-memory exporter (spans exported as they end); + tracing through the batching
   processor the OTLP setup uses (no-op exporter: the network is not counted); + metrics. CPU µs/request.
2. End to end: ``Orchestrator.complete`` against a FakeUpstream in another process, tracing off vs on
   (in-memory exporter), runs interleaved; CPU µs/call.
3. The import time tracing adds when configured (OpenTelemetry SDK + OTLP/HTTP exporter).

Usage: python benchmarks/tracing.py [--calls N] [--replays N]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from model_orchestrator import Orchestrator
from model_orchestrator.config.loader import parse_config
from model_orchestrator.core.events import Event, EventBus, RecordingSink
from model_orchestrator.telemetry.metrics import MetricsSink
from model_orchestrator.telemetry.setup import Telemetry, TracingSettings, tracing_sink
from model_orchestrator.testing import FakeClock, FakeUpstream, Fault, Reply

HERE = Path(__file__).resolve().parent


class NullExporter(SpanExporter):
    """Accepts every batch and drops it: the batching processor's cost without a network."""

    def export(self, spans: Sequence[object]) -> SpanExportResult:  # type: ignore[override]
        return SpanExportResult.SUCCESS


def config_for(base: str) -> str:
    rows = "\n".join(
        f"  - {{name: {n}, provider: openai, model: bench, api_base: '{base}', api_key_env: K,"
        " price: {input: 1, output: 2}}"
        for n in ("a", "b")
    )
    return f"models:\n{rows}\nresilience: {{retry: {{max_attempts: 1}}}}\n"


async def record(script: list[Reply | Fault], **options: object) -> list[Event]:
    with FakeUpstream() as up:
        up.script(*script)
        sink = RecordingSink()
        config = parse_config(config_for(up.openai_base))
        async with Orchestrator(config, env={"K": "k"}, clock=FakeClock()) as orch:
            orch.events.subscribe(sink)
            await orch.complete("What is the capital of France?", **options)  # type: ignore[arg-type]
    return sink.events


def replay_cost(events: list[Event], setup: Callable[[EventBus], object], replays: int) -> float:
    bus = EventBus()
    setup(bus)
    for event in events * 50:  # warm-up
        bus.emit(event)
    started = time.process_time()
    for _ in range(replays):
        for event in events:
            bus.emit(event)
    return (time.process_time() - started) / replays * 1e6


def sink_setups() -> dict[str, Callable[[EventBus], object]]:
    memory = InMemorySpanExporter()

    def in_memory(bus: EventBus) -> None:
        Telemetry(bus)
        bus.subscribe(tracing_sink(memory, TracingSettings(), batch=False))
        bus.subscribe(_Clearing(memory))

    def batched(bus: EventBus) -> None:
        Telemetry(bus)
        bus.subscribe(tracing_sink(NullExporter(), TracingSettings(), batch=True))

    def metrics(bus: EventBus) -> None:
        Telemetry(bus)
        bus.subscribe(MetricsSink())

    return {
        "no sink at all": lambda bus: None,
        "default (tracing off)": Telemetry,
        "tracing, in-memory": in_memory,
        "tracing, batch (OTLP path)": batched,
        "metrics": metrics,
    }


class _Clearing:
    """Empties the in-memory exporter now and then so memory stays flat during the replay."""

    def __init__(self, exporter: InMemorySpanExporter) -> None:
        self._exporter, self._seen = exporter, 0

    def handle(self, event: Event) -> None:
        self._seen += 1
        if self._seen % 1000 == 0:
            self._exporter.clear()


async def end_to_end(url: str, calls: int) -> dict[str, list[float]]:
    config = parse_config(config_for(f"{url}/v1"))
    off = Orchestrator(config, env={"K": "k"})
    on = Orchestrator(config, env={"K": "k"})
    memory = InMemorySpanExporter()
    on.events.subscribe(tracing_sink(memory, TracingSettings(), batch=False))
    results: dict[str, list[float]] = {"tracing off": [], "tracing on (in-memory)": []}
    for _ in range(3):  # interleaved rounds: other load on the machine hits both alike
        for label, orch in (("tracing off", off), ("tracing on (in-memory)", on)):
            for _ in range(50):
                await orch.complete("What is the capital of France?", model="a")
            memory.clear()
            started = time.process_time()
            for _ in range(calls):
                await orch.complete("What is the capital of France?", model="a")
            results[label].append((time.process_time() - started) / calls * 1e6)
            memory.clear()
    await off.aclose()
    await on.aclose()
    return results


def median_wall_ms(argv: list[str], repeats: int = 7) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        subprocess.run(argv, capture_output=True, check=True)
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument("--replays", type=int, default=20000)
    args = parser.parse_args()

    single = asyncio.run(record([Reply("Paris", usage=(12, 8))], model="a"))
    fallback = asyncio.run(
        record([Fault.server_error(), Reply("Paris", usage=(12, 8))], strategy="fallback", members=["a", "b"])
    )
    print(f"1. sinks alone: CPU µs per request, {args.replays} replays of the recorded events")
    columns = (f"single ({len(single)} events)", f"fallback ({len(fallback)} events)")
    print(f"   {'subscribed':28} {columns[0]:>18} {columns[1]:>20}")
    for label, setup in sink_setups().items():
        one = replay_cost(single, setup, args.replays)
        two = replay_cost(fallback, setup, args.replays)
        print(f"   {label:28} {one:18.1f} {two:20.1f}")

    proc = subprocess.Popen(
        [sys.executable, str(HERE / "_upstream.py")], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None and proc.stdin is not None
    url = proc.stdout.readline().strip()
    try:
        results = asyncio.run(end_to_end(url, args.calls))
    finally:
        proc.stdin.close()
        proc.wait(timeout=10)
    rounds = f"{args.calls} calls x 3 interleaved rounds"
    print(f"\n2. end to end: Orchestrator.complete, CPU µs per call, {rounds}")
    for label, values in results.items():
        print(f"   {label:28} median {statistics.median(values):7.0f}   rounds {[round(v) for v in values]}")
    off, on = (statistics.median(v) for v in results.values())
    print(f"   tracing adds {on - off:+.0f} µs per call ({(on / off - 1) * 100:+.1f}%)")

    python = median_wall_ms([sys.executable, "-c", "pass"])
    imports = (
        "import opentelemetry.sdk.trace, opentelemetry.exporter.otlp.proto.http.trace_exporter, "
        "model_orchestrator.telemetry.tracing"
    )
    otel = median_wall_ms([sys.executable, "-c", imports])
    print(f"\n3. import time when tracing is configured: +{otel - python:.0f} ms (median of 7, wall)")


if __name__ == "__main__":
    main()
