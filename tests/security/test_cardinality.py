"""Issue 12.2: model names anyone can invent must not grow /metrics, the registry or "did you mean".

Attack: a caller with a key sends many requests, each naming a different ``provider:model-id`` (a
reference: the registry builds a model for it and every attempt becomes Prometheus label values), or one
enormous name. Before the fix, 40 unique 100 KB names made /metrics 108 MB.
"""

from __future__ import annotations

import aiohttp
import openai
import pytest
from prometheus_client.parser import text_string_to_metric_families

from model_orchestrator.config.loader import parse_config
from model_orchestrator.config.registry import MAX_REFERENCES
from model_orchestrator.config.schema import MAX_NAME_LENGTH
from model_orchestrator.core.errors import ModelNotFoundError
from model_orchestrator.orchestrator import Orchestrator
from model_orchestrator.telemetry.metrics import MAX_LABEL_VALUES, OTHER
from model_orchestrator.testing import FakeUpstream
from tests.gateway_helpers import MASTER, USER, live_gateway

ADMIN = {"Authorization": f"Bearer {MASTER}"}
# A self-hosted provider row: references to it need no key, and each failed attempt is still counted.
INVENTED = "ollama:tenant-probe-{:04d}-" + "x" * 150


async def test_unique_model_names_land_in_an_other_bucket_and_metrics_stay_bounded() -> None:
    async with FakeUpstream() as up, live_gateway(up) as live, aiohttp.ClientSession() as http:
        client = live.client()

        async def invent(numbers: range) -> str:
            for number in numbers:
                with pytest.raises(openai.APIStatusError):
                    await client.chat.completions.create(model=INVENTED.format(number), messages=USER)
            async with http.get(f"{live.url}/metrics", headers=ADMIN) as response:
                return await response.text()

        full = await invent(range(MAX_LABEL_VALUES + 10))
        later = await invent(range(MAX_LABEL_VALUES + 10, MAX_LABEL_VALUES + 110))
        await client.chat.completions.create(model="a", messages=USER)  # a configured name, after them
        async with http.get(f"{live.url}/metrics", headers=ADMIN) as response:
            last = await response.text()
    samples = [s for family in text_string_to_metric_families(later) for s in family.samples]
    models = {s.labels["model"] for s in samples if "model" in s.labels}
    assert OTHER in models
    assert len(models) == MAX_LABEL_VALUES + 1
    # Every attempt is still counted: the admitted names plus the other bucket make up all of them.
    assert sum(s.value for s in samples if s.name == "orchestrator_attempts_total") == MAX_LABEL_VALUES + 110
    # Configured names keep their own series however many names were invented before them.
    assert 'orchestrator_attempts_total{model="a",outcome="ok",provider="openai"} 1.0' in last
    # A hundred more invented names change counts, not the number of series: the size stays put.
    assert len(later) - len(full) < 2_000


async def test_an_enormous_model_name_is_refused_without_being_echoed() -> None:
    name = "ollama:" + "A" * 100_000
    async with FakeUpstream() as up, live_gateway(up) as live:
        with pytest.raises(openai.NotFoundError) as caught:
            await live.client().chat.completions.create(model=name, messages=USER)
    message = str(caught.value)
    assert f"at most {MAX_NAME_LENGTH} characters" in message
    assert "A" * 100 not in message and len(message) < 1_000


async def test_did_you_mean_never_suggests_a_name_another_caller_asked_for() -> None:
    secret = "ollama:acme-merger-codename-falcon"
    async with FakeUpstream() as up, live_gateway(up) as live:
        client = live.client()
        with pytest.raises(openai.APIStatusError):
            await client.chat.completions.create(model=secret, messages=USER)
        with pytest.raises(openai.NotFoundError) as caught:
            await client.chat.completions.create(model="acme-merger-codename-falco", messages=USER)
    assert "acme-merger-codename-falcon" not in str(caught.value)


async def test_the_registry_keeps_only_the_most_recent_references() -> None:
    async with Orchestrator(parse_config(""), env={}) as orch:
        first = orch.model(INVENTED.format(0))
        assert orch.model(INVENTED.format(0)) is first  # built once while it is recent
        for number in range(1, MAX_REFERENCES + 20):
            orch.model(INVENTED.format(number))
        last = INVENTED.format(MAX_REFERENCES + 19)
        assert orch.model(last) is orch.model(last)
        assert orch.model(INVENTED.format(0)) is not first  # dropped, so built again on demand
        assert INVENTED.format(5) not in {i.name for i in orch.models()}  # references are never listed
        with pytest.raises(ModelNotFoundError) as caught:
            orch.model("tenant-probe-0003")
        assert "did you mean" not in str(caught.value)


async def test_an_inline_strategy_name_is_capped_too() -> None:
    # Inline strategies are built once and remembered under their name: the name is bounded as well.
    async with Orchestrator(parse_config(""), env={}) as orch:
        with pytest.raises(ModelNotFoundError, match=f"at most {MAX_NAME_LENGTH} characters"):
            orch.model("fallback:" + ",".join(["local/smollm2-135m"] * 40))


def test_pricing_unknown_model_ids_leaves_the_price_library_caches_unchanged() -> None:
    # genai-prices caches every model reference calc_price is asked about, misses included; model ids
    # are the caller's choice over the gateway, so each new one would stay in memory for good. (Its
    # caches are private attributes: read only to measure the leak.)
    from genai_prices.data_snapshot import get_snapshot

    from model_orchestrator.config.pricing import lookup_genai_price

    assert lookup_genai_price("openai", "gpt-4o-mini") is not None
    snapshot = get_snapshot()

    def cached() -> int:
        return len(snapshot._lookup_cache) + len(snapshot._provider_cache) + len(snapshot._provider_misses)

    before = cached()
    for i in range(300):
        assert lookup_genai_price("openai", f"made-up-model-{i}") is None
    assert cached() == before
