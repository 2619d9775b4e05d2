"""Validation (seed 003): deterministic validators, reading a judge's verdict, ``validate`` and
``ValidatedModel``'s fallback."""

from __future__ import annotations

import pytest

from model_orchestrator.core.errors import (
    AllModelsFailedError,
    ConfigError,
    RequestTimeoutError,
    ServerError,
)
from model_orchestrator.core.events import EventBus, FallbackTriggered, RecordingSink
from model_orchestrator.core.observed import ObservedModel
from model_orchestrator.core.pricing import Price
from model_orchestrator.core.profile import ModelProfile
from model_orchestrator.core.request import ChatRequest, ResponseFormat
from model_orchestrator.strategies.member import Member
from model_orchestrator.strategies.validate import (
    UNREADABLE_JUDGE,
    ValidationResult,
    json_schema_validator,
    parse_judge_answer,
    python_syntax_validator,
    validate,
)
from model_orchestrator.strategies.validated import ValidatedModel
from model_orchestrator.testing import FakeClock, ScriptedModel

SCHEMA: dict[str, object] = {
    "type": "object",
    "properties": {"name": {"type": "string"}, "age": {"type": "integer", "minimum": 0}},
    "required": ["name", "age"],
}
PASS_JSON = '{"pass": true, "issues": [], "confidence": 0.9}'
FAIL_JSON = '{"pass": false, "issues": ["misses the edge case"], "confidence": 0.8}'


# --- the result shape -------------------------------------------------------------------------------


def test_to_dict_has_seed_keys() -> None:
    result = ValidationResult(False, ("a", "b"), 0.4, True, ("judge:j",))
    assert result.to_dict() == {
        "pass": False,
        "issues": ["a", "b"],
        "confidence": 0.4,
        "escalate": True,
        "checked_by": ["judge:j"],
    }


def test_more_than_three_issues_is_refused() -> None:
    with pytest.raises(ValueError, match="at most 3"):
        ValidationResult(False, ("a", "b", "c", "d"))


# --- JSON schema --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "output",
    [
        '{"name": "Ada", "age": 36}',
        'Here it is:\n```json\n{"name": "Ada", "age": 36}\n```\nAnything else?',
        'Sure! {"name": "Ada", "age": 36} is the record.',
    ],
)
def test_schema_accepts_bare_fenced_and_inline_json(output: str) -> None:
    assert json_schema_validator(SCHEMA).check(output) == ()


def test_schema_failures_name_the_path() -> None:
    issues = json_schema_validator(SCHEMA).check('{"name": 7, "age": -1}')
    assert issues == ("at $.age: -1 is less than the minimum of 0", "at $.name: 7 is not of type 'string'")


def test_schema_missing_field_and_non_json() -> None:
    validator = json_schema_validator(SCHEMA)
    assert validator.check('{"name": "Ada"}') == ("at $: 'age' is a required property",)
    assert validator.check("no json here") == ("output is not JSON (no JSON value found, fenced or inline)",)


def test_invalid_schema_fails_at_configuration() -> None:
    with pytest.raises(ConfigError, match="invalid JSON schema"):
        json_schema_validator({"type": "no-such-type"})


# --- Python syntax ------------------------------------------------------------------------------------


def test_valid_python_passes_whole_or_fenced() -> None:
    validator = python_syntax_validator()
    assert validator.check("def f(x):\n    return x + 1\n") == ()
    assert validator.check("Here:\n```python\nprint('hi')\n```\nDone.") == ()


def test_syntax_error_reports_line_and_message() -> None:
    issues = python_syntax_validator().check("x = 1\ny = 2\ndef broken(:\n    pass\n")
    assert len(issues) == 1
    assert issues[0].startswith("Python syntax error at line 3, column")
    assert "invalid syntax" in issues[0]


def test_syntax_error_lines_count_within_the_block_and_blocks_are_numbered() -> None:
    output = "Intro\n```python\nok = 1\n```\nand\n```py\na = 1\nif a\n    b = 2\n```\n"
    (issue,) = python_syntax_validator().check(output)
    assert issue.startswith("Python syntax error at code block 2, line 2")
    assert "expected ':'" in issue


