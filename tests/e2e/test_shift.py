"""``shift`` on a real model: a full context ends the answer (``length``) without it, and shifts
(the answer goes on) with it. The official Python client has no ``shift`` field, so these
requests are plain HTTP."""

from __future__ import annotations

from typing import Any

import httpx
import ollama
import pytest

from tests.serverproc import ServerProcess

pytestmark = pytest.mark.slow

COUNTING = "1, 2, 3, 4, 5, 6, 7, 8, 9, 10,"  # SmolLM2 keeps counting well past 150 tokens
NUM_CTX = 128
PREDICT = 150  # more than fits: the context must shift once


@pytest.fixture(scope="module")
def smol(client: ollama.Client, smollm2_digest: str) -> str:
    client.create(model="smol-shift", files={"model.gguf": smollm2_digest})
    return "smol-shift"


def count(server: ServerProcess, model: str, shift: bool | None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": model,
        "prompt": COUNTING,
        "raw": True,
        "stream": False,
        "options": {"num_ctx": NUM_CTX, "num_predict": PREDICT, "temperature": 0},
    }
    if shift is not None:
        body["shift"] = shift
    r = httpx.post(server.url + "/api/generate", json=body, timeout=300)
    assert r.status_code == 200, r.text
    answer: dict[str, Any] = r.json()
    return answer


def test_without_shift_a_full_context_ends_the_answer(server: ServerProcess, smol: str) -> None:
    r = count(server, smol, shift=False)
    assert r["done_reason"] == "length"
    # the context holds NUM_CTX positions; the last token sampled from them is still sent
    assert r["prompt_eval_count"] + r["eval_count"] <= NUM_CTX + 1


def test_with_shift_the_answer_goes_on(server: ServerProcess, smol: str) -> None:
    r = count(server, smol, shift=None)  # on by default
    assert r["eval_count"] == PREDICT
    assert r["done_reason"] == "length"
