"""The runner's serve loop with the fake engine, in-process: announced requests start together,
vocabulary operations do not wait for a step.

Nothing here is ordered by sleeping or judged by a clock. The test sees the runner through
three windows: the engine records which requests produced a token in which step and can hold a
step open on an event; the inbox records every wait the runner makes for announced requests (a
``get`` with a timeout: only ``_gather`` makes one); the output signals every frame written.
``HANG_GUARD`` only turns a hang into a failure.
"""

from __future__ import annotations

import io
import os
import queue
import threading
from collections.abc import Callable
from typing import Any, cast

import pytest

import corral.engine.runner as runner_module
from corral.engine.fake import FakeEngine
from corral.engine.protocol import encode, read_frame
from corral.engine.runner import Runner
from corral.engine.types import DoneEvent, EngineEvent, LoadSpec, TokenEvent

HANG_GUARD = 30.0  # seconds; never reached unless the runner is broken

Frame = dict[str, Any]


class Recording(FakeEngine):
    """Records, for every step, the requests that produced a token in it. With ``gated`` every
    step waits, once started, until the test sets ``gate``: the step in progress lasts exactly
    as long as the test wants."""

    def __init__(self, *, gated: bool = False) -> None:
        super().__init__(LoadSpec(model_path="fake", n_ctx=256, n_parallel=4))
        self.tokens_by_step: list[set[int]] = []
        self.step_entered = threading.Event()
        self.gate = threading.Event()
        if not gated:
            self.gate.set()

    def step(self) -> list[EngineEvent]:
        self.step_entered.set()
        self.gate.wait(HANG_GUARD)
        events = super().step()
        self.tokens_by_step.append({e.request_id for e in events if isinstance(e, TokenEvent)})
        return events


class Inbox(queue.Queue[Frame | None]):
    """The runner's inbox, recording the bound of every wait for announced requests."""

    def __init__(self) -> None:
        super().__init__()
        self.gather_waits: list[float] = []
        self.gathering = threading.Event()

    def get(self, block: bool = True, timeout: float | None = None) -> Frame | None:
        if block and timeout is not None:
            self.gather_waits.append(timeout)
            self.gathering.set()
        return super().get(block, timeout)


class Output(io.BytesIO):
    """The runner's output; ``changed`` is notified after every write."""

    def __init__(self) -> None:
        super().__init__()
        self.changed = threading.Condition()

    def write(self, data: Any) -> int:
        with self.changed:
            n = super().write(data)
            self.changed.notify_all()
            return n


def gen(rid: int, *, expected: bool) -> Frame:
    tokens = [1, *(ord(c) + 3 for c in f"prompt {rid}")]
    sampling = {"num_predict": 3, "temperature": 0.0}
    return {"op": "generate", "id": rid, "prompt_tokens": tokens, "sampling": sampling,
            "expected": expected}  # fmt: skip


class Harness:
    def __init__(self, engine: Recording | None = None) -> None:
        self.engine = engine or Recording()
        self.out = Output()
        self.runner = Runner(self.engine, self.out)
        self.inbox = Inbox()
        self.runner.inbox = self.inbox
        self.thread = threading.Thread(target=self.runner.serve, daemon=True)
        self.thread.start()

    def put(self, msg: Frame) -> None:
        self.runner.inbox.put(msg)

    def frames(self) -> list[Frame]:
        with self.out.changed:
            stream = io.BytesIO(self.out.getvalue())
        frames = []
        while (frame := read_frame(stream)) is not None:
            frames.append(frame)
        return frames

    def wait_for(self, what: str, cond: Callable[[list[Frame]], bool]) -> list[Frame]:
        with self.out.changed:
            ok = self.out.changed.wait_for(lambda: cond(self.frames()), HANG_GUARD)
        assert ok, f"{what}: not within {HANG_GUARD} s; frames: {self.frames()}"
        return self.frames()

    def finish(self, n_done: int) -> list[Frame]:
        """Wait for ``n_done`` requests to end, stop the loop, return every frame sent."""
        self.wait_for(f"{n_done} done", lambda fs: sum(f["ev"] == "done" for f in fs) >= n_done)
        self.runner.inbox.put(None)
        self.thread.join(HANG_GUARD)
        assert not self.thread.is_alive()
        return self.frames()

    def first_step_of(self, rid: int) -> int:
        return next(i for i, ids in enumerate(self.engine.tokens_by_step) if rid in ids)


def test_announced_requests_start_in_one_step(monkeypatch: pytest.MonkeyPatch) -> None:
    # The second request ends the wait; the long gather time only makes a lost one a hang.
    monkeypatch.setattr(runner_module, "GATHER_S", HANG_GUARD)
    h = Harness()
    h.put({"op": "expect"})
    h.put({"op": "expect"})
    h.put(gen(1, expected=True))
    assert h.inbox.gathering.wait(HANG_GUARD), "the runner did not wait for the announced request"
    assert h.engine.tokens_by_step == []  # nothing ran while the second client is "rendering"
    h.put(gen(2, expected=True))
    h.finish(2)
    assert h.first_step_of(1) == h.first_step_of(2) == 0
    assert len(h.inbox.gather_waits) == 1


