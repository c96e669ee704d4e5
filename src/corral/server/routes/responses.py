"""``POST /v1/responses``: OpenAI's Responses API on the native chat flow (stateless, as Ollama).

Parse (:mod:`corral.openai.responses`) -> native chat (``corral.service.chat``) -> the
``response`` object or its server-sent events (:mod:`corral.openai.responses_stream`). Errors found
before the first chunk (an unknown model, bad input, a model without thinking asked to think) are
answered with their native status in OpenAI's error shape; an error after the stream started
ends it with an ``error`` event and ``response.failed``. A stream has no ``[DONE]`` line.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from corral.api.types import ChatRequest
from corral.errors import BadRequest, CorralError
from corral.openai.responses import (
    CONTENT_MODELS,
    ITEM_MODELS,
    ResponsesRequest,
    chat_request,
    check_input,
    item_kind,
)
from corral.openai.responses_stream import ResponseStream, build_response, sse_event
from corral.server.body import decode_json, read_body, validate
from corral.server.routes.openai import _answer, _rest, _service
from corral.server.streaming import StreamingResponse, first_chunk
from corral.service.chat import chat

log = logging.getLogger(__name__)

router = APIRouter()


def _check_items(body: Any) -> None:
    """Validate each input item on its own, so an error names it (``input[2]: ...``)."""
    items = body.get("input") if isinstance(body, dict) else None
    if not isinstance(items, list):
        return
    for i, item in enumerate(items):  # check_input made sure of the kinds
        where = f"input[{i}]: "
        kind = item_kind(item)
        # the items whose parts check_input has checked: their types are known content types
        keys = {"message": ("content",), "function_call_output": ("output",)}.get(kind or "", ())
        for key in keys:
            parts = item.get(key)
            for j, part in enumerate(parts if isinstance(parts, list) else []):
                try:
                    validate(CONTENT_MODELS[part["type"]], part)
                except BadRequest as e:
                    raise BadRequest(f"{where}{key}[{j}]: {e.message}") from e
        try:
            validate(ITEM_MODELS[kind or ""], item)
        except BadRequest as e:
            raise BadRequest(where + e.message) from e


async def _parse(request: Request) -> ResponsesRequest:
    body = decode_json(await read_body(request))
    check_input(body)
    _check_items(body)
    req = validate(ResponsesRequest, body)
    unknown = req.unknown_fields()
    if unknown:
        log.debug("/v1/responses: ignoring unknown fields %s", ", ".join(unknown))
    return req


@router.post("/v1/responses")
async def responses(request: Request) -> Response:
    async def work() -> Response:
        req = await _parse(request)
        native = validate(ChatRequest, chat_request(req))
        chunks = chat(_service(request), native)
        first = await first_chunk(chunks)
        if not req.stream:
            items = await _rest(first, chunks)
            return JSONResponse(build_response(req, items).wire())
        conv = ResponseStream(req)

        async def events() -> AsyncIterator[bytes]:
            try:
                for event in conv.feed(first):
                    yield sse_event(event)
                async for chunk in chunks:
                    for event in conv.feed(chunk):
                        yield sse_event(event)
            except CorralError as e:
                for event in conv.fail(e.status, e.message):
                    yield sse_event(event)
            except Exception as e:
                log.exception("/v1/responses stream failed")
                for event in conv.fail(500, str(e) or type(e).__name__):
                    yield sse_event(event)
            finally:
                await chunks.aclose()  # a client that left cancels the generation

        return StreamingResponse(
            events(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"}
        )

    return await _answer(work)
