"""Checking an answer (seed 003's ``orchestrator_validate``): deterministic validators, then a judge
model. ``ValidatedModel`` (the strategy that answers, checks and falls back) lives in ``validated``.

Owns the verdict shape (``pass``, at most 3 ``issues``, ``confidence``, ``escalate``), the JSON-schema and
Python-syntax validators, the check of tool calls against the offered tools' schemas, and reading a
judge's structured answer. It does not decide which judge to use
(config does) and does not retry.
"""

from __future__ import annotations

import ast
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

from model_orchestrator.core.errors import ConfigError
from model_orchestrator.core.model import ChatModel
from model_orchestrator.core.request import ChatRequest
from model_orchestrator.core.response import Completion
from model_orchestrator.core.tools import ToolCall, ToolDefinition
from model_orchestrator.strategies._prompts import auxiliary_request, fenced_blocks, find_json
from model_orchestrator.strategies.tool_calls import TOOL_ARGUMENTS_SOURCE, tool_call_issues

MAX_ISSUES = 3
BUILTIN_VALIDATORS = ("python", "json")
_PYTHON_FENCES = ("", "python", "py", "python3")
UNREADABLE_JUDGE = "judge answer unreadable"
# A verdict without a stated confidence is treated as a coin flip, so it escalates under any sane threshold.
MISSING_CONFIDENCE = 0.5
JUDGE_INSTRUCTIONS = (
    "You check whether an output accomplishes a task. Reply with only a JSON object: "
    '{"pass": true or false, "issues": ["..."], "confidence": a number from 0 to 1}. '
    "List at most 3 issues, most important first, and an empty list when the output passes. "
    "confidence is how sure you are of your verdict."
)


@dataclass(frozen=True, slots=True)
class ValidationResult:
    """A verdict on one output. ``escalate`` means a person (or a stronger model) should look at it.

    ``checked_by`` names what produced the verdict (validators by name, ``judge:<model>``).
    """

    passed: bool
    issues: tuple[str, ...] = ()
    confidence: float = 1.0
    escalate: bool = False
    checked_by: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        if len(self.issues) > MAX_ISSUES:
            raise ValueError(f"a validation result holds at most {MAX_ISSUES} issues, got {len(self.issues)}")

    def to_dict(self) -> dict[str, object]:
        """Seed 003's shape (``pass``, ``issues``, ``confidence``, ``escalate``) plus ``checked_by``."""
        return {
            "pass": self.passed,
            "issues": list(self.issues),
            "confidence": self.confidence,
            "escalate": self.escalate,
            "checked_by": list(self.checked_by),
        }


@dataclass(frozen=True, slots=True)
class Validator:
    """A deterministic check: ``check(output)`` returns the problems found (empty: the output passes)."""

    name: str
    check: Callable[[str], tuple[str, ...]]


def json_schema_validator(schema: dict[str, object], *, name: str = "json_schema") -> Validator:
    """Checks that the output holds JSON (whole, fenced or inside prose) matching ``schema``.

    The schema itself is checked now, so a broken schema fails at configuration time.
    """
    try:
        import jsonschema  # type: ignore[import-untyped]  # the library ships no type information
    except ImportError as exc:  # pragma: no cover - jsonschema is a declared dependency
        raise ConfigError("the JSON-schema validator needs the 'jsonschema' package: pip install it") from exc
    validator_class = jsonschema.validators.validator_for(schema)
    try:
        validator_class.check_schema(schema)
    except jsonschema.SchemaError as exc:
        raise ConfigError(f"{name}: invalid JSON schema: {exc.message}") from exc
    validator = validator_class(schema)

    def check(output: str) -> tuple[str, ...]:
        try:
            instance = find_json(output)
        except ValueError:
            return ("output is not JSON (no JSON value found, fenced or inline)",)
        errors = sorted(validator.iter_errors(instance), key=lambda e: list(e.absolute_path))
        return tuple(f"at {error.json_path}: {error.message}" for error in errors)

    return Validator(name, check)


def python_syntax_validator(*, name: str = "python_syntax") -> Validator:
    """Checks that the Python code in the output parses: each ```python (or unlabelled) fenced block, or
    the whole output when it has no fenced block at all. Issues give the line (within its block) and
    message; fenced blocks in other languages only are an issue too (no Python to check)."""

    def check(output: str) -> tuple[str, ...]:
        fenced = fenced_blocks(output)
        blocks = [body for lang, body in fenced if lang in _PYTHON_FENCES]
        if not fenced:
            return _syntax_issues(output, where="")
        if not blocks:
            languages = ", ".join(sorted({lang for lang, _ in fenced}))
            return (f"no Python code block found (fenced blocks: {languages})",)
        if len(blocks) == 1:
            return _syntax_issues(blocks[0], where="")
        issues: list[str] = []
        for number, body in enumerate(blocks, 1):
            issues.extend(_syntax_issues(body, where=f"code block {number}, "))
        return tuple(issues)

    return Validator(name, check)


def builtin_validator(name: str) -> Validator:
    """A validator by the name config and the façade use: ``python`` (syntax) or ``json`` (any JSON value)."""
    if name == "python":
        return python_syntax_validator()
    if name == "json":
        return json_schema_validator({})
    raise ConfigError(f"unknown validator {name!r}; expected one of: {', '.join(BUILTIN_VALIDATORS)}")


