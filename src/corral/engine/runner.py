"""The runner process: owns one loaded model and serves the server over framed pipes.

Started as ``python -m corral.engine.runner <engine> <LoadSpec JSON>``. Frames arrive on stdin and
events leave on the original stdout; native code that prints to fd 1 is redirected to stderr so
it can never corrupt the protocol. One thread owns the engine (llama.cpp contexts are not
thread-safe); a reader thread moves frames into a queue and answers ``tokenize`` and
``detokenize`` itself: they only read the vocabulary (llama.cpp's tokenizer is safe to call beside
a decode), and a request's tokenization must not wait for the step in progress, or requests that
arrive together would be admitted into different steps.

Requests that arrive together should also start together: the server sends ``expect`` when a
request takes its lease (before it renders and tokenizes its prompt) and marks the ``generate``
that follows as ``expected`` (or sends ``unexpect`` when none follows). A step that would start
from idle while such requests are still being prepared waits for them, at most ``GATHER_S``, so
that a burst of clients is prefilled in one batch instead of each newcomer waiting a whole step.

A step's events leave in one write. A fast stream's tokens are held up to ``MAX_HOLD_S`` and sent
together (the server makes one chunk of them); first tokens and ends are never held.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import sys
import threading
import time
from typing import Any, BinaryIO, Protocol

from corral.engine.protocol import encode_event, read_frame, write_all, write_frame
from corral.engine.types import DoneEvent, GenerateRequest, LoadSpec, SamplingParams, TokenEvent

log = logging.getLogger("corral.runner")


class Engine(Protocol):
    n_ctx: int

    def model_info(self) -> dict[str, Any]: ...
    def tokenize(
        self, text: str, *, add_special: bool = True, parse_special: bool = True
    ) -> list[int]: ...
    def detokenize(self, tokens: list[int]) -> str: ...
    def submit(self, req: GenerateRequest) -> None: ...
    def cancel(self, request_id: int) -> None: ...
    def has_work(self) -> bool: ...
    def set_threads(self, n: int) -> None: ...
    def step(self) -> list[TokenEvent | DoneEvent]: ...
    def embed(self, inputs: list[list[int]]) -> list[list[float]]: ...
    def tokenize_media(self, text: str, images: list[dict[str, Any]]) -> list[int]: ...
    def close(self) -> None: ...


def make_engine(kind: str, spec: LoadSpec) -> Engine:
    if kind == "fake":
        from corral.engine.fake import FakeEngine

        return FakeEngine(spec)
    from corral.engine.llamacpp import LlamaEngine

    return LlamaEngine(spec)


_VOCAB_OPS = ("tokenize", "detokenize")
GATHER_S = 0.03  # longest wait, from idle, for announced requests to be submitted
# A stream's tokens may wait this long in the runner to be sent together: on a small machine
# every write wakes the server and the client, whose work then takes CPU from the compute
# threads, so a fast stream (a step every few ms) is sent in runs of 2-3 tokens. A request's
# first token and its end are sent at once, and slower steps are never held. 15 ms is under a
# display frame (16.7 ms at 60 Hz).
MAX_HOLD_S = 0.015


class Runner:
    def __init__(self, engine: Engine, out: BinaryIO) -> None:
        self.engine = engine
        self.out = out
        self.inbox: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self._write_lock = threading.Lock()
        self._vocab_lock = threading.Lock()  # the engine is not closed under a tokenization
        self._closed = False
        self._expected = 0  # announced generate requests not yet submitted
        self._held: list[TokenEvent | DoneEvent] = []  # events not sent yet
        self._held_since = 0.0  # when the oldest of them was made
        self._streaming: set[int] = set()  # requests whose first token has been sent

    def send(self, msg: dict[str, Any]) -> None:
        with self._write_lock:
            write_frame(self.out, msg)

    def send_events(self, events: list[TokenEvent | DoneEvent]) -> None:
        """A step's events in one write."""
        data = b"".join(encode_event(ev) for ev in events)
        with self._write_lock:
            write_all(self.out, data)

    def read_loop(self, stream: BinaryIO) -> None:
        try:
            while (msg := read_frame(stream)) is not None:
                if msg.get("op") in _VOCAB_OPS:
                    with self._vocab_lock:
                        if self._closed:
                            break
                        self.handle(msg)
                else:
                    self.inbox.put(msg)
        except Exception as e:
            log.error("runner input failed: %s", e)
        self.inbox.put(None)

    def handle(self, msg: dict[str, Any]) -> bool:
        """Handle one operation; False means shut down."""
        op, rid = msg.get("op"), msg.get("id", 0)
        try:
            if op == "shutdown":
                return False
            if op == "expect":
                self._expected += 1
            elif op == "unexpect":
                self._expected = max(0, self._expected - 1)
            elif op == "generate":
                if msg.get("expected"):
                    self._expected = max(0, self._expected - 1)
                sampling = SamplingParams(**msg.get("sampling", {}))
                tokens = tuple(int(t) for t in msg["prompt_tokens"])
                media = msg.get("media")
                if media is not None:
                    media = (str(media["text"]), tuple(media["images"]))
                self.engine.submit(GenerateRequest(rid, tokens, sampling, media))
            elif op == "tokenize_media":
                answer: dict[str, Any]
                try:
                    answer = {"tokens": self.engine.tokenize_media(msg["text"], msg["images"])}
                except ValueError as e:  # a bad image or prompt: the client's error
                    answer = {"error": str(e)}
                self.send({"ev": "result", "id": rid, "value": answer})
            elif op == "cancel":
                self.engine.cancel(rid)
            elif op == "threads":
                self.engine.set_threads(int(msg["n"]))
            elif op == "tokenize":
                value: Any = self.engine.tokenize(
                    msg["text"], add_special=bool(msg.get("add_special", True))
                )
                self.send({"ev": "result", "id": rid, "value": value})
            elif op == "detokenize":
                value = self.engine.detokenize([int(t) for t in msg["tokens"]])
                self.send({"ev": "result", "id": rid, "value": value})
            elif op == "embed":
                value = self.engine.embed([[int(t) for t in x] for x in msg["inputs"]])
                self.send({"ev": "result", "id": rid, "value": value})
            else:
                self.send({"ev": "error", "id": rid, "error": f"unknown operation {op!r}"})
        except Exception as e:
            log.exception("operation %s failed", op)
            self.send({"ev": "error", "id": rid, "error": str(e) or type(e).__name__})
        return True

    def close(self) -> None:
        with self._vocab_lock:
            self._closed = True
            self.engine.close()

    def serve(self) -> None:
        while True:
            idle = not self.engine.has_work()
            block = idle
            try:
                while True:
                    msg = self.inbox.get(block=block)
                    if msg is None or not self.handle(msg):
                        return
                    block = False
            except queue.Empty:
                pass
            if idle and self._expected and self.engine.has_work() and not self._gather():
                return
            if self.engine.has_work():
                t0 = time.monotonic()
                events = self.engine.step()
                now = time.monotonic()
                self._emit(events, now, now - t0)

    def _emit(self, events: list[TokenEvent | DoneEvent], now: float, step_s: float) -> None:
        """Send a step's events, or hold a fast stream's tokens (see :data:`MAX_HOLD_S`)."""
        urgent = False
        for ev in events:
            rid = ev.request_id
            if isinstance(ev, DoneEvent):
                urgent = True
                self._streaming.discard(rid)
            elif rid not in self._streaming:  # a first token: never held
                urgent = True
                self._streaming.add(rid)
        if not self._held:
            self._held_since = now
        self._held.extend(events)
        if not self._held:
            return
        if urgent or (now - self._held_since) + step_s > MAX_HOLD_S or not self.engine.has_work():
            held, self._held = self._held, []
            self.send_events(held)

    def _gather(self) -> bool:
        """Take announced requests for up to ``GATHER_S``; False means shut down."""
        deadline = time.monotonic() + GATHER_S
        while self._expected:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            try:
                msg = self.inbox.get(timeout=remaining)
            except queue.Empty:
                break
            if msg is None or not self.handle(msg):
                return False
        return True


