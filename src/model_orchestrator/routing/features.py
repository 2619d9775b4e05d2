"""What the learned router reads in a prompt: hashed word n-grams, a few counts, and the task family.

Owns the one featurisation shared by training (``training.py``) and scoring (``learned.py``), so the two
can never drift apart, and the normalisation before it: case, runs of whitespace and trailing
punctuation never change what the router sees ("What is 2+2" and "what is 2+2 ?" are one prompt).
Pure Python on purpose: for one prompt, hashing a few hundred n-grams with ``zlib.crc32`` (stable across
runs and machines, unlike ``hash``) is faster than any array library. It does not learn or score anything.
"""

from __future__ import annotations

import itertools
import math
import re
import zlib
from collections.abc import Sequence
from dataclasses import dataclass

_TOKEN = re.compile(r"[a-z]+|\d+|[^\sa-z\d]")
_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")
_MATH = re.compile(r"[-+*/=^%$<>|]")
_OPTION_LINE = re.compile(r"(?im)^\s*\(?[a-j][.)]\s")
_SPACES = re.compile(r"[^\S\n]+")
_BLANK_LINES = re.compile(r"\s*\n\s*")
_TRAILING = re.compile(r"[\s.?!;:,]+$")
_ROMAN_CHOICE = re.compile(r"\b(?:i|ii|iii|iv)\b\s*(?:,|and|only)")
_SENTENCE_END = re.compile(r"[.!?](?:\s|$)")
_DIGIT = re.compile(r"\d")
_FRACTION_WORDS = frozenset(
    {"half", "halves", "third", "thirds", "quarter", "twice", "double", "triple", "percent"}
)
_RATE_WORDS = frozenset({"each", "per", "every", "times", "rate", "average"})
_NEGATION_WORDS = frozenset({"not", "except", "false", "incorrect", "least", "never", "cannot"})
_CODE_WORDS = frozenset(
    {"def", "return", "class", "function", "import", "print", "var", "const", "code", "program", "sql"}
)
_CONDITION_WORDS = frozenset({"if", "then", "after", "before", "until", "while", "because", "unless"})
_LONG_WORD = 9
_GOLDEN = 0x9E3779B97F4A7C15
_MASK64 = (1 << 64) - 1

# Names of the dense features, in order (stored in the artifact so a stale file is detected).
DENSE_NAMES = (
    "log_chars",
    "log_words",
    "log_numbers",
    "log_digits",
    "log_questions",
    "log_sentences",
    "log_distinct_words",
    "log_lines",
    "log_math_symbols",
    "log_option_lines",
    "log_largest_number",
    "log_distinct_numbers",
    "log_fractions",
    "log_rate_words",
    "log_negations",
    "log_code_words",
    "log_conditions",
    "log_roman_choices",
    "log_stem_chars",
    "log_long_words",
    "mean_word_length",
    "distinct_word_share",
)

# The counts that say how hard a prompt is whatever its task family (length, numbers, reasoning and
# negation cues; not the answer format, which identifies the family): the generic router's inputs.
GENERIC_NAMES = (
    "log_chars",
    "log_words",
    "log_numbers",
    "log_distinct_numbers",
    "log_math_symbols",
    "log_sentences",
    "log_rate_words",
    "log_negations",
    "log_code_words",
    "log_conditions",
    "log_roman_choices",
    "log_stem_chars",
    "mean_word_length",
    "log_distinct_words",
    "log_largest_number",
    "log_long_words",
    "distinct_word_share",
)


@dataclass(frozen=True, slots=True)
class PromptFeatures:
    """A prompt as the router sees it: its n-grams' hashes (each n-gram once), their common weight, the
    dense counts, and the unigram hashes used to recognise the task family."""

    hashes: tuple[int, ...]
    key_weight: float
    dense: tuple[float, ...]
    unigram_hashes: tuple[int, ...]


def tokens(text: str) -> list[str]:
    """Lower-cased words, numbers and single punctuation marks."""
    return _TOKEN.findall(text.lower())


def key_hash(key: str) -> int:
    """The 32-bit hash of a feature key (``crc32``: the same on every run and machine, unlike ``hash``)."""
    return zlib.crc32(key.encode("utf-8"))


