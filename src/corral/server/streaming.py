"""NDJSON progress responses fed from worker threads.

A worker calls ``emit`` with each progress object; the client sees them as NDJSON lines. An error
after the stream has started becomes the last line ``{"error": ...}``. With ``stream: false``
the client gets only the final object, or the error with its status code.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from typing import Any

from fastapi.responses import JSONResponse, Response, StreamingResponse

from corral.errors import CorralError

log = logging.getLogger(__name__)

Emit = Callable[[dict[str, Any]], None]
Work = Callable[[Emit], None]

_END = object()


async def run_with_progress(work: Work) -> AsyncIterator[dict[str, Any] | CorralError]:
    """Run ``work`` in a thread and yield what it emits; a failure is yielded as an error."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[Any] = asyncio.Queue()

    def put(item: Any) -> None:
        loop.call_soon_threadsafe(queue.put_nowait, item)

    def runner() -> None:
        try:
            work(put)
        except CorralError as e:
            put(e)
        except Exception as e:
            log.exception("background work failed")
            put(CorralError(str(e) or type(e).__name__))
        finally:
            put(_END)

    threading.Thread(target=runner, name="corral-work", daemon=True).start()
    while True:
        item = await queue.get()
        if item is _END:
            return
        yield item


def ndjson_line(obj: dict[str, Any]) -> bytes:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode() + b"\n"


def error_response(err: CorralError) -> JSONResponse:
    return JSONResponse({"error": err.message}, status_code=err.status)


async def progress_response(work: Work, stream: bool) -> Response:
    events = run_with_progress(work)
    if not stream:
        last: dict[str, Any] = {}
        async for item in events:
            if isinstance(item, CorralError):
                return error_response(item)
            last = item
        return JSONResponse(last)

    async def body() -> AsyncIterator[bytes]:
        async for item in events:
            if isinstance(item, CorralError):
                yield ndjson_line({"error": item.message})
                return
            yield ndjson_line(item)

    return StreamingResponse(body(), media_type="application/x-ndjson")


Aggregate = Callable[[list[dict[str, Any]]], dict[str, Any]]


async def stream_response(
    chunks: AsyncGenerator[dict[str, Any], None], stream: bool, aggregate: Aggregate
) -> Response:
    """NDJSON of ``chunks``, or one aggregated object when ``stream`` is false.

    The first chunk is awaited before answering, so an error found while preparing (unknown
    model, bad option, ...) is answered with its own status code; a later one ends the stream
    as ``{"error": ...}``.
    """
    try:
        first = await anext(chunks)
    except StopAsyncIteration:
        return JSONResponse({"error": "no response"}, status_code=500)
    if not stream:
        items = [first]
        try:
            async for item in chunks:
                items.append(item)
        finally:
            await chunks.aclose()
        return JSONResponse(aggregate(items))

    async def body() -> AsyncIterator[bytes]:
        try:
            yield ndjson_line(first)
            async for item in chunks:
                yield ndjson_line(item)
        except CorralError as e:
            yield ndjson_line({"error": e.message})
        except Exception as e:
            log.exception("stream failed")
            yield ndjson_line({"error": str(e) or type(e).__name__})
        finally:
            await chunks.aclose()

    return StreamingResponse(body(), media_type="application/x-ndjson")
