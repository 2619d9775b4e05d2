"""The ``ChatModel`` contract, checked on every model: adapters, resilience wrappers, strategies and fakes.

The same request in gives a well-formed ``Completion`` or an ``OrchestratorError`` out; streaming agrees
with the whole answer (joined text equal, the last delta carries the finish reason and usage); ``aclose``
may be called twice; an upstream 500, 429 or time-out comes out as the right error with its status,
retryability and ``retry_after``. Adding a model means adding one line to ``CASES`` (or
``ANSWER_ONLY`` for a model whose answer cannot be scripted).
"""

from __future__ import annotations

import sys
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path

import pytest

from model_orchestrator.core.errors import (
    AllModelsFailedError,
    OrchestratorError,
    RateLimitedError,
    RequestTimeoutError,
    ServerError,
)
from model_orchestrator.core.events import EventBus
from model_orchestrator.core.messages import Message
from model_orchestrator.core.model import ChatModel
from model_orchestrator.core.observed import ObservedModel
from model_orchestrator.core.pricing import Price
from model_orchestrator.core.profile import ModelProfile
from model_orchestrator.core.request import ChatRequest
from model_orchestrator.core.response import Completion, FinishReason, StreamDelta
from model_orchestrator.core.routing import RouteChoice
from model_orchestrator.ledger.guard import BudgetGuardModel
from model_orchestrator.ledger.ledger import Ledger
from model_orchestrator.ledger.limits import BudgetRules, PeriodLimits
from model_orchestrator.ledger.settings import LedgerSettings
from model_orchestrator.providers.anthropic import AnthropicModel
from model_orchestrator.providers.cli_agent import CliAgentModel
from model_orchestrator.providers.gemini import GeminiModel
from model_orchestrator.providers.http import HttpTransport, Timeouts, Transport
from model_orchestrator.providers.openai_compatible import OpenAICompatibleModel
from model_orchestrator.resilience.circuit_breaker import BreakerPolicy, CircuitBreakerModel
from model_orchestrator.resilience.cooldown import CooldownModel, CooldownPolicy
from model_orchestrator.resilience.health import HealthGatedModel
from model_orchestrator.resilience.rate_limiter import RateLimitedModel, RateLimitPolicy
from model_orchestrator.resilience.retry import RetryingModel, RetryPolicy
from model_orchestrator.resilience.state_store import MemoryStateStore
from model_orchestrator.resilience.timeout import TimeoutModel
from model_orchestrator.strategies.aggregators import VoteAggregator
from model_orchestrator.strategies.balanced import BalancedModel
from model_orchestrator.strategies.capabilities import CapabilityGateModel
from model_orchestrator.strategies.cascade import CascadeModel
from model_orchestrator.strategies.cheapest import CheapestModel
from model_orchestrator.strategies.context_fit import ContextFitModel
from model_orchestrator.strategies.cross_validate import CrossValidateModel
from model_orchestrator.strategies.ensemble import EnsembleModel
from model_orchestrator.strategies.extractors import ShortText
from model_orchestrator.strategies.fallback import FallbackModel
from model_orchestrator.strategies.member import Member
from model_orchestrator.strategies.pipeline import PipelineModel, Stage
from model_orchestrator.strategies.race import HedgeModel, RaceModel
from model_orchestrator.strategies.route import RouteModel
from model_orchestrator.strategies.scorers import LogprobScorer
from model_orchestrator.strategies.specialist import SpecialistModel
from model_orchestrator.strategies.validate import Validator
from model_orchestrator.strategies.validated import ValidatedModel
from model_orchestrator.testing import (
    FakeClock,
    FakeUpstream,
    Fault,
    FunctionModel,
    MockTransport,
    Reply,
    ScriptedModel,
    wire_handler,
)
from model_orchestrator.testing.fake_upstream.script import ScriptItem
from tests.ledger_db import url_for

REQUEST = ChatRequest(messages=(Message.user("Say something."),), temperature=0.0, max_tokens=16)
ANSWER = Reply("Contract answers are joined from pieces.", usage=(9, 7), chunk_size=5)
FIXTURES = Path(__file__).parent / "fixtures" / "cli_agents"
# Short enough that a scripted hang ends the test quickly, long enough for a loaded machine.
SHORT = Timeouts(connect=2.0, stall=0.3, read=0.3)
# Every fault is scripted this often, so wrappers that retry (three attempts by default) fail too.
FAULT_REPEATS = 3

