"""Loaded runners by model: loads, reference counts, keep_alive expiry, LRU eviction, the queue.

Each model's runner moves through ``LOADING -> READY (-> DRAINING) -> UNLOADING``; a load that
fails or is abandoned goes from ``LOADING`` to ``UNLOADING`` too. No lock exists: every decision
is a synchronous step of the event loop, and the slow parts (starting a runner process, closing
one) run in tasks of their own, so a request for a loaded model is never delayed by another
model's load or unload. Waiters sleep on a "something changed" event and look again.

A request takes three things and gives each back with a plain call that cancellation cannot
skip: a queue place while it waits for another request's load, for room or for a slot
(:class:`~.slots.QueueLimit`; the request that starts a load is not queued, loading is its
work), a reference to the runner (``refs``, held for the whole request) and, for a generation,
one of the runner's slots (:class:`~.slots.SlotPool`). A load that nobody waits for any more
is cancelled, and the runner factory reaps its process.

Ollama's semantics are kept: ``keep_alive`` of the last request decides how long an idle runner
stays (``0`` unloads it when idle, infinite never expires); past ``OLLAMA_MAX_LOADED_MODELS`` the
least recently used idle runner is evicted (and a new load waits while every runner is busy); a
request whose load-time options differ from the loaded runner's drains it (no new requests join)
and loads it again once idle.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import math
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from corral.config import Settings
from corral.engine.types import LoadSpec
from corral.errors import CorralError, InternalError
from corral.metrics import Gauge, Labels, Metrics, model_label
from corral.scheduler.cpu import available_cores, shares
from corral.scheduler.slots import QueueLimit, QueuePlace, SlotHold, SlotPool
from corral.scheduler.types import ModelRef, Runner, RunnerFactory

log = logging.getLogger(__name__)


class State(enum.Enum):
    LOADING = "loading"
    READY = "ready"
    DRAINING = "draining"  # no new requests; unloads when the last one leaves
    UNLOADING = "unloading"  # being stopped (or its load abandoned); still counts as loaded
    FAILED = "failed"  # the load failed; ``error`` says why


@dataclass(eq=False)
class Loaded:
    """One model's runner and the requests that use it."""

    ref: ModelRef
    keep_alive: float
    state: State = State.LOADING
    runner: Runner | None = None
    refs: int = 0
    waiters: int = 0  # requests waiting for this load to finish
    expires_at: float = math.inf  # wall clock
    last_used: float = field(default_factory=time.monotonic)
    timer: asyncio.TimerHandle | None = None
    load_task: asyncio.Task[None] | None = None
    error: CorralError | None = None
    closed: asyncio.Event = field(default_factory=asyncio.Event)
    slots: SlotPool = field(init=False)
    threads: int = 0  # compute threads the runner was last told to use (0: its own choice)

    def __post_init__(self) -> None:
        self.slots = SlotPool(self.ref.spec.n_parallel)

    @property
    def key(self) -> str:
        return self.ref.key

    @property
    def name(self) -> str:
        return self.ref.name

    @property
    def digest(self) -> str:
        return self.ref.digest

    @property
    def details(self) -> dict[str, Any]:
        return self.ref.details

    @property
    def spec(self) -> LoadSpec:
        return self.ref.spec

    def memory_bytes(self) -> int:
        """Resident memory of the runner process (the model file size if unknown); reads
        ``/proc``, so call it from a thread."""
        pid = self.runner.pid if self.runner is not None else 0
        try:
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        return int(line.split()[1]) * 1024
        except (OSError, ValueError, IndexError):
            pass
        try:
            return Path(self.spec.model_path).stat().st_size
        except OSError:
            return 0


