"""Issue 12.7 and 12.9 (config parts): a careless or hostile config file gets one clear error, exit 2.

Before the fix: a non-UTF-8 file, an ``api_base`` that is not a URL and one with ``user:pass@`` ended in
tracebacks (the second echoing the value); ``.nan`` switched a budget off; errors echoed any value,
keys included, as long as the field's name did not sound secret.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from model_orchestrator.config.loader import parse_config
from model_orchestrator.core.errors import ConfigError
from model_orchestrator.orchestrator import Orchestrator
from tests.cli_helpers import run_cli

KEY = "sk-proj-Vb7Nq2Lx9Rt4Wm8Kc3Hd6Jf1Gs5Pz0Ya"


def cli_with_config(tmp_path: Path, content: bytes | str) -> tuple[int, str]:
    path = tmp_path / "orchestrator.yaml"
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    result = run_cli("--config", str(path), "models")
    assert "Traceback" not in result.stderr
    return result.returncode, result.stderr


def model_row(**fields: str) -> str:
    row = {"name": "m", "provider": "openai", "model": "x", **fields}
    return "models:\n  - {" + ", ".join(f"{k}: {v}" for k, v in row.items()) + "}\n"


def test_a_non_utf8_file_is_named_with_the_byte_and_line(tmp_path: Path) -> None:
    code, stderr = cli_with_config(tmp_path, b"models: []\n# caf\xe9 in Latin-1\n")
    assert code == 2
    assert "orchestrator.yaml" in stderr and "not UTF-8" in stderr and "0xe9 on line 2" in stderr


def test_an_api_base_that_is_not_a_url_is_refused_with_its_key_path(tmp_path: Path) -> None:
    code, stderr = cli_with_config(tmp_path, model_row(api_base="'127.0.0.1:8000 " + "y" * 5000 + "'"))
    assert code == 2
    assert "models[0] (m).api_base: Value error, must be an http(s) URL" in stderr
    assert len(stderr) < 1_000  # a short excerpt of the value, not all of it


def test_credentials_in_api_base_are_refused_without_echoing_them(tmp_path: Path) -> None:
    code, stderr = cli_with_config(
        tmp_path, model_row(api_base="'https://admin:hunter2hunter2@proxy.internal/v1'")
    )
    assert code == 2
    assert "models[0] (m).api_base" in stderr and "headers_env" in stderr
    assert "hunter2" not in stderr


def test_nan_in_a_budget_is_refused_from_the_cli(tmp_path: Path) -> None:
    code, stderr = cli_with_config(tmp_path, "budgets: {daily_usd: .nan}\n")
    assert code == 2 and "budgets.daily_usd" in stderr and "finite number" in stderr


@pytest.mark.parametrize(
    ("text", "where"),
    [
        (model_row(price="{input: .nan, output: 1}"), "price.input"),
        (model_row(price="{input: 1, output: .inf}"), "price.output"),
        (model_row(timeout=".inf"), "timeout"),
        (model_row(connect_timeout="'nan'"), "connect_timeout"),
        ("budgets: {per_request_usd: -.inf}\n", "budgets.per_request_usd"),
        ("budgets: {categories: {ci: {monthly_usd: .inf}}}\n", "budgets.categories.ci.monthly_usd"),
        ("resilience: {request_timeout: .inf}\n", "resilience.request_timeout"),
        ("resilience: {retry: {max_delay: .inf}}\n", "resilience.retry.max_delay"),
        ("resilience: {breaker: {reset_timeout: .inf}}\n", "resilience.breaker.reset_timeout"),
        ("resilience: {rate_limit: {max_wait: .inf}}\n", "resilience.rate_limit.max_wait"),
        ("validation: {threshold: .nan}\n", "validation.threshold"),
        ("ledger: {flush_interval: .inf}\n", "ledger.flush_interval"),
        ("strategies:\n  - {name: s, type: cascade, members: [a, b], threshold: .nan}\n", "strategies[0]"),
        ("budgets: {custom_cap: .inf}\n", "budgets.custom_cap"),
    ],
)
def test_nan_and_infinities_are_refused_in_every_numeric_field(text: str, where: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(text)
    message = str(caught.value)
    assert where in message and ("finite number" in message or "less than or equal" in message)


@pytest.mark.parametrize(
    "text",
    [
        model_row(tier=KEY),  # a key in a numeric field
        model_row(temprature=KEY),  # a key in a misspelt field
        model_row(api_base=f"'{KEY}'"),  # a key where a URL belongs
        model_row(capabilities=f"[text, {KEY}]"),  # a key in a list
        f"default_model: [{KEY}]\n",
        f"models:\n  - name: {KEY}\n    provider: openai\n",  # a key as a model's name, in the key path
        f"models: [\n  {KEY}: {{\n",  # a YAML syntax error on the key's line
    ],
)
def test_config_errors_never_echo_a_value_that_looks_like_a_key(text: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(text)
    assert KEY[:12] not in str(caught.value)


def test_header_values_with_line_breaks_are_refused() -> None:
    with pytest.raises(ConfigError, match="control character"):
        parse_config(model_row(headers='{X-Team: "a\\r\\nX-Injected: 1"}'))


@pytest.mark.parametrize(
    ("text", "name"),
    [
        (f"models:\n  - {{name: m, provider: {KEY}, model: x}}\n", "m"),
        (f"strategies:\n  - {{name: s, type: {KEY}}}\n", "s"),
        (f"strategies:\n  - {{name: s, type: fallback, chain: [{KEY}]}}\n", "s"),
    ],
)
def test_errors_found_while_building_never_echo_a_key_either(text: str, name: str) -> None:
    with pytest.raises(ConfigError) as caught:
        Orchestrator(parse_config(text), env={}).model(name)
    assert KEY[:12] not in str(caught.value) and "[REDACTED]" in str(caught.value)
