"""Read and validate JSON request bodies, with Ollama-style 4xx errors for every bad input."""

from __future__ import annotations

import json
from typing import Any, TypeVar

from fastapi import Request
from pydantic import BaseModel, ValidationError

from corral.errors import BadRequest, PayloadTooLarge

M = TypeVar("M", bound=BaseModel)

MAX_JSON_BODY = 64 * 1024 * 1024

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


async def read_body(request: Request, limit: int = MAX_JSON_BODY) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"request body too large (limit {limit} bytes)")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"request body too large (limit {limit} bytes)")
        chunks.append(chunk)
    return b"".join(chunks)


def decode_json(data: bytes) -> Any:
    if not data.strip():
        raise BadRequest("missing request body")
    try:
        return json.loads(data)
    except UnicodeDecodeError as e:
        raise BadRequest("invalid JSON: body is not UTF-8") from e
    except json.JSONDecodeError as e:
        if e.pos >= len(e.doc.rstrip()):
            raise BadRequest("unexpected EOF") from e
        raise BadRequest(f"invalid JSON: {e.msg} at line {e.lineno} column {e.colno}") from e


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
