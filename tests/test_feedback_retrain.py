"""Retraining on the user's own labels: the rules that turn ledger labels into routing examples, and
``orchestrator train-router --from-ledger`` (installed CLI, real SQLite ledger) writing the new router only
when it beats the current one by cross-validation, or with ``--force``."""

from __future__ import annotations

import asyncio
from importlib import resources
from pathlib import Path

import pytest

from model_orchestrator import Orchestrator
from model_orchestrator.config.loader import load_config
from model_orchestrator.ledger.feedback import LabelledRequest, OutcomeLabel
from model_orchestrator.orchestrator.retraining import examples_from_labels, strong_tier
from model_orchestrator.routing.learned import LearnedRouter
from model_orchestrator.testing import FakeUpstream, Reply
from tests.cli_helpers import run_cli

ANIMALS = ["cat", "dog", "owl", "fox", "bee", "elk", "yak", "eel", "ant", "bat", "cow", "pig"]


def _label(source: str, model: str, tier: int | None, score: float, at: float = 0.0) -> OutcomeLabel:
    return OutcomeLabel(source, model, tier, score, at)


def test_labels_become_examples_by_tier_side_and_source_rank() -> None:
    requests = [
        # a cascade: weak judged unsure, strong sure; the user's later feedback overrides the weak side
        LabelledRequest(
            "both",
            "q1",
            None,
            (
                _label("cascade", "weak", 1, 0.2, 1),
                _label("cascade", "strong", 3, 0.9, 2),
                _label("feedback", "weak", 1, 0.6, 3),
                _label("cascade", "weak", 1, 0.1, 4),
            ),
        ),
        LabelledRequest("weak-only", "q2", None, (_label("feedback", "weak", 1, 0.25),)),
        LabelledRequest("unknown-tier", "q3", None, (_label("feedback", "gone", None, 1.0),)),
        LabelledRequest("strong-failed", "q4", None, (_label("validation", "strong", 3, 0.0),)),
        LabelledRequest("strong-fine", "q5", None, (_label("feedback", "strong", 3, 1.0),)),
        LabelledRequest("no-prompt", None, None, (_label("feedback", "weak", 1, 0.0),)),
    ]
    made = examples_from_labels(requests, strong_tier([1, None, 3]))
    by_prompt = {e.prompt: e for e in made.examples}
    assert (by_prompt["q1"].weak_score, by_prompt["q1"].strong_score) == (0.6, 0.9)
    assert by_prompt["q2"].label == 0.75 and by_prompt["q2"].gain() == 0.75
    assert by_prompt["q3"].label == 0.0  # an unknown tier is never assumed strong
    assert by_prompt["q4"].label == 0.0  # the strong model failed too: calling it did not help
    assert set(by_prompt) == {"q1", "q2", "q3", "q4"}
    assert (made.labelled, made.without_prompt, made.uninformative) == (6, 1, 1)


def _prompts() -> list[tuple[str, float]]:
    """Short zebra prompts the weak model gets wrong, long giraffe prompts it gets right: the length
    router ranks them backwards, and one word tells them apart."""
    short = [(f"Zebra {a} {i}?", 0.0) for i, a in enumerate(ANIMALS * 2)]
    long = [
        (f"Please tell me something about the giraffe and the {a}, number {i}.", 1.0)
        for i, a in enumerate(ANIMALS * 2)
    ]
    return short + long


def _config(tmp_path: Path, up: FakeUpstream, router: str) -> Path:
    path = tmp_path / "orchestrator.yaml"
    path.write_text(
        f"""
models:
  - {{name: weak, provider: openai, model: m-weak, api_base: "{up.openai_base}", api_key_env: K, tier: 1}}
  - {{name: strong, provider: openai, model: m-strong, api_base: "{up.openai_base}", api_key_env: K, tier: 3}}
ledger: {{url: "sqlite:///{tmp_path / "ledger.sqlite3"}", store_prompts: true}}
routing: {{router: {router}, learned_router: "{tmp_path / "router.bin"}"}}
"""
    )
    return path


async def _label_traffic(config: Path, up: FakeUpstream, labels: list[tuple[str, float]]) -> None:
    up.script(*[Reply("answer")] * len(labels))
    loaded, found = load_config(config, {})
    async with Orchestrator(loaded, env={"K": "sk-test"}, config_path=found) as orch:
        for prompt, score in labels:
            result = await orch.complete(prompt, model="weak")
            await orch.feedback(str(result.metadata["request_id"]), score)


@pytest.fixture
def upstream() -> FakeUpstream:
    up = FakeUpstream().start()
    yield up  # type: ignore[misc]
    up.stop()


def test_train_router_from_ledger_writes_and_activates_a_router_that_beats_the_current_one(
    upstream: FakeUpstream, tmp_path: Path
) -> None:
    config = _config(tmp_path, upstream, "length")
    shipped = resources.files("model_orchestrator.routing").joinpath("learned_router.bin").read_bytes()
    (tmp_path / "router.bin").write_bytes(shipped)
    asyncio.run(_label_traffic(config, upstream, _prompts()))

    done = run_cli("--config", str(config), "train-router", "--from-ledger")

    assert done.returncode == 0, done.stderr
    assert "48 labelled requests in the ledger: 48 usable" in done.stdout
    assert "5-fold cross-validated APGR on your 48 labelled requests" in done.stdout
    assert "because it beats the current router" in done.stdout and "active:" in done.stdout
    assert (tmp_path / "router.bin.previous").read_bytes() == shipped
    router = LearnedRouter.load(tmp_path / "router.bin")
    assert router.strong_score("Zebra gnu 99?") > router.strong_score(
        "Please tell me something about the giraffe and the gnu, number 99."
    )


def test_a_router_that_does_not_beat_the_current_one_is_not_written_unless_forced(
    upstream: FakeUpstream, tmp_path: Path
) -> None:
    config = _config(tmp_path, upstream, "length")
    # Long prompts need the strong model: the length router is already perfect on these.
    labels = [(prompt, 1.0 - score) for prompt, score in _prompts()]
    asyncio.run(_label_traffic(config, upstream, labels))

    kept = run_cli("--config", str(config), "train-router", "--from-ledger")
    forced = run_cli(
        "--config", str(config), "train-router", "--from-ledger", "--force", "-o", str(tmp_path / "f.bin")
    )

    assert kept.returncode == 0, kept.stderr
    assert "does not beat the current one: nothing written" in kept.stdout
    assert not (tmp_path / "router.bin").exists()
    assert forced.returncode == 0 and "because --force" in forced.stdout
    assert (tmp_path / "f.bin").stat().st_size > 0 and "learned_router:" in forced.stdout


def test_too_few_labels_or_no_stored_prompts_are_explained(upstream: FakeUpstream, tmp_path: Path) -> None:
    config = _config(tmp_path, upstream, "length")
    asyncio.run(_label_traffic(config, upstream, _prompts()[:5]))
    few = run_cli("--config", str(config), "train-router", "--from-ledger")
    assert few.returncode == 2 and "5 usable labelled requests" in few.stderr and "at least 20" in few.stderr
