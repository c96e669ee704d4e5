"""A client that goes away at any await of a request gives back everything the request took:
its wait for a load (abandoned when nobody else waits), its queue place, its runner reference,
its slot and its generation in the engine (issue 11, for every inference route, streamed or not).

Each case ends with ``keep_alive: 0``, an empty ``/api/ps`` and ``Scheduler.stats()`` at zero
(:meth:`~tests.server.conftest.Served.unload`).
"""

from __future__ import annotations

import asyncio

import pytest

from corral.scheduler.core import State
from tests.server.conftest import (
    CHAT_A,
    ENDLESS,
    N_BATCH,
    ONE,
    ONE_REPLY,
    ROUTE_CASES,
    ROUTES,
    Route,
    Served,
    until,
)

pytestmark = pytest.mark.anyio


# A prompt that takes many engine steps to prefill (N_BATCH tokens, i.e. characters, a step).
LONG = ENDLESS + " " + "p" * (20 * N_BATCH)


async def warm_up(srv: Served, route: Route) -> None:
    r = await srv.ask(CHAT_A, route=route)
    assert r.status_code == 200, r.text
    assert route.text(r.json()) == ONE_REPLY


@pytest.mark.parametrize(("route", "stream"), ROUTE_CASES)
async def test_leaving_while_waiting_for_the_load_abandons_it(
    srv: Served, route: Route, stream: bool
) -> None:
    path = srv.model_path(CHAT_A)
    srv.factory.gates[path] = asyncio.Event()
    client = await srv.raw(route.path, route.body(CHAT_A, ENDLESS, stream=stream))
    await until(lambda: srv.load_waiters(CHAT_A) == 1, "the request waits for its load")
    assert srv.stats()["queued"] == 0  # the request that starts a load is not queued

    await client.close()
    await until(lambda: srv.factory.abandoned, "the load nobody waits for is abandoned")
    assert [s.model_path for s in srv.factory.abandoned] == [path]
    assert srv.factory.runners == []
    await until(srv.idle, "the queue place is given back")
    assert srv.stats()["loaded"] == 0

    del srv.factory.gates[path]
    await warm_up(srv, route)  # a new request loads the model again
    await srv.unload()


async def test_a_load_another_request_waits_for_is_not_abandoned(srv: Served) -> None:
    route = ROUTES[0]
    path = srv.model_path(CHAT_A)
    srv.factory.gates[path] = asyncio.Event()
    leaver = await srv.raw(route.path, route.body(CHAT_A, ENDLESS, stream=False))
    # the leaver must be the one that starts the load (otherwise the stayer is, unqueued)
    await until(lambda: srv.load_waiters(CHAT_A) == 1, "the leaver's load has started")
    stayer = asyncio.create_task(srv.ask(CHAT_A, route=route))
    await until(lambda: srv.load_waiters(CHAT_A) == 2, "two requests wait for the load")
    assert srv.stats()["queued"] == 1  # the second one; the first one's work is the load

    await leaver.close()
    await until(lambda: srv.load_waiters(CHAT_A) == 1, "the request that left stops waiting")
    assert srv.stats()["queued"] == 1
    assert srv.factory.abandoned == [] and srv.stats()["loaded"] == 1

    srv.factory.gates[path].set()
    r = await stayer
    assert r.status_code == 200, r.text
    assert route.text(r.json()) == ONE_REPLY
    assert srv.factory.abandoned == [] and len(srv.factory.loads) == 1
    await srv.unload()


async def test_a_load_drained_while_only_waiters_hold_it_is_reloaded(srv: Served) -> None:
    """x (num_ctx 256) starts a load, y (num_ctx 512) waits for it to drain, z (num_ctx 256)
    waits for it too; x leaves. When the load completes, y marks the runner DRAINING (z still
    waits on it, so it is not retired), then z wakes, stops waiting and finds it DRAINING."""
    route = ROUTES[0]
    small, large = {"num_ctx": 256}, {"num_ctx": 512}
    path = srv.model_path(CHAT_A)
    srv.factory.gates[path] = asyncio.Event()
    x = await srv.raw(route.path, route.body(CHAT_A, ONE, stream=False, options=small))
    await until(lambda: srv.load_waiters(CHAT_A) == 1, "x's load has started")
    y = asyncio.create_task(srv.ask(CHAT_A, options=large))
    await until(lambda: srv.stats()["queued"] == 1, "y waits")
    z = asyncio.create_task(srv.ask(CHAT_A, options=small))
    await until(lambda: srv.load_waiters(CHAT_A) == 2, "z waits")
    await x.close()
    await until(lambda: srv.load_waiters(CHAT_A) == 1, "x has left")

    srv.factory.gates[path].set()

    def stuck() -> bool:
        """A drained runner that nothing holds or waits for: it should have been retired."""
        states = [entry.state for entry in srv.scheduler.loaded.values()]
        return states == [State.DRAINING] and srv.stats()["refs"] == 0

    try:
        await until(lambda: (y.done() and z.done()) or stuck(), "y and z end, or hang")
        assert not stuck(), "the drained runner is never retired: y and z hang"
        for r in (await y, await z):
            assert r.status_code == 200, r.text
            assert r.json()["response"] == ONE_REPLY
    finally:
        for task in (y, z):
            task.cancel()
        await asyncio.gather(y, z, return_exceptions=True)
    await srv.unload()


