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
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Sequence
from typing import Any, TypeVar

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
from corral.openai import convert, objects
from corral.openai.protocol import (
    ChatCompletionRequest,
    CompletionRequest,
    EmbeddingRequest,
    OpenAIWire,
)
from corral.server.body import decode_json, read_body, validate
from corral.server.streaming import StreamingResponse, first_chunk
from corral.service import Service, catalog
from corral.service.chat import chat
from corral.service.embed import embed
from corral.service.generate import generate

log = logging.getLogger(__name__)

router = APIRouter()

Chunks = AsyncGenerator[GenerateResponse, None]
W = TypeVar("W", bound=OpenAIWire)
C = TypeVar("C", ChatResponse, GenerateResponse)

DONE = b"data: [DONE]\n\n"


def _service(request: Request) -> Service:
    svc: Service = request.app.state.services
    return svc


def openai_error(status: int, message: str) -> JSONResponse:
    return JSONResponse(objects.error_body(status, message), status_code=status)


def sse(obj: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode() + b"\n\n"


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
            yield sse(objects.error_body(e.status, e.message))
        except Exception as e:
            log.exception("OpenAI stream failed")
            yield sse(objects.error_body(500, str(e) or type(e).__name__))
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
            return JSONResponse(objects.chat_completion(items, rid=rid, created=created))
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


async def _open_all(
    svc: Service, natives: Sequence[GenerateRequest]
) -> list[tuple[GenerateResponse, Chunks]]:
    opened: list[tuple[GenerateResponse, Chunks]] = []
    try:
        for native in natives:
            chunks = generate(svc, native)
            opened.append((await first_chunk(chunks), chunks))
    except BaseException:
        for _, chunks in opened:
            await chunks.aclose()
        raise
    return opened


async def _merge(
    opened: Sequence[tuple[GenerateResponse, Chunks]],
) -> AsyncIterator[tuple[int, GenerateResponse]]:
    """The chunks of several native streams as they come, tagged with their stream's index."""
    queue: asyncio.Queue[tuple[int, GenerateResponse] | BaseException | None] = asyncio.Queue()

    async def pump(i: int, first: GenerateResponse, chunks: Chunks) -> None:
        try:
            await queue.put((i, first))
            async for c in chunks:
                await queue.put((i, c))
        except Exception as e:
            await queue.put(e)
        finally:
            await chunks.aclose()
            await queue.put(None)

    tasks = [asyncio.create_task(pump(i, f, c)) for i, (f, c) in enumerate(opened)]
    try:
        running = len(tasks)
        while running:
            item = await queue.get()
            if item is None:
                running -= 1
            elif isinstance(item, BaseException):
                raise item
            else:
                yield item
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


@router.post("/v1/completions")
async def completions(request: Request) -> Response:
    async def work() -> Response:
        req = await _parse(request, CompletionRequest)
        prompts = convert.prompts(req)
        natives = [validate(GenerateRequest, convert.completion_request(req, p)) for p in prompts]
        opened = await _open_all(_service(request), natives)
        rid, created = objects.random_id("cmpl-"), int(time.time())
        echo = prompts if req.echo else None
        if not req.stream:
            tasks = [asyncio.create_task(_rest(f, c)) for f, c in opened]
            try:
                results = await asyncio.gather(*tasks)
            finally:
                for t in tasks:
                    t.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
            return JSONResponse(
                objects.text_completion(results, rid=rid, created=created, echo_prompts=echo)
            )
        include_usage = bool(req.stream_options and req.stream_options.include_usage)

        async def events() -> AsyncGenerator[bytes, None]:
            finals: dict[int, GenerateResponse] = {}
            echoed: set[int] = set()
            async for i, native in _merge(opened):
                prefix = ""
                if echo is not None and i not in echoed:
                    prefix = echo[i]
                    echoed.add(i)
                if native.done:
                    finals[i] = native
                yield sse(
                    objects.completion_chunk(native, i, rid=rid, created=created, prefix=prefix)
                )
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
        return JSONResponse(objects.embedding_list(req.model, resp, encoding))

    return await _answer(work)


# ---- models ----------------------------------------------------------------------------------


@router.get("/v1/models")
async def models(request: Request) -> Response:
    async def work() -> Response:
        listing = await catalog.tags(_service(request))
        return JSONResponse(objects.model_list(listing.models))

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
        return JSONResponse(objects.model_object(model, created))

    return await _answer(work)
