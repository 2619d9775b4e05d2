"""Router scores do not move when a prompt's case, whitespace or trailing punctuation changes (issue 11.8):
every perturbation of a sample of the dev prompts scores within a small bound of the original, for the
learned and the generic router."""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path

import pytest

from model_orchestrator.routing.dataset import load_examples
from model_orchestrator.routing.features import normalise
from model_orchestrator.routing.learned import LearnedRouter
from tests.routing_data import DEV_FILES

BOUND = 0.01
PERTURBATIONS: dict[str, Callable[[str], str]] = {
    "question mark": lambda p: p + "?",
    "full stop": lambda p: p + ".",
    "exclamations": lambda p: p + "!!",
    "no trailing punctuation": lambda p: p.rstrip().rstrip("?.!:"),
    "upper case": str.upper,
    "lower case": str.lower,
    "surrounding whitespace": lambda p: "  \n" + p + " \t\n\n",
    "doubled spaces": lambda p: p.replace(" ", "  "),
    "blank lines": lambda p: p.replace("\n", "\n\n"),
    "spaced question mark": lambda p: p.rstrip().rstrip("?") + " ?",
}


def _sample(count: int) -> list[str]:
    prompts = [e.prompt for path in DEV_FILES for e in load_examples(path)]
    return random.Random(0).sample(prompts, count)


@pytest.mark.parametrize("which", ["learned", "generic"])
def test_scores_are_stable_under_case_whitespace_and_punctuation(which: str) -> None:
    learned = LearnedRouter.load()
    router = learned.generic() if which == "generic" else learned
    worst = 0.0
    for prompt in _sample(300):
        base = router.strong_score(prompt)
        for name, perturb in PERTURBATIONS.items():
            change = abs(router.strong_score(perturb(prompt)) - base)
            assert change <= BOUND, f"{name} moved {prompt[:60]!r} by {change:.3f}"
            worst = max(worst, change)
    assert worst <= BOUND


def test_the_issue_example_scores_alike() -> None:
    router = LearnedRouter.load()
    scores = {
        router.strong_score(p) for p in ("What is 2+2", "What is 2+2?", "what is 2+2 ?", " WHAT IS 2+2?! ")
    }
    assert len(scores) == 1
    assert normalise("  What   is\t2+2?!\n\n") == "what is 2+2"


def test_the_dev_data_is_where_the_tests_expect_it() -> None:
    assert all(Path(p).is_file() for p in DEV_FILES), DEV_FILES
