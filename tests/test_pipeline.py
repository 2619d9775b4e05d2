"""PipelineModel (seed 001's plan -> code -> review): what each context mode passes, the review verdict,
the bounded rework loop, and the explanation."""

from __future__ import annotations

import pytest

from model_orchestrator.core.errors import ConfigError, ServerError
from model_orchestrator.core.events import EventBus
from model_orchestrator.core.observed import ObservedModel
from model_orchestrator.core.pricing import Price
from model_orchestrator.core.profile import ModelProfile
from model_orchestrator.core.request import ChatRequest, ResponseFormat
from model_orchestrator.strategies.member import Member
from model_orchestrator.strategies.pipeline import (
    CONDENSE_INSTRUCTIONS,
    REVIEW_FORMAT,
    PipelineModel,
    Stage,
    Verdict,
    parse_verdict,
)
from model_orchestrator.testing import FakeClock, ScriptedModel

TASK = "Build a stack class"
PLAN = "1. list storage\n2. push/pop"
APPROVE = 'Fine work.\n{"approved": true, "issues": []}'
REJECT = 'Two problems.\n```json\n{"approved": false, "issues": ["pop on empty", "no docstring"]}\n```'
PRICE = Price(input=1.0, output=2.0)


def member(model: ScriptedModel) -> Member:
    return Member(model, ModelProfile(model.name))


def plan_code_review(
    coder_script: list[object],
    reviews: list[object],
    *,
    code_context: str = "full",
    review_context: str = "full",
    summarizer: Member | None = None,
    max_rounds: int = 2,
) -> tuple[PipelineModel, ScriptedModel, ScriptedModel, ScriptedModel]:
    planner = ScriptedModel([PLAN], name="planner")
    coder = ScriptedModel(coder_script, name="coder")  # type: ignore[arg-type]
    reviewer = ScriptedModel(reviews, name="reviewer")  # type: ignore[arg-type]
    pipeline = PipelineModel(
        [
            Stage("plan", member(planner), "You are an architect. Plan."),
            Stage("code", member(coder), "You are a programmer. Implement.", context=code_context),  # type: ignore[arg-type]
            Stage("review", member(reviewer), "You review code.", context=review_context, is_review=True),  # type: ignore[arg-type]
        ],
        summarizer=summarizer,
        max_rounds=max_rounds,
        clock=FakeClock(),
    )
    return pipeline, planner, coder, reviewer


def texts(model: ScriptedModel, call: int = 0) -> tuple[str, str]:
    """(system, user) texts of one recorded call."""
    system, user = model.requests[call].messages
    return system.text, user.text


# --- context modes ---------------------------------------------------------------------------------


async def test_full_context_passes_every_earlier_output_verbatim() -> None:
    pipeline, planner, coder, reviewer = plan_code_review(["class Stack: ..."], [APPROVE])
    completion = await pipeline.complete(ChatRequest.from_prompt(TASK))
    assert completion.text == "class Stack: ..." and completion.model == "coder"
    assert texts(planner) == ("You are an architect. Plan.", TASK)
    assert texts(coder) == (
        "You are a programmer. Implement.",
        f"{TASK}\n\n## Output of the plan stage\n{PLAN}",
    )
    assert texts(reviewer) == (
        f"You review code.\n\n{REVIEW_FORMAT}",
        f"{TASK}\n\n## Output of the plan stage\n{PLAN}\n\n## Output of the code stage\nclass Stack: ...",
    )


async def test_none_context_passes_only_the_request() -> None:
    pipeline, _, coder, reviewer = plan_code_review(["code"], [APPROVE], code_context="none")
    await pipeline.complete(ChatRequest.from_prompt(TASK))
    assert texts(coder) == ("You are a programmer. Implement.", TASK)
    assert "## Output of the plan stage" in texts(reviewer)[1]


