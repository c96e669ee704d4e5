"""The template functions: Go's builtins and Ollama's extra ``FuncMap``.

Go builtins: ``and or not call`` (the first three and ``call`` are evaluated specially by the
executor), ``index slice len``, ``eq ne lt le gt ge`` (Go's comparison rules: both operands
must be of the same basic kind, except that nil compares equal only to nil), ``print printf
println``, ``html js urlquery``. Ollama adds ``json``, ``currentDate``, ``yesterdayDate`` (both
``YYYY-MM-DD`` in local time, arguments accepted and ignored) and ``toTypeScriptType``.

Each function takes already evaluated arguments (``None`` for nil) and raises
:class:`FuncError` with Go's message; the executor reports it as
``error calling NAME: message``.
"""

from __future__ import annotations

import datetime
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Final

from corral.template.gofmt import format_value, sprint, sprintf, sprintln
from corral.template.gojson import UnsupportedValue, marshal
from corral.template.gostr import is_print
from corral.template.values import NO_VALUE, is_struct, is_true, type_name

__all__ = ["BUILTINS", "FUNC_NAMES", "Builtin", "FuncError"]


class FuncError(Exception):
    """A function failed; the message is Go's."""


@dataclass(frozen=True, slots=True)
class Builtin:
    """A template function and its Go signature (arity and ``string``-typed parameters)."""

    fn: Callable[..., Any]
    min_args: int
    variadic: bool = False
    string_params: int = 0  # leading parameters of Go type string
    string_variadic: bool = False  # variadic parameters of Go type string


def _is_nil(value: Any) -> bool:
    return value is None or value is NO_VALUE


def _basic_kind(value: Any) -> str:
    if _is_nil(value):
        return "invalid"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, complex):
        return "complex"
    if isinstance(value, str):
        return "string"
    return "invalid"


def _go_kind(value: Any) -> str:
    if isinstance(value, (list, tuple, bytes, bytearray)):
        return "slice"
    if isinstance(value, Mapping):
        return "map"
    if callable(value):
        return "func"
    return "struct"


def eq(arg1: Any, *args: Any) -> bool:
    """``eq a b c`` is ``a == b || a == c``."""
    if not args:
        raise FuncError("missing argument for comparison")
    k1 = _basic_kind(arg1)
    for arg in args:
        k2 = _basic_kind(arg)
        if k1 != k2:
            if not _is_nil(arg1) and not _is_nil(arg):
                raise FuncError(
                    f"incompatible types for comparison: {type_name(arg1)} and {type_name(arg)}"
                )
            continue
        if k1 != "invalid":
            if arg1 == arg:
                return True
            continue
        if _is_nil(arg1) or _is_nil(arg):
            if _is_nil(arg1) and _is_nil(arg):
                return True
            continue
        if _go_kind(arg1) != _go_kind(arg):
            raise FuncError(
                f"non-comparable types {sprintf('%s', [arg1])}: {type_name(arg1)}, "
                f"{type_name(arg)}: {format_value(arg)}"
            )
        if _go_kind(arg) != "struct":
            raise FuncError(f"non-comparable type {sprintf('%s', [arg])}: {type_name(arg)}")
        if arg1 == arg:
            return True
    return False


def ne(arg1: Any, arg2: Any) -> bool:
    return not eq(arg1, arg2)


def lt(arg1: Any, arg2: Any) -> bool:
    k1, k2 = _basic_kind(arg1), _basic_kind(arg2)
    if k1 == "invalid" or k2 == "invalid":
        raise FuncError("invalid type for comparison")
    if k1 != k2:
        raise FuncError(
            f"incompatible types for comparison: {type_name(arg1)} and {type_name(arg2)}"
        )
    if k1 in ("bool", "complex"):
        raise FuncError("invalid type for comparison")
    return bool(arg1 < arg2)


def le(arg1: Any, arg2: Any) -> bool:
    return lt(arg1, arg2) or eq(arg1, arg2)


def gt(arg1: Any, arg2: Any) -> bool:
    return not le(arg1, arg2)


def ge(arg1: Any, arg2: Any) -> bool:
    return not lt(arg1, arg2)