@dataclass(eq=False)
class Lease:
    """A request's hold on a loaded runner; ``load_duration_ns`` is 0 unless it waited for the
    load. A generation also takes a slot with :meth:`take_slot`."""

    loaded: Loaded
    load_duration_ns: int
    queue: QueueLimit

    @property
    def runner(self) -> Runner:
        assert self.loaded.runner is not None
        return self.loaded.runner

    async def take_slot(self) -> SlotHold:
        """One of the runner's slots; waiting for it takes a queue place (or a 503)."""
        hold = self.loaded.slots.try_take()
        if hold is not None:
            return hold
        place = self.queue.enter()
        try:
            return await self.loaded.slots.take()
        finally:
            place.leave()


def _as_client_error(e: BaseException) -> CorralError:
    if isinstance(e, CorralError):
        return e
    return InternalError(f"error loading model: {e or type(e).__name__}")


def _state_after_wait(cur: Loaded) -> State:
    """``cur.state`` read anew (a type checker would keep its value from before the wait)."""
    return cur.state


def _fresh(e: CorralError) -> CorralError:
    """A copy to raise in one more waiter (one exception object, one traceback)."""
    copy = CorralError(e.message)
    copy.status = e.status
    return copy


class Scheduler:
    def __init__(
        self, settings: Settings, factory: RunnerFactory, metrics: Metrics | None = None
    ) -> None:
        self.settings = settings
        self.factory = factory
        self.metrics = metrics or Metrics()
        self._add_gauges()
        self.loaded: dict[str, Loaded] = {}
        self.queue = QueueLimit(settings.max_queue)
        self._unloading: set[Loaded] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._changed = asyncio.Event()
        self._closing = False
        self.cores = available_cores()

    def _add_gauges(self) -> None:
        def per_model(value: Callable[[Loaded], float]) -> Callable[[], list[tuple[Labels, float]]]:
            return lambda: [
                (model_label(x.name), value(x))
                for x in sorted(self.loaded.values(), key=lambda x: x.name)
                if x.state is not State.LOADING
            ]

        for gauge in (
            Gauge(
                "corral_queued_requests",
                "Requests waiting for a load, for room or for a slot (OLLAMA_MAX_QUEUE counts "
                "these).",
                lambda: [((), float(self.queue.waiting))],
            ),
            Gauge(
                "corral_loaded_models",
                "Runners loaded or loading.",
                lambda: [((), float(len(self.loaded)))],
            ),
            Gauge(
                "corral_busy_slots", "Generation slots in use.", per_model(lambda x: x.slots.busy)
            ),
            Gauge(
                "corral_slots",
                "Generation slots of each runner.",
                per_model(lambda x: x.slots.size),
            ),
        ):
            self.metrics.add_gauge(gauge)

    # ---- requests --------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def use(self, ref: ModelRef, keep_alive: float) -> AsyncIterator[Lease]:
        """Hold a loaded runner for ``ref`` for the duration of one request."""
        lease = await self._acquire(ref, keep_alive)
        try:
            yield lease
        finally:
            self._release(lease.loaded, keep_alive)

    async def _acquire(self, ref: ModelRef, keep_alive: float) -> Lease:
        place: QueuePlace | None = None
        started: Loaded | None = None  # the load this request began: its own work, not a wait
        try:
            while True:
                if self._closing:
                    raise InternalError("server is shutting down")
                cur = self.loaded.get(ref.key)
                if cur is not None and cur.state is State.READY:
                    assert cur.runner is not None
                    if not cur.runner.alive:
                        log.warning("runner for %s died; loading it again", cur.name)
                        self._retire(cur)
                        continue
                    if cur.spec != ref.spec:
                        log.info("reloading %s with new load options", cur.name)
                        cur.state = State.DRAINING
                        self._settle(cur)
                        continue
                    self._leave(place)
                    return Lease(self._take(cur, keep_alive), 0, self.queue)
                if cur is None:
                    if self._has_room():
                        cur = started = self._begin_load(ref, keep_alive)
                    elif not self._unloading and self._evict_idle():
                        continue  # wait for runners being stopped rather than evict more
                changed = self._changed
                if place is None and (cur is None or cur is not started):
                    place = self.queue.enter()
                if cur is None or cur.state is not State.LOADING or cur.spec != ref.spec:
                    await changed.wait()  # room, a drained runner, or a load of other options
                    continue
                cur.waiters += 1
                try:
                    await changed.wait()
                except BaseException:
                    cur.waiters -= 1
                    self._settle(cur)
                    raise
                cur.waiters -= 1
                state = _state_after_wait(cur)
                if state is State.FAILED and cur.error is not None:
                    raise _fresh(cur.error)
                if state is State.READY and self.loaded.get(ref.key) is cur:
                    assert cur.runner is not None
                    self._leave(place)
                    loaded = self._take(cur, keep_alive)
                    return Lease(loaded, cur.runner.load_duration_ns, self.queue)
                if state is not State.LOADING:
                    self._settle(cur)  # drained while we waited: we may have been its last hold
        except BaseException:
            self._leave(place)
            raise

    @staticmethod
    def _leave(place: QueuePlace | None) -> None:
        if place is not None:
            place.leave()

    def _take(self, cur: Loaded, keep_alive: float) -> Loaded:
        self._touch(cur, keep_alive)
        cur.refs += 1
        return cur

    def _release(self, cur: Loaded, keep_alive: float) -> None:
        cur.refs -= 1
        if cur.state in (State.READY, State.DRAINING):
            self._touch(cur, keep_alive)
        self._settle(cur)
        self._notify()

    def _touch(self, cur: Loaded, keep_alive: float) -> None:
        if cur.timer is not None:
            cur.timer.cancel()
            cur.timer = None
        cur.keep_alive = keep_alive
        cur.last_used = time.monotonic()
        cur.expires_at = time.time() + keep_alive if math.isfinite(keep_alive) else math.inf

    # ---- state changes (synchronous: no request can interleave) ------------------------------

    def _settle(self, cur: Loaded) -> None:
        """Act on a runner that may have become unwanted: stop an abandoned load, unload an
        idle runner that should go, or arm its keep_alive timer."""
        if cur.refs or cur.waiters:
            return
        if (
            cur.state is State.LOADING
            or cur.state is State.DRAINING
            or (cur.state is State.READY and cur.keep_alive <= 0)
        ):
            self._retire(cur)
        elif cur.state is State.READY and math.isfinite(cur.keep_alive) and cur.timer is None:
            loop = asyncio.get_running_loop()
            cur.timer = loop.call_later(max(0.0, cur.keep_alive), self._expire, cur)

    def _expire(self, cur: Loaded) -> None:
        cur.timer = None
        current = cur.state is State.READY and self.loaded.get(cur.key) is cur
        if current and not cur.refs and not cur.waiters:
            log.info("keep_alive of %s expired", cur.name)
            self._retire(cur)

    def _has_room(self) -> bool:
        return len(self.loaded) + len(self._unloading) < self.settings.max_loaded_models

    def _evict_idle(self) -> bool:
        idle = [
            x
            for x in self.loaded.values()
            if x.state is State.READY and not x.refs and not x.waiters
        ]
        if not idle:
            return False
        victim = min(idle, key=lambda x: x.last_used)
        log.info("evicting %s to make room", victim.name)
        self.metrics.record_eviction(victim.name)
        self._retire(victim)
        return True

    def _begin_load(self, ref: ModelRef, keep_alive: float) -> Loaded:
        cur = Loaded(ref, keep_alive)
        self._touch(cur, keep_alive)
        self.loaded[ref.key] = cur
        cur.load_task = self._spawn(self._load(cur))
        log.info("loading %s", ref.name)
        return cur

    async def _load(self, cur: Loaded) -> None:
        started = time.monotonic()
        try:
            runner = await self.factory(cur.spec)
        except asyncio.CancelledError:
            log.info("load of %s abandoned", cur.name)
            self._gone(cur)  # the factory reaps the process it started
            return
        except Exception as e:
            log.warning("loading %s failed: %s", cur.name, e)
            self.metrics.record_load(cur.name, time.monotonic() - started, ok=False)
            cur.error = _as_client_error(e)
            cur.state = State.FAILED
            if self.loaded.get(cur.key) is cur:
                del self.loaded[cur.key]
            self._gone(cur)
            return
        cur.runner = runner
        self.metrics.record_load(cur.name, time.monotonic() - started, ok=True)
        if cur.state is not State.LOADING:  # retired between the factory's end and now
            self._spawn(self._close(cur))
            return
        cur.threads = self._wanted_threads(cur)
        cur.slots.on_busy_change = self._rebalance
        cur.state = State.READY
        self._settle(cur)
        self._notify()

    def _wanted_threads(self, cur: Loaded) -> int:
        """The runner's own thread count: its model's ``num_thread``, else one per core."""
        assert cur.runner is not None
        reported = cur.runner.info.get("n_threads")
        return int(reported) if isinstance(reported, int) and reported > 0 else self.cores

    def _rebalance(self) -> None:
        """Give busy runners their share of the cores (see :mod:`.cpu`)."""
        ready = [x for x in self.loaded.values() if x.runner is not None and x.threads]
        wants = {id(x): self._wanted_threads(x) for x in ready}
        busy = [id(x) for x in ready if x.slots.busy]
        share = shares(wants, busy, self.cores)
        for x in ready:
            n = share[id(x)]
            if n != x.threads:
                assert x.runner is not None
                x.threads = n
                x.runner.set_threads(n)

    def _retire(self, cur: Loaded) -> None:
        """Stop ``cur``: unload its runner, or abandon its load. It keeps counting as loaded
        until its process is gone."""
        if cur.state in (State.UNLOADING, State.FAILED):
            return
        if self.loaded.get(cur.key) is cur:
            del self.loaded[cur.key]
        if cur.timer is not None:
            cur.timer.cancel()
            cur.timer = None
        was_loading = cur.state is State.LOADING
        cur.state = State.UNLOADING
        self._unloading.add(cur)
        if was_loading and cur.runner is None:
            assert cur.load_task is not None
            cur.load_task.cancel()
        else:
            log.info("unloading %s", cur.name)
            self._spawn(self._close(cur))
        self._notify()

    async def _close(self, cur: Loaded) -> None:
        try:
            if cur.runner is not None:
                await cur.runner.close()
        except Exception:
            log.exception("closing the runner of %s failed", cur.name)
        finally:
            self._gone(cur)

    def _gone(self, cur: Loaded) -> None:
        if cur.state is not State.FAILED:
            cur.state = State.UNLOADING
        self._unloading.discard(cur)
        if self.loaded.get(cur.key) is cur:
            del self.loaded[cur.key]
        cur.closed.set()
        self._notify()

    def _notify(self) -> None:
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # ---- management --------------------------------------------------------------------------

    async def unload(self, key: str) -> bool:
        """Unload a model as soon as its requests in flight end (``keep_alive: 0`` with no
        prompt, ``corral stop``); new requests wait for a fresh load. False if not loaded."""
        found = False
        while True:
            cur = self.loaded.get(key)
            if cur is None:
                return found
            found = True
            if cur.state is State.LOADING:
                changed = self._changed
                await changed.wait()
                continue
            if cur.state is State.READY:
                cur.state = State.DRAINING
                self._settle(cur)
            await cur.closed.wait()
            return True

    def running(self) -> list[Loaded]:
        """Loaded runners (not those still loading), most recently used first."""
        ready = [x for x in self.loaded.values() if x.runner is not None]
        return sorted(ready, key=lambda x: x.last_used, reverse=True)

    def stats(self) -> dict[str, int]:
        """Counts for tests and benchmarks: queued requests, references, busy slots, runners."""
        entries = list(self.loaded.values())
        return {
            "queued": self.queue.waiting,
            "refs": sum(x.refs for x in entries),
            "busy_slots": sum(x.slots.busy for x in entries),
            "loaded": len(entries),
            "unloading": len(self._unloading),
        }

    async def close(self) -> None:
        """Stop every runner and wait for their processes (server shutdown)."""
        self._closing = True
        for cur in list(self.loaded.values()):
            self._retire(cur)
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