def test_indentation_error_and_non_python_fences() -> None:
    validator = python_syntax_validator()
    (issue,) = validator.check("def f():\nreturn 1\n")
    assert "line 2" in issue and "indented block" in issue
    assert validator.check("```bash\nls -la\n```") == ("no Python code block found (fenced blocks: bash)",)


# --- reading the judge -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        PASS_JSON,
        f"```json\n{PASS_JSON}\n```",
        f"I checked it carefully.\n{PASS_JSON}\nThat is all.",
        '{"passed": "true", "issues": [], "confidence": "90%"}',
        '{"pass": true, "issues": [], "confidence": 90}',
    ],
)
def test_judge_variants_that_pass(text: str) -> None:
    result = parse_judge_answer(text, threshold=0.7, judge="j")
    assert result == ValidationResult(True, (), 0.9, False, ("judge:j",))


def test_judge_issues_are_capped_at_three_and_may_be_a_string() -> None:
    many = '{"pass": false, "issues": ["a", "b", "", "c", "d"], "confidence": 0.95}'
    result = parse_judge_answer(many, threshold=0.7, judge="j")
    assert result.issues == ("a", "b", "c") and not result.passed and result.escalate
    single = parse_judge_answer(
        '{"pass": false, "issues": "wrong unit", "confidence": 1}', threshold=0.7, judge="j"
    )
    assert single.issues == ("wrong unit",)


def test_judge_rejection_without_issues_says_so() -> None:
    result = parse_judge_answer('{"pass": false, "confidence": 0.9}', threshold=0.7, judge="j")
    assert result.issues == ("the judge rejected the output without naming an issue",)


@pytest.mark.parametrize(
    "text",
    ["Looks good to me!", '{"issues": []}', '{"pass": "maybe", "confidence": 1}', "[true, 0.9]"],
)
def test_unreadable_judge_fails_and_escalates(text: str) -> None:
    result = parse_judge_answer(text, threshold=0.7, judge="j")
    assert result == ValidationResult(False, (UNREADABLE_JUDGE,), 0.0, True, ("judge:j",))


@pytest.mark.parametrize(
    ("confidence", "expected", "escalate"),
    [
        ("0.69", 0.69, True),
        ("0.7", 0.7, False),
        ("null", 0.5, True),
        ('"high"', 0.5, True),
        ("7", 0.07, True),
    ],
)
def test_escalates_below_threshold(confidence: str, expected: float, escalate: bool) -> None:
    text = f'{{"pass": true, "issues": [], "confidence": {confidence}}}'
    result = parse_judge_answer(text, threshold=0.7, judge="j")
    assert result.passed
    assert result.confidence == pytest.approx(expected)
    assert result.escalate is escalate


# --- validate() -------------------------------------------------------------------------------------


async def test_validator_failure_skips_the_judge() -> None:
    judge = ScriptedModel([], name="judge")
    result = await validate("give JSON", "not json", judge=judge, validators=[json_schema_validator(SCHEMA)])
    assert not result.passed and result.escalate and result.confidence == 1.0
    assert result.checked_by == ("json_schema",)
    assert judge.requests == []


async def test_always_judge_combines_issues_up_to_three() -> None:
    judge = ScriptedModel(['{"pass": false, "issues": ["x", "y"], "confidence": 0.6}'], name="judge")
    result = await validate(
        "give JSON",
        '{"name": 1, "age": "old"}',
        judge=judge,
        validators=[json_schema_validator(SCHEMA)],
        always_judge=True,
    )
    assert result.issues == (
        "at $.age: 'old' is not of type 'integer'",
        "at $.name: 1 is not of type 'string'",
        "x",
    )
    assert result.confidence == 1.0 and not result.passed
    assert result.checked_by == ("json_schema", "judge:judge")


