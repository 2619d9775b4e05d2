"""The shared state store's cost per call: Redis (through the failover store, as configured) against the
in-memory store, in the same run, on a private redis-server started here (127.0.0.1, no persistence).

For each operation: wall and CPU microseconds per call of this process (the client's cost: the figure the
target is about), and the Redis server's own CPU per call (from INFO), one call at a time and with
``--concurrency`` calls in flight. Operations:

- ``take_window``: a rate-limit acquire (an rpm window, the Lua script);
- ``update``: a breaker outcome through ``update`` (a write every time: its window counts calls);
- ``record``: the same outcome through ``record`` (held up to 20 ms, written with the key's others);
- ``get``: a cooldown or health read;
- ``one call``: what one upstream call asks of the store in the wrappers with rpm and tpm limits (breaker
  admit and settle, cooldown check, rpm and tpm acquire, tpm correction, health check): 7 store calls;
  ``one call, new`` is the same through the two calls the wrappers are to adopt: rpm and tpm acquired by
  one ``take_windows`` and the breaker's success settled by ``record`` (6 store calls);
- ``stack``: one call through a real deployment stack (``config.deployment_stack``, rpm and tpm set) over a
  model that answers at once: what the wrappers as built ask of the store, with nothing else measured
  but the wrappers' own work (the same in both stores, so Redis minus memory is the store's cost).

Held writes are flushed before a row's clock stops, so their cost is counted. Each row is the best of
three runs (the machine's other work only ever adds time).

The target: Redis adds at most 150 µs of client CPU per upstream call (``stack`` rows, Redis minus memory).

Usage: python benchmarks/state.py [--calls N] [--concurrency C] [--only OPERATION ...]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable

from redis.utils import HIREDIS_AVAILABLE

from model_orchestrator.config.deployment_stack import DeploymentContext, build_deployment_stack
from model_orchestrator.config.schema import ModelConfig, ResilienceConfig
from model_orchestrator.core.clock import SystemClock
from model_orchestrator.core.events import EventBus
from model_orchestrator.core.model import ChatModel
from model_orchestrator.core.pricing import Price
from model_orchestrator.core.profile import ModelProfile
from model_orchestrator.core.request import ChatRequest
from model_orchestrator.core.request_scope import RequestScope, request_scope
from model_orchestrator.core.response import Completion, StreamDelta
from model_orchestrator.core.usage import Usage
from model_orchestrator.resilience.circuit_breaker import BreakerPolicy, BreakerState, record_success
from model_orchestrator.resilience.redis_state import RedisStateStore, state_client
from model_orchestrator.resilience.shared_state import FailoverStateStore
from model_orchestrator.resilience.state_store import MemoryStateStore, StateStore, WindowTake
from model_orchestrator.testing import FakeClock

POLICY = BreakerPolicy()
REPEATS = 3
Operation = Callable[[StateStore, int], Awaitable[object]]


async def take(store: StateStore, i: int) -> object:
    return await store.take_window("rpm:d", kind="requests", now=time.time(), limit=10**9, amount=1)


def succeeded(now: float) -> Callable[[BreakerState | None], tuple[BreakerState, None]]:
    """A breaker's change after a successful call (a write every time: its window counts calls)."""
    return lambda old: (record_success(old, POLICY, now), None)


def admitted(old: BreakerState | None) -> tuple[BreakerState | None, None]:
    """A closed breaker admitting a call: nothing to write."""
    return old, None


async def update(store: StateStore, i: int) -> object:
    return await store.update("breaker:d", succeeded(time.time()))


async def record(store: StateStore, i: int) -> object:
    now = time.time()
    return await store.record("breaker:r", lambda old: record_success(old, POLICY, now))


async def get(store: StateStore, i: int) -> object:
    return await store.get("cooldown:d")


async def one_call(store: StateStore, i: int) -> object:
    now = time.time()
    await store.update("breaker:c", admitted)
    await store.get("health:c")
    await store.get("cooldown:c")
    await store.take_window("rpm:c", kind="requests", now=now, limit=10**9, amount=1)
    grant = await store.take_window("tpm:c", kind="units", now=now, limit=10**12, amount=500)
    if grant.slot is not None:
        await store.adjust_window("tpm:c", slot=grant.slot, delta=-100)
    return await store.update("breaker:c", succeeded(now))


async def one_call_new(store: StateStore, i: int) -> object:
    now = time.time()
    await store.update("breaker:e", admitted)
    await store.get("health:e")
    await store.get("cooldown:e")
    takes = [WindowTake("rpm:e", "requests", 10**9, 1), WindowTake("tpm:e", "units", 10**12, 500)]
    _, grant = await store.take_windows(takes, now=now)
    if grant.slot is not None:
        await store.adjust_window("tpm:e", slot=grant.slot, delta=-100)
    return await store.record("breaker:e", lambda old: record_success(old, POLICY, now))


