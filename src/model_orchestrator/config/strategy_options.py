"""The options of each strategy type, validated at the edge (config file, CLI, Python API).

Owns names, defaults and validation messages; building the strategies is ``strategy_builder``'s job.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

ScorerName = Literal[
    "logprob",
    "logprob-min",
    "self-reported",
    "agreement",
    "answer-check",
    "answer-format",
    "hedging",
    "arithmetic",
    "answer-check+learned",
]


class _Options(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    type: str


class FallbackOptions(_Options):
    """``fallback``: try ``chain`` in order; optionally move on when confidence is below ``threshold``."""

    chain: tuple[str, ...] = Field(min_length=1)
    threshold: float | None = Field(default=None, ge=0, le=1)
    scorer: ScorerName = "self-reported"


class CascadeOptions(_Options):
    """``cascade``: cheap tiers first; escalate while the scorer says the answer is below ``threshold``."""

    tiers: tuple[str, ...] = Field(min_length=1)
    threshold: float = Field(default=0.7, ge=0, le=1)
    scorer: ScorerName = "self-reported"


class EnsembleOptions(_Options):
    """``ensemble``: members answer in parallel; ``aggregate`` combines (vote, best or synthesize)."""

    members: tuple[str, ...] = Field(min_length=1)
    aggregate: Literal["vote", "best", "synthesize"] = "vote"
    extractor: str = "text"
    synthesizer: str | None = None
    samples: int | None = Field(default=None, ge=2, le=16)
    min_answers: int = Field(default=1, ge=1)

    @model_validator(mode="after")
    def _synthesizer_named(self) -> EnsembleOptions:
        if self.aggregate == "synthesize" and not self.synthesizer:
            raise ValueError("aggregate 'synthesize' needs 'synthesizer', the model that merges the answers")
        return self


class RaceOptions(_Options):
    """``race``: all members start; the first good answer wins; the rest are cancelled."""

    members: tuple[str, ...] = Field(min_length=2)


class HedgeOptions(_Options):
    """``hedge``: the first member starts; each next one only if no answer came after ``delay`` seconds
    (default: the primary's observed p95 latency)."""

    members: tuple[str, ...] = Field(min_length=2)
    delay: float | None = Field(default=None, gt=0)


class StageOptions(BaseModel):
    """One pipeline stage."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    model: str
    instructions: str = ""
    context: Literal["full", "summarize", "extract", "none"] = "full"
    review: bool = False


class PipelineOptions(_Options):
    """``pipeline``: stages in order, each seeing earlier outputs per its ``context`` mode."""

    stages: tuple[StageOptions, ...] = Field(min_length=1)
    max_rounds: int = Field(default=2, ge=1, le=10)
    summarizer: str | None = None


class RuleOptions(BaseModel):
    """A specialist routing rule."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    label: str
    keywords: tuple[str, ...] = ()
    pattern: str | None = None
    max_chars: int | None = Field(default=None, gt=0)


class SpecialistOptions(_Options):
    """``specialist``: route by task type (``routes`` maps labels to models; ``rules`` detect labels)."""

    routes: dict[str, str] = Field(min_length=1)
    rules: tuple[RuleOptions, ...] | None = None
    default: str | None = None

    @model_validator(mode="after")
    def _default_is_a_route(self) -> SpecialistOptions:
        if self.default is not None and self.default not in self.routes:
            raise ValueError(f"default {self.default!r} is not one of the routes: {', '.join(self.routes)}")
        return self


class HybridStageOptions(BaseModel):
    """One stage of a hybrid: a pipeline stage whose model the specialist picks (``model`` pins one)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    instructions: str = ""
    context: Literal["full", "summarize", "extract", "none"] = "full"
    review: bool = False
    model: str | None = None


class HybridOptions(SpecialistOptions):
    """``hybrid`` (seed 001's pipeline + specialist): ``stages`` run in order like a pipeline's (default:
    plan, code, review), and the specialist over ``routes`` picks each stage's model from that stage's
    request (the task plus what the stage is shown of the earlier stages)."""

    stages: tuple[HybridStageOptions, ...] | None = Field(default=None, min_length=1)
    max_rounds: int = Field(default=2, ge=1, le=10)
    summarizer: str | None = None


class CrossValidateOptions(_Options):
    """``cross-validate``: two members answer; on disagreement ``tiebreaker`` decides."""

    members: tuple[str, ...] = Field(min_length=2, max_length=2)
    tiebreaker: str
    extractor: str = "text"


class ValidatedOptions(_Options):
    """``validated``: answer with ``model``, check it, and ask ``fallback`` when the check fails."""

    model: str
    judge: str | None = None
    fallback: str | None = None
    validators: tuple[Literal["python", "json"], ...] = ()
    threshold: float = Field(default=0.7, ge=0, le=1)


RouterChoice = Literal["learned", "generic", "complexity", "length", "none"]


class CheapestOptions(_Options):
    """``cheapest``: the cheapest member that can do the task. ``router`` judges what the task needs
    (default: the ``routing:`` config's, the learned router); ``none`` ignores the task and takes the
    lowest estimated cost. ``strong_share`` or ``threshold`` set how often the strong tier is needed."""

    members: tuple[str, ...] = ()
    router: RouterChoice | None = None
    strong_share: float | None = Field(default=None, ge=0, le=1)
    threshold: float | None = Field(default=None, ge=0, le=1)


class RouteOptions(_Options):
    """``route``: ``tiers`` (weak first); a router sends each request to the tier it needs, the cheapest
    member first for weak prompts and the last tier for the ``strong_share`` that need it."""

    tiers: tuple[str, ...] = Field(min_length=1)
    router: Literal["learned", "generic", "complexity", "length"] | None = None
    strong_share: float | None = Field(default=None, ge=0, le=1)
    threshold: float | None = Field(default=None, ge=0, le=1)


OPTIONS: dict[str, type[_Options]] = {
    "fallback": FallbackOptions,
    "cascade": CascadeOptions,
    "ensemble": EnsembleOptions,
    "race": RaceOptions,
    "hedge": HedgeOptions,
    "pipeline": PipelineOptions,
    "specialist": SpecialistOptions,
    "hybrid": HybridOptions,
    "cross-validate": CrossValidateOptions,
    "validated": ValidatedOptions,
    "cheapest": CheapestOptions,
    "route": RouteOptions,
}

# Which field receives a plain list of member names (the CLI's --chain, an inline ``fallback:a,b``).
MEMBER_FIELD = {
    "fallback": "chain",
    "cascade": "tiers",
    "ensemble": "members",
    "race": "members",
    "hedge": "members",
    "cross-validate": "members",
    "cheapest": "members",
    "route": "tiers",
}
