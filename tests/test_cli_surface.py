"""The seeds' CLI surface, from the installed command against FakeUpstream: finite numbers only, --output
that never loses a paid answer, --config after the command, run --category in the ledger, validate,
model aliases, --strategy hybrid and --ensemble-size with --chain."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from model_orchestrator.testing import FakeUpstream, Reply
from tests.cli_helpers import run_cli

pytestmark = pytest.mark.subprocess


@pytest.fixture
def upstreams() -> Iterator[tuple[FakeUpstream, FakeUpstream]]:
    with FakeUpstream() as cheap, FakeUpstream() as strong:
        yield cheap, strong


@pytest.fixture
def config(tmp_path: Path, upstreams: tuple[FakeUpstream, FakeUpstream]) -> Path:
    cheap, strong = upstreams
    path = tmp_path / "orchestrator.yaml"
    path.write_text(
        "models:\n"
        f"  - {{name: cheap, provider: vllm, model: c, api_base: '{cheap.url}/v1',"
        " price: {input: 1, output: 1}, tier: 1}\n"
        f"  - {{name: strong, provider: vllm, model: s, api_base: '{strong.url}/v1',"
        " price: {input: 10, output: 10}, tier: 3}\n"
        "aliases: {quick: cheap}\n"
        "resilience: {retry: {max_attempts: 1}}\n"
    )
    return path


def _sent(*ups: FakeUpstream) -> int:
    return sum(len(up.requests) for up in ups)


@pytest.mark.parametrize(
    ("flag", "value"),
    [
        ("--max-cost", "nan"),
        ("--max-cost", "inf"),
        ("--temperature", "nan"),
        ("--timeout", "inf"),
        ("--threshold", "nan"),
        ("--strong-share", "nan"),
    ],
)
def test_nan_and_infinity_are_refused_before_anything_is_sent(
    config: Path, upstreams: tuple[FakeUpstream, FakeUpstream], flag: str, value: str
) -> None:
    result = run_cli("--config", str(config), "run", "-p", "hi", "-m", "cheap", flag, value)
    assert result.returncode == 2, result.stderr
    assert f"'{value}' is not a finite number" in result.stderr and flag in result.stderr
    assert "Traceback" not in result.stderr
    assert _sent(*upstreams) == 0


def test_other_commands_refuse_nan_too(config: Path) -> None:
    validate = run_cli("--config", str(config), "validate", "-t", "x", "--output", "y", "--max-cost", "nan")
    serve = run_cli("--config", str(config), "serve", "--request-timeout", "nan")
    feedback = run_cli("--config", str(config), "feedback", "some-request", "inf")
    for result in (validate, serve, feedback):
        assert result.returncode == 2 and "is not a finite number" in result.stderr, result.stderr


def test_every_numeric_option_of_every_command_is_finite() -> None:
    """A new float option must use ``FiniteFloat``: click's own float types let ``nan`` and ``inf`` in."""
    import click

    from model_orchestrator.cli.main import cli
    from model_orchestrator.cli.params import FiniteFloat

    def commands(command: click.Command, path: str) -> Iterator[tuple[str, click.Command]]:
        yield path, command
        for name, sub in getattr(command, "commands", {}).items():
            yield from commands(sub, f"{path} {name}")

    loose = [
        f"{path} {param.name}"
        for path, command in commands(cli, "orchestrator")
        for param in command.params
        if isinstance(param.type, click.types.FloatParamType) and not isinstance(param.type, FiniteFloat)
    ]
    assert not loose, f"float options without FiniteFloat: {loose}"


def test_output_into_a_missing_directory_is_refused_before_paying(
    config: Path, upstreams: tuple[FakeUpstream, FakeUpstream], tmp_path: Path
) -> None:
    target = tmp_path / "no-such-dir" / "result.json"
    result = run_cli("--config", str(config), "run", "-p", "hi", "-m", "cheap", "--output", str(target))
    assert result.returncode == 2
    assert "does not exist" in result.stderr and "no-such-dir" in result.stderr
    assert _sent(*upstreams) == 0


