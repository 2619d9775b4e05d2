"""Tool calls through every strategy: passed through whole (streamed too), voted on by (name, canonical
arguments), judged by their arguments in cascades, checked against the tools' schemas by validation, and
refused by the strategies that cannot carry them, before any call."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence

import pytest

from model_orchestrator.core.clock import Clock
from model_orchestrator.core.errors import CapabilityNotSupportedError, UpstreamConnectionError
from model_orchestrator.core.events import EventBus
from model_orchestrator.core.messages import ImagePart, Message, Role, TextPart
from model_orchestrator.core.model import ChatModel
from model_orchestrator.core.profile import ModelProfile
from model_orchestrator.core.request import ChatRequest
from model_orchestrator.core.response import Completion, FinishReason, StreamDelta
from model_orchestrator.core.routing import RouteChoice
from model_orchestrator.core.tools import (
    JsonSchemaFormat,
    ToolCall,
    ToolCallDelta,
    ToolDefinition,
    assemble_tool_calls,
)
from model_orchestrator.core.usage import Usage
from model_orchestrator.strategies.aggregators import SynthesizeAggregator, VoteAggregator
from model_orchestrator.strategies.cascade import CascadeModel
from model_orchestrator.strategies.cheapest import CheapestModel
from model_orchestrator.strategies.cross_validate import CrossValidateModel
from model_orchestrator.strategies.ensemble import EnsembleModel
from model_orchestrator.strategies.extractors import short_text
from model_orchestrator.strategies.fallback import FallbackModel
from model_orchestrator.strategies.member import Member
from model_orchestrator.strategies.pipeline import PipelineModel, Stage
from model_orchestrator.strategies.race import HedgeModel, RaceModel
from model_orchestrator.strategies.route import RouteModel
from model_orchestrator.strategies.scorers import SelfReportedScorer
from model_orchestrator.strategies.specialist import Conversation, SpecialistModel
from model_orchestrator.strategies.tool_calls import vote_key
from model_orchestrator.strategies.validate import check_tool_calls
from model_orchestrator.strategies.validated import ValidatedModel
from model_orchestrator.testing import FakeClock, ScriptedModel

WEATHER = ToolDefinition(
    "get_weather",
    "The weather in a city.",
    {
        "type": "object",
        "properties": {"city": {"type": "string"}, "unit": {"enum": ["c", "f"]}},
        "required": ["city"],
        "additionalProperties": False,
    },
)
REQUEST = ChatRequest.from_prompt("Weather in Paris?", tools=(WEATHER,), request_id="req-tools")
PARIS = ToolCall("call_1", "get_weather", '{"city": "Paris", "unit": "c"}')


def calling(*calls: ToolCall, name: str = "m", text: str = "") -> Completion:
    """A completion that calls tools, as an adapter returns it."""
    return Completion(
        text,
        name,
        "test",
        name,
        Usage(10, 5),
        cost=0.0,
        finish_reason=FinishReason.TOOL_CALLS,
        tool_calls=calls,
    )


def member(model: ChatModel, name: str, *caps: str) -> Member:
    return Member(model, ModelProfile(name, capabilities=frozenset(caps)))


class _FirstPolicy:
    """A routing policy that keeps the members' order (the routing decision is not under test here)."""

    def choose(self, request: ChatRequest, candidates: Sequence[ModelProfile]) -> RouteChoice:
        return RouteChoice(tuple(p.name for p in candidates), (), "in order", "test", 0)


Build = Callable[[Member, Clock, EventBus], ChatModel]
PASS_THROUGH: dict[str, Build] = {
    "single": lambda m, clock, bus: m.model,
    "fallback": lambda m, clock, bus: FallbackModel([m], clock=clock, bus=bus),
    "race": lambda m, clock, bus: RaceModel([m], clock=clock, bus=bus),
    "hedge": lambda m, clock, bus: HedgeModel(m, [m], delay=60.0, clock=clock, bus=bus),
    "cheapest": lambda m, clock, bus: CheapestModel([m], clock=clock, bus=bus),
    "route": lambda m, clock, bus: RouteModel([m], policy=_FirstPolicy(), clock=clock, bus=bus),
    "specialist": lambda m, clock, bus: SpecialistModel({"general": m}, default="general", clock=clock),
}


