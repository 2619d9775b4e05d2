"""``ComplexityScorer``: seed 003's transparent 0-10 complexity score from seven weighted factors.

Factors, on the seed's own point scales: task length (1-3), keywords (0-2), files touched (0-2), tests
(1.5), external APIs (0.75 each, up to 1.5), subsystems (0-2) and the task's nature (0-2, inferred from
its verbs and nouns). Each factor's points times its weight, over the weighted maximum, times 10, is its
contribution; tasks of the seed's top-tier kinds (architecture decisions, data migrations, critical
debugging, performance optimisation) are raised to ``critical_floor``, because no prompt that short could
otherwise reach the top tier. Tiers come from ``thresholds`` (seed: 2.5, 5.5, 8.0). It is the explained
baseline; the learned router measures better (see README.md). It does not pick models.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from model_orchestrator.routing.decision import FactorScore

FACTORS = ("length", "keywords", "files", "tests", "external_apis", "subsystems", "task_nature")
_MAX_POINTS = {
    "length": 3.0,
    "keywords": 2.0,
    "files": 2.0,
    "tests": 1.5,
    "external_apis": 1.5,
    "subsystems": 2.0,
    "task_nature": 2.0,
}
# The seed's keywords ("architecture", "refactor", "security"; "migration", "performance",
# "optimization"), with their obvious inflections.
_KEYWORDS = re.compile(
    r"\b(architect\w*|refactor\w*|secur\w*|migrat\w*|performance|optimi[sz]\w*)\b", re.IGNORECASE
)
# The seed's tier use-cases, most demanding first; the first kind that matches names the task.
_NATURES: tuple[tuple[str, float, re.Pattern[str]], ...] = (
    (
        "critical",
        2.0,
        re.compile(
            r"\b(architect\w*|migrat\w*|performance|optimi[sz]\w*|critical|microservices?|"
            r"scal(e|es|ing|ability)\b|distributed)",
            re.IGNORECASE,
        ),
    ),
    (
        "complex",
        1.5,
        re.compile(
            r"\b(refactor\w*|algorithm\w*|secur\w*|encrypt\w*|concurren\w*|design\w*|multi-file)",
            re.IGNORECASE,
        ),
    ),
    (
        "trivial",
        0.0,
        re.compile(r"\b(typos?|comments?|docstrings?|format\w*|renam\w*|spelling|whitespace|lint)\b", re.I),
    ),
    (
        "standard",
        0.5,
        re.compile(r"\b(add|fix|implement|update|write|create|build|test|review|bug|feature)", re.IGNORECASE),
    ),
)


@dataclass(frozen=True, slots=True)
class TaskContext:
    """Seed 003's context hints: what the task touches beyond its text."""

    files_count: int | None = None
    requires_tests: bool = False
    external_apis: tuple[str, ...] = ()
    subsystems: tuple[str, ...] = ()
    capabilities: tuple[str, ...] = ()

    @classmethod
    def from_mapping(cls, data: Mapping[str, object] | None) -> TaskContext:
        """From a JSON-like mapping (the MCP tool's and Python API's ``context``); unknown keys ignored."""
        data = data or {}
        files = data.get("files_count")
        return cls(
            files_count=int(files) if isinstance(files, int | float) else None,
            requires_tests=bool(data.get("requires_tests", False)),
            external_apis=_strings(data.get("external_apis")),
            subsystems=_strings(data.get("subsystems")),
            capabilities=_strings(data.get("capabilities")),
        )


@dataclass(frozen=True, slots=True)
class ComplexitySettings:
    """Weights (per factor, default 1), tier thresholds and the top-tier floor; from config."""

    weights: Mapping[str, float] = field(default_factory=dict)
    thresholds: tuple[float, ...] = (2.5, 5.5, 8.0)
    critical_floor: float = 8.5


@dataclass(frozen=True, slots=True)
class ComplexityResult:
    """The score (0-10), its tier, each factor, and the nature floor when it applied."""

    score: float
    tier: int
    factors: tuple[FactorScore, ...]
    nature: str
    raised_by_nature: bool

    def explain(self) -> str:
        """One line: the score and its largest contributions."""
        top = sorted(self.factors, key=lambda f: -f.contribution)[:3]
        parts = ", ".join(f"{f.name} +{f.contribution:.1f}" for f in top if f.contribution > 0)
        floor = f"; raised for a {self.nature} task" if self.raised_by_nature else ""
        return f"complexity {self.score:.1f}/10 ({parts or 'no factor'}{floor})"


