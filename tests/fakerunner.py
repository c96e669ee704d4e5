"""In-process runners over the fake engine, for tests of the scheduler, the services and the
routes without runner processes.

:class:`InProcessRunner` implements the scheduler's ``Runner`` protocol over a
:class:`~corral.engine.fake.FakeEngine` whose steps run in an asyncio task. ``gate`` (an
``asyncio.Event``, set by default) is awaited before each step, so a test can freeze generation
at a known point and release it; ``pause_after`` clears the gate by itself once the engine has
made that many steps. :class:`Factory` makes such runners and records loads; a load
can be held at a gate of its own or made to fail, and abandoned loads are recorded.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass, field
from typing import Any

from corral.engine.fake import FakeEngine, Script
from corral.engine.process import RunnerError, RunnerLoadError
from corral.engine.types import (
    DoneEvent,
    EngineEvent,
    GenerateRequest,
    HeldSlot,
    LoadSpec,
    SamplingParams,
)
from corral.errors import BadRequest


class InProcessRunner:
    """The ``Runner`` protocol over a ``FakeEngine`` stepped by an asyncio task."""

    def __init__(self, spec: LoadSpec, script: Script | None = None, **engine: Any) -> None:
        self.spec = spec
        self.engine = FakeEngine(spec, script, **engine)
        self.info = self.engine.model_info()
        self.n_ctx = self.engine.n_ctx
        self.pid = 0
        self.load_duration_ns = 1_000_000
        self.gate = asyncio.Event()
        self.gate.set()
        self.pause_after: int | None = None
        self.cancels = 0  # cancel requests seen (the server stopping a request)
        self.closed = False
        self.dead = False
        self.submitted = 0
        self.expected = 0
        self._ids = itertools.count(1)
        self._queues: dict[int, asyncio.Queue[EngineEvent | None]] = {}
        self._zombies: dict[int, Callable[[], None]] = {}
        self._stepping: asyncio.Task[None] | None = None

    @property
    def alive(self) -> bool:
        return not self.closed and not self.dead

    @property
    def active(self) -> int:
        """Requests the engine holds (queued or in a slot)."""
        return len(self.engine._active) + len(self.engine._queue)

    def _check(self) -> None:
        if not self.alive:
            raise RunnerError("llama runner process has terminated")

    async def tokenize(self, text: str, add_special: bool = True) -> list[int]:
        self._check()
        return self.engine.tokenize(text, add_special=add_special)

    async def detokenize(self, tokens: list[int]) -> str:
        self._check()
        return self.engine.detokenize(tokens)

    async def embed(self, inputs: list[list[int]]) -> list[list[float]]:
        self._check()
        return self.engine.embed(inputs)

    async def tokenize_media(self, text: str, images: list[dict[str, Any]]) -> list[int]:
        self._check()
        try:
            return self.engine.tokenize_media(text, images)
        except ValueError as e:
            raise BadRequest(str(e)) from None

    def cancel(self, request_id: int) -> None:
        self.cancels += 1
        self.engine.cancel(request_id)
        self._kick()

    def expect(self) -> None:
        self.expected += 1

    def unexpect(self) -> None:
        self.expected -= 1

    def set_threads(self, n: int) -> None:
        self.engine.set_threads(n)

    def die(self) -> None:
        """The process crashed: every request in flight gets an error."""
        self.dead = True
        for q in self._queues.values():
            q.put_nowait(None)
        zombies, self._zombies = self._zombies, {}
        for release in zombies.values():
            release()

    def _kick(self) -> None:
        if self._stepping is None or self._stepping.done():
            self._stepping = asyncio.get_running_loop().create_task(self._step_all())

    async def _step_all(self) -> None:
        while self.engine.has_work() and self.alive:
            if self.pause_after is not None and self.engine.steps >= self.pause_after:
                self.gate.clear()
            await self.gate.wait()
            for ev in self.engine.step():
                q = self._queues.get(ev.request_id)
                if q is not None:
                    q.put_nowait(ev)
                elif isinstance(ev, DoneEvent) and (
                    release := self._zombies.pop(ev.request_id, None)
                ):
                    release()
            await asyncio.sleep(0)

    async def generate(
        self,
        prompt_tokens: list[int],
        sampling: SamplingParams,
        *,
        expected: bool = False,
        slot: HeldSlot | None = None,
        media: tuple[str, list[dict[str, Any]]] | None = None,
    ) -> AsyncGenerator[EngineEvent, None]:
        self._check()
        if expected:
            self.expected -= 1
        rid = next(self._ids)
        q: asyncio.Queue[EngineEvent | None] = asyncio.Queue()
        self._queues[rid] = q
        finished = False
        try:
            self.engine.submit(GenerateRequest(rid, tuple(prompt_tokens), sampling))
            self.submitted += 1
            self._kick()
            while True:
                ev = await q.get()
                if ev is None:
                    finished = True
                    raise RunnerError("llama runner process has terminated")
                if isinstance(ev, DoneEvent):
                    finished = True
                yield ev
                if finished:
                    return
        finally:
            self._queues.pop(rid, None)
            while not finished and not q.empty():  # its end may already wait, unread
                ev = q.get_nowait()
                finished = ev is None or isinstance(ev, DoneEvent)
            if not finished and self.alive:
                if slot is not None:
                    self._zombies[rid] = slot.defer()
                self.cancel(rid)

    async def close(self) -> None:
        self.closed = True
        if self._stepping is not None:
            self._stepping.cancel()
            with contextlib.suppress(BaseException):
                await self._stepping
        self.engine.close()


@dataclass
class Factory:
    """A runner factory for tests. ``gates[model_path]`` holds loads of that model until set;
    ``failures[model_path]`` makes them fail with that message."""

    script: Script | None = None
    engine: dict[str, Any] = field(default_factory=dict)
    gates: dict[str, asyncio.Event] = field(default_factory=dict)
    failures: dict[str, str] = field(default_factory=dict)
    loads: list[LoadSpec] = field(default_factory=list)
    abandoned: list[LoadSpec] = field(default_factory=list)
    runners: list[InProcessRunner] = field(default_factory=list)
    started: asyncio.Event = field(default_factory=asyncio.Event)

    async def __call__(self, spec: LoadSpec) -> InProcessRunner:
        self.loads.append(spec)
        self.started.set()
        gate = self.gates.get(spec.model_path)
        try:
            if gate is not None:
                await gate.wait()
        except asyncio.CancelledError:
            self.abandoned.append(spec)
            raise
        failure = self.failures.get(spec.model_path)
        if failure is not None:
            raise RunnerLoadError(f"error loading model: {failure}")
        runner = InProcessRunner(spec, self.script, **self.engine)
        self.runners.append(runner)
        return runner

    def live(self) -> list[InProcessRunner]:
        return [r for r in self.runners if not r.closed]
