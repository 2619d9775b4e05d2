"""Span trees through the façade over FakeUpstream, captured by the SDK's in-memory exporter: fallback with
a failing first member, an ensemble of three, a race with cancelled losers, failures, breakers, content."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from model_orchestrator import Orchestrator
from model_orchestrator.config.loader import parse_config
from model_orchestrator.core.errors import AllModelsFailedError
from model_orchestrator.core.events import (
    AttemptStarted,
    AttemptSucceeded,
    Event,
    RequestFinished,
    RequestStarted,
)
from model_orchestrator.core.usage import Usage
from model_orchestrator.telemetry import conventions as c
from model_orchestrator.telemetry.setup import TracingSettings, tracing_sink
from model_orchestrator.testing import FakeClock, FakeUpstream, Fault, Reply

ENV = {"K": "key-for-tests"}


@pytest.fixture
def upstream() -> Iterator[FakeUpstream]:
    with FakeUpstream() as up:
        yield up


def config_text(bases: Sequence[str], extra: str = "") -> str:
    lines = [
        f"  - {{name: {name}, provider: openai, model: m-{name}, api_base: '{base}', api_key_env: K,"
        " price: {input: 1.0, output: 2.0}}"
        for name, base in zip("abc", bases, strict=False)
    ]
    return "models:\n" + "\n".join(lines) + "\n" + extra


def traced(orch: Orchestrator, *, record_content: bool = False) -> InMemorySpanExporter:
    exporter = InMemorySpanExporter()
    settings = TracingSettings(record_content=record_content)
    orch.events.subscribe(tracing_sink(exporter, settings, batch=False))
    return exporter


def tree(exporter: InMemorySpanExporter) -> tuple[ReadableSpan, list[ReadableSpan]]:
    """The one root and its children (asserting every child hangs off that root)."""
    spans = list(exporter.get_finished_spans())
    roots = [s for s in spans if s.parent is None]
    assert len(roots) == 1, [s.name for s in roots]
    root = roots[0]
    assert root.context is not None
    children = [s for s in spans if s is not root]
    for child in children:
        assert child.parent is not None and child.parent.span_id == root.context.span_id
        assert child.context is not None and child.context.trace_id == root.context.trace_id
    return root, children


def named(spans: list[ReadableSpan], name: str) -> list[ReadableSpan]:
    return [s for s in spans if s.name == name]


def attrs(span: ReadableSpan) -> dict[str, object]:
    return dict(span.attributes or {})


async def test_fallback_tree_shows_each_retry_of_the_failing_member_then_the_answer(
    upstream: FakeUpstream,
) -> None:
    upstream.script(
        Fault.server_error(), Fault.server_error(), Fault.server_error(), Reply("Paris", usage=(10, 2))
    )
    base = upstream.openai_base
    async with Orchestrator(parse_config(config_text([base, base])), env=ENV, clock=FakeClock()) as orch:
        exporter = traced(orch)
        result = await orch.complete("Capital of France?", strategy="fallback", members=["a", "b"])
    assert result.response == "Paris"
    root, children = tree(exporter)
    assert root.name == c.ROOT_SPAN and root.status.status_code is StatusCode.OK
    root_attrs = attrs(root)
    assert root_attrs[c.SPAN_KIND] == "CHAIN" and root_attrs[c.STRATEGY] == "fallback"
    assert root_attrs[c.MODEL_USED] == "b" and root_attrs[c.ATTEMPTS] == 4
    assert root_attrs[c.COST] == pytest.approx(result.cost)
    calls = sorted(named(children, c.MODEL_CALL_SPAN), key=lambda s: s.start_time or 0)
    assert [attrs(s)[c.LLM_MODEL_NAME] for s in calls] == ["a", "a", "a", "b"]
    assert [attrs(s)[c.RETRY_NUMBER] for s in calls] == [0, 1, 2, 0]
    assert [s.status.status_code for s in calls] == [StatusCode.ERROR] * 3 + [StatusCode.OK]
    failed, answered = attrs(calls[0]), attrs(calls[3])
    assert failed[c.ERROR_TYPE] == "ServerError" and failed[c.STATUS_CODE] == 500
    assert failed[c.STATUS] == "error"
    assert calls[0].status.description == "ServerError"
    assert answered[c.SPAN_KIND] == "LLM" and answered[c.LLM_PROVIDER] == "openai"
    tokens = [answered[k] for k in (c.LLM_TOKENS_PROMPT, c.LLM_TOKENS_COMPLETION, c.LLM_TOKENS_TOTAL)]
    assert tokens == [10, 2, 12]
    assert answered[c.LLM_COST_TOTAL] == pytest.approx((10 * 1.0 + 2 * 2.0) / 1e6)
    assert answered[c.BREAKER_STATE] == "closed" and str(answered[c.DEPLOYMENT]).startswith("b@")
    (aggregation,) = named(children, c.AGGREGATION_SPAN)
    assert attrs(aggregation)[c.STRATEGY] == "fallback" and attrs(aggregation)[c.CHOSEN] == "b"
    assert list(attrs(aggregation)[c.STEPS]) == ["a:error", "b:ok"]
    events = [e.name for e in root.events]
    assert events.count("retry_scheduled") == 2 and events.count("fallback_triggered") == 1
    assert all((child.start_time or 0) >= (root.start_time or 0) for child in children)


async def test_ensemble_tree_has_three_parallel_calls_and_the_vote(upstream: FakeUpstream) -> None:
    upstream.script(*(Reply(text, usage=(20, 1)) for text in ("B", "B", "C")))
    base = upstream.openai_base
    async with Orchestrator(parse_config(config_text([base] * 3)), env=ENV) as orch:
        exporter = traced(orch)
        result = await orch.complete(
            "A) Sydney B) Canberra C) Perth?",
            strategy="ensemble",
            members=["a", "b", "c"],
            extractor="choice",
        )
    root, children = tree(exporter)
    calls = named(children, c.MODEL_CALL_SPAN)
    assert sorted(attrs(s)[c.LLM_MODEL_NAME] for s in calls) == ["a", "b", "c"]
    assert all(s.status.status_code is StatusCode.OK and attrs(s)[c.RETRY_NUMBER] == 0 for s in calls)
    (aggregation,) = named(children, c.AGGREGATION_SPAN)
    agg = attrs(aggregation)
    assert agg[c.STRATEGY] == "ensemble" and agg[c.CHOSEN] == result.model_used
    assert list(agg[c.VOTES]) == [2, 1]
    assert agg[c.CONFIDENCE] == pytest.approx(result.confidence, abs=1e-3)
    assert agg[c.CONFIDENCE_SOURCE] == "agreement"
    assert agg[f"{c.FACTS}.answered"] == 3 and agg[f"{c.FACTS}.aggregator"] == "vote"
    # without content recording the answers themselves stay out of the trace
    assert c.REASON not in agg and "B" not in str(agg[c.VOTES])
    assert attrs(root)[c.INPUT_TOKENS] == result.input_tokens


async def test_race_tree_marks_losers_cancelled_not_failed() -> None:
    async with FakeUpstream() as fast, FakeUpstream() as slow1, FakeUpstream() as slow2:
        fast.script(Reply("Canberra", latency=0.01, usage=(5, 1)))
        slow1.script(Reply("Canberra", latency=2.0))
        slow2.script(Reply("Canberra", latency=2.0))
        bases = [fast.openai_base, slow1.openai_base, slow2.openai_base]
        async with Orchestrator(parse_config(config_text(bases)), env=ENV) as orch:
            exporter = traced(orch)
            result = await orch.complete("Capital of Australia?", strategy="race", members=["a", "b", "c"])
    assert result.model_used == "a"
    _root, children = tree(exporter)
    calls = {attrs(s)[c.LLM_MODEL_NAME]: s for s in named(children, c.MODEL_CALL_SPAN)}
    assert calls["a"].status.status_code is StatusCode.OK
    for loser in (calls["b"], calls["c"]):
        assert loser.status.status_code is StatusCode.UNSET
        assert attrs(loser)[c.CANCELLED] is True and attrs(loser)[c.STATUS] == "cancelled"
    (aggregation,) = named(children, c.AGGREGATION_SPAN)
    assert attrs(aggregation)[c.CHOSEN] == "a" and attrs(aggregation)[f"{c.FACTS}.cancelled"] == 2


async def test_a_failed_request_ends_its_root_in_error(upstream: FakeUpstream) -> None:
    upstream.script(Fault.auth(), Fault.auth())
    base = upstream.openai_base
    async with Orchestrator(parse_config(config_text([base, base])), env=ENV, clock=FakeClock()) as orch:
        exporter = traced(orch)
        with pytest.raises(AllModelsFailedError):
            await orch.complete("hi", strategy="fallback", members=["a", "b"])
    root, children = tree(exporter)
    assert root.status.status_code is StatusCode.ERROR and root.status.description == "AllModelsFailedError"
    assert attrs(root)[c.STATUS] == "error" and c.MODEL_USED not in attrs(root)
    calls = named(children, c.MODEL_CALL_SPAN)
    assert [attrs(s)[c.ERROR_TYPE] for s in calls] == ["AuthenticationError"] * 2
    assert not named(children, c.AGGREGATION_SPAN)


async def test_breaker_transitions_show_on_the_root_and_the_probe_call(upstream: FakeUpstream) -> None:
    extra = "resilience: {retry: {max_attempts: 1}, breaker: {failure_threshold: 1, reset_timeout: 5}}\n"
    upstream.script(Fault.server_error(), Reply("from b"), Reply("a is back"))
    base, clock = upstream.openai_base, FakeClock()
    async with Orchestrator(parse_config(config_text([base, base], extra)), env=ENV, clock=clock) as orch:
        exporter = traced(orch)
        await orch.complete("one", strategy="fallback", members=["a", "b"])
        first = list(exporter.get_finished_spans())
        exporter.clear()
        clock.advance(6)
        await orch.complete("two", strategy="fallback", members=["a", "b"])
    (first_root,) = [s for s in first if s.parent is None]
    assert "circuit_opened" in [e.name for e in first_root.events]
    root, children = tree(exporter)
    (probe,) = named(children, c.MODEL_CALL_SPAN)
    assert attrs(probe)[c.LLM_MODEL_NAME] == "a" and attrs(probe)[c.BREAKER_STATE] == "half_open"
    assert {"circuit_half_opened", "circuit_closed"} <= {e.name for e in root.events}


async def test_interleaved_requests_each_get_their_own_tree(upstream: FakeUpstream) -> None:
    upstream.default_reply = Reply("ok", latency=0.02)
    base = upstream.openai_base
    async with Orchestrator(parse_config(config_text([base, base])), env=ENV) as orch:
        exporter = traced(orch)
        results = await asyncio.gather(
            *(orch.complete(f"q{i}", strategy="ensemble", members=["a", "b"]) for i in range(12))
        )
    spans = list(exporter.get_finished_spans())
    roots = {s.context.span_id: s for s in spans if s.parent is None and s.context is not None}
    assert len(roots) == 12
    by_request = {attrs(r)[c.REQUEST_ID]: r for r in roots.values()}
    assert set(by_request) == {r.metadata["request_id"] for r in results}
    for root in roots.values():
        assert root.context is not None
        children = [s for s in spans if s.parent is not None and s.parent.span_id == root.context.span_id]
        assert len(named(children, c.MODEL_CALL_SPAN)) == 2 and len(named(children, c.AGGREGATION_SPAN)) == 1
        assert all(s.context is not None and s.context.trace_id == root.context.trace_id for s in children)


async def test_content_is_recorded_only_when_the_config_opts_in(upstream: FakeUpstream) -> None:
    base = upstream.openai_base
    for opt_in in (False, True):
        upstream.script(Reply("B"), Reply("B"), Reply("Canberra, chunked", chunk_size=4))
        text = config_text([base, base], f"telemetry: {{record_content: {str(opt_in).lower()}}}\n")
        async with Orchestrator(parse_config(text), env=ENV) as orch:
            exporter = traced(orch, record_content=opt_in)
            await orch.complete("Pick B", strategy="ensemble", members=["a", "b"], extractor="choice")
            streamed = "".join([d.text async for d in orch.stream("Capital of Australia?", model="a")])
        spans = list(exporter.get_finished_spans())
        roots = sorted((s for s in spans if s.parent is None), key=lambda s: s.start_time or 0)
        (aggregation,) = named(spans, c.AGGREGATION_SPAN)
        if opt_in:
            assert attrs(roots[0])[c.INPUT_VALUE] == "Pick B" and attrs(roots[0])[c.OUTPUT_VALUE] == "B"
            assert attrs(roots[1])[c.OUTPUT_VALUE] == streamed == "Canberra, chunked"
            assert "B" in str(attrs(aggregation)[c.VOTES]) and c.REASON in attrs(aggregation)
        else:
            everything = " ".join(str(v) for s in spans for v in attrs(s).values())
            assert "Pick B" not in everything and "Canberra" not in everything
            assert all(c.INPUT_VALUE not in attrs(s) and c.OUTPUT_VALUE not in attrs(s) for s in spans)


@dataclass(frozen=True, slots=True)
class RoutingDecided(Event):
    """Stands in for the router's event, which telemetry matches by class name."""

    model: str
    complexity_score: float
    reason: str
    factors: tuple[tuple[str, float], ...] = ()
    prompt: str = "never copied"


