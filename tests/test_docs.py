"""The README's config examples are real: they parse, and every strategy in them builds."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from model_orchestrator.config.loader import parse_config
from model_orchestrator.orchestrator import Orchestrator

README = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
YAML_BLOCKS = re.findall(r"```yaml\n(.*?)```", README, re.S)


def test_readme_has_the_two_commands_first() -> None:
    commands = re.search(r"```bash\n(.*?)```", README, re.S)
    assert commands is not None
    lines = commands.group(1).strip().splitlines()
    assert lines[0].startswith("pip install -e '.[local]' && orchestrator run --prompt")
    assert lines[1] == "pip install -e '.[local,dev]' && pytest"


def test_the_models_example_parses() -> None:
    models = next(b for b in YAML_BLOCKS if b.startswith("default_model"))
    config = parse_config(models, source="README")
    assert {m.name for m in config.models} >= {"fast", "strong", "claude-cli"}


def test_every_strategy_example_builds() -> None:
    models = next(b for b in YAML_BLOCKS if b.startswith("default_model"))
    strategies = next(b for b in YAML_BLOCKS if b.startswith("strategies:"))
    config = parse_config(models + strategies, source="README")
    env = {"OPENAI_API_KEY": "k", "ANTHROPIC_API_KEY": "k", "AZURE_OPENAI_API_KEY": "k"}
    orch = Orchestrator(config, env=env)
    for strategy in config.strategies:
        built = orch.model(strategy.name)
        assert built.name == strategy.name


@pytest.mark.parametrize("path", ["docs/configuration.md", "docs/testing.md", "docs/decisions.md"])
def test_docs_exist_and_link_targets_exist(path: str) -> None:
    root = Path(__file__).resolve().parents[1]
    text = (root / path).read_text(encoding="utf-8")
    for target in re.findall(r"\]\(([^)#:]+)\)", text):
        assert (root / path).parent.joinpath(target).exists(), f"{path} links to missing {target}"
