"""Go's ``encoding/json.Marshal`` output for template data (the ``json`` template function).

Compact output; ``<``, ``>``, ``&``, U+2028 and U+2029 escaped as ``\\u003c``...; map keys
sorted; floats spelled as Go does (``1e+21``, ``1e-7``, ``3``); ``bytes`` base64-encoded;
dataclasses encoded field by field in declaration order, honouring a Go-style struct tag in
``field(metadata={"json": "name,omitempty"})``; an object with a ``MarshalJSON()`` method
contributes that JSON text. Values Go cannot encode (NaN, infinities, complex numbers,
functions, cycles) make :func:`marshal` raise :class:`UnsupportedValue`.
"""

from __future__ import annotations

import base64
import math
import re
from collections.abc import Mapping
from typing import Any

from corral.template.gofmt import shortest_digits
from corral.template.values import NO_VALUE, method_of, struct_fields

__all__ = ["UnsupportedValue", "marshal"]

MAX_DEPTH = 1000
_NEEDS_ESCAPE = re.compile('[\\x00-\\x1f"\\\\<>&\u2028\u2029\ud800-\udfff]')
_SHORT_ESCAPES = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"}
_SHORT_ESCAPES.update({"\b": "\\b", "\f": "\\f"})


class UnsupportedValue(ValueError):
    """A value ``json.Marshal`` would refuse."""


def _escape(match: re.Match[str]) -> str:
    ch = match.group()
    short = _SHORT_ESCAPES.get(ch)
    if short is not None:
        return short
    if "\ud800" <= ch <= "\udfff":
        return "\\ufffd"
    return f"\\u{ord(ch):04x}"


def _string(s: str) -> str:
    return '"' + _NEEDS_ESCAPE.sub(_escape, s) + '"'


def _float(f: float) -> str:
    if math.isnan(f) or math.isinf(f):
        raise UnsupportedValue(f"json: unsupported value: {f}")
    digits, dp = shortest_digits(f)
    neg = "-" if math.copysign(1.0, f) < 0 else ""
    if not digits:
        return neg + "0"
    magnitude = abs(f)
    if magnitude < 1e-6 or magnitude >= 1e21:
        exp = dp - 1
        mantissa = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
        exp_text = f"{abs(exp):02d}" if exp >= 0 else str(abs(exp))
        return f"{neg}{mantissa}e{'-' if exp < 0 else '+'}{exp_text}"
    if dp <= 0:
        return f"{neg}0.{'0' * -dp}{digits}"
    if dp >= len(digits):
        return neg + digits + "0" * (dp - len(digits))
    return f"{neg}{digits[:dp]}.{digits[dp:]}"


def _is_empty(value: Any) -> bool:
    if value is None or value is NO_VALUE:
        return True
    if isinstance(value, (bool, int, float)):
        return not value
    if isinstance(value, (str, bytes, bytearray, list, tuple, Mapping)):
        return len(value) == 0
    return False


def _key(key: Any) -> str:
    if isinstance(key, str):
        return key
    if isinstance(key, int) and not isinstance(key, bool):
        return str(key)
    raise UnsupportedValue(f"json: unsupported type: map[{type(key).__name__}]")


def _encode(value: Any, out: list[str], depth: int) -> None:
    if depth > MAX_DEPTH:
        raise UnsupportedValue("json: unsupported value: encountered a cycle")
    if value is None or value is NO_VALUE:
        out.append("null")
    elif isinstance(value, str):
        out.append(_string(value))
    elif isinstance(value, bool):
        out.append("true" if value else "false")
    elif isinstance(value, int):
        out.append(str(value))
    elif isinstance(value, float):
        out.append(_float(value))
    elif isinstance(value, (bytes, bytearray)):
        out.append('"' + base64.b64encode(bytes(value)).decode("ascii") + '"')
    elif (marshaler := method_of(value, "MarshalJSON")) is not None:
        # before slices and maps: a named slice or map type may be a json.Marshaler too
        text = marshaler()
        out.append(text.decode() if isinstance(text, (bytes, bytearray)) else str(text))
    elif isinstance(value, (list, tuple)):
        out.append("[")
        for i, item in enumerate(value):
            if i:
                out.append(",")
            _encode(item, out, depth + 1)
        out.append("]")
    elif isinstance(value, Mapping):
        entries = sorted(((_key(k), v) for k, v in value.items()), key=lambda e: e[0])
        out.append("{")
        for i, (key, item) in enumerate(entries):
            if i:
                out.append(",")
            out.append(_string(key) + ":")
            _encode(item, out, depth + 1)
        out.append("}")
    elif isinstance(value, complex) or callable(value):
        raise UnsupportedValue(f"json: unsupported type: {type(value).__name__}")
    else:
        _encode_struct(value, out, depth)


def _encode_struct(value: Any, out: list[str], depth: int) -> None:
    out.append("{")
    first = True
    for name, item, spec in struct_fields(value):
        key, omit_empty = name, False
        tag = spec.metadata.get("json") if spec is not None else None
        if isinstance(tag, str):
            if tag == "-":
                continue
            tag_name, *options = tag.split(",")
            key = tag_name or name
            omit_empty = "omitempty" in options
        if omit_empty and _is_empty(item):
            continue
        if not first:
            out.append(",")
        first = False
        out.append(_string(key) + ":")
        _encode(item, out, depth + 1)
    out.append("}")


def marshal(value: Any) -> str:
    """Encode ``value`` like Go's ``json.Marshal``; raises :class:`UnsupportedValue`."""
    out: list[str] = []
    try:
        _encode(value, out, 0)
    except RecursionError:
        raise UnsupportedValue("json: unsupported value: encountered a cycle") from None
    return "".join(out)