def not_(arg: Any) -> bool:
    return not is_true(arg)


def _index_arg(index: Any, cap: int) -> int:
    if _is_nil(index):
        raise FuncError("cannot index slice/array with nil")
    if not isinstance(index, int) or isinstance(index, bool):
        raise FuncError(f"cannot index slice/array with type {type_name(index)}")
    if index < 0 or index > cap:
        raise FuncError(f"index out of range: {index}")
    return index


def _map_key_ok(mapping: Mapping[Any, Any], key: Any) -> None:
    key_type: type = str
    for existing in mapping:
        key_type = type(existing)
        break
    if _is_nil(key):
        raise FuncError(f"value is nil; should be of type {type_name(key_type())}")
    int_like = isinstance(key, int) and not isinstance(key, bool)
    if not isinstance(key, key_type) and not (int_like and key_type is int):
        raise FuncError(f"value has type {type_name(key)}; should be {type_name(key_type())}")


def index(item: Any, *indexes: Any) -> Any:
    """``index x 1 2`` is ``x[1][2]`` over lists, strings (bytes) and maps."""
    if _is_nil(item):
        raise FuncError("index of untyped nil")
    for idx in indexes:
        if _is_nil(item):
            raise FuncError("index of nil pointer")
        if isinstance(item, (str, bytes, bytearray, list, tuple)):
            if isinstance(item, str) and not item.isascii():
                item = item.encode("utf-8", "replace")
            x = _index_arg(idx, len(item))
            if x == len(item):
                raise FuncError(f"index out of range: {x}")
            item = ord(item[x]) if isinstance(item, str) else item[x]
        elif isinstance(item, Mapping):
            _map_key_ok(item, idx)
            item = item.get(idx)
        else:
            raise FuncError(f"can't index item of type {type_name(item)}")
    return item


def _byte_slice(s: str, start: int, end: int) -> str:
    if s.isascii():
        return s[start:end]
    return s.encode("utf-8", "replace")[start:end].decode("utf-8", "replace")


def slice_(item: Any, *indexes: Any) -> Any:
    """``slice x 1 2`` is ``x[1:2]`` (strings are sliced by bytes, as in Go)."""
    if _is_nil(item):
        raise FuncError("slice of untyped nil")
    if len(indexes) > 3:
        raise FuncError(f"too many slice indexes: {len(indexes)}")
    if isinstance(item, str):
        if len(indexes) == 3:
            raise FuncError("cannot 3-index slice a string")
        size = len(item) if item.isascii() else len(item.encode("utf-8", "replace"))
    elif isinstance(item, (list, tuple, bytes, bytearray)):
        size = len(item)
    else:
        raise FuncError(f"can't slice item of type {type_name(item)}")
    idx = [0, size, size]
    for i, value in enumerate(indexes):
        idx[i] = _index_arg(value, size)
    if idx[0] > idx[1]:
        raise FuncError(f"invalid slice index: {idx[0]} > {idx[1]}")
    if len(indexes) == 3 and idx[1] > idx[2]:
        raise FuncError(f"invalid slice index: {idx[1]} > {idx[2]}")
    if isinstance(item, str):
        return _byte_slice(item, idx[0], idx[1])
    return item[idx[0] : idx[1]]


def length(item: Any) -> int:
    """``len x``: bytes of a string, elements of a list or map."""
    if _is_nil(item):
        raise FuncError("len of nil pointer")
    if isinstance(item, str):
        return len(item) if item.isascii() else len(item.encode("utf-8", "replace"))
    if isinstance(item, (list, tuple, bytes, bytearray, Mapping)):
        return len(item)
    raise FuncError(f"len of type {type_name(item)}")


def _eval_args(args: tuple[Any, ...]) -> str:
    if len(args) == 1 and isinstance(args[0], str):
        return args[0]
    return sprint(["<no value>" if _is_nil(a) else a for a in args])


_HTML_ESCAPES = str.maketrans(
    {"\0": "\ufffd", '"': "&#34;", "'": "&#39;", "&": "&amp;", "<": "&lt;", ">": "&gt;"}
)


def html(*args: Any) -> str:
    return _eval_args(args).translate(_HTML_ESCAPES)