@pytest.mark.settings(num_parallel=1)
@pytest.mark.parametrize(("route", "stream"), ROUTE_CASES)
async def test_leaving_while_queued_for_a_slot(srv: Served, route: Route, stream: bool) -> None:
    await warm_up(srv, route)
    runner = srv.runner(CHAT_A)
    runner.gate.clear()
    holder = asyncio.create_task(srv.ask(CHAT_A, route=route))
    await until(lambda: runner.active == 1, "another request holds the only slot")

    client = await srv.raw(route.path, route.body(CHAT_A, ENDLESS, stream=stream))
    await until(lambda: srv.stats()["queued"] == 1, "the request waits for the slot")
    assert srv.stats()["refs"] == 2

    await client.close()
    await until(
        lambda: srv.stats()["queued"] == 0 and srv.stats()["refs"] == 1,
        "the queue place and the runner reference are given back",
    )
    assert runner.submitted == 2 and runner.cancels == 0  # it never reached the engine

    runner.gate.set()
    r = await holder
    assert r.status_code == 200, r.text
    assert route.text(r.json()) == ONE_REPLY
    await srv.unload()


# Engine steps after which the runner freezes: in the middle of the prompt's prefill, or well
# into the generation (LONG prefills in about 25 steps).
POINTS = {"prefill": 1, "generation": 40}


@pytest.mark.settings(num_parallel=1)
@pytest.mark.parametrize("point", POINTS)
@pytest.mark.parametrize(("route", "stream"), ROUTE_CASES)
async def test_leaving_during_the_generation_cancels_it_and_frees_the_slot(
    srv: Served, route: Route, stream: bool, point: str
) -> None:
    await warm_up(srv, route)
    runner = srv.runner(CHAT_A)
    runner.pause_after = runner.engine.steps + POINTS[point]
    client = await srv.raw(route.path, route.body(CHAT_A, LONG, stream=stream))
    if stream and point == "generation":
        assert await client.status() == 200  # the stream has begun
    await until(lambda: not runner.gate.is_set(), "the runner freezes mid-request")
    assert runner.active == 1 and srv.stats()["busy_slots"] == 1

    await client.close()
    await until(lambda: runner.cancels == 1, "the generation is cancelled in the runner")
    await until(lambda: srv.stats()["refs"] == 0, "the runner reference is given back")
    # The engine still holds the request until its next step, and so keeps the slot.
    assert srv.stats()["busy_slots"] == 1

    runner.pause_after = None
    runner.gate.set()
    await until(
        lambda: runner.active == 0 and srv.stats()["busy_slots"] == 0,
        "the engine drops the request and its slot is given back",
    )
    await warm_up(srv, route)  # the slot serves the next request
    assert runner.cancels == 1
    await srv.unload()


# ---- 7. a stream:false client that gives up frees its slot -----------------------------------


# A context far larger than the test could fill: only the disconnect can end the answer.
@pytest.mark.settings(num_parallel=1, context_length=1 << 20)
async def test_a_client_that_gives_up_frees_the_only_slot(srv: Served) -> None:
    route = ROUTES[0]
    client = await srv.raw(route.path, route.body(CHAT_A, ENDLESS, stream=False))
    await until(
        lambda: srv.factory.runners and srv.factory.runners[0].engine.steps > 5,
        "the endless answer is being generated",
    )
    runner = srv.factory.runners[0]
    await client.close()

    r = await srv.ask(CHAT_A)  # waits for the only slot
    assert r.status_code == 200, r.text
    assert route.text(r.json()) == ONE_REPLY
    assert runner.cancels == 1 and len(srv.factory.runners) == 1
    await srv.unload()
