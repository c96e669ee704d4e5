"""The scheduler seen through the real app: eviction, reloads, the queue limit, keep_alive,
failed loads, and loads that never delay a loaded model (issue 11)."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from tests.server.conftest import (
    BUSY,
    CHAT,
    CHAT_A,
    CHAT_B,
    EMBED,
    GENERATE,
    HANG_GUARD,
    ONE_REPLY,
    OPENAI,
    ROUTE_CASES,
    ROUTES,
    Route,
    Served,
    until,
)

pytestmark = pytest.mark.anyio

A, B, E = f"{CHAT_A}:latest", f"{CHAT_B}:latest", f"{EMBED}:latest"


def ok(r: httpx.Response, route: Route = GENERATE) -> str:
    """The text of a successful ``stream: false`` answer."""
    assert r.status_code == 200, r.text
    return route.text(r.json())


async def embed(srv: Served, model: str = EMBED) -> None:
    r = await srv.client.post("/api/embed", json={"model": model, "input": "hello"})
    assert r.status_code == 200, r.text
    assert len(r.json()["embeddings"]) == 1


# ---- 1. eviction at OLLAMA_MAX_LOADED_MODELS ---------------------------------------------------


@pytest.mark.settings(max_loaded_models=2)
async def test_the_least_recently_used_idle_runner_is_evicted(srv: Served) -> None:
    assert ok(await srv.ask(CHAT_A)) == ONE_REPLY
    assert ok(await srv.ask(CHAT_B)) == ONE_REPLY
    assert await srv.ps() == [B, A]  # most recently used first
    first_a = srv.runner(CHAT_A)

    await embed(srv)  # a third model: a, the least recently used, makes room
    assert await srv.ps() == [E, B]
    await until(lambda: first_a.closed, "the evicted runner is closed")

    assert ok(await srv.ask(CHAT_B)) == ONE_REPLY  # now e is the least recently used
    assert ok(await srv.ask(CHAT_A)) == ONE_REPLY
    assert await srv.ps() == [A, B]
    paths = [s.model_path for s in srv.factory.loads]
    assert paths == [srv.model_path(m) for m in (CHAT_A, CHAT_B, EMBED, CHAT_A)]
    assert srv.idle()


@pytest.mark.settings(max_loaded_models=1)
async def test_a_busy_runner_is_not_evicted_the_new_load_waits(srv: Served) -> None:
    assert ok(await srv.ask(CHAT_A)) == ONE_REPLY
    runner_a = srv.runner(CHAT_A)
    runner_a.gate.clear()
    busy_a = asyncio.create_task(srv.ask(CHAT_A))
    await until(lambda: runner_a.active == 1, "a's request is in the engine")
    want_b = asyncio.create_task(srv.ask(CHAT_B))
    await until(lambda: srv.stats()["queued"] == 1, "b's request waits for room")
    assert srv.stats()["loaded"] == 1 and not runner_a.closed  # no load of b has begun
    assert await srv.ps() == [A]

    runner_a.gate.set()
    assert ok(await busy_a) == ONE_REPLY
    assert ok(await want_b) == ONE_REPLY
    assert runner_a.closed
    assert await srv.ps() == [B]
    assert srv.idle()


# ---- 2. reload on a load-time option change ----------------------------------------------------


async def test_a_changed_load_option_reloads_once_the_runner_is_idle(srv: Served) -> None:
    small, large = {"num_ctx": 256}, {"num_ctx": 512}
    assert ok(await srv.ask(CHAT_A, options=small)) == ONE_REPLY
    old = srv.runner(CHAT_A)
    old.gate.clear()  # freeze the request in flight on the old runner
    in_flight = asyncio.create_task(srv.ask(CHAT_A, "hello", options=small))
    await until(lambda: old.active == 1, "a request runs on the old runner")

    reload = asyncio.create_task(srv.ask(CHAT_A, options=large))
    await until(lambda: srv.stats()["queued"] == 1, "the new request waits for the drain")
    assert len(srv.factory.loads) == 1 and not old.closed  # no reload under a request

    old.gate.set()
    assert ok(await in_flight) == "The quick brown fox jumps over the lazy dog."
    assert ok(await reload) == ONE_REPLY
    assert [s.n_ctx for s in srv.factory.loads] == [256, 512]
    assert old.closed and old.submitted == 2  # the warm-up and the request in flight
    new = srv.runner(CHAT_A)
    assert new is not old and new.submitted == 1
    r = await srv.client.get("/api/ps")
    assert [(m["name"], m["context_length"]) for m in r.json()["models"]] == [(A, 512)]
    assert srv.idle()


# ---- 3. the 503 past OLLAMA_MAX_QUEUE ----------------------------------------------------------


@pytest.mark.settings(num_parallel=1, max_queue=2)
@pytest.mark.parametrize(("route", "stream"), ROUTE_CASES)
async def test_requests_past_the_queue_limit_get_503(
    srv: Served, route: Route, stream: bool
) -> None:
    assert ok(await srv.ask(CHAT_A)) == ONE_REPLY
    runner = srv.runner(CHAT_A)
    runner.gate.clear()

    tasks = [asyncio.create_task(srv.ask(CHAT_A, route=route, stream=stream)) for _ in range(8)]

    def settled() -> bool:
        stats = srv.stats()
        done = sum(t.done() for t in tasks)
        return done == 5 and stats["busy_slots"] == 1 and stats["queued"] == 2

    await until(settled, "1 request runs, 2 wait for the slot, 5 are answered")
    refused = [t.result() for t in tasks if t.done()]
    admitted = [t for t in tasks if not t.done()]
    assert [r.status_code for r in refused] == [503] * 5
    assert [route.error(r.json()) for r in refused] == [BUSY] * 5
    assert runner.active == 1  # the engine holds the running one only

    runner.gate.set()
    assert [route.reply(r) for r in await asyncio.gather(*admitted)] == [ONE_REPLY] * 3
    assert srv.idle()


@pytest.mark.settings(num_parallel=1, max_queue=2)
async def test_waiting_for_a_load_takes_a_queue_place(srv: Served) -> None:
    """The request that starts a load is not queued (the load is its work, as in Ollama); the
    others that wait for it are."""
    path = srv.model_path(CHAT_A)
    srv.factory.gates[path] = asyncio.Event()
    tasks = [asyncio.create_task(srv.ask(CHAT_A)) for _ in range(5)]
    await until(
        lambda: sum(t.done() for t in tasks) == 2 and len(srv.factory.loads) == 1,
        "the load has started and 2 requests are answered",
    )
    assert srv.stats()["queued"] == 2
    refused = [t.result() for t in tasks if t.done()]
    admitted = [t for t in tasks if not t.done()]
    assert [(r.status_code, r.json()) for r in refused] == [(503, {"error": BUSY})] * 2

    srv.factory.gates[path].set()
    assert [ok(r) for r in await asyncio.gather(*admitted)] == [ONE_REPLY] * 3
    assert srv.idle()


# ---- 4. keep_alive -----------------------------------------------------------------------------


async def test_an_expired_keep_alive_unloads_the_model(srv: Served) -> None:
    assert ok(await srv.ask(CHAT_A, keep_alive=0.05)) == ONE_REPLY
    runner = srv.runner(CHAT_A)

    async def gone() -> bool:
        return await srv.ps() == []

    await until(gone, "the model leaves /api/ps when its keep_alive expires")
    await until(lambda: runner.closed, "its runner is closed")
    assert srv.stats() == {"queued": 0, "refs": 0, "busy_slots": 0, "loaded": 0, "unloading": 0}


async def test_keep_alive_zero_unloads_right_after_the_request(srv: Served) -> None:
    assert ok(await srv.ask(CHAT_A)) == ONE_REPLY  # loaded, with the default keep_alive
    runner = srv.runner(CHAT_A)
    assert ok(await srv.ask(CHAT_A, keep_alive=0)) == ONE_REPLY
    # A stream:false answer is sent after the request has let go of the runner.
    assert await srv.ps() == []
    await until(lambda: runner.closed, "the runner is closed")
    assert srv.idle()


@pytest.mark.parametrize("route", [GENERATE, CHAT], ids=lambda r: r.name)
async def test_keep_alive_zero_without_a_prompt_unloads(srv: Served, route: Route) -> None:
    assert ok(await srv.ask(CHAT_A)) == ONE_REPLY
    runner = srv.runner(CHAT_A)
    assert await srv.ps() == [A]

    r = await srv.client.post(route.path, json={"model": CHAT_A, "keep_alive": 0})
    assert r.status_code == 200, r.text
    lines = r.text.splitlines()
    assert len(lines) == 1  # one NDJSON line (stream defaults to true)
    assert r.json()["done"] is True and r.json()["done_reason"] == "unload"
    assert await srv.ps() == []
    assert runner.closed  # the answer comes once the runner is gone
    assert srv.idle()


# ---- 5. a failed load, then a retry ------------------------------------------------------------


async def test_a_failed_load_fails_every_waiter_and_the_next_request_loads_again(
    srv: Served,
) -> None:
    path = srv.model_path(CHAT_A)
    srv.factory.gates[path] = asyncio.Event()
    srv.factory.failures[path] = "out of memory (fake)"
    waiters = [asyncio.create_task(srv.ask(CHAT_A, route=route)) for route in ROUTES * 2]
    await until(
        lambda: srv.stats()["queued"] == len(waiters) - 1 and len(srv.factory.loads) == 1,
        "every request waits for the one load",
    )

    srv.factory.gates[path].set()
    for route, r in zip(ROUTES * 2, await asyncio.gather(*waiters), strict=True):
        assert r.status_code == 500, r.text
        assert "out of memory (fake)" in route.error(r.json())
    assert srv.stats() == {"queued": 0, "refs": 0, "busy_slots": 0, "loaded": 0, "unloading": 0}
    assert await srv.ps() == []

    del srv.factory.failures[path]
    for route in (GENERATE, CHAT, OPENAI):
        assert ok(await srv.ask(CHAT_A, route=route), route) == ONE_REPLY
    assert len(srv.factory.loads) == 2
    assert await srv.ps() == [A]
    assert srv.idle()


# ---- 8. another model's load never delays a loaded one -----------------------------------------


async def test_a_loaded_model_answers_while_another_model_loads(srv: Served) -> None:
    assert ok(await srv.ask(CHAT_A)) == ONE_REPLY
    path_b = srv.model_path(CHAT_B)
    srv.factory.gates[path_b] = asyncio.Event()
    want_b = asyncio.create_task(srv.ask(CHAT_B))
    await until(lambda: len(srv.factory.loads) == 2, "b's load has started")

    async with asyncio.timeout(HANG_GUARD):  # a hang here means a's request waited for b
        assert ok(await srv.ask(CHAT_A, options={"num_predict": 1})) == ONE_REPLY
    assert not want_b.done()
    assert srv.factory.loads[1].model_path == path_b and len(srv.factory.runners) == 1

    srv.factory.gates[path_b].set()
    assert ok(await want_b) == ONE_REPLY
    assert await srv.ps() == [B, A]
    assert srv.idle()
