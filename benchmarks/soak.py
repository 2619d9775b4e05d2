"""Soak: does the gateway's memory and /metrics stay bounded under a long mix of good and hostile traffic?

One FakeUpstream in its own process; the gateway (``orchestrator serve``, auth on, ledger on) in another;
this process drives it with a fixed, seeded mix of requests (``MIX``): valid answers, streamed answers,
streams cancelled after the first chunk, invalid bodies (bad JSON, ``text/plain``, image parts, missing
fields), requests without a key, and unique model names (plain and ``provider:`` spellings, the
memory and label-cardinality attack of issue 12.2). It prints the gateway's RSS after the warm-up and at
the end, the growth, and the size of ``/metrics`` at both points. Pass: RSS growth under 5 % and
``/metrics`` not growing with the unique names.

Usage: python benchmarks/soak.py [--requests 50000] [--warmup 0.1] [--concurrency 16] [--seed 12]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import aiohttp

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _load import free_port, wait_port  # noqa: E402
from gateway import MASTER, orchestrator_command, start_upstream  # noqa: E402

MESSAGES = [{"role": "user", "content": "What is the capital of France?"}]
AUTH = {"authorization": f"Bearer {MASTER}"}
# Share of each kind of request (they sum to 1).
MIX = {
    "valid": 0.35,
    "streamed": 0.15,
    "cancelled": 0.10,
    "invalid": 0.15,
    "no_key": 0.05,
    "unique_name": 0.10,
    "unique_provider_name": 0.10,
}
RSS_GROWTH_LIMIT = 0.05


@dataclass(frozen=True)
class Snapshot:
    """The gateway's resident memory (bytes) and the size of its /metrics text (bytes)."""

    rss: int
    metrics: int


def rss_of(pid: int) -> int:
    """Resident set size of ``pid`` in bytes (Linux /proc)."""
    with open(f"/proc/{pid}/status", encoding="ascii") as handle:
        line = next(row for row in handle if row.startswith("VmRSS:"))
    return int(line.split()[1]) * 1024


class Driver:
    """Sends one request of a given kind; counts statuses per kind."""

    def __init__(self, session: aiohttp.ClientSession, url: str, rng: random.Random) -> None:
        self._session = session
        self._url = url
        self._rng = rng
        self.statuses: Counter[tuple[str, int]] = Counter()
        self._serial = 0

    async def send(self, kind: str) -> None:
        self._serial += 1
        sender: Callable[[], tuple[dict[str, str], bytes, bool]] = getattr(self, f"_{kind}")
        headers, body, cancel = sender()
        async with self._session.post(f"{self._url}/v1/chat/completions", data=body, headers=headers) as r:
            if cancel and r.status == 200:
                await r.content.readany()  # the first chunk, then hang up mid-stream
                r.close()
            else:
                await r.read()
            self.statuses[(kind, r.status)] += 1

    def _json(self, body: object) -> tuple[dict[str, str], bytes, bool]:
        return {**AUTH, "content-type": "application/json"}, json.dumps(body).encode(), False

    def _valid(self) -> tuple[dict[str, str], bytes, bool]:
        return self._json({"model": "bench", "messages": MESSAGES})

    def _streamed(self) -> tuple[dict[str, str], bytes, bool]:
        return self._json({"model": "bench", "messages": MESSAGES, "stream": True})

    def _cancelled(self) -> tuple[dict[str, str], bytes, bool]:
        headers, body, _ = self._streamed()
        return headers, body, True

    def _invalid(self) -> tuple[dict[str, str], bytes, bool]:
        choice = self._rng.randrange(4)
        if choice == 0:
            return {**AUTH, "content-type": "application/json"}, b'{"model": "bench", "messages": [', False
        if choice == 1:
            return {**AUTH, "content-type": "text/plain"}, json.dumps({"model": "bench"}).encode(), False
        if choice == 2:
            image = [{"type": "image_url", "image_url": {"url": "http://x"}}]
            return self._json({"model": "bench", "messages": [{"role": "user", "content": image}]})
        return self._json({"model": "bench"})

    def _no_key(self) -> tuple[dict[str, str], bytes, bool]:
        _, body, _ = self._valid()
        return {"content-type": "application/json"}, body, False

    def _unique_name(self) -> tuple[dict[str, str], bytes, bool]:
        return self._json({"model": f"soak-{self._serial}-" + "x" * 200, "messages": MESSAGES})

    def _unique_provider_name(self) -> tuple[dict[str, str], bytes, bool]:
        return self._json({"model": f"openai:soak-{self._serial}-" + "y" * 200, "messages": MESSAGES})