@pytest.mark.parametrize("kind", sorted(PASS_THROUGH))
@pytest.mark.parametrize("streamed", [False, True], ids=["complete", "stream"])
async def test_each_strategy_forwards_the_tools_and_returns_the_calls(kind: str, streamed: bool) -> None:
    scripted = ScriptedModel([calling(PARIS)], name="m")
    strategy = PASS_THROUGH[kind](member(scripted, "m", "text", "tools"), FakeClock(), EventBus())
    request = REQUEST.with_options(parallel_tool_calls=False)
    if streamed:
        deltas = [d async for d in strategy.stream(request)]
        calls = assemble_tool_calls([piece for d in deltas for piece in d.tool_calls])
        finish = next(d.finish_reason for d in reversed(deltas) if d.finish_reason is not None)
    else:
        completion = await strategy.complete(request)
        calls, finish = completion.tool_calls, completion.finish_reason
    assert calls == (PARIS,) and finish is FinishReason.TOOL_CALLS
    seen = scripted.requests[0]
    assert seen.tools == (WEATHER,) and seen.parallel_tool_calls is False


async def test_an_ensemble_votes_on_tool_calls_by_name_and_canonical_arguments() -> None:
    reordered = ToolCall("call_9", "get_weather", '{ "unit":"c",  "city":"Paris" }')
    lyon = ToolCall("call_2", "get_weather", '{"city": "Lyon", "unit": "c"}')
    members = [
        member(ScriptedModel([calling(lyon, name="a")], name="a"), "a"),
        member(ScriptedModel([calling(PARIS, name="b")], name="b"), "b"),
        member(ScriptedModel([calling(reordered, name="c")], name="c"), "c"),
    ]
    ensemble = EnsembleModel(
        members, aggregator=VoteAggregator(short_text()), clock=FakeClock(), bus=EventBus()
    )

    completion = await ensemble.complete(REQUEST)

    assert completion.tool_calls == (PARIS,) and completion.model == "b"
    assert completion.explanation is not None
    facts = dict(completion.explanation.facts)
    assert facts["votes"] == {vote_key([lyon]): 1, vote_key([PARIS]): 2}
    assert completion.explanation.confidence == pytest.approx(2 / 3)
    outcomes = {s.model: s.outcome for s in completion.explanation.steps}
    assert outcomes == {"a": "rejected", "b": "ok", "c": "ok"}


async def test_tool_call_answers_never_match_text_answers_so_the_plurality_decides() -> None:
    members = [
        member(ScriptedModel(["Paris"], name="a"), "a"),
        member(ScriptedModel([calling(PARIS, name="b")], name="b"), "b"),
        member(ScriptedModel(["paris."], name="c"), "c"),
    ]
    ensemble = EnsembleModel(
        members, aggregator=VoteAggregator(short_text()), clock=FakeClock(), bus=EventBus()
    )

    completion = await ensemble.complete(REQUEST)

    assert completion.text == "Paris" and completion.tool_calls == ()
    assert completion.explanation is not None
    assert {s.model: s.outcome for s in completion.explanation.steps}["b"] == "rejected"


def test_the_vote_key_ignores_key_order_spacing_and_the_order_of_parallel_calls() -> None:
    london = ToolCall("x", "get_weather", '{"city":"London"}')
    assert vote_key([PARIS, london]) == vote_key(
        [london, ToolCall("y", "get_weather", '{"unit":"c","city":"Paris"}')]
    )
    assert vote_key([PARIS]) != vote_key([ToolCall("z", "get_time", PARIS.arguments)])


async def test_a_cascade_escalates_on_arguments_that_break_the_schema_and_accepts_valid_ones() -> None:
    wrong = ToolCall("call_1", "get_weather", '{"city": 75001}')
    cheap = ScriptedModel([calling(wrong, name="cheap")], name="cheap")
    strong = ScriptedModel([calling(PARIS, name="strong")], name="strong")
    spare = ScriptedModel(["never asked"], name="spare")
    cascade = CascadeModel(
        [member(cheap, "cheap"), member(strong, "strong"), member(spare, "spare")],
        scorer=SelfReportedScorer(),
        threshold=0.8,
        clock=FakeClock(),
        bus=EventBus(),
    )

    completion = await cascade.complete(REQUEST)

    assert completion.tool_calls == (PARIS,) and completion.model == "strong"
    explanation = completion.explanation
    assert explanation is not None
    assert explanation.confidence == 0.8 and explanation.confidence_source == "tool_arguments"
    rejected = explanation.steps[0]
    assert rejected.outcome == "rejected" and rejected.reason is not None
    assert "fail the check" in rejected.reason and "75001 is not of type 'string'" in rejected.reason
    assert spare.requests == []  # valid arguments were accepted at the threshold, no further tier asked


