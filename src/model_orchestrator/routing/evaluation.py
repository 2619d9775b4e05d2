"""Evaluating routers on labelled data, per benchmark, with RouteLLM's metrics (``orchestrator eval-router``).

Owns which routers can be evaluated and how each one's scores are obtained: the baselines (random,
averaged over seeds; prompt length; the always-weak and always-strong points), the complexity scorer,
the learned router as shipped (flagged when the data overlaps its training prompts), the learned router
cross-validated on the data itself (``cv`` folds: every prompt scored by a model that never saw it) and
trained without the benchmark (leave-one-family-out, for transfer), and the cascade scorers that read
the weak model's recorded answer. It does not format tables (``cli``) or draw curves (``plot.py``).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from model_orchestrator.core.errors import ConfigError
from model_orchestrator.core.routing import Router
from model_orchestrator.routing.answers import ANSWER_SCORERS, AnswerScorer, PromptAwareAnswerScorer
from model_orchestrator.routing.baselines import LengthRouter, RandomRouter
from model_orchestrator.routing.complexity import ComplexityScorer
from model_orchestrator.routing.dataset import RoutingExample, families
from model_orchestrator.routing.features import PromptFeatures, featurise
from model_orchestrator.routing.learned import LearnedRouter
from model_orchestrator.routing.metrics import RouterMetrics, evaluate_scores
from model_orchestrator.routing.training import TrainingSettings, train_router

PROMPT_ROUTERS = (
    "random",
    "length",
    "complexity",
    "learned",
    "learned-cv",
    "learned-lofo",
    "generic",
    "generic-cv",
    "generic-lofo",
)
CV_ROUTERS = ("learned-cv", "generic-cv")
LOFO_ROUTERS = ("learned-lofo", "generic-lofo")
FIXED_ROUTERS = ("always-weak", "always-strong")
ANSWER_ROUTERS = (*ANSWER_SCORERS, PromptAwareAnswerScorer.name)
ALL_ROUTERS = PROMPT_ROUTERS[:2] + FIXED_ROUTERS + PROMPT_ROUTERS[2:] + ANSWER_ROUTERS
RANDOM_RUNS = 20

# RouteLLM's best published routers (arXiv 2406.18665v4), on the whole decontaminated benchmarks.
YARDSTICK = {
    "mt_bench": (0.802, 0.1340, 0.3131),
    "mmlu": (0.603, 0.3540, 0.7031),
    "gsm8k": (0.622, 0.3364, 0.6326),
}

Scores = Callable[[Sequence[RoutingExample]], list[float]]


@dataclass(frozen=True, slots=True)
class FixedPoint:
    """A policy that is one operating point: its strong-call share and quality."""

    router: str
    benchmark: str
    strong_share: float
    quality: float


@dataclass(slots=True)
class BenchmarkReport:
    """Every router's figures on one benchmark."""

    benchmark: str
    count: int
    weak_quality: float
    strong_quality: float
    metrics: list[RouterMetrics] = field(default_factory=list)
    fixed: list[FixedPoint] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, object]:
        """JSON-ready."""
        yardstick = YARDSTICK.get(self.benchmark)
        return {
            "benchmark": self.benchmark,
            "count": self.count,
            "weak_quality": self.weak_quality,
            "strong_quality": self.strong_quality,
            "routers": [m.to_dict() for m in self.metrics],
            "fixed": [
                {"router": f.router, "strong_share": f.strong_share, "quality": f.quality} for f in self.fixed
            ],
            "yardstick": dict(zip(("apgr", "cpt50", "cpt80"), yardstick, strict=True)) if yardstick else None,
            "notes": self.notes,
        }


@dataclass(frozen=True, slots=True)
class EvaluationOptions:
    """Which routers, the learned router file, cross-validation folds, transfer, seed."""

    routers: tuple[str, ...] = ()
    learned_path: Path | None = None
    cv_folds: int = 0
    leave_one_out: bool = False
    seed: int = 0
    settings: TrainingSettings = field(default_factory=TrainingSettings)


def evaluate(examples: Sequence[RoutingExample], options: EvaluationOptions) -> list[BenchmarkReport]:
    """One report per benchmark (family) present in ``examples``, for every requested router."""
    scored = [e for e in examples if e.scored]
    if not scored:
        raise ConfigError("no example has both models' scores; routing quality cannot be measured")
    names = _router_names(options)
    whole = _whole_data_scores(scored, names, options)
    reports = []
    for benchmark in families(scored):
        indices = [i for i, e in enumerate(scored) if e.family == benchmark]
        reports.append(_report(benchmark, scored, indices, names, whole, options))
    return reports


