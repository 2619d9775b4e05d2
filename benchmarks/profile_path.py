"""Where the request path's CPU goes: py-spy samples grouped by concern, weighted by each thread's CPU.

``gateway``: `orchestrator serve` (one worker, auth, ledger and metrics on) under load at concurrency 32
from this process, against a FakeUpstream in its own process. ``library``: ``Orchestrator.complete`` (or
``stream``) on the fallback of ``overhead.py`` (one model with two deployments, SQLite ledger on), in a
plain sequential loop in a child process. ``--stream`` streams 20 chunks.

Method: py-spy samples the thread holding the GIL (``--gil``: waiting threads are not counted); each
main-thread sample is charged to the innermost model_orchestrator frame on its stack (library calls count
for the module that made them; aiohttp client and server frames below the event loop count for the
upstream call and the server), and the main thread's share is scaled by its CPU share from
/proc/PID/task; the ledger's writer threads run SQLite without the GIL, so their CPU is taken from /proc
whole. Needs py-spy (``pip install py-spy``).

Usage: python benchmarks/profile_path.py gateway|library [--stream] [--requests N] [--top N]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

FRAME = re.compile(r"^(?P<fn>.*) \((?P<file>[^()]*?)(?::\d+)?\)$")
LEDGER = "ledger: records, hand-off, SQLAlchemy + SQLite on the writer thread"
CONCERNS = (
    (LEDGER, ("ledger/",)),
    ("upstream call: aiohttp client (request, body writer task, response)", ("providers/http.py",)),
    ("adapter: request build, response/SSE decode", ("providers/", "wire/")),
    ("wrappers: strategies and resilience layers", ("resilience/", "strategies/", "core/observed.py")),
    ("façade: request, scope, events, pricing, result, metrics", ("orchestrator/", "core/", "telemetry/")),
    ("gateway's own code: middlewares, auth, validation, rendering", ("gateway/",)),
)
SERVER = "aiohttp.web server: request handling, socket writes"
LOOP = "event loop and other"
# Functions whose samples are set-up or tear-down, not the request path.
SETUP = ("_find_and_load", "parse_config", "Orchestrator.__init__", "Orchestrator.aclose", "start_upstream")


def concern(frames: list[tuple[str, str]]) -> str:
    """The concern a main-thread sample is charged to (frames outermost first)."""
    ours = [i for i, (_, f) in enumerate(frames) if f.startswith("model_orchestrator/") and "/cli/" not in f]
    files = [f for _, f in frames]
    inner = frames[ours[-1]][1].removeprefix("model_orchestrator/") if ours else ""
    below = files[ours[-1] + 1] if ours and ours[-1] + 1 < len(files) else ""
    if inner in ("", "gateway/server.py"):
        if any(f.startswith("aiohttp/client") for f in files):
            return CONCERNS[1][0]
        return SERVER if any(f.startswith("aiohttp/web") for f in files) else LOOP
    if inner.startswith("gateway/") and below.startswith("aiohttp/web"):
        return SERVER
    return next((name for name, prefixes in CONCERNS if inner.startswith(prefixes)), LOOP)


def summarise(raw: Path, thread_cpu: dict[int, float], top: int) -> None:
    main: Counter[str] = Counter()
    functions: Counter[str] = Counter()
    names: dict[int, str] = {}
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        thread, *rest = stack.split(";")
        found = re.match(r"thread \((\d+)\)(?:: (.*))?", thread)
        if found is None:
            continue
        tid, name = int(found[1]), found[2] or names.get(int(found[1]), "")
        names[tid] = name
        frames = [(m["fn"], m["file"]) for m in map(FRAME.match, rest) if m]
        if name == "MainThread" and frames and not any(fn.startswith(SETUP) for fn, _ in frames):
            main[concern(frames)] += int(count)
            functions[innermost(frames)] += int(count)
    total_cpu = sum(thread_cpu.values()) or 1.0
    shares: dict[str, float] = {}
    for tid, cpu in thread_cpu.items():
        name = names.get(tid, "")
        if name == "MainThread":
            samples = sum(main.values()) or 1
            for key, n in main.items():
                shares[key] = shares.get(key, 0.0) + cpu / total_cpu * n / samples
        else:
            owner = LEDGER if "ledger" in name or "_connection_worker" in name else LOOP
            shares[owner] = shares.get(owner, 0.0) + cpu / total_cpu
    split = ", ".join(f"{names.get(t, '?')} {100 * c / total_cpu:.0f}%" for t, c in thread_cpu.items() if c)
    print(f"CPU by thread: {split}; {sum(main.values())} main-thread samples")
    for key, share in sorted(shares.items(), key=lambda item: -item[1])[:top]:
        print(f"  {100 * share:5.1f}%  {key}")
    samples = sum(functions.values()) or 1
    print("main thread by innermost function of ours (what it calls included), share of its samples:")
    for key, n in functions.most_common(top):
        print(f"  {100 * n / samples:5.1f}%  {key}")


def innermost(frames: list[tuple[str, str]]) -> str:
    ours = [(fn, f) for fn, f in frames if f.startswith("model_orchestrator/") and "/cli/" not in f]
    fn, file = ours[-1] if ours else frames[-1]
    return f"{fn} ({file.removeprefix('model_orchestrator/')})"


def thread_times(pid: int) -> dict[int, float]:
    ticks = os.sysconf("SC_CLK_TCK")
    times = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        fields = Path(f"/proc/{pid}/task/{tid}/stat").read_text().rsplit(")", 1)[1].split()
        times[int(tid)] = (int(fields[11]) + int(fields[12])) / ticks
    return times


def profile_gateway(stream: bool, requests: int, raw: Path) -> dict[int, float]:
    from _load import BODY, run_load
    from gateway import MASTER, STREAM_CHUNKS, start_gateway, start_upstream, stop, stop_upstream

    upstream_proc, upstream = start_upstream(STREAM_CHUNKS if stream else None)
    try:
        with tempfile.TemporaryDirectory() as workdir:
            proc, port = start_gateway(upstream, Path(workdir))
            try:
                url = f"http://127.0.0.1:{port}/v1/chat/completions"
                load = {
                    "concurrency": 32,
                    "headers": {"authorization": f"Bearer {MASTER}"},
                    "body": {**BODY, "stream": True} if stream else BODY,
                }
                asyncio.run(run_load(url, requests=300, warmup=0, **load))  # type: ignore[arg-type]
                spy = subprocess.Popen(
                    ["py-spy", "record", "--pid", str(proc.pid), "--gil", "--threads", "--nonblocking",
                     "--rate", "500", "--format", "raw", "-o", str(raw)],
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                )  # fmt: skip
                time.sleep(1)
                before = thread_times(proc.pid)
                asyncio.run(run_load(url, requests=requests, warmup=0, **load))  # type: ignore[arg-type]
                after = thread_times(proc.pid)
                spy.send_signal(signal.SIGINT)  # py-spy writes its file when interrupted
                spy.wait(timeout=30)
            finally:
                stop(proc)
    finally:
        stop_upstream(upstream_proc)
    return {tid: after[tid] - before.get(tid, 0.0) for tid in after}


def profile_library(stream: bool, calls: int, raw: Path) -> dict[int, float]:
    times = raw.with_suffix(".json")
    child = [sys.executable, __file__, "--child", str(times), "--requests", str(calls)]
    command = ["py-spy", "record", "--gil", "--threads", "--rate", "500", "--format", "raw", "-o", str(raw)]
    subprocess.run(
        [*command, "--", *child, *(["--stream"] if stream else [])], capture_output=True, check=True
    )
    return {int(k): v for k, v in json.loads(times.read_text()).items()}


def child(stream: bool, calls: int, out: Path) -> None:
    """The library loop py-spy watches; writes each thread's CPU seconds over the loop to ``out``."""
    import overhead

    upstream_proc, url = overhead.start_upstream(overhead.STREAM_CHUNKS if stream else None)

    async def loop(home: str) -> dict[int, float]:
        orch = overhead.orchestrator(url, Path(home))
        call = overhead.stream(orch) if stream else overhead.complete(orch)
        for _ in range(50):
            await call()
        before = thread_times(os.getpid())
        for _ in range(calls):
            await call()
        after = thread_times(os.getpid())
        await orch.aclose()
        return {tid: after[tid] - before.get(tid, 0.0) for tid in after}

    try:
        with tempfile.TemporaryDirectory() as home:
            out.write_text(json.dumps(asyncio.run(loop(home))))
    finally:
        assert upstream_proc.stdin is not None
        upstream_proc.stdin.close()
        upstream_proc.wait(timeout=10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path", nargs="?", choices=("gateway", "library"))
    parser.add_argument("--stream", action="store_true", help="stream the answer in 20 chunks")
    parser.add_argument("--requests", type=int, default=3000, help="requests (gateway) or calls (library)")
    parser.add_argument("--top", type=int, default=8)
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.stream, args.requests, args.child)
        return
    if args.path is None or shutil.which("py-spy") is None:
        raise SystemExit("name a path (gateway or library) and install py-spy: pip install py-spy")
    with tempfile.TemporaryDirectory() as scratch:
        raw = Path(scratch) / "samples.txt"
        profile = profile_gateway if args.path == "gateway" else profile_library
        thread_cpu = profile(args.stream, args.requests, raw)
        mode = "streamed (20 chunks)" if args.stream else "non-streamed"
        print(f"{args.path}, {mode}, {args.requests} {'requests' if args.path == 'gateway' else 'calls'}")
        summarise(raw, thread_cpu, args.top)


if __name__ == "__main__":
    main()
