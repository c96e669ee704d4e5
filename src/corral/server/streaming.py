"""NDJSON responses: progress fed from worker threads, and streams of typed chunks.

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
from typing import Any, TypeVar

import anyio
from fastapi.responses import JSONResponse, Response
from fastapi.responses import StreamingResponse as _StarletteStream

from corral.api.types import Out
from corral.errors import CorralError, InternalError

log = logging.getLogger(__name__)


class StreamingResponse(_StarletteStream):
    """A streamed answer that closes its body iterator however the stream ends.

    Starlette stops iterating when the client leaves (or the request is cancelled) but does not
    close the iterator: one interrupted while the response was being sent stays suspended until
    garbage collection, and with it whatever it holds (a generation, a runner slot, a transfer).
    """

    async def stream_response(self, send: Any) -> None:
        try:
            await super().stream_response(send)
        finally:
            close = getattr(self.body_iterator, "aclose", None)
            if close is not None:
                with anyio.CancelScope(shield=True):
                    await close()


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


C = TypeVar("C", bound=Out)


def json_response(obj: Out, status_code: int = 200) -> Response:
    return Response(obj.wire_bytes(), status_code=status_code, media_type="application/json")


async def first_chunk(chunks: AsyncGenerator[C, None]) -> C:
    """The first chunk of a stream: an error found while preparing (unknown model, bad option,
    a full queue...) is raised here, before any byte is sent, to be answered with its status."""
    try:
        return await anext(chunks)
    except StopAsyncIteration:
        raise InternalError("no response") from None
    except BaseException:
        await chunks.aclose()
        raise


async def stream_response(
    chunks: AsyncGenerator[C, None], stream: bool, merge: Callable[[list[C]], C]
) -> Response:
    """NDJSON of ``chunks``, or the one merged object when ``stream`` is false; an error after
    the first chunk ends the stream as ``{"error": ...}`` (or is the answer, unstreamed)."""
    first = await first_chunk(chunks)
    if not stream:
        items = [first]
        try:
            async for item in chunks:
                items.append(item)
        finally:
            await chunks.aclose()
        return json_response(merge(items))

    async def body() -> AsyncIterator[bytes]:
        try:
            yield first.wire_bytes() + b"\n"
            async for item in chunks:
                yield item.wire_bytes() + b"\n"
        except CorralError as e:
            yield ndjson_line({"error": e.message})
        except Exception as e:
            log.exception("stream failed")
            yield ndjson_line({"error": str(e) or type(e).__name__})
        finally:
            await chunks.aclose()

    return StreamingResponse(body(), media_type="application/x-ndjson")
