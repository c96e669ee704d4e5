"""``/v1/completions`` with more prompts than the model has slots (issue 14, found by the fuzz
test: nine prompts on a model with four slots hung forever, because the prompts were started
one after the other and the first four held every slot while nobody read them)."""

from __future__ import annotations

import json

import pytest

from tests.server.conftest import CHAT_A, ENDLESS, ONE, ONE_REPLY, Served, until

pytestmark = pytest.mark.anyio

PROMPTS = 9  # more than OLLAMA_NUM_PARALLEL (4), the test server's slots per model


def body(prompts: list[str], *, stream: bool) -> dict[str, object]:
    return {"model": CHAT_A, "prompt": prompts, "stream": stream, "max_tokens": 5}


async def test_more_prompts_than_slots_all_get_answers(srv: Served) -> None:
    r = await srv.client.post("/v1/completions", json=body([ONE] * PROMPTS, stream=False))
    assert r.status_code == 200, r.text
    choices = r.json()["choices"]
    assert [c["index"] for c in choices] == list(range(PROMPTS))
    assert {c["text"] for c in choices} == {ONE_REPLY}
    await until(srv.idle, "every slot is given back")


async def test_more_prompts_than_slots_stream_every_choice(srv: Served) -> None:
    prompts = [f"{ONE} {i}" for i in range(PROMPTS)]
    r = await srv.client.post("/v1/completions", json=body(prompts, stream=True))
    assert r.status_code == 200, r.text
    events = [e.removeprefix("data: ") for e in r.text.split("\n\n") if e]
    assert events[-1] == "[DONE]"
    finished = [
        c["index"] for e in events[:-1] for c in json.loads(e)["choices"] if c["finish_reason"]
    ]
    assert sorted(finished) == list(range(PROMPTS))
    await until(srv.idle, "every slot is given back")


async def test_leaving_while_prompts_wait_for_slots_gives_everything_back(srv: Served) -> None:
    r = await srv.client.post("/v1/completions", json=body([ONE], stream=False))
    assert r.status_code == 200, r.text  # loaded
    runner = srv.runner(CHAT_A)
    runner.gate.clear()  # the engine makes no step: four prompts hold the slots, five wait
    client = await srv.raw("/v1/completions", body([ENDLESS] * PROMPTS, stream=True))
    await until(
        lambda: srv.stats()["busy_slots"] == 4 and srv.stats()["queued"] == PROMPTS - 4,
        "four prompts hold the slots and five wait for one",
    )
    await client.close()
    await until(lambda: srv.stats()["queued"] == 0, "the five waiting prompts leave the queue")
    runner.gate.set()  # the engine sees the four cancels at its next step
    await until(srv.idle, "the four running prompts give their slots back")
    assert runner.cancels >= 4
    r = await srv.client.post("/v1/completions", json=body([ONE] * PROMPTS, stream=False))
    assert r.status_code == 200, r.text
