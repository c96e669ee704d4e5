"""Places a request can hold and give back: a runner's generation slots and the queue limit.

Both are taken with an ``await`` and given back by a plain call that cannot be interrupted, so a
request cancelled at any point returns exactly what it took:

* :class:`SlotPool` hands a free slot of a runner to the first waiter (FIFO). A waiter that is
  cancelled after a slot was handed to it passes the slot on instead of losing it.
* :class:`SlotHold` is one taken slot. The runner may :meth:`~SlotHold.defer` its release until
  it has really stopped the request (a cancelled generation still occupies its engine slot until
  the next step), so the pool never admits more requests than the runner has slots.
* :class:`QueueLimit` counts requests that wait, for a load or for a slot, and refuses a new
  waiter with Ollama's 503 once ``OLLAMA_MAX_QUEUE`` of them are waiting.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Callable

from corral.errors import ServerBusy


class SlotPool:
    """``size`` slots, handed out first come first served."""

    def __init__(self, size: int, on_busy_change: Callable[[], None] | None = None) -> None:
        self.size = max(1, size)
        self.free = self.size
        self.on_busy_change = on_busy_change  # called when the pool turns busy or idle
        self._waiters: deque[asyncio.Future[None]] = deque()

    @property
    def busy(self) -> int:
        return self.size - self.free

    @property
    def waiting(self) -> int:
        return sum(1 for f in self._waiters if not f.done())

    def try_take(self) -> SlotHold | None:
        """A slot at once, or None when the caller would have to wait."""
        if self.free > 0 and not self.waiting:
            self.free -= 1
            if self.free == self.size - 1:
                self._changed()
            return SlotHold(self)
        return None

    async def take(self) -> SlotHold:
        hold = self.try_take()
        if hold is not None:
            return hold
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(fut)
        try:
            await fut
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled():
                self._give()  # handed to us just as we were cancelled: pass it on
            else:
                self._forget(fut)
            raise
        return SlotHold(self)

    def _forget(self, fut: asyncio.Future[None]) -> None:
        with contextlib.suppress(ValueError):
            self._waiters.remove(fut)

    def _give(self) -> None:
        while self._waiters:
            fut = self._waiters.popleft()
            if not fut.done():
                fut.set_result(None)
                return
        self.free = min(self.size, self.free + 1)
        if self.free == self.size:
            self._changed()

    def _changed(self) -> None:
        if self.on_busy_change is not None:
            self.on_busy_change()


class SlotHold:
    """One slot of a :class:`SlotPool`; :meth:`release` is idempotent."""

    def __init__(self, pool: SlotPool) -> None:
        self._pool = pool
        self._state = "held"  # held -> released, or held -> deferred -> released

    @property
    def released(self) -> bool:
        return self._state == "released"

    def release(self) -> None:
        """Give the slot back now, unless the runner has taken over its release."""
        if self._state == "held":
            self._state = "released"
            self._pool._give()

    def defer(self) -> Callable[[], None]:
        """Hand the release to the caller (a runner that still holds the request): from now on
        :meth:`release` does nothing and the returned function gives the slot back, once."""
        if self._state != "held":
            return _noop
        self._state = "deferred"

        def finish() -> None:
            if self._state == "deferred":
                self._state = "released"
                self._pool._give()

        return finish


def _noop() -> None:
    return None


class QueueLimit:
    """How many requests are waiting; refuses waiters past ``limit`` (Ollama's 503)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.waiting = 0

    def enter(self) -> QueuePlace:
        if self.waiting >= self.limit:
            raise ServerBusy()
        self.waiting += 1
        return QueuePlace(self)


class QueuePlace:
    """A place in the queue; :meth:`leave` is idempotent."""

    def __init__(self, limit: QueueLimit) -> None:
        self._limit: QueueLimit | None = limit

    def leave(self) -> None:
        if self._limit is not None:
            self._limit.waiting -= 1
            self._limit = None
