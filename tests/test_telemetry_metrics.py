"""Prometheus series from real requests through the façade (FakeUpstream), in a registry of their own."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from prometheus_client.parser import text_string_to_metric_families

from model_orchestrator import Orchestrator
from model_orchestrator.config.loader import parse_config
from model_orchestrator.core.events import BudgetWarning
from model_orchestrator.testing import FakeClock, FakeUpstream, Fault, Reply

ENV = {"K": "sk-test-NOT-A-METRIC-71c3"}
BREAKER = "resilience: {breaker: {failure_threshold: 3}}\n"


@pytest.fixture
def upstream() -> Iterator[FakeUpstream]:
    with FakeUpstream() as up:
        yield up


def config(up: FakeUpstream, extra: str = "") -> str:
    rows = "\n".join(
        f"  - {{name: {n}, provider: openai, model: m-{n}, api_base: '{up.openai_base}', api_key_env: K,"
        " price: {input: 1.0, output: 2.0}}"
        for n in ("a", "b")
    )
    return f"models:\n{rows}\n{extra}"


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(found: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str) -> float:
    return found[(name, frozenset(labels.items()))]


async def test_series_after_a_fallback_with_retries_and_an_ensemble(upstream: FakeUpstream) -> None:
    upstream.script(
        Fault.server_error(), Fault.server_error(), Fault.server_error(), Reply("x", usage=(10, 2))
    )
    async with Orchestrator(parse_config(config(upstream, BREAKER)), env=ENV, clock=FakeClock()) as orch:
        orch.metrics_sink()  # counting starts when the metrics are first asked for
        await orch.complete("q", strategy="fallback", members=["a", "b"])
        upstream.script(Reply("y", usage=(4, 1)), Reply("y", usage=(4, 1)))
        await orch.complete("q", strategy="ensemble", members=["a", "b"])
        orch.events.emit(BudgetWarning("", 0.0, "daily", "usd", "2026-11-22", 4.1, 5.0, 0.82))
        text = orch.metrics_text()
    found = samples(text)
    assert value(found, "orchestrator_requests_total", strategy="fallback", outcome="ok") == 1
    assert value(found, "orchestrator_requests_total", strategy="ensemble", outcome="ok") == 1
    assert value(found, "orchestrator_request_duration_seconds_count", strategy="fallback") == 1
    a, b = {"model": "a", "provider": "openai"}, {"model": "b", "provider": "openai"}
    assert value(found, "orchestrator_attempts_total", **a, outcome="error") == 3
    assert ("orchestrator_attempts_total", frozenset({**a, "outcome": "ok"}.items())) not in found  # open
    assert value(found, "orchestrator_errors_total", **a, error_type="ServerError") == 3
    assert value(found, "orchestrator_tokens_total", **b, kind="input") == 14
    assert value(found, "orchestrator_cost_usd_total", **b) == pytest.approx((14 * 1.0 + 3 * 2.0) / 1e6)
    retries = {dict(k[1])["model"]: v for k, v in found.items() if k[0] == "orchestrator_retries_total"}
    assert [(m.split("@")[0], v) for m, v in retries.items()] == [("a", 2)]  # the retried deployment
    assert (
        value(found, "orchestrator_fallbacks_total", strategy="fallback:a,b", from_model="a", to_model="b")
        == 1
    )
    (deployment,) = [dict(k[1])["deployment"] for k in found if k[0] == "orchestrator_circuit_state"]
    assert (
        deployment.startswith("a@") and value(found, "orchestrator_circuit_state", deployment=deployment) == 2
    )
    assert value(found, "orchestrator_budget_warnings_total", budget="daily") == 1
    assert ENV["K"] not in text


async def test_each_orchestrator_counts_only_its_own_requests(upstream: FakeUpstream) -> None:
    async with (
        Orchestrator(parse_config(config(upstream)), env=ENV) as first,
        Orchestrator(parse_config(config(upstream)), env=ENV) as second,
    ):
        first.metrics_sink(), second.metrics_sink()
        await first.complete("q", model="a")
        await first.complete("q", model="a")
        await second.complete("q", model="b")
        ok = {"strategy": "single", "outcome": "ok"}
        assert value(samples(first.metrics_text()), "orchestrator_requests_total", **ok) == 2
        assert value(samples(second.metrics_text()), "orchestrator_requests_total", **ok) == 1


def test_attempts_of_invented_names_count_in_bounded_series_past_the_series_cache() -> None:
    from model_orchestrator.core.events import AttemptFailed, AttemptSucceeded
    from model_orchestrator.core.usage import Usage
    from model_orchestrator.telemetry.metrics import MAX_LABEL_VALUES, OTHER, MetricsSink

    sink = MetricsSink(known_models=["known"])
    names = ["known"] + [f"invented-{i}" for i in range(1500)]  # past the labels' and the cache's bounds
    for name in names * 2:
        sink.handle(AttemptSucceeded("r", 0.0, "a", name, "p", "d", usage=Usage(2, 3), cost=0.5, latency=0.1))
    sink.handle(
        AttemptFailed(
            "r",
            0.0,
            "a",
            "known",
            "p",
            "d",
            error_type="ServerError",
            error_message="x",
            status_code=500,
            retryable=True,
            latency=0.1,
        )
    )
    found = samples(sink.render().decode())
    ok = {
        m
        for (n, labels), _ in found.items()
        if n == "orchestrator_attempts_total"
        for k, m in labels
        if k == "model"
    }
    assert len(ok) == MAX_LABEL_VALUES + 2  # known, the first admitted, and other
    assert value(found, "orchestrator_attempts_total", model="known", provider="p", outcome="ok") == 2
    assert value(found, "orchestrator_attempts_total", model="known", provider="p", outcome="error") == 1
    others = 2 * (len(names) - 1 - MAX_LABEL_VALUES)
    assert value(found, "orchestrator_attempts_total", model=OTHER, provider="p", outcome="ok") == others
    assert value(found, "orchestrator_tokens_total", model=OTHER, provider="p", kind="output") == 3 * others
    assert (
        value(found, "orchestrator_errors_total", model="known", provider="p", error_type="ServerError") == 1
    )
