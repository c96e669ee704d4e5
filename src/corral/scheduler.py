"""Loaded runners by model: reference counts, keep_alive expiry, LRU eviction, the queue limit.

The runner factory is injected, so tests can run the whole server on the fake engine.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from corral.config import Settings
from corral.engine.types import LoadSpec, SamplingParams
from corral.errors import ServerBusy

log = logging.getLogger(__name__)


class Runner(Protocol):
    spec: LoadSpec
    info: dict[str, Any]
    n_ctx: int
    pid: int
    load_duration_ns: int

    @property
    def alive(self) -> bool: ...
    async def tokenize(self, text: str, add_special: bool = True) -> list[int]: ...
    async def detokenize(self, tokens: list[int]) -> str: ...
    async def embed(self, inputs: list[list[int]]) -> list[list[float]]: ...
    def cancel(self, request_id: int) -> None: ...
    def expect(self) -> None: ...
    def unexpect(self) -> None: ...
    def generate(
        self, prompt_tokens: list[int], sampling: SamplingParams, *, expected: bool = False
    ) -> AsyncIterator[dict[str, Any]]: ...
    async def close(self) -> None: ...


RunnerFactory = Callable[[LoadSpec], Awaitable[Runner]]


@dataclass
class Loaded:
    """One model in memory."""

    key: str
    name: str
    digest: str
    details: dict[str, Any]
    spec: LoadSpec
    runner: Runner
    refs: int = 0
    keep_alive: float = 300.0
    expires_at: float = math.inf  # wall clock
    last_used: float = field(default_factory=time.monotonic)
    timer: asyncio.TimerHandle | None = None

    def memory_bytes(self) -> int:
        """Resident memory of the runner process (the model file size if unknown)."""
        try:
            with open(f"/proc/{self.runner.pid}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        return int(line.split()[1]) * 1024
        except (OSError, ValueError, IndexError):
            pass
        try:
            return Path(self.spec.model_path).stat().st_size
        except OSError:
            return 0


@dataclass
class Lease:
    """A request's hold on a loaded model; ``load_duration_ns`` is 0 when it was already loaded."""

    loaded: Loaded
    load_duration_ns: int
    announced: bool = False  # the runner expects a generate request from this lease

    @property
    def runner(self) -> Runner:
        return self.loaded.runner


class Scheduler:
    def __init__(self, settings: Settings, factory: RunnerFactory) -> None:
        self.settings = settings
        self.factory = factory
        self.loaded: dict[str, Loaded] = {}
        self.pending = 0
        self._lock = asyncio.Lock()
        self._changed = asyncio.Condition(self._lock)

    @contextlib.asynccontextmanager
    async def use(
        self,
        key: str,
        name: str,
        digest: str,
        details: dict[str, Any],
        spec: LoadSpec,
        keep_alive: float,
    ) -> AsyncIterator[Lease]:
        """Hold a loaded runner for ``spec`` for the duration of one request."""
        if self.pending >= self.settings.max_queue:
            raise ServerBusy()
        self.pending += 1
        try:
            lease = await self._acquire(key, name, digest, details, spec, keep_alive)
        finally:
            self.pending -= 1
        try:
            yield lease
        finally:
            await self._release(lease.loaded, keep_alive)

    async def _acquire(
        self,
        key: str,
        name: str,
        digest: str,
        details: dict[str, Any],
        spec: LoadSpec,
        keep_alive: float,
    ) -> Lease:
        async with self._changed:
            while True:
                cur = self.loaded.get(key)
                if cur is not None and not cur.runner.alive:
                    log.warning("runner for %s died; reloading", name)
                    await self._unload_locked(cur)
                    cur = None
                if cur is not None and cur.spec != spec:
                    if cur.refs:
                        await self._changed.wait()
                        continue
                    await self._unload_locked(cur)
                    cur = None
                if cur is not None:
                    self._touch(cur, keep_alive)
                    cur.refs += 1
                    return Lease(cur, 0)
                if len(self.loaded) >= self.settings.max_loaded_models:
                    idle = [x for x in self.loaded.values() if x.refs == 0]
                    if not idle:
                        await self._changed.wait()
                        continue
                    await self._unload_locked(min(idle, key=lambda x: x.last_used))
                    continue
                runner = await self.factory(spec)
                cur = Loaded(key, name, digest, details, spec, runner)
                self.loaded[key] = cur
                self._touch(cur, keep_alive)
                cur.refs += 1
                return Lease(cur, runner.load_duration_ns)

    def _touch(self, cur: Loaded, keep_alive: float) -> None:
        if cur.timer is not None:
            cur.timer.cancel()
            cur.timer = None
        cur.keep_alive = keep_alive
        cur.last_used = time.monotonic()
        cur.expires_at = time.time() + keep_alive if math.isfinite(keep_alive) else math.inf

    async def _release(self, cur: Loaded, keep_alive: float) -> None:
        async with self._changed:
            cur.refs -= 1
            self._touch(cur, keep_alive)
            if cur.refs == 0 and self.loaded.get(cur.key) is cur:
                if keep_alive <= 0:
                    await self._unload_locked(cur)
                elif math.isfinite(keep_alive):
                    loop = asyncio.get_running_loop()
                    cur.timer = loop.call_later(
                        keep_alive, lambda: asyncio.ensure_future(self._expire(cur))
                    )
            self._changed.notify_all()

    async def _expire(self, cur: Loaded) -> None:
        async with self._changed:
            if (
                cur.refs == 0
                and self.loaded.get(cur.key) is cur
                and cur.expires_at <= time.time() + 1
            ):
                await self._unload_locked(cur)
                self._changed.notify_all()

    async def _unload_locked(self, cur: Loaded) -> None:
        if cur.timer is not None:
            cur.timer.cancel()
        if self.loaded.get(cur.key) is cur:
            del self.loaded[cur.key]
        log.info("unloading %s", cur.name)
        await cur.runner.close()

    async def unload(self, key: str) -> bool:
        """Unload a model now (keep_alive 0); waits for requests in flight to finish."""
        async with self._changed:
            while (cur := self.loaded.get(key)) is not None and cur.refs:
                await self._changed.wait()
            if cur is None:
                return False
            await self._unload_locked(cur)
            self._changed.notify_all()
            return True

    def running(self) -> list[Loaded]:
        return sorted(self.loaded.values(), key=lambda x: x.last_used, reverse=True)

    async def close(self) -> None:
        async with self._changed:
            for cur in list(self.loaded.values()):
                await self._unload_locked(cur)
