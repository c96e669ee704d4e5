"""The server's side of a runner: start the process, send operations, route its events.

Every request waiting on the runner gets an error, never a hang, when the process dies; a
vocabulary or embedding call that the runner does not answer in time kills it (it is stuck). A
start that is cancelled (nobody waits for the load any more) kills and reaps the process it
began. A generation whose consumer leaves early is cancelled in the runner, and its slot is given
back only when the runner reports the request finished, so the server never admits more
generations than the runner has slots.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import os
import signal
import sys
import time
from collections.abc import AsyncGenerator, Callable
from dataclasses import asdict
from typing import Any

from corral.engine.protocol import (
    HEADER,
    MAX_FRAME,
    ProtocolError,
    decode_body,
    encode,
    event_from_wire,
    parse_body,
)
from corral.engine.types import (
    DoneEvent,
    EngineEvent,
    HeldSlot,
    LoadSpec,
    SamplingParams,
    StreamEvent,
    TokenEvent,
    TokenRun,
)
from corral.errors import BadRequest, CorralError, InternalError

log = logging.getLogger(__name__)

READ_CHUNK = 1 << 16  # the runner's output is read in what arrives, up to this, then split
VOCAB_TIMEOUT = 60.0  # tokenize/detokenize are answered beside the engine: never this slow
CLOSE_TIMEOUT = 5.0


# Go's names of the signals a runner dies of; Ollama's runner errors quote Go's exit state
_SIGNAL_NAMES: dict[int, str] = {
    signal.SIGKILL: "killed",
    signal.SIGSEGV: "segmentation fault",
    signal.SIGABRT: "aborted",
    signal.SIGBUS: "bus error",
    signal.SIGILL: "illegal instruction",
    signal.SIGFPE: "floating point exception",
    signal.SIGTERM: "terminated",
}


def exit_text(returncode: int) -> str:
    """A process's end as Ollama reports it: ``exit status 2``, ``signal: killed``."""
    if returncode >= 0:
        return f"exit status {returncode}"
    sig = -returncode
    return "signal: " + _SIGNAL_NAMES.get(sig, f"signal {sig}")


class RunnerError(InternalError):
    """The runner failed or died."""


class RunnerLoadError(CorralError):
    """The model could not be loaded (bad GGUF, out of memory...)."""

    status = 500


class _Failed:
    """What a stream receives when the runner dies under it."""

    def __init__(self, reason: str) -> None:
        self.reason = reason


def _ended(q: asyncio.Queue[EngineEvent | _Failed]) -> bool:
    """Whether the end of a request already waits, unread, in its event queue."""
    while not q.empty():
        if isinstance(q.get_nowait(), DoneEvent | _Failed):
            return True
    return False


def _run_of(
    first: TokenEvent, q: asyncio.Queue[EngineEvent | _Failed]
) -> tuple[TokenEvent | TokenRun, EngineEvent | _Failed | None]:
    """``first`` and the tokens queued right behind it, as one run; also the next queued item
    that is not a token (the request's end), taken from the queue on the way."""
    run = [first]
    while not q.empty():
        nxt = q.get_nowait()
        if not isinstance(nxt, TokenEvent):
            return _joined(run), nxt
        run.append(nxt)
    return _joined(run), None


def _joined(run: list[TokenEvent]) -> TokenEvent | TokenRun:
    if len(run) == 1:
        return run[0]
    logprobs = tuple(e.logprob for e in run) if run[0].logprob is not None else ()
    return TokenRun(
        run[0].request_id,
        tuple(e.token for e in run),
        tuple(e.piece for e in run),
        logprobs,
    )


