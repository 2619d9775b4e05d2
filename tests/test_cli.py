"""The installed ``orchestrator`` command, run in a subprocess against FakeUpstream and bad input."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from model_orchestrator.testing import FakeUpstream, Fault, Reply
from tests.cli_helpers import run_cli

pytestmark = pytest.mark.subprocess

SECRET = "sk-test-DO-NOT-LEAK-4f9c2a7e1b"


@pytest.fixture
def upstream() -> Iterator[FakeUpstream]:
    with FakeUpstream() as up:
        yield up


@pytest.fixture
def config(tmp_path: Path, upstream: FakeUpstream) -> Path:
    path = tmp_path / "orchestrator.yaml"
    path.write_text(
        "models:\n"
        "  - name: fast\n"
        "    provider: openai\n"
        "    model: fake-mini\n"
        f"    api_base: {upstream.openai_base}\n"
        "    api_key_env: TEST_FAST_API_KEY\n"
        "    price: {input: 1.0, output: 2.0}\n"
        "    tier: 1\n"
    )
    return path


def test_help_lists_commands() -> None:
    result = run_cli("--help")
    assert result.returncode == 0
    assert "run" in result.stdout and "models" in result.stdout


def test_models_json_marks_what_is_usable(config: Path) -> None:
    result = run_cli("--config", str(config), "models", "--json")
    assert result.returncode == 0, result.stderr
    models = {m["name"]: m for m in json.loads(result.stdout)}
    assert models["fast"]["usable"] is False
    assert models["fast"]["unusable_reason"] == "TEST_FAST_API_KEY is not set"
    assert models["fast"]["price"] == {"input": 1.0, "output": 2.0}
    assert "local/smollm2-135m" in models
    keyed = json.loads(
        run_cli("--config", str(config), "models", "--json", env={"TEST_FAST_API_KEY": SECRET}).stdout
    )
    assert next(m for m in keyed if m["name"] == "fast")["usable"] is True


def test_list_models_flag_is_the_table(config: Path) -> None:
    result = run_cli("--config", str(config), "--list-models")
    assert result.returncode == 0, result.stderr
    assert "fast" in result.stdout and "usable" in result.stdout


def test_run_json_has_the_seed_fields(config: Path, upstream: FakeUpstream) -> None:
    upstream.script(Reply("Paris.", usage=(1000, 500)))
    result = run_cli(
        "--config",
        str(config),
        "run",
        "--prompt",
        "Capital of France?",
        "--model",
        "fast",
        "--json",
        env={"TEST_FAST_API_KEY": SECRET},
    )
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert list(data) == [
        "response",
        "model_used",
        "cost",
        "latency",
        "confidence",
        "input_tokens",
        "output_tokens",
        "strategy",
        "fallback_chain",
        "ensemble_models",
        "metadata",
        "timestamp",
    ]
    assert data["response"] == "Paris." and data["model_used"] == "fast"
    assert (data["input_tokens"], data["output_tokens"]) == (1000, 500)
    assert data["cost"] == pytest.approx(1000 * 1.0 / 1e6 + 500 * 2.0 / 1e6)
    assert data["strategy"] == "single" and data["fallback_chain"] == ["fast"]
    sent = upstream.requests[-1]
    assert sent.json["messages"][-1]["content"] == "Capital of France?"


def test_prompt_from_stdin_and_output_file(config: Path, upstream: FakeUpstream, tmp_path: Path) -> None:
    upstream.script(Reply("four"))
    out = tmp_path / "result.json"
    result = run_cli(
        "--config",
        str(config),
        "run",
        "--model",
        "fast",
        "--output",
        str(out),
        stdin="What is 2+2?",
        env={"TEST_FAST_API_KEY": SECRET},
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "four"
    assert "in /" in result.stderr and "cost $" in result.stderr
    assert json.loads(out.read_text())["response"] == "four"
    assert upstream.requests[-1].json["messages"][-1]["content"] == "What is 2+2?"


def test_stream_prints_text(config: Path, upstream: FakeUpstream) -> None:
    upstream.script(Reply("streamed answer", chunk_size=3))
    result = run_cli(
        "--config",
        str(config),
        "run",
        "-p",
        "hi",
        "-m",
        "fast",
        "--stream",
        env={"TEST_FAST_API_KEY": SECRET},
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "streamed answer"


def test_unknown_model_is_bad_input(config: Path) -> None:
    result = run_cli("--config", str(config), "run", "-p", "hi", "-m", "fsat")
    assert result.returncode == 2
    assert "unknown model 'fsat'" in result.stderr and "'fast'" in result.stderr
    assert "Traceback" not in result.stderr


def test_malformed_config_is_bad_input(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("models:\n  - name: fast\n    provider: openai\n    model: m\n    tier: nine\n")
    result = run_cli("--config", str(bad), "models")
    assert result.returncode == 2
    assert str(bad) in result.stderr and "models[0] (fast).tier" in result.stderr
    assert "Traceback" not in result.stderr


def test_missing_key_variable_is_bad_input(config: Path) -> None:
    result = run_cli("--config", str(config), "run", "-p", "hi", "-m", "fast")
    assert result.returncode == 2
    assert "TEST_FAST_API_KEY" in result.stderr and "not set" in result.stderr


def test_missing_prompt_is_bad_input(config: Path) -> None:
    result = run_cli("--config", str(config), "run", "-m", "fast", stdin="")
    assert result.returncode == 2
    assert "prompt" in result.stderr


def test_upstream_failure_exits_1_with_a_clear_line(config: Path, upstream: FakeUpstream) -> None:
    upstream.script(Fault.status(400, "model fake-mini does not exist"))
    result = run_cli(
        "--config", str(config), "run", "-p", "hi", "-m", "fast", env={"TEST_FAST_API_KEY": SECRET}
    )
    assert result.returncode == 1
    assert "BadRequestError" in result.stderr and "Traceback" not in result.stderr


def test_api_key_never_appears_in_output_errors_or_logs(
    config: Path, upstream: FakeUpstream, tmp_path: Path
) -> None:
    env = {"TEST_FAST_API_KEY": SECRET}
    upstream.script(Reply("fine"))
    ok = run_cli(
        "-vv",
        "--config",
        str(config),
        "run",
        "-p",
        "hi",
        "-m",
        "fast",
        "--json",
        "--output",
        str(tmp_path / "r.json"),
        env=env,
    )
    assert ok.returncode == 0, ok.stderr
    # the upstream echoes the key back in its error text, as some vendors do
    upstream.script(Fault.status(401, f"Incorrect API key provided: {SECRET}"))
    denied = run_cli("-vv", "--config", str(config), "run", "-p", "hi", "-m", "fast", "--json", env=env)
    assert denied.returncode == 1
    assert "AuthenticationError" in denied.stderr
    for text in (ok.stdout, ok.stderr, (tmp_path / "r.json").read_text(), denied.stdout, denied.stderr):
        assert SECRET not in text
    assert upstream.requests[0].headers["authorization"] == f"Bearer {SECRET}"


@pytest.mark.local_model
def test_embedded_model_answers_with_zero_cost() -> None:
    result = run_cli("run", "--prompt", "What is the capital of France?", "--max-tokens", "24", "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["model_used"] == "local/smollm2-135m"
    assert data["response"].strip()
    assert data["cost"] == 0.0
    assert data["input_tokens"] > 0 and data["output_tokens"] > 0
    assert data["metadata"]["usage_estimated"] is False
