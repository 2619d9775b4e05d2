"""Tables piped to another program print every cell whole (no 80-column cut), in a subprocess."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from model_orchestrator import Orchestrator
from model_orchestrator.config.loader import load_config
from model_orchestrator.ledger.settings import sqlite_url
from model_orchestrator.testing import FakeUpstream, Reply
from tests.cli_helpers import run_cli

pytestmark = pytest.mark.subprocess

LONG = "team-research-" + "very-long-model-name-" * 5 + "v2"  # 121 characters


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A config with one long-named model and a ledger holding one answered request of it."""
    folder = tmp_path_factory.mktemp("piped")
    path = folder / "orchestrator.yaml"
    with FakeUpstream(default_reply=Reply("Paris", usage=(10, 2))) as up:
        path.write_text(
            "models:\n"
            f"  - {{name: {LONG}, provider: openai, model: m, api_base: '{up.openai_base}',\n"
            "     api_key_env: TEST_PIPED_KEY, price: {input: 1.0, output: 2.0}}\n"
            f"ledger: {{url: '{sqlite_url(folder / 'ledger.sqlite3')}'}}\n"
        )

        async def record() -> None:
            loaded, _ = load_config(path, {})
            async with Orchestrator(loaded, env={"TEST_PIPED_KEY": "k"}) as orch:
                await orch.complete("Capital of France?", model=LONG)

        asyncio.run(record())
    return path


@pytest.mark.parametrize(
    "command", [("models",), ("health",), ("costs", "report"), ("costs", "report", "--by", "deployment")]
)
def test_piped_tables_keep_long_names_whole(config: Path, command: tuple[str, ...]) -> None:
    done = run_cli("--config", str(config), *command, env={"TEST_PIPED_KEY": "k", "COLUMNS": "80"})
    assert done.returncode == (1 if command == ("health",) else 0), done.stderr  # its upstream is gone
    assert LONG in done.stdout
    assert "…" not in done.stdout


def test_piped_key_listing_keeps_every_model_and_name_whole(config: Path) -> None:
    models = ",".join(f"{LONG}-{n}" for n in range(3))
    name = "the-research-team-of-the-platform-group"
    created = run_cli("--config", str(config), "keys", "create", "--name", name, "--models", models)
    assert created.returncode == 0, created.stderr
    listed = run_cli("--config", str(config), "keys", "list", env={"COLUMNS": "80"})
    assert listed.returncode == 0, listed.stderr
    assert models in listed.stdout and name in listed.stdout
