"""Slots and queue places: FIFO hand-over, and nothing lost to cancellation at any point."""

from __future__ import annotations

import asyncio

import pytest

from corral.errors import ServerBusy
from corral.scheduler import QueueLimit, SlotPool

pytestmark = pytest.mark.anyio


async def test_slots_are_handed_out_first_come_first_served() -> None:
    pool = SlotPool(1)
    first = await pool.take()
    order: list[int] = []

    async def waiter(i: int) -> None:
        hold = await pool.take()
        order.append(i)
        hold.release()

    tasks = [asyncio.create_task(waiter(i)) for i in range(3)]
    while pool.waiting < 3:
        await asyncio.sleep(0)
    first.release()
    await asyncio.gather(*tasks)
    assert order == [0, 1, 2]
    assert pool.free == 1 and pool.busy == 0


async def test_a_cancelled_waiter_takes_nothing() -> None:
    pool = SlotPool(1)
    held = await pool.take()
    task = asyncio.create_task(pool.take())
    while pool.waiting < 1:
        await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert pool.waiting == 0
    held.release()
    assert pool.free == 1


async def test_a_slot_handed_to_a_waiter_cancelled_at_that_moment_passes_on() -> None:
    """The slot was given (the future resolved) but the waiter is cancelled before it resumes:
    the slot must go to the next waiter, not vanish."""
    pool = SlotPool(1)
    held = await pool.take()
    doomed = asyncio.create_task(pool.take())
    heir = asyncio.create_task(pool.take())
    while pool.waiting < 2:
        await asyncio.sleep(0)
    held.release()  # resolves doomed's future...
    doomed.cancel()  # ...which is cancelled before it runs again
    with pytest.raises(asyncio.CancelledError):
        await doomed
    got = await heir
    assert pool.busy == 1
    got.release()
    assert pool.free == 1


async def test_release_is_idempotent_and_defer_moves_it() -> None:
    pool = SlotPool(2)
    a = await pool.take()
    a.release()
    a.release()
    assert pool.free == 2
    b = await pool.take()
    finish = b.defer()
    b.release()  # the runner owns the release now
    assert pool.busy == 1
    finish()
    finish()
    assert pool.free == 2 and b.released


def test_queue_limit_refuses_past_the_limit_and_places_leave_once() -> None:
    q = QueueLimit(2)
    a, b = q.enter(), q.enter()
    with pytest.raises(ServerBusy) as e:
        q.enter()
    assert e.value.status == 503
    assert e.value.message == "server busy, please try again.  maximum pending requests exceeded"
    a.leave()
    a.leave()
    assert q.waiting == 1
    b.leave()
    assert q.waiting == 0
