"""Issue 12.3: a provider key, a secret header or URL credentials echoed by an upstream never leak.

Attack: an upstream (or a proxy in front of it) echoes what it received in its error body. Before the
fix, error text was cut to 600 characters before the key was redacted, so a key straddling the cut came
out as a prefix in 502 bodies and CLI errors; header values and URL credentials were not redacted at all.
"""

from __future__ import annotations

import base64
import sqlite3
from pathlib import Path

import aiohttp
import pytest

from model_orchestrator.config.loader import parse_config
from model_orchestrator.core.errors import BadRequestError, ConfigError, ProviderError
from model_orchestrator.core.request import ChatRequest
from model_orchestrator.orchestrator import Orchestrator
from model_orchestrator.providers.http import HttpTransport
from model_orchestrator.providers.openai_compatible import OpenAICompatibleModel
from model_orchestrator.testing import FakeUpstream, Fault
from tests.cli_helpers import run_cli
from tests.gateway_helpers import MASTER, USER, live_gateway

KEY = "sk-test-Zq8LmN4pR7sT1vW3xY5aB9cD2eF6gH0jK"
OLD_CUT = 600


def straddling(secret: str) -> str:
    """An upstream error message with ``secret`` across the old 600-character cut."""
    start = OLD_CUT - len(secret) // 2
    return "x" * start + secret + " was rejected"


def leaked(text: str, secret: str) -> bool:
    """The first 12 characters of ``secret`` found in ``text`` (a prefix is a leak too)."""
    return secret[:12] in text


def config(up: FakeUpstream, provider: str = "openai", extra: str = "") -> str:
    base = up.openai_base if provider == "openai" else up.url
    return (
        f"models:\n  - {{name: m, provider: {provider}, model: mid, api_base: '{base}', api_key_env: UP_KEY"
        f"{extra}}}\nresilience: {{retry: {{max_attempts: 1}}}}\n"
    )


@pytest.mark.parametrize("provider", ["openai", "anthropic", "gemini"])
async def test_a_key_straddling_the_old_cut_is_redacted_whole(provider: str) -> None:
    async with FakeUpstream() as up:
        up.script(Fault.status(400, straddling(KEY)))
        async with Orchestrator(parse_config(config(up, provider)), env={"UP_KEY": KEY}) as orch:
            with pytest.raises(ProviderError) as caught:
                await orch.complete("hi", model="m")
    message = str(caught.value)
    assert not leaked(message, KEY)
    assert "xxxxxxxxxx" in message and len(message) <= OLD_CUT + 100  # still cut, after redaction


async def test_the_gateway_502_body_never_holds_a_key_prefix() -> None:
    async with FakeUpstream() as up, live_gateway(up) as live, aiohttp.ClientSession() as http:
        secret = "upstream-secret"  # the key live_gateway gives its models
        up.script(Fault.status(500, straddling(secret)), Fault.status(400, straddling(secret)))
        for _ in range(2):
            async with http.post(
                f"{live.url}/v1/chat/completions",
                json={"model": "a", "messages": USER},
                headers={"Authorization": f"Bearer {MASTER}"},
            ) as response:
                assert response.status >= 400
                body = await response.text()
            assert not leaked(body, secret)


def test_the_cli_error_never_holds_a_key_prefix(tmp_path: Path) -> None:
    with FakeUpstream() as up:
        up.script(Fault.status(400, straddling(KEY)))
        path = tmp_path / "orchestrator.yaml"
        path.write_text(config(up))
        result = run_cli("--config", str(path), "run", "--prompt", "hi", "--model", "m", env={"UP_KEY": KEY})
    assert result.returncode == 1
    assert "HTTP 400" in result.stderr and "Traceback" not in result.stderr
    assert not leaked(result.stdout + result.stderr, KEY)


