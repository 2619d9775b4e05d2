"""Cascade scorers: how likely the cheap model's answer is wrong, from the answer itself (no model call).

Each scorer reads the prompt and the weak model's answer and returns a strong score in [0, 1] (higher:
escalate); the cascade strategy uses ``1 - score`` as its confidence (the composition root wires them in
as ``--scorer answer-check`` and friends). Checks:
- ``answer-format``: the answer has the shape the prompt asks for (a choice letter for multiple choice, a
  final number for a word problem, parseable JSON when JSON is asked for, something non-empty);
- ``hedging``: hedges, second thoughts and refusals ("I'm not sure", "let me recalculate", "cannot");
- ``arithmetic``: the worked arithmetic holds (``<<6*7=42>>`` calculator notes, ``6 x 7 = 42``), the
  final answer is the last result computed, and a count is not fractional or negative;
- ``answer-check``: all three, weighted, plus the share of a word problem's given numbers that the answer
  never mentions (an answer that ignores a quantity the question gives is often wrong); weights chosen
  on the dev split's word problems (docs/decisions.md);
- ``answer-check+learned``: ``answer-check`` plus the learned router's predicted gain for the prompt, so
  a hard prompt needs less evidence against its answer to escalate (``PromptAwareAnswerScorer``).
Self-consistency (agreement of two cheap samples) and token log-probabilities need live calls: they are
the cascade strategy's ``agreement`` and ``logprob`` scorers, not offline checks.
"""

from __future__ import annotations

import ast
import json
import math
import operator
import re
from collections.abc import Callable

_FINAL = re.compile(r"(?:####|answer is|answer:|\\boxed\{)\s*\$?\s*(-?[\d,]*\.?\d+)", re.IGNORECASE)
_CALCULATOR = re.compile(r"<<([^=<>]*)=([^<>]*)>>")
_EQUATION = re.compile(
    r"(?<![\d.,])(\d+(?:\.\d+)?)\s*([-+*/x\u00d7\u00f7])\s*(\d+(?:\.\d+)?)\s*=\s*(\d+(?:\.\d+)?)(?![\d.,])"
)
_CHOICE_PROMPT = re.compile(r"(?m)^\s*\(?[A-D][.)]\s")
_CHOICE_ANSWER = re.compile(r"(?<![A-Za-z])\(?([A-D])\)?(?![A-Za-z])")
_NUMBER = re.compile(r"(?<![\w.])-?\d[\d,]*(?:\.\d+)?")
_QUANTITY_QUESTION = re.compile(r"\bhow (many|much)\b", re.IGNORECASE)
_HEDGES = re.compile(
    r"\b(not sure|i think|might be|maybe|perhaps|possibly|unclear|i assume|assuming|approximately|"
    r"mistake|let me (re|try|check)\w*|re-?calculat\w*|actually|wait|cannot|can't|unable to|"
    r"doesn't make sense|not possible|incorrect)\b",
    re.IGNORECASE,
)
_OPERATORS: dict[type, Callable[[float, float], float]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.Pow: operator.pow,
}
ANSWER_CHECK_WEIGHTS = {
    "format": 3.0,
    "arithmetic": 2.0,
    "mismatch": 0.5,
    "odd_count": 1.0,
    "hedging": 0.5,
    "unused_givens": 1.5,
}


def format_problems(prompt: str, answer: str) -> float:
    """1 when the answer lacks the shape the prompt asks for, else 0."""
    text = answer.strip()
    if not text:
        return 1.0
    if "json" in prompt.lower():
        return 0.0 if _parses_as_json(text) else 1.0
    if len(_CHOICE_PROMPT.findall(prompt)) >= 2:
        return 0.0 if _CHOICE_ANSWER.search(text[:40]) else 1.0
    if _is_word_problem(prompt):
        return 0.0 if final_number(text) is not None else 1.0
    return 0.0


def hedging(answer: str) -> int:
    """How many hedges, second thoughts and refusals the answer contains."""
    return len(_HEDGES.findall(answer))


def arithmetic_errors(answer: str) -> int:
    """Worked steps whose arithmetic is wrong (calculator notes, else plain ``a op b = c`` steps)."""
    notes = _CALCULATOR.findall(answer)
    if notes:
        return sum(1 for expression, result in notes if _wrong(_evaluate(expression), _number(result)))
    return sum(
        1 for a, op, b, result in _EQUATION.findall(answer) if _wrong(_apply(a, op, b), _number(result))
    )


def unused_givens(prompt: str, answer: str) -> float:
    """For a word problem (not multiple choice), the share of the distinct numbers in the prompt that
    the answer never mentions; 0 for other prompts and for prompts without numbers."""
    if len(_CHOICE_PROMPT.findall(prompt)) >= 2 or not _is_word_problem(prompt):
        return 0.0
    given = _numbers(prompt)
    if not given:
        return 0.0
    mentioned = _numbers(answer)
    return sum(1 for value in given if value not in mentioned) / len(given)


