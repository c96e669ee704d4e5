"""Several generation streams answered as one (``/v1/completions`` with a list of prompts).

Each stream is read by a task of its own from the start, so every stream keeps moving whatever
the others do. Reading them one after the other instead (waiting for each one's first chunk
before starting the next) deadlocks as soon as there are more prompts than the model has slots
(``OLLAMA_NUM_PARALLEL``): the streams already started hold every slot, nobody reads them, so
they never finish, and the next prompt waits for a slot forever.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from typing import Generic, TypeVar

from corral.errors import InternalError

T = TypeVar("T")

_END = None


class FanIn(Generic[T]):
    """The chunks of several streams as they come, tagged with their stream's index.

    :meth:`started` waits until every stream has given its first chunk, raising the first
    failure (so that an error found while preparing a request, an unknown model or a full queue,
    is answered with its status before any byte is sent); :meth:`chunks` then yields every chunk
    (those read while waiting included), raising a stream's later failure where it happens.
    :meth:`aclose` stops every stream (a client that left, or a failure).
    """

    def __init__(self, streams: Sequence[AsyncGenerator[T, None]]) -> None:
        self._queue: asyncio.Queue[tuple[int, T | BaseException | None]] = asyncio.Queue()
        self._backlog: list[tuple[int, T]] = []
        self._started: set[int] = set()
        self._running = len(streams)
        self._tasks = [asyncio.create_task(self._pump(i, s)) for i, s in enumerate(streams)]

    async def _pump(self, i: int, stream: AsyncGenerator[T, None]) -> None:
        try:
            async for chunk in stream:
                self._queue.put_nowait((i, chunk))
        except Exception as e:
            self._queue.put_nowait((i, e))
        finally:
            await stream.aclose()
            self._queue.put_nowait((i, _END))

    async def _next(self) -> tuple[int, T] | None:
        """The next chunk of any stream; None once all have ended."""
        while self._running:
            i, item = await self._queue.get()
            if item is _END:
                self._running -= 1
                if i not in self._started:
                    raise InternalError("no response")
            elif isinstance(item, BaseException):
                raise item
            else:
                self._started.add(i)
                return i, item
        return None

    async def started(self) -> None:
        while len(self._started) < len(self._tasks):
            item = await self._next()
            if item is None:
                raise InternalError("no response")
            self._backlog.append(item)

    async def chunks(self) -> AsyncIterator[tuple[int, T]]:
        while self._backlog:
            yield self._backlog.pop(0)
        while (item := await self._next()) is not None:
            yield item

    async def aclose(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


async def fan_in(streams: Sequence[AsyncGenerator[T, None]]) -> FanIn[T]:
    """:class:`FanIn` of ``streams`` once each has started (closed again if one fails)."""
    fan = FanIn(streams)
    try:
        await fan.started()
    except BaseException:
        await fan.aclose()
        raise
    return fan
