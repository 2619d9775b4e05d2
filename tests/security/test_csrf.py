"""Issue 12.5: with ``--no-auth`` on loopback any web page could POST a ``text/plain`` body that was
executed and billed, and a DNS-rebound name reached the gateway. Against the real gateway on 127.0.0.1."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aiohttp
import pytest

from model_orchestrator.config.loader import parse_config
from model_orchestrator.gateway import Gateway, GatewaySettings
from model_orchestrator.orchestrator import Orchestrator
from model_orchestrator.orchestrator.access import browser_guard
from model_orchestrator.testing import FakeUpstream, Reply
from tests.gateway_helpers import USER, config_text, live_gateway

BODY = json.dumps({"model": "a", "messages": USER})


async def _post(url: str, headers: dict[str, str], body: str = BODY) -> tuple[int, dict[str, object]]:
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{url}/v1/chat/completions", data=body, headers=headers) as response,
    ):
        return response.status, await response.json()


@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"]
)
async def test_a_simple_cross_site_post_is_not_executed(content_type: str) -> None:
    async with FakeUpstream() as up, live_gateway(up, auth=False) as live:
        status, body = await _post(live.url, {"content-type": content_type})
    assert status == 415 and "application/json" in str(body)
    assert up.requests == []  # nothing was executed, nothing billed


async def test_a_dns_rebound_host_is_refused() -> None:
    async with FakeUpstream() as up, live_gateway(up, auth=False) as live:
        status, body = await _post(live.url, {"content-type": "application/json", "host": "evil.example"})
        ok_status, _ = await _post(live.url, {"content-type": "application/json", "host": "localhost:4000"})
    assert status == 403 and "DNS-rebinding" in str(body)
    assert ok_status == 200 and len(up.requests) == 1


async def test_a_browser_origin_is_refused_even_with_a_json_body() -> None:
    async with FakeUpstream() as up, live_gateway(up, auth=False) as live:
        status, body = await _post(
            live.url, {"content-type": "application/json", "origin": "http://evil.example"}
        )
    assert status == 403 and "--allow-origin" in str(body)
    assert up.requests == []


@asynccontextmanager
async def _gateway(up: FakeUpstream, **settings: object) -> AsyncIterator[str]:
    orch = Orchestrator(parse_config(config_text(up)), env={"UP_KEY": "upstream-secret"})
    async with Gateway(orch, GatewaySettings(port=0, auth=False, **settings)) as gateway:  # type: ignore[arg-type]
        yield gateway.url


async def test_configured_origins_and_hosts_are_accepted() -> None:
    async with FakeUpstream() as up:
        up.script(Reply("from the page"), Reply("through the proxy name"))
        settings = {"allowed_origins": ("http://localhost:3000",), "allowed_hosts": ("llm.internal",)}
        async with _gateway(up, **settings) as url:
            page, _ = await _post(
                url, {"content-type": "application/json", "origin": "http://localhost:3000"}
            )
            named, _ = await _post(url, {"content-type": "application/json", "host": "llm.internal:4000"})
            other, _ = await _post(
                url, {"content-type": "application/json", "origin": "http://localhost:3001"}
            )
    assert (page, named, other) == (200, 200, 403)


def test_the_guard_rules() -> None:
    loopback = browser_guard("127.0.0.1")
    for host in ("127.0.0.1:4000", "localhost", "LOCALHOST.:1", "[::1]:4000", "127.0.0.2"):
        assert loopback.refusal(method="GET", host=host, origin=None, content_type=None) is None
    for host in ("evil.example", "10.0.0.1:4000", None, "[bad"):
        refused = loopback.refusal(method="GET", host=host, origin=None, content_type=None)
        assert refused is not None and refused.check == "host"
    for bound in ("0.0.0.0", "10.0.0.5", "::"):  # off loopback every request needs a key anyway
        public = browser_guard(bound)
        assert public.refusal(method="GET", host="gateway.example", origin=None, content_type=None) is None
    json_type = "Application/JSON; charset=utf-8"
    assert loopback.refusal(method="POST", host="localhost", origin=None, content_type=json_type) is None
    null_origin = loopback.refusal(method="GET", host="localhost", origin="null", content_type=None)
    assert null_origin is not None and null_origin.check == "origin"
