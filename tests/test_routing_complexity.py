"""Seed 003's complexity scorer: its scenarios land in the stated tiers; factors and config are explained."""

from __future__ import annotations

import pytest

from model_orchestrator.routing.complexity import (
    FACTORS,
    ComplexityScorer,
    ComplexitySettings,
    TaskContext,
    task_nature,
)


@pytest.mark.parametrize(
    ("task", "context", "tier"),
    [
        ("Fix typo in variable name", {}, 0),
        ("Add new API endpoint for user profile", {"files_count": 3, "requires_tests": True}, 1),
        (
            "Add user authentication to API endpoint",
            {
                "files_count": 3,
                "requires_tests": True,
                "external_apis": ["Auth0"],
                "subsystems": ["api", "auth"],
            },
            1,
        ),
        (
            "Refactor authentication system to use OAuth2",
            {
                "files_count": 8,
                "external_apis": ["OAuth2", "JWT"],
                "subsystems": ["auth", "api", "database"],
                "requires_tests": True,
            },
            2,
        ),
        ("Design microservices architecture for scaling to 1M users", {}, 3),
    ],
)
def test_seed_scenarios_land_in_their_tiers(task: str, context: dict[str, object], tier: int) -> None:
    result = ComplexityScorer().score(task, TaskContext.from_mapping(context))
    assert result.tier == tier
    assert 0.0 <= result.score <= 10.0


def test_every_factor_is_shown_and_contributions_add_up() -> None:
    context = TaskContext(
        files_count=8, requires_tests=True, external_apis=("OAuth2", "JWT"), subsystems=("a", "b")
    )
    result = ComplexityScorer().score("Refactor the payment module for security", context)
    assert [f.name for f in result.factors] == list(FACTORS)
    assert sum(f.contribution for f in result.factors) == pytest.approx(result.score)
    by_name = {f.name: f for f in result.factors}
    assert by_name["files"].points == 2.0 and by_name["files"].detail == "8 files"
    assert by_name["tests"].points == 1.5
    assert by_name["external_apis"].points == 1.5 and by_name["external_apis"].detail == "OAuth2, JWT"
    assert by_name["keywords"].detail == "refactor, security"
    assert "complexity" in result.explain()


def test_seed_point_scales() -> None:
    scorer = ComplexityScorer()
    points = {f.name: f.points for f in scorer.score("x" * 600, TaskContext(files_count=1)).factors}
    assert points["length"] == 3.0 and points["files"] == 0.5
    points = {f.name: f.points for f in scorer.score("x" * 200, TaskContext(subsystems=("a",) * 4)).factors}
    assert points["length"] == 2.0 and points["subsystems"] == 2.0


def test_weights_and_thresholds_come_from_settings() -> None:
    task, context = "Add a button", TaskContext(files_count=3, requires_tests=True)
    default = ComplexityScorer().score(task, context)
    heavy_tests = ComplexityScorer(ComplexitySettings(weights={"tests": 5.0})).score(task, context)
    assert heavy_tests.score > default.score
    strict = ComplexityScorer(ComplexitySettings(thresholds=(0.5, 1.0, 2.0)))
    assert strict.score(task, context).tier == 3
    with pytest.raises(ValueError, match="unknown complexity factors"):
        ComplexityScorer(ComplexitySettings(weights={"vibes": 1.0}))


def test_task_nature_prefers_the_most_demanding_kind() -> None:
    assert task_nature("Plan the database migration")[0] == "critical"
    assert task_nature("Fix the typo in the README")[0] == "trivial"
    assert task_nature("Fix the login bug")[0] == "standard"
    assert task_nature("What is the capital of France?")[0] == "unknown"


def test_it_is_also_a_router_and_knows_its_confidence() -> None:
    scorer = ComplexityScorer()
    assert 0.0 <= scorer.strong_score("Fix typo") <= 1.0
    assert scorer.confidence(5.5) == pytest.approx(0.5)
    assert scorer.confidence(0.0) == pytest.approx(1.0)