def test_validation_flags_arguments_that_break_the_schema_or_name_no_tool() -> None:
    assert check_tool_calls([WEATHER], [PARIS]).passed
    verdict = check_tool_calls(
        [WEATHER],
        [
            ToolCall("1", "get_weather", '{"city": "Paris", "unit": "kelvin", "extra": 1}'),
            ToolCall("2", "get_time", "{}"),
            ToolCall("3", "get_weather", "{not json"),
        ],
    )
    assert not verdict.passed and verdict.escalate and verdict.checked_by == ("tool_arguments",)
    assert len(verdict.issues) == 3  # at most three, most important (first found) first
    assert "'kelvin' is not one of ['c', 'f']" in " ".join(verdict.issues)
    assert "Additional properties are not allowed" in " ".join(verdict.issues)


async def test_a_validated_strategy_falls_back_when_the_arguments_fail_the_schema() -> None:
    wrong = ToolCall("call_1", "get_weather", '{"town": "Paris"}')
    first = ScriptedModel([calling(wrong, name="first")], name="first")
    second = ScriptedModel([calling(PARIS, name="second")], name="second")
    judge = ScriptedModel([], name="judge")  # a judge reads text: tool calls never reach it
    validated = ValidatedModel(
        member(first, "first"),
        judge=member(judge, "judge"),
        fallback=member(second, "second"),
        clock=FakeClock(),
        bus=EventBus(),
    )

    completion = await validated.complete(REQUEST)

    assert completion.tool_calls == (PARIS,) and judge.requests == []
    assert completion.explanation is not None
    validations = dict(completion.explanation.facts)["validations"]
    assert validations[0]["pass"] is False and "'city' is a required property" in validations[0]["issues"][0]
    assert validations[1]["pass"] is True


async def test_a_judge_is_never_sent_the_callers_tools_or_schema() -> None:
    schema = JsonSchemaFormat("answer", {"type": "object"})
    answerer = ScriptedModel(['{"city": "Paris"}'], name="answerer")
    judge = ScriptedModel(['{"pass": true, "issues": [], "confidence": 0.9}'], name="judge")
    validated = ValidatedModel(
        member(answerer, "answerer"), judge=member(judge, "judge"), clock=FakeClock(), bus=EventBus()
    )

    await validated.complete(REQUEST.with_options(json_schema=schema))

    assert answerer.requests[0].json_schema == schema and answerer.requests[0].tools == (WEATHER,)
    assert judge.requests[0].tools == () and judge.requests[0].json_schema is None


async def test_a_fallback_stream_that_sent_a_tool_call_never_switches_model() -> None:
    class CallsThenFails:
        name = "flaky"

        async def complete(self, request: ChatRequest) -> Completion:
            raise AssertionError("streamed only")

        async def stream(self, request: ChatRequest) -> AsyncIterator[StreamDelta]:
            yield StreamDelta(tool_calls=(ToolCallDelta(0, "call_1", "get_weather", '{"ci'),))
            raise UpstreamConnectionError("connection dropped")

        async def aclose(self) -> None:
            return None

    spare = ScriptedModel([calling(PARIS)], name="spare")
    fallback = FallbackModel(
        [member(CallsThenFails(), "flaky"), member(spare, "spare")], clock=FakeClock(), bus=EventBus()
    )
    with pytest.raises(UpstreamConnectionError, match="connection dropped"):
        async for _ in fallback.stream(REQUEST):
            pass
    assert spare.requests == []  # half a tool call was out: another model's call must not follow it


IMAGE = ChatRequest(
    messages=(Message(Role.USER, (TextPart("What is this?"), ImagePart("https://example.test/cat.png"))),)
)