Factory = Callable[[Sequence[ScriptItem], AsyncExitStack], Awaitable[ChatModel]]


# --- the models under contract -------------------------------------------------------------------


def _scripted_entry(item: ScriptItem) -> str | BaseException:
    """A wire-level script item as a scripted model's entry (what the adapter would have raised)."""
    if isinstance(item, Reply):
        return item.text
    if item.kind == "rate_limit":
        return RateLimitedError("rate limited", retry_after=item.retry_after)
    if item.kind == "hang":
        return RequestTimeoutError("timed out")
    return ServerError("server error", status_code=item.code)


def _scripted(items: Sequence[ScriptItem]) -> ScriptedModel:
    return ScriptedModel([_scripted_entry(i) for i in items], name="scripted", chunk_size=5)


async def scripted_model(items: Sequence[ScriptItem], stack: AsyncExitStack) -> ChatModel:
    return _scripted(items)


async def function_model(items: Sequence[ScriptItem], stack: AsyncExitStack) -> ChatModel:
    model = _scripted(items)
    return FunctionModel(model.complete, name="function", chunk_size=3)


def _openai(transport: Transport, base: str) -> ChatModel:
    return OpenAICompatibleModel(
        name="m", model_id="test-model", api_base=base, api_key="sk-test", transport=transport, timeouts=SHORT
    )


def _anthropic(transport: Transport, base: str) -> ChatModel:
    return AnthropicModel(
        name="m", model_id="test-model", api_key="sk-test", transport=transport, api_base=base, timeouts=SHORT
    )


def _gemini(transport: Transport, base: str) -> ChatModel:
    return GeminiModel(
        name="m", model_id="test-model", api_key="sk-test", transport=transport, api_base=base, timeouts=SHORT
    )


def over_mock(adapter: Callable[[Transport, str], ChatModel], base: str) -> Factory:
    async def build(items: Sequence[ScriptItem], stack: AsyncExitStack) -> ChatModel:
        return adapter(MockTransport(wire_handler(*items)), base)

    return build


def over_fake_upstream(adapter: Callable[[Transport, str], ChatModel], openai_base: bool) -> Factory:
    async def build(items: Sequence[ScriptItem], stack: AsyncExitStack) -> ChatModel:
        upstream = await stack.enter_async_context(FakeUpstream())
        upstream.script(*items)
        transport = HttpTransport()
        stack.push_async_callback(transport.aclose)
        return adapter(transport, upstream.openai_base if openai_base else upstream.url)

    return build


def wrapped(wrap: Callable[[ChatModel], ChatModel]) -> Factory:
    async def build(items: Sequence[ScriptItem], stack: AsyncExitStack) -> ChatModel:
        return wrap(_scripted(items))

    return build


async def budget_guarded(items: Sequence[ScriptItem], stack: AsyncExitStack) -> ChatModel:
    """The guard over an observed model, reserving against a real SQLite ledger."""
    folder = Path(stack.enter_context(tempfile.TemporaryDirectory()))
    ledger = Ledger(LedgerSettings(url_for("sqlite", folder)))
    stack.push_async_callback(ledger.aclose)
    price, bus = Price(1.0, 2.0), EventBus()
    observed = ObservedModel(_scripted(items), name="m", provider="p", deployment="d", price=price, bus=bus)
    rules = BudgetRules(overall=PeriodLimits(daily=100.0))
    profile = ModelProfile("m", price)
    return BudgetGuardModel(
        observed,
        keeper=ledger,
        rules=rules,
        profile=profile,
        provider="p",
        deployment="d",
        bus=bus,
        clock=_CLOCK,
    )


def strategy(make: Callable[[list[Member]], ChatModel], members: int = 1) -> Factory:
    """A strategy over ``members`` scripted members, each with the whole script (so all agree or all fail)."""

    async def build(items: Sequence[ScriptItem], stack: AsyncExitStack) -> ChatModel:
        return make([Member(_scripted(items), ModelProfile(name=f"m{i}")) for i in range(members)])

    return build