def _router_names(options: EvaluationOptions) -> list[str]:
    names = list(options.routers) or [n for n in ALL_ROUTERS if n not in CV_ROUTERS + LOFO_ROUTERS] + (
        list(CV_ROUTERS) if options.cv_folds > 1 else []
    ) + (list(LOFO_ROUTERS) if options.leave_one_out else [])
    unknown = [n for n in names if n not in ALL_ROUTERS]
    if unknown:
        raise ConfigError(f"unknown router {unknown[0]!r}; expected one of: {', '.join(ALL_ROUTERS)}")
    if set(CV_ROUTERS) & set(names) and options.cv_folds < 2:
        raise ConfigError("the learned-cv and generic-cv routers need --cv K with K >= 2 folds")
    return names


def _whole_data_scores(
    examples: Sequence[RoutingExample], names: Sequence[str], options: EvaluationOptions
) -> dict[str, list[float]]:
    """Scores that need every benchmark at once: cross-validation and leave-one-family-out training."""
    whole: dict[str, list[float]] = {}
    wants_cv = options.cv_folds > 1 and PromptAwareAnswerScorer.name in names
    if wants_cv or set(CV_ROUTERS) & set(names):
        folds = cross_validation_folds(len(examples), options.cv_folds, options.seed)
        scores = held_out_scores(examples, folds, options.settings)
        whole.update({f"{name}-cv": values for name, values in scores.items()})
    if set(LOFO_ROUTERS) & set(names):
        scores = held_out_scores(examples, family_folds(examples), options.settings)
        whole.update({f"{name}-lofo": values for name, values in scores.items()})
    return whole


def _report(
    benchmark: str,
    examples: Sequence[RoutingExample],
    indices: Sequence[int],
    names: Sequence[str],
    whole: dict[str, list[float]],
    options: EvaluationOptions,
) -> BenchmarkReport:
    subset = [examples[i] for i in indices]
    weak = [float(e.weak_score or 0.0) for e in subset]
    strong = [float(e.strong_score or 0.0) for e in subset]
    report = BenchmarkReport(benchmark, len(subset), sum(weak) / len(weak), sum(strong) / len(strong))
    gains = [whole["learned-cv"][i] for i in indices] if "learned-cv" in whole else None
    for name in names:
        if name in FIXED_ROUTERS:
            is_strong = name == "always-strong"
            quality = report.strong_quality if is_strong else report.weak_quality
            report.fixed.append(FixedPoint(name, benchmark, 1.0 if is_strong else 0.0, quality))
            continue
        precomputed = [whole[name][i] for i in indices] if name in whole else None
        scores = _scores(name, subset, precomputed, options, gains)
        if scores is None:
            report.notes.append(f"{name}: no recorded weak answers in this data; not evaluated")
            continue
        report.metrics.append(_metrics(name, benchmark, subset, scores, weak, strong, options.seed))
        if name in ("learned", "generic") or (name == PromptAwareAnswerScorer.name and gains is None):
            report.notes.extend(_overlap_note(name, subset, options))
    return report


def _metrics(
    name: str,
    benchmark: str,
    subset: Sequence[RoutingExample],
    scores: list[float],
    weak: list[float],
    strong: list[float],
    seed: int,
) -> RouterMetrics:
    if name != "random":
        return evaluate_scores(name, benchmark, scores, weak, strong)
    runs = [
        evaluate_scores(name, benchmark, _random_scores(subset, seed + run), weak, strong)
        for run in range(RANDOM_RUNS)
    ]
    return replace(
        runs[0],
        router=f"random (mean of {RANDOM_RUNS})",
        apgr=_mean([r.apgr for r in runs]),
        cpt20=_mean([r.cpt20 for r in runs]),
        cpt50=_mean([r.cpt50 for r in runs]),
        cpt80=_mean([r.cpt80 for r in runs]),
    )


def _scores(
    name: str,
    subset: Sequence[RoutingExample],
    precomputed: list[float] | None,
    options: EvaluationOptions,
    gains: list[float] | None,
) -> list[float] | None:
    if precomputed is not None:
        return precomputed
    if name == "random":
        return _random_scores(subset, options.seed)
    if name in ANSWER_ROUTERS:
        if any(e.weak_response is None for e in subset):
            return None
        scorer = _answer_scorer(name, subset, gains, options)
        return [scorer.strong_score(e.prompt, e.weak_response or "") for e in subset]
    return [_prompt_router(name, options).strong_score(e.prompt) for e in subset]


