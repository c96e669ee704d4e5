"""The CPU budget: the share table, and the scheduler telling runners their share as they turn
busy and idle."""

from __future__ import annotations

import asyncio

import pytest

from corral.scheduler.cpu import available_cores, shares
from tests.fakerunner import Factory
from tests.scheduler.test_scheduler import ref, scheduler, until


@pytest.mark.parametrize(
    ("wants", "busy", "cores", "expected"),
    [
        ({"a": 2}, ["a"], 2, {"a": 2}),  # alone: all it wants
        ({"a": 2, "b": 2}, ["a"], 2, {"a": 2, "b": 2}),  # the other is idle
        ({"a": 2, "b": 2}, ["a", "b"], 2, {"a": 1, "b": 1}),
        ({"a": 8, "b": 8, "c": 8}, ["a", "b", "c"], 8, {"a": 3, "b": 3, "c": 2}),
        ({"a": 1, "b": 8}, ["a", "b"], 8, {"a": 1, "b": 4}),  # never more than it wants
        ({"a": 4, "b": 4, "c": 4}, ["a", "b", "c"], 2, {"a": 1, "b": 1, "c": 1}),  # at least 1
        ({"a": 0}, [], 4, {"a": 1}),
        ({"a": 4}, ["gone", "a"], 4, {"a": 4}),  # busy keys that are not runners are ignored
    ],
)
def test_shares(
    wants: dict[str, int], busy: list[str], cores: int, expected: dict[str, int]
) -> None:
    assert shares(wants, busy, cores) == expected


def test_available_cores_is_positive() -> None:
    assert available_cores() >= 1


@pytest.mark.anyio
async def test_busy_runners_split_the_cores_and_one_alone_gets_them_back() -> None:
    f = Factory()
    s = scheduler(f)
    s.cores = 4
    for name in ("a", "b"):  # load both
        async with s.use(ref(name), 300):
            pass
    ra, rb = f.runners
    assert ra.engine.threads == rb.engine.threads == 0  # never told: their own choice

    async def busy(name: str, release: asyncio.Event) -> None:
        async with s.use(ref(name), 300) as lease:
            slot = await lease.take_slot()
            try:
                await release.wait()
            finally:
                slot.release()

    done_a, done_b = asyncio.Event(), asyncio.Event()
    ta = asyncio.create_task(busy("a", done_a))
    await until(lambda: s.stats()["busy_slots"] == 1)
    assert ra.engine.threads == 0  # busy alone: unchanged
    tb = asyncio.create_task(busy("b", done_b))
    await until(lambda: s.stats()["busy_slots"] == 2)
    assert (ra.engine.threads, rb.engine.threads) == (2, 2)
    done_a.set()
    await ta
    assert rb.engine.threads == 4  # alone again: all the cores
    done_b.set()
    await tb
    await s.close()
