"""JSON Schema to the Gemini API's ``Schema`` (a subset of the OpenAPI 3.0 schema object).

Owns converting a caller's JSON schema (tool parameters, a JSON-schema answer) into what
``functionDeclarations[].parameters`` and ``generationConfig.responseSchema`` accept, and refusing,
naming the keyword, what that subset cannot express. Reference: https://ai.google.dev/api/caching#Schema

Conversions: ``type`` upper-cased (``STRING``, ``OBJECT``...); ``"type": [T, "null"]`` becomes ``T`` with
``nullable``; ``const`` a one-value ``enum``; ``oneOf`` ``anyOf``; local ``$ref``s into ``$defs`` or
``definitions`` are inlined (recursive ones are refused); ``additionalProperties: false`` is dropped (the
model only writes the listed properties); annotations without effect (``$schema``, ``$id``, ``$comment``,
``examples``, ``strict``) are dropped. Refused: ``enum`` values that are not strings, other unions of
types, ``allOf``, ``not``, ``if``/``then``, ``patternProperties``, ``additionalProperties`` with a schema,
tuples and every keyword outside the subset, so nothing is loosened silently.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NoReturn

from model_orchestrator.core.errors import CapabilityNotSupportedError

_KEPT = frozenset(
    {
        "format",
        "title",
        "description",
        "nullable",
        "maxItems",
        "minItems",
        "minimum",
        "maximum",
        "minLength",
        "maxLength",
        "pattern",
        "minProperties",
        "maxProperties",
        "propertyOrdering",
        "default",
        "example",
    }
)
_DROPPED = frozenset({"$schema", "$id", "$comment", "$defs", "definitions", "examples", "strict"})
_TYPES = frozenset({"string", "number", "integer", "boolean", "array", "object"})
_MAX_DEPTH = 64


def to_gemini_schema(schema: Mapping[str, object], *, capability: str, what: str) -> dict[str, Any]:
    """The Gemini ``Schema`` for ``schema``; ``CapabilityNotSupportedError`` (naming ``capability``
    and ``what`` the schema belongs to) for a keyword the subset cannot express."""
    return _Converter(schema, capability, what).convert(schema, ())


class _Converter:
    def __init__(self, root: Mapping[str, object], capability: str, what: str) -> None:
        self._definitions = {
            **_mapping(root.get("definitions")),
            **_mapping(root.get("$defs")),
        }
        self._capability = capability
        self._what = what

    def convert(self, node: Mapping[str, object], refs: tuple[str, ...]) -> dict[str, Any]:
        if len(refs) > _MAX_DEPTH:
            self._refuse("nesting deeper than 64 levels")
        ref = node.get("$ref")
        if isinstance(ref, str):
            return self.convert(self._resolve(ref, refs), (*refs, ref))
        out: dict[str, Any] = {}
        for key, value in node.items():
            if key in _DROPPED or (key == "additionalProperties" and value is False):
                continue
            out.update(self._keyword(key, value, refs))
        return out

    def _keyword(self, key: str, value: object, refs: tuple[str, ...]) -> dict[str, Any]:
        if key in _KEPT:
            return {key: value}
        if key == "type":
            return self._type(value)
        if key in ("enum", "const"):
            return {"enum": self._enum(value if key == "enum" else [value])}
        if key == "properties":
            return {"properties": {name: self.convert(_sub(s), refs) for name, s in _mapping(value).items()}}
        if key == "required":
            return {"required": list(value) if isinstance(value, list) else []}
        if key == "items" and isinstance(value, dict):
            return {"items": self.convert(value, refs)}
        if key in ("anyOf", "oneOf") and isinstance(value, list):
            return {"anyOf": [self.convert(_sub(v), refs) for v in value]}
        self._refuse(f"the keyword {key!r}")

    def _type(self, value: object) -> dict[str, Any]:
        names = value if isinstance(value, list) else [value]
        kinds = [n for n in names if n != "null"]
        if len(kinds) != 1 or kinds[0] not in _TYPES:
            self._refuse(f"the type {value!r}")
        converted: dict[str, Any] = {"type": str(kinds[0]).upper()}
        if len(names) > 1:
            converted["nullable"] = True
        return converted

    def _enum(self, values: object) -> list[str]:
        if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
            self._refuse("an enum of values that are not all strings")
        return [str(v) for v in values]

    def _resolve(self, ref: str, seen: tuple[str, ...]) -> Mapping[str, object]:
        if ref in seen:
            self._refuse(f"the recursive reference {ref!r}")
        for prefix in ("#/$defs/", "#/definitions/"):
            if ref.startswith(prefix) and ref[len(prefix) :] in self._definitions:
                return _sub(self._definitions[ref[len(prefix) :]])
        self._refuse(f"the reference {ref!r}, which is not a local definition")

    def _refuse(self, what: str) -> NoReturn:
        raise CapabilityNotSupportedError(
            f"Gemini's schema subset cannot express {what} in {self._what}; simplify the schema "
            "(see https://ai.google.dev/api/caching#Schema) or choose another model",
            capability=self._capability,
        )


def _mapping(value: object) -> Mapping[str, object]:
    return value if isinstance(value, dict) else {}


def _sub(value: object) -> Mapping[str, object]:
    return value if isinstance(value, dict) else {}
