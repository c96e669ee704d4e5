"""The real app (``create_app`` with the real scheduler and services) served by uvicorn inside the
test's own event loop, with runners from :class:`tests.fakerunner.Factory`, so a test can hold a
load, freeze a runner's steps or fail a load with asyncio objects and watch
``Scheduler.stats()`` while real HTTP clients wait on the loopback socket.

Models are created once per session through the app's own API (``/api/blobs``, ``/api/create``)
in a template store; every test gets a copy of it, so a test may change its store freely.
Tests order themselves by observed conditions (:func:`until`), never by sleeping.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import inspect
import json
import shutil
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from corral.config import HostAddr, Settings
from corral.engine.fake import Endless, Reply
from corral.names import parse_name
from corral.scheduler import Scheduler
from corral.server.app import create_app
from corral.service import Service
from corral.store import Store
from tests.fakerunner import Factory, InProcessRunner
from tests.tinygguf import write_tiny_bert, write_tiny_llama

HANG_GUARD = 30.0  # seconds; only a failing (hung) test ever waits this long

CHAT_A = "a"
CHAT_B = "b"
EMBED = "e"
TEMPLATE = "{{ range .Messages }}<|{{ .Role }}|>{{ .Content }}\n{{ end }}<|assistant|>"
# A small batch: a prompt of a few hundred characters takes many engine steps to prefill, so a
# test can freeze a request in the middle of its prefill (the fake's tokens are characters).
N_BATCH = 8
PARAMETERS = {"num_batch": N_BATCH}

# Scripted replies of the fake engine (the first key found in the rendered prompt wins).
ENDLESS = "ENDLESS"  # never ends by itself: num_predict, a full context or a cancel ends it
ONE = "ONE"  # a one-token answer
ONE_REPLY = "x"
SCRIPT: dict[str, Reply] = {ENDLESS: Endless("la "), ONE: ONE_REPLY}

BUSY = "server busy, please try again.  maximum pending requests exceeded"


# ---- models ------------------------------------------------------------------------------------


async def upload_blob(client: httpx.AsyncClient, path: Path) -> str:
    data = path.read_bytes()
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    r = await client.post(f"/api/blobs/{digest}", content=data)
    assert r.status_code in (200, 201), r.text
    return digest


async def create_model(
    client: httpx.AsyncClient,
    name: str,
    gguf_path: Path,
    template: str | None = None,
    parameters: dict[str, Any] | None = None,
) -> None:
    body: dict[str, Any] = {
        "model": name,
        "files": {"model.gguf": await upload_blob(client, gguf_path)},
        "stream": False,
    }
    if template is not None:
        body["template"] = template
    if parameters is not None:
        body["parameters"] = parameters
    r = await client.post("/api/create", json=body)
    assert r.status_code == 200, r.text
    assert r.json().get("status") == "success", r.text


@pytest.fixture(scope="session")
def gguf_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("server-gguf")
    return {
        # A large training context, so an Endless reply never fills it during a test.
        CHAT_A: write_tiny_llama(root / "a.gguf", context_length=1 << 20, tokens=["<s>", "a"]),
        CHAT_B: write_tiny_llama(root / "b.gguf", context_length=1 << 20, tokens=["<s>", "b"]),
        EMBED: write_tiny_bert(root / "e.gguf"),
    }


@pytest.fixture(scope="session")
def template_store(tmp_path_factory: pytest.TempPathFactory, gguf_files: dict[str, Path]) -> Path:
    """A store holding models a, b (chat) and e (embeddings), made through the API once."""
    models = tmp_path_factory.mktemp("server-store") / "models"
    models.mkdir()

    async def make() -> None:
        async with serve(models, Factory()) as srv:
            for name in (CHAT_A, CHAT_B):
                await create_model(srv.client, name, gguf_files[name], TEMPLATE, PARAMETERS)
            await create_model(srv.client, EMBED, gguf_files[EMBED])

    asyncio.run(make())
    return models


@pytest.fixture
def models(template_store: Path, tmp_path: Path) -> Path:
    """This test's own copy of the template store."""
    dst = tmp_path / "models"
    shutil.copytree(template_store, dst)
    return dst


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def factory() -> Factory:
    return Factory(script=SCRIPT)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "settings(**kwargs): Settings fields of the test's server (tests/server)"
    )