async def test_judge_gets_task_output_and_a_structured_instruction() -> None:
    judge = ScriptedModel([PASS_JSON], name="judge")
    base = ChatRequest.from_prompt("ignored", request_id="req-9", max_tokens=5, deadline=42.0)
    result = await validate(
        "sum two numbers",
        "def add(a, b): return a + b",
        judge=judge,
        validators=[python_syntax_validator()],
        base=base,
    )
    assert result == ValidationResult(True, (), 0.9, False, ("python_syntax", "judge:judge"))
    (sent,) = judge.requests
    assert sent.request_id == "req-9" and sent.deadline == 42.0
    assert sent.max_tokens is None and sent.temperature == 0.0
    assert sent.response_format is ResponseFormat.JSON
    system, user = sent.messages
    assert '"pass"' in system.text and '"confidence"' in system.text and "at most 3" in system.text
    assert user.text == "Task:\nsum two numbers\n\nOutput to check:\ndef add(a, b): return a + b"


async def test_validators_alone_pass_with_full_confidence() -> None:
    result = await validate("t", "x = 1", judge=None, validators=[python_syntax_validator()])
    assert result == ValidationResult(True, (), 1.0, False, ("python_syntax",))


async def test_nothing_to_validate_with_is_a_config_error() -> None:
    with pytest.raises(ConfigError):
        await validate("t", "o", judge=None)


async def test_judge_errors_propagate_from_validate() -> None:
    judge = ScriptedModel([ServerError("judge down")], name="judge")
    with pytest.raises(ServerError):
        await validate("t", "o", judge=judge)


# --- ValidatedModel ---------------------------------------------------------------------------------

PRICE = Price(input=1.0, output=2.0)


def observed(scripted: ScriptedModel, bus: EventBus) -> Member:
    model = ObservedModel(
        scripted,
        name=scripted.name,
        provider="p",
        deployment=f"{scripted.name}@h",
        price=PRICE,
        bus=bus,
        clock=FakeClock(),
    )
    return Member(model, ModelProfile(scripted.name, price=PRICE))


def setup(
    primary: list[object], judge: list[object], fallback: list[object] | None
) -> tuple[ValidatedModel, RecordingSink, dict[str, ScriptedModel]]:
    bus, sink = EventBus(), RecordingSink()
    bus.subscribe(sink)
    models = {
        "weak": ScriptedModel(primary, name="weak"),  # type: ignore[arg-type]
        "judge": ScriptedModel(judge, name="judge"),  # type: ignore[arg-type]
        "strong": ScriptedModel(fallback or [], name="strong"),  # type: ignore[arg-type]
    }
    strategy = ValidatedModel(
        observed(models["weak"], bus),
        judge=observed(models["judge"], bus),
        validators=[python_syntax_validator()],
        fallback=None if fallback is None else observed(models["strong"], bus),
        clock=FakeClock(),
        bus=bus,
    )
    return strategy, sink, models


REQUEST = ChatRequest.from_prompt("write add(a, b) in Python", request_id="r1")


async def test_passing_answer_is_returned_with_its_verdict() -> None:
    strategy, sink, models = setup(["def add(a, b):\n    return a + b\n"], [PASS_JSON], ["unused"])
    completion = await strategy.complete(REQUEST)
    assert completion.model == "weak" and models["strong"].requests == []
    assert not sink.of_type(FallbackTriggered)
    explanation = completion.explanation
    assert explanation is not None
    assert [(s.model, s.outcome) for s in explanation.steps] == [("weak", "ok"), ("judge", "ok")]
    assert explanation.confidence == 0.9
    assert explanation.confidence_source == "python_syntax,judge:judge"
    assert explanation.reason == "the answer from weak passed validation"