def final_number(answer: str) -> float | None:
    """The stated final answer (``#### 42``, "the answer is 42", ``\\boxed{42}``), if any."""
    found = _FINAL.findall(answer)
    return _number(found[-1]) if found else None


def answer_check_points(prompt: str, answer: str) -> dict[str, float]:
    """Each check's raw points (see ``ANSWER_CHECK_WEIGHTS``)."""
    final = final_number(answer)
    notes = _CALCULATOR.findall(answer)
    last = _number(notes[-1][1]) if notes else None
    return {
        "format": format_problems(prompt, answer),
        "arithmetic": float(arithmetic_errors(answer)),
        "mismatch": 0.0 if final is not None and last is not None and abs(final - last) < 1e-6 else 1.0,
        "odd_count": float(
            final is not None
            and _QUANTITY_QUESTION.search(prompt) is not None
            and (final < 0 or final % 1 != 0)
        ),
        "hedging": float(hedging(answer)),
        "unused_givens": unused_givens(prompt, answer),
    }


class AnswerScorer:
    """One of the checks above as a scorer: ``strong_score(prompt, answer)`` in [0, 1]."""

    def __init__(self, name: str) -> None:
        if name not in ANSWER_SCORERS:
            raise ValueError(f"unknown answer scorer {name!r}; expected one of: {', '.join(ANSWER_SCORERS)}")
        self.name = name
        self._points = ANSWER_SCORERS[name]

    def strong_score(self, prompt: str, answer: str) -> float:
        """Squashed points: 0 when nothing looks wrong, approaching 1 the more does."""
        return 1.0 - math.exp(-self._points(prompt, answer) / 2.0)


class PromptAwareAnswerScorer:
    """``answer-check`` points plus what a prompt router predicts the strong model gains on the prompt."""

    name = "answer-check+learned"

    def __init__(self, gain: Callable[[str], float]) -> None:
        self._gain = gain

    def strong_score(self, prompt: str, answer: str) -> float:
        """A logistic of the sum, centred at 1 point: a clean answer to an ordinary prompt scores ~0.27."""
        raw = _answer_check(prompt, answer) + self._gain(prompt)
        return 1.0 / (1.0 + math.exp(-(raw - 1.0))) if raw > -60 else 0.0


def _answer_check(prompt: str, answer: str) -> float:
    points = answer_check_points(prompt, answer)
    return sum(ANSWER_CHECK_WEIGHTS[k] * v for k, v in points.items())


ANSWER_SCORERS: dict[str, Callable[[str, str], float]] = {
    "answer-check": _answer_check,
    "answer-format": format_problems,
    "hedging": lambda _prompt, answer: float(hedging(answer)),
    "arithmetic": lambda _prompt, answer: float(arithmetic_errors(answer)),
}


def _is_word_problem(prompt: str) -> bool:
    return bool(_QUANTITY_QUESTION.search(prompt)) or (
        sum(c.isdigit() for c in prompt) >= 2 and prompt.rstrip().endswith("?")
    )


def _parses_as_json(text: str) -> bool:
    body = text.strip().removeprefix("```json").removeprefix("```").removesuffix("```").strip()
    try:
        json.loads(body)
    except ValueError:
        return False
    return True


def _numbers(text: str) -> set[float]:
    """The distinct numbers written in digits in ``text`` (``1,200`` is 1200)."""
    return {value for found in _NUMBER.findall(text) if (value := _number(found)) is not None}


def _number(text: str) -> float | None:
    try:
        return float(text.replace(",", "").replace("$", "").strip().rstrip("."))
    except ValueError:
        return None


def _wrong(value: float | None, stated: float | None) -> bool:
    if value is None or stated is None:
        return False
    return abs(value - stated) > 0.01 * max(1.0, abs(value)) and abs(round(value, 2) - stated) > 1e-6


def _apply(a: str, op: str, b: str) -> float | None:
    symbol = {"x": "*", "\u00d7": "*", "\u00f7": "/"}.get(op, op)
    return _evaluate(f"{a}{symbol}{b}")


def _evaluate(expression: str) -> float | None:
    """The value of a plain arithmetic expression (numbers, + - * / **, brackets), else None."""
    cleaned = expression.replace(",", "").replace("$", "").replace("x", "*").replace("^", "**").strip()
    try:
        return _node_value(ast.parse(cleaned, mode="eval").body)
    except (SyntaxError, ValueError, ZeroDivisionError, OverflowError, RecursionError):
        return None


def _node_value(node: ast.AST) -> float | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, int | float):
        return float(node.value)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        inner = _node_value(node.operand)
        return None if inner is None else -inner
    if isinstance(node, ast.BinOp) and type(node.op) in _OPERATORS:
        left, right = _node_value(node.left), _node_value(node.right)
        if left is None or right is None or (isinstance(node.op, ast.Pow) and abs(right) > 64):
            return None
        return _OPERATORS[type(node.op)](left, right)
    return None
