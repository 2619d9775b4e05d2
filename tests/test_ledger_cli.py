"""``orchestrator costs report|stats|export`` in a subprocess, over a ledger with recorded requests."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from model_orchestrator import Orchestrator
from model_orchestrator.config.loader import load_config
from model_orchestrator.ledger.export import read_csv_totals
from model_orchestrator.ledger.settings import sqlite_url
from model_orchestrator.testing import FakeUpstream, Reply
from tests.cli_helpers import run_cli

pytestmark = pytest.mark.subprocess

SECRET = "sk-test-ledger-NEVER-SHOWN"


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A config whose ledger holds three answered requests of model ``fast`` (1000 in / 200 out each)."""
    folder = tmp_path_factory.mktemp("costs-cli")
    path = folder / "orchestrator.yaml"
    with FakeUpstream(default_reply=Reply("Paris", usage=(1000, 200))) as up:
        path.write_text(
            "models:\n"
            f"  - {{name: fast, provider: openai, model: m-fast, api_base: '{up.openai_base}',\n"
            "     api_key_env: TEST_LEDGER_API_KEY, price: {input: 1.0, output: 2.0}}\n"
            "budgets: {daily_usd: 5.0}\n"
            f"ledger: {{url: '{sqlite_url(folder / 'ledger.sqlite3')}'}}\n"
        )

        async def record() -> None:
            config, _ = load_config(path, {})
            async with Orchestrator(config, env={"TEST_LEDGER_API_KEY": SECRET}) as orch:
                for _ in range(3):
                    await orch.complete("Capital of France?", model="fast")

        asyncio.run(record())
    return path


def test_report_json_and_table_with_chart(config: Path, tmp_path: Path) -> None:
    report = run_cli("--config", str(config), "costs", "report", "--by", "model", "--json")
    assert report.returncode == 0, report.stderr
    [row] = json.loads(report.stdout)["rows"]
    assert (row["model"], row["attempts"], row["input_tokens"], row["output_tokens"]) == (
        "fast",
        3,
        3000,
        600,
    )
    assert row["cost"] == pytest.approx(3 * (1000 * 1.0 + 200 * 2.0) / 1e6)
    chart = tmp_path / "spend.png"
    table = run_cli("--config", str(config), "costs", "report", "--period", "monthly", "--chart", str(chart))
    assert table.returncode == 0, table.stderr
    assert "fast" in table.stdout and "$0.0042 " in table.stdout
    assert chart.read_bytes()[:4] == b"\x89PNG"


def test_stats_table_and_json(config: Path) -> None:
    stats = run_cli("--config", str(config), "costs", "stats")
    assert stats.returncode == 0, stats.stderr
    assert "3 (3 / 0 / 0 / 0)" in stats.stdout and "global" in stats.stdout  # requests, and the daily budget
    data = json.loads(
        run_cli("--config", str(config), "costs", "stats", "--json", "--period", "daily").stdout
    )
    assert (data["requests"], data["requests_ok"], data["requests_unfinished"]) == (3, 3, 0)
    assert data["limits"][0]["used"] == pytest.approx(data["cost"])


def test_csv_export_reads_back_to_the_report_totals(config: Path, tmp_path: Path) -> None:
    out = tmp_path / "costs.csv"
    export = run_cli("--config", str(config), "costs", "export", "--format", "csv", "--output", str(out))
    assert export.returncode == 0, export.stderr
    assert "3 attempts written" in export.stderr
    back = read_csv_totals(out)
    assert (back.attempts, back.input_tokens, back.output_tokens) == (3, 3000, 600)
    assert back.cost == pytest.approx(3 * 0.0014)
    assert SECRET not in out.read_text(encoding="utf-8")


def test_bad_input_exits_2_with_a_reason(config: Path, tmp_path: Path) -> None:
    bad = run_cli("--config", str(config), "costs", "report", "--since", "last tuesday")
    assert bad.returncode == 2 and "not an ISO date" in bad.stderr
    disabled = tmp_path / "disabled.yaml"
    disabled.write_text("ledger: {enabled: false}\n")
    off = run_cli("--config", str(disabled), "costs", "stats")
    assert off.returncode == 2 and "ledger is disabled" in off.stderr


def test_run_prints_a_budget_warning_at_80_percent(tmp_path: Path) -> None:
    with FakeUpstream(default_reply=Reply("Paris", usage=(1000, 200))) as up:
        path = tmp_path / "orchestrator.yaml"
        path.write_text(
            "models:\n"
            f"  - {{name: fast, provider: openai, model: m-fast, api_base: '{up.openai_base}',\n"
            "     api_key_env: TEST_LEDGER_API_KEY, price: {input: 1.0, output: 2.0}}\n"
            "budgets: {daily_usd: 0.003}\n"  # a call costs $0.0014 and is estimated at ~$0.001
            f"ledger: {{url: '{sqlite_url(tmp_path / 'ledger.sqlite3')}'}}\n"
        )
        env = {"TEST_LEDGER_API_KEY": SECRET}
        first = run_cli("--config", str(path), "run", "-p", "Capital of France?", "-m", "fast", env=env)
        second = run_cli("--config", str(path), "run", "-p", "Capital of France?", "-m", "fast", env=env)
    assert first.returncode == 0 and "warning" not in first.stderr
    assert second.returncode == 0, second.stderr
    assert "warning: budget 'global'" in second.stderr and "of $0.003" in second.stderr