def test_a_paid_answer_that_cannot_be_written_is_saved_elsewhere_and_named(
    config: Path, upstreams: tuple[FakeUpstream, FakeUpstream], tmp_path: Path
) -> None:
    upstreams[0].script(Reply("the paid answer", usage=(10, 5)))
    # /dev/full accepts the open and fails every write with ENOSPC: a full disk.
    result = run_cli(
        "--config", str(config), "run", "-p", "hi", "-m", "cheap", "--output", "/dev/full", "--json"
    )
    assert result.returncode == 1
    assert "could not write the result to '/dev/full'" in result.stderr
    assert "No space left on device" in result.stderr and "Traceback" not in result.stderr
    found = re.search(r"the result was saved to (\S+) instead", result.stderr)
    assert found, result.stderr
    saved = Path(found.group(1))
    try:
        assert json.loads(saved.read_text())["response"] == "the paid answer"
    finally:
        saved.unlink()
    assert json.loads(result.stdout)["response"] == "the paid answer"
    assert _sent(*upstreams) == 1


def test_config_is_accepted_after_the_command_and_wins_over_one_before(config: Path, tmp_path: Path) -> None:
    other = tmp_path / "other.yaml"
    other.write_text("default_model: nowhere\n")
    after = run_cli("run", "-p", "hi", "-m", "cheap", "--config", str(config), "--json")
    both = run_cli(
        "--config", str(other), "run", "-p", "hi", "-m", "cheap", "--config", str(config), "--json"
    )
    models = run_cli("models", "--json", "--config", str(config))
    report = run_cli("costs", "report", "--json", "--config", str(config))
    for result in (after, both, models, report):
        assert result.returncode == 0, result.stderr
    assert json.loads(after.stdout)["model_used"] == "cheap"
    assert json.loads(both.stdout)["model_used"] == "cheap"
    assert "strong" in {m["name"] for m in json.loads(models.stdout)}


def test_run_category_is_recorded_for_costs_report(config: Path, tmp_path: Path) -> None:
    env = {"ORCHESTRATOR_HOME": str(tmp_path / "home")}
    ran = run_cli(
        "--config", str(config), "run", "-p", "hi", "-m", "cheap", "--category", "orchestration", env=env
    )
    other = run_cli("--config", str(config), "run", "-p", "hi", "-m", "strong", env=env)
    assert ran.returncode == 0 and other.returncode == 0, ran.stderr + other.stderr
    report = run_cli(
        "--config", str(config), "costs", "report", "--category", "orchestration", "--json", env=env
    )
    assert report.returncode == 0, report.stderr
    rows = json.loads(report.stdout)["rows"]
    assert [row["model"] for row in rows] == ["cheap"] and rows[0]["requests"] == 1


VERDICT = '{"pass": false, "issues": ["no error handling", "no tests"], "confidence": 0.9}'


def test_validate_prints_the_seed_003_verdict_and_exits_1_on_failure(
    config: Path, upstreams: tuple[FakeUpstream, FakeUpstream]
) -> None:
    cheap, strong = upstreams
    strong.script(Reply(VERDICT), Reply('{"pass": true, "issues": [], "confidence": 0.95}'))
    failed = run_cli(
        "--config", str(config), "validate", "-t", "Parse a file", "--output", "open(f)", "--json"
    )
    passed = run_cli("validate", "-t", "Parse a file", "--config", str(config), stdin="json.load(f)")
    assert failed.returncode == 1, failed.stderr
    assert json.loads(failed.stdout) == {
        "pass": False,
        "issues": ["no error handling", "no tests"],
        "confidence": 0.9,
        "escalate": True,
        "checked_by": ["judge:strong"],
    }
    assert passed.returncode == 0, passed.stderr
    assert passed.stdout.startswith("PASS (confidence 0.95")
    judged = strong.requests[0].json["messages"][-1]["content"]
    assert "Parse a file" in judged and "open(f)" in judged
    assert not cheap.requests  # the strongest model judges by default


