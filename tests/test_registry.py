"""Which names exist, which are usable, and how they resolve: embedded, catalogue, config, provider:model."""

from __future__ import annotations

import pytest

from model_orchestrator.config.loader import parse_config
from model_orchestrator.core.errors import ConfigError, MissingCredentialsError, ModelNotFoundError
from model_orchestrator.orchestrator import Orchestrator


def orchestrator(yaml: str = "", env: dict[str, str] | None = None) -> Orchestrator:
    return Orchestrator(parse_config(yaml), env=env or {})


def test_without_config_the_embedded_model_and_keyed_catalogue_models_are_usable() -> None:
    infos = {i.name: i for i in orchestrator(env={"OPENAI_API_KEY": "k"}).models()}
    assert infos["local/smollm2-135m"].price is not None and infos["local/smollm2-135m"].price.is_free
    assert infos["gpt-4o-mini"].usable
    assert not infos["claude-haiku-4-5"].usable
    assert infos["claude-haiku-4-5"].unusable_reason == "ANTHROPIC_API_KEY is not set"
    assert infos["gpt-4o-mini"].price is not None and infos["gpt-4o-mini"].price.input == pytest.approx(0.15)


def test_config_overrides_catalogue_and_self_hosted_needs_no_key() -> None:
    orch = orchestrator(
        "models:\n"
        "  - {name: gpt-4o-mini, provider: openai, model: gpt-4o-mini, price: {input: 9, output: 9}}\n"
        "  - {name: mine, provider: vllm, model: qwen, api_base: 'http://127.0.0.1:9/v1'}\n"
    )
    infos = {i.name: i for i in orch.models()}
    assert infos["gpt-4o-mini"].source == "config" and infos["gpt-4o-mini"].price is not None
    assert infos["gpt-4o-mini"].price.input == 9
    assert infos["mine"].usable and infos["mine"].price is None


def test_unknown_model_suggests_close_names() -> None:
    with pytest.raises(ModelNotFoundError, match="did you mean 'gpt-4o-mini'"):
        orchestrator().model("gpt-4o-mni")


def test_provider_reference_resolves_any_model_of_a_known_provider() -> None:
    orch = orchestrator(env={"OPENAI_API_KEY": "k"})
    info = next(i for i in [orch.model("openai:gpt-4.1-nano")] if i)
    assert info.name == "openai:gpt-4.1-nano"
    with pytest.raises(ModelNotFoundError):
        orch.model("nosuchprovider:model")


def test_missing_key_is_a_clear_error_naming_the_variable() -> None:
    with pytest.raises(MissingCredentialsError, match="ANTHROPIC_API_KEY"):
        orchestrator().model("claude-haiku-4-5")


def test_unknown_provider_in_config_lists_known_ones() -> None:
    with pytest.raises(ConfigError, match=r"unknown provider 'opneai'.*anthropic"):
        orchestrator("models:\n  - {name: x, provider: opneai, model: m}\n")


def test_default_model_prefers_config_then_embedded() -> None:
    assert orchestrator("default_model: gpt-4o\n").default_model == "gpt-4o"
    assert orchestrator().default_model == "local/smollm2-135m"


def test_unknown_strategy_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="unknown strategy 'ensmble'"):
        orchestrator().complete_sync("hi", strategy="ensmble")


def test_strategies_refer_to_each_other_only_without_cycles() -> None:
    orch = orchestrator(
        "strategies:\n  - {name: a, type: fallback, chain: [b]}\n  - {name: b, type: fallback, chain: [a]}\n"
    )
    with pytest.raises(ConfigError, match="cycle: a -> b -> a"):
        orch.model("a")


def test_strategy_options_are_validated_with_their_path() -> None:
    with pytest.raises(ConfigError, match="strategy 's': threshold"):
        orchestrator("strategies:\n  - {name: s, type: cascade, tiers: [gpt-4o-mini], threshold: 3}\n")


def test_deployment_ids_never_carry_url_credentials() -> None:
    from model_orchestrator.config.registry import deployment_id
    from model_orchestrator.config.schema import ModelConfig

    # Config refuses such a URL (tests/security/test_bad_config.py); ids stay clean even if one is built.
    url = "https://user:s3cret@h.example:8443/v1"
    cfg = ModelConfig.model_construct(name="a", provider="openai", model="m", api_base=url)
    assert deployment_id(cfg) == "a@h.example:8443"


def test_auto_routes_over_the_usable_models_unless_a_model_is_called_auto() -> None:
    orch = orchestrator(env={"OPENAI_API_KEY": "k"})
    assert orch.model("auto").name == "auto"
    assert orch._names.kind_of("auto") == "route"
    yaml = "models:\n  - {name: auto, provider: openai, model: m}\n"
    named = orchestrator(yaml, env={"OPENAI_API_KEY": "k"})
    assert named._names.kind_of("auto") == "single"
