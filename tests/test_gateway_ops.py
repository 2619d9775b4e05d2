"""Gateway operations: liveness, provider health, Prometheus metrics, the OpenAPI document checked by
schemathesis (no 5xx, responses conform), error mapping."""

from __future__ import annotations

import asyncio
import shutil
import sys
from pathlib import Path

import aiohttp
import pytest

from model_orchestrator.core import errors as e
from model_orchestrator.gateway.errors import from_exception
from model_orchestrator.testing import FakeUpstream, Fault, Reply
from tests.gateway_helpers import MASTER, USER, live_gateway

ADMIN = {"authorization": f"Bearer {MASTER}"}


async def test_health_is_public_and_providers_report_each_deployment() -> None:
    async with FakeUpstream() as up, live_gateway(up) as live, aiohttp.ClientSession() as http:
        async with http.get(f"{live.url}/health") as response:
            assert response.status == 200 and await response.json() == {"status": "ok"}
        async with http.get(f"{live.url}/health/providers") as response:
            assert response.status == 401
        up.fail_probes(Fault.server_error(500))
        async with http.get(f"{live.url}/health/providers?probe=true", headers=ADMIN) as response:
            report = await response.json()
        ours = {d["name"]: d for d in report["deployments"] if d["name"] in ("a", "b")}
        assert set(ours) == {"a", "b"}
        assert all(d["healthy"] is False and d["breaker_state"] == "closed" for d in ours.values())
        assert report["healthy"] is False


async def test_metrics_count_requests_tokens_cost_errors_and_refusals() -> None:
    async with FakeUpstream() as up, live_gateway(up) as live, aiohttp.ClientSession() as http:
        up.script(Reply("Paris", usage=(12, 3)), Fault.server_error(500))
        client = live.client()
        await client.chat.completions.create(model="a", messages=USER)
        with pytest.raises(Exception):  # noqa: B017 - any SDK error; the metric is what is checked
            await client.chat.completions.create(model="a", messages=USER)
        async with http.get(f"{live.url}/v1/models") as response:
            assert response.status == 401
        async with http.get(f"{live.url}/metrics", headers=ADMIN) as response:
            assert response.status == 200
            assert response.headers["content-type"].startswith("text/plain")
            text = await response.text()
    assert 'orchestrator_requests_total{outcome="ok",strategy="single"} 1.0' in text
    assert "orchestrator_request_duration_seconds_bucket" in text
    assert "orchestrator_" in text and "tokens" in text and "cost" in text
    assert (
        'orchestrator_gateway_http_requests_total{method="GET",route="/v1/models",status="401"} 1.0' in text
    )
    assert 'route="/v1/chat/completions",status="502"' in text


async def test_openapi_document_describes_the_routes() -> None:
    async with (
        FakeUpstream() as up,
        live_gateway(up) as live,
        aiohttp.ClientSession() as http,
        http.get(f"{live.url}/openapi.json", headers=ADMIN) as response,
    ):
        document = await response.json()
    assert document["openapi"].startswith("3.1")
    assert {"/v1/chat/completions", "/v1/models", "/health", "/health/providers", "/metrics"} <= set(
        document["paths"]
    )
    body = document["components"]["schemas"]["ChatRequestBody"]
    assert body["properties"]["messages"]["maxItems"] == 1024
    assert {"a", "b", "safe"} <= set(body["properties"]["model"]["examples"])


async def test_unknown_routes_and_methods_answer_in_the_error_format() -> None:
    async with FakeUpstream() as up, live_gateway(up) as live, aiohttp.ClientSession() as http:
        async with http.get(f"{live.url}/v2/nothing", headers=ADMIN) as response:
            assert response.status == 404 and (await response.json())["error"]["code"] == "not_found"
        async with http.put(f"{live.url}/v1/chat/completions", headers=ADMIN) as response:
            assert response.status == 405 and "POST" in response.headers["allow"]
            assert response.headers["x-orchestrator-request-id"]


@pytest.mark.parametrize(
    ("error", "status", "code"),
    [
        (e.ModelNotFoundError("x"), 404, "model_not_found"),
        (e.ConfigError("bad strategy"), 400, None),
        (e.ContextWindowExceededError("long"), 400, "context_length_exceeded"),
        (e.BudgetExceededError("spent"), 429, "insufficient_quota"),
        (e.RateLimitedError("slow down", retry_after=2.5), 429, "rate_limit_exceeded"),
        (e.DeadlineExceededError("late"), 504, "request_timeout"),
        (e.AuthenticationError("upstream key"), 502, "upstream_auth_failed"),
        (e.ServerError("boom"), 502, "ServerError"),
        (e.CircuitOpenError("open", retry_after=3), 503, "circuit_open"),
        (e.AllModelsFailedError("all", [e.ServerError("x", retry_after=4)]), 503, "all_models_failed"),
        (RuntimeError("bug"), 500, "internal_error"),
    ],
)
def test_error_mapping(error: Exception, status: int, code: str | None) -> None:
    mapped = from_exception(error)
    assert (mapped.status, mapped.code) == (status, code)
    assert set(mapped.body()["error"]) == {"message", "type", "param", "code"}
    if getattr(error, "retry_after", None):
        assert int(mapped.headers["retry-after"]) >= 1
    assert "bug" not in mapped.message  # internal failures never leak their text


def _schemathesis() -> list[str]:
    found = shutil.which("schemathesis") or str(Path(sys.executable).with_name("schemathesis"))
    return [found]


@pytest.mark.slow
async def test_schemathesis_finds_no_server_error_and_no_schema_violation() -> None:
    async with FakeUpstream() as up, live_gateway(up) as live:
        process = await asyncio.create_subprocess_exec(
            *_schemathesis(),
            "run",
            f"{live.url}/openapi.json",
            "--header",
            f"Authorization: Bearer {MASTER}",
            "--checks",
            "all",
            "--max-examples",
            "15",
            "--phases",
            "examples,coverage,fuzzing",
            "--seed",
            "20261122",
            "--request-timeout",
            "20",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        output, _ = await asyncio.wait_for(process.communicate(), timeout=280)
    report = output.decode(errors="replace")
    assert process.returncode == 0, report[-6000:]
    assert "passed" in report
