"""``quick_init``: a quicker ``__init__`` for the frozen, slotted dataclasses built on every call.

A frozen dataclass's ``__init__`` sets each field through ``object.__setattr__`` by name, past its frozen
check; a call builds a dozen such objects (its answer ``Completion`` four times, the events, the steps and
explanations of two fallbacks), so that is measurable. ``quick_init`` gives the class an ``__init__`` of
the same signature that sets each field through its slot's own setter instead: ``RequestFinished``
(17 fields) costs 2.3 µs instead of 4.3. The object is the same in every other way (frozen, compared,
printed and replaced as the dataclass says).
"""

from __future__ import annotations

from dataclasses import MISSING, Field, fields
from typing import Any, TypeVar

T = TypeVar("T")


class _Factory:
    """The default of a field with a ``default_factory``: not given, so the factory makes it."""

    def __repr__(self) -> str:
        return "<factory>"


_FACTORY = _Factory()


def quick_init(cls: type[T]) -> type[T]:
    """``cls`` (a ``@dataclass(frozen=True, slots=True)``, applied below this decorator) with the quicker
    ``__init__``. Written like the one dataclasses generates: its source compiled once, at import, from
    the field names alone: fields in order (an ``init=False`` one set to its default; a
    ``default_factory`` called when its field is not given), then ``__post_init__`` when the class has
    one."""
    declared = fields(cls)  # type: ignore[arg-type]
    if "__slots__" not in vars(cls):
        raise TypeError(f"{cls.__name__}: quick_init is for slotted dataclasses")
    scope: dict[str, Any] = {"_FACTORY": _FACTORY}
    params, body = [], []
    for f in declared:
        holder = next(k for k in cls.__mro__ if f.name in vars(k))  # the class whose slot holds the field
        scope[f"_set_{f.name}"] = vars(holder)[f.name].__set__
        param, value = _field_code(cls, f, scope)
        if param is not None:
            params.append(param)
        body.append(f"_set_{f.name}(self, {value})")
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


def _field_code(cls: type, f: Field[Any], scope: dict[str, Any]) -> tuple[str | None, str]:
    """The field's parameter in ``__init__`` (None: not one) and the expression of its value."""
    name = f.name
    if f.default is not MISSING:
        scope[f"_default_{name}"] = f.default
        if not f.init:
            return None, f"_default_{name}"
        return f"{name}=_default_{name}", name
    if f.default_factory is not MISSING:
        scope[f"_factory_{name}"] = f.default_factory
        if not f.init:
            return None, f"_factory_{name}()"
        return f"{name}=_FACTORY", f"_factory_{name}() if {name} is _FACTORY else {name}"
    if not f.init:
        raise TypeError(f"{cls.__name__}.{name}: a field left out of __init__ needs a default")
    return name, name
