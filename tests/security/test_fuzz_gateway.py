"""Issue 12.10: every HTTP endpoint of the gateway fuzzed with schemathesis, from the two sides the
master-key run in ``tests/test_gateway_ops.py`` does not take: a restricted virtual key (403s, hidden
hosts, filtered health) and ``--no-auth`` on loopback (the browser guard alone). No 5xx, no response
outside the OpenAPI document, no hang; the gateway still answers afterwards."""

from __future__ import annotations

import asyncio
import shutil
import sys
from pathlib import Path

import pytest

from model_orchestrator.testing import FakeUpstream
from tests.gateway_helpers import USER, live_gateway

pytestmark = pytest.mark.slow


def _schemathesis() -> str:
    return shutil.which("schemathesis") or str(Path(sys.executable).with_name("schemathesis"))


async def _fuzz(url: str, *headers: str) -> str:
    process = await asyncio.create_subprocess_exec(
        _schemathesis(),
        "run",
        f"{url}/openapi.json",
        *[arg for header in headers for arg in ("--header", header)],
        "--checks",
        "all",
        "--max-examples",
        "10",
        "--phases",
        "coverage,fuzzing",
        "--seed",
        "20261206",
        "--request-timeout",
        "20",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(process.communicate(), timeout=120)
    report = output.decode(errors="replace")
    assert process.returncode == 0, report[-6000:]
    return report


async def test_fuzzing_as_a_restricted_virtual_key() -> None:
    async with FakeUpstream() as up, live_gateway(up) as live:
        store = await live.orch.virtual_keys()
        assert store is not None
        _, secret = await store.create(models=("a",))
        await _fuzz(live.url, f"Authorization: Bearer {secret}")
        answer = await live.client(secret).chat.completions.create(model="a", messages=USER)
    assert answer.choices[0].message.content


async def test_fuzzing_without_auth_on_loopback() -> None:
    async with FakeUpstream() as up, live_gateway(up, auth=False) as live:
        await _fuzz(live.url)
        answer = await live.client("unused").chat.completions.create(model="a", messages=USER)
    assert answer.choices[0].message.content
