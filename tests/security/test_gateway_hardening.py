"""Issue 12.7 and 12.9, the gateway's part: crashes a caller could cause without a key, the master key's
rules, failed-auth throttling, the server banner, and request features refused rather than dropped."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess

import aiohttp
import openai
import pytest

from model_orchestrator.config.loader import parse_config
from model_orchestrator.gateway import Gateway, GatewaySettings, Limits
from model_orchestrator.orchestrator import Orchestrator
from model_orchestrator.orchestrator.access import FailedAuthThrottle
from model_orchestrator.testing import FakeClock, FakeUpstream
from tests.cli_helpers import command, run_cli
from tests.gateway_helpers import MASTER, USER, config_text, live_gateway

LONG_MASTER = "a-master-key-long-enough-for-a-public-address-0123"


async def _raw(url: str, request: bytes) -> bytes:
    host, port = url.removeprefix("http://").rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(request)
    await writer.drain()
    answer = await asyncio.wait_for(reader.read(), 20)
    writer.close()
    return answer


async def test_a_non_utf8_authorization_header_is_401_without_a_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING)
    async with FakeUpstream() as up, live_gateway(up) as live:
        answer = await _raw(
            live.url,
            b"GET /v1/models HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer \xff\xfe\xc3(\r\n"
            b"Connection: close\r\n\r\n",
        )
    assert answer.startswith(b"HTTP/1.1 401"), answer[:200]
    assert b"invalid_api_key" in answer
    assert not [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]


async def test_malformed_requests_get_no_banner_and_log_no_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING)
    async with FakeUpstream() as up, live_gateway(up) as live:
        answers = [
            await _raw(live.url, raw)
            for raw in (b"GARBAGE\r\n\r\n", b"GET /health HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n")
        ]
    for answer in answers:
        assert answer.startswith(b"HTTP/1.0 400"), answer[:100]
        assert b"server: model-orchestrator" in answer.lower() and b"aiohttp" not in answer.lower()
    assert not [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]


async def test_no_server_banner() -> None:
    async with (
        FakeUpstream() as up,
        live_gateway(up) as live,
        aiohttp.ClientSession() as http,
        http.get(f"{live.url}/health") as health,
        http.get(f"{live.url}/nowhere") as missing,
    ):
        banners = [health.headers.get("server", ""), missing.headers.get("server", "")]
    assert banners == ["model-orchestrator", "model-orchestrator"]


async def test_x_api_key_is_accepted_like_a_bearer_key() -> None:
    async with (
        FakeUpstream() as up,
        live_gateway(up) as live,
        aiohttp.ClientSession() as http,
        http.get(f"{live.url}/v1/models", headers={"x-api-key": MASTER}) as response,
    ):
        assert response.status == 200


async def test_failed_attempts_are_throttled_per_address() -> None:
    limits = Limits(auth_failures_per_minute=5)
    async with FakeUpstream() as up, live_gateway(up, limits=limits) as live:
        guesses = [live.client(f"sk-orch-000000000000-guess{i}") for i in range(5)]
        for guess in guesses:
            with pytest.raises(openai.AuthenticationError):
                await guess.models.list()
        with pytest.raises(openai.RateLimitError) as throttled:
            await live.client("sk-orch-000000000000-one-more").models.list()
        with pytest.raises(openai.RateLimitError):
            await live.client(MASTER).models.list()  # the address waits, whatever it presents next
    assert throttled.value.code == "too_many_auth_failures"
    assert int(throttled.value.response.headers["retry-after"]) >= 1


def test_the_throttle_forgets_after_a_minute_and_bounds_its_memory() -> None:
    clock = FakeClock()
    throttle = FailedAuthThrottle(clock, limit=2, max_addresses=3)
    throttle.failed("10.0.0.1")
    assert throttle.retry_after("10.0.0.1") is None
    throttle.failed("10.0.0.1")
    wait = throttle.retry_after("10.0.0.1")
    assert wait is not None and wait > 0
    clock.advance(61)
    assert throttle.retry_after("10.0.0.1") is None
    for i in range(10):
        throttle.failed(f"10.0.1.{i}")
        throttle.failed(f"10.0.1.{i}")
    assert throttle.retry_after("10.0.1.9") is not None
    assert throttle.retry_after("10.0.1.0") is None  # forgotten: at most 3 addresses are kept


async def test_the_master_key_is_stripped_like_the_presented_one() -> None:
    async with FakeUpstream() as up:
        orch = Orchestrator(parse_config(config_text(up)), env={"UP_KEY": "upstream-secret"})
        settings = GatewaySettings(port=0, master_key=f"  {MASTER}\n")
        async with Gateway(orch, settings) as gateway, aiohttp.ClientSession() as http:
            headers = {"authorization": f"Bearer {MASTER}  "}
            async with http.get(f"{gateway.url}/v1/models", headers=headers) as response:
                assert response.status == 200


@pytest.mark.subprocess
def test_a_short_master_key_is_refused_off_loopback() -> None:
    short = run_cli("serve", "--host", "0.0.0.0", env={"ORCHESTRATOR_MASTER_KEY": "hunter2"})
    blank = run_cli("serve", "--host", "0.0.0.0", env={"ORCHESTRATOR_MASTER_KEY": "   \n"})
    assert short.returncode == 2 and "at least 32" in short.stderr and "hunter2" not in short.stderr
    assert blank.returncode == 2 and "needs a master key" in blank.stderr


@pytest.mark.subprocess
def test_hosts_that_cannot_be_served_are_clear_errors() -> None:
    for host in ("[]", "not a host", "192.0.2.1"):  # 192.0.2.1 (TEST-NET) is on no interface here
        refused = run_cli(
            "serve", "--host", host, "--port", "0", env={"ORCHESTRATOR_MASTER_KEY": LONG_MASTER}
        )
        assert refused.returncode == 2, (host, refused.stderr)
        assert "Traceback" not in refused.stderr and "--host" in refused.stderr


@pytest.mark.subprocess
async def test_serve_on_the_ipv6_loopback_in_url_form() -> None:
    env = {k: v for k, v in os.environ.items() if "API_KEY" not in k}
    process = subprocess.Popen(
        [*command(), "serve", "--host", "[::1]", "--port", "0", "--no-auth"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert process.stderr is not None
    try:
        line = await asyncio.wait_for(asyncio.to_thread(process.stderr.readline), 60)
        assert "orchestrator gateway: http://[::1]:" in line, line
        url = line.split("gateway: ", 1)[1].split("/v1", 1)[0]
        async with aiohttp.ClientSession() as http, http.get(f"{url}/health") as response:
            assert response.status == 200
    finally:
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=30)
    assert process.returncode == 0 and "Traceback" not in err


IMAGE = {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}
TOOL_CALL = {"id": "call_1", "type": "function", "function": {"name": "lookup", "arguments": "{}"}}
SCHEMA = {"type": "json_schema", "json_schema": {"name": "answer", "schema": {"type": "object"}}}


def _carried(sent: object, field: str, value: str) -> bool:
    """Whether ``field`` with ``value`` appears anywhere in the JSON the upstream received."""
    if isinstance(sent, dict):
        return sent.get(field) == value or any(_carried(v, field, value) for v in sent.values())
    if isinstance(sent, list):
        return any(_carried(v, field, value) for v in sent)
    return False


@pytest.mark.parametrize(
    ("body", "named", "field", "value"),
    [
        ({"messages": [{"role": "user", "content": [IMAGE]}]}, ("image", "vision"), "type", "image_url"),
        (
            {"messages": [*USER, {"role": "assistant", "content": None, "tool_calls": [TOOL_CALL]}]},
            ("tool_calls", "tools"),
            "id",
            "call_1",
        ),
        ({"messages": USER, "response_format": SCHEMA}, ("json_schema",), "type", "json_schema"),
    ],
)
async def test_images_schemas_and_tool_calls_are_never_dropped(
    body: dict[str, object], named: tuple[str, ...], field: str, value: str
) -> None:
    """Each is either carried to the upstream or refused with a 400 that names it; never sent without."""
    async with FakeUpstream() as up, live_gateway(up) as live, aiohttp.ClientSession() as http:
        headers = {"authorization": f"Bearer {MASTER}"}
        async with http.post(
            f"{live.url}/v1/chat/completions", json={"model": "a", **body}, headers=headers
        ) as response:
            status, answer = response.status, await response.json()
    if status == 400:
        message = answer["error"]["message"].lower()
        assert any(word in message for word in named), message
        assert up.requests == []
    else:
        assert status == 200, answer
        assert _carried(up.requests[0].json, field, value)


async def test_non_text_parts_other_than_images_are_refused() -> None:
    audio = {"type": "input_audio", "input_audio": {"data": "", "format": "wav"}}
    async with FakeUpstream() as up, live_gateway(up) as live:
        with pytest.raises(openai.BadRequestError) as refused:
            await live.client().chat.completions.create(
                model="a",
                messages=[{"role": "user", "content": [audio]}],  # type: ignore[list-item]
            )
    assert "input_audio" in refused.value.message
    assert up.requests == []