async def test_summarize_uses_the_summarizer_and_passes_only_the_summary() -> None:
    summarizer = ScriptedModel(["  Plan: a list-backed stack.  "], name="summarizer")
    pipeline, _, coder, _ = plan_code_review(
        ["code"], [APPROVE], code_context="summarize", summarizer=member(summarizer)
    )
    await pipeline.complete(ChatRequest.from_prompt(TASK, request_id="r7"))
    (asked,) = summarizer.requests
    assert asked.request_id == "r7" and asked.max_tokens is None
    assert texts(summarizer) == (
        CONDENSE_INSTRUCTIONS["summarize"],
        f"## The task\n{TASK}\n\n## Output of the plan stage\n{PLAN}",
    )
    assert texts(coder)[1] == f"{TASK}\n\n## Summary of the previous stages\nPlan: a list-backed stack."


async def test_extract_defaults_to_the_stages_own_member() -> None:
    pipeline, _, coder, _ = plan_code_review(
        ["- list storage\n- push/pop", "code"], [APPROVE], code_context="extract"
    )
    completion = await pipeline.complete(ChatRequest.from_prompt(TASK))
    assert completion.text == "code"
    assert texts(coder, 0)[0] == CONDENSE_INSTRUCTIONS["extract"]
    assert texts(coder, 1)[1] == f"{TASK}\n\n## Key points of the previous stages\n- list storage\n- push/pop"


async def test_summarizer_failure_falls_back_to_full_context_and_is_explained() -> None:
    summarizer = ScriptedModel([ServerError("summarizer down")], name="summarizer")
    pipeline, _, coder, _ = plan_code_review(
        ["code"], [APPROVE], code_context="summarize", summarizer=member(summarizer)
    )
    completion = await pipeline.complete(ChatRequest.from_prompt(TASK))
    assert texts(coder)[1] == f"{TASK}\n\n## Output of the plan stage\n{PLAN}"
    assert completion.explanation is not None
    failed = [s for s in completion.explanation.steps if s.outcome == "error"]
    assert [(s.model, s.reason) for s in failed] == [
        ("summarizer", "summarize for 'code' failed (summarizer down); passed full outputs")
    ]


async def test_caller_system_prompt_and_history_are_kept() -> None:
    pipeline, planner, _, _ = plan_code_review(["code"], [APPROVE])
    request = ChatRequest.from_prompt(TASK, system="Use Python 3.12.")
    await pipeline.complete(request)
    assert texts(planner) == ("You are an architect. Plan.\n\nUse Python 3.12.", TASK)


async def test_only_the_final_stage_keeps_the_callers_format() -> None:
    pipeline, planner, coder, reviewer = plan_code_review(["{}"], [APPROVE])
    await pipeline.complete(
        ChatRequest.from_prompt(TASK, response_format=ResponseFormat.JSON, max_tokens=300)
    )
    assert planner.requests[0].response_format is ResponseFormat.TEXT
    assert coder.requests[0].response_format is ResponseFormat.JSON
    assert reviewer.requests[0].response_format is ResponseFormat.TEXT
    assert {m.requests[0].max_tokens for m in (planner, coder, reviewer)} == {300}


# --- review verdicts and rework -----------------------------------------------------------------------


