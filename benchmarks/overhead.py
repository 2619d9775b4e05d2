"""Per-call overhead of model-orchestrator against a bare aiohttp POST to the same FakeUpstream.

Measured in one run, against one FakeUpstream running in a separate process (so its CPU is not counted):
  - bare:    aiohttp.ClientSession.post + json decode (the floor)
  - adapter: the OpenAI-compatible adapter alone (request building, HTTP, parsing, error mapping)
  - library: Orchestrator.complete (name resolution, resilience layers, events + pricing, adapter,
    result), the cost ledger off
  - +ledger: the same with the default cost ledger (SQLite file, batched writes in this process)
sequentially and at concurrency 64. Prints CPU µs/call and wall µs/call with ratios to the floor.
Also prints the import time of ``model_orchestrator`` and the wall time of ``orchestrator --help``.

Usage: python benchmarks/overhead.py [--calls N]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
PATHS = ("bare", "adapter", "library", "+ledger")
BODY = {"model": "bench", "messages": [{"role": "user", "content": "What is the capital of France?"}]}


def start_upstream() -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, str(HERE / "_upstream.py")], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    return proc, proc.stdout.readline().strip()


async def measure(call: Callable[[], Awaitable[object]], calls: int, concurrency: int) -> tuple[float, float]:
    """(CPU µs/call, wall µs/call) after a warm-up."""
    for _ in range(50):
        await call()
    sem = asyncio.Semaphore(concurrency)

    async def one() -> None:
        async with sem:
            await call()

    cpu0, wall0 = time.process_time(), time.perf_counter()
    if concurrency == 1:
        for _ in range(calls):
            await call()
    else:
        await asyncio.gather(*(one() for _ in range(calls)))
    return ((time.process_time() - cpu0) / calls * 1e6, (time.perf_counter() - wall0) / calls * 1e6)


async def run_http(url: str, calls: int) -> dict[str, dict[int, tuple[float, float]]]:
    import aiohttp

    from model_orchestrator.config.loader import parse_config
    from model_orchestrator.core.request import ChatRequest
    from model_orchestrator.orchestrator import Orchestrator
    from model_orchestrator.providers.http import HttpTransport
    from model_orchestrator.providers.openai_compatible import OpenAICompatibleModel

    payload = json.dumps(BODY).encode()
    results: dict[str, dict[int, tuple[float, float]]] = {path: {} for path in PATHS}
    async with aiohttp.ClientSession() as session:

        async def bare() -> object:
            async with session.post(
                f"{url}/v1/chat/completions",
                data=payload,
                headers={"content-type": "application/json", "authorization": "Bearer k"},
            ) as r:
                return json.loads(await r.read())

        transport = HttpTransport()
        adapter = OpenAICompatibleModel(
            name="bench", model_id="bench", api_base=f"{url}/v1", api_key="k", transport=transport
        )
        request = ChatRequest.from_prompt("What is the capital of France?")
        model = (
            "models:\n"
            f"  - {{name: bench, provider: openai, model: bench, api_base: '{url}/v1',"
            " api_key_env: BENCH_KEY,"
            " price: {input: 1, output: 2}}\n"
        )
        # The façade with its resilience layers, with and without the cost ledger (SQLite, batched
        # writes in this process): the ledger's database work is real CPU in the same process.
        orch = Orchestrator(parse_config(model + "ledger: {enabled: false}\n"), env={"BENCH_KEY": "k"})
        ledgered = Orchestrator(parse_config(model), env={"BENCH_KEY": "k"})

        async def library() -> object:
            return await orch.complete("What is the capital of France?", model="bench")

        async def library_ledger() -> object:
            return await ledgered.complete("What is the capital of France?", model="bench")

        for concurrency in (1, 64):
            results["bare"][concurrency] = await measure(bare, calls, concurrency)
            results["adapter"][concurrency] = await measure(
                lambda: adapter.complete(request), calls, concurrency
            )
            results["library"][concurrency] = await measure(library, calls, concurrency)
            results["+ledger"][concurrency] = await measure(library_ledger, calls, concurrency)
        await ledgered.aclose()
        await orch.aclose()
        await transport.aclose()
    return results


def median_wall(argv: list[str], repeats: int = 7) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run(argv, capture_output=True, check=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def startup_figures() -> None:
    python = median_wall([sys.executable, "-c", "pass"])
    imported = median_wall([sys.executable, "-c", "import model_orchestrator"])
    script = Path(sys.executable).with_name("orchestrator")
    command = [str(script)] if script.exists() else [shutil.which("orchestrator") or "orchestrator"]
    help_ms = median_wall([*command, "--help"])
    print("\nstart-up (median of 7, wall ms)")
    print(f"  python -c pass                    {python:8.1f}")
    print(f"  import model_orchestrator         {imported:8.1f}   (+{imported - python:.1f} ms over python)")
    print(
        f"  orchestrator --help               {help_ms:8.1f}   (+{help_ms - python:.1f} ms over bare python)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000)
    args = parser.parse_args()
    proc, url = start_upstream()
    try:
        results = asyncio.run(run_http(url, args.calls))
    finally:
        assert proc.stdin is not None
        proc.stdin.close()
        proc.wait(timeout=10)
    print(f"per-call cost, {args.calls} calls, FakeUpstream in another process")
    print(f"{'path':10} {'conc':>4} {'CPU µs':>9} {'wall µs':>9} {'CPU x bare':>10} {'CPU over bare µs':>17}")
    for concurrency in (1, 64):
        floor_cpu = results["bare"][concurrency][0]
        for path in PATHS:
            cpu, wall = results[path][concurrency]
            print(
                f"{path:10} {concurrency:>4} {cpu:9.0f} {wall:9.0f} "
                f"{cpu / floor_cpu:10.2f} {cpu - floor_cpu:17.0f}"
            )
    startup_figures()


if __name__ == "__main__":
    main()
