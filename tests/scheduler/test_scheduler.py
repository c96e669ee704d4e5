"""The scheduler with in-process fake runners: loads, sharing, eviction, reloads, keep_alive,
the queue limit, load failures, and cancellation at every await point.

Every test is ordered by conditions on the scheduler's state, never by sleeping; ``fail_after``
only guards against a hang.
"""

from __future__ import annotations

import asyncio
import math
import random
from collections.abc import Callable

import anyio
import pytest

from corral.config import Settings
from corral.engine.fake import Endless
from corral.engine.types import DoneEvent, LoadSpec, SamplingParams
from corral.errors import CorralError, ServerBusy
from corral.scheduler import Lease, ModelRef, Scheduler, State
from tests.fakerunner import Factory, InProcessRunner

pytestmark = pytest.mark.anyio

GUARD = 10  # seconds: only a hung test waits this long


def ref(name: str, *, n_ctx: int = 256, n_parallel: int = 2) -> ModelRef:
    spec = LoadSpec(model_path=f"/models/{name}", n_ctx=n_ctx, n_parallel=n_parallel)
    return ModelRef(key=f"{name}|generate", name=name, digest=f"d-{name}", details={}, spec=spec)


def scheduler(factory: Factory, **settings: object) -> Scheduler:
    return Scheduler(Settings(**settings), factory)  # type: ignore[arg-type]


async def until(cond: Callable[[], object], what: str = "condition") -> None:
    with anyio.fail_after(GUARD):
        while not cond():
            await asyncio.sleep(0)
    assert cond(), what


def runner_of(lease: Lease) -> InProcessRunner:
    runner = lease.runner
    assert isinstance(runner, InProcessRunner)
    return runner


async def hold(s: Scheduler, r: ModelRef, release: asyncio.Event, keep_alive: float = 300) -> Lease:
    async with s.use(r, keep_alive) as lease:
        await release.wait()
        return lease


def idle(s: Scheduler) -> bool:
    st = s.stats()
    return st["refs"] == 0 and st["busy_slots"] == 0 and st["queued"] == 0


async def test_concurrent_requests_share_one_load() -> None:
    f = Factory(gates={"/models/a": asyncio.Event()})
    s = scheduler(f)
    go = asyncio.Event()
    tasks = [asyncio.create_task(hold(s, ref("a"), go)) for _ in range(3)]
    await until(lambda: s.stats()["queued"] == 2 and len(f.loads) == 1)  # all but the starter
    assert s.running() == []
    f.gates["/models/a"].set()
    await until(lambda: s.stats()["refs"] == 3)
    go.set()
    leases = await asyncio.gather(*tasks)
    assert len({id(x.runner) for x in leases}) == 1
    assert all(x.load_duration_ns > 0 for x in leases)
    assert idle(s) and len(f.loads) == 1
    async with s.use(ref("a"), 300) as again:
        assert again.load_duration_ns == 0  # already loaded
    await s.close()


async def test_a_loaded_model_is_not_delayed_by_another_models_load() -> None:
    f = Factory(gates={"/models/b": asyncio.Event()})
    s = scheduler(f)
    async with s.use(ref("a"), 300):
        pass
    loading_b = asyncio.create_task(hold(s, ref("b"), asyncio.Event()))
    await until(lambda: len(f.loads) == 2)
    with anyio.fail_after(GUARD):  # would hang if a's request waited for b's load
        async with s.use(ref("a"), 300) as lease:
            slot = await lease.take_slot()
            slot.release()
    assert not loading_b.done()
    loading_b.cancel()
    await until(lambda: len(f.abandoned) == 1)
    await s.close()


async def test_a_failed_load_reaches_every_waiter_and_the_next_request_retries() -> None:
    f = Factory(gates={"/models/a": asyncio.Event()}, failures={"/models/a": "bad magic"})
    s = scheduler(f)
    tasks = [asyncio.create_task(hold(s, ref("a"), asyncio.Event())) for _ in range(2)]
    await until(lambda: s.stats()["queued"] == 1 and len(f.loads) == 1)
    f.gates["/models/a"].set()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    for err in results:
        assert isinstance(err, CorralError) and err.status == 500
        assert "bad magic" in err.message
    assert s.loaded == {} and idle(s)
    del f.failures["/models/a"]
    async with s.use(ref("a"), 300) as lease:
        assert lease.runner.alive
    assert len(f.loads) == 2
    await s.close()