async def snapshot(session: aiohttp.ClientSession, url: str, pid: int) -> Snapshot:
    async with session.get(f"{url}/metrics", headers=AUTH) as response:
        metrics = len(await response.read())
    return Snapshot(rss=rss_of(pid), metrics=metrics)


async def drive(url: str, pid: int, *, requests: int, warmup: int, concurrency: int, seed: int) -> int:
    rng = random.Random(seed)
    kinds = rng.choices(list(MIX), weights=list(MIX.values()), k=requests)
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        driver = Driver(session, url, rng)
        queue = iter(kinds)

        async def worker(stop_at: int) -> None:
            while driver_count() < stop_at:
                kind = next(queue, None)
                if kind is None:
                    return
                await driver.send(kind)

        def driver_count() -> int:
            return sum(driver.statuses.values())

        started = time.perf_counter()
        await asyncio.gather(*(worker(warmup) for _ in range(concurrency)))
        readings = [await snapshot(session, url, pid)]
        for quarter in (1, 2, 3, 4):  # four readings after the warm-up: a trend, not two points
            stop_at = warmup + (requests - warmup) * quarter // 4
            await asyncio.gather(*(worker(stop_at) for _ in range(concurrency)))
            readings.append(await snapshot(session, url, pid))
        elapsed = time.perf_counter() - started
    return report(driver.statuses, readings, requests=requests, warmup=warmup, elapsed=elapsed)


def report(
    statuses: Counter[tuple[str, int]],
    readings: list[Snapshot],
    *,
    requests: int,
    warmup: int,
    elapsed: float,
) -> int:
    """Print the figures; the exit status is 1 when a bound is broken (or any 5xx other than 502/503)."""
    print(f"{requests} requests ({warmup} warm-up) in {elapsed:.1f} s, {requests / elapsed:.0f} req/s")
    for (kind, status), count in sorted(statuses.items()):
        print(f"  {kind:22} {status}  {count}")
    warm, end = readings[0], readings[-1]
    growth = (end.rss - warm.rss) / warm.rss
    print(f"RSS after warm-up  {warm.rss / 2**20:8.1f} MiB")
    trend = " -> ".join(f"{r.rss / 2**20:.1f}" for r in readings[1:])
    print(f"RSS each quarter   {trend} MiB")
    print(f"RSS at the end     {end.rss / 2**20:8.1f} MiB   growth {growth * 100:+.2f} %")
    print(f"/metrics           {warm.metrics:8d} B -> {end.metrics} B")
    crashes = sum(c for (_, status), c in statuses.items() if status >= 500 and status not in (502, 503))
    bounded = growth < RSS_GROWTH_LIMIT and end.metrics <= 2 * warm.metrics and crashes == 0
    print("PASS" if bounded else "FAIL", f"(RSS growth < {RSS_GROWTH_LIMIT:.0%}, /metrics bounded, no 500s)")
    return 0 if bounded else 1


def start_gateway(upstream: str, workdir: Path) -> tuple[subprocess.Popen[bytes], int]:
    """``orchestrator serve`` over ``upstream`` (auth and ledger on, no retries); the process and port."""
    config = workdir / "orchestrator.yaml"
    config.write_text(
        "models:\n"
        f"  - {{name: bench, provider: openai, model: bench, api_base: '{upstream}/v1',"
        " api_key_env: BENCH_KEY, price: {input: 1, output: 2}}\n"
        "resilience: {retry: {max_attempts: 1}}\n"
    )
    port = free_port()
    env = {
        **os.environ,
        "BENCH_KEY": "k",
        "ORCHESTRATOR_MASTER_KEY": MASTER,
        "ORCHESTRATOR_HOME": str(workdir),
    }
    env.pop("OPENAI_API_KEY", None)  # the provider-prefixed names must not reach a real endpoint
    command = [*orchestrator_command(), "--config", str(config), "serve", "--port", str(port)]
    proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_port(port, proc)
    return proc, port


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=50_000, help="requests in all (default 50000)")
    parser.add_argument("--warmup", type=float, default=0.1, help="share of them before the first reading")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--seed", type=int, default=12)
    args = parser.parse_args()
    upstream_proc, upstream = start_upstream()
    with tempfile.TemporaryDirectory() as tmp:
        gateway, port = start_gateway(upstream, Path(tmp))
        try:
            return asyncio.run(
                drive(
                    f"http://127.0.0.1:{port}",
                    gateway.pid,
                    requests=args.requests,
                    warmup=int(args.requests * args.warmup),
                    concurrency=args.concurrency,
                    seed=args.seed,
                )
            )
        finally:
            gateway.terminate()
            gateway.wait(30)
            assert upstream_proc.stdin is not None
            upstream_proc.stdin.close()
            upstream_proc.wait(30)


if __name__ == "__main__":
    sys.exit(main())