async def test_rejection_reruns_the_code_stage_once_with_the_issues() -> None:
    pipeline, planner, coder, reviewer = plan_code_review(["v1", "v2"], [REJECT, APPROVE])
    completion = await pipeline.complete(ChatRequest.from_prompt(TASK))
    assert completion.text == "v2"
    assert len(planner.requests) == 1 and len(coder.requests) == 2 and len(reviewer.requests) == 2
    assert texts(coder, 1)[1] == (
        f"{TASK}\n\n## Output of the plan stage\n{PLAN}\n\n"
        "## Your previous answer\nv1\n\n## The reviewer's issues\n- pop on empty\n- no docstring\n\n"
        "Revise your answer to fix these issues and reply with the complete revised answer."
    )
    assert texts(reviewer, 1)[1].endswith("## Output of the code stage\nv2")
    explanation = completion.explanation
    assert explanation is not None
    facts = dict(explanation.facts)
    assert facts["rounds"] == {"review": 2} and facts["approved"] is True
    assert facts["outputs"] == {"plan": PLAN, "code": "v2", "review": APPROVE}
    assert facts["verdicts"] == [
        {
            "stage": "review",
            "round": 1,
            "approved": False,
            "issues": ["pop on empty", "no docstring"],
            "source": "json",
        },
        {"stage": "review", "round": 2, "approved": True, "issues": [], "source": "json"},
    ]
    assert [(s.model, s.outcome, s.text) for s in explanation.steps] == [
        ("planner", "ok", PLAN),
        ("coder", "rejected", "v1"),
        ("reviewer", "ok", REJECT),
        ("coder", "ok", "v2"),
        ("reviewer", "ok", APPROVE),
    ]
    assert explanation.reason == "review 'review' approved in round 2; answer from stage 'code'"


async def test_rounds_are_bounded_and_the_last_output_is_returned_unapproved() -> None:
    pipeline, _, coder, reviewer = plan_code_review(["v1", "v2", "v3"], [REJECT, REJECT, REJECT])
    completion = await pipeline.complete(ChatRequest.from_prompt(TASK))
    assert completion.text == "v2"
    assert len(coder.requests) == 2 and len(reviewer.requests) == 2
    assert completion.explanation is not None
    facts = dict(completion.explanation.facts)
    assert facts["approved"] is False and facts["rounds"] == {"review": 2}
    assert completion.explanation.reason == (
        "review 'review' still requested changes in round 2; answer from stage 'code'"
    )


async def test_one_round_means_no_rework() -> None:
    pipeline, _, coder, reviewer = plan_code_review(["v1"], [REJECT], max_rounds=1)
    assert (await pipeline.complete(ChatRequest.from_prompt(TASK))).text == "v1"
    assert len(coder.requests) == 1 and len(reviewer.requests) == 1


async def test_rework_reuses_the_summary_of_unchanged_stages() -> None:
    summarizer = ScriptedModel(["short plan"], name="summarizer")
    pipeline, _, coder, _ = plan_code_review(
        ["v1", "v2"], [REJECT, APPROVE], code_context="summarize", summarizer=member(summarizer)
    )
    await pipeline.complete(ChatRequest.from_prompt(TASK))
    assert len(summarizer.requests) == 1
    assert "## Summary of the previous stages\nshort plan" in texts(coder, 1)[1]


async def test_unreadable_review_counts_as_rejection_with_its_text_as_feedback() -> None:
    pipeline, _, coder, _ = plan_code_review(["v1", "v2"], ["Looks good, nice work!", "APPROVED"])
    completion = await pipeline.complete(ChatRequest.from_prompt(TASK))
    assert completion.text == "v2"
    assert "## The reviewer's issues\nLooks good, nice work!" in texts(coder, 1)[1]


# --- parse_verdict ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (APPROVE, Verdict(True, (), "json")),
        (REJECT, Verdict(False, ("pop on empty", "no docstring"), "json")),
        (
            'Use {"approved": true} style config.\nFinal: {"approved": false, "issues": "tests"}',
            Verdict(False, ("tests",), "json"),
        ),
        ('The code builds {"a": 1}.\n{"approved": true, "issues": []}', Verdict(True, (), "json")),
        ("**Verdict: APPROVED**", Verdict(True, (), "text")),
        ("Nice.\n\nAPPROVED", Verdict(True, (), "text")),
        (
            "CHANGES REQUESTED\n- handle empty stack\n2. add tests",
            Verdict(False, ("handle empty stack", "add tests"), "text"),
        ),
        ("- style nit\nVerdict: changes requested", Verdict(False, ("style nit",), "text")),
        ("NOT APPROVED", Verdict(False, (), "text")),
        ("Looks good to me!", Verdict(False, (), "unreadable")),
        ("I would have approved it, but the tests fail.", Verdict(False, (), "unreadable")),
        ("This is unapproved work", Verdict(False, (), "unreadable")),
    ],
)
def test_parse_verdict(text: str, expected: Verdict) -> None:
    assert parse_verdict(text) == expected


