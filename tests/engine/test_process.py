"""The server's side of a runner process, with the fake engine in a real child process:
an abandoned start reaps its process, and a cancelled generation gives its slot back only once
the runner has stopped it (or died)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from typing import Any

import anyio
import pytest

from corral.engine.process import RunnerError, RunnerProcess, _run_of
from corral.engine.types import DoneEvent, LoadSpec, SamplingParams, TokenEvent, TokenRun
from corral.scheduler import SlotPool

pytestmark = pytest.mark.anyio

SPEC = LoadSpec(model_path="/nonexistent.gguf", n_ctx=512, n_parallel=1)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(autouse=True)
def endless(monkeypatch: pytest.MonkeyPatch) -> None:
    """Answers that only a cancel (or num_predict) ends, in the runner process."""
    monkeypatch.setenv("CORRAL_FAKE_SCRIPT", '{"forever": {"endless": "la "}}')


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


async def until(cond: Callable[[], object]) -> None:
    with anyio.fail_after(30):
        while not cond():
            await asyncio.sleep(0.005)


async def test_a_cancelled_start_kills_and_reaps_the_process() -> None:
    runner = RunnerProcess(SPEC, engine="fake")
    task = asyncio.create_task(runner.start(timeout=60))
    await until(lambda: runner.pid != 0)
    pid = runner.pid
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert gone(pid), "the runner process outlived its cancelled start"
    assert not runner.alive


async def test_an_early_close_keeps_the_slot_until_the_runner_reports_the_cancel() -> None:
    runner = RunnerProcess(SPEC, engine="fake")
    await runner.start(timeout=60)
    try:
        pool = SlotPool(1)
        slot = await pool.take()
        prompt = await runner.tokenize("forever")
        events = runner.generate(prompt, SamplingParams(), slot=slot)
        first = await anext(events)
        assert isinstance(first, TokenEvent | TokenRun)  # a run when the reader was late
        await events.aclose()
        slot.release()  # as the pipeline does: a no-op, the runner owns the release now
        await until(lambda: pool.free == 1)
        # the slot is usable again: the next request runs to its end
        again = await pool.take()
        done = [
            ev async for ev in runner.generate(prompt, SamplingParams(num_predict=3), slot=again)
        ]
        assert isinstance(done[-1], DoneEvent) and done[-1].reason == "length"
        again.release()
        assert pool.free == 1
    finally:
        await runner.close()
    assert gone(runner.pid)


async def test_a_dying_runner_fails_its_streams_and_gives_back_deferred_slots() -> None:
    runner = RunnerProcess(
        LoadSpec(model_path="/x.gguf", n_ctx=1 << 30, n_parallel=2), engine="fake"
    )
    await runner.start(timeout=60)
    pool = SlotPool(2)
    prompt = await runner.tokenize("forever")
    kept = await pool.take()
    left = await pool.take()
    stream = runner.generate(prompt, SamplingParams(), slot=kept)
    await anext(stream)
    abandoned = runner.generate(prompt, SamplingParams(), slot=left)
    await anext(abandoned)
    runner.proc.kill()  # type: ignore[union-attr]
    await abandoned.aclose()
    left.release()
    with pytest.raises(RunnerError):
        async for _ in stream:
            pass
    kept.release()
    await until(lambda: pool.free == 2)
    assert not runner.alive
    with pytest.raises(RunnerError):
        await runner.tokenize("x")
    await runner.close()


async def test_tokens_waiting_together_come_as_one_run() -> None:
    q: asyncio.Queue[Any] = asyncio.Queue()
    for n in (5, 6, 7):
        q.put_nowait(TokenEvent(1, n, bytes([96 + n])))
    done = DoneEvent(1, "stop", 1, 0, 3, 0)
    q.put_nowait(done)
    first = q.get_nowait()
    run, held = _run_of(first, q)
    assert run == TokenRun(1, (5, 6, 7), (b"e", b"f", b"g"))
    assert held is done and q.empty()
    lone = TokenEvent(1, 8, b"h")
    assert _run_of(lone, q) == (lone, None)


async def test_runs_keep_every_token_in_order() -> None:
    runner = RunnerProcess(SPEC, engine="fake")
    await runner.start(30)
    try:
        prompt = await runner.tokenize("forever")
        tokens: list[int] = []
        async for ev in runner.generate(prompt, SamplingParams(num_predict=40)):
            if isinstance(ev, TokenEvent):
                tokens.append(ev.token)
            elif isinstance(ev, TokenRun):
                assert len(ev.tokens) == len(ev.pieces) > 1
                tokens.extend(ev.tokens)
            else:
                assert ev.eval_count == len(tokens) == 40
        assert await runner.detokenize(tokens) == ("la " * 14)[:40]  # one token per character
    finally:
        await runner.close()
