"""Anthropic's Messages API: ``POST /v1/messages`` and ``POST /v1/messages/count_tokens``.

parse (:mod:`corral.anthropic.protocol`) -> convert to a native chat request
(:mod:`corral.anthropic.convert`) -> the native chat flow -> convert back (a ``message``
object, or the SSE events of :mod:`corral.anthropic.events`). Token counting renders and
tokenizes the same prompt the chat would (:mod:`corral.service.count`), so it equals the
``usage.input_tokens`` of the answer.

Every answer carries a ``request-id`` header; every error is Anthropic's
``{"type": "error", "error": {"type", "message"}, "request_id"}`` with the native status
(400 ``invalid_request_error``, 404 ``not_found_error``, 413 ``request_too_large``, 503
``overloaded_error``, 500 ``api_error``...). An error after a stream has started is a last
``error`` event. As in Ollama, ``thinking`` asked of a model that cannot think is dropped
rather than refused (Anthropic clients such as Claude Code always ask for it); the
``anthropic-version`` and ``anthropic-beta`` headers are accepted and not used.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TypeVar

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from corral.anthropic import convert
from corral.anthropic.events import MessageStream, error_event, sse
from corral.anthropic.protocol import (
    Conversation,
    CountTokensOut,
    CountTokensRequest,
    MessagesRequest,
    parse,
)
from corral.api.types import ChatRequest, ChatResponse
from corral.errors import CorralError
from corral.server.body import decode_json, read_body
from corral.server.streaming import StreamingResponse, first_chunk
from corral.service import Service
from corral.service.chat import chat
from corral.service.count import count_chat_tokens
from corral.service.native import merge_chat

log = logging.getLogger(__name__)

router = APIRouter()

R = TypeVar("R", bound=Conversation)


def _service(request: Request) -> Service:
    svc: Service = request.app.state.services
    return svc


def anthropic_error(status: int, message: str, rid: str) -> JSONResponse:
    body = convert.error_body(status, message, rid).wire()
    return JSONResponse(body, status_code=status, headers={"request-id": rid})


async def _answer(work: Callable[[], Awaitable[Response]]) -> Response:
    rid = convert.request_id()
    try:
        response = await work()
    except CorralError as e:
        return anthropic_error(e.status, e.message, rid)
    except Exception as e:
        log.exception("Anthropic request failed")
        return anthropic_error(500, f"internal error: {e}", rid)
    response.headers["request-id"] = rid
    return response


async def _parse(request: Request, model: type[R]) -> R:
    req: R = parse(model, decode_json(await read_body(request)))
    unknown = req.unknown_fields()
    if unknown:
        log.debug("%s: ignoring unknown fields %s", request.url.path, ", ".join(unknown))
    return req


async def _native(svc: Service, req: Conversation) -> ChatRequest:
    """The native request; ``think`` is dropped for a model without the thinking capability."""
    native = convert.chat_request(req)
    if native.think:
        view = await svc.catalog.resolve(native.model)
        if "thinking" not in view.capabilities:
            log.info("%s cannot think: answering without thinking", native.model)
            native = native.model_copy(update={"think": None})
    return native


@router.post("/v1/messages")
async def messages(request: Request) -> Response:
    async def work() -> Response:
        svc = _service(request)
        req = await _parse(request, MessagesRequest)
        chunks = chat(svc, await _native(svc, req))
        first = await first_chunk(chunks)
        msg_id = convert.message_id()
        if not req.stream:
            try:
                items = [first] + [c async for c in chunks]
            finally:
                await chunks.aclose()
            answer = convert.message(merge_chat(items), msg_id=msg_id, model=req.model)
            return JSONResponse(answer.wire())
        stream = MessageStream(msg_id, req.model)

        async def body() -> AsyncIterator[bytes]:
            item: ChatResponse = first
            try:
                for event in stream.feed(item):
                    yield sse(event)
                async for item in chunks:
                    for event in stream.feed(item):
                        yield sse(event)
            except CorralError as e:
                yield sse(error_event(e.status, e.message))
            except Exception as e:
                log.exception("Anthropic stream failed")
                yield sse(error_event(500, str(e) or type(e).__name__))
            finally:
                await chunks.aclose()  # a client that left cancels the generation

        return StreamingResponse(
            body(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"}
        )

    return await _answer(work)


@router.post("/v1/messages/count_tokens")
async def count_tokens(request: Request) -> Response:
    async def work() -> Response:
        svc = _service(request)
        req = await _parse(request, CountTokensRequest)
        count = await count_chat_tokens(svc, await _native(svc, req))
        return JSONResponse(CountTokensOut(input_tokens=count).wire())

    return await _answer(work)
