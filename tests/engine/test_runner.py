"""The runner's serve loop with the fake engine, in-process: announced requests start together,
vocabulary operations do not wait for a step."""

from __future__ import annotations

import io
import os
import threading
import time
from typing import Any

import pytest

import corral.engine.runner as runner_module
from corral.engine.fake import FakeEngine
from corral.engine.protocol import encode, read_frame
from corral.engine.runner import GATHER_S, Runner
from corral.engine.types import EngineEvent, LoadSpec, TokenEvent


class Recording(FakeEngine):
    """Records, for every step, the requests that produced a token in it."""

    def __init__(self, step_delay: float = 0.0) -> None:
        super().__init__(
            LoadSpec(model_path="fake", n_ctx=256, n_parallel=4), step_delay=step_delay
        )
        self.tokens_by_step: list[set[int]] = []
        self.step_started: list[float] = []

    def step(self) -> list[EngineEvent]:
        self.step_started.append(time.monotonic())
        events = super().step()
        self.tokens_by_step.append({e.request_id for e in events if isinstance(e, TokenEvent)})
        return events


def gen(rid: int, *, expected: bool) -> dict[str, Any]:
    tokens = [1, *(ord(c) + 3 for c in f"prompt {rid}")]
    sampling = {"num_predict": 3, "temperature": 0.0}
    return {"op": "generate", "id": rid, "prompt_tokens": tokens, "sampling": sampling,
            "expected": expected}  # fmt: skip


class Harness:
    def __init__(self, engine: Recording) -> None:
        self.engine = engine
        self.out = io.BytesIO()
        self.runner = Runner(engine, self.out)
        self.thread = threading.Thread(target=self.runner.serve, daemon=True)
        self.thread.start()

    def put(self, msg: dict[str, Any]) -> None:
        self.runner.inbox.put(msg)

    def frames(self) -> list[dict[str, Any]]:
        stream = io.BytesIO(self.out.getvalue())
        frames = []
        while (frame := read_frame(stream)) is not None:
            frames.append(frame)
        return frames

    def finish(self, n_done: int) -> list[dict[str, Any]]:
        """Wait for ``n_done`` requests to end, stop the loop, return every frame sent."""
        deadline = time.monotonic() + 10
        while sum(f["ev"] == "done" for f in self.frames()) < n_done:
            assert time.monotonic() < deadline, self.frames()
            time.sleep(0.005)
        self.runner.inbox.put(None)
        self.thread.join(10)
        assert not self.thread.is_alive()
        return self.frames()

    def first_step_of(self, rid: int) -> int:
        return next(i for i, ids in enumerate(self.engine.tokens_by_step) if rid in ids)


# Timings are generous multiples of the intervals under test, so a loaded CI machine that
# delays a thread by tens of milliseconds cannot flip an outcome.
LONG_GATHER = 5.0


@pytest.fixture
def long_gather(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runner_module, "GATHER_S", LONG_GATHER)


def test_announced_requests_start_in_one_step(long_gather: None) -> None:
    h = Harness(Recording())
    h.put({"op": "expect"})
    h.put({"op": "expect"})
    h.put(gen(1, expected=True))
    time.sleep(0.2)  # the second client is still rendering its prompt
    h.put(gen(2, expected=True))
    h.finish(2)
    assert h.first_step_of(1) == h.first_step_of(2) == 0


def test_without_an_announcement_a_late_request_waits_for_the_next_step() -> None:
    h = Harness(Recording(step_delay=0.5))
    h.put(gen(1, expected=False))
    time.sleep(0.15)
    h.put(gen(2, expected=False))
    h.finish(2)
    assert h.first_step_of(1) == 0
    assert h.first_step_of(2) > 0


def test_a_withdrawn_announcement_does_not_hold_a_lone_request(long_gather: None) -> None:
    h = Harness(Recording())
    h.put({"op": "expect"})
    h.put({"op": "expect"})
    h.put({"op": "unexpect"})
    sent = time.monotonic()
    h.put(gen(1, expected=True))
    h.finish(1)
    assert h.engine.step_started[0] - sent < LONG_GATHER / 2


def test_an_announcement_never_followed_holds_at_most_the_gather_time() -> None:
    h = Harness(Recording())
    h.put({"op": "expect"})
    h.put({"op": "expect"})
    sent = time.monotonic()
    h.put(gen(1, expected=True))
    h.finish(1)
    waited = h.engine.step_started[0] - sent
    assert GATHER_S <= waited < GATHER_S + 2.0


def test_tokenize_is_answered_while_a_step_runs() -> None:
    engine = Recording(step_delay=2.0)
    h = Harness(engine)
    h.put(gen(1, expected=False))
    while not engine.step_started:
        time.sleep(0.001)
    r, w = os.pipe()
    with open(r, "rb", buffering=0) as rf, open(w, "wb", buffering=0) as wf:
        reader = threading.Thread(target=h.runner.read_loop, args=(rf,), daemon=True)
        reader.start()
        wf.write(encode({"op": "tokenize", "id": 7, "text": "hi"}))
        deadline = time.monotonic() + 1.0  # the step in progress takes 2 s
        while not any(f["ev"] == "result" for f in h.frames()):
            assert time.monotonic() < deadline, "tokenize waited for the step"
            time.sleep(0.002)
        assert h.frames()[0] == {"ev": "result", "id": 7, "value": [1, ord("h") + 3, ord("i") + 3]}
        wf.close()
        reader.join(5)
    h.thread.join(10)  # the end of input stops the loop
    assert not h.thread.is_alive()
