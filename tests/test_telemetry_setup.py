"""Turning tracing on and off: endpoint resolution, zero cost when unconfigured, a real OTLP/HTTP export to a
local collector, the OpenInference names, and no key in any span."""

from __future__ import annotations

import logging
import re
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from model_orchestrator import Orchestrator
from model_orchestrator.config.loader import parse_config
from model_orchestrator.core.errors import AllModelsFailedError, ConfigError
from model_orchestrator.core.events import RequestFinished, RequestStarted
from model_orchestrator.telemetry import conventions as c
from model_orchestrator.telemetry.setup import (
    EXIT_TIMEOUT,
    TracingSettings,
    configure_tracing,
    traces_endpoint,
)
from model_orchestrator.telemetry.tracing import TracingSink
from model_orchestrator.testing import FakeClock, FakeUpstream, Fault, Reply
from tests.cli_helpers import run_cli

SECRET = "sk-test-DO-NOT-TRACE-8d1e5c"


@pytest.mark.parametrize(
    ("settings", "env", "expected"),
    [
        (TracingSettings(), {}, None),
        (TracingSettings(), {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://h:6006"}, "http://h:6006/v1/traces"),
        (TracingSettings(), {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://h:4318/"}, "http://h:4318/v1/traces"),
        (
            TracingSettings(otlp_endpoint="http://file:1"),
            {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://h/custom"},
            "http://h/custom",
        ),
        (TracingSettings(otlp_endpoint="http://file:1"), {}, "http://file:1/v1/traces"),
        (TracingSettings(otlp_endpoint="http://file:1/v1/traces"), {}, "http://file:1/v1/traces"),
        (TracingSettings(enabled=False), {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://h"}, None),
        (TracingSettings(), {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://h", "OTEL_SDK_DISABLED": "true"}, None),
        (
            TracingSettings(),
            {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://h", "OTEL_TRACES_EXPORTER": "none"},
            None,
        ),
    ],
)
def test_the_traces_endpoint_comes_from_the_environment_then_the_file(
    settings: TracingSettings, env: dict[str, str], expected: str | None
) -> None:
    assert traces_endpoint(settings, env) == expected


@pytest.mark.parametrize("endpoint", ["localhost:4318", "ftp://h", "https://user:secret@collector.example"])
def test_a_bad_or_credential_bearing_endpoint_is_rejected_without_echoing_it(endpoint: str) -> None:
    with pytest.raises(ConfigError, match="otlp_endpoint") as raised:
        parse_config(f"telemetry: {{otlp_endpoint: '{endpoint}'}}\n")
    assert endpoint not in str(raised.value)


def test_unconfigured_tracing_subscribes_nothing_and_imports_no_opentelemetry() -> None:
    code = (
        "import sys\n"
        "from model_orchestrator import Orchestrator\n"
        "from model_orchestrator.config.loader import parse_config\n"
        "from model_orchestrator.testing import FakeUpstream\n"
        "with FakeUpstream() as up:\n"
        "    row = f\"{{name: a, provider: openai, model: m, api_base: '{up.openai_base}', \"\n"
        "    row += 'api_key_env: K}'\n"
        "    cfg = parse_config(f'models: [{row}]')\n"
        "    orch = Orchestrator(cfg, env={'K': 'k'})\n"
        "    assert orch.complete_sync('hi', model='a').response == 'ok'\n"
        "    assert orch.telemetry.tracing is None\n"
        "print(','.join(m for m in ('opentelemetry', 'prometheus_client') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", out.stdout


@dataclass
class Collector:
    """A minimal OTLP/HTTP receiver on 127.0.0.1 that keeps what it was sent."""

    url: str
    posts: list[tuple[str, dict[str, str], bytes]] = field(default_factory=list)


@pytest.fixture
def collector() -> Iterator[Collector]:
    received = Collector("")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", "0")))
            received.posts.append((self.path, {k.lower(): v for k, v in self.headers.items()}, body))
            self.send_response(200)
            self.send_header("content-type", "application/x-protobuf")
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, *_args: object) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    received.url = f"http://127.0.0.1:{server.server_address[1]}"
    yield received
    server.shutdown()
    server.server_close()


def _config(up: FakeUpstream, telemetry: str = "") -> str:
    rows = "\n".join(
        f"  - {{name: {n}, provider: openai, model: m-{n}, api_base: '{up.openai_base}', api_key_env: K}}"
        for n in ("a", "b")
    )
    return f"models:\n{rows}\n{telemetry}"


async def test_spans_reach_an_otlp_collector_with_its_headers_and_never_a_key(collector: Collector) -> None:
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    env = {
        "K": SECRET,
        "OTEL_EXPORTER_OTLP_ENDPOINT": collector.url,
        "OTEL_EXPORTER_OTLP_HEADERS": "authorization=Bearer collector-token",
    }
    telemetry = "telemetry: {project_name: orchestration-tests, record_content: true}\n"
    with FakeUpstream() as up:
        # the first member's upstream echoes the key back in its error text, as some vendors do
        up.script(Fault.status(401, f"Incorrect API key provided: {SECRET}"), Reply("Paris"))
        async with Orchestrator(parse_config(_config(up, telemetry)), env=env, clock=FakeClock()) as orch:
            assert orch.telemetry.tracing is not None
            await orch.complete("Capital of France?", strategy="fallback", members=["a", "b"])
    assert collector.posts, "nothing was exported"
    path, headers, _ = collector.posts[0]
    assert path == "/v1/traces" and headers["authorization"] == "Bearer collector-token"
    assert all(SECRET.encode() not in body for _, _, body in collector.posts)
    spans, resources = [], []
    for _, _, body in collector.posts:
        request = ExportTraceServiceRequest.FromString(body)
        for resource_spans in request.resource_spans:
            resources.append({a.key: a.value.string_value for a in resource_spans.resource.attributes})
            spans += [s for scope in resource_spans.scope_spans for s in scope.spans]
    assert sorted(s.name for s in spans) == sorted(
        [c.ROOT_SPAN, c.MODEL_CALL_SPAN, c.MODEL_CALL_SPAN, c.AGGREGATION_SPAN]
    )
    assert resources[0]["service.name"] == "model-orchestrator"
    assert resources[0][c.PROJECT_NAME] == "orchestration-tests"


async def test_tracing_false_wins_over_the_environment() -> None:
    env = {"K": "k", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9"}
    config = parse_config("telemetry: {tracing: false}\n")
    async with Orchestrator(config, env=env) as orch:
        assert orch.telemetry.tracing is None


async def test_no_key_appears_in_any_span_even_with_content_recording() -> None:
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from model_orchestrator.telemetry.setup import tracing_sink

    exporter = InMemorySpanExporter()
    with FakeUpstream() as up:
        up.script(Fault.status(401, f"Incorrect API key provided: {SECRET}"), Fault.auth())
        config = parse_config(_config(up, "telemetry: {record_content: true}\n"))
        async with Orchestrator(config, env={"K": SECRET}, clock=FakeClock()) as orch:
            orch.events.subscribe(tracing_sink(exporter, TracingSettings(record_content=True), batch=False))
            with pytest.raises(AllModelsFailedError):
                await orch.complete("hi", strategy="fallback", members=["a", "b"])
    spans = exporter.get_finished_spans()
    assert len(spans) == 3
    texts = [s.name + str(s.status.description) for s in spans]
    for span in spans:
        texts += [str(v) for v in (span.attributes or {}).values()]
        texts += [str(v) for event in span.events for v in (event.attributes or {}).values()]
        texts += [str(v) for v in span.resource.attributes.values()]
    assert any("AuthenticationError" in t for t in texts)
    assert not [t for t in texts if SECRET in t]


def test_our_openinference_names_match_the_published_conventions() -> None:
    from openinference.semconv import resource
    from openinference.semconv import trace as semconv

    spans = semconv.SpanAttributes
    assert c.SPAN_KIND == spans.OPENINFERENCE_SPAN_KIND
    pairs = {
        c.INPUT_VALUE: spans.INPUT_VALUE,
        c.INPUT_MIME_TYPE: spans.INPUT_MIME_TYPE,
        c.OUTPUT_VALUE: spans.OUTPUT_VALUE,
        c.OUTPUT_MIME_TYPE: spans.OUTPUT_MIME_TYPE,
        c.METADATA: spans.METADATA,
        c.TAGS: spans.TAG_TAGS,
        c.LLM_MODEL_NAME: spans.LLM_MODEL_NAME,
        c.LLM_PROVIDER: spans.LLM_PROVIDER,
        c.LLM_TOKENS_PROMPT: spans.LLM_TOKEN_COUNT_PROMPT,
        c.LLM_TOKENS_COMPLETION: spans.LLM_TOKEN_COUNT_COMPLETION,
        c.LLM_TOKENS_TOTAL: spans.LLM_TOKEN_COUNT_TOTAL,
        c.LLM_TOKENS_CACHE_READ: spans.LLM_TOKEN_COUNT_PROMPT_DETAILS_CACHE_READ,
        c.LLM_TOKENS_REASONING: spans.LLM_TOKEN_COUNT_COMPLETION_DETAILS_REASONING,
        c.LLM_COST_TOTAL: spans.LLM_COST_TOTAL,
        c.PROJECT_NAME: resource.ResourceAttributes.PROJECT_NAME,
    }
    assert {ours: theirs for ours, theirs in pairs.items() if ours != theirs} == {}
    kinds = semconv.OpenInferenceSpanKindValues
    assert (kinds.CHAIN.value, kinds.LLM.value) == (c.KIND_CHAIN, c.KIND_LLM)


def test_an_endpoint_without_the_tracing_extra_warns_and_traces_nothing(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # None in sys.modules makes the import fail, as when the extra is not installed
    monkeypatch.setitem(sys.modules, "opentelemetry.exporter.otlp.proto.http.trace_exporter", None)
    orch = Orchestrator(env={"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9"})
    assert orch.telemetry.tracing is None
    assert "model-orchestrator[tracing]" in caplog.text


def test_metrics_without_their_extra_are_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "model_orchestrator.telemetry.metrics", None)
    with pytest.raises(ConfigError, match=r"model-orchestrator\[metrics\]"):
        Orchestrator(env={}).metrics_text()


def test_the_readme_telemetry_example_parses() -> None:
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    block = next(b for b in re.findall(r"```yaml\n(.*?)```", readme, re.S) if b.startswith("telemetry:"))
    telemetry = parse_config(block, source="README").telemetry
    assert telemetry.otlp_endpoint == "http://127.0.0.1:6006" and telemetry.record_content is False


# --- a collector that is down ------------------------------------------------------------------------


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _one_request(sink: TracingSink, request_id: str = "r1") -> None:
    sink.handle(RequestStarted(request_id, 1_700_000_000.0, requested="a", strategy="single"))
    sink.handle(
        RequestFinished(request_id, 1_700_000_001.0, requested="a", strategy="single", ok=True, latency=1.0)
    )


def _join_closing() -> None:
    for thread in threading.enumerate():
        if thread.name == "orchestrator-tracing-close":
            thread.join(5)
            assert not thread.is_alive()


def test_a_collector_that_is_down_costs_one_warning_and_no_sdk_chatter(
    caplog: pytest.LogCaptureFixture,
) -> None:
    endpoint = f"http://user:secret@127.0.0.1:{_closed_port()}"
    sink = configure_tracing(TracingSettings(), {"OTEL_EXPORTER_OTLP_ENDPOINT": endpoint})
    assert sink is not None
    _one_request(sink)
    caplog.set_level(logging.DEBUG)

    exported = sink.close(timeout=0.2)
    _join_closing()  # let the SDK finish giving up, so anything it would still log is logged now

    assert exported is False
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert [r.name for r in warnings] == ["model_orchestrator.telemetry.export"]
    message = warnings[0].getMessage()
    assert (
        "spans dropped" in message and "within 0.2 s" in message and "OTEL_EXPORTER_OTLP_ENDPOINT" in message
    )
    assert "127.0.0.1" in message and "secret" not in message
    assert not [r for r in caplog.records if r.name.startswith("opentelemetry")]


def test_closing_returns_at_its_timeout_while_the_collector_hangs() -> None:
    with socket.socket() as silent:  # accepts connections, never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        endpoint = f"http://127.0.0.1:{silent.getsockname()[1]}"
        sink = configure_tracing(TracingSettings(), {"OTEL_EXPORTER_OTLP_ENDPOINT": endpoint})
        assert sink is not None
        _one_request(sink)

        assert sink.close(timeout=0.1) is False
        [closing] = [t for t in threading.enumerate() if t.name == "orchestrator-tracing-close"]
        assert closing.is_alive()  # the export is still waiting on the collector: close did not
        assert closing.daemon  # and the process will not wait for it at exit either
        connection, _ = silent.accept()
        connection.close()
    _join_closing()


def test_the_exit_wait_of_one_shot_commands_is_at_most_a_second() -> None:
    assert 0 < EXIT_TIMEOUT <= 1.0


def test_the_cli_with_its_collector_down_prints_one_warning(tmp_path: Path) -> None:
    with FakeUpstream() as up:
        config = tmp_path / "orchestrator.yaml"
        config.write_text(_config(up, "ledger: {enabled: false}\n"))
        env = {"K": "k", "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{_closed_port()}"}
        result = run_cli("--config", str(config), "run", "--prompt", "hi", "-m", "a", env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"
    warnings = [line for line in result.stderr.splitlines() if "warning" in line.lower()]
    assert len(warnings) == 1 and "within 1 s" in warnings[0], result.stderr
    assert "Transient error" not in result.stderr and "Failed to export" not in result.stderr