LOAD_NICENESS = 19


def load_quietly(kind: str, spec: LoadSpec) -> Engine:
    """Load the engine in a thread of the lowest CPU priority, so that a model being loaded
    (imports, reading weights, clearing a large KV cache) takes CPU time from runners that are
    serving only when a core is idle. Linux niceness is per thread and inherited by threads a
    thread creates; the engine's compute threads are made later by the serving thread, at the
    normal priority."""
    result: list[Engine] = []
    failure: list[BaseException] = []

    def load() -> None:
        if sys.platform == "linux":
            try:
                os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), LOAD_NICENESS)
            except OSError as e:
                log.debug("cannot lower the loading thread's priority: %s", e)
        try:
            result.append(make_engine(kind, spec))
        except BaseException as e:
            failure.append(e)

    loader = threading.Thread(target=load, name="corral-load")
    loader.start()
    loader.join()
    if failure:
        raise failure[0]
    return result[0]


def main(argv: list[str]) -> int:
    os.environ.setdefault("GGML_NO_BACKTRACE", "1")
    logging.basicConfig(
        level=os.environ.get("CORRAL_RUNNER_LOG", "WARNING"),
        format="%(asctime)s runner %(levelname)s: %(message)s",
        stream=sys.stderr,
    )
    # Keep the protocol on a private copy of stdout; fd 1 now goes to stderr.
    out = os.fdopen(os.dup(1), "wb", buffering=0)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    kind, spec = argv[1], LoadSpec(**json.loads(argv[2]))
    try:
        engine = load_quietly(kind, spec)
    except Exception as e:
        write_frame(out, {"ev": "load_error", "error": str(e) or type(e).__name__})
        return 1
    runner = Runner(engine, out)
    runner.send({"ev": "ready", "info": engine.model_info(), "n_ctx": engine.n_ctx})
    threading.Thread(target=runner.read_loop, args=(sys.stdin.buffer,), daemon=True).start()
    try:
        runner.serve()
    finally:
        runner.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
