"""Health probes (HTTP adapters over FakeUpstream, local, CLI) and the HealthMonitor over them."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import aiohttp
import pytest

from model_orchestrator.config.loader import parse_config
from model_orchestrator.core.errors import (
    AuthenticationError,
    ConfigError,
    DeploymentUnavailableError,
    RateLimitedError,
    ServerError,
    UpstreamConnectionError,
)
from model_orchestrator.core.events import EventBus, HealthChecked, RecordingSink
from model_orchestrator.core.health_probe import HealthProbe
from model_orchestrator.core.request import ChatRequest
from model_orchestrator.orchestrator import Orchestrator
from model_orchestrator.providers.anthropic import AnthropicModel
from model_orchestrator.providers.cli_agent import CliAgentModel
from model_orchestrator.providers.gemini import GeminiModel
from model_orchestrator.providers.http import HttpTransport
from model_orchestrator.providers.local import LocalModel
from model_orchestrator.providers.openai_compatible import OpenAICompatibleModel
from model_orchestrator.resilience.circuit_breaker import BreakerPolicy, CircuitBreakerModel
from model_orchestrator.resilience.cooldown import CooldownModel, CooldownPolicy
from model_orchestrator.resilience.health import HealthGatedModel, HealthMonitor
from model_orchestrator.resilience.state_store import MemoryStateStore
from model_orchestrator.testing import FakeClock, FakeUpstream, Fault, Reply, ScriptedModel
from tests.cli_helpers import command

KEY = "test-key-0123456789"
REQUEST = ChatRequest.from_prompt("hi")

HttpAdapter = OpenAICompatibleModel | AnthropicModel | GeminiModel


@pytest.fixture
async def upstream() -> AsyncIterator[FakeUpstream]:
    async with FakeUpstream() as up:
        yield up


@pytest.fixture
async def transport() -> AsyncIterator[HttpTransport]:
    shared = HttpTransport()
    yield shared
    await shared.aclose()


def adapters(up: FakeUpstream, transport: HttpTransport) -> list[HttpAdapter]:
    return [
        OpenAICompatibleModel(
            name="fast", model_id="gpt-4o-mini", api_base=up.openai_base, api_key=KEY, transport=transport
        ),
        AnthropicModel(name="strong", model_id="claude-x", api_key=KEY, transport=transport, api_base=up.url),
        GeminiModel(name="gem", model_id="gemini-x", api_key=KEY, transport=transport, api_base=up.url),
    ]


# ---- probes of the HTTP adapters -------------------------------------------------------------------


async def test_http_probes_list_models_for_free_and_leave_the_script_alone(
    upstream: FakeUpstream, transport: HttpTransport
) -> None:
    models = adapters(upstream, transport)
    upstream.script(Reply("scripted answer"))
    for model in models:
        assert isinstance(model, HealthProbe)
        await model.probe()
    seen = [(r.method, r.path) for r in upstream.requests]
    assert seen == [("GET", "/v1/models"), ("GET", "/v1/models"), ("GET", "/v1beta/models")]
    openai_get, anthropic_get, gemini_get = upstream.requests
    assert openai_get.headers["authorization"] == f"Bearer {KEY}"
    assert anthropic_get.headers["x-api-key"] == KEY and "anthropic-version" in anthropic_get.headers
    assert gemini_get.headers["x-goog-api-key"] == KEY
    assert (await models[0].complete(REQUEST)).text == "scripted answer"  # the script was not consumed


@pytest.mark.parametrize("index", [0, 1, 2])
async def test_a_failing_probe_raises_the_mapped_error_with_the_deployment(
    upstream: FakeUpstream, transport: HttpTransport, index: int
) -> None:
    model = adapters(upstream, transport)[index]
    upstream.fail_probes(Fault.auth())
    with pytest.raises(AuthenticationError) as auth:
        await model.probe()
    assert auth.value.deployment == model.deployment and KEY not in str(auth.value)
    upstream.fail_probes(Fault.rate_limited(retry_after=3.0))
    with pytest.raises(RateLimitedError) as limited:
        await model.probe()
    assert limited.value.retry_after == 3.0
    upstream.fail_probes(None)
    await model.probe()


async def test_a_probe_of_an_unreachable_endpoint_is_a_connection_error(transport: HttpTransport) -> None:
    async with FakeUpstream() as gone:
        base = gone.openai_base
    model = OpenAICompatibleModel(name="fast", model_id="m", api_base=base, api_key=KEY, transport=transport)
    with pytest.raises(UpstreamConnectionError) as caught:
        await model.probe()
    assert caught.value.deployment == model.deployment


async def test_the_azure_form_probes_its_model_list(upstream: FakeUpstream, transport: HttpTransport) -> None:
    model = OpenAICompatibleModel(
        name="az", model_id="dep", api_base=upstream.url, api_key=KEY, transport=transport, provider="azure"
    )
    await model.probe()
    (request,) = upstream.requests
    assert request.path == "/openai/models" and "api-version" in request.query
    assert request.headers["api-key"] == KEY


# ---- probes of the local and CLI adapters ----------------------------------------------------------


async def test_local_probe_checks_the_weights_file_without_loading_anything(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        await LocalModel(model_path=tmp_path / "missing.gguf").probe()
    weights = tmp_path / "model.gguf"
    weights.write_bytes(b"GGUF")
    code = (
        "import asyncio, sys\n"
        "from model_orchestrator.providers.local import LocalModel\n"
        f"asyncio.run(LocalModel(model_path={str(weights)!r}).probe())\n"
        "print('llama_cpp' in sys.modules)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"


@pytest.mark.local_model
async def test_local_probe_passes_for_the_embedded_model() -> None:
    await LocalModel().probe()


async def test_cli_probe_finds_the_executable_without_running_it(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    tool = tmp_path / "mytool"
    tool.write_text(f"#!/bin/sh\ntouch {marker}\n")
    tool.chmod(0o755)
    await CliAgentModel(name="agent", command=["mytool"], env={"PATH": str(tmp_path)}).probe()
    await CliAgentModel(name="agent", command=[str(tool)]).probe()
    assert not marker.exists()
    with pytest.raises(ConfigError, match="not found on PATH") as caught:
        await CliAgentModel(name="agent", command=["no-such-tool-r1x"]).probe()
    assert caught.value.deployment == "cli:agent"


# ---- the monitor -----------------------------------------------------------------------------------


async def test_monitor_combines_probes_with_breaker_and_cooldown_state(
    upstream: FakeUpstream, transport: HttpTransport
) -> None:
    fast, strong, gem = adapters(upstream, transport)
    store, clock, bus, sink = MemoryStateStore(), FakeClock(), EventBus(), RecordingSink()
    bus.subscribe(sink)
    async with FakeUpstream() as broken:
        broken.fail_probes(Fault.server_error(503))
        down = OpenAICompatibleModel(
            name="down", model_id="m", api_base=broken.openai_base, api_key=KEY, transport=transport
        )
        models = [fast, strong, gem, down]
        monitor = HealthMonitor(
            {m.deployment: m.probe for m in models},
            names={m.deployment: m.name for m in models},
            store=store,
            clock=clock,
            bus=bus,
        )
        # Real calls (not probes) open strong's circuit and put gem in cooldown.
        breaker = CircuitBreakerModel(
            ScriptedModel([ServerError("boom")]),
            deployment=strong.deployment,
            policy=BreakerPolicy(failure_threshold=1),
            store=store,
            clock=clock,
            bus=bus,
        )
        cooling = CooldownModel(
            ScriptedModel([RateLimitedError("429", retry_after=20.0)]),
            deployment=gem.deployment,
            policy=CooldownPolicy(),
            store=store,
            clock=clock,
            bus=bus,
        )
        for wrapped in (breaker, cooling):
            with pytest.raises((ServerError, RateLimitedError)):
                await wrapped.complete(REQUEST)
        clock.advance(5.0)
        first = await monitor.check_all()
        second = await monitor.check_all()

    by_name = {h.name: h for h in second}
    assert [h.name for h in first] == ["fast", "strong", "gem", "down"]
    assert by_name["fast"].healthy and by_name["fast"].available and by_name["fast"].last_error is None
    assert by_name["strong"].healthy and by_name["strong"].breaker_state == "open"
    assert not by_name["strong"].available
    assert by_name["gem"].cooldown_remaining == pytest.approx(15.0) and not by_name["gem"].available
    down_health = by_name["down"]
    assert down_health.healthy is False and down_health.consecutive_failures == 2
    assert "HTTP 503" in (down_health.last_error or "")
    assert down_health.breaker_state == "closed"  # a failing probe does not trip the breaker
    assert down_health.last_checked == clock.wall()
    checked = sink.of_type(HealthChecked)
    assert len(checked) == 8
    unhealthy = {e.deployment for e in checked if isinstance(e, HealthChecked) and not e.healthy}
    assert unhealthy == {down.deployment}
    assert second[0].to_dict()["available"] is True


async def test_snapshot_before_any_probe_and_a_hanging_probe_times_out() -> None:
    never = asyncio.Event()

    async def hangs() -> None:
        await never.wait()

    monitor = HealthMonitor(
        {"slow@host": hangs},
        names={},
        store=MemoryStateStore(),
        clock=FakeClock(),
        bus=EventBus(),
        timeout=0.02,
    )
    (unknown,) = await monitor.snapshot()
    assert unknown.healthy is None and unknown.name == "slow@host" and unknown.available
    (result,) = await monitor.check_all()
    assert result.healthy is False and "did not answer within 0.02s" in (result.last_error or "")


async def test_background_loop_probes_every_interval_and_stops_cleanly() -> None:
    calls: list[float] = []
    clock = FakeClock()

    async def probe() -> None:
        calls.append(clock.monotonic())

    monitor = HealthMonitor(
        {"a@host": probe}, names={}, store=MemoryStateStore(), clock=clock, bus=EventBus(), interval=0.5
    )
    before = asyncio.all_tasks()
    monitor.start()
    monitor.start()  # idempotent: still one loop
    for _ in range(200):
        await asyncio.sleep(0)
        if len(calls) >= 3:
            break
    await monitor.stop()
    await monitor.stop()
    assert not monitor.running
    assert calls[:3] == [0.0, 0.5, 1.0]
    assert set(clock.sleeps) == {0.5}
    assert asyncio.all_tasks() == before


# ---- probe results are shared state; strategies avoid unhealthy deployments --------------------------


async def test_probe_results_live_in_the_store_for_every_reader() -> None:
    async def failing() -> None:
        raise UpstreamConnectionError("refused")

    store = MemoryStateStore()

    def monitor() -> HealthMonitor:
        return HealthMonitor(
            {"a@host": failing}, names={"a@host": "a"}, store=store, clock=FakeClock(), bus=EventBus()
        )

    await monitor().check_all()
    await monitor().check_all()
    # A monitor that never probed (what /health/providers builds without ?probe=true) sees both rounds.
    (seen,) = await monitor().snapshot()
    assert seen.healthy is False and seen.consecutive_failures == 2 and not seen.available
    assert seen.last_error == "refused"


async def test_a_deployment_whose_last_probe_failed_is_passed_over_only_with_somewhere_else_to_go() -> None:
    store = MemoryStateStore()

    async def failing() -> None:
        raise ServerError("probe failed", status_code=500)

    await HealthMonitor(
        {"a@host": failing}, names={}, store=store, clock=FakeClock(), bus=EventBus()
    ).check_all()
    inner = ScriptedModel(["answer", "answer"])
    gated = HealthGatedModel(inner, deployment="a@host", store=store)
    with pytest.raises(DeploymentUnavailableError, match="last health probe") as caught:
        await gated.complete(replace(REQUEST, has_fallback=True))
    assert caught.value.reason == "unhealthy" and inner.requests == []
    # As the last option it is still called: a failed model-list probe is no proof completions fail.
    assert (await gated.complete(REQUEST)).text == "answer"


def _routing_config(sick: FakeUpstream, good: FakeUpstream, strong: FakeUpstream) -> str:
    return (
        "models:\n"
        f"  - {{name: sick, provider: openai, model: s, api_base: '{sick.openai_base}',"
        " price: {input: 0.1, output: 0.1}, tier: 0}\n"
        f"  - {{name: good, provider: openai, model: g, api_base: '{good.openai_base}',"
        " price: {input: 1, output: 1}, tier: 0}\n"
        f"  - {{name: strong, provider: openai, model: x, api_base: '{strong.openai_base}',"
        " price: {input: 10, output: 10}, tier: 3}\n"
    )


# ``auto`` is ``route`` over every usable model (the embedded one included, which is cheaper still).
@pytest.mark.parametrize("model", ["cheapest:sick,good,strong", "route:sick,good,strong"])
async def test_route_cheapest_and_auto_skip_a_deployment_whose_last_probe_failed(model: str) -> None:
    async with FakeUpstream() as sick, FakeUpstream() as good, FakeUpstream() as strong:
        config = parse_config(_routing_config(sick, good, strong))
        async with Orchestrator(config, env={}) as orch:
            first = await orch.complete("What is 2+2?", model=model)
            assert first.model_used == "sick"  # the cheapest, while nothing is known against it
            sick.fail_probes(Fault.server_error(500))
            await orch.health(probe=True)
            decision = await orch.route("What is 2+2?")
            second = await orch.complete("What is 2+2?", model=model)
        completions = [r for r in sick.requests if r.method == "POST"]
        assert len(completions) == 1 and second.model_used != "sick"
        assert decision.model != "sick"


@pytest.mark.subprocess
async def test_serve_probes_in_the_background_so_health_shows_real_state(tmp_path: Path) -> None:
    async with FakeUpstream() as sick, FakeUpstream() as good, FakeUpstream() as strong:
        sick.fail_probes(Fault.server_error(500))
        config = tmp_path / "orchestrator.yaml"
        config.write_text(_routing_config(sick, good, strong) + "resilience:\n  health: {interval: 0.2}\n")
        process, url = _serve(config)
        try:
            states = await _until_probed(f"{url}/health/providers", rounds=2)
        finally:
            process.send_signal(signal.SIGTERM)
            process.communicate(timeout=30)
    by_name = {s["name"]: s for s in states}
    assert by_name["sick"]["healthy"] is False and not by_name["sick"]["available"]
    assert by_name["good"]["healthy"] is True and by_name["strong"]["healthy"] is True
    # Probed again on its interval, without anyone asking for ?probe=true.
    assert by_name["sick"]["consecutive_failures"] >= 2


def _serve(config: Path) -> tuple[subprocess.Popen[str], str]:
    env = {k: v for k, v in os.environ.items() if "API_KEY" not in k}
    process = subprocess.Popen(
        [*command(), "--config", str(config), "serve", "--no-auth", "--port", "0"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert process.stderr is not None
    line = process.stderr.readline()
    assert "orchestrator gateway:" in line, line
    return process, line.split("gateway: ", 1)[1].split("/v1", 1)[0]


async def _until_probed(url: str, rounds: int) -> list[dict[str, object]]:
    """The deployments once every one has been probed ``rounds`` times (polls; gives up after 300 tries)."""
    async with aiohttp.ClientSession() as session:
        for _ in range(300):
            async with session.get(url) as response:
                states: list[dict[str, object]] = (await response.json())["deployments"]
            sick = [s for s in states if s["name"] == "sick"]
            if (
                all(s["healthy"] is not None for s in states)
                and sick
                and sick[0]["consecutive_failures"] >= rounds
            ):
                return states
            await asyncio.sleep(0.05)
    raise AssertionError(f"the background monitor never probed: {states}")