# ---- conditions ----------------------------------------------------------------------------------


async def until(
    cond: Callable[[], object] | Callable[[], Awaitable[object]],
    what: str,
    timeout: float = HANG_GUARD,
) -> None:
    """Return once ``cond()`` (sync or async) is true; fail with ``what`` if it never is."""
    try:
        async with asyncio.timeout(timeout):
            while True:
                value = cond()
                if inspect.isawaitable(value):
                    value = await value
                if value:
                    return
                await asyncio.sleep(0.005)
    except TimeoutError:
        raise AssertionError(f"{what} (waited {timeout:.0f} s)") from None


def release(factory: Factory) -> None:
    """Let every held load and frozen runner go (so a failing test cannot hang its teardown)."""
    for gate in factory.gates.values():
        gate.set()
    for runner in factory.runners:
        runner.pause_after = None
        runner.gate.set()


# ---- requests ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Route:
    """One inference route: how to ask it for a reply to ``text`` and read its answer."""

    name: str
    path: str

    def body(self, model: str, text: str, *, stream: bool, **extra: Any) -> dict[str, Any]:
        if self.name == "generate":
            body: dict[str, Any] = {"model": model, "prompt": text}
        else:
            body = {"model": model, "messages": [{"role": "user", "content": text}]}
        return {**body, "stream": stream, **extra}

    def text(self, answer: dict[str, Any]) -> str:
        """The generated text of a ``stream: false`` answer."""
        if self.name == "generate":
            return str(answer["response"])
        if self.name == "chat":
            return str(answer["message"]["content"])
        return str(answer["choices"][0]["message"]["content"])

    def reply(self, r: httpx.Response) -> str:
        """The generated text of a successful answer, streamed (NDJSON, SSE) or not."""
        assert r.status_code == 200, r.text
        if r.headers["content-type"].startswith("application/json"):
            return self.text(r.json())
        if self.name == "openai":
            events = [line.removeprefix("data: ") for line in r.text.split("\n\n") if line]
            assert events[-1] == "[DONE]", r.text
            chunks = [json.loads(e)["choices"] for e in events[:-1]]
            return "".join(c[0]["delta"].get("content") or "" for c in chunks if c)
        lines = [json.loads(line) for line in r.text.splitlines()]
        assert lines[-1]["done"] is True, r.text
        if self.name == "generate":
            return "".join(x["response"] for x in lines)
        return "".join(x["message"]["content"] for x in lines)

    def error(self, answer: dict[str, Any]) -> str:
        err = answer["error"]
        return str(err["message"] if self.name == "openai" else err)


GENERATE = Route("generate", "/api/generate")
CHAT = Route("chat", "/api/chat")
OPENAI = Route("openai", "/v1/chat/completions")
ROUTES = (GENERATE, CHAT, OPENAI)
# Every route, streamed and not: parameters ("route", "stream").
ROUTE_CASES = [
    pytest.param(route, stream, id=f"{route.name}-{'stream' if stream else 'whole'}")
    for route in ROUTES
    for stream in (True, False)
]


# ---- the server ----------------------------------------------------------------------------------

IDLE = {"queued": 0, "refs": 0, "busy_slots": 0}


