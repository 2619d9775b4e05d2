"""``OrchestrationResult``: the explained answer every front door returns (seed 004's output format)."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

from model_orchestrator.core.explanation import Explanation
from model_orchestrator.core.frozen import quick_init
from model_orchestrator.core.request_scope import RequestScope
from model_orchestrator.core.response import Completion
from model_orchestrator.core.tools import ToolCall

_stamp: list[tuple[int, str]] = [(-1, "")]


def _now_iso() -> str:
    """The current UTC time to the second, ISO 8601; formatted once per second (results come faster)."""
    second = int(time.time())
    cached = _stamp[0]
    if cached[0] != second:
        cached = _stamp[0] = (second, datetime.fromtimestamp(second, UTC).isoformat(timespec="seconds"))
    return cached[1]


@quick_init
@dataclass(frozen=True, slots=True)
class OrchestrationResult:
    """The answer plus how it was obtained: which model, what it cost, what was tried.

    ``cost`` is USD, None when any priced attempt had an unknown price. ``latency`` is seconds.
    ``tool_calls`` holds the calls the model made (``response`` may then be empty).
    """

    response: str
    model_used: str
    cost: float | None
    latency: float
    input_tokens: int
    output_tokens: int
    strategy: str
    confidence: float | None = None
    fallback_chain: tuple[str, ...] = ()
    ensemble_models: tuple[str, ...] = ()
    metadata: dict[str, object] = field(default_factory=dict)
    timestamp: str = field(default_factory=_now_iso)
    tool_calls: tuple[ToolCall, ...] = ()

    def to_dict(self) -> dict[str, object]:
        """The seed-004 JSON shape, keys in documented order."""
        return {
            "response": self.response,
            "model_used": self.model_used,
            "cost": self.cost,
            "latency": round(self.latency, 6),
            "confidence": self.confidence,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "strategy": self.strategy,
            "fallback_chain": list(self.fallback_chain),
            "ensemble_models": list(self.ensemble_models),
            "metadata": self.metadata,
            "timestamp": self.timestamp,
        }


def result_from_completion(
    completion: Completion,
    *,
    requested: str,
    strategy: str,
    latency: float,
    scope: RequestScope | None,
    request_id: str | None,
) -> OrchestrationResult:
    """Explain ``completion`` in seed 004's shape.

    ``cost`` is everything the request spent (failed, retried and cancelled attempts included) when a
    request scope tracked it; ``model_used`` is the leaf model whose answer was returned.
    """
    explanation = completion.explanation
    confidence, source = _confidence(completion)
    metadata: dict[str, object] = {
        "request_id": request_id,
        "requested": requested,
        "provider": completion.provider,
        "deployment": completion.deployment,
        "provider_model": completion.model,
        "finish_reason": completion.finish_reason.value,
        "usage_estimated": completion.usage.estimated,
        "cached_input_tokens": completion.usage.cached_input_tokens,
        "cache_write_tokens": completion.usage.cache_write_tokens,
        "reasoning_tokens": completion.usage.reasoning_tokens,
    }
    if source:
        metadata["confidence_source"] = source
    cost = completion.cost
    if scope is not None:
        metadata["attempts"] = scope.attempts
        metadata["attempt_costs"] = [{"model": m, "cost": c} for m, c in scope.attempt_costs]
        cost = scope.total_cost if scope.attempt_costs else completion.cost
    metadata["price_known"] = cost is not None
    if explanation is not None:
        if explanation.strategy == "ensemble":
            metadata["ensemble_size"] = dict(explanation.facts).get("ensemble_size")
        metadata["explanation"] = explanation.to_dict()
    return OrchestrationResult(
        response=completion.text,
        model_used=_leaf_model(completion) if explanation is not None else requested,
        cost=cost,
        latency=latency,
        input_tokens=completion.usage.input_tokens,
        output_tokens=completion.usage.output_tokens,
        strategy=strategy,
        confidence=confidence,
        fallback_chain=_chain(completion, requested),
        ensemble_models=_members(explanation),
        metadata=metadata,
        tool_calls=completion.tool_calls,
    )


_PARALLEL = frozenset({"ensemble", "race", "hedge", "cross-validate"})


def _leaf_model(completion: Completion) -> str:
    explanation = completion.explanation
    while explanation is not None and explanation.chosen is not None:
        nested = next(
            (
                s.explanation
                for s in explanation.steps
                if s.model == explanation.chosen and s.explanation is not None
            ),
            None,
        )
        if nested is None:
            return explanation.chosen
        explanation = nested
    return completion.model


def _chain(completion: Completion, requested: str) -> tuple[str, ...]:
    explanation = completion.explanation
    if explanation is None:
        return (requested,)
    if explanation.strategy in _PARALLEL:
        return ()
    return tuple(s.model for s in explanation.steps)


def _members(explanation: Explanation | None) -> tuple[str, ...]:
    if explanation is None or explanation.strategy not in _PARALLEL:
        return ()
    return tuple(s.model for s in explanation.steps)


def _confidence(completion: Completion) -> tuple[float | None, str | None]:
    """The strategy's confidence; else the mean token probability when logprobs came back; else None."""
    explanation = completion.explanation
    if explanation is not None and explanation.confidence is not None:
        return round(explanation.confidence, 4), explanation.confidence_source
    if not completion.logprobs:
        return None, None
    mean = sum(t.logprob for t in completion.logprobs) / len(completion.logprobs)
    return round(math.exp(mean), 4), "mean_token_probability"
