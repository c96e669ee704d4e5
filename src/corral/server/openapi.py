"""corral's OpenAPI 3.1 document, built from the table of the routes it serves
(:data:`~corral.server.openapi_table.OPERATIONS`) and the pydantic wire models of their requests
and answers: pydantic's ``validation`` JSON schemas for requests, ``serialization`` ones for
answers, as component schemas (each family's under its prefix: ``OpenAI...``).

Error bodies are each family's error model: Ollama's ``{"error": "..."}`` on native routes,
OpenAI's error object on ``/v1`` routes. Every route may answer 403 (a foreign ``Host`` on a
loopback bind) and 500, and every route but ``/`` 401 (with ``CORRAL_API_KEY``).

Streams are described by media type: native streams are ``application/x-ndjson``, whose schema
describes the whole stream as an array of its lines (as OpenAPI 3.2 reads sequential media
types); SSE streams are ``text/event-stream``, whose schema describes one event (as OpenAPI 3.1
tools read it): its ``data`` is a JSON chunk, the family's error object, or an end marker such
as OpenAI's ``[DONE]``.

The document is served at ``GET /openapi.json`` (built once) and checked in as
``openapi.json``; regenerate that file with ``python -m corral.server.openapi > openapi.json``.
"""

from __future__ import annotations

import asyncio
import functools
import json
from collections.abc import Mapping, Sequence
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema

import corral
from corral.server.openapi_table import (
    ERROR_TEXT,
    JSON,
    OPERATIONS,
    SSE,
    Family,
    Operation,
    Reply,
)

# ---- building the document ---------------------------------------------------------------------


def _families(ops: Sequence[Operation]) -> list[Family]:
    return list(dict.fromkeys(op.family for op in ops))


Pairs = list[tuple[type[BaseModel], JsonSchemaMode]]


def _models(ops: Sequence[Operation], family: Family) -> Pairs:
    """The (model, mode) pairs the operations of ``family`` use, each once, in table order."""
    out: Pairs = [(family.error, "serialization")]
    for op in ops:
        if op.family != family:
            continue
        if op.request is not None:
            out.append((op.request, "validation"))
        for reply in op.replies.values():
            out += [(m, "serialization") for m in (reply.json, *reply.stream) if m is not None]
    return list(dict.fromkeys(out))


class _Schemas:
    """Component schemas of every family (under its prefix) and references to them."""

    def __init__(self, ops: Sequence[Operation]) -> None:
        self.components: dict[str, Any] = {}
        self.refs: dict[tuple[Family, Any, str], dict[str, Any]] = {}
        for family in _families(ops):
            template = "#/components/schemas/" + family.prefix + "{model}"
            refs, top = models_json_schema(_models(ops, family), ref_template=template)
            for name, schema in top.get("$defs", {}).items():
                known = self.components.setdefault(family.prefix + name, schema)
                if known != schema:
                    raise ValueError(f"two component schemas named {family.prefix + name}")
            for (model, mode), ref in refs.items():
                self.refs[(family, model, mode)] = dict(ref)

    def ref(self, family: Family, model: type[BaseModel], mode: str = "serialization") -> Any:
        return dict(self.refs[(family, model, mode)])


def _chunks(schemas: _Schemas, op: Operation, reply: Reply) -> list[Any]:
    """What a stream's items may be: its chunks, or (a failure after it started) an error."""
    fam = op.family
    return [schemas.ref(fam, m) for m in reply.stream] + [schemas.ref(fam, fam.error)]


def _ndjson(schemas: _Schemas, op: Operation, reply: Reply) -> dict[str, Any]:
    return {
        "schema": {
            "description": "newline-delimited JSON, one chunk a line; this schema describes the "
            "whole stream as an array of its lines. A failure after the first line is sent as "
            "a last line holding the error object",
            "type": "array",
            "items": {"anyOf": _chunks(schemas, op, reply)},
        }
    }