class _InOrder:
    """A routing policy that keeps the members' order (routing quality is tested elsewhere)."""

    def choose(self, request: ChatRequest, candidates: Sequence[ModelProfile]) -> RouteChoice:
        return RouteChoice(tuple(p.name for p in candidates), (), "in order", "test", 0)


_ALWAYS_PASSES = Validator("non_empty", lambda output: () if output.strip() else ("empty",))
_CLOCK = FakeClock()
_BUS = EventBus()

CASES: dict[str, Factory] = {
    "scripted": scripted_model,
    "function": function_model,
    "openai-mock": over_mock(_openai, "http://upstream.test/v1"),
    "anthropic-mock": over_mock(_anthropic, "http://upstream.test"),
    "gemini-mock": over_mock(_gemini, "http://upstream.test"),
    "openai-upstream": over_fake_upstream(_openai, openai_base=True),
    "anthropic-upstream": over_fake_upstream(_anthropic, openai_base=False),
    "gemini-upstream": over_fake_upstream(_gemini, openai_base=False),
    "retrying": wrapped(lambda m: RetryingModel(m, deployment="d", policy=RetryPolicy(), clock=FakeClock())),
    "circuit-breaker": wrapped(
        lambda m: CircuitBreakerModel(
            m, deployment="d", policy=BreakerPolicy(), store=MemoryStateStore(), clock=FakeClock(), bus=_BUS
        )
    ),
    "cooldown": wrapped(
        lambda m: CooldownModel(
            m, deployment="d", policy=CooldownPolicy(), store=MemoryStateStore(), clock=FakeClock(), bus=_BUS
        )
    ),
    "rate-limited": wrapped(
        lambda m: RateLimitedModel(m, deployment="d", policy=RateLimitPolicy(), store=MemoryStateStore())
    ),
    "timeout": wrapped(lambda m: TimeoutModel(m, deployment="d", timeout=30.0)),
    "observed": wrapped(
        lambda m: ObservedModel(m, name="m", provider="p", deployment="d", price=None, bus=EventBus())
    ),
    "fallback": strategy(lambda ms: FallbackModel(ms, clock=_CLOCK, bus=_BUS, wait_for_cooldown=False)),
    "race": strategy(lambda ms: RaceModel(ms, clock=_CLOCK, bus=_BUS)),
    "budget-guard": budget_guarded,
    "health-gated": wrapped(lambda m: HealthGatedModel(m, deployment="d", store=MemoryStateStore())),
    "capability-gate": wrapped(lambda m: CapabilityGateModel(m, ModelProfile(name="m"), lambda _: [])),
    "context-fit": wrapped(lambda m: ContextFitModel(m, ModelProfile(name="m"), overflow=None)),
    "balanced": strategy(lambda ms: BalancedModel(ms, name="balanced", clock=_CLOCK, bus=_BUS)),
    "cheapest": strategy(lambda ms: CheapestModel(ms, clock=_CLOCK, bus=_BUS)),
    "cascade": strategy(
        lambda ms: CascadeModel(ms, scorer=LogprobScorer(), clock=_CLOCK, bus=_BUS, wait_for_cooldown=False)
    ),
    "hedge": strategy(lambda ms: HedgeModel(ms[0], ms[1:], delay=5.0, clock=_CLOCK, bus=_BUS), members=2),
    "ensemble": strategy(
        lambda ms: EnsembleModel(ms, aggregator=VoteAggregator(ShortText()), clock=_CLOCK, bus=_BUS),
        members=3,
    ),
    "route": strategy(lambda ms: RouteModel(ms, policy=_InOrder(), clock=_CLOCK, bus=_BUS)),
    "specialist": strategy(lambda ms: SpecialistModel({"general": ms[0]}, default="general", clock=_CLOCK)),
    "pipeline": strategy(lambda ms: PipelineModel([Stage("only", ms[0], "Answer.")], clock=_CLOCK)),
    "validated": strategy(
        lambda ms: ValidatedModel(ms[0], judge=None, validators=[_ALWAYS_PASSES], clock=_CLOCK, bus=_BUS)
    ),
    "cross-validate": strategy(
        lambda ms: CrossValidateModel(ms[0], ms[1], ms[2], clock=_CLOCK, bus=_BUS), members=3
    ),
}