def _syntax_issues(code: str, *, where: str) -> tuple[str, ...]:
    try:
        ast.parse(code)
    except SyntaxError as exc:
        column = f", column {exc.offset}" if exc.offset else ""
        return (f"Python syntax error at {where}line {exc.lineno}{column}: {exc.msg}",)
    except ValueError as exc:  # null bytes in the source
        return (f"Python source unreadable: {exc}",)
    return ()


def parse_judge_answer(text: str, *, threshold: float, judge: str) -> ValidationResult:
    """Reads a judge's ``{"pass": ..., "issues": [...], "confidence": ...}`` (bare, fenced or in prose).

    An answer without a readable pass/fail is a failed check that escalates.
    """
    checked_by = (f"judge:{judge}",)
    try:
        data = find_json(text, want_object=True)
    except ValueError:
        return ValidationResult(False, (UNREADABLE_JUDGE,), 0.0, True, checked_by)
    assert isinstance(data, dict)
    passed = _as_bool(data.get("pass", data.get("passed")))
    if passed is None:
        return ValidationResult(False, (UNREADABLE_JUDGE,), 0.0, True, checked_by)
    issues = _as_issues(data.get("issues"))
    if not passed and not issues:
        issues = ("the judge rejected the output without naming an issue",)
    confidence = _as_confidence(data.get("confidence"))
    return ValidationResult(
        passed, issues[:MAX_ISSUES], confidence, not passed or confidence < threshold, checked_by
    )


def _as_bool(value: object) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false", "pass", "fail"):
        return value.strip().lower() in ("true", "pass")
    return None


def _as_issues(value: object) -> tuple[str, ...]:
    items = [value] if isinstance(value, str) else value if isinstance(value, list) else []
    return tuple(text for item in items if (text := str(item).strip()))


def _as_confidence(value: object) -> float:
    if isinstance(value, str):
        try:
            value = float(value.strip().rstrip("%")) / (100 if value.strip().endswith("%") else 1)
        except ValueError:
            return MISSING_CONFIDENCE
    if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
        return MISSING_CONFIDENCE
    # Judges sometimes answer in percent.
    number = value / 100 if 1 < value <= 100 else float(value)
    return min(1.0, max(0.0, number))


def check_tool_calls(tools: Sequence[ToolDefinition], calls: Sequence[ToolCall]) -> ValidationResult:
    """The verdict on an answer's tool calls: each names an offered tool and its arguments are a JSON
    object valid under that tool's JSON schema. A failure is certain (confidence 1.0) and escalates."""
    issues = tool_call_issues(tools, calls)
    return ValidationResult(not issues, issues[:MAX_ISSUES], 1.0, bool(issues), (TOOL_ARGUMENTS_SOURCE,))


def run_validators(output: str, validators: Sequence[Validator]) -> ValidationResult | None:
    """The deterministic verdict: a certain failure with the first issues, or None when all pass."""
    issues = [issue for v in validators for issue in v.check(output)]
    if not issues:
        return None
    names = tuple(v.name for v in validators)
    return ValidationResult(False, tuple(issues[:MAX_ISSUES]), 1.0, True, names)


async def validate(
    task: str,
    output: str,
    *,
    judge: ChatModel | None,
    validators: Sequence[Validator] = (),
    threshold: float = 0.7,
    always_judge: bool = False,
    base: ChatRequest | None = None,
) -> ValidationResult:
    """Checks ``output`` against ``task``: deterministic validators first, then the judge.

    A validator failure is final (confidence 1.0) and the judge is not called unless ``always_judge``.
    ``base`` lends the judge call its request id, deadline and cost cap. Judge errors propagate.
    """
    result, _ = await check_output(
        task,
        output,
        judge=judge,
        validators=validators,
        threshold=threshold,
        always_judge=always_judge,
        base=base,
    )
    return result


async def check_output(
    task: str,
    output: str,
    *,
    judge: ChatModel | None,
    validators: Sequence[Validator] = (),
    threshold: float = 0.7,
    always_judge: bool = False,
    base: ChatRequest | None = None,
) -> tuple[ValidationResult, Completion | None]:
    """``validate``, also returning the judge's completion (None when the judge was not called)."""
    if judge is None and not validators:
        raise ConfigError("validation needs a judge model or at least one validator")
    deterministic = run_validators(output, validators)
    if judge is None or (deterministic is not None and not always_judge):
        names = tuple(v.name for v in validators)
        return deterministic or ValidationResult(True, (), 1.0, False, names), None
    request = auxiliary_request(
        base or ChatRequest(messages=()),
        system=JUDGE_INSTRUCTIONS,
        user=f"Task:\n{task}\n\nOutput to check:\n{output}",
        json_answer=True,
    )
    completion = await judge.complete(request.with_options(temperature=0.0))
    verdict = parse_judge_answer(completion.text, threshold=threshold, judge=judge.name)
    if deterministic is None:
        names = tuple(v.name for v in validators)
        return replace(verdict, checked_by=names + verdict.checked_by), completion
    combined = ValidationResult(
        False,
        (deterministic.issues + verdict.issues)[:MAX_ISSUES],
        1.0,
        True,
        deterministic.checked_by + verdict.checked_by,
    )
    return combined, completion
