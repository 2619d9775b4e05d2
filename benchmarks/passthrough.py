"""The gateway's floor: a featureless Python pass-through, raw ASGI on uvicorn (httptools, uvloop) in, one
pooled aiohttp session out, the upstream's bytes forwarded as they come (streams too). No auth, no
parsing, no ledger, no metrics: what any Python gateway pays to move a request through, nothing more.

Usage: python benchmarks/passthrough.py --upstream http://127.0.0.1:PORT [--port 8080]
"""

from __future__ import annotations

import argparse
from typing import Any

import aiohttp
import uvicorn

_FORWARDED = frozenset({b"content-type", b"authorization"})
_RETURNED = frozenset({"content-type", "content-length"})


def make_app(upstream: str) -> Any:
    session: aiohttp.ClientSession | None = None

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        nonlocal session
        if scope["type"] == "lifespan":
            await receive()  # lifespan.startup
            session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
            await send({"type": "lifespan.startup.complete"})
            await receive()  # lifespan.shutdown
            await session.close()
            await send({"type": "lifespan.shutdown.complete"})
            return
        assert session is not None
        body = b""
        more = True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        headers = {k.decode(): v.decode() for k, v in scope["headers"] if k in _FORWARDED}
        url = upstream + scope["path"]
        async with session.request(scope["method"], url, data=body, headers=headers) as answer:
            returned = [(k.encode(), v.encode()) for k, v in answer.headers.items() if k.lower() in _RETURNED]
            await send({"type": "http.response.start", "status": answer.status, "headers": returned})
            async for chunk in answer.content.iter_any():
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b""})

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--upstream", required=True, help="base URL the request path is appended to")
    parser.add_argument("--port", type=int, default=8080)
    args = parser.parse_args()
    app = make_app(args.upstream.rstrip("/"))
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=args.port,
        http="httptools",
        loop="uvloop",
        log_level="warning",
        access_log=False,
    )


if __name__ == "__main__":
    main()
