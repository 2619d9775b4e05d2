"""The learned router: the shipped file loads offline and scores in bounds; training is reproducible and
round-trips through the file format; the dataset reader explains bad lines."""

from __future__ import annotations

import socket
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from model_orchestrator.core.errors import ConfigError
from model_orchestrator.routing import artifact
from model_orchestrator.routing.dataset import load_examples, parse_lines
from model_orchestrator.routing.features import DENSE_NAMES, featurise
from model_orchestrator.routing.learned import LearnedRouter
from model_orchestrator.routing.training import TrainingSettings, train_router

FIXTURE = Path(__file__).parent / "fixtures" / "routing" / "labelled.jsonl"
SMALL = TrainingSettings(hash_size=2**12, family_hash_size=2**8, calibration_folds=3)


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("the learned router must not touch the network")

    monkeypatch.setattr(socket, "socket", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def test_the_shipped_router_loads_offline_and_scores_in_bounds(no_network: None) -> None:
    router = LearnedRouter.load()  # how fast it loads is measured by benchmarks/router.py, not here
    assert router.name == "learned" and router.source.startswith("package:")
    # MT-Bench's 37 prompts (under 50, and under 2% of the data): pooled with MMLU, no family of their own.
    assert router.families == ("mmlu", "gsm8k") and router.training["pooled"] == {"mt_bench": "mmlu"}
    prompts = ["What is 2+2?", "Prove Fermat's little theorem.", "", "x" * 20_000, "¿Qué hora es? 東京"]
    scores = [router.strong_score(p) for p in prompts]
    assert all(0.0 <= s <= 1.0 for s in scores)
    assert scores == [router.strong_score(p) for p in prompts]  # deterministic


def test_thresholds_follow_the_wanted_strong_share() -> None:
    router = LearnedRouter.load()
    thresholds = [router.threshold_for_share(s) for s in (0.0, 0.1, 0.3, 0.5, 0.9, 1.0)]
    assert thresholds == sorted(thresholds, reverse=True)
    assert router.share_above(router.threshold_for_share(0.3)) == pytest.approx(0.3, abs=0.02)
    with pytest.raises(ConfigError):
        router.threshold_for_share(1.5)


def test_training_round_trips_and_is_reproducible(tmp_path: Path) -> None:
    examples = load_examples(FIXTURE)
    data, summary = train_router(examples, SMALL)
    again, _ = train_router(examples, SMALL)
    assert data == again
    assert summary["examples"] == 60 and summary["families"] == {"arith": 30, "quiz": 30}
    path = tmp_path / "router.bin"
    path.write_bytes(data)
    router = LearnedRouter.load(path)
    assert router.families == ("arith", "quiz")
    assert all(router.seen_in_training(e.prompt) for e in examples)
    assert not router.seen_in_training("a prompt it never saw")
    hard = [router.strong_score(e.prompt) for e in examples if e.gain() > 0]
    easy = [router.strong_score(e.prompt) for e in examples if e.gain() <= 0]
    assert sum(hard) / len(hard) > sum(easy) / len(easy)
    assert router.score(examples[0].prompt).family == "arith"


def test_a_damaged_or_foreign_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "bad.bin"
    path.write_bytes(b"not a router")
    with pytest.raises(ConfigError, match="not a router file"):
        LearnedRouter.load(path)
    with pytest.raises(ConfigError, match="cannot read router file"):
        LearnedRouter.load(tmp_path / "missing.bin")
    stale = artifact.encode({"dense_names": ["something_else"]}, {})
    with pytest.raises(ConfigError, match="other features"):
        LearnedRouter(artifact.decode(stale, "stale"))


def test_features_are_stable() -> None:
    features = featurise("How many apples? 3 + 4 = 7")
    assert len(features.dense) == len(DENSE_NAMES)
    assert features.hashes == featurise("how  many APPLES? 3 + 4 = 7").hashes
    assert features.key_weight == pytest.approx(len(features.hashes) ** -0.5)


def test_the_reader_accepts_every_outcome_form_and_names_bad_lines() -> None:
    lines = [
        '{"prompt": "a", "weak_score": 2, "strong_score": 9, "benchmark": "mt"}',
        '{"prompt": "b", "weak_correct": false, "strong_correct": true}',
        '{"prompt": "c", "label": 1}',
        "",
    ]
    a, b, c = parse_lines(lines, "mem")
    assert (a.family, a.gain(9.0)) == ("mt", pytest.approx(7 / 9))
    assert (b.family, b.gain()) == ("default", 1.0)
    assert (c.scored, c.gain()) == (False, 1.0)
    with pytest.raises(ConfigError, match="mem:1: every line needs"):
        list(parse_lines(['{"weak_score": 1}'], "mem"))
    with pytest.raises(ConfigError, match="mem:1: needs weak_score"):
        list(parse_lines(['{"prompt": "x"}'], "mem"))
    with pytest.raises(ConfigError, match="mem:1: not valid JSON"):
        list(parse_lines(["{"], "mem"))


def test_too_little_data_is_refused() -> None:
    with pytest.raises(ConfigError, match="needs more examples"):
        train_router(load_examples(FIXTURE)[:5], SMALL)


def test_scoring_needs_no_numpy() -> None:
    code = (
        "import sys\n"
        "from model_orchestrator.routing.learned import LearnedRouter\n"
        "LearnedRouter.load().strong_score('What is 2+2?')\n"
        "print('numpy' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_a_small_family_is_pooled_only_when_it_is_also_a_sliver_of_the_data() -> None:
    quiz = [e for e in load_examples(FIXTURE) if e.family == "quiz"]
    arith = [e for e in load_examples(FIXTURE) if e.family == "arith"][:10]
    _data, summary = train_router([*quiz, *arith], SMALL)
    assert summary["pooled"] == {}  # 10 of 40: a small family, but not a sliver
    _data, summary = train_router([*quiz, *arith], replace(SMALL, min_family_share=0.3))
    assert summary["pooled"] == {"arith": "quiz"}
