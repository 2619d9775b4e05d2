"""CPU cost per POST: bare ``httpx.AsyncClient`` vs bare ``aiohttp.ClientSession`` vs our ``HttpTransport``
(our own keep-alive HTTP/1.1 client on httptools since issue 13).

All three talk to the same ``FakeUpstream`` in the same run. The server lives in a child process so
``time.process_time()`` in this process counts the client's CPU only. Each client runs N sequential
requests and N requests at a fixed concurrency, for several rounds (client order rotated each round);
the best round is reported.

    python benchmarks/http_client.py [--n 2000] [--concurrency 64] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import statistics
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from multiprocessing.synchronize import Event

import aiohttp
import httpx

from model_orchestrator.providers.http import HttpTransport, Timeouts
from model_orchestrator.testing import FakeUpstream, Reply

BODY = (
    b'{"model":"gpt-4o-mini","messages":[{"role":"system","content":"Be brief."},'
    b'{"role":"user","content":"What is the capital of France?"}],"max_tokens":64}'
)
HEADERS = {"content-type": "application/json", "authorization": "Bearer sk-bench"}
POOL = 100
WARMUP = 100

Post = Callable[[], Awaitable[int]]


@dataclass(frozen=True)
class Measurement:
    client: str
    mode: str
    cpu_us: float
    wall_us: float


def _serve(url_out: Connection, stop: Event) -> None:
    with FakeUpstream(default_reply=Reply("Paris is the capital of France.")) as up:
        url_out.send(up.openai_base + "/chat/completions")
        stop.wait()


async def _run(post: Post, n: int, concurrency: int) -> tuple[float, float]:
    """(CPU seconds, wall seconds) for ``n`` posts, ``concurrency`` at a time."""
    remaining = n

    async def worker() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            if await post() != 200:
                raise RuntimeError("unexpected status")

    cpu, wall = time.process_time(), time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.process_time() - cpu, time.perf_counter() - wall


async def _measure(url: str, n: int, concurrency: int, rounds: int) -> list[Measurement]:
    httpx_client = httpx.AsyncClient(
        limits=httpx.Limits(max_connections=POOL, max_keepalive_connections=POOL)
    )
    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=POOL))
    transport = HttpTransport(limit=POOL)
    timeouts = Timeouts()

    async def via_httpx() -> int:
        response = await httpx_client.post(url, content=BODY, headers=HEADERS)
        return response.status_code

    async def via_aiohttp() -> int:
        async with session.post(url, data=BODY, headers=HEADERS) as response:
            await response.read()
            return response.status

    async def via_transport() -> int:
        return (await transport.post(url, headers=HEADERS, body=BODY, timeout=timeouts)).status

    clients: dict[str, Post] = {
        "httpx.AsyncClient": via_httpx,
        "aiohttp.ClientSession": via_aiohttp,
        "HttpTransport (httptools)": via_transport,
    }
    best: dict[tuple[str, str], tuple[float, float]] = {}
    try:
        for post in clients.values():
            await _run(post, WARMUP, 8)
        order = list(clients.items())
        for _ in range(rounds):
            order = order[1:] + order[:1]  # rotate so no client always runs first or last
            for mode, width in (("sequential", 1), (f"concurrency {concurrency}", concurrency)):
                for name, post in order:
                    cpu, wall = await _run(post, n, width)
                    key = (name, mode)
                    best[key] = min(best.get(key, (cpu, wall)), (cpu, wall))
    finally:
        await httpx_client.aclose()
        await session.close()
        await transport.aclose()
    return [
        Measurement(name, mode, cpu / n * 1e6, wall / n * 1e6) for (name, mode), (cpu, wall) in best.items()
    ]


def _table(results: list[Measurement]) -> str:
    lines = [f"{'client':26} {'mode':16} {'CPU µs/req':>11} {'wall µs/req':>12} {'vs aiohttp CPU':>15}"]
    for mode in dict.fromkeys(r.mode for r in results):
        rows = [r for r in results if r.mode == mode]
        base = next(r.cpu_us for r in rows if r.client == "aiohttp.ClientSession")
        for r in rows:
            ratio = f"{r.cpu_us / base:.2f}x"
            lines.append(f"{r.client:26} {mode:16} {r.cpu_us:11.1f} {r.wall_us:12.1f} {ratio:>15}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    context = multiprocessing.get_context("spawn")
    receive, send = context.Pipe(duplex=False)
    stop = context.Event()
    server = context.Process(target=_serve, args=(send, stop), daemon=True)
    server.start()
    try:
        url = receive.recv()
        results = asyncio.run(_measure(url, args.n, args.concurrency, args.rounds))
    finally:
        stop.set()
        server.join(10)
    print(f"N={args.n} per mode, best of {args.rounds} rounds, server in a separate process\n")
    print(_table(results))
    cpu = {(r.client, r.mode): r.cpu_us for r in results}
    overhead = statistics.mean(
        cpu[("HttpTransport (httptools)", m)] - cpu[("aiohttp.ClientSession", m)]
        for m in {r.mode for r in results}
    )
    print(f"\nHttpTransport minus bare aiohttp: {overhead:+.1f} µs CPU per request (mean of modes)")


if __name__ == "__main__":
    main()