class RunnerProcess:
    """One runner process and the requests in flight on it."""

    def __init__(
        self, spec: LoadSpec, engine: str = "llamacpp", *, call_timeout: float = 300.0
    ) -> None:
        self.spec = spec
        self.engine = engine
        self.call_timeout = call_timeout
        self.proc: asyncio.subprocess.Process | None = None
        self.info: dict[str, Any] = {}
        self.n_ctx = spec.n_ctx
        self.pid = 0
        self._ids = itertools.count(1)
        self._waiters: dict[int, asyncio.Future[Any]] = {}
        self._streams: dict[int, asyncio.Queue[EngineEvent | _Failed]] = {}
        self._zombies: dict[int, Callable[[], None]] = {}  # cancelled, not yet done in the runner
        self._reader: asyncio.Task[None] | None = None
        self._stderr_task: asyncio.Task[None] | None = None
        self._dead: str | None = None
        self._stderr_tail: list[str] = []
        self.load_duration_ns = 0

    @property
    def alive(self) -> bool:
        return self._dead is None and self.proc is not None and self.proc.returncode is None

    async def start(self, timeout: float) -> None:
        """Start the process and wait for its model to load. Cancelled, it kills the process."""
        t0 = time.perf_counter_ns()
        env = {**os.environ, "GGML_NO_BACKTRACE": "1"}
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "corral.engine.runner",
            self.engine,
            json.dumps(asdict(self.spec)),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=env,
            limit=MAX_FRAME,
        )
        self.pid = self.proc.pid
        try:
            self._stderr_task = asyncio.create_task(self._pump_stderr())
            try:
                first = await asyncio.wait_for(self._read(), timeout)
            except (TimeoutError, ProtocolError, asyncio.IncompleteReadError) as e:
                await self._kill()
                detail = self._stderr_summary() or str(e) or "timed out"
                raise RunnerLoadError(f"llama runner process has terminated: {detail}") from e
            if first.get("ev") != "ready":
                await self._kill()
                raise RunnerLoadError(f"error loading model: {first.get('error', 'unknown error')}")
        except BaseException:
            await self._kill()
            raise
        self.info = first.get("info", {})
        self.n_ctx = int(first.get("n_ctx", self.spec.n_ctx))
        self.load_duration_ns = time.perf_counter_ns() - t0
        self._reader = asyncio.create_task(self._read_loop())

    async def _kill(self) -> None:
        """Kill and reap the process now (a failed or abandoned start, a stuck runner)."""
        proc = self.proc
        if proc is not None and proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
        await self._stop_tasks()
        if self._dead is None:
            self._dead = "runner stopped"

    async def _stop_tasks(self) -> None:
        current = asyncio.current_task()
        for task in (self._reader, self._stderr_task):
            if task is not None and task is not current:
                task.cancel()
                with contextlib.suppress(BaseException):
                    await task

    async def _pump_stderr(self) -> None:
        assert self.proc is not None and self.proc.stderr is not None
        while line := await self.proc.stderr.readline():
            text = line.decode(errors="replace").rstrip()
            self._stderr_tail = [*self._stderr_tail[-19:], text]
            log.debug("runner %d: %s", self.pid, text)

    def _stderr_summary(self) -> str:
        lines = [x for x in self._stderr_tail if x.strip()]
        return lines[-1] if lines else ""

    async def _read(self) -> dict[str, Any]:
        assert self.proc is not None and self.proc.stdout is not None
        head = await self.proc.stdout.readexactly(HEADER.size)
        (size,) = HEADER.unpack(head)
        if size > MAX_FRAME:
            raise ProtocolError("frame too large")
        return decode_body(await self.proc.stdout.readexactly(size))

    async def _read_loop(self) -> None:
        """Route every frame the runner sends. Frames are split out of whatever the pipe holds
        (one read for all of a step's events, not two per frame)."""
        assert self.proc is not None and self.proc.stdout is not None
        stdout = self.proc.stdout
        reason = "runner closed its output"
        buf = bytearray()
        try:
            while data := await stdout.read(READ_CHUNK):
                buf += data
                start, have = 0, len(buf)
                while have - start >= HEADER.size:
                    (size,) = HEADER.unpack_from(buf, start)
                    if size > MAX_FRAME:
                        raise ProtocolError("frame too large")
                    end = start + HEADER.size + size
                    if end > have:
                        break
                    self._route(parse_body(bytes(buf[start + HEADER.size : end])))
                    start = end
                del buf[:start]
        except (ProtocolError, ConnectionError) as e:
            reason = str(e) or reason
        except asyncio.CancelledError:
            reason = "runner stopped"
        await self._fail_all(reason)

    def _route(self, msg: dict[str, Any] | TokenEvent) -> None:
        if isinstance(msg, TokenEvent):
            q = self._streams.get(msg.request_id)
            if q is not None:
                q.put_nowait(msg)
            return
        rid = msg.get("id", 0)
        kind = msg.get("ev")
        if kind in ("token", "done"):
            ev = event_from_wire(msg)
            q = self._streams.get(rid)
            if q is not None:
                q.put_nowait(ev)
            elif isinstance(ev, DoneEvent) and (release := self._zombies.pop(rid, None)):
                release()
        elif kind == "error" and rid in self._streams:
            self._streams[rid].put_nowait(_Failed(str(msg.get("error"))))
        elif kind == "error" and rid in self._zombies:
            self._zombies.pop(rid)()
        elif kind in ("result", "error"):
            fut = self._waiters.pop(rid, None)
            if fut is not None and not fut.done():
                if kind == "result":
                    fut.set_result(msg.get("value"))
                else:
                    fut.set_exception(RunnerError(str(msg.get("error"))))

    async def _fail_all(self, reason: str) -> None:
        if self.proc is not None:
            with contextlib.suppress(TimeoutError, ProcessLookupError):
                await asyncio.wait_for(self.proc.wait(), 2)
        code = self.proc.returncode if self.proc is not None else None
        detail = self._stderr_summary()
        msg = "llama runner process has terminated"
        if code is not None:
            msg += f": {exit_text(code)}"
        if detail and code not in (0, None):
            msg += f": {detail}"
        self._dead = msg if code is not None else reason
        for fut in self._waiters.values():
            if not fut.done():
                fut.set_exception(RunnerError(self._dead))
        self._waiters.clear()
        for q in self._streams.values():
            q.put_nowait(_Failed(self._dead))
        zombies, self._zombies = self._zombies, {}
        for release in zombies.values():
            release()

    def _send(self, msg: dict[str, Any]) -> None:
        if not self.alive or self.proc is None or self.proc.stdin is None:
            raise RunnerError(self._dead or "llama runner process is not running")
        self.proc.stdin.write(encode(msg))

    async def call(self, op: str, timeout: float, **args: Any) -> Any:
        rid = next(self._ids)
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._waiters[rid] = fut
        try:
            self._send({"op": op, "id": rid, **args})
            return await asyncio.wait_for(asyncio.shield(fut), timeout)
        except TimeoutError:
            log.error(
                "runner %d did not answer %s within %.0f s; stopping it", self.pid, op, timeout
            )
            await self._kill()
            raise RunnerError(f"llama runner did not answer {op} in time") from None
        finally:
            self._waiters.pop(rid, None)

    async def tokenize(self, text: str, add_special: bool = True) -> list[int]:
        tokens: list[int] = await self.call(
            "tokenize", VOCAB_TIMEOUT, text=text, add_special=add_special
        )
        return tokens

    async def detokenize(self, tokens: list[int]) -> str:
        text: str = await self.call("detokenize", VOCAB_TIMEOUT, tokens=tokens)
        return text

    async def embed(self, inputs: list[list[int]]) -> list[list[float]]:
        vectors: list[list[float]] = await self.call("embed", self.call_timeout, inputs=inputs)
        return vectors

    async def tokenize_media(self, text: str, images: list[dict[str, Any]]) -> list[int]:
        answer: dict[str, Any] = await self.call(
            "tokenize_media", self.call_timeout, text=text, images=images
        )
        if answer.get("error"):
            raise BadRequest(str(answer["error"]))
        return [int(t) for t in answer["tokens"]]

    def expect(self) -> None:
        """Announce a generate request that is being prepared (see :mod:`.runner`)."""
        with contextlib.suppress(RunnerError):
            self._send({"op": "expect"})

    def unexpect(self) -> None:
        """Withdraw an announcement that no generate request will follow."""
        with contextlib.suppress(RunnerError):
            self._send({"op": "unexpect"})

    def set_threads(self, n: int) -> None:
        """Compute threads from the runner's next step on (the server's CPU budget)."""
        with contextlib.suppress(RunnerError):
            self._send({"op": "threads", "n": n})

    async def generate(
        self,
        prompt_tokens: list[int],
        sampling: SamplingParams,
        *,
        expected: bool = False,
        slot: HeldSlot | None = None,
        media: tuple[str, list[dict[str, Any]]] | None = None,
    ) -> AsyncGenerator[StreamEvent, None]:
        """Yield the runner's token events then one done event; cancel on early exit. Tokens
        that are already waiting together come as one :class:`TokenRun`.
        ``expected``: this request was announced with :meth:`expect`."""
        rid = next(self._ids)
        q: asyncio.Queue[EngineEvent | _Failed] = asyncio.Queue()
        self._streams[rid] = q
        finished = False
        held: EngineEvent | _Failed | None = None  # taken from the queue, not yet handled
        try:
            self._send(
                {
                    "op": "generate",
                    "id": rid,
                    "expected": expected,
                    "prompt_tokens": prompt_tokens,
                    "sampling": asdict(sampling),
                    **({"media": {"text": media[0], "images": media[1]}} if media else {}),
                }
            )
            while True:
                ev: StreamEvent | _Failed = held if held is not None else await q.get()
                held = None
                if isinstance(ev, TokenEvent) and not q.empty():
                    ev, held = _run_of(ev, q)
                if isinstance(ev, _Failed):
                    finished = True
                    raise RunnerError(ev.reason)
                if isinstance(ev, DoneEvent):
                    finished = True
                    yield ev
                    return
                yield ev
        finally:
            self._streams.pop(rid, None)
            ended = isinstance(held, DoneEvent | _Failed)
            if not finished and not ended and not _ended(q) and self.alive:
                with contextlib.suppress(RunnerError):
                    self._send({"op": "cancel", "id": rid})
                if slot is not None:
                    self._zombies[rid] = slot.defer()

    def cancel(self, request_id: int) -> None:
        """Ask the runner to stop a generation; its done event still arrives."""
        with contextlib.suppress(RunnerError):
            self._send({"op": "cancel", "id": request_id})

    async def close(self) -> None:
        proc = self.proc
        if proc is None:
            return
        if proc.returncode is None:
            with contextlib.suppress(Exception):
                if proc.stdin is not None:
                    proc.stdin.write(encode({"op": "shutdown"}))
                    proc.stdin.close()
            try:
                await asyncio.wait_for(proc.wait(), CLOSE_TIMEOUT)
            except TimeoutError:
                proc.kill()
                await proc.wait()
        await self._stop_tasks()
        if self._dead is None:
            self._dead = "runner stopped"
