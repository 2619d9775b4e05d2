"""Issue 12.4: a key limited to ``a`` could call ``openai:a`` (with the operator's key) and other
``provider:a`` spellings, and learn internal hosts from the errors. Against the real gateway."""

from __future__ import annotations

import aiohttp
import openai
import pytest

from model_orchestrator.orchestrator.access import Principal
from model_orchestrator.testing import FakeUpstream, Fault, Reply
from tests.gateway_helpers import MASTER, USER, Live, live_gateway


async def _key(live: Live, *models: str) -> str:
    store = await live.orch.virtual_keys()
    assert store is not None
    _, secret = await store.create(models=models)
    return secret


@pytest.mark.parametrize("name", ["openai:a", "vllm:a", "ollama:a", "fallback:a,b", "race:", "auto", "a,b"])
async def test_names_the_key_does_not_list_are_403(name: str) -> None:
    async with FakeUpstream() as up, live_gateway(up) as live:
        client = live.client(await _key(live, "a"))
        with pytest.raises(openai.PermissionDeniedError) as refused:
            await client.chat.completions.create(model=name, messages=USER)
        assert refused.value.code == "model_not_allowed"
        assert up.requests == []


async def test_strategies_built_only_from_listed_names_are_allowed() -> None:
    async with FakeUpstream() as up, live_gateway(up) as live:
        up.script(Reply("one"), Reply("two"))
        client = live.client(await _key(live, "a", "b"))
        first = await client.chat.completions.create(model="fallback:a,b", messages=USER)
        second = await client.chat.completions.create(model="a", messages=USER)
        assert [first.choices[0].message.content, second.choices[0].message.content] == ["one", "two"]


def test_the_rule_itself() -> None:
    key = Principal(key_id="k", master=False, models=frozenset({"fast"}))
    assert key.may_use("fast") and key.may_use("cascade:fast")
    assert not any(key.may_use(n) for n in ("openai:fast", "fallback:fast,", "fallback:", "unknown:fast"))


async def test_upstream_failures_name_no_internal_host_to_a_key_holder() -> None:
    async with FakeUpstream() as up, live_gateway(up) as live:
        host = up.openai_base.split("//", 1)[1].split("/", 1)[0]
        client = live.client(await _key(live, "a", "safe"))
        up.script(Fault.reset())
        with pytest.raises(openai.APIStatusError) as failed:
            await client.chat.completions.create(model="a", messages=USER)
        up.script(Fault.reset(), Reply("after a fallback"))
        rescued = await client.chat.completions.with_raw_response.create(model="safe", messages=USER)
        rescued_text = rescued.http_response.text
        up.script(Fault.reset())
        with pytest.raises(openai.APIStatusError) as operator:
            await live.client(MASTER).chat.completions.create(model="a", messages=USER)
    assert failed.value.status_code == 502 and host not in failed.value.message
    assert "[internal]" in failed.value.message
    assert host not in rescued_text and "after a fallback" in rescued_text
    assert host in operator.value.message  # the operator still sees where it failed


async def test_streamed_failures_name_no_internal_host_to_a_key_holder() -> None:
    async with FakeUpstream() as up, live_gateway(up) as live:
        host = up.openai_base.split("//", 1)[1].split("/", 1)[0]
        client = live.client(await _key(live, "a"))
        up.script(Fault.truncated_stream(after_chunks=2))
        with pytest.raises(openai.APIError) as broken:
            stream = await client.chat.completions.create(model="a", messages=USER, stream=True)
            async for _chunk in stream:
                pass
    assert host not in str(broken.value)


async def test_health_shows_a_key_only_its_deployments_and_only_the_master_key_probes() -> None:
    async with FakeUpstream() as up, live_gateway(up) as live, aiohttp.ClientSession() as http:
        key = {"authorization": f"Bearer {await _key(live, 'a')}"}
        async with http.get(f"{live.url}/health/providers", headers=key) as response:
            shown = await response.json()
        async with http.get(f"{live.url}/health/providers?probe=true", headers=key) as response:
            probe_status = response.status
        master = {"authorization": f"Bearer {MASTER}"}
        async with http.get(f"{live.url}/health/providers", headers=master) as response:
            everything = await response.json()
    assert [d["name"] for d in shown["deployments"]] == ["a"]
    assert "127.0.0.1" not in str(shown)
    assert probe_status == 403
    assert {d["name"] for d in everything["deployments"]} >= {"a", "b"}
    assert up.requests == []
