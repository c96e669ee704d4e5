"""A real corral HTTP server (uvicorn in a thread) whose runners are scripted fake engines.

``CORRAL_ENGINE=fake`` runs :class:`~corral.engine.fake.FakeEngine` in the runner process with
its default reply only; the OpenAI tests also need scripted replies (a tool call, JSON), so this
server keeps the whole stack (``create_app``, routes, scheduler, inference) and swaps only the
runner factory for an in-process runner over a ``FakeEngine(spec, script)``.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from pathlib import Path

import uvicorn

from corral.config import HostAddr, Settings
from corral.engine.fake import Script
from corral.engine.types import LoadSpec
from corral.scheduler import Runner, Scheduler
from corral.server.app import create_app
from corral.service import Service
from corral.store import Store
from tests.fakerunner import InProcessRunner
from tests.serverproc import free_port


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

    def _services(self) -> Service:
        async def factory(spec: LoadSpec) -> Runner:
            return InProcessRunner(spec, self.script)

        store = Store(self.settings.models)
        scheduler = Scheduler(self.settings, factory)
        return Service.build(self.settings, store, scheduler)

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

    def call(self, fn: Callable[[], object]) -> None:
        """Run ``fn`` on the server's event loop (asyncio objects belong to it)."""
        assert self._server is not None
        self._server.servers[0].get_loop().call_soon_threadsafe(fn)

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            with contextlib.suppress(RuntimeError):
                self._thread.join(10)
