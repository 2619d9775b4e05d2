"""The gateway's cost per request: RPS and p50/p99 latency via `orchestrator serve` vs FakeUpstream directly.

One FakeUpstream in its own process; the gateway (`orchestrator serve`, auth on, ledger on, its real
config path) in another; this process is the load generator. At concurrency 32 and 128 in the same run it
prints requests per second, requests per CPU-second of the server process (RPS per core), p50/p99
latency, the latency the gateway adds over calling the upstream directly, and the RPS ratio.
With ``--litellm PATH`` (the `litellm` command of a LiteLLM proxy installed elsewhere, e.g. a throwaway
venv; never a dependency of this project) LiteLLM's proxy is measured the same way as the yardstick.

Usage: python benchmarks/gateway.py [--requests N] [--litellm /tmp/litellm-venv/bin/litellm]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _load import HEADER, LoadResult, free_port, row, run_load, wait_port  # noqa: E402

MASTER = "sk-bench-0123456789abcdef0123456789abcdef"
LEVELS = (32, 128)
_QUIET_LOGGING = """{"version": 1, "disable_existing_loggers": false,
 "loggers": {"uvicorn.access": {"level": "WARNING"}, "LiteLLM": {"level": "WARNING"}}}"""


def start_upstream() -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, str(HERE / "_upstream.py")], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    return proc, proc.stdout.readline().strip()


def orchestrator_command() -> list[str]:
    found = shutil.which("orchestrator") or str(Path(sys.executable).with_name("orchestrator"))
    return [found] if Path(found).exists() else [sys.executable, "-m", "model_orchestrator"]


def start_gateway(upstream: str, workdir: Path) -> tuple[subprocess.Popen[bytes], int]:
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


def start_litellm(litellm: str, upstream: str, workdir: Path) -> tuple[subprocess.Popen[bytes], int]:
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


def measure(port: int, proc: subprocess.Popen[bytes], requests: int) -> dict[int, LoadResult]:
    url = f"http://127.0.0.1:{port}/v1/chat/completions"
    headers = {"authorization": f"Bearer {MASTER}"}
    return {
        c: asyncio.run(run_load(url, requests=requests, concurrency=c, headers=headers, server_pid=proc.pid))
        for c in LEVELS
    }


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--litellm", help="path of a `litellm` command (LiteLLM proxy) to measure too")
    args = parser.parse_args()
    upstream_proc, upstream = start_upstream()
    servers: dict[str, dict[int, LoadResult]] = {}
    try:
        direct_url = f"{upstream}/v1/chat/completions"
        direct = {c: asyncio.run(run_load(direct_url, requests=args.requests, concurrency=c)) for c in LEVELS}
        with tempfile.TemporaryDirectory() as workdir:
            proc, port = start_gateway(upstream, Path(workdir))
            try:
                servers["orchestrator serve"] = measure(port, proc, args.requests)
            finally:
                stop(proc)
            if args.litellm:
                proc, port = start_litellm(args.litellm, upstream, Path(workdir))
                try:
                    servers["LiteLLM proxy"] = measure(port, proc, args.requests)
                finally:
                    stop(proc)
    finally:
        assert upstream_proc.stdin is not None
        upstream_proc.stdin.close()
        upstream_proc.wait(timeout=10)
    print(
        f"{args.requests} requests per row after 200 warm-up; upstream, server, load generator: own processes"
    )
    print(HEADER)
    for concurrency in LEVELS:
        print(row("FakeUpstream directly", concurrency, direct[concurrency]))
        for name, figures in servers.items():
            print(row(name, concurrency, figures[concurrency], direct[concurrency]))
    if "LiteLLM proxy" in servers:
        ours, theirs = servers["orchestrator serve"], servers["LiteLLM proxy"]
        for c in LEVELS:
            per_core = (ours[c].rps_per_core or 0) / (theirs[c].rps_per_core or 1)
            added_ours = ours[c].p50_ms - direct[c].p50_ms
            added_theirs = theirs[c].p50_ms - direct[c].p50_ms
            print(
                f"concurrency {c}: RPS per core {per_core:.2f}x LiteLLM's; added p50 {added_ours:.1f} ms vs "
                f"{added_theirs:.1f} ms; p99 {ours[c].p99_ms:.1f} ms vs {theirs[c].p99_ms:.1f} ms"
            )


if __name__ == "__main__":
    main()
