"""OpenAI-compatible routes on ``/v1``: parse -> convert -> the native flow -> convert back.

The handlers share the native flows (``corral.completion``, ``corral.embed``, the catalogue), so
both APIs use one engine path, one scheduler and one set of errors; only the shapes differ. Every
error is answered in OpenAI's shape ``{"error": {"message", "type", "param", "code"}}`` with the
native status; an error after a stream has started becomes a last ``data: {"error": ...}`` event.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from typing import TypeVar

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from corral.api.types import (
    ChatRequest,
    ChatResponse,
    EmbedRequest,
    GenerateRequest,
    GenerateResponse,
)
from corral.errors import CorralError, ModelNotFound
from corral.names import parse_name
from corral.openai import convert, objects, wire
from corral.openai.protocol import (
    ChatCompletionRequest,
    CompletionRequest,
    EmbeddingRequest,
    OpenAIWire,
)
from corral.server.body import decode_json, read_body, validate
from corral.server.fanout import fan_in
from corral.server.streaming import StreamingResponse, first_chunk
from corral.service import Service, catalog
from corral.service.chat import chat
from corral.service.embed import embed
from corral.service.generate import generate

log = logging.getLogger(__name__)

router = APIRouter()

W = TypeVar("W", bound=OpenAIWire)
C = TypeVar("C", ChatResponse, GenerateResponse)

DONE = b"data: [DONE]\n\n"


def _service(request: Request) -> Service:
    svc: Service = request.app.state.services
    return svc


def openai_error(status: int, message: str) -> JSONResponse:
    return JSONResponse(objects.error_body(status, message), status_code=status)


def sse(obj: wire.OpenAIObject) -> bytes:
    data = json.dumps(obj.wire(), ensure_ascii=False, separators=(",", ":"))
    return b"data: " + data.encode() + b"\n\n"


async def _answer(work: Callable[[], Awaitable[Response]]) -> Response:
    try:
        return await work()
    except CorralError as e:
        return openai_error(e.status, e.message)
    except Exception as e:
        log.exception("OpenAI request failed")
        return openai_error(500, f"internal error: {e}")


async def _parse(request: Request, model: type[W]) -> W:
    req = validate(model, decode_json(await read_body(request)))
    unknown = req.unknown_fields()
    if unknown:
        log.debug("%s: ignoring unknown fields %s", request.url.path, ", ".join(unknown))
    return req


async def _rest(first: C, chunks: AsyncGenerator[C, None]) -> list[C]:
    try:
        return [first] + [c async for c in chunks]
    finally:
        await chunks.aclose()


def _stream(events: AsyncGenerator[bytes, None]) -> StreamingResponse:
    """SSE of ``events`` then ``[DONE]``; an error ends the stream as an error event."""

    async def body() -> AsyncIterator[bytes]:
        try:
            async for event in events:
                yield event
            yield DONE
        except CorralError as e:
            yield sse(objects.error_object(e.status, e.message))
        except Exception as e:
            log.exception("OpenAI stream failed")
            yield sse(objects.error_object(500, str(e) or type(e).__name__))
        finally:
            await events.aclose()  # a client that left cancels the generation

    return StreamingResponse(
        body(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"}
    )


# ---- chat completions ------------------------------------------------------------------------


@router.post("/v1/chat/completions")
async def chat_completions(request: Request) -> Response:
    async def work() -> Response:
        req = await _parse(request, ChatCompletionRequest)
        native = validate(ChatRequest, convert.chat_request(req))
        chunks = chat(_service(request), native)
        first = await first_chunk(chunks)
        rid, created = objects.random_id("chatcmpl-"), int(time.time())
        if not req.stream:
            items = await _rest(first, chunks)
            return JSONResponse(objects.chat_completion(items, rid=rid, created=created).wire())
        include_usage = bool(req.stream_options and req.stream_options.include_usage)
        conv = objects.ChatStream(rid, created, include_usage=include_usage)

        async def events() -> AsyncGenerator[bytes, None]:
            try:
                for c in conv.feed(first):
                    yield sse(c)
                async for item in chunks:
                    for c in conv.feed(item):
                        yield sse(c)
            finally:
                await chunks.aclose()

        return _stream(events())

    return await _answer(work)


# ---- completions -----------------------------------------------------------------------------


@router.post("/v1/completions")
async def completions(request: Request) -> Response:
    async def work() -> Response:
        req = await _parse(request, CompletionRequest)
        prompts = convert.prompts(req)
        natives = [validate(GenerateRequest, convert.completion_request(req, p)) for p in prompts]
        svc = _service(request)
        # every prompt's stream is read from the start (more prompts than slots must not wait
        # for slots that unread streams hold)
        fan = await fan_in([generate(svc, native) for native in natives])
        rid, created = objects.random_id("cmpl-"), int(time.time())
        echo = prompts if req.echo else None
        if not req.stream:
            results: list[list[GenerateResponse]] = [[] for _ in natives]
            try:
                async for i, native in fan.chunks():
                    results[i].append(native)
            finally:
                await fan.aclose()
            completion = objects.text_completion(
                results, rid=rid, created=created, echo_prompts=echo
            )
            return JSONResponse(completion.wire())
        include_usage = bool(req.stream_options and req.stream_options.include_usage)

        async def events() -> AsyncGenerator[bytes, None]:
            finals: dict[int, GenerateResponse] = {}
            echoed: set[int] = set()
            try:
                async for i, native in fan.chunks():
                    prefix = ""
                    if echo is not None and i not in echoed:
                        prefix = echo[i]
                        echoed.add(i)
                    if native.done:
                        finals[i] = native
                    chunk = objects.completion_chunk(
                        native, i, rid=rid, created=created, prefix=prefix
                    )
                    yield sse(chunk)
            finally:
                await fan.aclose()  # a client that left cancels every prompt's generation
            if include_usage:
                ordered = [finals[i] for i in sorted(finals)]
                model = ordered[0].model if ordered else req.model
                yield sse(
                    objects.completion_usage_chunk(ordered, rid=rid, created=created, model=model)
                )

        return _stream(events())

    return await _answer(work)


# ---- embeddings ------------------------------------------------------------------------------


@router.post("/v1/embeddings")
async def embeddings(request: Request) -> Response:
    async def work() -> Response:
        req = await _parse(request, EmbeddingRequest)
        encoding = convert.encoding_format(req)
        native = validate(EmbedRequest, convert.embed_request(req))
        resp = await embed(_service(request), native)
        return JSONResponse(objects.embedding_list(req.model, resp, encoding).wire())

    return await _answer(work)


# ---- models ----------------------------------------------------------------------------------


@router.get("/v1/models")
async def models(request: Request) -> Response:
    async def work() -> Response:
        listing = await catalog.tags(_service(request))
        return JSONResponse(objects.model_list(listing.models).wire())

    return await _answer(work)


@router.get("/v1/models/{model:path}")
async def retrieve_model(request: Request, model: str) -> Response:
    async def work() -> Response:
        store = _service(request).store
        name = parse_name(model)
        try:
            entry = await asyncio.to_thread(store.read, name)
        except ModelNotFound as e:
            raise ModelNotFound(model) from e
        created = int(entry.modified_at.timestamp())
        return JSONResponse(objects.model_object(model, created).wire())

    return await _answer(work)