def test_validate_runs_validators_without_a_judge_call(
    config: Path, upstreams: tuple[FakeUpstream, FakeUpstream]
) -> None:
    result = run_cli(
        "--config",
        str(config),
        "validate",
        "-t",
        "Write Python",
        "--output",
        "def f(:",
        "--validator",
        "python",
    )
    assert result.returncode == 1
    assert result.stdout.startswith("FAIL") and "checked by python" in result.stdout
    assert _sent(*upstreams) == 0


def test_aliases_from_config_and_the_builtin_table(config: Path, upstreams: tuple[FakeUpstream, ...]) -> None:
    upstreams[0].script(Reply("from cheap"))
    aliased = run_cli("--config", str(config), "run", "-p", "hi", "-m", "quick", "--json")
    assert aliased.returncode == 0, aliased.stderr
    assert json.loads(aliased.stdout)["model_used"] == "cheap"
    # A seed's short name resolves through the built-in table to a catalogue model, whose key is missing.
    builtin = run_cli("--config", str(config), "run", "-p", "hi", "-m", "sonnet")
    assert builtin.returncode == 2
    assert "ANTHROPIC_API_KEY" in builtin.stderr and "unknown model" not in builtin.stderr


def test_hybrid_routes_each_pipeline_stage_through_the_specialist(
    config: Path, upstreams: tuple[FakeUpstream, FakeUpstream]
) -> None:
    cheap, strong = upstreams
    strong.script(Reply("a plan"), Reply("def add(a, b): return a + b"), Reply('{"approved": true}'))
    result = run_cli(
        "--config", str(config), "run", "-p", "Write a python function that adds two numbers",
        "--strategy", "hybrid", "--chain", "code=strong,general=cheap", "--json",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["strategy"] == "hybrid" and data["response"] == "def add(a, b): return a + b"
    assert data["model_used"] == "strong"
    steps = data["metadata"]["explanation"]["steps"]
    label = "hybrid:code=strong,general=cheap"
    assert [s["model"] for s in steps] == [f"{label}/plan", f"{label}/code", f"{label}/review"]
    routed = [s["explanation"] for s in steps]
    assert all(r["task_type"] == "code" and r["chosen"] == "strong" for r in routed)
    assert len(strong.requests) == 3 and not cheap.requests


def test_hybrid_from_config_sends_general_stages_to_the_general_route(
    config: Path, upstreams: tuple[FakeUpstream, FakeUpstream]
) -> None:
    cheap, strong = upstreams
    with config.open("a") as handle:
        handle.write(
            "strategies:\n"
            "  - name: writer\n"
            "    type: hybrid\n"
            "    routes: {code: strong, general: cheap}\n"
            "    stages: [{name: draft, instructions: Draft it.}, {name: polish, instructions: Polish it.}]\n"
        )
    cheap.script(Reply("a draft about the history of Rome"), Reply("a polished history of Rome"))
    result = run_cli(
        "--config", str(config), "run", "-p", "Tell me about the history of Rome in a few paragraphs",
        "-m", "writer", "--json",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["response"] == "a polished history of Rome" and data["model_used"] == "cheap"
    assert len(cheap.requests) == 2 and not strong.requests


def test_ensemble_size_cycles_through_the_chain(config: Path, upstreams: tuple[FakeUpstream, ...]) -> None:
    cheap, strong = upstreams
    result = run_cli(
        "--config", str(config), "run", "-p", "2+2?", "--strategy", "ensemble", "--chain", "cheap,strong",
        "--ensemble-size", "4", "--json",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["ensemble_models"] == ["cheap", "strong", "cheap", "strong"]
    assert data["metadata"]["ensemble_size"] == 4
    assert len(cheap.requests) == 2 and len(strong.requests) == 2


def test_ensemble_size_belongs_to_ensembles(config: Path) -> None:
    result = run_cli(
        "--config", str(config), "run", "-p", "hi", "--strategy", "fallback", "--ensemble-size", "3"
    )
    assert result.returncode == 2 and "--ensemble-size is for --strategy ensemble" in result.stderr