async def test_a_load_nobody_waits_for_is_abandoned() -> None:
    f = Factory(gates={"/models/a": asyncio.Event()})
    s = scheduler(f)
    task = asyncio.create_task(hold(s, ref("a"), asyncio.Event()))
    await until(lambda: len(f.loads) == 1)
    task.cancel()
    await until(lambda: len(f.abandoned) == 1)
    await until(lambda: s.stats()["unloading"] == 0)
    assert s.loaded == {} and idle(s)
    # a new request loads afresh
    f.gates["/models/a"].set()
    async with s.use(ref("a"), 300):
        pass
    assert len(f.loads) == 2
    await s.close()


async def test_a_load_goes_on_while_another_request_waits_for_it() -> None:
    f = Factory(gates={"/models/a": asyncio.Event()})
    s = scheduler(f)
    go = asyncio.Event()
    quitter = asyncio.create_task(hold(s, ref("a"), go))
    stayer = asyncio.create_task(hold(s, ref("a"), go))
    await until(lambda: "a|generate" in s.loaded and s.loaded["a|generate"].waiters == 2)
    quitter.cancel()  # the request that started the load
    await until(lambda: s.loaded["a|generate"].waiters == 1)
    f.gates["/models/a"].set()
    await until(lambda: s.stats()["refs"] == 1)
    go.set()
    await stayer
    assert f.abandoned == [] and idle(s)
    await s.close()


async def test_evicts_the_least_recently_used_idle_runner() -> None:
    f = Factory()
    s = scheduler(f, max_loaded_models=2)
    for name in ("a", "b"):
        async with s.use(ref(name), 300):
            pass
    async with s.use(ref("a"), 300):  # a is now the most recently used
        pass
    async with s.use(ref("c"), 300):
        pass
    await until(lambda: s.stats()["unloading"] == 0)
    assert {x.name for x in s.running()} == {"a", "c"}
    assert [r.spec.model_path for r in f.runners if r.closed] == ["/models/b"]
    await s.close()


async def test_a_new_load_waits_while_every_runner_is_busy_and_can_be_cancelled() -> None:
    f = Factory()
    s = scheduler(f, max_loaded_models=1)
    release_a = asyncio.Event()
    a = asyncio.create_task(hold(s, ref("a"), release_a))
    await until(lambda: s.stats()["refs"] == 1)
    b1 = asyncio.create_task(hold(s, ref("b"), asyncio.Event()))
    await until(lambda: s.stats()["queued"] == 1)
    b1.cancel()
    await until(lambda: s.stats()["queued"] == 0)
    b2 = asyncio.create_task(hold(s, ref("b"), release_b := asyncio.Event()))
    await until(lambda: s.stats()["queued"] == 1)
    assert [x.model_path for x in f.loads] == ["/models/a"]
    release_a.set()
    await a
    await until(lambda: s.stats()["refs"] == 1 and len(f.loads) == 2)
    assert [x.name for x in s.running()] == ["b"]
    assert f.runners[0].closed
    release_b.set()
    await b2
    await s.close()


async def test_a_load_option_change_drains_the_runner_then_reloads_it() -> None:
    f = Factory()
    s = scheduler(f)
    release_old = asyncio.Event()
    old = asyncio.create_task(hold(s, ref("a", n_ctx=256), release_old))
    await until(lambda: s.stats()["refs"] == 1)
    new = asyncio.create_task(hold(s, ref("a", n_ctx=512), release_new := asyncio.Event()))
    await until(lambda: s.loaded["a|generate"].state is State.DRAINING)
    assert len(f.loads) == 1  # the new load waits for the old requests to finish
    release_old.set()
    await old
    await until(lambda: s.stats()["refs"] == 1)
    assert [x.n_ctx for x in f.loads] == [256, 512]
    assert f.runners[0].closed and not f.runners[1].closed
    release_new.set()
    await new
    await s.close()


async def test_keep_alive_expiry_zero_and_forever() -> None:
    f = Factory()
    s = scheduler(f)
    async with s.use(ref("a"), 0.01):
        pass
    await until(lambda: f.runners[0].closed, "the runner should expire")
    async with s.use(ref("b"), 0):
        pass
    await until(lambda: f.runners[1].closed, "keep_alive 0 unloads when idle")
    async with s.use(ref("c"), math.inf):
        pass
    (c,) = s.running()
    assert c.timer is None and c.expires_at == math.inf
    await s.close()


