"""The gateway's throughput with 1 and 2 worker processes (`orchestrator serve --workers N`) on this machine.

One FakeUpstream in its own process, the gateway (auth on, ledger on) in its own, this process the load
generator (keep-alive connections, which the kernel spreads over the workers when they connect). Prints
the machine's core count, then per worker count: the load average (other work on the machine takes
cores from the gateway), requests per second, requests per CPU-second of all the
worker processes together, p50/p99 latency, the speed-up over one worker, and how the CPU time split
between the workers (how evenly the kernel spread the connections). The upstream and the load
generator need CPU too, so on a machine with C cores N workers can only approach N times one worker's
rate while N plus what those two use stays under C.

Without ``--state-url`` the workers keep per-process state (``--allow-per-process-state``); with
``--state-url redis://...`` they share a Redis or Valkey, as a real deployment would.

Usage: python benchmarks/workers.py [--requests N] [--concurrency C] [--state-url redis://127.0.0.1:6379/0]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _load import LoadResult, free_port, process_cpu, run_load, wait_port  # noqa: E402
from gateway import MASTER, orchestrator_command, start_upstream, stop  # noqa: E402

WORKERS = (1, 2)


def start_gateway(
    upstream: str, workdir: Path, workers: int, state_url: str | None
) -> tuple[subprocess.Popen[bytes], int]:
    config = workdir / f"orchestrator-{workers}.yaml"
    state = f"state: {{url: '{state_url}'}}\n" if state_url else ""
    config.write_text(
        "models:\n"
        f"  - {{name: bench, provider: openai, model: bench, api_base: '{upstream}/v1',"
        " api_key_env: BENCH_KEY, price: {input: 1, output: 2}}\n" + state
    )
    port = free_port()
    env = {
        **os.environ,
        "BENCH_KEY": "k",
        "ORCHESTRATOR_MASTER_KEY": MASTER,
        "ORCHESTRATOR_HOME": str(workdir),
    }
    flags = ["--workers", str(workers)] + ([] if state_url or workers == 1 else ["--allow-per-process-state"])
    command = [*orchestrator_command(), "--config", str(config), "serve", "--port", str(port), *flags]
    proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_port(port, proc)
    return proc, port


def server_pids(proc: subprocess.Popen[bytes], workers: int) -> list[int]:
    """The processes that serve: the command itself for one worker, else the supervisor's children."""
    if workers == 1:
        return [proc.pid]
    # The port answers as soon as the first worker listens: wait until every worker has started.
    for _ in range(200):
        children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()
        if len(children) >= workers:
            return [int(pid) for pid in children]
        time.sleep(0.05)
    raise SystemExit(f"only {len(children)} of {workers} workers started")


async def measure(
    port: int, pids: list[int], requests: int, concurrency: int
) -> tuple[LoadResult, list[float]]:
    """The load's result and the CPU seconds each server process used while it ran (warm-up excluded:
    the first run warms, the second is measured)."""
    url = f"http://127.0.0.1:{port}/v1/chat/completions"
    headers = {"authorization": f"Bearer {MASTER}"}
    await run_load(url, requests=requests // 4, concurrency=concurrency, headers=headers)
    before = [process_cpu(pid) for pid in pids]
    result = await run_load(url, requests=requests, concurrency=concurrency, headers=headers, warmup=0)
    return result, [process_cpu(pid) - start for pid, start in zip(pids, before, strict=True)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=4000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--state-url", help="share state on this Redis/Valkey (redis://host:port/db)")
    args = parser.parse_args()
    cores = os.cpu_count()
    usable = len(os.sched_getaffinity(0))
    print(
        f"cores: {cores} ({usable} usable by this process); upstream, gateway, load generator: own processes"
    )
    print(f"{args.requests} requests per row at concurrency {args.concurrency}, auth and ledger on")
    print(
        f"{'workers':>7} {'load':>5} {'RPS':>8} {'RPS/core':>9} {'p50 ms':>7} {'p99 ms':>7} "
        f"{'errors':>6} {'speed-up':>8} {'CPU split':>9}"
    )
    upstream_proc, upstream = start_upstream()
    base: float | None = None
    try:
        with tempfile.TemporaryDirectory() as workdir:
            for workers in WORKERS:
                proc, port = start_gateway(upstream, Path(workdir), workers, args.state_url)
                try:
                    pids = server_pids(proc, workers)
                    result, cpu = asyncio.run(measure(port, pids, args.requests, args.concurrency))
                finally:
                    stop(proc)
                base = base or result.rps
                per_core = result.requests / sum(cpu) if sum(cpu) else float("nan")
                load = os.getloadavg()[0]
                split = "/".join(f"{100 * c / sum(cpu):.0f}" for c in cpu) if sum(cpu) else "-"
                print(
                    f"{workers:>7} {load:>5.1f} {result.rps:>8.0f} {per_core:>9.0f} {result.p50_ms:>7.1f} "
                    f"{result.p99_ms:>7.1f} {result.errors:>6} {result.rps / base:>7.2f}x {split:>9}"
                )
    finally:
        assert upstream_proc.stdin is not None
        upstream_proc.stdin.close()
        upstream_proc.wait(timeout=10)


if __name__ == "__main__":
    main()
