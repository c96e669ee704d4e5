"""What the kill -9 tests share: crash points, killing a server (not its children), restarting.

A :class:`CrashBench` is one store (``OLLAMA_MODELS``) and the corral server currently running
on it, started with the test-only crash-point hook (``tests/crashhook/sitecustomize.py``) on its
``PYTHONPATH``. A test arms a crash point (:meth:`CrashPoints.arm`) or watches the progress
stream, kills the server with SIGKILL (:meth:`CrashBench.kill`), and restarts a server on the
same store (:meth:`CrashBench.restart`), which checks the store and the API
(:mod:`tests.storecheck`). Nothing is ordered by sleeping: the tests wait for files to appear,
for lines to arrive and for processes to end.
"""

from __future__ import annotations

import itertools
import json
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from tests.conditions import HANG_GUARD, wait_for
from tests.serverproc import ServerProcess
from tests.storecheck import StoreReport, check_api, check_store

HOOK_DIR = Path(__file__).parent / "crashhook"
HOOK_ENV = "CORRAL_TEST_CRASHPOINTS"
TARGETS = (
    "os:replace",
    "os:unlink",
    "corral.store.blobs:BlobWriter.write",
    "corral.registry.upload:_Progress.add",
)

# Regular expressions over the repr of a call's arguments
BLOB_TEMP = r"/blobs/sha256-[0-9a-f]{32}-partial'"  # BlobWriter's temp file
MANIFEST_TEMP = r"/manifests/.*/\.tmp-[0-9a-f]{32}-partial'"  # atomic_write's temp file
MANIFEST = r"/manifests/[^']*/[^./'][^/']*'"  # a manifest file itself
BLOB = r"/blobs/sha256-[0-9a-f]{64}'"  # a complete blob


class CrashPoints:
    """The arm file the hook reads, and the file it creates when it stops a thread."""

    _ids = itertools.count(1)

    def __init__(self, workdir: Path) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self.arm_path = workdir / "crashpoint.json"
        self.reached = workdir / "crashpoint.reached"

    def env(self) -> dict[str, str]:
        path = os.environ.get("PYTHONPATH", "")
        return {
            "PYTHONPATH": os.pathsep.join(p for p in (str(HOOK_DIR), path) if p),
            HOOK_ENV: json.dumps({"arm": str(self.arm_path), "targets": list(TARGETS)}),
        }

    def arm(self, target: str, match: str = "", nth: int = 1) -> None:
        """Stop the server before the ``nth`` call of ``target`` matching ``match``."""
        assert target in TARGETS, target
        self.disarm()
        point = {
            "id": next(self._ids),
            "target": target,
            "match": match,
            "nth": nth,
            "reached": str(self.reached),
        }
        tmp = self.arm_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(point))
        os.replace(tmp, self.arm_path)

    def disarm(self) -> None:
        self.arm_path.unlink(missing_ok=True)
        self.reached.unlink(missing_ok=True)

    def wait_reached(self) -> None:
        wait_for(self.reached.exists, "the server never reached the crash point")


def child_pids(pid: int) -> list[int]:
    """The direct children of a process (a corral server's runners and quantizer)."""
    out: list[int] = []
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            out += [int(p) for p in (task / "children").read_text().split()]
    except FileNotFoundError:
        pass
    return out


def process_alive(pid: int) -> bool:
    """Whether ``pid`` is a process that has not exited (a zombie has exited)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except (FileNotFoundError, ProcessLookupError):
        return ""


@dataclass(frozen=True)
class Kill:
    """What a kill -9 of the server left behind."""

    children: tuple[int, ...]  # the server's processes (runners, a quantizer) when it was
    # killed; all of them have ended when :func:`kill9` returns (it fails the test otherwise)


def kill9(server: ServerProcess) -> Kill:
    """SIGKILL the server process only; its children must end by themselves (their pipes to it
    close), which this waits for."""
    assert server.proc is not None
    children = tuple(child_pids(server.proc.pid))
    server.kill()
    wait_for(
        lambda: not any(process_alive(p) for p in children),
        f"processes {children} outlived their killed server",
    )
    return Kill(children)


class CrashBench:
    """One store and the (hooked) server running on it."""

    def __init__(self, workdir: Path, env: dict[str, str] | None = None) -> None:
        self.models = workdir / "models"
        self.points = CrashPoints(workdir / "hook")
        self.env = {**(env or {}), **self.points.env()}
        self.server = ServerProcess(self.models, env=self.env).start()
        self.kills: list[Kill] = []

    @property
    def url(self) -> str:
        return self.server.url

    def kill(self) -> Kill:
        k = kill9(self.server)
        self.kills.append(k)
        return k

    def restart(self) -> StoreReport:
        """Start a new server on the store (after a kill) and check the store and the API."""
        if self.server.proc is not None and self.server.proc.poll() is None:
            self.kill()
        self.points.disarm()
        self.server = ServerProcess(self.models, env=self.env).start()
        report = check_store(self.models)
        check_api(self.url, report)
        return report

    def stop(self) -> None:
        if self.server.proc is not None and self.server.proc.poll() is None:
            if self.points.reached.exists():  # a thread is held at a crash point
                self.server.kill()
            self.server.stop()
        self.points.disarm()


class Request:
    """An HTTP request in a thread: the server will be killed under it."""

    def __init__(self, call: Callable[[], object]) -> None:
        self.response: object = None
        self.error: Exception | None = None
        self._call = call
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            self.response = self._call()
        except httpx.HTTPError as e:
            self.error = e

    def join(self) -> None:
        """Wait for the request to fail (the server was killed under it)."""
        self._thread.join(HANG_GUARD)
        assert not self._thread.is_alive(), "the request outlived the killed server"
        assert self.error is not None, f"the request was answered: {self.response!r}"


def stream_and_kill(
    bench: CrashBench, path: str, body: dict[str, Any], when: str | Callable[[str], bool]
) -> None:
    """POST ``body`` to ``path`` and kill the server when a streamed line contains ``when``
    (or makes ``when(line)`` true)."""
    hit = (lambda line: when in line) if isinstance(when, str) else when
    seen: list[str] = []
    with httpx.stream("POST", bench.url + path, json=body, timeout=HANG_GUARD) as r:
        for line in r.iter_lines():
            seen.append(line)
            if hit(line):
                bench.kill()
                return
    raise AssertionError(f"the stream ended before the kill point: {seen[-3:]}")