async def test_unload_waits_for_requests_in_flight_and_new_ones_load_afresh() -> None:
    f = Factory()
    s = scheduler(f)
    release = asyncio.Event()
    busy = asyncio.create_task(hold(s, ref("a"), release))
    await until(lambda: s.stats()["refs"] == 1)
    stop = asyncio.create_task(s.unload("a|generate"))
    await until(lambda: s.loaded["a|generate"].state is State.DRAINING)
    later = asyncio.create_task(hold(s, ref("a"), go := asyncio.Event()))
    await until(lambda: s.stats()["queued"] == 1)
    assert not stop.done()
    release.set()
    await busy
    assert await stop is True
    await until(lambda: s.stats()["refs"] == 1)
    assert len(f.loads) == 2 and f.runners[0].closed
    go.set()
    await later
    assert await s.unload("a|generate") is True
    assert s.running() == [] and await s.unload("a|generate") is False
    await s.close()


async def test_the_queue_limit_counts_requests_waiting_for_loads_and_for_slots() -> None:
    f = Factory(gates={"/models/b": asyncio.Event()})
    s = scheduler(f, max_queue=2)
    one = ref("a", n_parallel=1)
    loading_b = asyncio.create_task(hold(s, ref("b"), asyncio.Event()))
    await until(lambda: len(f.loads) == 1)
    assert s.stats()["queued"] == 0  # the request that starts a load is not queued
    async with s.use(one, 300) as lease:
        slot = await lease.take_slot()

        async def wait_slot() -> None:
            async with s.use(one, 300) as other:
                (await other.take_slot()).release()

        waiting = [asyncio.create_task(wait_slot()) for _ in range(2)]
        await until(lambda: s.stats()["queued"] == 2)
        with pytest.raises(ServerBusy):
            await wait_slot()
        with pytest.raises(ServerBusy):  # waiting for another request's load is queueing too
            async with s.use(ref("b"), 300):
                pass
        slot.release()
        await asyncio.gather(*waiting)
    loading_b.cancel()
    await until(lambda: idle(s) and s.stats()["loaded"] == 1)
    await s.close()


async def test_a_dead_runner_is_replaced_by_the_next_request() -> None:
    f = Factory()
    s = scheduler(f)
    async with s.use(ref("a"), 300):
        pass
    f.runners[0].die()
    async with s.use(ref("a"), 300) as lease:
        assert runner_of(lease) is f.runners[1]
    assert f.runners[0].closed
    await s.close()


async def test_a_cancelled_generation_keeps_its_slot_until_the_runner_has_stopped_it() -> None:
    f = Factory(script={"": Endless("la ")})
    s = scheduler(f)
    async with s.use(ref("a", n_parallel=1), 300) as lease:
        runner = runner_of(lease)
        slot = await lease.take_slot()
        events = runner.generate([1, 5, 6], SamplingParams(), slot=slot)
        await anext(events)
        runner.gate.clear()  # the runner is in the middle of a step
        await events.aclose()
        slot.release()  # what the pipeline does; the runner owns the release now
        assert lease.loaded.slots.busy == 1
        runner.gate.set()
        await until(lambda: lease.loaded.slots.busy == 0, "the slot comes back after the cancel")
    await s.close()


async def test_cancellation_at_random_points_leaves_nothing_behind() -> None:
    rng = random.Random(11)
    f = Factory(script={"": Endless("la ")}, gates={"/models/a": asyncio.Event()})
    s = scheduler(f, max_queue=1000)

    async def request() -> None:
        async with s.use(ref("a", n_parallel=2), 300) as lease:
            slot = await lease.take_slot()
            try:
                events = lease.runner.generate([1, 7], SamplingParams(), slot=slot)
                async for ev in events:
                    if isinstance(ev, DoneEvent):
                        break
            finally:
                slot.release()

    tasks = [asyncio.create_task(request()) for _ in range(200)]
    f.gates["/models/a"].set()
    for task in tasks:
        for _ in range(rng.randrange(0, 40)):
            await asyncio.sleep(0)
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    await until(lambda: idle(s), f"leaked: {s.stats()}")
    assert await s.unload("a|generate") is True
    assert s.running() == [] and s.stats()["unloading"] == 0
    assert f.live() == []
    await s.close()


async def test_close_stops_every_runner() -> None:
    f = Factory()
    s = scheduler(f)
    for name in ("a", "b"):
        async with s.use(ref(name), 300):
            pass
    await s.close()
    assert f.live() == [] and s.loaded == {}
    with pytest.raises(CorralError):
        async with s.use(ref("a"), 300):
            pass
