"""The shipped router is the one the README's command trains from the dev data (issue 11.14): the test
runs that command with the installed CLI and checks that the result scores every sampled dev prompt like
the packaged file (a file of random weights with the right header would not), and that both keep their
documented families and size bound."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from model_orchestrator.routing.dataset import load_examples
from model_orchestrator.routing.learned import LearnedRouter
from tests.cli_helpers import run_cli
from tests.routing_data import DEV_FILES

pytestmark = pytest.mark.subprocess

README = Path(__file__).resolve().parents[1] / "README.md"
# The command as the README prints it, with the dev directory and the output file filled in.
TRAIN = (
    "orchestrator train-router --data {dev}/mmlu.jsonl --data {dev}/gsm8k.jsonl --data {dev}/mt_bench.jsonl"
)


def test_the_readme_names_the_command_that_trains_the_shipped_router() -> None:
    assert TRAIN.format(dev="dev") + " --output learned_router.bin" in README.read_text(encoding="utf-8")


def test_retraining_from_the_dev_data_reproduces_the_shipped_router(tmp_path: Path) -> None:
    output = tmp_path / "retrained.bin"
    args = TRAIN.format(dev=str(Path(DEV_FILES[0]).parent)).split()[1:]
    result = run_cli(*args, "--output", str(output))
    assert result.returncode == 0, result.stderr
    shipped, retrained = LearnedRouter.load(), LearnedRouter.load(output)
    assert shipped.families == retrained.families == ("mmlu", "gsm8k")
    assert shipped.training["examples"] == retrained.training["examples"] == 7695
    prompts = random.Random(0).sample([e.prompt for f in DEV_FILES for e in load_examples(f)], 300)
    for prompt in prompts:
        assert retrained.strong_score(prompt) == pytest.approx(shipped.strong_score(prompt), abs=1e-4)
        assert retrained.generic().gain(prompt) == pytest.approx(shipped.generic().gain(prompt), abs=1e-6)
    assert output.stat().st_size <= 2 * 1024 * 1024