_JS_ESCAPES = {
    "\\": "\\\\",
    "'": "\\'",
    '"': '\\"',
    "<": "\\u003C",
    ">": "\\u003E",
    "&": "\\u0026",
    "=": "\\u003D",
}


def js(*args: Any) -> str:
    out = []
    for ch in _eval_args(args):
        special = _JS_ESCAPES.get(ch)
        if special is not None:
            out.append(special)
        elif ch < " ":
            out.append(f"\\u{ord(ch):04X}")
        elif ch.isascii() or is_print(ch):
            out.append(ch)
        else:
            out.append(f"\\u{ord(ch):04X}")
    return "".join(out)


def urlquery(*args: Any) -> str:
    return urllib.parse.quote_plus(_eval_args(args), safe="")


def print_(*args: Any) -> str:
    return sprint(list(args))


def printf(fmt: str, *args: Any) -> str:
    return sprintf(fmt, list(args))


def println(*args: Any) -> str:
    return sprintln(list(args))


def json_(value: Any) -> str:
    """Ollama's ``json``: ``json.Marshal`` output, or "" when the value cannot be encoded."""
    try:
        return marshal(value)
    except UnsupportedValue:
        return ""


def current_date(*_args: str) -> str:
    return datetime.datetime.now().strftime("%Y-%m-%d")


def yesterday_date(*_args: str) -> str:
    return (datetime.datetime.now() - datetime.timedelta(days=1)).strftime("%Y-%m-%d")


_TS_TYPES = {
    "string": "string",
    "number": "number",
    "integer": "number",
    "boolean": "boolean",
    "array": "any[]",
    "object": "Record<string, any>",
    "null": "null",
}


def _prop(value: Any, *names: str) -> Any:
    for name in names:
        if isinstance(value, Mapping):
            if name in value:
                return value[name]
        elif hasattr(value, name):
            return getattr(value, name)
    return None


def to_typescript_type(value: Any) -> str:
    """Ollama's ``toTypeScriptType`` of a tool property (a mapping or an object with
    ``Type``/``type`` and ``AnyOf``/``anyOf``); anything else is ``any``."""
    if not isinstance(value, Mapping) and not is_struct(value):
        return "any"
    any_of = _prop(value, "AnyOf", "anyOf", "any_of")
    if isinstance(any_of, (list, tuple)) and any_of:
        return " | ".join(to_typescript_type(v) for v in any_of)
    types = _prop(value, "Type", "type")
    if isinstance(types, str):
        types = [types] if types else []
    if not isinstance(types, (list, tuple)) or not types:
        return "any"
    return " | ".join(_TS_TYPES.get(t, "any") if isinstance(t, str) else "any" for t in types)


BUILTINS: Final[Mapping[str, Builtin]] = MappingProxyType(
    {
        "not": Builtin(not_, 1),
        "index": Builtin(index, 1, variadic=True),
        "slice": Builtin(slice_, 1, variadic=True),
        "len": Builtin(length, 1),
        "eq": Builtin(eq, 1, variadic=True),
        "ne": Builtin(ne, 2),
        "lt": Builtin(lt, 2),
        "le": Builtin(le, 2),
        "gt": Builtin(gt, 2),
        "ge": Builtin(ge, 2),
        "html": Builtin(html, 0, variadic=True),
        "js": Builtin(js, 0, variadic=True),
        "urlquery": Builtin(urlquery, 0, variadic=True),
        "print": Builtin(print_, 0, variadic=True),
        "printf": Builtin(printf, 1, variadic=True, string_params=1),
        "println": Builtin(println, 0, variadic=True),
        "json": Builtin(json_, 1),
        "currentDate": Builtin(current_date, 0, variadic=True, string_variadic=True),
        "yesterdayDate": Builtin(yesterday_date, 0, variadic=True, string_variadic=True),
        "toTypeScriptType": Builtin(to_typescript_type, 1),
    }
)
"""Functions evaluated with ordinary argument evaluation."""

FUNC_NAMES: Final = frozenset(BUILTINS) | {"and", "or", "call"}
"""Every function name a template may use (``and``, ``or``, ``call`` are special forms)."""