async def test_strategies_that_cannot_carry_a_capability_refuse_before_any_call() -> None:
    a, b, c = (ScriptedModel(["x"], name=n) for n in "abc")
    clock, bus = FakeClock(), EventBus()
    pipeline = PipelineModel(
        [Stage("plan", member(a, "a"), "Plan."), Stage("do", member(b, "b"), "Do.")], clock=clock, bus=bus
    )
    synthesize = EnsembleModel(
        [member(a, "a"), member(b, "b")],
        aggregator=SynthesizeAggregator(member(c, "c")),
        clock=clock,
        bus=bus,
    )
    cross = CrossValidateModel(member(a, "a"), member(b, "b"), member(c, "c"), clock=clock, bus=bus)
    cases: list[tuple[ChatModel, ChatRequest, str]] = [
        (pipeline, REQUEST, "tools"),
        (synthesize, REQUEST, "tools"),
        (synthesize, IMAGE, "vision"),
        (cross, REQUEST, "tools"),
        (cross, IMAGE, "vision"),
    ]
    for strategy, request, capability in cases:
        with pytest.raises(CapabilityNotSupportedError, match=f"cannot honour {capability}") as raised:
            await strategy.complete(request)
        assert raised.value.capability == capability and "nothing was sent" in raised.value.message
    schema = REQUEST.with_options(tools=(), json_schema=JsonSchemaFormat("a", {"type": "object"}))
    cascade = CascadeModel([member(a, "a")], scorer=SelfReportedScorer(), clock=clock, bus=bus)
    with pytest.raises(CapabilityNotSupportedError, match="score with logprobs, agreement or a judge"):
        await cascade.complete(schema)
    assert a.requests == b.requests == c.requests == []


async def test_a_pipeline_keeps_images_and_gives_the_schema_to_its_final_stage_only() -> None:
    schema = JsonSchemaFormat("answer", {"type": "object"})
    plan, write = ScriptedModel(["1. look"], name="plan"), ScriptedModel(['{"animal": "cat"}'], name="write")
    pipeline = PipelineModel(
        [Stage("plan", member(plan, "plan"), "Plan."), Stage("write", member(write, "write"), "Answer.")],
        clock=FakeClock(),
    )

    completion = await pipeline.complete(IMAGE.with_options(json_schema=schema))

    assert completion.text == '{"animal": "cat"}'
    assert plan.requests[0].json_schema is None and write.requests[0].json_schema == schema
    assert write.requests[0].messages[-1].images == IMAGE.messages[0].images


async def test_a_pipeline_stage_without_vision_is_refused_by_name_before_any_call() -> None:
    plan, write = ScriptedModel(["x"], name="plan"), ScriptedModel(["y"], name="write")
    pipeline = PipelineModel(
        [
            Stage("plan", member(plan, "plan", "text", "vision"), "Plan."),
            Stage("write", member(write, "write", "text"), "Answer."),
        ],
        clock=FakeClock(),
    )
    with pytest.raises(CapabilityNotSupportedError, match=r"stage 'write' \(write\) lacks vision"):
        await pipeline.complete(IMAGE)
    assert plan.requests == write.requests == []


async def test_a_confidence_gated_fallback_judges_tool_calls_by_their_arguments() -> None:
    wrong = ToolCall("call_1", "get_weather", "{}")  # misses the required city
    first = ScriptedModel([calling(wrong, name="first")], name="first")
    second = ScriptedModel([calling(PARIS, name="second")], name="second")
    fallback = FallbackModel(
        [member(first, "first"), member(second, "second")],
        scorer=SelfReportedScorer(),
        threshold=0.6,
        clock=FakeClock(),
        bus=EventBus(),
    )

    completion = await fallback.complete(REQUEST)

    assert completion.tool_calls == (PARIS,) and completion.explanation is not None
    assert [s.outcome for s in completion.explanation.steps] == ["rejected", "ok"]
    assert completion.explanation.confidence == 0.6


async def test_a_conversation_remembers_the_calls_the_model_made() -> None:
    model = ScriptedModel([calling(PARIS)], name="m")
    conversation = Conversation(model, context_window=4000)

    await conversation.ask("Weather in Paris?", tools=(WEATHER,))

    assert conversation.history[-1].tool_calls == (PARIS,)


async def test_cheapest_by_price_alone_still_leaves_out_members_without_vision() -> None:
    blind, seeing = ScriptedModel(["?"], name="blind"), ScriptedModel(["a cat"], name="seeing")
    members = [member(blind, "blind", "text"), member(seeing, "seeing", "text", "vision")]
    cheapest = CheapestModel(members, clock=FakeClock(), bus=EventBus())

    completion = await cheapest.complete(IMAGE)

    assert completion.text == "a cat" and blind.requests == []
    assert completion.explanation is not None
    skipped = completion.explanation.steps[0]
    assert (skipped.model, skipped.outcome) == ("blind", "skipped")
    assert skipped.reason == "lacks vision (it has: text)"
    with pytest.raises(CapabilityNotSupportedError, match="no member of 'cheapest' can take this request"):
        await CheapestModel(members[:1], clock=FakeClock(), bus=EventBus()).complete(IMAGE)
    assert blind.requests == []
