"""Read and validate JSON request bodies, with Ollama-style 4xx errors for every bad input."""

from __future__ import annotations

import json
import math
import re
from typing import Any, TypeVar

from fastapi import Request
from pydantic import BaseModel, ValidationError

from corral.config import DEFAULT_MAX_BODY
from corral.errors import BadRequest

M = TypeVar("M", bound=BaseModel)

MAX_JSON_BODY = DEFAULT_MAX_BODY  # the default of CORRAL_MAX_BODY

_TYPE_WORDS = {
    "string_type": "a string",
    "bool_type": "a boolean",
    "int_type": "an integer",
    "float_type": "a number",
    "dict_type": "an object",
    "list_type": "an array",
    "model_type": "an object",
    "int_from_float": "an integer",
}


async def read_body(request: Request) -> bytes:
    """The whole body. Its size is bounded by :class:`~corral.server.limits.BodyLimitMiddleware`
    (``CORRAL_MAX_BODY``), which stops the stream with a 413 past the limit."""
    chunks: list[bytes] = []
    async for chunk in request.stream():
        chunks.append(chunk)
    return b"".join(chunks)


def decode_json(data: bytes) -> Any:
    """Parse a request body as Go's ``encoding/json`` would, so that bad input is a 400.

    As in Go, invalid UTF-8 and lone UTF-16 surrogates (``"\\ud800"``) in strings become U+FFFD
    rather than errors, and ``NaN``, ``Infinity`` and numbers beyond a float64 are refused.
    JSON nested deeper than Python's recursion allows, and integers too long for Python's
    int conversion, are 400s too.
    """
    if not data.strip():
        raise BadRequest("missing request body")
    text = data.decode("utf-8", "replace")
    try:
        value = json.loads(text, parse_float=_finite_float, parse_constant=_no_constant)
    except json.JSONDecodeError as e:
        # Python places an unterminated string's error at its start; it too ran into the end
        if e.pos >= len(e.doc.rstrip()) or e.msg.startswith("Unterminated string"):
            raise BadRequest("unexpected EOF") from e
        raise BadRequest(f"invalid JSON: {e.msg} at line {e.lineno} column {e.colno}") from e
    except RecursionError as e:
        raise BadRequest("invalid JSON: nested too deeply") from e
    except ValueError as e:  # an integer too long to convert, NaN, a float beyond float64
        raise BadRequest(f"invalid JSON: {e}") from e
    if _SURROGATE_ESCAPE.search(text):
        value = _without_surrogates(value)
    return value


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number {text} is out of range")
    return value


def _no_constant(text: str) -> float:
    raise ValueError(f"invalid character in numeric literal {text}")


# A \u escape of a UTF-16 surrogate: json keeps a lone one as a surrogate code point, which
# cannot be encoded as UTF-8 later (a tokenizer, a response), so it becomes U+FFFD as in Go.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
_SURROGATE = re.compile("[\ud800-\udfff]")


def _fix(s: str) -> str:
    return _SURROGATE.sub("\ufffd", s)


def _without_surrogates(value: Any) -> Any:
    """``value`` with every lone surrogate, in keys and strings at any depth, replaced."""
    if isinstance(value, str):
        return _fix(value)
    root: list[Any] = [value]
    stack: list[Any] = [root]
    while stack:
        node = stack.pop()
        if isinstance(node, list):
            for i, item in enumerate(node):
                if isinstance(item, str):
                    node[i] = _fix(item)
                elif isinstance(item, list | dict):
                    stack.append(item)
        else:
            for key in list(node):
                item = node.pop(key) if _SURROGATE.search(key) else node[key]
                if isinstance(item, str):
                    item = _fix(item)
                elif isinstance(item, list | dict):
                    stack.append(item)
                node[_fix(key)] = item
    return root[0]


def validate(model: type[M], value: Any) -> M:
    if not isinstance(value, dict):
        raise BadRequest("request body must be a JSON object")
    try:
        return model.model_validate(value)
    except ValidationError as e:
        raise BadRequest(describe_validation_error(e)) from e


def describe_validation_error(e: ValidationError) -> str:
    err = e.errors()[0]
    loc = ".".join(str(p) for p in err.get("loc", ()) if not _is_type_tag(p))
    kind = err.get("type", "")
    if kind == "ollama":  # a field's own decoding error, worded as Ollama's
        return str(err.get("msg", "invalid"))
    if kind == "missing":
        return f'missing required field "{loc}"'
    want = _TYPE_WORDS.get(kind)
    if want is not None:
        return f'invalid value for "{loc}": expected {want}'
    return f'invalid value for "{loc}": {err.get("msg", "invalid")}'


_TYPE_TAGS = {"str", "int", "float", "bool", "none", "dict", "list"}


def _is_type_tag(part: object) -> bool:
    """Union members appear in pydantic's error locations ("str", "list[str]"...)."""
    if not isinstance(part, str):
        return False
    return part.startswith("function-") or part in _TYPE_TAGS or "[" in part


async def parse_json(request: Request, model: type[M]) -> M:
    return validate(model, decode_json(await read_body(request)))