def _sse(schemas: _Schemas, op: Operation, reply: Reply) -> dict[str, Any]:
    json_data: dict[str, Any] = {
        "contentMediaType": JSON,
        "contentSchema": {"anyOf": _chunks(schemas, op, reply)},
    }
    data: dict[str, Any] = {"type": "string", **json_data}
    text = "one server-sent event, `data: <JSON chunk>`; a failure after the stream started is "
    text += "sent as an event holding the error object"
    if reply.end is not None:
        data = {"type": "string", "oneOf": [{"const": reply.end}, json_data]}
        text += f"; the stream ends with `data: {reply.end}`"
    return {
        "schema": {
            "description": text,
            "type": "object",
            "required": ["data"],
            "properties": {"data": data},
        }
    }


def _reply(schemas: _Schemas, op: Operation, reply: Reply) -> dict[str, Any]:
    content: dict[str, Any] = {}
    if reply.json is not None:
        content[JSON] = {"schema": schemas.ref(op.family, reply.json)}
    if reply.schema is not None:
        content[JSON] = {"schema": dict(reply.schema)}
    if reply.text is not None:
        content["text/plain"] = {"schema": {"type": "string"}, "example": reply.text}
    if reply.stream:
        stream = _sse if op.family.stream == SSE else _ndjson
        content[op.family.stream] = stream(schemas, op, reply)
    out: dict[str, Any] = {"description": reply.description}
    if content and op.method != "head":
        out["content"] = content
    return out


def error_statuses(op: Operation) -> list[int]:
    """Every error status ``op`` may answer."""
    common = {403, 500} | ({401} if op.keyed else set())
    return sorted(common | set(op.errors))


def _operation(schemas: _Schemas, op: Operation) -> dict[str, Any]:
    responses: dict[str, Any] = {
        str(status): _reply(schemas, op, reply) for status, reply in sorted(op.replies.items())
    }
    error = {JSON: {"schema": schemas.ref(op.family, op.family.error)}}
    for status in error_statuses(op):
        responses[str(status)] = {"description": ERROR_TEXT[status]}
        if op.method != "head":
            responses[str(status)]["content"] = error
    out: dict[str, Any] = {
        "operationId": op.name,
        "summary": op.summary,
        "tags": [op.family.tag],
        "responses": responses,
    }
    if op.params:
        out["parameters"] = [
            {"name": name, "in": "path", "required": True, "description": text, "schema": schema}
            for name, (text, schema) in op.params.items()
        ]
    if op.request is not None:
        body = {"schema": schemas.ref(op.family, op.request, "validation")}
        out["requestBody"] = {"required": True, "content": {JSON: body}}
    elif op.binary_body:
        body = {"schema": {"type": "string", "format": "binary"}}
        out["requestBody"] = {"required": True, "content": {"application/octet-stream": body}}
    if not op.keyed:
        out["security"] = []
    return out


def document(ops: Sequence[Operation] = OPERATIONS) -> dict[str, Any]:
    """The OpenAPI 3.1 document of ``ops``."""
    schemas = _Schemas(ops)
    paths: dict[str, dict[str, Any]] = {}
    for op in ops:
        paths.setdefault(op.path, {})[op.method] = _operation(schemas, op)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "corral",
            "version": corral.__version__,
            "description": "A local LLM server that speaks the Ollama API (native routes under "
            "/api) and OpenAI's (under /v1).",
        },
        "servers": [{"url": "http://127.0.0.1:11434"}],
        "tags": [{"name": f.tag, "description": f.description} for f in _families(ops)],
        "paths": paths,
        "components": {
            "schemas": schemas.components,
            "securitySchemes": {
                "apiKey": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "CORRAL_API_KEY, when the server has one",
                }
            },
        },
        "security": [{}, {"apiKey": []}],
    }


def render(doc: Mapping[str, Any]) -> str:
    """The document as corral serves it and as ``openapi.json`` holds it."""
    return json.dumps(doc, sort_keys=True, indent=2, ensure_ascii=False) + "\n"


@functools.cache
def document_bytes() -> bytes:
    return render(document()).encode()


# ---- the route ---------------------------------------------------------------------------------

router = APIRouter()


@router.get("/openapi.json")
async def openapi_json(request: Request) -> Response:
    body: bytes | None = getattr(request.app.state, "openapi", None)
    if body is None:
        body = await asyncio.to_thread(document_bytes)  # built once (pydantic's schemas)
        request.app.state.openapi = body
    return Response(body, media_type=JSON)


if __name__ == "__main__":
    print(render(document()), end="")