@dataclass
class Served:
    """A running server and what a test needs to drive and observe it."""

    url: str
    port: int
    service: Service
    factory: Factory
    client: httpx.AsyncClient
    raws: list[RawRequest] = field(default_factory=list)

    @property
    def scheduler(self) -> Scheduler:
        return self.service.scheduler

    def stats(self) -> dict[str, int]:
        return self.scheduler.stats()

    def idle(self) -> bool:
        """No request holds or waits for anything (queue places, references, slots)."""
        stats = self.stats()
        return all(stats[k] == v for k, v in IDLE.items())

    def load_waiters(self, name: str) -> int:
        """Requests waiting for a load of ``name`` (the one that started it included)."""
        path = self.model_path(name)
        return sum(e.waiters for e in self.scheduler.loaded.values() if e.spec.model_path == path)

    def model_path(self, name: str) -> str:
        """The model file of ``name`` (what ``Factory.gates`` and ``failures`` are keyed by)."""
        path = self.service.catalog.view(parse_name(name)).stored.model_path
        assert path is not None
        return str(path)

    def runner(self, name: str) -> InProcessRunner:
        """The live runner of ``name``'s model file."""
        path = self.model_path(name)
        found = [r for r in self.factory.live() if r.spec.model_path == path]
        assert len(found) == 1, f"{len(found)} live runners for {name}"
        return found[0]

    async def ps(self) -> list[str]:
        r = await self.client.get("/api/ps")
        assert r.status_code == 200, r.text
        return [m["name"] for m in r.json()["models"]]

    async def ask(
        self,
        model: str = CHAT_A,
        text: str = ONE,
        route: Route = GENERATE,
        *,
        stream: bool = False,
        **extra: Any,
    ) -> httpx.Response:
        """A request for a reply to ``text`` (``extra``: more fields of the body)."""
        body = route.body(model, text, stream=stream, **extra)
        return await self.client.post(route.path, json=body)

    async def raw(self, path: str, body: dict[str, Any]) -> RawRequest:
        """A request on a connection of its own, which the test can close at a chosen moment."""
        req = await RawRequest.open(self.port, path, body)
        self.raws.append(req)
        return req

    async def unload(self, name: str = CHAT_A) -> None:
        """``keep_alive: 0`` with no prompt: answers ``done_reason: "unload"``, nothing is left
        loaded and no request holds anything."""
        r = await self.client.post(
            "/api/generate", json={"model": name, "keep_alive": 0, "stream": False}
        )
        assert r.status_code == 200, r.text
        assert r.json()["done"] is True and r.json()["done_reason"] == "unload"
        # The answer comes once the runner is closed.
        assert await self.ps() == []
        assert self.stats() == {**IDLE, "loaded": 0, "unloading": 0}


@dataclass
class RawRequest:
    """An HTTP/1.1 POST over a raw socket: closing it is a precise client disconnect."""

    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter

    @classmethod
    async def open(cls, port: int, path: str, body: dict[str, Any]) -> RawRequest:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        data = json.dumps(body).encode()
        head = (
            f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n\r\n"
        )
        writer.write(head.encode() + data)
        await writer.drain()
        return cls(reader, writer)

    async def status(self) -> int:
        """The response's status (reads the status line and the headers)."""
        line = await self.reader.readline()
        while (await self.reader.readline()) not in (b"\r\n", b""):
            pass
        return int(line.split()[1])

    async def close(self) -> None:
        if not self.writer.is_closing():
            self.writer.close()
        with contextlib.suppress(OSError):
            await self.writer.wait_closed()


@contextlib.asynccontextmanager
async def serve(models: Path, factory: Factory, **settings: Any) -> AsyncIterator[Served]:
    """``create_app`` with ``factory``'s runners, served on 127.0.0.1 in the running loop."""
    # proto IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY only on sockets that say they are TCP,
    # and without it every answer waits ~40 ms for a delayed ACK on loopback.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = Settings(host=HostAddr(host="127.0.0.1", port=port), models=models, **settings)
    service = Service.build(config, Store(models), Scheduler(config, factory))
    app = create_app(config, service)
    server = uvicorn.Server(
        uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=int(HANG_GUARD / 3))
    )
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        await until(lambda: server.started or task.done(), "the server starts")
        if task.done():
            task.result()
            raise AssertionError("the server stopped at start-up")
        url = f"http://127.0.0.1:{port}"
        async with httpx.AsyncClient(base_url=url, timeout=HANG_GUARD) as client:
            srv = Served(url, port, service, factory, client)
            try:
                yield srv
            finally:
                release(factory)
                for raw in srv.raws:
                    await raw.close()
    finally:
        server.should_exit = True
        await task
        sock.close()


@pytest.fixture
async def srv(
    models: Path, factory: Factory, request: pytest.FixtureRequest
) -> AsyncIterator[Served]:
    """A server with the settings of the test's ``settings`` marker (keyword arguments of
    :class:`~corral.config.Settings`)."""
    marker = request.node.get_closest_marker("settings")
    kwargs = dict(marker.kwargs) if marker is not None else {}
    async with serve(models, factory, **kwargs) as served:
        yield served
