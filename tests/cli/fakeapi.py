"""A small scripted Ollama API (uvicorn in a thread) for CLI tests that need exact streams.

* ``POST /api/pull`` / ``/api/push`` stream Ollama-style progress: a status, then two blobs
  announced with ``completed: 0`` and filled in ``steps`` updates ``delay`` seconds apart, then
  ``verifying sha256 digest``, ``writing manifest``, ``success``. A model named ``broken`` ends the
  stream with an ``{"error": ...}`` line.
* ``POST /api/show``, ``/api/generate`` and ``/api/chat`` serve ``endless``, whose chat answer
  never ends (a word every 20 ms; ``chat_cancelled`` is set when the client goes away: corral's
  StreamingResponse closes the answer's iterator however the stream ends),
  ``thinker`` (a thinking model: its answers start with thinking) and ``embedder`` (an embedding
  model, with ``/api/embed``).
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import AsyncIterator
from typing import Any

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response

from corral.server.streaming import StreamingResponse
from tests.serverproc import free_port

BLOBS = (("sha256:" + "a" * 64, 1_500_000), ("sha256:" + "b" * 64, 25_000_000))


def _line(obj: dict[str, Any]) -> bytes:
    return json.dumps(obj).encode() + b"\n"


class FakeApi:
    def __init__(self, *, steps: int = 4, delay: float = 0.0) -> None:
        self.steps = steps
        self.delay = delay
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.chat_started = threading.Event()
        self.chat_cancelled = threading.Event()
        self.requests: list[tuple[str, dict[str, Any]]] = []
        self._server = uvicorn.Server(
            uvicorn.Config(self._app(), host="127.0.0.1", port=self.port, log_level="warning")
        )
        self._thread = threading.Thread(target=self._server.run, daemon=True)

    def start(self) -> FakeApi:
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("fake API did not start")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(10)

    async def _transfer(self, verb: str, model: str) -> AsyncIterator[bytes]:
        yield _line({"status": f"{verb} manifest" if verb == "pulling" else "retrieving manifest"})
        if model == "broken":
            yield _line({"error": "pull model manifest: file does not exist"})
            return
        for digest, total in BLOBS:
            status = f"{verb} {digest[7:19]}"
            yield _line({"status": status, "digest": digest, "total": total})
            for i in range(1, self.steps + 1):
                await asyncio.sleep(self.delay)
                done = total * i // self.steps
                yield _line({"status": status, "digest": digest, "total": total, "completed": done})
        for status in ("verifying sha256 digest", "writing manifest", "success"):
            yield _line({"status": status})

    async def _chat(self) -> AsyncIterator[bytes]:
        self.chat_started.set()
        try:
            n = 0
            while True:
                n += 1
                msg = {"role": "assistant", "content": f"word{n} "}
                yield _line({"model": "endless", "message": msg, "done": False})
                await asyncio.sleep(0.02)
        finally:
            self.chat_cancelled.set()

    def _app(self) -> FastAPI:
        app = FastAPI()

        @app.api_route("/", methods=["GET", "HEAD"])
        async def root() -> Response:
            return PlainTextResponse("Ollama is running")

        @app.post("/api/pull")
        async def pull(request: Request) -> Response:
            body = await request.json()
            self.requests.append(("pull", body))
            stream = self._transfer("pulling", body.get("model") or body.get("name"))
            return StreamingResponse(stream, media_type="application/x-ndjson")

        @app.post("/api/push")
        async def push(request: Request) -> Response:
            body = await request.json()
            self.requests.append(("push", body))
            stream = self._transfer("pushing", body.get("model") or body.get("name"))
            return StreamingResponse(stream, media_type="application/x-ndjson")

        @app.post("/api/show")
        async def show(request: Request) -> Response:
            body = await request.json()
            caps = {
                "endless": ["completion"],
                "thinker": ["completion", "thinking"],
                "embedder": ["embedding"],
            }.get((body.get("model") or body.get("name") or "").removesuffix(":latest"))
            if caps is None:
                return JSONResponse({"error": "model not found"}, status_code=404)
            return JSONResponse(
                {"details": {"parent_model": ""}, "capabilities": caps, "model_info": {}}
            )

        @app.post("/api/generate")
        async def generate(request: Request) -> Response:
            body = await request.json()
            self.requests.append(("generate", body))
            chunks = []
            if body.get("prompt"):
                for thinking in ("Let me ", "see.") if body.get("think") else ():
                    chunks.append({"response": "", "thinking": thinking, "done": False})
                chunks.append({"response": "Forty-two.", "done": False})
            chunks.append({"response": "", "done": True, "done_reason": "stop"})
            lines = [_line({"model": body.get("model"), **c}) for c in chunks]
            return StreamingResponse(iter(lines), media_type="application/x-ndjson")

        @app.post("/api/embed")
        async def embed(request: Request) -> Response:
            body = await request.json()
            self.requests.append(("embed", body))
            return JSONResponse({"model": body["model"], "embeddings": [[0.5, -1.25, 3.0]]})

        @app.post("/api/chat")
        async def chat(request: Request) -> Response:
            body = await request.json()
            self.requests.append(("chat", body))
            return StreamingResponse(self._chat(), media_type="application/x-ndjson")

        return app
