"""orchestrator.yaml: search order, validation messages naming file and key path, and no echoed secrets."""

from __future__ import annotations

from pathlib import Path

import pytest

from model_orchestrator.config.loader import load_config, parse_config
from model_orchestrator.core.errors import ConfigError

DESIGN_EXAMPLE = """
models:
  - name: fast
    provider: openai
    model: gpt-4o-mini
    api_base: http://127.0.0.1:8001/v1
    api_key_env: OPENAI_API_KEY
    price: {input: 0.15, output: 0.60}
    context_window: 128000
    tier: 1
    rpm: 600
  - name: strong
    provider: anthropic
    model: claude-sonnet-4-5
    api_key_env: ANTHROPIC_API_KEY
    tier: 3
  - name: claude-cli
    provider: cli
    command: [claude, -p, --output-format, json]
strategies:
  - name: safe
    type: fallback
    chain: [fast, strong]
  - name: vote3
    type: ensemble
    members: [fast, strong, local/smollm2-135m]
    aggregate: vote
budgets:
  daily_usd: 5.0
"""


def test_design_example_config_loads_as_written() -> None:
    config = parse_config(DESIGN_EXAMPLE, source="orchestrator.yaml")
    assert [m.name for m in config.models] == ["fast", "strong", "claude-cli"]
    assert config.models[0].price is not None and config.models[0].price.output == 0.60
    assert config.strategies[0].type == "fallback" and config.budgets is not None
    assert config.budgets.daily_usd == 5.0


def test_errors_name_file_key_path_and_expectation() -> None:
    text = "models:\n  - name: fast\n    provider: openai\n    model: m\n    price: {input: -1, output: 1}\n"
    with pytest.raises(ConfigError) as info:
        parse_config(text, source="my.yaml")
    message = str(info.value)
    assert "my.yaml" in message
    assert "models[0] (fast).price.input" in message
    assert "greater than or equal to 0" in message


def test_unknown_keys_are_rejected_with_their_path() -> None:
    with pytest.raises(ConfigError, match=r"models\[0\] \(x\)\.temprature"):
        parse_config("models:\n  - {name: x, provider: openai, model: m, temprature: 1}\n")


def test_a_pasted_key_is_never_echoed_back() -> None:
    secret = "sk-live-SECRETSECRETSECRET"
    for text in (
        f"models:\n  - {{name: x, provider: openai, model: m, api_key_env: '{secret}'}}\n",
        f"models:\n  - {{name: x, provider: openai, model: m, api_key: '{secret}'}}\n",
    ):
        with pytest.raises(ConfigError) as info:
            parse_config(text)
        assert secret not in str(info.value)
        assert "api_key" in str(info.value)


def test_cli_models_need_a_command_and_names_must_be_unique() -> None:
    with pytest.raises(ConfigError, match="needs 'command'"):
        parse_config("models:\n  - {name: c, provider: cli}\n")
    with pytest.raises(ConfigError, match="used twice"):
        parse_config(
            "models:\n  - {name: a, provider: openai, model: m}\n  - {name: a, provider: openai, model: n}\n"
        )


def test_bad_yaml_and_wrong_top_level() -> None:
    with pytest.raises(ConfigError, match="not valid YAML"):
        parse_config("models: [", source="x.yaml")
    with pytest.raises(ConfigError, match="mapping at the top level"):
        parse_config("- a\n- b\n")


def test_search_order(tmp_path: Path) -> None:
    explicit = tmp_path / "explicit.yaml"
    explicit.write_text("default_model: a\n")
    from_env = tmp_path / "env.yaml"
    from_env.write_text("default_model: b\n")
    (tmp_path / "orchestrator.yaml").write_text("default_model: c\n")
    env = {"ORCHESTRATOR_CONFIG": str(from_env)}
    assert load_config(explicit, env)[0].default_model == "a"
    assert load_config(None, env)[0].default_model == "b"
    # the autouse fixture runs tests in an empty home directory: no file there means defaults
    assert load_config(None, {}) == (load_config(None, {})[0], None)


def test_explicit_missing_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.yaml", {})
