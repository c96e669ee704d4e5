"""Bad input that only a real runner process shows (issue 14): text crosses the runner's pipe and
reaches llama.cpp's tokenizer, sampling values reach llama.cpp's samplers.

Lone UTF-16 surrogates used to fail there (a 500: they cannot be encoded as UTF-8); they become
U+FFFD when the body is decoded, as in Go. A history of 100k messages used to be rendered once per
dropped message (it never finished); sampling values at their extremes are served, as Ollama
serves them.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import ollama
import pytest

from tests.serverproc import ServerProcess

pytestmark = pytest.mark.slow

TIMEOUT = 300.0
N_CTX = 512


@pytest.fixture(scope="module")
def smol(client: ollama.Client, smollm2_digest: str) -> str:
    client.create(model="smollm2:135m", files={"model.gguf": smollm2_digest})
    return "smollm2:135m"


def post(server: ServerProcess, path: str, body: bytes | dict[str, Any]) -> httpx.Response:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    headers = {"Content-Type": "application/json"}
    return httpx.post(server.url + path, content=content, headers=headers, timeout=TIMEOUT)


OPTIONS = {"num_ctx": N_CTX, "num_predict": 2, "seed": 1}


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/api/generate", '{"model": "M", "prompt": "a\\ud800b\\u0000c", "stream": false}'),
        ("/api/generate", '{"model": "M", "prompt": "\\udfff", "raw": true, "stream": false}'),
        (
            "/api/chat",
            '{"model": "M", "stream": false, "messages": [{"role": "user", "content": "\\ud83d"}]}',
        ),
        ("/api/embed", '{"model": "M", "input": ["\\ud800", "x\\u0000y"]}'),
        (
            "/v1/chat/completions",
            '{"model": "M", "messages": [{"role": "user", "content": "\\udc00"}]}',
        ),
    ],
)
def test_lone_surrogates_and_nuls_reach_the_runner_as_text(
    server: ServerProcess, smol: str, path: str, body: str
) -> None:
    doc = json.loads(body.replace('"M"', json.dumps(smol)))
    if not path.startswith("/v1/"):
        doc["options"] = OPTIONS
    else:
        doc |= {"max_tokens": 2, "num_ctx": N_CTX}
    raw = json.dumps(doc, ensure_ascii=True).encode()  # the escapes travel as sent
    assert b"\\ud" in raw.lower()
    r = post(server, path, raw)
    assert r.status_code == 200, r.text


def test_a_history_of_100k_messages_is_cut_to_the_context(server: ServerProcess, smol: str) -> None:
    messages = [{"role": "user", "content": "hi"}] * 100_000
    body = {"model": smol, "messages": messages, "stream": False, "options": OPTIONS}
    r = post(server, "/api/chat", body)
    assert r.status_code == 200, r.text
    assert 0 < r.json()["prompt_eval_count"] <= N_CTX


EXTREMES: list[dict[str, Any]] = [
    {"top_k": 0},
    {"top_k": -1},
    {"top_k": 2**31},
    {"top_k": 2**63},
    {"top_p": 0},
    {"top_p": -1},
    {"top_p": 1e30},
    {"min_p": 2.5},
    {"typical_p": -3},
    {"temperature": 0},
    {"temperature": -1},
    {"temperature": 1e30},
    {"seed": 2**64},
    {"seed": -(2**63)},
    {"repeat_last_n": -1},
    {"repeat_last_n": 2**31},
    {"repeat_penalty": 0},
    {"presence_penalty": -1e30},
    {"num_keep": 2**31},
    {"mirostat": 2, "mirostat_tau": 1e30, "mirostat_eta": -1},
]


def test_sampling_values_at_their_extremes_are_served(server: ServerProcess, smol: str) -> None:
    for extra in EXTREMES:
        options = {**OPTIONS, **extra}  # (unbounded num_predict: test_predict_limit.py)
        body = {"model": smol, "prompt": "Hi", "stream": False, "options": options}
        r = post(server, "/api/generate", body)
        assert r.status_code == 200, (extra, r.text)
        assert r.json()["done"] is True
