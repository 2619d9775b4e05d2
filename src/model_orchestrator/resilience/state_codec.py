"""JSON for state values, so a shared store can keep them: a registry of the state types by name.

A value is ``None``, a number, a string, a bool, a tuple of values, or a registered frozen dataclass whose
fields are values. A dataclass is written as a JSON object with its type name under ``"__t"`` and its
fields by name; tuples are JSON arrays. The same layout is read and written by the Redis store's Lua
scripts (see ``redis_state``), which is why it is plain and flat.

Lua's cjson cannot tell an empty array from an empty object, so an object without ``"__t"`` reads back
as an empty tuple (no state value holds a mapping).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable
from typing import Any

TYPE_FIELD = "__t"


class StateCodec:
    """Encodes and decodes the registered state types (by their class name, which must be unique)."""

    def __init__(self, types: Iterable[type[Any]]) -> None:
        self._types: dict[str, type[Any]] = {}
        self._fields: dict[type[Any], tuple[str, ...]] = {}
        for kind in types:
            if not dataclasses.is_dataclass(kind):
                raise TypeError(f"{kind.__name__} is not a dataclass; only dataclasses can be state")
            self._types[kind.__name__] = kind
            self._fields[kind] = tuple(f.name for f in dataclasses.fields(kind))

    def encode(self, value: object) -> str:
        """``value`` as compact JSON (``TypeError`` for an unregistered type)."""
        return json.dumps(self._plain(value), separators=(",", ":"), allow_nan=False)

    def decode(self, text: str | bytes) -> object:
        """The value ``encode`` wrote (``ValueError`` for an unknown type name)."""
        return self._value(json.loads(text))

    def _plain(self, value: object) -> object:
        kind = type(value)
        if value is None or kind in _SCALARS:
            return value
        if kind is tuple or kind is list:
            return [self._plain(item) for item in value]  # type: ignore[attr-defined]
        names = self._fields.get(kind)
        if names is None:
            raise TypeError(
                f"cannot store a {kind.__name__} in shared state; register its type with the codec"
            )
        plain: dict[str, object] = {TYPE_FIELD: kind.__name__}
        for name in names:
            plain[name] = self._plain(getattr(value, name))
        return plain

    def _value(self, plain: object) -> object:
        if type(plain) is list:
            return tuple([self._value(item) for item in plain])
        if type(plain) is not dict:
            return plain
        name = plain.pop(TYPE_FIELD, None)
        if name is None:
            return ()
        kind = self._types.get(name)
        if kind is None:
            raise ValueError(f"shared state holds an unknown type {name!r}; run the same version everywhere")
        return kind(**{k: self._value(v) for k, v in plain.items()})


_SCALARS = frozenset({bool, int, float, str})


def default_codec() -> StateCodec:
    """The codec for every state value the resilience layer and the gateway keep."""
    from model_orchestrator.resilience.circuit_breaker import BreakerState
    from model_orchestrator.resilience.health import ProbeResult
    from model_orchestrator.resilience.request_log import RequestLog
    from model_orchestrator.resilience.sliding_window import Slot, WindowLog

    return StateCodec([BreakerState, ProbeResult, RequestLog, Slot, WindowLog])
