"""Gateway auth: master key, virtual keys (no / wrong / revoked / expired / over budget / model not allowed /
rate limited), admin routes, the loopback rule, and keys never stored or echoed."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import aiohttp
import openai
import pytest

from model_orchestrator.core.errors import ConfigError
from model_orchestrator.gateway.auth import Principal
from model_orchestrator.gateway.settings import GatewaySettings, check_auth_rule, is_loopback
from model_orchestrator.ledger.keys import VirtualKeyStore, split_key
from model_orchestrator.testing import FakeUpstream, Reply
from tests.gateway_helpers import MASTER, USER, Live, live_gateway


async def _store(live: Live) -> VirtualKeyStore:
    store = await live.orch.virtual_keys()
    assert store is not None
    return store


async def test_no_key_and_wrong_key_are_401() -> None:
    async with FakeUpstream() as up, live_gateway(up) as live, aiohttp.ClientSession() as http:
        async with http.get(f"{live.url}/v1/models") as response:
            assert response.status == 401
            assert (await response.json())["error"]["code"] == "missing_api_key"
        with pytest.raises(openai.AuthenticationError) as wrong:
            await live.client("sk-orch-000000000000-nope").chat.completions.create(model="a", messages=USER)
        assert wrong.value.code == "invalid_api_key"
        with pytest.raises(openai.AuthenticationError):
            await live.client("not-even-the-format").models.list()
        assert up.requests == []


async def test_virtual_key_works_and_is_recorded_by_id() -> None:
    async with FakeUpstream() as up, live_gateway(up) as live:
        key, secret = await (await _store(live)).create(name="team-a")
        answer = await live.client(secret).chat.completions.create(model="a", messages=USER)
        assert answer.choices[0].message.content == "ok"
        ledger = live.orch.ledger
        await ledger.flush()
        report = await live.orch.costs_report(by="key")
        assert key.id in str(report.to_dict())


async def test_revoked_key_is_401_at_once_when_revoked_through_the_admin_route() -> None:
    async with FakeUpstream() as up, live_gateway(up) as live, aiohttp.ClientSession() as http:
        admin = {"authorization": f"Bearer {MASTER}"}
        async with http.post(f"{live.url}/admin/keys", json={"name": "temp"}, headers=admin) as response:
            assert response.status == 201
            created = await response.json()
        client = live.client(created["key"])
        await client.models.list()
        async with http.delete(f"{live.url}/admin/keys/{created['id']}", headers=admin) as response:
            assert response.status == 200 and (await response.json())["state"] == "revoked"
        with pytest.raises(openai.AuthenticationError) as caught:
            await client.models.list()
        assert caught.value.code == "api_key_revoked"
        async with http.get(f"{live.url}/admin/keys", headers=admin) as response:
            listed = (await response.json())["data"]
        assert [k["state"] for k in listed] == ["revoked"]
        assert "key" not in listed[0] and created["key"] not in str(listed)


async def test_expired_key_is_401() -> None:
    async with FakeUpstream() as up, live_gateway(up) as live:
        _, secret = await (await _store(live)).create(expires_at=time.time() - 1)
        with pytest.raises(openai.AuthenticationError) as caught:
            await live.client(secret).chat.completions.create(model="a", messages=USER)
        assert caught.value.code == "api_key_expired"
        assert up.requests == []


async def test_model_not_allowed_is_403_and_models_list_is_filtered() -> None:
    async with FakeUpstream() as up, live_gateway(up) as live:
        _, secret = await (await _store(live)).create(models=("a",))
        client = live.client(secret)
        with pytest.raises(openai.PermissionDeniedError) as caught:
            await client.chat.completions.create(model="b", messages=USER)
        assert caught.value.code == "model_not_allowed"
        with pytest.raises(openai.PermissionDeniedError):
            await client.chat.completions.create(model="fallback:a,b", messages=USER)
        assert (await client.chat.completions.create(model="fallback:a", messages=USER)).choices
        assert [m.id for m in (await client.models.list()).data] == ["a"]
        assert len(up.requests) == 1


async def test_over_budget_is_429_insufficient_quota_without_retry() -> None:
    async with FakeUpstream() as up, live_gateway(up) as live:
        # A request costs 12 * $0.001 + 3 * $0.002 = $0.018 at the test prices; each reserves about that
        # much first (max_tokens=3 bounds the output), so the third would overrun $0.05 and is refused.
        _, secret = await (await _store(live)).create(budget_usd=0.05)
        up.default_reply = Reply("Paris", usage=(12, 3))
        client = live.client(secret)
        for _ in range(2):
            await client.chat.completions.create(model="a", messages=USER, max_tokens=3)
        with pytest.raises(openai.RateLimitError) as caught:
            await client.chat.completions.create(model="a", messages=USER, max_tokens=3)
        assert caught.value.code == "insufficient_quota" and caught.value.type == "insufficient_quota"
        assert caught.value.response.headers["x-should-retry"] == "false"
        assert len(up.requests) == 2
        # The master key has no budget.
        assert (await live.client().chat.completions.create(model="a", messages=USER)).choices


async def test_key_rpm_is_429_with_retry_after() -> None:
    async with FakeUpstream() as up, live_gateway(up) as live:
        _, secret = await (await _store(live)).create(rpm=2)
        client = live.client(secret)
        await client.models.list()
        await client.models.list()
        with pytest.raises(openai.RateLimitError) as caught:
            await client.models.list()
        assert caught.value.code == "rate_limit_exceeded"
        assert 1 <= int(caught.value.response.headers["retry-after"]) <= 60


async def test_admin_routes_and_metrics_need_the_master_key() -> None:
    async with FakeUpstream() as up, live_gateway(up) as live, aiohttp.ClientSession() as http:
        _, secret = await (await _store(live)).create()
        user = {"authorization": f"Bearer {secret}"}
        for method, path in (("GET", "/admin/keys"), ("POST", "/admin/keys"), ("GET", "/metrics")):
            async with http.request(method, f"{live.url}{path}", json={}, headers=user) as response:
                assert response.status == 403, path
                assert (await response.json())["error"]["code"] == "admin_only"


async def test_no_auth_on_loopback_serves_without_a_key() -> None:
    async with FakeUpstream() as up, live_gateway(up, auth=False) as live:
        answer = await live.client("anything").chat.completions.create(model="a", messages=USER)
        assert answer.choices[0].message.content == "ok"


def test_auth_rule_off_loopback() -> None:
    with pytest.raises(ConfigError, match="ORCHESTRATOR_MASTER_KEY"):
        check_auth_rule(GatewaySettings(host="0.0.0.0"))
    with pytest.raises(ConfigError, match="loopback"):
        check_auth_rule(GatewaySettings(host="0.0.0.0", auth=False, master_key="m"))
    check_auth_rule(GatewaySettings(host="0.0.0.0", master_key=MASTER + "-long-enough"))
    check_auth_rule(GatewaySettings(host="127.0.0.1", auth=False))
    assert is_loopback("::1") and is_loopback("localhost") and not is_loopback("10.0.0.1")
    assert "secret-master" not in repr(GatewaySettings(master_key="secret-master"))


def test_principal_model_rules() -> None:
    key = Principal(key_id="k", master=False, models=frozenset({"a", "b"}))
    assert key.may_use("a") and key.may_use("fallback:a,b") and not key.may_use("c")
    assert not key.may_use("ensemble:a,c") and not key.may_use("fallback:")
    assert Principal(key_id="k", master=False).may_use("anything")


async def test_secrets_are_never_stored_logged_or_echoed(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    async with FakeUpstream() as up, live_gateway(up) as live:
        store = await _store(live)
        key, secret = await store.create(name="n")
        parts = split_key(secret)
        assert parts is not None and parts[0] == key.id
        await live.client(secret).chat.completions.create(model="a", messages=USER)
        with pytest.raises(openai.AuthenticationError) as caught:
            await live.client(secret + "x").models.list()
        assert parts[1] not in str(caught.value.body)
        await live.orch.ledger.flush()
        database = Path(str((await live.orch.ledger.store()).engine.url.database))
    stored = b"".join(p.read_bytes() for p in database.parent.glob(database.name + "*"))
    assert key.id.encode() in stored
    assert parts[1].encode() not in stored and MASTER.encode() not in stored
    assert parts[1] not in caplog.text and MASTER not in caplog.text
