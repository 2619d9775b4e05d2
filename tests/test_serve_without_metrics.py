"""``orchestrator serve`` without the metrics extra: everything but ``/metrics`` is served, and one log line
says so (the official SDK against the live gateway, with ``prometheus_client`` made unimportable)."""

from __future__ import annotations

import logging
import sys

import httpx
import pytest

from model_orchestrator.testing import FakeUpstream
from tests.gateway_helpers import MASTER, USER, live_gateway


async def test_the_gateway_serves_without_prometheus_client_and_says_so_once(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # As on an install without the extra: importing prometheus_client (and our module over it) fails.
    monkeypatch.delitem(sys.modules, "model_orchestrator.telemetry.metrics", raising=False)
    monkeypatch.setitem(sys.modules, "prometheus_client", None)
    caplog.set_level(logging.WARNING)
    with FakeUpstream() as up:
        async with live_gateway(up) as live:
            answer = await live.client().chat.completions.create(model="a", messages=USER)
            async with httpx.AsyncClient() as http:
                master = {"authorization": f"Bearer {MASTER}"}
                metrics = await http.get(f"{live.url}/metrics", headers=master)
                health = await http.get(f"{live.url}/health")

    assert answer.choices[0].message.content == "ok"
    assert (metrics.status_code, health.status_code) == (404, 200)
    said = [r.getMessage() for r in caplog.records if "without /metrics" in r.getMessage()]
    assert said == [
        "serving without /metrics: prometheus_client is not installed "
        "(pip install 'model-orchestrator[metrics]' to add it)"
    ]
