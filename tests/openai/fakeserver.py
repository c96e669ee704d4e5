"""A real corral HTTP server (uvicorn in a thread) whose runners are scripted fake engines.

``CORRAL_ENGINE=fake`` runs :class:`~corral.engine.fake.FakeEngine` in the runner process with
its default reply only; the OpenAI tests also need scripted replies (a tool call, JSON), so this
server keeps the whole stack (``create_app``, routes, scheduler, inference) and swaps only the
runner factory for an in-process runner over a ``FakeEngine(spec, script)``.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import uvicorn

from corral.config import HostAddr, Settings
from corral.engine.fake import FakeEngine, Script
from corral.engine.runner import _event as wire_event
from corral.engine.types import GenerateRequest, LoadSpec, SamplingParams
from corral.inference import Inference
from corral.scheduler import Runner, Scheduler
from corral.server.app import Services, create_app
from corral.store import Store
from tests.serverproc import free_port


class FakeRunner:
    """The scheduler's ``Runner`` protocol over an in-process, scripted ``FakeEngine``."""

    def __init__(self, spec: LoadSpec, script: Script | None) -> None:
        self.spec = spec
        self.engine = FakeEngine(spec, script)
        self.info = self.engine.model_info()
        self.n_ctx = self.engine.n_ctx
        self.pid = 0
        self.load_duration_ns = 1_000_000
        self._ids = itertools.count(1)
        self._queues: dict[int, asyncio.Queue[dict[str, Any]]] = {}
        self._stepping: asyncio.Task[None] | None = None

    @property
    def alive(self) -> bool:
        return not self.engine.closed

    async def tokenize(self, text: str, add_special: bool = True) -> list[int]:
        return self.engine.tokenize(text, add_special=add_special)

    async def detokenize(self, tokens: list[int]) -> str:
        return self.engine.detokenize(tokens)

    async def embed(self, inputs: list[list[int]]) -> list[list[float]]:
        return self.engine.embed(inputs)

    def cancel(self, request_id: int) -> None:
        self.engine.cancel(request_id)
        self._kick()

    def _kick(self) -> None:
        if self._stepping is None or self._stepping.done():
            self._stepping = asyncio.get_running_loop().create_task(self._step_all())

    async def _step_all(self) -> None:
        while self.engine.has_work():
            for ev in self.engine.step():
                q = self._queues.get(ev.request_id)
                if q is not None:
                    q.put_nowait(wire_event(ev))
            await asyncio.sleep(0)

    def expect(self) -> None:
        """In-process steps start at once; nothing to gather."""

    def unexpect(self) -> None:
        """See :meth:`expect`."""

    async def generate(
        self, prompt_tokens: list[int], sampling: SamplingParams, *, expected: bool = False
    ) -> AsyncIterator[dict[str, Any]]:
        rid = next(self._ids)
        q: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._queues[rid] = q
        finished = False
        try:
            self.engine.submit(GenerateRequest(rid, tuple(prompt_tokens), sampling))
            self._kick()
            while True:
                ev = await q.get()
                yield ev
                if ev["ev"] == "done":
                    finished = True
                    return
        finally:
            self._queues.pop(rid, None)
            if not finished:
                self.cancel(rid)

    async def close(self) -> None:
        self.engine.close()


class FakeServer:
    """``create_app`` served on 127.0.0.1 by uvicorn in a thread, with scripted fake runners."""

    def __init__(
        self, models: Path, script: Script | None = None, api_key: str | None = None
    ) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.settings = Settings(
            host=HostAddr(host="127.0.0.1", port=self.port), models=models, api_key=api_key
        )
        self.script = script
        self.services = self._services()
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    def _services(self) -> Services:
        async def factory(spec: LoadSpec) -> Runner:
            return FakeRunner(spec, self.script)

        store = Store(self.settings.models)
        scheduler = Scheduler(self.settings, factory)
        return Services(self.settings, store, scheduler, Inference(self.settings, store, scheduler))

    def start(self, timeout: float = 20.0) -> FakeServer:
        self.settings.models.mkdir(parents=True, exist_ok=True)
        app = create_app(self.settings, self.services)
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("the fake server did not start")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            with contextlib.suppress(RuntimeError):
                self._thread.join(10)
