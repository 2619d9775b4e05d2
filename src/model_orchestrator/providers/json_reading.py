"""Reading upstream JSON: one fast parser, and small readers for the few fields an adapter needs.

Owns parsing bodies and stream events (pydantic-core's ``from_json`` into plain dicts) and reading a
field with the type it should have. Every wire format's ``convert`` reads answers through it; none
validates a whole payload into models, because adapters read a handful of fields of each chunk and
validating the rest (ids, timestamps, fingerprints, token bytes) cost more than the work itself
(``benchmarks/parsing.py``: 2.5-4x). ``from_json`` is 2-3x faster than ``json.loads`` here; orjson is
as fast on chunks and small bodies and up to 1.8x faster only on large ones (a body with logprobs),
about 1 % of a streamed call: not worth a dependency (docs/decisions.md, "Decoding upstream JSON").
Does not decide what a malformed payload means (each ``convert`` maps it to its error) and does not
encode requests.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic_core import from_json

_NO_FIELDS: Mapping[str, Any] = {}


class MalformedError(ValueError):
    """A payload, or a field an adapter reads, that does not have the shape its wire format promises."""


def parse(raw: str | bytes) -> object:
    """The value in ``raw``; ``MalformedError`` when it is not JSON (or not UTF-8)."""
    try:
        return from_json(raw)
    except ValueError as exc:
        raise MalformedError(f"not JSON: {exc}") from exc


def parse_object(raw: str | bytes) -> dict[str, Any] | None:
    """The JSON object in ``raw``; None when it is not JSON or not an object."""
    try:
        data = from_json(raw)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def object_of(value: object) -> Mapping[str, Any]:
    """``value`` when it is an object, else an empty one (for optional parts read leniently)."""
    return value if isinstance(value, dict) else _NO_FIELDS


def objects_of(value: object) -> list[Mapping[str, Any]]:
    """The objects in ``value`` when it is a list (anything else in it skipped), else none."""
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def int_of(value: object) -> int:
    """``value`` when it is an integer (not a bool), else 0."""
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def float_of(value: object) -> float:
    """``value`` as a float when it is a number (not a bool), else 0.0."""
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0.0


def text_or_none(value: object) -> str | None:
    """``value`` when it is a non-empty string, else None."""
    return value if isinstance(value, str) and value else None


def strict_object(value: object, what: str) -> Mapping[str, Any]:
    """``value`` when it is an object, an empty one for null; ``MalformedError`` for anything else."""
    if isinstance(value, dict):
        return value
    if value is None:
        return _NO_FIELDS
    raise MalformedError(f"{what} is not an object")


def strict_list(value: object, what: str) -> list[Any]:
    """``value`` when it is a list, an empty one for null; ``MalformedError`` for anything else."""
    if isinstance(value, list):
        return value
    if value is None:
        return []
    raise MalformedError(f"{what} is not a list")


def strict_text(value: object, what: str) -> str | None:
    """``value`` when it is a string, None for null; ``MalformedError`` for anything else."""
    if value is None or isinstance(value, str):
        return value
    raise MalformedError(f"{what} is not a string")


def strict_int(value: object, what: str) -> int | None:
    """``value`` when it is an integer (a whole float counts: some servers write 12.0), None for null;
    ``MalformedError`` for anything else."""
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    raise MalformedError(f"{what} is not an integer")