class ComplexityScorer:
    """Scores a task's complexity (see the module docstring); also a ``Router`` (score / 10)."""

    name = "complexity"

    def __init__(self, settings: ComplexitySettings | None = None) -> None:
        self.settings = settings or ComplexitySettings()
        unknown = set(self.settings.weights) - set(FACTORS)
        if unknown:
            raise ValueError(f"unknown complexity factors: {', '.join(sorted(unknown))}")

    def score(self, task: str, context: TaskContext | None = None) -> ComplexityResult:
        """The complexity of ``task`` given ``context``."""
        context = context or TaskContext()
        nature, nature_points = task_nature(task)
        raw = {
            "length": (_length_points(task), f"{len(task)} characters"),
            "keywords": _keyword_points(task),
            "files": _files_points(context.files_count),
            "tests": (
                1.5 if context.requires_tests else 0.0,
                "tests required" if context.requires_tests else "",
            ),
            "external_apis": _apis_points(context.external_apis),
            "subsystems": _subsystem_points(context.subsystems),
            "task_nature": (nature_points, nature),
        }
        weights = {name: float(self.settings.weights.get(name, 1.0)) for name in FACTORS}
        maximum = sum(_MAX_POINTS[name] * weights[name] for name in FACTORS) or 1.0
        factors = tuple(
            FactorScore(
                name,
                raw[name][0],
                _MAX_POINTS[name],
                weights[name],
                10.0 * raw[name][0] * weights[name] / maximum,
                raw[name][1],
            )
            for name in FACTORS
        )
        total = min(10.0, sum(f.contribution for f in factors))
        raised = nature == "critical" and total < self.settings.critical_floor
        score = self.settings.critical_floor if raised else total
        return ComplexityResult(score, self.tier_of(score), factors, nature, raised)

    def tier_of(self, score: float) -> int:
        """The tier of a score: how many thresholds it reaches."""
        return sum(1 for threshold in self.settings.thresholds if score >= threshold)

    def strong_score(self, prompt: str) -> float:
        """The complexity of a bare prompt on [0, 1], so the scorer can be evaluated like any router."""
        return self.score(prompt).score / 10.0

    def confidence(self, score: float) -> float:
        """0.5 on a tier boundary, rising to 1 at 1.25 points or more from the nearest one."""
        distance = min((abs(score - t) for t in self.settings.thresholds), default=10.0)
        return 0.5 + 0.5 * min(1.0, distance / 1.25)


def task_nature(task: str) -> tuple[str, float]:
    """The task's kind (``critical``, ``complex``, ``trivial``, ``standard`` or ``unknown``) and points."""
    for name, points, pattern in _NATURES:
        if pattern.search(task):
            return name, points
    return "unknown", 0.0


def _length_points(task: str) -> float:
    return 1.0 if len(task) < 100 else 2.0 if len(task) <= 500 else 3.0


def _keyword_points(task: str) -> tuple[float, str]:
    found = sorted({m.group(1).lower() for m in _KEYWORDS.finditer(task)})
    return min(2.0, float(len(found))), ", ".join(found)


def _files_points(files: int | None) -> tuple[float, str]:
    if not files:
        return 0.0, ""
    points = 0.5 if files == 1 else 1.5 if files <= 5 else 2.0
    return points, f"{files} file{'s' if files != 1 else ''}"


def _apis_points(apis: Sequence[str]) -> tuple[float, str]:
    return min(1.5, 0.75 * len(apis)), ", ".join(apis)


def _subsystem_points(subsystems: Sequence[str]) -> tuple[float, str]:
    count = len(subsystems)
    points = 0.0 if count == 0 else 0.5 if count == 1 else 1.5 if count <= 3 else 2.0
    return points, ", ".join(subsystems)


def _strings(value: object) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list | tuple):
        return tuple(str(v) for v in value)
    return ()
