"""A generation without a bound ends after ten context windows, as in Ollama (issue 14): the fuzz
bench found SmolLM2 answering ``temperature: 0`` in a loop, with context shifting, for longer
than 300 s."""

from __future__ import annotations

import httpx
import ollama
import pytest

from tests.serverproc import ServerProcess

pytestmark = pytest.mark.slow

N_CTX = 64  # the smallest context corral loads: ten of them are 640 tokens


@pytest.fixture(scope="module")
def smol(client: ollama.Client, smollm2_digest: str) -> str:
    client.create(model="smollm2:135m", files={"model.gguf": smollm2_digest})
    return "smollm2:135m"


@pytest.mark.parametrize("num_predict", [-1, -2, 0])
def test_an_unbounded_generation_ends_after_ten_context_windows(
    server: ServerProcess, smol: str, num_predict: int
) -> None:
    options = {"num_ctx": N_CTX, "num_predict": num_predict, "temperature": 0, "seed": 1}
    body = {"model": smol, "prompt": "\u00e0\u001c\u00fa\u001a", "raw": True, "stream": False}
    r = httpx.post(f"{server.url}/api/generate", json={**body, "options": options}, timeout=300)
    assert r.status_code == 200, r.text
    answer = r.json()
    assert answer["done"] is True
    assert answer["eval_count"] <= 10 * N_CTX
    if answer["done_reason"] == "length":
        assert answer["eval_count"] == 10 * N_CTX
