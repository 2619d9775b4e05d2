"""A small HTTP load generator for the gateway benchmarks: N requests at concurrency C, latency percentiles.

Runs in the benchmark's own process (the servers it measures run in theirs), so a server's CPU time,
read from /proc, is its own. Helpers to start a subprocess server and wait for its port are here too.
"""

from __future__ import annotations

import asyncio
import os
import socket
import statistics
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

BODY: dict[str, Any] = {
    "model": "bench",
    "messages": [{"role": "user", "content": "What is the capital of France?"}],
}


@dataclass(frozen=True)
class LoadResult:
    """Requests per second (wall), latency percentiles (ms), errors, and the server's CPU seconds."""

    requests: int
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int
    server_cpu: float | None

    @property
    def rps_per_core(self) -> float | None:
        """Requests per CPU-second of the server process (None when unknown)."""
        return self.requests / self.server_cpu if self.server_cpu else None


def process_cpu(pid: int) -> float:
    """User plus system CPU seconds of ``pid`` (Linux /proc)."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


def free_port() -> int:
    """An unused TCP port on 127.0.0.1."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_port(port: int, proc: subprocess.Popen[Any] | None = None, timeout: float = 60.0) -> None:
    """Block until something accepts connections on 127.0.0.1:``port``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode} before listening")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on port {port} after {timeout}s")


async def run_load(
    url: str,
    *,
    requests: int,
    concurrency: int,
    headers: Mapping[str, str] | None = None,
    body: Mapping[str, Any] | None = None,
    server_pid: int | None = None,
    warmup: int = 200,
    settle: float = 0.0,
) -> LoadResult:
    """POST ``body`` to ``url`` ``requests`` times, ``concurrency`` at a time, after ``warmup`` requests.

    ``settle`` seconds of quiet before and after the measured requests let a server finish work it
    defers (a ledger flushed every second), so the CPU measured is the measured requests' own.
    """
    import aiohttp
    import orjson

    payload = orjson.dumps(dict(body or BODY))
    send_headers = {"content-type": "application/json", **(headers or {})}
    connector = aiohttp.TCPConnector(limit=concurrency)
    latencies: list[float] = []
    errors = 0
    async with aiohttp.ClientSession(connector=connector) as session:

        async def one(record: bool) -> None:
            nonlocal errors
            start = time.perf_counter()
            async with session.post(url, data=payload, headers=send_headers) as response:
                await response.read()
                ok = response.status == 200
            if record:
                latencies.append(time.perf_counter() - start)
                errors += 0 if ok else 1

        async def worker(count: int, record: bool) -> None:
            for _ in range(count):
                await one(record)

        await asyncio.gather(*(worker(warmup // concurrency + 1, False) for _ in range(concurrency)))
        await asyncio.sleep(settle)
        cpu0 = process_cpu(server_pid) if server_pid else None
        wall0 = time.perf_counter()
        per_worker = requests // concurrency
        await asyncio.gather(*(worker(per_worker, True) for _ in range(concurrency)))
        wall = time.perf_counter() - wall0
        await asyncio.sleep(settle)
        cpu = process_cpu(server_pid) - cpu0 if server_pid and cpu0 is not None else None
    latencies.sort()
    done = len(latencies)
    return LoadResult(
        requests=done,
        rps=done / wall,
        p50_ms=statistics.median(latencies) * 1000,
        p99_ms=latencies[min(done - 1, int(done * 0.99))] * 1000,
        errors=errors,
        server_cpu=cpu,
    )


def row(label: str, concurrency: int, result: LoadResult, direct: LoadResult | None = None) -> str:
    """One table line; with ``direct``, the added p50/p99 latency and the RPS ratio."""
    per_core = f"{result.rps_per_core:8.0f}" if result.rps_per_core else f"{'-':>8}"
    line = (
        f"{label:24} {concurrency:>4} {result.rps:8.0f} {per_core} {result.p50_ms:8.2f} "
        f"{result.p99_ms:8.2f} {result.errors:>5}"
    )
    if direct is not None:
        line += (
            f"   +{result.p50_ms - direct.p50_ms:6.2f} ms p50  +{result.p99_ms - direct.p99_ms:6.2f} ms p99"
            f"  {result.rps / direct.rps:5.2f}x rps"
        )
    return line


HEADER = f"{'server':24} {'conc':>4} {'rps':>8} {'rps/core':>8} {'p50 ms':>8} {'p99 ms':>8} {'errs':>5}"
