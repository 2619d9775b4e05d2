"""The attempt budget bounds wasted calls (failures and retries), never the calls a strategy plans.

Against real parts: FakeUpstream deployments with faults, the façade, and the installed command.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from model_orchestrator.config.loader import parse_config
from model_orchestrator.core.errors import AllModelsFailedError
from model_orchestrator.orchestrator import Orchestrator
from model_orchestrator.testing import FakeUpstream, Fault, Reply
from tests.cli_helpers import run_cli

ALWAYS = 50  # scripted faults per upstream: more than any request here can use


@pytest.fixture
def trio() -> Iterator[tuple[FakeUpstream, FakeUpstream, FakeUpstream]]:
    """``broken`` always answers 500, ``limited`` always 429 (retry-after 3 s), ``cheap`` is healthy."""
    with FakeUpstream() as broken, FakeUpstream() as limited, FakeUpstream() as cheap:
        broken.script(*[Fault.server_error(500)] * ALWAYS)
        limited.script(*[Fault.rate_limited(retry_after=3.0)] * ALWAYS)
        cheap.default_reply = Reply("from cheap")
        yield broken, limited, cheap


def _models(broken: FakeUpstream, limited: FakeUpstream, cheap: FakeUpstream) -> str:
    return (
        "models:\n"
        f"  - {{name: broken, provider: openai, model: b, api_base: '{broken.openai_base}',"
        " price: {input: 1, output: 1}, tier: 0}\n"
        f"  - {{name: limited, provider: openai, model: l, api_base: '{limited.openai_base}',"
        " price: {input: 1, output: 1}, tier: 0}\n"
        f"  - {{name: cheap, provider: openai, model: c, api_base: '{cheap.openai_base}',"
        " price: {input: 1, output: 1}, tier: 0}\n"
    )


@pytest.mark.subprocess
def test_broken_limited_cheap_answers_from_cheap_with_default_settings(
    tmp_path: Path, trio: tuple[FakeUpstream, FakeUpstream, FakeUpstream]
) -> None:
    broken, limited, cheap = trio
    config = tmp_path / "orchestrator.yaml"
    config.write_text(_models(broken, limited, cheap))
    chain = ("--strategy", "fallback", "--chain", "broken,limited,cheap")
    result = run_cli("--config", str(config), "run", "-p", "hi", *chain, "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["response"] == "from cheap" and data["model_used"] == "cheap"
    # broken is retried (a 500 may pass); limited has somewhere else to go, so its 429 moves on at once.
    assert len(broken.requests) == 3
    assert len(limited.requests) == 1
    assert len(cheap.requests) == 1


@pytest.mark.subprocess
def test_ensemble_size_8_runs_8_members(
    tmp_path: Path, trio: tuple[FakeUpstream, FakeUpstream, FakeUpstream]
) -> None:
    broken, limited, cheap = trio
    config = tmp_path / "orchestrator.yaml"
    config.write_text(_models(broken, limited, cheap))
    ensemble = ("--strategy", "ensemble", "--chain", "cheap", "--ensemble-size", "8")
    result = run_cli("--config", str(config), "run", "-p", "hi", *ensemble, "--json")
    assert result.returncode == 0, result.stderr
    assert len(cheap.requests) == 8  # the default attempt budget is 6: planned calls never use it
    assert json.loads(result.stdout)["metadata"]["ensemble_size"] == 8


def _ensembles_config(upstreams: list[FakeUpstream]) -> str:
    models = "".join(
        f"  - {{name: m{i}, provider: openai, model: m, api_base: '{up.openai_base}'}}\n"
        for i, up in enumerate(upstreams)
    )
    return (
        f"models:\n{models}"
        "strategies:\n"
        "  - {name: eight, type: ensemble, members: [m0, m1, m2, m3, m0, m1, m2, m3]}\n"
        "  - {name: e1, type: ensemble, members: [m0, m1, m2]}\n"
        "  - {name: e2, type: ensemble, members: [m1, m2, m3]}\n"
        "  - {name: e3, type: ensemble, members: [m2, m3, m0]}\n"
        "  - name: three_stages\n"
        "    type: pipeline\n"
        "    stages: [{name: draft, model: e1}, {name: check, model: e2}, {name: final, model: e3}]\n"
    )


async def test_every_planned_member_and_stage_runs_whatever_the_budget() -> None:
    with FakeUpstream() as a, FakeUpstream() as b, FakeUpstream() as c, FakeUpstream() as d:
        upstreams = [a, b, c, d]
        config = parse_config(_ensembles_config(upstreams))
        async with Orchestrator(config, env={}) as orch:
            eight = await orch.complete("2+2?", model="eight")
            assert eight.response == "ok"
            assert sum(len(u.requests) for u in upstreams) == 8  # the default budget is 6
            pipeline = await orch.complete("2+2?", model="three_stages")
            assert pipeline.response == "ok"
            assert sum(len(u.requests) for u in upstreams) == 8 + 9


async def test_when_the_budget_runs_out_the_error_says_what_used_it() -> None:
    with FakeUpstream() as first, FakeUpstream() as second:
        first.script(*[Fault.server_error(500)] * ALWAYS)
        second.script(*[Fault.server_error(502)] * ALWAYS)
        config = parse_config(
            "models:\n"
            f"  - {{name: first, provider: openai, model: m, api_base: '{first.openai_base}'}}\n"
            f"  - {{name: second, provider: openai, model: m, api_base: '{second.openai_base}'}}\n"
            "resilience:\n"
            "  retry: {max_attempts: 3, base_delay: 0, max_delay: 0}\n"
            "  max_attempts_per_request: 4\n"
        )
        async with Orchestrator(config, env={}) as orch:
            with pytest.raises(AllModelsFailedError) as caught:
                await orch.complete("hi", model="fallback:first,second")
    # first: 3 attempts (3 failures); second: its planned first call (the 4th failure), then no retry.
    assert (len(first.requests), len(second.requests)) == (3, 1)
    message = caught.value.message
    assert "attempt budget (4 failed attempts) was used up" in message
    assert "1 retry was not made" in message
    assert "first@" in message and "3x ServerError" in message
    assert "second@" in message and "1x ServerError" in message
