"""Log probabilities on the native routes with the fake engine: one entry per generated token,
in every chunk, from the real log-softmax over the fake's logits, also under batching."""

from __future__ import annotations

import asyncio
import json
import math
from typing import Any

import pytest

from corral.engine.fake import FAKE_LOGITS
from tests.server.conftest import CHAT_A, CHAT_B, Served

pytestmark = pytest.mark.anyio

LOG_TOTAL = math.log(sum(math.exp(float(x)) for x in FAKE_LOGITS))
CHOSEN = float(FAKE_LOGITS[0]) - LOG_TOTAL  # the fake always picks its most likely token


def body(path: str, model: str, text: str, **extra: Any) -> dict[str, Any]:
    if path == "/api/generate":
        return {"model": model, "prompt": text, **extra}
    return {"model": model, "messages": [{"role": "user", "content": text}], **extra}


def answer_text(path: str, chunk: dict[str, Any]) -> str:
    return str(chunk["response"] if path == "/api/generate" else chunk["message"]["content"])


PATHS = ["/api/generate", "/api/chat"]


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("stream", [True, False])
async def test_one_entry_per_token(srv: Served, path: str, stream: bool) -> None:
    req = body(path, CHAT_A, "hello", stream=stream, logprobs=True, top_logprobs=3)
    req["options"] = {"num_predict": 9}
    r = await srv.client.post(path, json=req)
    assert r.status_code == 200, r.text
    chunks = [json.loads(line) for line in r.text.splitlines()]
    entries = [e for c in chunks for e in c.get("logprobs") or []]
    final = chunks[-1]
    assert final["done"] is True
    assert len(entries) == final["eval_count"] == 9
    assert "".join(e["token"] for e in entries) == "".join(answer_text(path, c) for c in chunks)
    for e in entries:
        assert e["logprob"] == pytest.approx(CHOSEN, abs=1e-5)
        assert e["bytes"] == list(e["token"].encode())
        tops = e["top_logprobs"]
        assert len(tops) == 3
        assert tops[0]["token"] == e["token"]
        values = [t["logprob"] for t in tops]
        assert values == sorted(values, reverse=True)
        assert values[1] == pytest.approx(CHOSEN - 0.5, abs=1e-5)
    if stream:  # each chunk carries its own tokens' entries
        for c in chunks[:-1]:
            assert len(c.get("logprobs") or []) == len(answer_text(path, c))


@pytest.mark.parametrize("path", PATHS)
async def test_without_top_logprobs_there_are_no_alternatives(srv: Served, path: str) -> None:
    req = body(path, CHAT_A, "hi", stream=False, logprobs=True, options={"num_predict": 3})
    entries = (await srv.client.post(path, json=req)).json()["logprobs"]
    assert len(entries) == 3
    assert all("top_logprobs" not in e for e in entries)


@pytest.mark.parametrize("path", PATHS)
async def test_not_asked_not_sent(srv: Served, path: str) -> None:
    req = body(path, CHAT_A, "hi", stream=True, options={"num_predict": 3})
    r = await srv.client.post(path, json=req)
    assert all("logprobs" not in json.loads(line) for line in r.text.splitlines())


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("top", [-1, 21, 1 << 31])
async def test_top_logprobs_out_of_range(srv: Served, path: str, top: int) -> None:
    for model in (CHAT_A, "no-such-model"):  # checked before the model is looked up
        r = await srv.client.post(path, json=body(path, model, "hi", top_logprobs=top))
        assert r.status_code == 400
        assert r.json() == {"error": "top_logprobs must be between 0 and 20"}


@pytest.mark.parametrize("path", PATHS)
async def test_wrong_types(srv: Served, path: str) -> None:
    for field, value in (("logprobs", "yes"), ("top_logprobs", "3"), ("top_logprobs", 2.5)):
        r = await srv.client.post(path, json=body(path, CHAT_A, "hi", **{field: value}))
        assert r.status_code == 400, (field, value)
        assert field in r.json()["error"]


async def test_a_stop_word_ends_the_entries_with_the_text(srv: Served) -> None:
    req = body("/api/generate", CHAT_A, "hi", stream=False, logprobs=True)
    req["options"] = {"num_predict": 30, "stop": ["x"]}
    r = await srv.client.post("/api/generate", json=req)
    answer = r.json()
    assert len(answer["logprobs"]) == answer["eval_count"]


async def test_batched_requests_each_get_their_own(srv: Served) -> None:
    async def ask(model: str, n: int, with_logprobs: bool) -> dict[str, Any]:
        req = body("/api/chat", model, f"request {n}", stream=True, options={"num_predict": 12})
        if with_logprobs:
            req.update(logprobs=True, top_logprobs=n % 4)
        r = await srv.client.post("/api/chat", json=req)
        chunks = [json.loads(line) for line in r.text.splitlines()]
        entries = [e for c in chunks for e in c.get("logprobs") or []]
        return {"n": n, "entries": entries, "eval": chunks[-1]["eval_count"], "lp": with_logprobs}

    results = await asyncio.gather(
        *(ask(CHAT_A if n % 2 else CHAT_B, n, n % 3 != 0) for n in range(8))
    )
    for res in results:
        if not res["lp"]:
            assert res["entries"] == []
            continue
        assert len(res["entries"]) == res["eval"] == 12
        for e in res["entries"]:
            assert len(e.get("top_logprobs") or []) == res["n"] % 4


async def test_openai_chat_logprobs(srv: Served) -> None:
    body = {
        "model": CHAT_A,
        "messages": [{"role": "user", "content": "hi"}],
        "max_tokens": 6,
        "logprobs": True,
        "top_logprobs": 2,
    }
    r = await srv.client.post("/v1/chat/completions", json=body)
    choice = r.json()["choices"][0]
    content = choice["logprobs"]["content"]
    assert "".join(e["token"] for e in content) == choice["message"]["content"]
    assert all(len(e["top_logprobs"]) == 2 for e in content)
    assert content[0]["logprob"] == pytest.approx(CHOSEN, abs=1e-5)
    r = await srv.client.post("/v1/chat/completions", json={**body, "stream": True})
    datas = [e.removeprefix("data: ") for e in r.text.split("\n\n") if e]
    events = [json.loads(d) for d in datas if d != "[DONE]"]
    streamed = [
        e
        for ev in events
        for c in ev["choices"]
        for e in (c.get("logprobs") or {}).get("content", [])
    ]
    assert len(streamed) == 6
    r = await srv.client.post("/v1/chat/completions", json={**body, "logprobs": False})
    assert r.json()["choices"][0]["logprobs"] is None


async def test_openai_completions_logprobs(srv: Served) -> None:
    body = {"model": CHAT_A, "prompt": "hi", "max_tokens": 5, "logprobs": 3}
    choice = (await srv.client.post("/v1/completions", json=body)).json()["choices"][0]
    content = choice["logprobs"]["content"]
    assert "".join(e["token"] for e in content) == choice["text"]
    assert all(len(e["top_logprobs"]) == 3 for e in content)
