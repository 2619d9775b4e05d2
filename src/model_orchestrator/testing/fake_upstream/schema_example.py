"""A small JSON value matching a JSON schema, for fakes that must answer a structured-output request.

Owns one pure function: the first example, default, const or enum value where the schema gives one, else
the simplest value of the schema's type, with every required (and every listed) object property filled
in. It is no validator and covers the schema keywords structured outputs use (type, properties, items,
enum, const, anyOf/oneOf, ``$ref`` into ``$defs``), which is all a fake upstream needs.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

_SIMPLE: dict[str, Any] = {"string": "text", "integer": 1, "number": 1.5, "boolean": True, "null": None}
_MAX_DEPTH = 12


def example_for(schema: Mapping[str, Any], root: Mapping[str, Any] | None = None, depth: int = 0) -> Any:
    """A JSON value that ``schema`` accepts (``root`` resolves ``#/$defs/...`` references)."""
    root = schema if root is None else root
    if depth > _MAX_DEPTH:
        return None
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/"):
        return example_for(_resolve(root, ref), root, depth + 1)
    given = _given_value(schema)
    if given is not _NOTHING:
        return given
    options = schema.get("anyOf") or schema.get("oneOf")
    if isinstance(options, list) and options:
        return example_for(options[0], root, depth + 1)
    kind = schema.get("type", "object" if "properties" in schema else "string")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object":
        properties = schema.get("properties") or {}
        return {name: example_for(sub, root, depth + 1) for name, sub in properties.items()}
    if kind == "array":
        items = schema.get("items")
        return [example_for(items, root, depth + 1)] if isinstance(items, Mapping) else []
    return _SIMPLE.get(kind, "text")


_NOTHING = object()


def _given_value(schema: Mapping[str, Any]) -> Any:
    """The value a schema spells out (const, default, first example or enum member), else ``_NOTHING``."""
    for given in ("const", "default"):
        if given in schema:
            return schema[given]
    for listed in ("examples", "enum"):
        values = schema.get(listed)
        if isinstance(values, list) and values:
            return values[0]
    return _NOTHING


def _resolve(root: Mapping[str, Any], ref: str) -> Mapping[str, Any]:
    target: Any = root
    for key in ref[2:].split("/"):
        target = target.get(key, {}) if isinstance(target, Mapping) else {}
    return target if isinstance(target, Mapping) else {}