def _prompt_router(name: str, options: EvaluationOptions) -> Router:
    if name == "length":
        return LengthRouter()
    if name == "complexity":
        return ComplexityScorer()
    learned = LearnedRouter.load(options.learned_path)
    return learned.generic() if name == "generic" else learned


def _answer_scorer(
    name: str, subset: Sequence[RoutingExample], gains: list[float] | None, options: EvaluationOptions
) -> AnswerScorer | PromptAwareAnswerScorer:
    """The scorer called ``name``; the prompt-aware one reads cross-validated gains when there are some."""
    if name != PromptAwareAnswerScorer.name:
        return AnswerScorer(name)
    if gains is not None:
        return PromptAwareAnswerScorer(dict(zip((e.prompt for e in subset), gains, strict=True)).__getitem__)
    router = LearnedRouter.load(options.learned_path)
    return PromptAwareAnswerScorer(lambda prompt: router.score(prompt).gain)


def _random_scores(subset: Sequence[RoutingExample], seed: int) -> list[float]:
    router = RandomRouter(random.Random(seed))
    return [router.strong_score(e.prompt) for e in subset]


def _overlap_note(name: str, subset: Sequence[RoutingExample], options: EvaluationOptions) -> list[str]:
    router = LearnedRouter.load(options.learned_path)
    seen = sum(router.seen_in_training(e.prompt) for e in subset)
    if not seen:
        return []
    return [
        f"{name}: {seen} of {len(subset)} prompts were in the learned router's training data, so its row is "
        "a training-set figure; --cv K gives honest, cross-validated figures"
    ]


def cross_validation_folds(count: int, folds: int, seed: int) -> list[list[int]]:
    """``folds`` disjoint held-out index lists covering ``range(count)`` (shuffled with ``seed``)."""
    order = list(range(count))
    random.Random(seed).shuffle(order)
    return [sorted(order[fold::folds]) for fold in range(folds)]


def family_folds(examples: Sequence[RoutingExample]) -> list[list[int]]:
    """One held-out index list per family (leave-one-family-out: transfer)."""
    names = families(examples)
    if len(names) < 2:
        raise ConfigError("leave-one-out needs data from at least two benchmarks (families)")
    return [[i for i, e in enumerate(examples) if e.family == name] for name in names]


def held_out_scores(
    examples: Sequence[RoutingExample], folds: Sequence[Sequence[int]], settings: TrainingSettings
) -> dict[str, list[float]]:
    """Every example's learned and generic gains from a router trained on everything but its fold."""
    scores = {"learned": [0.0] * len(examples), "generic": [0.0] * len(examples)}
    features = [featurise(e.prompt) for e in examples]
    for held in folds:
        held_set = set(held)
        kept = [i for i in range(len(examples)) if i not in held_set]
        router = _trained([examples[i] for i in kept], settings, [features[i] for i in kept])
        generic = router.generic()
        for i in held:
            scores["learned"][i] = router.score(examples[i].prompt).gain
            scores["generic"][i] = generic.gain(examples[i].prompt)
    return scores


def cross_validated_scores(
    examples: Sequence[RoutingExample],
    folds: int,
    seed: int,
    settings: TrainingSettings,
    *,
    prior: Sequence[RoutingExample] = (),
) -> list[float]:
    """Every example's learned gain from a router trained, on all the data but its fold, with the real
    trainer; ``prior`` examples are in every fold's training data and are never scored."""
    held = cross_validation_folds(len(examples), folds, seed)
    return held_out_scores([*examples, *prior], held, settings)["learned"][: len(examples)]


def leave_one_family_out_scores(
    examples: Sequence[RoutingExample], settings: TrainingSettings
) -> list[float]:
    """Every example's learned gain from a router trained only on the other families (transfer)."""
    return held_out_scores(examples, family_folds(examples), settings)["learned"]


def _trained(
    examples: Sequence[RoutingExample], settings: TrainingSettings, features: Sequence[PromptFeatures]
) -> LearnedRouter:
    from model_orchestrator.routing import artifact

    data, _summary = train_router(examples, settings, features=features)
    return LearnedRouter(artifact.decode(data, "cross-validation fold"), source="cross-validation fold")


def _mean(values: Sequence[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return sum(known) / len(known) if known else None
