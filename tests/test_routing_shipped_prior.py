"""``orchestrator train-router --from-ledger --with-shipped-data`` (issue 16): the user's ledger labels
trained on with the package's own routing data as a prior. Installed CLI in a subprocess, a real SQLite
ledger holding feedback labels; the cross-validated comparison is printed before anything is written,
and the router written was trained on both the labels and the shipped data. Alone, the flag trains the
packaged router again."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

import pytest

from model_orchestrator import Orchestrator
from model_orchestrator.config.loader import load_config
from model_orchestrator.routing.dataset import load_examples, shipped_examples
from model_orchestrator.routing.learned import LearnedRouter
from model_orchestrator.testing import FakeUpstream, Reply
from tests.cli_helpers import run_cli
from tests.routing_data import DEV_FILES

pytestmark = pytest.mark.subprocess

ANIMALS = ["cat", "dog", "owl", "fox", "bee", "elk", "yak", "eel", "ant", "bat"]


def _labels() -> list[tuple[str, float]]:
    """60 requests (enough for weights of their own beside the 7,695 shipped prompts): short zebra
    prompts the weak model gets wrong, long giraffe prompts it gets right, so prompt length ranks them
    backwards."""
    short = [(f"Zebra {a} {i}?", 0.0) for i, a in enumerate(ANIMALS * 3)]
    long = [
        (f"Please tell me something about the giraffe and the {a}, number {i}.", 1.0)
        for i, a in enumerate(ANIMALS * 3)
    ]
    return short + long


async def _label_traffic(config: Path, up: FakeUpstream) -> None:
    labels = _labels()
    up.script(*[Reply("answer")] * len(labels))
    loaded, found = load_config(config, {})
    async with Orchestrator(loaded, env={"K": "sk-test"}, config_path=found) as orch:
        for prompt, score in labels:
            result = await orch.complete(prompt, model="weak")
            await orch.feedback(str(result.metadata["request_id"]), score)


def test_from_ledger_with_shipped_data_trains_on_labels_and_the_packaged_data(tmp_path: Path) -> None:
    up = FakeUpstream().start()
    try:
        config = tmp_path / "orchestrator.yaml"
        config.write_text(
            f"""
models:
  - {{name: weak, provider: openai, model: m-weak, api_base: "{up.openai_base}", api_key_env: K, tier: 1}}
  - {{name: strong, provider: openai, model: m-strong, api_base: "{up.openai_base}", api_key_env: K, tier: 3}}
ledger: {{url: "sqlite:///{tmp_path / "ledger.sqlite3"}", store_prompts: true}}
routing: {{router: length, learned_router: "{tmp_path / "router.bin"}"}}
"""
        )
        asyncio.run(_label_traffic(config, up))
    finally:
        up.stop()

    done = run_cli("--config", str(config), "train-router", "--from-ledger", "--with-shipped-data")

    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "60 labelled requests in the ledger: 60 usable" in out
    assert "prior: 7695 labelled prompts (mmlu 7005, gsm8k 653, mt_bench 37)" in out
    compared = out.index("5-fold cross-validated APGR on your 60 labelled requests: new router ")
    assert compared < out.index("because it beats the current router") and "active:" in out
    router = LearnedRouter.load(tmp_path / "router.bin")
    assert router.training["examples"] == 60 + 7695
    assert set(router.families) == {"mmlu", "gsm8k", "traffic"}
    assert router.strong_score("Zebra gnu 99?") > router.strong_score(
        "Please tell me something about the giraffe and the gnu, number 99."
    )


def test_with_shipped_data_alone_trains_the_packaged_router_again(tmp_path: Path) -> None:
    output = tmp_path / "again.bin"
    done = run_cli("train-router", "--with-shipped-data", "--output", str(output))
    assert done.returncode == 0, done.stderr
    assert "trained on 7695 prompts (mmlu 7005, gsm8k 653, mt_bench 37)" in done.stdout
    shipped, again = LearnedRouter.load(), LearnedRouter.load(output)
    for prompt in random.Random(1).sample([e.prompt for e in shipped_examples()], 200):
        assert again.strong_score(prompt) == pytest.approx(shipped.strong_score(prompt), abs=1e-4)


def test_the_shipped_data_is_the_dev_split_without_the_answers() -> None:
    shipped = shipped_examples()
    dev = [e for path in DEV_FILES for e in load_examples(path)]
    assert [(e.prompt, e.weak_score, e.strong_score, e.family) for e in shipped] == [
        (e.prompt, e.weak_score, e.strong_score, e.family) for e in dev
    ]
    assert all(e.weak_response is None for e in shipped)