def test_a_routing_decision_becomes_a_child_span_without_the_prompt() -> None:
    exporter = InMemorySpanExporter()
    sink = tracing_sink(exporter, TracingSettings(), batch=False)
    sink.handle(RequestStarted("r1", 100.0, requested="auto", strategy="route"))
    sink.handle(RoutingDecided("r1", 100.01, "strong", 0.72, "long code question", (("length", 0.4),)))
    sink.handle(RequestFinished("r1", 101.0, requested="auto", strategy="route", ok=True, latency=1.0))
    assert sink.open_requests == 0
    root, children = tree(exporter)
    (routing,) = named(children, c.ROUTING_SPAN)
    found = attrs(routing)
    assert found[c.SPAN_KIND] == "CHAIN" and found[f"{c.ROUTING_PREFIX}model"] == "strong"
    assert found[f"{c.ROUTING_PREFIX}complexity_score"] == 0.72
    assert f"{c.ROUTING_PREFIX}prompt" not in found and "never copied" not in str(found)
    assert routing.start_time == 100_010_000_000 and root.end_time == 101_000_000_000


def test_an_attempt_outside_any_orchestration_is_a_trace_of_its_own() -> None:
    exporter = InMemorySpanExporter()
    sink = tracing_sink(exporter, TracingSettings(), batch=False)
    sink.handle(AttemptStarted("", 5.0, attempt_id="x1", model="a", provider="openai", deployment="a@h"))
    sink.handle(
        AttemptSucceeded(
            "",
            5.5,
            attempt_id="x1",
            model="a",
            provider="openai",
            deployment="a@h",
            usage=Usage(3, 4),
            cost=None,
            latency=0.5,
        )
    )
    (span,) = exporter.get_finished_spans()
    assert span.parent is None and span.name == c.MODEL_CALL_SPAN
    assert attrs(span)[c.PRICE_KNOWN] is False and c.LLM_COST_TOTAL not in attrs(span)
