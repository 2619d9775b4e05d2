"""Which HTTP server stack the gateway runs on, chosen by measurement (docs/decisions.md has the figures).

Every candidate serves the same handler: parse a Chat Completions body with the wire DTOs, answer it with
``Orchestrator.complete`` against a FakeUpstream in its own process, render the wire response with four
metadata headers. Only the stack differs:
  - raw-asgi/uvicorn:      a bare ASGI callable on uvicorn (httptools parser, uvloop)
  - starlette/uvicorn:     a Starlette route on uvicorn (httptools, uvloop)
  - starlette/uvicorn-h11: the same on uvicorn's pure-Python defaults (h11, asyncio loop)
  - aiohttp.web/uvloop:    an aiohttp.web route (aiohttp is already a core dependency) on uvloop
  - aiohttp.web/asyncio:   the same on the default asyncio loop
Each server runs in its own process; the load generator (this process) measures RPS, p50/p99 latency, and
the server's CPU seconds (RPS per core = requests / server CPU seconds) at concurrency 32 and 128.

Usage: python benchmarks/gateway_stack.py [--requests N] [--rounds N] [--stacks a,b]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _load import HEADER, LoadResult, free_port, row, run_load, wait_port  # noqa: E402

STACKS = (
    "raw-asgi/uvicorn",
    "starlette/uvicorn",
    "starlette/uvicorn-h11",
    "aiohttp.web/uvloop",
    "aiohttp.web/asyncio",
)
LEVELS = (32, 128)
Handler = Callable[[bytes], Awaitable[tuple[bytes, list[tuple[str, str]]]]]


def make_handler(upstream: str) -> tuple[Handler, Callable[[], Awaitable[None]]]:
    """The work every stack does per request, and a close function."""
    from model_orchestrator.config.loader import parse_config
    from model_orchestrator.core.messages import Message
    from model_orchestrator.orchestrator import Orchestrator
    from model_orchestrator.wire import ChatCompletion, ChatCompletionRequest, Choice, ResponseMessage

    config = parse_config(
        "models:\n"
        f"  - {{name: bench, provider: openai, model: bench, api_base: '{upstream}/v1',"
        " api_key_env: BENCH_KEY, price: {input: 1, output: 2}}\n"
    )
    orch = Orchestrator(config, env={"BENCH_KEY": "k"})

    async def handle(body: bytes) -> tuple[bytes, list[tuple[str, str]]]:
        request = ChatCompletionRequest.model_validate_json(body)
        messages = [
            Message.of(m.role, m.content if isinstance(m.content, str) else "") for m in request.messages
        ]
        result = await orch.complete(messages, model=request.model, max_tokens=request.max_tokens)
        answer = ChatCompletion(
            id=f"chatcmpl-{result.metadata['request_id']}",
            created=0,
            model=result.model_used,
            choices=[Choice(message=ResponseMessage(content=result.response), finish_reason="stop")],
        )
        headers = [
            ("x-orchestrator-request-id", str(result.metadata["request_id"])),
            ("x-orchestrator-model-used", result.model_used),
            ("x-orchestrator-strategy", result.strategy),
            ("x-orchestrator-cost", f"{result.cost or 0:.8f}"),
        ]
        return answer.model_dump_json(exclude_none=True).encode(), headers

    return handle, orch.aclose


def serve_raw(upstream: str, port: int, http: str, loop: str) -> None:
    import uvicorn

    handler, _ = make_handler(upstream)

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        chunks = []
        more = True
        while more:
            message = await receive()
            chunks.append(message.get("body", b""))
            more = message.get("more_body", False)
        body, headers = await handler(b"".join(chunks))
        raw = [(b"content-type", b"application/json")] + [(k.encode(), v.encode()) for k, v in headers]
        await send({"type": "http.response.start", "status": 200, "headers": raw})
        await send({"type": "http.response.body", "body": body})

    uvicorn.run(app, host="127.0.0.1", port=port, http=http, loop=loop, log_level="warning", access_log=False)


def serve_starlette(upstream: str, port: int, http: str, loop: str) -> None:
    import uvicorn
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    handler, _ = make_handler(upstream)

    async def chat(request: Request) -> Response:
        body, headers = await handler(await request.body())
        return Response(body, media_type="application/json", headers=dict(headers))

    app = Starlette(routes=[Route("/v1/chat/completions", chat, methods=["POST"])])
    uvicorn.run(app, host="127.0.0.1", port=port, http=http, loop=loop, log_level="warning", access_log=False)


def serve_aiohttp(upstream: str, port: int, loop: str) -> None:
    from aiohttp import web

    if loop == "uvloop":
        import uvloop

        uvloop.install()
    handler, close = make_handler(upstream)

    async def chat(request: web.Request) -> web.Response:
        body, headers = await handler(await request.read())
        return web.Response(body=body, content_type="application/json", headers=dict(headers))

    async def on_cleanup(_app: web.Application) -> None:
        await close()

    app = web.Application()
    app.router.add_post("/v1/chat/completions", chat)
    app.on_cleanup.append(on_cleanup)
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None)


def serve(stack: str, upstream: str, port: int) -> None:
    if stack == "raw-asgi/uvicorn":
        serve_raw(upstream, port, "httptools", "uvloop")
    elif stack == "starlette/uvicorn":
        serve_starlette(upstream, port, "httptools", "uvloop")
    elif stack == "starlette/uvicorn-h11":
        serve_starlette(upstream, port, "h11", "asyncio")
    elif stack == "aiohttp.web/uvloop":
        serve_aiohttp(upstream, port, "uvloop")
    elif stack == "aiohttp.web/asyncio":
        serve_aiohttp(upstream, port, "asyncio")
    else:
        raise SystemExit(f"unknown stack {stack!r}; expected one of {', '.join(STACKS)}")


def start_upstream() -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, str(HERE / "_upstream.py")], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    return proc, proc.stdout.readline().strip()


def measure_stack(stack: str, upstream: str, requests: int) -> dict[int, LoadResult]:
    port = free_port()
    command = [sys.executable, __file__, "--serve", stack, "--upstream", upstream, "--port", str(port)]
    proc = subprocess.Popen(command)
    try:
        wait_port(port, proc)
        url = f"http://127.0.0.1:{port}/v1/chat/completions"
        return {
            c: asyncio.run(run_load(url, requests=requests, concurrency=c, server_pid=proc.pid))
            for c in (32, 128)
        }
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def median_result(runs: list[LoadResult]) -> LoadResult:
    """The median of each figure over rounds (the machine is shared: one round can be unlucky)."""
    cpus = [r.server_cpu for r in runs if r.server_cpu is not None]
    return LoadResult(
        requests=runs[0].requests,
        rps=statistics.median(r.rps for r in runs),
        p50_ms=statistics.median(r.p50_ms for r in runs),
        p99_ms=statistics.median(r.p99_ms for r in runs),
        errors=sum(r.errors for r in runs),
        server_cpu=statistics.median(cpus) if cpus else None,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=3, help="rounds over every stack, interleaved")
    parser.add_argument("--stacks", default=",".join(STACKS))
    parser.add_argument("--serve", help=argparse.SUPPRESS)
    parser.add_argument("--upstream", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.upstream, args.port)
        return
    stacks = args.stacks.split(",")
    upstream_proc, upstream = start_upstream()
    runs: dict[str, dict[int, list[LoadResult]]] = {s: {c: [] for c in LEVELS} for s in ("direct", *stacks)}
    try:
        direct_url = f"{upstream}/v1/chat/completions"
        for _ in range(args.rounds):
            for c in LEVELS:
                runs["direct"][c].append(
                    asyncio.run(run_load(direct_url, requests=args.requests, concurrency=c))
                )
            for stack in stacks:
                for c, result in measure_stack(stack, upstream, args.requests).items():
                    runs[stack][c].append(result)
    finally:
        assert upstream_proc.stdin is not None
        upstream_proc.stdin.close()
        upstream_proc.wait(timeout=10)
    print(
        f"{args.requests} requests per row, median of {args.rounds} interleaved rounds; "
        "upstream, servers, load generator: own processes"
    )
    print(HEADER)
    for c in LEVELS:
        direct = median_result(runs["direct"][c])
        print(row("FakeUpstream directly", c, direct))
        for stack in stacks:
            print(row(stack, c, median_result(runs[stack][c]), direct))


if __name__ == "__main__":
    main()