def normalise(text: str) -> str:
    """``text`` as the router reads it: lower case, runs of spaces as one, blank lines and the spaces
    around line breaks dropped, trailing punctuation and whitespace removed."""
    text = _BLANK_LINES.sub("\n", _SPACES.sub(" ", text.lower())).strip()
    return _TRAILING.sub("", text)


def featurise(text: str) -> PromptFeatures:
    """Unigrams and bigrams (each once, weighted 1/sqrt(count) so long prompts do not dominate),
    the dense counts, and the unigrams used to recognise the task family, of the normalised text."""
    text = normalise(text)
    words = tokens(text)
    unigrams = [key_hash("u:" + w) for w in dict.fromkeys(words)]
    bigrams = [key_hash(f"b:{a} {b}") for a, b in dict.fromkeys(itertools.pairwise(words))]
    hashes = tuple(unigrams + bigrams)
    weight = 1.0 / math.sqrt(len(hashes)) if hashes else 0.0
    return PromptFeatures(hashes, weight, dense_features(text, words), tuple(unigrams))


def dense_features(text: str, words: Sequence[str]) -> tuple[float, ...]:
    """Length and structure counts (log1p), in ``DENSE_NAMES`` order; ``words`` are ``tokens(text)``.

    Word lists are counted on the tokens rather than with more regular expressions: on long prompts a
    case-insensitive alternation costs more than everything else together."""
    pieces = text.split()
    numbers = _NUMBER.findall(text)
    option = _OPTION_LINE.search(text)
    alphabetic = [w for w in words if w.isalpha()]
    distinct = {p.lower() for p in pieces}
    counts = (
        len(text),
        len(pieces),
        len(numbers),
        len(text) - len(_DIGIT.sub("", text)),
        text.count("?"),
        len(_SENTENCE_END.findall(text)),
        len(distinct),
        text.count("\n"),
        len(_MATH.findall(text)),
        len(_OPTION_LINE.findall(text)),
        max((_value(n) for n in numbers), default=0.0),
        len(set(numbers)),
        sum("." in n for n in numbers) + text.count("%") + text.count("/") + _count(words, _FRACTION_WORDS),
        _count(words, _RATE_WORDS),
        _count(words, _NEGATION_WORDS),
        _count(words, _CODE_WORDS),
        _count(words, _CONDITION_WORDS),
        len(_ROMAN_CHOICE.findall(text)),
        option.start() if option else len(text),
        sum(1 for w in alphabetic if len(w) >= _LONG_WORD),
    )
    mean_length = sum(map(len, alphabetic)) / len(alphabetic) if alphabetic else 0.0
    share = len(distinct) / (len(pieces) + 1)
    return (*(math.log1p(c) for c in counts), math.log1p(mean_length), share)


def _count(words: Sequence[str], wanted: frozenset[str]) -> int:
    return sum(1 for w in words if w in wanted)


def _value(number: str) -> float:
    """A number's value, capped at 1e16 (and 0 for forms like ``1.2.3``, which are not numbers)."""
    try:
        return min(float(number.replace(",", "")), 1e16)
    except ValueError:
        return 0.0


def family_salt(family: str) -> int:
    """The number that turns a shared hash into the hash of the key's copy for ``family``."""
    return key_hash("family:" + family)


def family_bucket(hashed: int, salt: int, size: int) -> int:
    """The bucket of a key's family-specific copy (shared + per-family weights: domain adaptation).

    Mixes with a 64-bit multiply and keeps the high half, so the copy does not collide wherever the
    shared key does."""
    return ((((hashed ^ salt) * _GOLDEN) & _MASK64) >> 32) % size


def fingerprint(text: str) -> int:
    """A 32-bit fingerprint of a prompt (whitespace- and case-insensitive), to detect training prompts."""
    return zlib.crc32(" ".join(text.lower().split()).encode("utf-8"))


def nearest_family(unigram_hashes: Sequence[int], centroids: Sequence[Sequence[float]], size: int) -> int:
    """Index of the family centroid closest (by cosine) to the prompt's hashed unigrams; 0 with none.

    Centroids are stored normalised, so the dot product ranks like the cosine."""
    if len(centroids) <= 1 or not unigram_hashes:
        return 0
    buckets = [h % size for h in unigram_hashes]
    best, best_index = -math.inf, 0
    for index, centroid in enumerate(centroids):
        similarity = sum(centroid[b] for b in buckets)
        if similarity > best:
            best, best_index = similarity, index
    return best_index
