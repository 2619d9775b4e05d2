"""``orchestrator --test``: the self-check a user runs after installing. One ``CheckResult`` per check.

First the user's own setup: the config loads, and every usable deployment answers its free probe (a
model-list request; the embedded model loads). Then complexity scoring, routing, fallback, cascade,
ensemble and race run on a private orchestrator made of the embedded model and in-process fake upstreams
(real HTTP servers on 127.0.0.1: a healthy tier-1 model, a tier-3 model and one that answers 500).
Nothing is paid for and nothing reaches the user's cost ledger. Needs only the base install plus the
``local`` extra (the embedded model); no development package.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from model_orchestrator.core.errors import OrchestratorError
from model_orchestrator.core.result import OrchestrationResult
from model_orchestrator.orchestrator.facade import Orchestrator

if TYPE_CHECKING:
    from model_orchestrator.config.schema import OrchestratorConfig
    from model_orchestrator.testing import FakeUpstream

SIMPLE = "What is 2+2?"
COMPLEX = (
    "Design the architecture and migrate the database for OAuth2 authentication with refresh tokens "
    "across services, with a security review and performance optimization"
)
COMPLEX_CONTEXT: Mapping[str, object] = {
    "files_count": 8,
    "requires_tests": True,
    "external_apis": ["OAuth2", "JWT"],
    "subsystems": ["auth", "api", "database"],
}
FAST, STRONG, BROKEN = "self-check-fast", "self-check-strong", "self-check-broken"
_MAX_TOKENS = 16  # keeps the embedded model's answers (and so the whole check) short


@dataclass(frozen=True, slots=True)
class CheckResult:
    """One line of the self-check: what was checked, whether it passed, and what was seen."""

    name: str
    passed: bool
    detail: str


async def self_check(
    config_path: str | os.PathLike[str] | None = None, env: Mapping[str, str] | None = None
) -> AsyncIterator[CheckResult]:
    """Run every check, yielding each result as soon as it is known."""
    async for result in _user_setup(config_path, env):
        yield result
    async for result in _strategies():
        yield result


async def _user_setup(
    config_path: str | os.PathLike[str] | None, env: Mapping[str, str] | None
) -> AsyncIterator[CheckResult]:
    try:
        orch = Orchestrator.from_config(config_path, env=env)
    except OrchestratorError as exc:
        yield CheckResult("config", False, str(exc))
        return
    usable = [i.name for i in orch.models() if i.usable and i.provider != "strategy"]
    where = str(orch.config_path) if orch.config_path else "none found, using the defaults"
    yield CheckResult("config", True, f"{where}; usable models: {len(usable)}")
    try:
        async with orch:
            states = await orch.health(probe=True)
    except OrchestratorError as exc:
        yield CheckResult("probes", False, str(exc))
        return
    if not states:
        yield CheckResult("probes", True, "no deployment to probe")
    for state in states:
        if state.healthy:
            latency = f"{state.last_latency * 1000:.0f} ms" if state.last_latency is not None else "ok"
            yield CheckResult(f"probe {state.name}", True, f"{state.deployment} answered ({latency})")
        else:
            yield CheckResult(f"probe {state.name}", False, f"{state.deployment}: {state.last_error}")


async def _strategies() -> AsyncIterator[CheckResult]:
    from model_orchestrator.testing import FakeUpstream, Fault, Reply

    async with AsyncExitStack() as stack:
        fast = await stack.enter_async_context(FakeUpstream(default_reply=Reply("4")))
        strong = await stack.enter_async_context(FakeUpstream(default_reply=Reply("4")))
        broken = await stack.enter_async_context(FakeUpstream())
        broken.script(*[Fault.server_error(500)] * 4)
        orch = Orchestrator(_private_config(*(f"{up.url}/v1" for up in (fast, strong, broken))), env={})
        await stack.enter_async_context(orch)
        embedded = orch.runtime.registry.embedded_model
        reason = next(i.unusable_reason for i in orch.models() if i.name == embedded)
        yield CheckResult("embedded model", reason is None, reason or f"{embedded} is installed")
        checks: list[tuple[str, Callable[[], Awaitable[str]]]] = [
            ("complexity scoring", lambda: _complexity(orch)),
            ("routing", lambda: _routing(orch, embedded)),
            ("fallback", lambda: _fallback(orch, embedded)),
            ("cascade", lambda: _cascade(orch, embedded)),
            ("ensemble", lambda: _ensemble(orch, embedded)),
            ("race", lambda: _race(orch, strong)),
        ]
        for name, check in checks:
            try:
                outcome = CheckResult(name, True, await check())
            except Exception as exc:  # noqa: BLE001 - a self-check reports any failure as a line, no traceback
                outcome = CheckResult(name, False, f"{type(exc).__name__}: {exc}")
            yield outcome


class _CheckFailed(Exception):
    """A check ran but saw the wrong outcome."""


def _expect(condition: bool, message: str) -> None:
    if not condition:
        raise _CheckFailed(message)


def _private_config(fast: str, strong: str, broken: str) -> OrchestratorConfig:
    from model_orchestrator.config.loader import parse_config

    def model(name: str, base: str, tier: int, price: float) -> str:
        return (
            f"  - {{name: {name}, provider: vllm, model: {name}, api_base: '{base}', tier: {tier}, "
            f"price: {{input: {price}, output: {price}}}}}\n"
        )

    text = (
        "models:\n"
        + model(FAST, fast, 1, 1.0)
        + model(STRONG, strong, 3, 10.0)
        + model(BROKEN, broken, 1, 1.0)
        + "ledger: {enabled: false}\ntelemetry: {tracing: false}\nresilience: {retry: {max_attempts: 1}}\n"
    )
    return parse_config(text, source="<self-check>")


async def _complexity(orch: Orchestrator) -> str:
    simple = await orch.route(SIMPLE, router="complexity")
    hard = await orch.route(COMPLEX, COMPLEX_CONTEXT, router="complexity")
    _expect(
        simple.complexity_score < hard.complexity_score,
        f"a simple task scored {simple.complexity_score:.1f}, a complex one {hard.complexity_score:.1f}",
    )
    return f"simple {simple.complexity_score:.1f}/10 < complex {hard.complexity_score:.1f}/10"


async def _run(
    orch: Orchestrator, prompt: str, strategy: str, *members: str, **options: Any
) -> OrchestrationResult:
    return await orch.complete(prompt, strategy=strategy, members=members, max_tokens=_MAX_TOKENS, **options)


async def _routing(orch: Orchestrator, embedded: str) -> str:
    weak = await _run(orch, SIMPLE, "route", embedded, STRONG, router="complexity")
    hard = await _run(orch, COMPLEX, "route", embedded, STRONG, router="complexity")
    _expect(weak.model_used == embedded, f"a simple prompt went to {weak.model_used}, not {embedded}")
    _expect(hard.model_used == STRONG, f"a complex prompt went to {hard.model_used}, not {STRONG}")
    return f"simple -> {weak.model_used} ({weak.response.strip()[:40]!r}), complex -> {hard.model_used}"


async def _fallback(orch: Orchestrator, embedded: str) -> str:
    result = await _run(orch, SIMPLE, "fallback", BROKEN, embedded)
    _expect(result.model_used == embedded, f"answered by {result.model_used}, not {embedded}")
    return f"{' -> '.join(result.fallback_chain)} (the first answers 500)"


async def _cascade(orch: Orchestrator, embedded: str) -> str:
    # Threshold 1.0: no real answer is that sure, so the cascade must escalate.
    result = await _run(orch, SIMPLE, "cascade", embedded, STRONG, scorer="logprob", threshold=1.0)
    _expect(result.fallback_chain == (embedded, STRONG), f"tried {list(result.fallback_chain)}")
    return f"{' -> '.join(result.fallback_chain)} (escalated below threshold 1.0)"


async def _ensemble(orch: Orchestrator, embedded: str) -> str:
    result = await _run(orch, SIMPLE, "ensemble", embedded, FAST, STRONG, extractor="number")
    _expect(len(result.ensemble_models) == 3, f"{len(result.ensemble_models)} of 3 members answered")
    _expect("4" in result.response, f"the vote gave {result.response!r}, not 4")
    return f"{len(result.ensemble_models)} members voted {result.response.strip()!r}"


async def _race(orch: Orchestrator, strong: FakeUpstream) -> str:
    from model_orchestrator.testing import Reply

    strong.script(Reply("late", latency=30.0))  # the loser, cancelled when the fast member answers
    result = await _run(orch, SIMPLE, "race", STRONG, FAST)
    explanation = result.metadata.get("explanation")
    steps = explanation.get("steps", []) if isinstance(explanation, dict) else []
    outcomes = {step["model"]: step["outcome"] for step in steps}
    _expect(result.model_used == FAST, f"won by {result.model_used}, not {FAST}")
    _expect(outcomes.get(STRONG) == "cancelled", f"the slow member ended {outcomes.get(STRONG)!r}")
    return f"{FAST} won, {STRONG} cancelled"