async def cli_agent(items: Sequence[ScriptItem], stack: AsyncExitStack) -> ChatModel:
    command = [sys.executable, str(FIXTURES / "fake_claude.py")]
    return CliAgentModel(name="agent", command=command, output_format="json")


async def local_model(items: Sequence[ScriptItem], stack: AsyncExitStack) -> ChatModel:
    from model_orchestrator.providers.local import LocalModel

    return LocalModel(seed=7)


# Models whose answer is their own (an agent script, real weights): the answer half of the contract.
ANSWER_ONLY: list[object] = [
    pytest.param(cli_agent, id="cli-agent"),
    pytest.param(local_model, id="local", marks=pytest.mark.local_model),
]
ALL = [pytest.param(factory, id=name) for name, factory in CASES.items()] + ANSWER_ONLY
SCRIPTABLE = [pytest.param(factory, id=name) for name, factory in CASES.items()]


# --- the contract --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Expected:
    fault: Fault
    error: type[OrchestratorError]
    status: int
    retry_after: float | None


FAULTS = {
    "500": Expected(Fault.server_error(500), ServerError, 500, None),
    "429": Expected(Fault.rate_limited(retry_after=2.0), RateLimitedError, 429, 2.0),
    "timeout": Expected(Fault.hang(2.0), RequestTimeoutError, 408, None),
}


async def _collect(stream: AsyncIterator[StreamDelta]) -> list[StreamDelta]:
    return [delta async for delta in stream]


def _well_formed(completion: Completion) -> None:
    assert isinstance(completion, Completion)
    assert isinstance(completion.text, str) and completion.text.strip()
    assert isinstance(completion.finish_reason, FinishReason)
    assert completion.model


@pytest.mark.parametrize("factory", ALL)
async def test_an_answer_is_a_well_formed_completion_and_the_stream_agrees(factory: Factory) -> None:
    async with AsyncExitStack() as stack:
        model = await factory([ANSWER, ANSWER], stack)
        whole = await model.complete(REQUEST)
        deltas = await _collect(model.stream(REQUEST))
        await model.aclose()
    _well_formed(whole)
    assert "".join(d.text for d in deltas) == whole.text
    last = deltas[-1]
    assert last.finish_reason == whole.finish_reason
    assert all(d.finish_reason is None for d in deltas[:-1])
    assert last.usage is not None and whole.usage is not None
    assert last.usage.output_tokens == whole.usage.output_tokens


@pytest.mark.parametrize("factory", SCRIPTABLE)
async def test_a_scripted_answer_comes_back_whole(factory: Factory) -> None:
    async with AsyncExitStack() as stack:
        model = await factory([ANSWER], stack)
        completion = await model.complete(REQUEST)
    assert completion.text == ANSWER.text
    assert completion.finish_reason is FinishReason.STOP


@pytest.mark.parametrize("factory", ALL)
async def test_aclose_may_be_called_twice(factory: Factory) -> None:
    async with AsyncExitStack() as stack:
        model = await factory([], stack)
        await model.aclose()
        await model.aclose()


@pytest.mark.parametrize("mode", ["complete", "stream"])
@pytest.mark.parametrize("fault", FAULTS.values(), ids=FAULTS.keys())
@pytest.mark.parametrize("factory", SCRIPTABLE)
async def test_an_upstream_failure_is_the_right_error(factory: Factory, fault: Expected, mode: str) -> None:
    async with AsyncExitStack() as stack:
        model = await factory([fault.fault] * FAULT_REPEATS, stack)
        with pytest.raises(OrchestratorError) as caught:
            if mode == "complete":
                await model.complete(REQUEST)
            else:
                await _collect(model.stream(REQUEST))
    error = caught.value
    # A strategy reports every member's failure together; the member's is the upstream's.
    cause = error.errors[-1] if isinstance(error, AllModelsFailedError) else error
    assert isinstance(cause, fault.error), repr(cause)
    assert cause.status_code == fault.status
    assert cause.retryable and error.retryable
    assert cause.retry_after == fault.retry_after
    assert error.retry_after == fault.retry_after