async def test_secret_headers_come_from_the_environment_and_are_redacted_when_echoed() -> None:
    token = "proxy-Tk7Hw2Qm9Xr4Lp8Zc"
    extra = ", headers: {X-Team: research}, headers_env: {X-Proxy-Token: PROXY_TOKEN}"
    async with FakeUpstream() as up:
        up.script(Fault.status(400, f"proxy said: bad token {token} for team research"))
        env = {"UP_KEY": KEY, "PROXY_TOKEN": token}
        async with Orchestrator(parse_config(config(up, extra=extra)), env=env) as orch:
            with pytest.raises(BadRequestError) as caught:
                await orch.complete("hi", model="m")
            assert "PROXY_TOKEN" not in repr(orch.models())
        sent = up.requests[-1].headers
    assert sent["x-proxy-token"] == token and sent["x-team"] == "research"
    # Plain header values are redacted too: an upstream echoing its request shows none of them.
    assert str(caught.value).endswith("bad token [REDACTED] for team [REDACTED]")


async def test_a_missing_header_variable_makes_the_model_unusable_not_a_crash() -> None:
    extra = ", headers_env: {X-Proxy-Token: PROXY_TOKEN}"
    async with (
        FakeUpstream() as up,
        Orchestrator(parse_config(config(up, extra=extra)), env={"UP_KEY": KEY}) as orch,
    ):
        (info,) = [i for i in orch.models() if i.name == "m"]
        assert not info.usable and "PROXY_TOKEN" in (info.unusable_reason or "")
        with pytest.raises(ConfigError, match="PROXY_TOKEN"):
            await orch.complete("hi", model="m")


def test_a_key_pasted_into_plain_headers_is_refused() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config("models:\n  - {name: m, provider: openai, model: x, headers: {X-Custom: " + KEY + "}}\n")
    assert "headers_env" in str(caught.value) and KEY[:8] not in str(caught.value)


async def test_url_credentials_become_basic_auth_and_are_redacted_when_echoed() -> None:
    password = "pa55-Wq3Rt8Yz"
    transport = HttpTransport()
    try:
        async with FakeUpstream() as up:
            up.script(Fault.status(400, f"upstream saw user proxyuser with password {password}"))
            base = up.openai_base.replace("http://", f"http://proxyuser:{password}@")
            model = OpenAICompatibleModel(
                name="m", model_id="mid", api_base=base, api_key=None, transport=transport
            )
            with pytest.raises(BadRequestError) as caught:
                await model.complete(ChatRequest.from_prompt("hi"))
            sent = up.requests[-1].headers
    finally:
        await transport.aclose()
    expected = base64.b64encode(f"proxyuser:{password}".encode()).decode()
    assert sent["authorization"] == f"Basic {expected}"
    assert password not in str(caught.value) and "[REDACTED]" in str(caught.value)
    assert password not in model.deployment and password not in repr(model)


def test_url_credentials_and_a_key_together_are_a_config_error() -> None:
    with pytest.raises(ConfigError, match="keep one"):
        OpenAICompatibleModel(
            name="m",
            model_id="mid",
            api_base="http://u:secret@127.0.0.1:9/v1",
            api_key=KEY,
            transport=HttpTransport(),
        )


def test_debug_logging_never_shows_virtual_keys_salts_or_hashes(tmp_path: Path) -> None:
    home = {"ORCHESTRATOR_HOME": str(tmp_path)}
    created = run_cli("-vv", "keys", "create", "--name", "ci", env=home)
    listed = run_cli("-vv", "keys", "list", env=home)
    assert created.returncode == 0 and listed.returncode == 0
    with sqlite3.connect(tmp_path / "ledger.sqlite3") as db:
        ((salt, digest),) = db.execute("SELECT salt, secret_hash FROM virtual_keys").fetchall()
    logs = created.stderr + listed.stderr
    assert "DEBUG" in logs  # -vv did turn debug logging on
    assert salt not in logs and digest not in logs and "INSERT INTO" not in logs
