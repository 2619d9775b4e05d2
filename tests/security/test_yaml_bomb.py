"""Issue 12.6: a YAML alias bomb ("billion laughs") in orchestrator.yaml is refused, quickly and briefly.

Before the fix a 444-byte config reached 4.6 GB in 60 s: the safe loader shares aliased subtrees, but
validation walked every expanded copy and the error message echoed the expanded value.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from model_orchestrator.config.loader import parse_config
from model_orchestrator.config.safe_yaml import MAX_EXPANDED_NODES
from model_orchestrator.core.errors import ConfigError
from tests.cli_helpers import run_cli


def laughs(levels: int = 9, fan: int = 9, root: str = "models") -> str:
    """The classic bomb: each level an anchored list of ``fan`` aliases to the level below."""
    lines = [f"l0: &l0 [{', '.join(['lol'] * fan)}]"]
    for level in range(1, levels):
        lines.append(f"l{level}: &l{level} [{', '.join([f'*l{level - 1}'] * fan)}]")
    lines.append(f"{root}: *l{levels - 1}")
    return "\n".join(lines) + "\n"


def test_the_cli_refuses_a_bomb_with_exit_2_and_a_short_message(tmp_path: Path) -> None:
    bomb = tmp_path / "orchestrator.yaml"
    bomb.write_text(laughs())
    assert bomb.stat().st_size < 600
    result = run_cli("--config", str(bomb), "models")
    assert result.returncode == 2
    assert "expand to more than" in result.stderr and str(bomb) in result.stderr
    assert "Traceback" not in result.stderr and "lol" not in result.stderr
    assert len(result.stderr) < 1_000


def test_merge_keys_cannot_multiply_either() -> None:
    # ``<<`` copies a mapping's entries into another: nested merges grow the same way as lists.
    lines = ["m0: &m0 {a: 1, b: 2, c: 3, d: 4, e: 5, f: 6, g: 7, h: 8}"]
    for level in range(1, 9):
        merged = ", ".join([f"*m{level - 1}"] * 8)
        lines.append(f"m{level}: &m{level} {{<<: [{merged}], k{level}: 0}}")
    with pytest.raises(ConfigError, match="expand to more than"):
        parse_config("\n".join(lines) + "\nbudgets: *m8\n", source="merge.yaml")


def test_a_recursive_alias_is_refused() -> None:
    with pytest.raises(ConfigError, match="refers to itself"):
        parse_config("models: &loop [*loop]\n")


def test_anchors_in_an_ordinary_config_still_work() -> None:
    first = "  - &base {name: m0, provider: openai, model: m, price: {input: 0.1, output: 0.2}}\n"
    rows = "".join(f"  - {{<<: *base, name: m{n}}}\n" for n in range(1, 200))
    config = parse_config("models:\n" + first + rows)
    assert len(config.models) == 200
    assert {m.price.output for m in config.models if m.price} == {0.2}


def test_a_value_just_under_the_bound_is_quoted_as_a_short_excerpt() -> None:
    # Below the expansion bound but large: the error names the field and shows only a few characters.
    levels = 4  # 10**4 values < MAX_EXPANDED_NODES
    assert 10**levels < MAX_EXPANDED_NODES
    with pytest.raises(ConfigError) as caught:
        parse_config(laughs(levels, 10, root="default_model"), source="big.yaml")
    message = str(caught.value)
    assert "default_model" in message and "Input should be a valid string" in message
    assert len(message) < 1_000


def test_a_huge_scalar_is_never_echoed_in_full() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(f"resilience: {{max_attempts_per_request: '{'9' * 1_000_000}'}}\n")
    assert len(str(caught.value)) < 1_000
