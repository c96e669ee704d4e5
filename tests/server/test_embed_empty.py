"""Empty strings on the embedding routes answer as Ollama does, never with a 5xx.

Ollama skips ``"input": ""`` and a legacy ``"prompt": ""`` (the model is only loaded) and embeds
an empty string inside an input list like any text: the model's special tokens (BOS, or BERT's
CLS/SEP) are its whole input. A model whose tokenizer adds no special token makes no token of
it, and llama-server, which Ollama relays, refuses that with a 400 "Input content cannot be
empty"; ``/v1/embeddings`` turns ``""`` into ``[""]`` first.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from corral.engine.fake import BOS
from corral.engine.types import LoadSpec
from tests.fakerunner import Factory, InProcessRunner
from tests.server.conftest import EMBED, SCRIPT, Served, serve

pytestmark = pytest.mark.anyio

EMPTY_INPUT = "Input content cannot be empty"
EMBED_DIM = 16  # the fake engine's vectors: token counts by token id modulo 16


class NoSpecialTokens(InProcessRunner):
    """A model whose tokenizer adds no BOS of its own (as SmolLM2's): "" is no token at all."""

    async def tokenize(self, text: str, add_special: bool = True) -> list[int]:
        return await super().tokenize(text, add_special=False)


@dataclass
class NoSpecialTokensFactory(Factory):
    async def __call__(self, spec: LoadSpec) -> InProcessRunner:
        self.loads.append(spec)
        runner = NoSpecialTokens(spec, self.script)
        self.runners.append(runner)
        return runner


def _unit(index: int) -> list[float]:
    return [1.0 if i == index else 0.0 for i in range(EMBED_DIM)]


async def _post(srv: Served, path: str, body: dict[str, Any]) -> httpx.Response:
    return await srv.client.post(path, json=body)


async def test_empty_string_in_a_list_is_embedded(srv: Served) -> None:
    r = await _post(srv, "/api/embed", {"model": EMBED, "input": ["a", ""]})
    assert r.status_code == 200, r.text
    body = r.json()
    assert len(body["embeddings"]) == 2
    # "" is its BOS alone: a one-hot vector at BOS's id, normalised
    assert body["embeddings"][1] == _unit(BOS)
    assert math.isclose(sum(v * v for v in body["embeddings"][0]), 1.0)
    assert body["prompt_eval_count"] == 3  # [BOS, a] and [BOS]

    r = await _post(srv, "/api/embed", {"model": EMBED, "input": [""]})
    assert r.status_code == 200, r.text
    assert r.json()["embeddings"] == [_unit(BOS)]


async def test_empty_input_and_prompt_embed_nothing(srv: Served) -> None:
    empty: list[str | list[str]] = ["", []]
    for value in empty:
        r = await _post(srv, "/api/embed", {"model": EMBED, "input": value})
        assert r.status_code == 200, r.text
        assert r.json() == {"model": EMBED, "embeddings": []}
    r = await _post(srv, "/api/embeddings", {"model": EMBED, "prompt": ""})
    assert r.status_code == 200, r.text
    assert r.json() == {"embedding": []}


async def test_openai_empty_string_is_one_input(srv: Served) -> None:
    r = await _post(srv, "/v1/embeddings", {"model": EMBED, "input": ""})
    assert r.status_code == 200, r.text
    data = r.json()["data"]
    assert [d["index"] for d in data] == [0]
    assert data[0]["embedding"] == _unit(BOS)


@pytest.fixture
async def no_bos(models: Path) -> Any:
    async with serve(models, NoSpecialTokensFactory(script=SCRIPT)) as served:
        yield served


@pytest.mark.parametrize("inputs", [["a", ""], [""], ["", "a"]])
async def test_input_without_tokens_is_a_400(no_bos: Served, inputs: list[str]) -> None:
    r = await _post(no_bos, "/api/embed", {"model": EMBED, "input": inputs})
    assert r.status_code == 400, r.text
    assert r.json() == {"error": EMPTY_INPUT}
    assert no_bos.idle()  # the slot and the runner reference were given back
    r = await _post(no_bos, "/api/embed", {"model": EMBED, "input": ["a", "b"]})
    assert r.status_code == 200, r.text
    assert len(r.json()["embeddings"]) == 2


async def test_empty_input_and_prompt_without_tokens_embed_nothing(no_bos: Served) -> None:
    r = await _post(no_bos, "/api/embed", {"model": EMBED, "input": ""})
    assert r.status_code == 200, r.text
    assert r.json()["embeddings"] == []
    r = await _post(no_bos, "/api/embeddings", {"model": EMBED, "prompt": ""})
    assert r.status_code == 200, r.text
    assert r.json() == {"embedding": []}


@pytest.mark.parametrize("value", ["", ["a", ""]])
async def test_openai_input_without_tokens_is_a_400(no_bos: Served, value: str | list[str]) -> None:
    r = await _post(no_bos, "/v1/embeddings", {"model": EMBED, "input": value})
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert error["message"] == EMPTY_INPUT
    assert error["type"] == "invalid_request_error"
    assert no_bos.idle()
