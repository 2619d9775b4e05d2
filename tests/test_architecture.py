"""STYLE.md's layering, enforced: imports point down, vendors stay in providers/, imports stay light."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "model_orchestrator"

# Vendor and model-family names that must not appear outside providers/ (and testing/, which speaks their
# wire formats on purpose, and wire/, the OpenAI wire DTOs by design).
_VENDOR_WORDS = re.compile(
    r"\b(openai|anthropic|gemini|google|claude|gpt-[0-9]|mistral|groq|deepseek|azure|ollama|smollm)", re.I
)
_ALLOWED_DIRS = ("providers", "testing", "wire")


def test_import_layers_point_down() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "importlinter.cli", "--config", str(ROOT / "pyproject.toml")],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    if result.returncode != 0 and "No module named importlinter.cli" in result.stderr:
        result = subprocess.run(
            ["lint-imports", "--config", str(ROOT / "pyproject.toml")],
            capture_output=True,
            text=True,
            cwd=ROOT,
            check=False,
        )
    assert result.returncode == 0, result.stdout + result.stderr


def test_no_vendor_names_outside_providers() -> None:
    offenders = []
    for path in SRC.rglob("*.py"):
        relative = path.relative_to(SRC)
        if relative.parts[0] in _ALLOWED_DIRS:
            continue
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if _VENDOR_WORDS.search(line):
                offenders.append(f"{relative}:{number}: {line.strip()}")
    assert not offenders, "vendor names outside providers/:\n" + "\n".join(offenders)


def test_import_loads_no_optional_extra() -> None:
    code = (
        "import sys, model_orchestrator\n"
        "heavy = ['aiohttp', 'llama_cpp', 'genai_prices', 'rich', 'yaml', 'pydantic', 'httpx', 'openai', "
        "'mcp', 'starlette', 'uvicorn', 'opentelemetry', 'sqlalchemy', 'prometheus_client', 'uvloop', "
        "'numpy', 'matplotlib', 'redis']\n"
        "print(','.join(m for m in heavy if m in sys.modules))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert out == "", f"import model_orchestrator loaded: {out}"


def test_cli_help_loads_no_heavy_module() -> None:
    code = (
        "import sys\n"
        "from model_orchestrator.cli.main import cli\n"
        "try:\n    cli(['--help'], prog_name='orchestrator')\nexcept SystemExit:\n    pass\n"
        "heavy = ['aiohttp', 'llama_cpp', 'genai_prices', 'rich', 'pydantic', 'yaml', 'asyncio', 'numpy', "
        "'redis']\n"
        "print('LOADED=' + ','.join(m for m in heavy if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "LOADED=\n" in out or out.rstrip().endswith("LOADED="), out


def test_modules_stay_small() -> None:
    too_big = [
        f"{p.relative_to(SRC)}: {n} lines"
        for p in SRC.rglob("*.py")
        if (n := len(p.read_text(encoding="utf-8").splitlines())) > 800
    ]
    assert not too_big, too_big
