"""What carrying tools costs the gateway: server CPU per call of a tool-call request vs a plain completion.

Two FakeUpstreams in their own processes (one answers text, one answers with a tool call, so each request
gets the answer its kind would get), the gateway (`orchestrator serve`, auth and ledger on) in another, this
process as the load generator. Each case is measured in alternating rounds (plain, tools, plain, tools,
...) so that drift in a shared machine's load hits both alike; the median round's server CPU seconds per
call is printed, with each case's ratio to the plain chat completion (the target for tools: within 10 %).

Cases are rows of ``CASES``: a label, a path and a body; the model name picks the upstream. The Messages
and Responses API rows send the plain question to the plain (Chat Completions) upstream, so their ratio is
what the other front door costs over ``/v1/chat/completions`` for the same answer (target: within 10 %).

Usage: python benchmarks/tools.py [--requests N] [--rounds N] [--concurrency C]
       python benchmarks/tools.py --serve-upstream text|tools   (internal: one upstream process)
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _load import free_port, run_load, wait_port  # noqa: E402
from gateway import MASTER, orchestrator_command, stop  # noqa: E402

QUESTION = [{"role": "user", "content": "What is the weather in Paris, and what time is it there?"}]
TOOLS: list[dict[str, Any]] = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "The current weather in a city",
            "parameters": {
                "type": "object",
                "properties": {
                    "city": {"type": "string", "description": "The city's name"},
                    "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
                },
                "required": ["city", "unit"],
                "additionalProperties": False,
            },
            "strict": True,
        },
    },
    {
        "type": "function",
        "function": {
            "name": "get_time",
            "description": "The local time in a time zone",
            "parameters": {
                "type": "object",
                "properties": {"zone": {"type": "string"}},
                "required": ["zone"],
                "additionalProperties": False,
            },
            "strict": True,
        },
    },
]


@dataclass(frozen=True)
class Case:
    """One kind of request: a label, the gateway path and the JSON body."""

    label: str
    path: str
    body: dict[str, Any]


CASES = (
    Case("plain chat completion", "/v1/chat/completions", {"model": "plain", "messages": QUESTION}),
    Case(
        "tool-call request",
        "/v1/chat/completions",
        {"model": "tools", "messages": QUESTION, "tools": TOOLS, "tool_choice": "auto"},
    ),
    # The other front doors, in front of the same upstream and answer as the plain completion.
    Case("Messages API", "/v1/messages", {"model": "plain", "max_tokens": 256, "messages": QUESTION}),
    Case("Responses API", "/v1/responses", {"model": "plain", "input": QUESTION}),
)


def serve_upstream(kind: str) -> None:
    """Run one FakeUpstream answering text or a tool call; print its URL, serve until stdin closes."""
    from model_orchestrator.core.tools import ToolCall
    from model_orchestrator.testing import FakeUpstream, Reply

    if kind == "tools":
        call = ToolCall("call_bench", "get_weather", '{"city":"Paris","unit":"celsius"}')
        reply = Reply("", tool_calls=(call,), finish_reason="tool_calls", usage=(60, 18), logprobs=False)
    else:
        text = "It is 21 °C and sunny in Paris; the local time is 14:05."
        reply = Reply(text, usage=(20, 18), logprobs=False)
    with FakeUpstream(default_reply=reply) as upstream:
        print(upstream.url, flush=True)
        sys.stdin.read()


def start_upstream(kind: str) -> tuple[subprocess.Popen[str], str]:
    command = [sys.executable, __file__, "--serve-upstream", kind]
    proc = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    return proc, proc.stdout.readline().strip()


def start_gateway(upstreams: dict[str, str], workdir: Path) -> tuple[subprocess.Popen[bytes], int]:
    config = workdir / "orchestrator.yaml"
    rows = [
        f"  - {{name: {name}, provider: openai, model: bench, api_base: '{url}/v1', api_key_env: BENCH_KEY,"
        " price: {input: 1, output: 2}, capabilities: [text, tools, json, json_schema, vision]}"
        for name, url in upstreams.items()
    ]
    config.write_text("models:\n" + "\n".join(rows) + "\n")
    port = free_port()
    env = {**os.environ, "BENCH_KEY": "k", "ORCHESTRATOR_MASTER_KEY": MASTER}
    env["ORCHESTRATOR_HOME"] = str(workdir)
    command = [*orchestrator_command(), "--config", str(config), "serve", "--port", str(port)]
    proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_port(port, proc)
    return proc, port


def measure(port: int, pid: int, requests: int, rounds: int, concurrency: int) -> dict[str, list[float]]:
    """Server CPU seconds per call, one figure per round, for every case."""
    headers = {"authorization": f"Bearer {MASTER}"}
    per_call: dict[str, list[float]] = {case.label: [] for case in CASES}
    for _ in range(rounds):
        for case in CASES:
            url = f"http://127.0.0.1:{port}{case.path}"
            result = asyncio.run(
                run_load(
                    url,
                    requests=requests,
                    concurrency=concurrency,
                    headers=headers,
                    body=case.body,
                    server_pid=pid,
                    warmup=100,
                )
            )
            if result.errors or result.server_cpu is None:
                raise SystemExit(f"{case.label}: {result.errors} errors; is the gateway answering 200?")
            per_call[case.label].append(result.server_cpu / result.requests)
    return per_call


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=1200)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--serve-upstream", choices=("text", "tools"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_upstream:
        serve_upstream(args.serve_upstream)
        return
    upstreams = {"plain": start_upstream("text"), "tools": start_upstream("tools")}
    try:
        with tempfile.TemporaryDirectory() as workdir:
            proc, port = start_gateway({name: url for name, (_, url) in upstreams.items()}, Path(workdir))
            try:
                per_call = measure(port, proc.pid, args.requests, args.rounds, args.concurrency)
            finally:
                stop(proc)
    finally:
        for upstream_proc, _ in upstreams.values():
            assert upstream_proc.stdin is not None
            upstream_proc.stdin.close()
            upstream_proc.wait(timeout=10)
    print(
        f"{args.requests} requests per case and round, {args.rounds} alternating rounds, concurrency "
        f"{args.concurrency}; gateway server CPU per call (median round; all rounds in brackets)"
    )
    baseline = statistics.median(per_call[CASES[0].label])
    for case in CASES:
        figures = per_call[case.label]
        median = statistics.median(figures)
        rounds = ", ".join(f"{f * 1e6:.0f}" for f in figures)
        print(f"{case.label:28} {median * 1e6:8.0f} µs  ({rounds})  {median / baseline - 1:+6.1%} vs plain")


if __name__ == "__main__":
    main()
