"""The routing commands from the installed ``orchestrator``: batch scores, decisions, eval-router tables,
curves and training a router file that the other commands then use."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from model_orchestrator.testing import FakeUpstream, Reply
from tests.cli_helpers import run_cli
from tests.routing_data import DEV_FILES

pytestmark = pytest.mark.subprocess

FIXTURE = Path(__file__).parent / "fixtures" / "routing" / "labelled.jsonl"
PROMPTS = ["What is 2+2?", "Prove that there are infinitely many primes.", "", "Résumé: 東京 → Paris?"]


def test_batch_scores_keep_order_and_format() -> None:
    lines = [json.dumps({"id": i, "prompt": p}) for i, p in enumerate(PROMPTS)]
    stdin = "\n".join(lines[:2]) + "\n\n" + "\n".join(lines[2:]) + "\n"
    result = run_cli("route", "--scores", stdin=stdin)
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["id"] for r in rows] == [0, 1, 2, 3]
    assert all(set(r) == {"id", "strong_score", "router"} and r["router"] == "learned" for r in rows)
    assert all(0.0 <= r["strong_score"] <= 1.0 for r in rows)
    other = run_cli("route", "--scores", "--router", "complexity", stdin='{"prompt": "Fix typo"}\n')
    assert other.returncode == 0, other.stderr
    assert json.loads(other.stdout) == {
        "strong_score": pytest.approx(1 / 14, abs=1e-6),
        "router": "complexity",
    }


def test_batch_scores_name_a_bad_line() -> None:
    result = run_cli("route", "--scores", stdin='{"prompt": "ok"}\n{"text": "no prompt"}\n')
    assert result.returncode == 2 and "line 2" in result.stderr


def test_a_decision_in_seed_shape(tmp_path: Path) -> None:
    config = tmp_path / "orchestrator.yaml"
    config.write_text(
        "models:\n"
        "  - {name: fast, provider: openai, model: m, api_base: 'http://127.0.0.1:9/v1',"
        " price: {input: 1, output: 2}, tier: 1, capabilities: [text, json]}\n"
        "  - {name: best, provider: openai, model: b, api_base: 'http://127.0.0.1:9/v1',"
        " price: {input: 5, output: 9}, tier: 3, capabilities: [text, json, vision]}\n"
        "ledger: {enabled: false}\n"
    )
    result = run_cli(
        "--config", str(config), "route", "-p", "Refactor authentication system to use OAuth2",
        "--files-count", "8", "--requires-tests", "--external-api", "OAuth2", "--subsystem", "auth",
        "--capability", "vision", "--json",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert (data["model"], data["tier"], data["router"]) == ("best", 3, "complexity")
    assert {"complexity_score", "complexity_factors", "reason", "confidence", "estimated_cost"} <= set(data)
    assert {"model": "fast", "reason": "tier 1 is below the needed tier 3; lacks vision"} in data["excluded"]
    # The generic router: a one-line edit is unlike the benchmarks the learned router knows.
    human = run_cli("--config", str(config), "route", "-p", "Fix typo in README", "--router", "generic")
    assert human.returncode == 0, human.stderr
    assert "model: fast" in human.stdout and "router generic" in human.stdout and "reason:" in human.stdout


def test_eval_router_prints_a_table_for_every_router(tmp_path: Path) -> None:
    plot = tmp_path / "curves.png"
    result = run_cli("eval-router", "--data", str(FIXTURE), "--cv", "3", "--plot", str(plot))
    assert result.returncode == 0, result.stderr
    out = result.stdout
    for router in ("random (mean of 20)", "length", "complexity", "learned", "learned-cv", "answer-check",
                   "answer-format", "hedging", "arithmetic", "always-weak", "always-strong"):  # fmt: skip
        assert f"  {router} " in out, router
    assert "arith: 30 prompts" in out and "quiz: 30 prompts" in out
    assert "APGR" in out and "CPT(50%)" in out and "CPT(80%)" in out
    assert "quiz" in out and "no recorded weak answers" in out
    assert plot.read_bytes().startswith(b"\x89PNG")


def test_eval_router_json_and_a_router_choice() -> None:
    result = run_cli(
        "eval-router", "--data", str(FIXTURE), "--router", "length", "--router", "always-weak", "--json"
    )
    assert result.returncode == 0, result.stderr
    reports = json.loads(result.stdout)
    assert [r["benchmark"] for r in reports] == ["arith", "quiz"]
    assert [m["router"] for m in reports[0]["routers"]] == ["length"]
    assert reports[0]["fixed"] == [
        {"router": "always-weak", "strong_share": 0.0, "quality": pytest.approx(10 / 30)}
    ]
    assert len(reports[0]["routers"][0]["curve"]) == 11
    bad = run_cli("eval-router", "--data", str(FIXTURE), "--router", "psychic")
    assert bad.returncode == 2 and "unknown router 'psychic'" in bad.stderr


def test_train_router_writes_a_file_the_other_commands_use(tmp_path: Path) -> None:
    output = tmp_path / "mine.bin"
    trained = run_cli("train-router", "--data", str(FIXTURE), "--output", str(output))
    assert trained.returncode == 0, trained.stderr
    assert "trained on 60 prompts (arith 30, quiz 30)" in trained.stdout and output.stat().st_size > 0
    # Each out-of-fold fit sees 40 prompts, too few for a split (leaves need 40 each): the verdict is off.
    assert "boosted trees on the prompt's counts, weight per family (out of fold): arith off, quiz off" in (
        trained.stdout
    )
    result = run_cli(
        "eval-router", "--data", str(FIXTURE), "--router", "learned", "--learned-router", str(output)
    )
    assert result.returncode == 0, result.stderr
    assert "were in the learned router's training data" in result.stdout
    config = tmp_path / "orchestrator.yaml"
    config.write_text(f"routing: {{learned_router: '{output}'}}\nledger: {{enabled: false}}\n")
    scores = run_cli("--config", str(config), "route", "--scores", stdin='{"prompt": "Tom has 3 apples."}\n')
    assert scores.returncode == 0, scores.stderr
    assert json.loads(scores.stdout)["router"] == "learned"


def test_run_cheapest_routes_with_the_learned_router_and_explains_it(tmp_path: Path) -> None:
    with FakeUpstream() as cheap, FakeUpstream() as strong:
        config = tmp_path / "orchestrator.yaml"
        config.write_text(
            "models:\n"
            f"  - {{name: cheap, provider: openai, model: c, api_base: '{cheap.openai_base}',"
            " price: {input: 1, output: 1}, tier: 1}\n"
            f"  - {{name: strong, provider: openai, model: s, api_base: '{strong.openai_base}',"
            " price: {input: 10, output: 10}, tier: 3}\n"
            "ledger: {enabled: false}\n"
        )
        cheap.script(Reply("4"))
        args = ("--config", str(config), "run", "-p", "What is 2+2?", "--strategy", "cheapest")
        result = run_cli(*args, "--chain", "cheap,strong", "--strong-share", "0.3", "--json")
        everything_strong = run_cli(*args, "--chain", "cheap,strong", "--strong-share", "1", "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert (data["response"], data["model_used"], data["strategy"]) == ("4", "cheap", "cheapest")
    explanation = data["metadata"]["explanation"]
    routing = explanation["routing"]
    assert routing["router"] == "learned" and routing["order"] == ["cheap", "strong"]
    assert 0.0 <= routing["strong_score"] < routing["threshold"] <= 1.0
    assert "learned router: strong score" in explanation["reason"]
    assert everything_strong.returncode == 0, everything_strong.stderr
    assert json.loads(everything_strong.stdout)["metadata"]["explanation"]["routing"]["order"][0] == "strong"


@pytest.mark.parametrize("scorer", ["answer-check", "answer-check+learned"])
def test_a_cascade_escalates_when_the_cheap_answer_fails_the_checks(tmp_path: Path, scorer: str) -> None:
    with FakeUpstream() as cheap, FakeUpstream() as strong:
        config = tmp_path / "orchestrator.yaml"
        config.write_text(
            "models:\n"
            f"  - {{name: cheap, provider: openai, model: c, api_base: '{cheap.openai_base}', tier: 1}}\n"
            f"  - {{name: strong, provider: openai, model: s, api_base: '{strong.openai_base}', tier: 3}}\n"
            "ledger: {enabled: false}\n"
        )
        cheap.script(Reply("Quite a lot of apples, I think."), Reply("3 x 4 = <<3*4=12>>12\n#### 12"))
        strong.script(Reply("3 bags of 4 apples: <<3*4=12>>12.\n#### 12"))
        prompt = "Tom has 3 bags with 4 apples each. How many apples does he have?"
        args = (
            "--config",
            str(config),
            "run",
            "-p",
            prompt,
            "--strategy",
            "cascade",
            "--chain",
            "cheap,strong",
        )
        escalated = run_cli(*args, "--scorer", scorer, "--threshold", "0.6", "--json")
        accepted = run_cli(*args, "--scorer", scorer, "--threshold", "0.6", "--json")
    assert escalated.returncode == 0, escalated.stderr
    data = json.loads(escalated.stdout)
    assert data["model_used"] == "strong" and data["fallback_chain"] == ["cheap", "strong"]
    assert data["metadata"]["explanation"]["steps"][0]["outcome"] == "rejected"
    assert json.loads(accepted.stdout)["model_used"] == "cheap"


@pytest.mark.parametrize("damage", ["missing", "random bytes"])
def test_cheapest_with_a_router_file_that_cannot_load_fails_like_route(tmp_path: Path, damage: str) -> None:
    router_file = tmp_path / "router.bin"
    if damage == "random bytes":
        router_file.write_bytes(b"\x00not a router file" * 40)
    with FakeUpstream() as cheap:
        config = tmp_path / "orchestrator.yaml"
        config.write_text(
            "models:\n"
            f"  - {{name: cheap, provider: openai, model: c, api_base: '{cheap.openai_base}', tier: 0}}\n"
            f"routing: {{learned_router: '{router_file}'}}\nledger: {{enabled: false}}\n"
        )
        cheapest = run_cli("--config", str(config), "run", "-p", "hi", "--strategy", "cheapest", "--json")
        route = run_cli("--config", str(config), "route", "-p", "hi")
        assert cheap.requests == []  # nothing was sent on price alone
    for result in (cheapest, route):
        assert result.returncode != 0 and "Traceback" not in result.stderr
        assert str(router_file) in result.stderr, result.stderr


def test_eval_router_draws_a_learning_curve(tmp_path: Path) -> None:
    data = tmp_path / "gsm8k.jsonl"  # 300 of the dev word problems keep the test quick
    data.write_text("\n".join(Path(DEV_FILES[1]).read_text(encoding="utf-8").splitlines()[:300]) + "\n")
    plot = tmp_path / "curves.png"
    args = ("eval-router", "--data", str(data), "--router", "length", "--learning-curve")
    result = run_cli(*args, "--plot", str(plot), "--json")
    assert result.returncode == 0, result.stderr
    curve = json.loads(result.stdout)["learning_curve"]
    assert [row["labelled"] for row in curve] == [50, 100, 200, 240]
    assert {row["benchmark"] for row in curve} == {"gsm8k"}
    assert all(0.0 <= row[key] <= 1.0 for row in curve for key in ("learned_apgr", "generic_apgr"))
    assert curve[-1]["learned_apgr"] > 0.55  # held out, 240 labels: better than random (0.5)
    assert (tmp_path / "curves-learning.png").read_bytes().startswith(b"\x89PNG")
    table = run_cli(*args)
    assert "learning curve" in table.stdout and "gsm8k" in table.stdout
