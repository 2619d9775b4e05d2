"""Per-call CPU of model-orchestrator in process against a bare aiohttp call to the same FakeUpstream.

Measured in one run, against FakeUpstreams running in separate processes (so their CPU is not counted;
one answers whole, one streams its answer in 20 chunks):
  - bare:            aiohttp.ClientSession.post + json decode (the floor)
  - adapter:         the OpenAI-compatible adapter alone (request building, HTTP, parsing, error mapping)
  - fallback:        Orchestrator.complete on a fallback over a model with 2 deployments (name
                     resolution, strategy, resilience layers, events + pricing, adapter, result), ledger off
  - fallback+ledger: the same with the default cost ledger (SQLite file, batched writes in this process)
and streamed: a bare aiohttp streamed read (each SSE ``data:`` line json-decoded) against
``Orchestrator.stream`` on the same fallback, ledger off and on. Each path runs in two harnesses: a
plain sequential loop (one call at a time) and 64 calls in flight (asyncio.gather under a semaphore),
after 50 warm-up calls. CPU is this process's (``time.process_time``: the ledger's writer thread
included, and its batched writes flushed at both ends of the window), per call, each window
starting from a settled heap (``gc.collect`` then ``gc.freeze``, as ``orchestrator serve`` does).
Prints the ratios issue 13 sets targets for (fallback / bare <= 1.5x, streamed <= 1.5x, ledger on / off
<= 1.1x).
Start-up times are in ``benchmarks/startup.py``.

Usage: python benchmarks/overhead.py [--calls N] [--rounds N]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
BODY: dict[str, Any] = {
    "model": "bench",
    "messages": [{"role": "user", "content": "What is the capital of France?"}],
}
PROMPT = "What is the capital of France?"
STREAM_CHUNKS = 20
HARNESSES = {"sequential": 1, "64 in flight": 64}
PATHS = ("bare", "adapter", "fallback", "fallback+ledger")
STREAM_PATHS = ("bare stream", "fallback stream", "fallback stream+ledger")
TARGETS = {"call": 1.5, "stream": 1.5, "ledger": 1.1}
Figures = dict[str, dict[int, float]]
Call = Callable[[], Awaitable[object]]
Settle = Callable[[], Awaitable[None]]


def start_upstream(chunks: int | None = None) -> tuple[subprocess.Popen[str], str]:
    flags = ["--chunks", str(chunks)] if chunks else []
    proc = subprocess.Popen(
        [sys.executable, str(HERE / "_upstream.py"), *flags],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    return proc, proc.stdout.readline().strip()


def fallback_config(url: str, ledger: bool) -> str:
    """A fallback strategy whose first member is one model served by two deployments."""
    return (
        "models:\n"
        "  - name: bench\n"
        "    provider: openai\n"
        "    model: bench\n"
        "    price: {input: 1, output: 2}\n"
        "    deployments:\n"
        f"      - {{api_base: '{url}/v1', api_key_env: EAST_KEY}}\n"
        f"      - {{api_base: '{url}/v1', api_key_env: WEST_KEY}}\n"
        f"  - {{name: backup, provider: openai, model: backup, api_base: '{url}/v1', api_key_env: EAST_KEY,"
        " price: {input: 1, output: 2}}\n"
        "strategies:\n"
        "  - {name: safe, type: fallback, chain: [bench, backup]}\n"
        + ("" if ledger else "ledger: {enabled: false}\n")
    )


async def measure(call: Call, calls: int, concurrency: int, settle: Settle | None = None) -> float:
    """CPU µs per call of this process, after a warm-up; ``settle`` finishes deferred work (the ledger's
    batched writes) before the window and at its end, so the window holds the measured calls' own."""
    for _ in range(50):
        await call()
    if settle is not None:
        await settle()
    # A settled heap, as the served gateway has (settle_heap): otherwise a full collection of the
    # start-up heap (40-50 ms) lands in one path's window, the same one every round, by chance.
    gc.collect()
    gc.freeze()
    sem = asyncio.Semaphore(concurrency)

    async def one() -> None:
        async with sem:
            await call()

    cpu0 = time.process_time()
    if concurrency == 1:
        for _ in range(calls):
            await call()
    else:
        await asyncio.gather(*(one() for _ in range(calls)))
    if settle is not None:
        await settle()
    spent = (time.process_time() - cpu0) / calls * 1e6
    gc.unfreeze()
    return spent


def bare_calls(session: Any, url: str, stream_url: str) -> dict[str, Call]:
    """The floors: one aiohttp POST with its body json-decoded, whole and streamed."""
    headers = {"content-type": "application/json", "authorization": "Bearer k"}
    payload = json.dumps(BODY).encode()
    stream_payload = json.dumps({**BODY, "stream": True}).encode()

    async def bare() -> object:
        async with session.post(f"{url}/v1/chat/completions", data=payload, headers=headers) as r:
            return json.loads(await r.read())

    async def bare_stream() -> object:
        frames = []
        async with session.post(
            f"{stream_url}/v1/chat/completions", data=stream_payload, headers=headers
        ) as r:
            async for line in r.content:
                if line.startswith(b"data: ") and not line.startswith(b"data: [DONE]"):
                    frames.append(json.loads(line[6:]))
        return frames

    return {"bare": bare, "bare stream": bare_stream}


