"""Running the installed ``orchestrator`` command in a subprocess (shared by the CLI test files)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path


def command() -> list[str]:
    """The installed console script, else ``python -m model_orchestrator``."""
    found = shutil.which("orchestrator")
    return [found] if found else [sys.executable, "-m", "model_orchestrator"]


def run_cli(
    *args: str, env: dict[str, str] | None = None, stdin: str | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``orchestrator ARGS`` with no provider keys inherited; never waits on a terminal."""
    full_env = {k: v for k, v in os.environ.items() if "API_KEY" not in k}
    full_env.update(env or {})
    return subprocess.run(
        [*command(), *args],
        capture_output=True,
        text=True,
        env=full_env,
        input=stdin if stdin is not None else "",
        cwd=cwd,
        timeout=120,
        check=False,
    )
