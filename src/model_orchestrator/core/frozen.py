"""``quick_init``: a quicker ``__init__`` for the frozen, slotted dataclasses built on every call.

A frozen dataclass's ``__init__`` sets each field through ``object.__setattr__`` by name, past its frozen
check; a call builds a dozen such objects (its answer ``Completion`` four times, the events, the steps and
explanations of two fallbacks), so that is measurable. ``quick_init`` gives the class an ``__init__`` of
the same signature that sets each field through its slot's own setter instead: ``RequestFinished``
(17 fields) costs 2.3 µs instead of 4.3. The object is the same in every other way (frozen, compared,
printed and replaced as the dataclass says).
"""

from __future__ import annotations

from dataclasses import MISSING, fields
from typing import Any, TypeVar

T = TypeVar("T")


def quick_init(cls: type[T]) -> type[T]:
    """``cls`` (a ``@dataclass(frozen=True, slots=True)``, applied below this decorator) with the quicker
    ``__init__``. Written like the one dataclasses generates: its source compiled once, at import, from
    the field names alone: fields in order (an ``init=False`` one set to its default), then
    ``__post_init__`` when the class has one. No field may have a ``default_factory``."""
    declared = fields(cls)  # type: ignore[arg-type]
    plain = all(f.default_factory is MISSING and (f.init or f.default is not MISSING) for f in declared)
    if not plain or "__slots__" not in vars(cls):
        raise TypeError(f"{cls.__name__}: quick_init is for slotted dataclasses with plain defaults")
    scope: dict[str, Any] = {}
    params, body = [], []
    for f in declared:
        holder = next(k for k in cls.__mro__ if f.name in vars(k))  # the class whose slot holds the field
        scope[f"_set_{f.name}"] = vars(holder)[f.name].__set__
        if f.default is not MISSING:
            scope[f"_default_{f.name}"] = f.default
        if f.init:
            params.append(f.name if f.default is MISSING else f"{f.name}=_default_{f.name}")
        body.append(f"_set_{f.name}(self, {f.name if f.init else f'_default_{f.name}'})")
    if hasattr(cls, "__post_init__"):
        body.append("self.__post_init__()")
    made: dict[str, Any] = {}
    lines = "".join(f"\n    {line}" for line in body)
    exec(f"def __init__(self, {', '.join(params)}) -> None:{lines}", scope, made)
    init = made["__init__"]
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    init.__annotations__ = {**{f.name: f.type for f in declared if f.init}, "return": None}
    setattr(cls, "__init__", init)  # noqa: B010 - mypy refuses assigning to a method
    return cls