def orchestrator(upstream: str, home: Path | None) -> Any:
    """A façade on the fallback; its ledger (None: off) is a SQLite file in ``home``."""
    from model_orchestrator.config.loader import parse_config
    from model_orchestrator.orchestrator import Orchestrator

    env = {"EAST_KEY": "e", "WEST_KEY": "w", "ORCHESTRATOR_HOME": str(home or "")}
    return Orchestrator(parse_config(fallback_config(upstream, ledger=home is not None)), env=env)


def complete(orch: Any) -> Call:
    return lambda: orch.complete(PROMPT, model="safe")


def stream(orch: Any) -> Call:
    async def read() -> object:
        return [delta async for delta in orch.stream(PROMPT, model="safe")]

    return read


async def run(url: str, stream_url: str, calls: int, rounds: int, home: Path) -> tuple[Figures, int]:
    """CPU µs per call of every path in every harness (the median over ``rounds``), and the ledger rows
    written (evidence that the ledger was on)."""
    import aiohttp

    from model_orchestrator.core.request import ChatRequest
    from model_orchestrator.providers.http import HttpTransport
    from model_orchestrator.providers.openai_compatible import OpenAICompatibleModel

    transport = HttpTransport()
    adapter = OpenAICompatibleModel(
        name="bench", model_id="bench", api_base=f"{url}/v1", api_key="k", transport=transport
    )
    request = ChatRequest.from_prompt(PROMPT)
    plain, ledgered = orchestrator(url, None), orchestrator(url, home / "whole")
    plain_stream, ledgered_stream = (
        orchestrator(stream_url, None),
        orchestrator(stream_url, home / "streamed"),
    )
    samples: dict[tuple[str, int], list[float]] = {}
    async with aiohttp.ClientSession() as session:
        floors = bare_calls(session, url, stream_url)
        paths: dict[str, Call] = {
            "bare": floors["bare"],
            "adapter": lambda: adapter.complete(request),
            "fallback": complete(plain),
            "fallback+ledger": complete(ledgered),
            "bare stream": floors["bare stream"],
            "fallback stream": stream(plain_stream),
            "fallback stream+ledger": stream(ledgered_stream),
        }
        settles: dict[str, Settle] = {
            "fallback+ledger": ledgered.ledger.flush,
            "fallback stream+ledger": ledgered_stream.ledger.flush,
        }
        for _ in range(rounds):
            for concurrency in HARNESSES.values():
                for path, call in paths.items():
                    cpu = await measure(call, calls, concurrency, settles.get(path))
                    samples.setdefault((path, concurrency), []).append(cpu)
    for orch in (plain, ledgered, plain_stream, ledgered_stream):
        await orch.aclose()
    await transport.aclose()
    figures: Figures = {path: {} for path in paths}
    for (path, concurrency), values in samples.items():
        figures[path][concurrency] = statistics.median(values)
    return figures, ledger_rows(home / "whole") + ledger_rows(home / "streamed")


def ledger_rows(home: Path) -> int:
    with sqlite3.connect(home / "ledger.sqlite3") as db:
        return int(db.execute("select count(*) from attempts").fetchone()[0])


def report(figures: Figures, calls: int, rounds: int, rows: int) -> None:
    print(
        f"in-process CPU µs per call, {calls} calls per row after 50 warm-up, median of {rounds} round(s); "
        f"cores: {os.cpu_count()}, load average {os.getloadavg()[0]:.1f}; FakeUpstreams in other processes; "
        f"ledger rows written by the +ledger paths: {rows}"
    )
    names = list(HARNESSES)
    print(f"{'path':24}" + "".join(f" {name + ' µs':>16} {'x floor':>8}" for name in names))
    for group, floor in ((PATHS, "bare"), (STREAM_PATHS, "bare stream")):
        for path in group:
            cells = "".join(
                f" {figures[path][c]:16.0f} {figures[path][c] / figures[floor][c]:8.2f}"
                for c in HARNESSES.values()
            )
            print(f"{path:24}{cells}")
    print("\nissue 13 targets:")
    for name, c in HARNESSES.items():
        checks = (
            ("fallback, ledger on / bare POST", "fallback+ledger", "bare", "call"),
            ("fallback, ledger off / bare POST", "fallback", "bare", "call"),
            ("streamed, ledger on / bare streamed read", "fallback stream+ledger", "bare stream", "stream"),
            ("streamed, ledger off / bare streamed read", "fallback stream", "bare stream", "stream"),
            ("ledger on / off", "fallback+ledger", "fallback", "ledger"),
            ("ledger on / off, streamed", "fallback stream+ledger", "fallback stream", "ledger"),
        )
        for label, ours, floor, target in checks:
            ratio = figures[ours][c] / figures[floor][c]
            verdict = "met" if ratio <= TARGETS[target] else "not met"
            print(f"  {name:13} {label:42} {ratio:5.2f}x  (target <= {TARGETS[target]}x: {verdict})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=500, help="measured calls per path and harness")
    parser.add_argument("--rounds", type=int, default=1, help="rounds over every path; figures are medians")
    args = parser.parse_args()
    upstream, url = start_upstream()
    streamer, stream_url = start_upstream(STREAM_CHUNKS)
    try:
        with tempfile.TemporaryDirectory() as home:
            figures, rows = asyncio.run(run(url, stream_url, args.calls, args.rounds, Path(home)))
    finally:
        for proc in (upstream, streamer):
            assert proc.stdin is not None
            proc.stdin.close()
            proc.wait(timeout=10)
    report(figures, args.calls, args.rounds, rows)


if __name__ == "__main__":
    main()