# --- costs, failures, streaming, configuration ------------------------------------------------------


async def test_costs_and_usage_sum_over_every_call() -> None:
    bus = EventBus()

    def observed(model: ScriptedModel) -> Member:
        wrapped = ObservedModel(
            model, name=model.name, provider="p", deployment=model.name, price=PRICE, bus=bus
        )
        return Member(wrapped, ModelProfile(model.name, price=PRICE))

    pipeline = PipelineModel(
        [
            Stage("plan", observed(ScriptedModel([PLAN], name="planner")), "Plan."),
            Stage("code", observed(ScriptedModel(["v1", "v2"], name="coder")), "Code."),
            Stage(
                "review",
                observed(ScriptedModel([REJECT, APPROVE], name="reviewer")),
                "Review.",
                is_review=True,
            ),
        ],
        clock=FakeClock(),
    )
    completion = await pipeline.complete(ChatRequest.from_prompt(TASK))
    assert completion.explanation is not None
    steps = completion.explanation.steps
    assert len(steps) == 5
    assert completion.cost == pytest.approx(sum(s.cost or 0.0 for s in steps))
    assert completion.usage.output_tokens == sum(s.output_tokens for s in steps)


async def test_stage_failure_propagates_with_a_note() -> None:
    pipeline, _, _, _ = plan_code_review([ServerError("coder down")], [APPROVE])
    with pytest.raises(ServerError) as caught:
        await pipeline.complete(ChatRequest.from_prompt(TASK))
    assert "pipeline 'pipeline': stage 'code' (round 1) failed" in caught.value.__notes__


async def test_stream_completes_then_yields_one_delta() -> None:
    pipeline, _, _, _ = plan_code_review(["code"], [APPROVE])
    deltas = [d async for d in pipeline.stream(ChatRequest.from_prompt(TASK))]
    assert len(deltas) == 1 and deltas[0].text == "code" and deltas[0].explanation is not None


async def test_pipeline_without_review_returns_the_last_stage() -> None:
    a, b = ScriptedModel(["draft"], name="a"), ScriptedModel(["final"], name="b")
    stages = [Stage("draft", member(a), "Draft."), Stage("polish", member(b), "Polish.")]
    pipeline = PipelineModel(stages, name="two-step", clock=FakeClock(), bus=EventBus())
    completion = await pipeline.complete(ChatRequest.from_prompt(TASK))
    assert completion.text == "final"
    assert completion.explanation is not None
    assert dict(completion.explanation.facts)["approved"] is None


@pytest.mark.parametrize(
    ("stages", "message"),
    [
        ([("r", True)], "at least one stage that is not a review"),
        ([("r", True), ("a", False)], "must follow a stage"),
        ([("a", False), ("r", True), ("r2", True)], "must follow a stage"),
        ([("a", False), ("a", False)], "unique"),
    ],
)
def test_invalid_stage_lists_are_config_errors(stages: list[tuple[str, bool]], message: str) -> None:
    m = member(ScriptedModel([]))
    with pytest.raises(ConfigError, match=message):
        PipelineModel([Stage(n, m, "x", is_review=r) for n, r in stages], clock=FakeClock())


def test_bad_context_mode_and_rounds_are_config_errors() -> None:
    m = member(ScriptedModel([]))
    with pytest.raises(ConfigError, match="unknown context mode 'all'"):
        Stage("a", m, "x", context="all")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="max_rounds"):
        PipelineModel([Stage("a", m, "x")], max_rounds=0, clock=FakeClock())
