"""How Python values play the part of Go values during template execution.

Data model (documented in :mod:`corral.template`):

* ``dict``/``Mapping`` is a ``map[string]any``; ``list``/``tuple`` a slice; ``bytes`` a
  ``[]byte``; ``str``, ``bool``, ``int``, ``float``, ``complex`` the basic kinds.
* ``None`` is a nil ``interface{}`` (a missing map key evaluates to it, as with Go's
  ``missingkey=zero`` on ``map[string]any``).
* :data:`NO_VALUE` is Go's *invalid* ``reflect.Value``: what a pipeline yields for a nil
  interface. It prints as ``<no value>``, and field access on it yields it again.
* Dataclass instances and other objects are structs: public attributes are fields, public
  methods are methods. A ``String()`` method makes the value a ``fmt.Stringer`` and a
  ``MarshalJSON()`` method returning JSON text makes it a ``json.Marshaler``.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Final

__all__ = [
    "NO_VALUE",
    "NoValue",
    "arity_problem",
    "is_basic",
    "is_struct",
    "is_true",
    "method_of",
    "sorted_items",
    "struct_fields",
    "type_name",
]


class NoValue:
    """The type of :data:`NO_VALUE` (Go's zero ``reflect.Value``)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "NO_VALUE"

    def __bool__(self) -> bool:
        return False


NO_VALUE: Final = NoValue()

_BASIC = (str, bool, int, float, complex, bytes, bytearray, list, tuple, dict, type(None))


def is_basic(value: object) -> bool:
    """Whether ``value`` is a plain data value rather than a struct-like object."""
    return isinstance(value, _BASIC) or value is NO_VALUE


def is_struct(value: object) -> bool:
    """Whether ``value`` plays a Go struct (dataclass instance or other plain object)."""
    return not is_basic(value) and not isinstance(value, Mapping) and not callable(value)


def type_name(value: object) -> str:
    """The Go type name shown in error messages and by ``%T``."""
    if value is None or value is NO_VALUE:
        return "<nil>"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float64"
    if isinstance(value, complex):
        return "complex128"
    if isinstance(value, str):
        return "string"
    if isinstance(value, (bytes, bytearray)):
        return "[]uint8"
    if isinstance(value, (list, tuple)):
        return "[]interface {}"
    if isinstance(value, Mapping) and type(value) is dict:
        return "map[string]interface {}"
    if callable(value) and not isinstance(value, type):
        return "func"
    return type(value).__qualname__


def is_true(value: object) -> bool:
    """Go's truth: false, 0, "", nil and empty collections are false; structs are true."""
    if value is None or value is NO_VALUE:
        return False
    if isinstance(value, (bool, int, float, complex)):
        return value != 0
    if isinstance(value, (str, bytes, bytearray, list, tuple, Mapping)):
        return len(value) > 0
    return True


_DICT_ATTRS = frozenset(dir(dict))


def method_of(value: object, name: str) -> Callable[..., Any] | None:
    """The bound public method ``name`` of ``value``, if it is a struct-like or custom map."""
    if name.startswith("_") or type(value) in _BASIC:
        return None
    if isinstance(value, Mapping) and name in _DICT_ATTRS:
        return None
    attr = getattr(type(value), name, None)
    if attr is None or not callable(attr) or isinstance(attr, type):
        return None
    bound = getattr(value, name, None)
    return bound if callable(bound) else None


def struct_fields(value: object) -> Iterator[tuple[str, Any, dataclasses.Field[Any] | None]]:
    """The public fields of a struct-like object, in declaration order."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        for f in dataclasses.fields(value):
            if not f.name.startswith("_"):
                yield f.name, getattr(value, f.name), f
        return
    attrs = getattr(value, "__dict__", None)
    if isinstance(attrs, dict):
        for name, item in attrs.items():
            if not name.startswith("_"):
                yield name, item, None


def _key_rank(key: object) -> tuple[int, Any]:
    if key is None:
        return (0, 0)
    if isinstance(key, bool):
        return (1, key)
    if isinstance(key, (int, float)):
        return (2, key)
    if isinstance(key, str):
        return (3, key)
    return (4, repr(key))


def sorted_items(mapping: Mapping[Any, Any]) -> list[tuple[Any, Any]]:
    """Map entries in Go's ``fmtsort`` order (keys ascending; mixed kinds grouped)."""
    if type(mapping) is dict:
        try:
            return sorted(mapping.items())
        except TypeError:
            pass
    keys = list(mapping.keys())
    try:
        keys.sort()
    except TypeError:
        keys.sort(key=_key_rank)
    return [(k, mapping[k]) for k in keys]


def arity_problem(fn: Callable[..., Any], argc: int) -> tuple[bool, int] | None:
    """``(variadic, wanted)`` when ``argc`` positional arguments do not fit ``fn``, else None."""
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return None
    try:
        sig.bind(*range(argc))
    except TypeError:
        params = sig.parameters.values()
        positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
        if any(p.kind == p.VAR_POSITIONAL for p in params):
            return True, sum(1 for p in positional if p.default is p.empty)
        return False, len(positional)
    return None
