"""Quotas (seed 000): calls per provider per UTC day, retries included; a warning at the threshold and
past the quota, and with ``hard_stop`` a clear error before any call."""

from __future__ import annotations

from pathlib import Path

import pytest

from model_orchestrator import Orchestrator
from model_orchestrator.config.loader import parse_config
from model_orchestrator.core.errors import QuotaExceededError
from model_orchestrator.core.events import BudgetWarning, RecordingSink
from model_orchestrator.testing import FakeUpstream, Fault, Reply
from tests.ledger_db import url_for


def _config(up: FakeUpstream, tmp_path: Path, hard_stop: bool) -> str:
    return f"""
models:
  - {{name: a, provider: openai, model: m-a, api_base: '{up.openai_base}', api_key_env: K,
     price: {{input: 1, output: 1}}}}
  - {{name: b, provider: anthropic, model: m-b, api_base: '{up.url}', api_key_env: K,
     price: {{input: 1, output: 1}}}}
quotas: {{calls_per_day: {{openai: 3}}, warn_at: 0.6, hard_stop: {str(hard_stop).lower()}}}
ledger: {{url: '{url_for("sqlite", tmp_path)}'}}
"""


async def test_hard_stop_refuses_before_calling_and_counts_retries(tmp_path: Path) -> None:
    async with FakeUpstream(default_reply=Reply("ok", usage=(5, 5))) as up:
        up.script(Fault.server_error(503))  # the first call is retried: two calls against the quota
        sink = RecordingSink()
        async with Orchestrator(parse_config(_config(up, tmp_path, True)), env={"K": "k"}) as orch:
            orch.events.subscribe(sink)
            await orch.complete("one", model="a")
            assert not sink.of_type(BudgetWarning)
            await orch.complete("two", model="a")  # 3 of 3: past the 60% threshold
            with pytest.raises(
                QuotaExceededError, match=r"daily call quota 'provider:openai'.*nothing was sent"
            ):
                await orch.complete("three", model="a")
            await orch.complete("other provider", model="b")  # its own (unlimited) quota
            stats = await orch.costs_stats()
    assert len(up.requests) == 4
    [warning] = sink.of_type(BudgetWarning)
    assert isinstance(warning, BudgetWarning) and (warning.budget, warning.unit) == (
        "provider:openai",
        "calls",
    )
    [quota] = [limit for limit in stats.limits if limit.name == "provider:openai"]
    assert (quota.used, quota.limit, quota.hard) == (3, 3, True)


async def test_without_hard_stop_calls_go_on_and_warn_again_past_the_quota(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async with FakeUpstream(default_reply=Reply("ok", usage=(5, 5))) as up:
        sink = RecordingSink()
        async with Orchestrator(parse_config(_config(up, tmp_path, False)), env={"K": "k"}) as orch:
            orch.events.subscribe(sink)
            for _ in range(5):
                await orch.complete("hi", model="a")
    assert len(up.requests) == 5
    fractions = [w.fraction for w in sink.of_type(BudgetWarning) if isinstance(w, BudgetWarning)]
    assert fractions == [pytest.approx(2 / 3), pytest.approx(4 / 3)]  # near the quota, then past it
    assert "daily call quota 'provider:openai'" in caplog.text
