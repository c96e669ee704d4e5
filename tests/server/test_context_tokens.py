"""``context`` (the token ids of an earlier answer) must hold ids of the model's vocabulary:
any other id is a 400 before it reaches the engine (issue 14, found by the fuzz test: the fake
engine failed with a 500, and llama.cpp aborts the whole runner on such an id, see
tests/e2e/test_context_crash.py)."""

from __future__ import annotations

import pytest

from tests.server.conftest import CHAT_A, ONE, Served

pytestmark = pytest.mark.anyio

OUTSIDE = "context holds a token id outside the model's vocabulary"


@pytest.mark.parametrize("bad", [10**9, -1, -(10**9)])
@pytest.mark.parametrize("stream", [True, False])
async def test_a_context_id_outside_the_vocabulary_is_a_400(
    srv: Served, bad: int, stream: bool
) -> None:
    body = {"model": CHAT_A, "prompt": ONE, "context": [5, bad], "stream": stream}
    r = await srv.client.post("/api/generate", json=body)
    assert r.status_code == 400, r.text
    assert r.json() == {"error": OUTSIDE}
    assert srv.idle()


async def test_the_context_of_an_answer_is_accepted(srv: Served) -> None:
    r = await srv.client.post(
        "/api/generate", json={"model": CHAT_A, "prompt": ONE, "stream": False}
    )
    assert r.status_code == 200, r.text
    context = r.json()["context"]
    assert context
    body = {"model": CHAT_A, "prompt": ONE, "context": context, "stream": False}
    again = await srv.client.post("/api/generate", json=body)
    assert again.status_code == 200, again.text
    assert again.json()["done"] is True
