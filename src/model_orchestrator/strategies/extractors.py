"""Answer extractors: pure functions from a model's free text to the short answer a vote compares.

Owns reading one answer out of prose (a multiple-choice letter, a number, normalised short text, a JSON
field, a regex group) and naming extractors in config and on the command line (``by_name``). An extractor
returns None when the text holds no answer of its kind; a vote counts that as an abstention. Extractors
never call models and never decide anything.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal, localcontext
from fractions import Fraction

from model_orchestrator.core.errors import ConfigError
from model_orchestrator.strategies._prompts import find_json

Extractor = Callable[[str], str | None]

# Decimal places kept when a fraction does not terminate (1/3), so equal values print equally.
_DECIMAL_PLACES = 12
_DASHES = str.maketrans({"\u2212": "-", "\u2013": "-"})
_ARTICLES = frozenset({"a", "an", "the"})
_SPEC_HELP = "use choice, choice:LETTERS, number, text, json:FIELD.PATH or regex:PATTERN"


@dataclass(frozen=True, slots=True)
class ChoiceLetter:
    """The multiple-choice letter a text picks: ``"The answer is (C)"``, ``"C) Canberra"``, ``"**C**"``
    and ``"Answer: c"`` all give ``"C"``. Letters inside words and the article "A" in prose do not count.

    Patterns are tried from most to least explicit; an explicit "answer is X" may repeat (the last one is
    the model's conclusion), a weaker pattern counts only when it names a single letter.
    """

    letters: str = "ABCD"
    _explicit: re.Pattern[str] = field(init=False, repr=False, compare=False)
    _weaker: tuple[re.Pattern[str], ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.letters.isalpha() or not self.letters.isupper():
            raise ConfigError(f"choice letters must be upper-case letters, got {self.letters!r}")
        explicit, *weaker = _choice_patterns(self.letters)
        object.__setattr__(self, "_explicit", explicit)
        object.__setattr__(self, "_weaker", tuple(weaker))

    @property
    def spec(self) -> str:
        """The ``by_name`` spelling of this extractor."""
        return "choice" if self.letters == "ABCD" else f"choice:{self.letters}"

    def __call__(self, text: str) -> str | None:
        picks = [m.group("l").upper() for m in self._explicit.finditer(text)]
        if picks:
            return picks[-1]
        for pattern in self._weaker:
            found = {m.group("l").upper() for m in pattern.finditer(text)}
            if len(found) == 1:
                return found.pop()
        return None


def _choice_patterns(letters: str) -> list[re.Pattern[str]]:
    upper, lower = f"[{letters}]", f"[{letters.lower()}]"
    # A lower-case letter must end its clause ("answer: c."), so "the answer is a city" is not "A".
    letter = rf"(?P<l>{upper}(?!\w)|{lower}(?=\s*(?:$|[)\].,;:!*_])))"
    # The articles "A" and "I" in prose ("A city", "I think") are not picks; other letters always are.
    prose = "".join(ch for ch in letters if ch not in "AI")
    loose = "|".join(
        [*(rf"{ch}(?!\s+[a-z])" for ch in letters if ch in "AI"), *([f"[{prose}]"] if prose else [])]
    )
    return [
        re.compile(
            r"(?i:\banswer|\b(?:correct|right|best)\s+(?:option|choice))\b"
            r"(?:\s+(?i:is|would\s+be|should\s+be))?(?:\s+(?i:option))?"
            rf"\s*[*_]*\s*[:=\-]?\s*[(\[*_\s]*{letter}",
            re.MULTILINE,
        ),
        re.compile(rf"^\W*(?P<l>{upper}|{lower})\W*$"),
        re.compile(rf"^\s*[(\[*_]*(?P<l>{upper})(?:[)\].:]|\*\*)", re.MULTILINE),
        re.compile(rf"(?:\(|\[|\*\*)(?P<l>{upper})(?:\)|\]|\*\*)"),
        re.compile(rf"(?<![\w'\u2019])(?P<l>{loose})(?![\w'\u2019])"),
    ]


_NUMBER = re.compile(
    r"(?<![\w.])(?P<sign>-\s?)?\$?\s?"
    r"(?P<num>\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?|\.\d+)"
    r"(?:\s*/\s*(?P<den>\d+)(?![\d.]))?"
)


@dataclass(frozen=True, slots=True)
class Number:
    """The last number in a text, normalised: ``"$1,234.50"`` -> ``"1234.5"``, ``"3/4"`` -> ``"0.75"``,
    ``"4.0"`` -> ``"4"``, a Unicode minus is a minus. A dash between two numbers is a range, not a sign."""

    spec: str = "number"

    def __call__(self, text: str) -> str | None:
        for match in reversed(list(_NUMBER.finditer(text.translate(_DASHES)))):
            value = _value(match)
            if value is not None:
                return format_number(value)
        return None


def _value(match: re.Match[str]) -> Fraction | None:
    value = Fraction(match.group("num").replace(",", ""))
    if match.group("den") is not None:
        denominator = int(match.group("den"))
        if denominator == 0:
            return None
        value /= denominator
    return -value if match.group("sign") else value


def format_number(value: Fraction) -> str:
    """A canonical spelling of ``value``: integers without a decimal point, others to 12 places at most."""
    if value.denominator == 1:
        return str(value.numerator)
    with localcontext() as context:
        context.prec = 60
        decimal = round(Decimal(value.numerator) / Decimal(value.denominator), _DECIMAL_PLACES)
    return "0" if decimal == 0 else format(decimal.normalize(), "f")


@dataclass(frozen=True, slots=True)
class ShortText:
    """Normalised short text (as in SQuAD scoring): lower-case, no punctuation, no articles, single spaces."""

    spec: str = "text"

    def __call__(self, text: str) -> str | None:
        folded = unicodedata.normalize("NFKC", text).lower()
        kept = "".join(ch for ch in folded if not unicodedata.category(ch).startswith("P"))
        words = [word for word in kept.split() if word not in _ARTICLES]
        return " ".join(words) or None


@dataclass(frozen=True, slots=True)
class JsonField:
    """A field of the JSON in a text (whole answer, fenced block or embedded), by dotted path.

    ``"answer"``, ``"result.value"``, ``"items.0.name"`` (a number indexes a list). Numbers are normalised
    like ``Number``; strings are stripped; objects and arrays are rendered as compact sorted JSON.
    """

    path: str

    def __post_init__(self) -> None:
        if not self.path or any(not part for part in self.path.split(".")):
            raise ConfigError(f"a JSON field path looks like 'answer' or 'result.value', got {self.path!r}")

    @property
    def spec(self) -> str:
        """The ``by_name`` spelling of this extractor."""
        return f"json:{self.path}"

    def __call__(self, text: str) -> str | None:
        try:
            value: object = find_json(text)
        except ValueError:
            return None
        for part in self.path.split("."):
            value = _child(value, part)
        return _render(value)


def _child(value: object, part: str) -> object:
    if isinstance(value, dict):
        return value.get(part)
    if isinstance(value, list) and part.lstrip("-").isdigit() and -len(value) <= int(part) < len(value):
        return value[int(part)]
    return None


def _render(value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return format_number(Fraction(str(value)))
    if isinstance(value, str):
        return value.strip() or None
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


@dataclass(frozen=True, slots=True)
class Regex:
    """Group ``group`` of the LAST match of ``pattern`` (models conclude at the end), stripped.

    A pattern without groups yields the whole match. Use inline flags such as ``(?i)`` for case.
    """

    pattern: str
    group: int | str = 1
    _compiled: re.Pattern[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        try:
            compiled = re.compile(self.pattern)
        except re.error as exc:
            raise ConfigError(f"invalid answer regex {self.pattern!r}: {exc}") from exc
        group = self.group if compiled.groups or self.group != 1 else 0
        if isinstance(group, int) and group > compiled.groups:
            raise ConfigError(f"answer regex {self.pattern!r} has no group {group}")
        if isinstance(group, str) and group not in compiled.groupindex:
            raise ConfigError(f"answer regex {self.pattern!r} has no group named {group!r}")
        object.__setattr__(self, "_compiled", compiled)
        object.__setattr__(self, "group", group)

    @property
    def spec(self) -> str:
        """The ``by_name`` spelling of this extractor."""
        return f"regex:{self.pattern}"

    def __call__(self, text: str) -> str | None:
        matches = list(self._compiled.finditer(text))
        if not matches:
            return None
        found = matches[-1].group(self.group)
        return found.strip() or None if found is not None else None


def choice_letter(letters: str = "ABCD") -> ChoiceLetter:
    """Extracts the multiple-choice letter (one of ``letters``), upper-case."""
    return ChoiceLetter(letters.upper())


def number() -> Number:
    """Extracts the last number, normalised."""
    return Number()


def short_text() -> ShortText:
    """Normalises the whole answer as short text."""
    return ShortText()


def json_field(path: str) -> JsonField:
    """Extracts the JSON field at dotted ``path``."""
    return JsonField(path)


def regex(pattern: str, group: int | str = 1) -> Regex:
    """Extracts ``group`` of the last match of ``pattern``."""
    return Regex(pattern, group)


def by_name(spec: str) -> Extractor:
    """The extractor a config or CLI spelling names: ``choice``, ``choice:ABCDE``, ``number``, ``text``,
    ``json:field.path`` or ``regex:PATTERN``. Unknown spellings raise ``ConfigError``."""
    kind, _, argument = spec.partition(":")
    kind = kind.strip().lower()
    if kind in ("choice", "letter"):
        return choice_letter(argument.strip() or "ABCD")
    if kind == "number" and not argument:
        return number()
    if kind == "text" and not argument:
        return short_text()
    if kind == "json" and argument:
        return json_field(argument.strip())
    if kind == "regex" and argument:
        return regex(argument)
    raise ConfigError(f"unknown answer extractor {spec!r}; {_SPEC_HELP}")


def describe(extractor: Extractor) -> str:
    """How an extractor is named in explanations: its ``by_name`` spelling, else its function name."""
    spec = getattr(extractor, "spec", None)
    if isinstance(spec, str):
        return spec
    return str(getattr(extractor, "__name__", type(extractor).__name__))