class Answering:
    """A model that answers at once (no network), so a ``stack`` row measures the wrappers alone."""

    name = "bench"
    answer = Completion(
        text="Paris", model="bench", provider="openai", deployment="bench", usage=Usage(10, 5)
    )

    async def complete(self, request: ChatRequest) -> Completion:
        return self.answer

    async def stream(self, request: ChatRequest) -> AsyncIterator[StreamDelta]:
        yield StreamDelta(text="Paris", usage=self.answer.usage)

    async def aclose(self) -> None:
        return None


STACKS: dict[int, ChatModel] = {}
REQUEST = ChatRequest.from_prompt("What is the capital of France?", request_id="bench")


async def stack(store: StateStore, i: int) -> object:
    model = STACKS.get(id(store))
    if model is None:
        config = ModelConfig(
            name="bench",
            provider="openai",
            model="bench",
            api_base="http://127.0.0.1:1/v1",
            rpm=10**9,
            tpm=10**12,
        )
        profile = ModelProfile("bench", Price(1.0, 2.0), 8000, 1000)
        context = DeploymentContext(
            config, "bench@1", profile, ResilienceConfig(), store, SystemClock(), EventBus()
        )
        model = STACKS[id(store)] = build_deployment_stack(Answering(), context)
    with request_scope(RequestScope("bench")):
        return await model.complete(REQUEST)


OPERATIONS: dict[str, tuple[Operation, int]] = {
    "take_window": (take, 1),
    "update": (update, 1),
    "record": (record, 1),
    "get": (get, 1),
    "one call": (one_call, 7),
    "one call, new": (one_call_new, 6),
    "stack": (stack, 6),
}


def start_server() -> tuple[subprocess.Popen[bytes], str, str]:
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("redis-server not found: apt-get install redis-server")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    directory = tempfile.mkdtemp(prefix="orchestrator-bench-redis-")
    args = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    process = subprocess.Popen([*args, "--dir", directory], stdout=subprocess.DEVNULL)
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
            break
        except OSError:
            time.sleep(0.02)
    return process, f"redis://127.0.0.1:{port}/0", directory


async def server_cpu(store: StateStore) -> float:
    if not isinstance(store, FailoverStateStore):
        return 0.0
    info = await store._shared._client.info("cpu")  # type: ignore[attr-defined]
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


async def measure(store: StateStore, operation: Operation, calls: int, concurrency: int) -> tuple[float, ...]:
    """The run of ``REPEATS`` with the least client CPU (the others lost time to the machine's other
    work): wall, client CPU and server CPU, µs per operation."""
    for i in range(min(200, calls)):  # warm up: connections, script cache
        await operation(store, i)
    runs = [await measure_once(store, operation, calls, concurrency) for _ in range(REPEATS)]
    return min(runs, key=lambda run: run[1])


async def measure_once(
    store: StateStore, operation: Operation, calls: int, concurrency: int
) -> tuple[float, float, float]:
    server_before = await server_cpu(store)
    wall, cpu = time.perf_counter(), time.process_time()
    if concurrency == 1:
        for i in range(calls):
            await operation(store, i)
    else:
        semaphore = asyncio.Semaphore(concurrency)

        async def limited(i: int) -> None:
            async with semaphore:
                await operation(store, i)

        await asyncio.gather(*(limited(i) for i in range(calls)))
    if isinstance(store, FailoverStateStore):
        await store._shared.flush()  # type: ignore[attr-defined]
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    server = await server_cpu(store) - server_before
    return wall / calls * 1e6, cpu / calls * 1e6, server / calls * 1e6


async def main(calls: int, concurrency: int, only: list[str]) -> None:
    process, url, directory = start_server()
    redis = RedisStateStore(state_client(url))
    stores: dict[str, StateStore] = {
        "memory": MemoryStateStore(),
        "redis": FailoverStateStore(redis, clock=FakeClock(), bus=EventBus()),
    }
    parser = "hiredis" if HIREDIS_AVAILABLE else "redis-py's own"
    print(f"{os.cpu_count()} cores; {calls} calls per row; µs per operation")
    print(f"reply parser: {parser}; load average {os.getloadavg()[0]:.1f}")
    print(
        f"{'operation':<16} {'store':<7} {'in flight':>9} {'wall':>9} {'client CPU':>11} {'server CPU':>11}"
    )
    try:
        for name, (operation, _) in OPERATIONS.items():
            if only and name not in only:
                continue
            for in_flight in (1, concurrency):
                for label, store in stores.items():
                    wall, cpu, server = await measure(store, operation, calls, in_flight)
                    print(f"{name:<16} {label:<7} {in_flight:>9} {wall:>9.1f} {cpu:>11.1f} {server:>11.1f}")
    finally:
        await redis.aclose()
        process.kill()
        process.wait()
        shutil.rmtree(directory, ignore_errors=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--only", nargs="*", default=[], choices=list(OPERATIONS), help="rows to run (all)")
    options = parser.parse_args()
    asyncio.run(main(options.calls, options.concurrency, options.only))