async def test_failed_validation_falls_back_and_costs_add_up() -> None:
    strategy, sink, models = setup(
        ["def add(a, b) return a + b"], [PASS_JSON], ["def add(a, b):\n    return a + b\n"]
    )
    completion = await strategy.complete(REQUEST)
    assert completion.model == "strong" and completion.text.startswith("def add(a, b):")
    # The syntax error made the judge unnecessary for the weak answer; the strong answer was judged.
    assert len(models["judge"].requests) == 1
    (event,) = sink.of_type(FallbackTriggered)
    assert isinstance(event, FallbackTriggered)
    assert (event.strategy, event.from_model, event.to_model) == ("validated", "weak", "strong")
    assert event.reason.startswith("validation failed: Python syntax error at line 1")
    explanation = completion.explanation
    assert explanation is not None
    assert [(s.model, s.outcome) for s in explanation.steps] == [
        ("weak", "rejected"),
        ("strong", "ok"),
        ("judge", "ok"),
    ]
    validations = dict(explanation.facts)["validations"]
    assert [v["model"] for v in validations] == ["weak", "strong"]  # type: ignore[attr-defined]
    assert completion.cost == pytest.approx(sum(s.cost or 0 for s in explanation.steps))
    assert completion.usage.input_tokens == sum(s.input_tokens for s in explanation.steps)


async def test_low_confidence_pass_escalates_to_the_fallback() -> None:
    low = '{"pass": true, "issues": [], "confidence": 0.4}'
    strategy, sink, _ = setup(["x = 1"], [low, PASS_JSON], ["x = 2"])
    completion = await strategy.complete(REQUEST)
    assert completion.text == "x = 2"
    (event,) = sink.of_type(FallbackTriggered)
    assert isinstance(event, FallbackTriggered)
    assert event.reason == "validation confidence 0.40 under 0.70"


async def test_member_error_goes_to_the_fallback_or_propagates() -> None:
    strategy, sink, _ = setup([ServerError("boom")], [PASS_JSON], ["x = 2"])
    assert (await strategy.complete(REQUEST)).text == "x = 2"
    (event,) = sink.of_type(FallbackTriggered)
    assert isinstance(event, FallbackTriggered) and event.reason == "error: boom"
    alone, _, _ = setup([ServerError("boom")], [], None)
    with pytest.raises(ServerError):
        await alone.complete(REQUEST)


async def test_both_failing_raise_all_models_failed() -> None:
    strategy, _, _ = setup([ServerError("boom")], [], [RequestTimeoutError("slow")])
    with pytest.raises(AllModelsFailedError) as caught:
        await strategy.complete(REQUEST)
    assert [type(e) for e in caught.value.errors] == [ServerError, RequestTimeoutError]


async def test_fallback_failure_keeps_the_escalated_answer() -> None:
    strategy, _, _ = setup(["x = (1"], [], [ServerError("down")])
    completion = await strategy.complete(REQUEST)
    assert completion.text == "x = (1" and completion.model == "weak"
    explanation = completion.explanation
    assert explanation is not None
    assert explanation.reason == "the answer from weak escalated validation"
    assert [(s.model, s.outcome) for s in explanation.steps] == [("weak", "rejected"), ("strong", "error")]


async def test_judge_failure_counts_as_failed_validation() -> None:
    strategy, _, _ = setup(["x = 1"], [ServerError("judge down"), PASS_JSON], ["x = 2"])
    completion = await strategy.complete(REQUEST)
    assert completion.text == "x = 2"
    explanation = completion.explanation
    assert explanation is not None
    first = dict(explanation.facts)["validations"][0]  # type: ignore[index]
    assert first["issues"] == ["judge failed: judge down"] and first["escalate"] is True


async def test_stream_yields_the_checked_answer_once() -> None:
    strategy, _, _ = setup(["x = 1"], [PASS_JSON], None)
    deltas = [d async for d in strategy.stream(REQUEST)]
    assert len(deltas) == 1 and deltas[0].text == "x = 1" and deltas[0].explanation is not None


def test_needs_a_judge_or_a_validator() -> None:
    member = Member(ScriptedModel([]), ModelProfile("m"))
    with pytest.raises(ConfigError):
        ValidatedModel(member, judge=None, clock=FakeClock(), bus=EventBus())
