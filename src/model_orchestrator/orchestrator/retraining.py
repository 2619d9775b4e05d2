"""Retraining the learned router on the user's own outcome labels (``train-router --from-ledger``).

Owns the adapter from the ledger's labelled requests to routing's dataset type (``RoutingExample``),
the cross-validated comparison of a router trained on them with the router in use, and the rule for
writing the new one. Training, cross-validation and the metric are ``routing``'s public functions
(``train_router``, ``cross_validated_scores``, ``evaluate_scores``); nothing here knows their insides.

From labels to examples, per labelled request whose prompt the ledger stored (``ledger.store_prompts``):

- one label per model: the user's feedback over a validation verdict over a cascade's score, and the
  latest of the same kind;
- a model on the strong side has a tier of at least ``strong_tier`` (the highest configured tier); any
  other model, or one of unknown tier, is on the weak side (an unknown tier is never assumed strong);
- both sides labelled: ``weak_score`` and ``strong_score`` (the gain is their difference);
- only the weak side: ``label = 1 - weak score``, what the strong model would recover if it were right;
- only the strong side, scored below 0.5: ``label = 0`` (calling it did not help); scored higher, the
  request says nothing about the weak model and is left out.

The comparison scores only the user's requests: the candidate cross-validated (each fold trained on the
other folds plus all of the prior data: files given with ``--data``, the package's own data with
``--with-shipped-data``), the current router as it is (it never saw them). The metric is
RouteLLM's APGR with the weak model's quality as 0 and the gain as the strong model's: for requests with
both scores that is exactly APGR, and it extends to one-sided labels.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from model_orchestrator.core.errors import ConfigError

if TYPE_CHECKING:
    from model_orchestrator.core.routing import Router
    from model_orchestrator.ledger.feedback import LabelledRequest, OutcomeLabel
    from model_orchestrator.routing.dataset import RoutingExample

FAMILY = "traffic"
MIN_EXAMPLES = 20
_SOURCE_RANK = {"feedback": 2, "validation": 1, "cascade": 0}
_STRONG_FAILED = 0.5


@dataclass(frozen=True, slots=True)
class LedgerExamples:
    """The examples made from the ledger's labels, and how many labelled requests could not be used."""

    examples: tuple[RoutingExample, ...]
    labelled: int
    without_prompt: int
    uninformative: int


@dataclass(frozen=True, slots=True)
class Comparison:
    """Cross-validated APGR of the candidate and of the router in use, on the user's labelled requests."""

    examples: int
    folds: int
    current: str
    current_apgr: float | None
    candidate_apgr: float | None

    @property
    def beats(self) -> bool:
        """Whether the candidate routes the user's requests better than the router in use."""
        if self.candidate_apgr is None:
            return False
        return self.current_apgr is None or self.candidate_apgr > self.current_apgr


def examples_from_labels(requests: Sequence[LabelledRequest], strong_tier: int) -> LedgerExamples:
    """Routing examples from labelled requests (the rules are in the module docstring)."""
    from model_orchestrator.routing.dataset import RoutingExample

    examples, without_prompt, uninformative = [], 0, 0
    for request in requests:
        if not request.prompt or not request.prompt.strip():
            without_prompt += 1
            continue
        weak, strong = _sides(request.labels, strong_tier)
        if weak is not None and strong is not None:
            examples.append(RoutingExample(request.prompt, weak, strong, FAMILY))
        elif weak is not None:
            examples.append(RoutingExample(request.prompt, None, None, FAMILY, label=1.0 - weak))
        elif strong is not None and strong < _STRONG_FAILED:
            examples.append(RoutingExample(request.prompt, None, None, FAMILY, label=0.0))
        else:
            uninformative += 1
    return LedgerExamples(tuple(examples), len(requests), without_prompt, uninformative)


def _sides(labels: Sequence[OutcomeLabel], strong_tier: int) -> tuple[float | None, float | None]:
    """(weak side's score, strong side's score): per side, the best-ranked label's, then the latest."""
    chosen: dict[bool, OutcomeLabel] = {}
    for label in labels:
        is_strong = label.tier is not None and label.tier >= strong_tier
        known = chosen.get(is_strong)
        if known is None or _rank(label) >= _rank(known):
            chosen[is_strong] = label
    weak, strong = chosen.get(False), chosen.get(True)
    return (None if weak is None else weak.score), (None if strong is None else strong.score)


def _rank(label: OutcomeLabel) -> tuple[int, float]:
    return _SOURCE_RANK.get(label.source, 0), label.created_at


def compare(
    examples: Sequence[RoutingExample],
    current: Router,
    *,
    prior: Sequence[RoutingExample] = (),
    folds: int = 5,
    seed: int = 0,
) -> Comparison:
    """Cross-validated comparison of a router trained on ``examples`` (plus ``prior``) with ``current``."""
    from model_orchestrator.routing.evaluation import cross_validated_scores
    from model_orchestrator.routing.metrics import evaluate_scores
    from model_orchestrator.routing.training import TrainingSettings

    if len(examples) < MIN_EXAMPLES:
        raise ConfigError(
            f"{len(examples)} usable labelled requests; comparing routers needs at least {MIN_EXAMPLES} "
            "(label more answers: docs/routing.md, 'Feedback and retraining')"
        )
    gains = [e.gain() for e in examples]
    if sum(gains) <= 0:
        raise ConfigError(
            "no labelled request shows the strong side doing better than the weak one, so there is "
            "nothing to route by; label answers of weaker models too"
        )
    folds = max(2, min(folds, len(examples)))
    settings = TrainingSettings(seed=seed)
    candidate = cross_validated_scores(examples, folds, seed, settings, prior=prior)
    weak = [0.0] * len(examples)

    def apgr(name: str, scores: Sequence[float]) -> float | None:
        return evaluate_scores(name, FAMILY, scores, weak, gains).apgr

    name = getattr(current, "source", None) or current.name
    return Comparison(
        examples=len(examples),
        folds=folds,
        current=f"{current.name} ({name})" if name != current.name else current.name,
        current_apgr=apgr("current", [current.strong_score(e.prompt) for e in examples]),
        candidate_apgr=apgr("candidate", candidate),
    )


def train_and_write(
    examples: Sequence[RoutingExample], prior: Sequence[RoutingExample], path: Path, *, seed: int = 0
) -> int:
    """Train on everything and write the router to ``path`` (the previous file kept as ``*.previous``);
    returns the file's size in bytes."""
    from model_orchestrator.routing.training import TrainingSettings, train_router

    data, _summary = train_router([*examples, *prior], TrainingSettings(seed=seed))
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = path.with_name(path.name + ".new")
    staging.write_bytes(data)
    if path.exists():
        shutil.copyfile(path, path.with_name(path.name + ".previous"))
    staging.replace(path)  # atomic: a process loading the router sees the old file or the new one
    return len(data)


def strong_tier(tiers: Sequence[int | None]) -> int:
    """The highest known tier among the configured models (1 when none is known)."""
    known = [t for t in tiers if t is not None]
    return max(known) if known else 1