def test_without_an_announcement_a_late_request_waits_for_the_next_step() -> None:
    h = Harness(Recording(gated=True))
    h.put(gen(1, expected=False))
    assert h.engine.step_entered.wait(HANG_GUARD), "the first step never started"
    h.put(gen(2, expected=False))  # arrives while step 0 is in progress
    h.engine.gate.set()
    h.finish(2)
    assert h.first_step_of(1) == 0
    assert h.first_step_of(2) == 1
    assert h.inbox.gather_waits == []  # nothing was announced, so nothing was waited for


def test_a_withdrawn_announcement_does_not_hold_a_lone_request() -> None:
    h = Harness()
    h.put({"op": "expect"})
    h.put({"op": "expect"})
    h.put({"op": "unexpect"})
    h.put(gen(1, expected=True))
    h.finish(1)
    assert h.inbox.gather_waits == []
    assert h.first_step_of(1) == 0


class FrozenClock:
    """The runner's ``time`` module with a clock that stands still, so the bound the runner
    computes for its wait is exactly ``GATHER_S`` however slow the machine is."""

    @staticmethod
    def monotonic() -> float:
        return 0.0


def test_an_announcement_never_followed_holds_at_most_the_gather_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(runner_module, "time", FrozenClock)
    h = Harness()
    h.put({"op": "expect"})
    h.put({"op": "expect"})
    h.put(gen(1, expected=True))
    frames = h.finish(1)
    # One wait, bounded by the gather time; when it ran out the request started alone.
    assert h.inbox.gather_waits == [runner_module.GATHER_S]
    assert h.engine.tokens_by_step[0] == {1}
    assert [f["reason"] for f in frames if f["ev"] == "done"] == ["length"]


def test_tokenize_is_answered_while_a_step_runs() -> None:
    engine = Recording(gated=True)
    h = Harness(engine)
    h.put(gen(1, expected=False))
    assert engine.step_entered.wait(HANG_GUARD), "the first step never started"
    r, w = os.pipe()
    with open(r, "rb", buffering=0) as rf, open(w, "wb", buffering=0) as wf:
        reader = threading.Thread(target=h.runner.read_loop, args=(rf,), daemon=True)
        reader.start()
        wf.write(encode({"op": "tokenize", "id": 7, "text": "hi"}))
        # The step holds until the gate opens, and the gate opens only after the answer came.
        frames = h.wait_for("tokenize result", lambda fs: any(f["ev"] == "result" for f in fs))
        assert frames == [{"ev": "result", "id": 7, "value": [1, ord("h") + 3, ord("i") + 3]}]
        assert engine.tokens_by_step == []  # step 0 is still in progress
        engine.gate.set()
        wf.close()
        reader.join(HANG_GUARD)
    h.thread.join(HANG_GUARD)  # the end of input stops the loop
    assert not h.thread.is_alive()


# ---- holding a fast stream's tokens ----------------------------------------------------------


class Idle:
    """Just enough of an engine for the send policy: whether more steps will come."""

    def __init__(self) -> None:
        self.work = True

    def has_work(self) -> bool:
        return self.work


class Writes(io.BytesIO):
    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def write(self, data: Any) -> int:
        self.count += 1
        return super().write(data)


def sent(out: Writes) -> list[Frame]:
    stream = io.BytesIO(out.getvalue())
    frames = []
    while (frame := read_frame(stream)) is not None:
        frames.append(frame)
    return frames


def tok(rid: int, n: int) -> TokenEvent:
    return TokenEvent(rid, n, b"x")


def test_a_fast_streams_tokens_are_held_briefly_and_sent_together() -> None:
    engine, out = Idle(), Writes()
    runner = Runner(cast(Any, engine), out)
    step = runner_module.MAX_HOLD_S / 2.5  # a step well under the hold time
    runner._emit([tok(1, 10)], 0.0, step)
    assert out.count == 1, "a first token is sent at once (time to first token)"
    runner._emit([tok(1, 11)], step, step)
    runner._emit([tok(1, 12)], 2 * step, step)
    assert out.count == 1, "tokens of a fast stream wait to be sent together"
    # Waiting one more step would hold the oldest token past MAX_HOLD_S: everything goes now.
    runner._emit([tok(1, 13)], 3 * step, step)
    assert out.count == 2
    assert [f["token"] for f in sent(out)] == [10, 11, 12, 13]


def test_slow_steps_ends_and_idle_engines_are_never_held() -> None:
    engine, out = Idle(), Writes()
    runner = Runner(cast(Any, engine), out)
    slow = runner_module.MAX_HOLD_S * 1.5
    runner._emit([tok(1, 1)], 0.0, slow)
    runner._emit([tok(1, 2)], slow, slow)
    assert out.count == 2, "a token of a slow stream is not held"
    fast = runner_module.MAX_HOLD_S / 10
    runner._emit([tok(1, 3)], 1.0, fast)
    assert out.count == 2
    done = DoneEvent(1, "length", 3, 0, 3, 0)
    runner._emit([done, tok(2, 7)], 1.0 + fast, fast)  # an end, and another's first token
    assert out.count == 3
    runner._emit([tok(2, 8)], 1.0 + 2 * fast, fast)
    assert out.count == 3
    engine.work = False  # nothing more to step: nothing may wait for a step
    runner._emit([], 1.0 + 3 * fast, fast)
    assert out.count == 4
    assert [(f["ev"], f["id"]) for f in sent(out)] == [
        ("token", 1),
        ("token", 1),
        ("token", 1),
        ("done", 1),
        ("token", 2),
        ("token", 2),
    ]
