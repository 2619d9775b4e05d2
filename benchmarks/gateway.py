"""The gateway's CPU per request against a featureless pass-through, and its latency against the upstream.

One FakeUpstream in its own process; the gateway (`orchestrator serve`, one worker, auth, the default SQLite
ledger and Prometheus metrics on, its real config path) in another; `benchmarks/passthrough.py` (raw ASGI
on uvicorn, one pooled aiohttp session, bytes forwarded as they come: the floor any Python gateway pays)
in another; this process is the load generator. For non-streamed answers and for answers streamed in 20
chunks (a second FakeUpstream), at concurrency 32 (``--levels`` for more), in the same run it prints
requests per second, the server process's CPU µs per request (from /proc, not wall time, deferred
ledger writes included), p50/p99
latency, the latency added over calling the upstream directly, and our CPU per request over the
pass-through's (issue 13's target: at most 3x). ``--rounds N`` interleaves N rounds and takes medians.
With ``--litellm PATH`` (the `litellm` command of a LiteLLM proxy installed elsewhere, e.g. a throwaway
venv; never a dependency of this project) LiteLLM's proxy is measured the same way as a yardstick.

Usage: python benchmarks/gateway.py [--requests N] [--rounds N] [--levels 32,128] [--litellm PATH]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import urllib.request
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _load import BODY, LoadResult, free_port, run_load, wait_port  # noqa: E402
from gateway_stack import median_result  # noqa: E402

MASTER = "sk-bench-0123456789abcdef0123456789abcdef"
STREAM_CHUNKS = 20
MODES = {"non-streamed": None, f"streamed ({STREAM_CHUNKS} chunks)": STREAM_CHUNKS}
OURS, FLOOR, LITELLM = "orchestrator serve", "pass-through (floor)", "LiteLLM proxy"
TARGET = 3.0
# Seconds of quiet around each measured load: longer than the ledger's flush interval (1 s), so the CPU
# of writing the measured requests' rows is counted and the warm-up's is not.
SETTLE = 1.5
_QUIET_LOGGING = """{"version": 1, "disable_existing_loggers": false,
 "loggers": {"uvicorn.access": {"level": "WARNING"}, "LiteLLM": {"level": "WARNING"}}}"""

Server = tuple[subprocess.Popen[bytes], int]


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


def stop_upstream(proc: subprocess.Popen[str]) -> None:
    assert proc.stdin is not None
    proc.stdin.close()
    proc.wait(timeout=10)


def orchestrator_command() -> list[str]:
    found = shutil.which("orchestrator") or str(Path(sys.executable).with_name("orchestrator"))
    return [found] if Path(found).exists() else [sys.executable, "-m", "model_orchestrator"]


def start_gateway(upstream: str, workdir: Path) -> Server:
    """`orchestrator serve`, one worker: auth (master key), the default SQLite ledger and metrics on."""
    config = workdir / "orchestrator.yaml"
    config.write_text(
        "models:\n"
        f"  - {{name: bench, provider: openai, model: bench, api_base: '{upstream}/v1',"
        " api_key_env: BENCH_KEY, price: {input: 1, output: 2}}\n"
    )
    port = free_port()
    env = {
        **os.environ,
        "BENCH_KEY": "k",
        "ORCHESTRATOR_MASTER_KEY": MASTER,
        "ORCHESTRATOR_HOME": str(workdir),
    }
    command = [*orchestrator_command(), "--config", str(config), "serve", "--port", str(port)]
    proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_port(port, proc)
    return proc, port


def start_passthrough(upstream: str, _workdir: Path) -> Server:
    port = free_port()
    command = [sys.executable, str(HERE / "passthrough.py"), "--upstream", upstream, "--port", str(port)]
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_port(port, proc)
    return proc, port


def litellm_starter(litellm: str) -> Callable[[str, Path], Server]:
    def start(upstream: str, workdir: Path) -> Server:
        config = workdir / "litellm.yaml"
        config.write_text(
            "model_list:\n"
            "  - model_name: bench\n"
            f"    litellm_params: {{model: openai/bench, api_base: '{upstream}/v1', api_key: k}}\n"
            "litellm_settings: {telemetry: false}\n"
            f"general_settings: {{master_key: {MASTER}}}\n"
        )
        logging_config = workdir / "logging.json"
        logging_config.write_text(_QUIET_LOGGING)
        port = free_port()
        env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True", "LITELLM_LOG": "ERROR"}
        command = [litellm, "--config", str(config), "--host", "127.0.0.1", "--port", str(port)]
        proc = subprocess.Popen(
            [*command, "--log_config", str(logging_config)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_port(port, proc, timeout=180)
        return proc, port

    return start


def measure(
    server: Server, requests: int, levels: tuple[int, ...], chunks: int | None
) -> dict[int, LoadResult]:
    proc, port = server
    url = f"http://127.0.0.1:{port}/v1/chat/completions"
    headers = {"authorization": f"Bearer {MASTER}"}
    body = {**BODY, "stream": True} if chunks else BODY
    return {
        c: asyncio.run(
            run_load(
                url,
                requests=requests,
                concurrency=c,
                headers=headers,
                body=body,
                server_pid=proc.pid,
                settle=SETTLE,
            )
        )
        for c in levels
    }


def features_on(port: int, workdir: Path) -> str:
    """Evidence that the gateway measured had its features on: metrics served, ledger rows written."""
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/metrics", headers={"authorization": f"Bearer {MASTER}"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        metrics = "orchestrator_gateway_http_requests_total" in response.read().decode()
    ledger = workdir / "ledger.sqlite3"
    with sqlite3.connect(ledger) as db:
        tables = [name for (name,) in db.execute("select name from sqlite_master where type = 'table'")]
        rows = db.execute("select count(*) from attempts").fetchone()[0] if "attempts" in tables else 0
    return f"auth on, metrics {'on' if metrics else 'MISSING'}, ledger rows {rows} (tables: {len(tables)})"


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()


def cpu_us(result: LoadResult) -> float:
    return (result.server_cpu or 0.0) / result.requests * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=1000, help="measured requests per row")
    parser.add_argument("--rounds", type=int, default=1, help="interleaved rounds; figures are medians")
    parser.add_argument("--levels", default="32", help="concurrency levels, comma-separated")
    parser.add_argument("--litellm", help="path of a `litellm` command (LiteLLM proxy) to measure too")
    args = parser.parse_args()
    levels = tuple(int(c) for c in args.levels.split(","))
    starters: dict[str, Callable[[str, Path], Server]] = {OURS: start_gateway, FLOOR: start_passthrough}
    if args.litellm:
        starters[LITELLM] = litellm_starter(args.litellm)
    runs: dict[tuple[str, str, int], list[LoadResult]] = {}
    evidence: list[str] = []
    for _ in range(args.rounds):
        for mode, chunks in MODES.items():
            upstream_proc, upstream = start_upstream(chunks)
            try:
                direct_url = f"{upstream}/v1/chat/completions"
                body = {**BODY, "stream": True} if chunks else BODY
                for c in levels:
                    direct = asyncio.run(
                        run_load(direct_url, requests=args.requests, concurrency=c, body=body)
                    )
                    runs.setdefault((mode, "FakeUpstream directly", c), []).append(direct)
                for name, start in starters.items():
                    with tempfile.TemporaryDirectory() as workdir:
                        server = start(upstream, Path(workdir))
                        try:
                            for c, result in measure(server, args.requests, levels, chunks).items():
                                runs.setdefault((mode, name, c), []).append(result)
                            if name == OURS:
                                evidence.append(f"{mode}: {features_on(server[1], Path(workdir))}")
                        finally:
                            stop(server[0])
            finally:
                stop_upstream(upstream_proc)
    report(runs, levels, args, evidence)


def report(
    runs: dict[tuple[str, str, int], list[LoadResult]],
    levels: tuple[int, ...],
    args: argparse.Namespace,
    evidence: list[str],
) -> None:
    cores = os.cpu_count()
    print(
        f"cores: {cores} ({len(os.sched_getaffinity(0))} usable), load average {os.getloadavg()[0]:.1f}; "
        f"{args.requests} requests per row after 200 warm-up, median of {args.rounds} round(s); "
        "upstream, server, load generator: own processes; one server worker"
    )
    for line in evidence:
        print(f"  {OURS}, {line}")
    servers = [OURS, FLOOR] + ([LITELLM] if args.litellm else [])
    header = (
        f"{'mode':22} {'server':22} {'conc':>4} {'rps':>6} {'CPU µs/req':>10} {'x floor':>7} "
        f"{'p50 ms':>7} {'p99 ms':>7} {'errs':>5} {'added p50/p99 ms':>17}"
    )
    print(header)
    summary = []
    for mode in MODES:
        for c in levels:
            direct = median_result(runs[(mode, "FakeUpstream directly", c)])
            floor = median_result(runs[(mode, FLOOR, c)])
            print(
                f"{mode:22} {'FakeUpstream directly':22} {c:>4} {direct.rps:6.0f} {'-':>10} {'-':>7} "
                f"{direct.p50_ms:7.2f} {direct.p99_ms:7.2f} {direct.errors:>5}"
            )
            for name in servers:
                result = median_result(runs[(mode, name, c)])
                ratio = cpu_us(result) / cpu_us(floor)
                added = f"+{result.p50_ms - direct.p50_ms:.1f} / +{result.p99_ms - direct.p99_ms:.1f}"
                print(
                    f"{mode:22} {name:22} {c:>4} {result.rps:6.0f} {cpu_us(result):10.0f} {ratio:7.2f} "
                    f"{result.p50_ms:7.2f} {result.p99_ms:7.2f} {result.errors:>5} {added:>17}"
                )
            ours = median_result(runs[(mode, OURS, c)])
            ratio = cpu_us(ours) / cpu_us(floor)
            verdict = "met" if ratio <= TARGET else "not met"
            summary.append(
                f"{mode}, concurrency {c}: {cpu_us(ours):.0f} µs vs {cpu_us(floor):.0f} µs CPU per request "
                f"= {ratio:.1f}x the pass-through (target <= {TARGET:.0f}x: {verdict})"
            )
    print("\n".join(["", "gateway CPU per request (server process, /proc), one worker:", *summary]))


if __name__ == "__main__":
    main()
